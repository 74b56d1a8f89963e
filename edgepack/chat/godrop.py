"""The Go template helper that leaves blocks between two markers out of a text, for Ollama TEMPLATEs
(and, at the end, the Go text that leaves every occurrence of one marker out: remove).

Every block from an opening marker to the next closing one (or the end) is left out, and every
other closing marker: `"".join(p.split(open)[0] for p in text.split(close))`, then optionally a
trim (one of edgepack.chat.gohelpers' strips); Gemma 4 cuts its thought channels
(<|channel>...<channel|>) out of earlier answers so. Spelled "ep.drop:<trim or ->:<bytes of
open>:<open><close>". One pass over the text's byte offsets with {{ range $i := len $ }} (Go 1.24,
as gohelpers' "ep.after:": only in TEMPLATEs that read .Thinking), the kept pieces joined with
print; only an offset holding a marker's first byte is looked at further, about 1.4 µs a byte (a
whole Gemma 4 TEMPLATE over 100 KB of earlier answers: 0.14 s a render in tests/go's real
text/template). The markers may not overlap each other or themselves (can_drop), so the pass
finds what split() finds. Hand-written because Go templates have no string functions.
"""

from __future__ import annotations

import json

PREFIX = "ep.drop:"


def can_cut(marker: str) -> bool:
    """Whether a cut helper can cut at `marker`: not empty, and unable to overlap itself ("aa"),
    where split() and a scan of every offset differ."""
    return bool(marker) and not any(marker[:k] == marker[-k:] for k in range(1, len(marker)))


def can_drop(open_marker: str, close_marker: str) -> bool:
    """Whether "ep.drop:" can cut blocks between these markers: each cuttable, neither inside the
    other, and no end of one the start of the other."""
    a, b = open_marker, close_marker
    return (can_cut(a) and can_cut(b) and a not in b and b not in a
            and not any(a[-k:] == b[:k] or b[-k:] == a[:k] for k in range(1, min(len(a), len(b)))))


def drop_name(open_marker: str, close_marker: str, trim: str = "") -> str:
    """The helper's name; `trim` a name of gohelpers.AFTER_TRIMS (checked where the helper is written)."""
    if not can_drop(open_marker, close_marker):
        raise ValueError(f"blocks between {open_marker!r} and {close_marker!r} cannot be cut by this helper")
    if ":" in trim:
        raise ValueError(f"unknown trim {trim!r}")
    return f"{PREFIX}{trim or '-'}:{len(open_marker.encode('utf-8'))}:{open_marker}{close_marker}"


def parse(name: str) -> tuple[str, str, str]:
    """(open, close, trim) of a helper name."""
    trim, size, markers = name[len(PREFIX):].split(":", 2)
    raw = markers.encode("utf-8")
    return raw[:int(size)].decode("utf-8"), raw[int(size):].decode("utf-8"), "" if trim == "-" else trim


def is_drop(name: str) -> bool:
    """Whether `name` is a well-formed "ep.drop:" name."""
    try:
        return name.startswith(PREFIX) and drop_name(*parse(name)) == name
    except (ValueError, UnicodeDecodeError):
        return False


def kept(name: str, text: str) -> tuple[str, str]:
    """(the trim still to apply, the text with its blocks left out): what the helper does, in Python."""
    open_marker, close_marker, trim = parse(name)
    return trim, "".join(part.split(open_marker)[0] for part in text.split(close_marker))


def text_of(name: str) -> str:
    """The Go define block of a well-formed helper name (is_drop)."""
    open_marker, close_marker, trim = parse(name)
    size = {m: len(m.encode("utf-8")) for m in (open_marker, close_marker)}
    test = {m: f"and (ge (len $rest) {size[m]}) (eq (slice $rest 0 {size[m]}) {json.dumps(m, ensure_ascii=False)})"
            for m in (open_marker, close_marker)}
    # past a marker: the kept piece (or the block) starts after it; $until, the length left there,
    # tells offsets inside the marker apart
    past = {m: f"{{{{ $from = slice $rest {size[m]} }}}}{{{{ $until = len $from }}}}" for m in (open_marker, close_marker)}
    # only an offset holding a marker's first byte is looked at further (one `index` per byte);
    # the piece kept so far is $from up to this offset: its first len($from) - len($rest) bytes
    firsts = sorted({m.encode("utf-8")[0] for m in (open_marker, close_marker)})
    candidate = " ".join(f"(eq $b {b})" for b in firsts)
    candidate = f"or {candidate}" if len(firsts) > 1 else candidate[1:-1]
    piece = "(slice $from 0 (len (slice $from (len $rest))))"
    emit = f'{{{{ template "ep.{trim}" $out }}}}' if trim else "{{ $out }}"
    return (f'{{{{- define {json.dumps(name, ensure_ascii=False)} }}}}{{{{ $out := "" }}}}{{{{ $in := false }}}}'
            "{{ $from := $ }}{{ $until := len $ }}"
            f"{{{{ range $i := len $ }}}}{{{{ $b := index $ $i }}}}{{{{ if {candidate} }}}}{{{{ $rest := slice $ $i }}}}"
            "{{ if le (len $rest) $until }}"
            f"{{{{ if $in }}}}{{{{ if {test[close_marker]} }}}}{{{{ $in = false }}}}{past[close_marker]}{{{{ end }}}}"
            f"{{{{ else if {test[close_marker]} }}}}{{{{ $out = print $out {piece} }}}}{past[close_marker]}"
            f"{{{{ else if {test[open_marker]} }}}}{{{{ $out = print $out {piece} }}}}{past[open_marker]}"
            "{{ $in = true }}{{ end }}{{ end }}{{ end }}{{ end }}"
            "{{ if not $in }}{{ $out = print $out $from }}{{ end }}"
            f"{emit}{{{{ end }}}}")


def remove(value: str, out: str, marker: str) -> str:
    """Go text that declares `out` (a variable name) as `value` (a Go variable holding a string) with
    every `marker` left out, as Python's value.replace(marker, ""): one pass over the byte offsets
    (Go 1.24's range over an integer), the bytes of a marker found skipped ($skip holds one letter
    per byte still to skip) and the text before it joined on with print. For families' own
    templates (SmolLM3's and Nemotron Nano v2's /think and /no_think)."""
    size, literal = len(marker.encode("utf-8")), json.dumps(marker, ensure_ascii=False)
    skip = json.dumps("x" * (size - 1))
    return (f'{{{{ {out} := "" }}}}{{{{ $from := 0 }}}}{{{{ $skip := "" }}}}{{{{ $resume := false }}}}'
            f"{{{{ range $k := len {value} }}}}"
            "{{ if $resume }}{{ $from = $k }}{{ $resume = false }}{{ end }}"
            "{{ if $skip }}{{ $skip = slice $skip 1 }}{{ if not $skip }}{{ $resume = true }}{{ end }}{{ else }}"
            f"{{{{ $r := slice {value} $k }}}}{{{{ if and (ge (len $r) {size}) (eq (slice $r 0 {size}) {literal}) }}}}"
            f"{{{{ {out} = print {out} (slice {value} $from $k) }}}}{{{{ $skip = {skip} }}}}"
            "{{ end }}{{ end }}{{ end }}"
            f"{{{{ if not $resume }}}}{{{{ {out} = print {out} (slice {value} $from) }}}}{{{{ end }}}}")
