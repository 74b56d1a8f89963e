"""Today's date in an Ollama TEMPLATE: written by Ollama's currentDate, never frozen into the file.

Ollama's currentDate/yesterdayDate write YYYY-MM-DD only. A template that writes today's date in
another strftime format (Granite 3.3's "%B %d, %Y", Llama 3.2's "%d %b %Y") gets it built from
currentDate: text/template can slice a string and compare it, so month names and unpadded days
come from a prologue of if/else. A format it cannot build (a weekday) stays frozen in the text,
which frozen_date finds so that the Go path is never called exact.
"""

from __future__ import annotations

import datetime
import json
import re

from edgepack.chat.gotemplate import TODAY

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
# strftime directives as Go operands over currentDate ("YYYY-MM-DD"): text/template can slice a
# string and compare it, so month names and unpadded days come from a prologue of if/else.
_DATE_DIRECTIVES = {"%Y": "(slice currentDate 0 4)", "%m": "(slice currentDate 5 7)", "%d": "(slice currentDate 8 10)",
                    "%B": "$todayMonthName", "%b": "$todayMonthAbbr", "%-d": "$todayDay"}
_STRFTIME = re.compile(r"""strftime_now\(\s*(["'])(.*?)\1\s*\)""")


def source_date_formats(chat_template: str) -> tuple[str, ...]:
    """The strftime formats the template writes today's date with (strftime_now calls)."""
    return tuple(dict.fromkeys(m.group(2) for m in _STRFTIME.finditer(chat_template)))


def _date_operands(fmt: str) -> list[str] | None:
    """Go operands writing today's date in strftime format `fmt` (None: a directive Go cannot write)."""
    operands = []
    for part in re.split(r"(%-?[A-Za-z])", fmt):
        if part.startswith("%"):
            if part not in _DATE_DIRECTIVES:
                return None
            operands.append(_DATE_DIRECTIVES[part])
        elif part:
            operands.append(json.dumps(part, ensure_ascii=False))
    return operands


def go_date_expression(text: str, date_formats: tuple[str, ...] = ()) -> str:
    """A Go expression for text taken from the template, with today's/yesterday's date written by
    Ollama's currentDate/yesterdayDate (ISO) or, in the template's own strftime format, built from
    currentDate; so that the build day is never frozen into the file."""
    today = TODAY.get()
    dates = {today.isoformat(): ["currentDate"], (today - datetime.timedelta(days=1)).isoformat(): ["yesterdayDate"]}
    for fmt in date_formats:
        operands = _date_operands(fmt)
        if operands:
            dates.setdefault(today.strftime(fmt), operands)
    parts = re.split("(" + "|".join(map(re.escape, sorted(dates, key=len, reverse=True))) + ")", text)
    if len(parts) == 1:
        return json.dumps(text, ensure_ascii=False)
    operands = [o for p in parts if p for o in (dates[p] if p in dates else [json.dumps(p, ensure_ascii=False)])]
    return "(print " + " ".join(operands) + ")"


def date_prologue(expression: str) -> str:
    """Go statements setting the month-name / unpadded-day variables `expression` uses ("" if none)."""
    if not any(v in expression for v in ("$todayMonthName", "$todayMonthAbbr", "$todayDay")):
        return ""
    months = "{{ else if ".join(f'eq $todayMonth "{i:02d}" }}}}{{{{ $todayMonthName = "{name}" }}}}'
                                f'{{{{ $todayMonthAbbr = "{name[:3]}" }}}}' for i, name in enumerate(_MONTHS, 1))
    return ('{{- $todayMonth := slice currentDate 5 7 }}{{- $todayMonthName := "" }}{{- $todayMonthAbbr := "" }}'
            "{{- if " + months + "{{ end }}"
            '{{- $todayDay := slice currentDate 8 10 }}{{- if eq (slice currentDate 8 9) "0" }}'
            "{{ $todayDay = slice currentDate 9 10 }}{{ end }}")


def frozen_date(go_template: str | None, date_formats: tuple[str, ...] = ()) -> str | None:
    """Today's date written literally into a Go template (None: none), so it would hold the build day.

    date_formats: the template's own strftime formats (source_date_formats), checked first.
    """
    if not go_template:
        return None
    today = TODAY.get()
    for fmt in (*date_formats, "%Y-%m-%d", "%d %b %Y", "%d %B %Y", "%B %d, %Y", "%b %d, %Y", "%B %-d, %Y",
                "%d/%m/%Y", "%m/%d/%Y"):
        written = today.strftime(fmt)
        if written in go_template:
            return written
    return None
