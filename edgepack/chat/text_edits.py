"""How a chat template edits message text, read from its renders, for the Go TEMPLATE to do the same.

Templates trim text (`|trim`, `.strip('\\n')`) and cut earlier answers at a marker
(`content.split('</think>')[-1]`); edgepack.chat.gohelpers writes each as a named Go template.
Which one a role needs is not guessed from the template's source: a conversation padded in that
role alone (and, for assistant text, one per `split(...)[-1]` marker the source names, and one
per pair of markers it drops blocks between, as Gemma 4 drops thought channels) is rendered
by transformers with the other choice conversations, and the first helper under which the Go
TEMPLATE renders them identically is taken. The proof (edgepack.chat.proof) then checks the
choice on its own, differently padded conversations.
"""

from __future__ import annotations

import re

from edgepack.chat import godrop, gohelpers
from edgepack.chat.conversations import Message
from edgepack.chat.sandbox import RenderJob
from edgepack.errors import ChatTemplateError

PREFILL_KWARGS = (("add_generation_prompt", False), ("continue_final_message", True))

# Conversations that show whether (and how) the template trims each kind of text, one kind
# padded per conversation, so each is read on its own. Padded with newlines outermost and other
# whitespace inside, which tells strip() from strip("\n") and one side from both; other padding
# than the proof's padded conversations (edgepack.chat.conversations), which then check the choice.
_PAD = "\n \t{}\t \n"
TRIM_PROBES: dict[str, tuple[tuple[Message, ...], tuple, str]] = {  # name: (messages, kwargs, role)
    "trim/system": ((Message("system", _PAD.format("Be brief.")), Message("user", "Name a colour.")), (), "system"),
    "trim/user": ((Message("user", _PAD.format("Name a colour.")),), (), "user"),
    "trim/assistant": ((Message("user", "Name a colour."), Message("assistant", _PAD.format("Blue.")),
                        Message("user", "Another?")), (), "assistant"),
    "trim/thinking": ((Message("user", "What is 2 + 2?"), Message("assistant", "Four.", thinking=_PAD.format("Add."))),
                      PREFILL_KWARGS, "thinking"),
}


# The edit of a final assistant turn, where it is not the edit of earlier ones ("": left as it is)
LAST = "assistant_last"
_LAST_WORDS = "a final assistant turn (continued)"

_SPLIT_LAST = re.compile(r"""split\(\s*(['"])(.+?)\1\s*\)\s*\[\s*-1\s*\]""")


def split_markers(chat_template: str) -> list[str]:
    """Markers the template cuts text at, keeping what follows the last (`x.split('</think>')[-1]`)."""
    found = []
    for m in _SPLIT_LAST.finditer(chat_template):
        marker = m.group(2).encode("utf-8").decode("unicode_escape") if "\\" in m.group(2) else m.group(2)
        if marker not in found and gohelpers.can_cut(marker):
            found.append(marker)
    return found


# `for part in text.split(CLOSE)` ... `part.split(OPEN)[0]`: blocks from OPEN to CLOSE left out
# (Gemma 4's strip_thinking), read as (OPEN, CLOSE)
_DROP_LOOP = re.compile(r"""for\s+(\w+)\s+in\s+\w+\.split\(\s*(['"])(.+?)\2\s*\)(?:(?!endfor).)*?"""
                        r"""\1\.split\(\s*(['"])(.+?)\4\s*\)\s*\[\s*0\s*\]""", re.DOTALL)


def drop_markers(chat_template: str) -> list[tuple[str, str]]:
    """(open, close) of the blocks the template leaves out of text: every piece between close
    markers cut at its first open marker (`for p in text.split(close)`: `p.split(open)[0]`)."""
    found = []
    for m in _DROP_LOOP.finditer(chat_template):
        pair = tuple(x.encode("utf-8").decode("unicode_escape") if "\\" in x else x for x in (m.group(5), m.group(3)))
        if pair not in found and godrop.can_drop(*pair):
            found.append(pair)
    return found


def drop_probe(open_marker: str, close_marker: str) -> tuple[Message, ...]:
    """An earlier answer with blocks between the markers (one closed, one at the very end left
    open), a stray close marker and padding around and between them."""
    return (Message("user", "Name a colour."),
            Message("assistant", f"\n {open_marker}plan{close_marker} Blue, \n{close_marker} or green. \n"
                                 f"{open_marker}more\n"),
            Message("user", "Another?"))


def cut_probe(marker: str) -> tuple[Message, ...]:
    """An earlier answer whose text carries reasoning before `marker` (as clients that do not split
    thinking send it), padded so that what follows the cut shows how it is trimmed."""
    return (Message("user", "Name a colour."), Message("assistant", f"\n Pick one.\n{marker}\n\n Blue. \n"),
            Message("user", "Another?"))


def last_probe(marker: str) -> tuple[Message, ...]:
    """A final assistant turn (Ollama's prefill) holding `marker`, led by padding: a template may
    edit earlier answers only (QwQ: `if not loop.last`). Nothing trails the text, which
    transformers' continue_final_message would cut."""
    return (Message("user", "Name a colour."), Message("assistant", f"\n Pick one.\n{marker}\n\n Blue."))


def edit_jobs(markers: list[str], drops: list[tuple[str, str]] = ()) -> list[tuple[str, RenderJob]]:
    """(name, render job) of every conversation find_edits reads, for one bounded render child."""
    return ([(name, RenderJob(messages, kwargs)) for name, (messages, kwargs, _) in TRIM_PROBES.items()]
            + [(f"cut/{m}", RenderJob.of(cut_probe(m))) for m in markers]
            + [(f"last/{m}", RenderJob(last_probe(m), PREFILL_KWARGS)) for m in markers]
            + [(f"drop/{o}/{c}", RenderJob.of(drop_probe(o, c))) for o, c in drops])


def find_edits(renders, render, build) -> dict[str, str]:
    """Per role, how the template transforms that text, as a Go helper spec (edgepack.chat.gohelpers):
    a trim of gohelpers.TRIMS, or for assistant text also "tail:..." (`split(marker)[-1]`) or
    "after:..." (the same, then a trim), chosen so that the Go template `build(trims)` renders the role's TRIM_PROBES
    conversation, and for the assistant each cut conversation, as the template does. Roles left
    alone are absent. The "after:" helpers loop with range-over-int (Go 1.24), so they are tried
    only for TEMPLATEs that read .Thinking (Ollama 0.9 and later, all built with Go 1.24 or newer).
    Where the assistant's text is edited, a final assistant turn holding each marker (last_probe)
    shows whether the template edits a turn Ollama continues too; if not, LAST gives how it edits
    that one ("": not at all; QwQ cuts earlier answers only).
    Kept only if the choice conversations still render exactly with them (`renders.choice_holds`).
    `render(go_template, messages, think=None)` runs a TEMPLATE as Ollama does."""
    built: dict[frozenset, str] = {}  # the same trims build the same TEMPLATE: once

    def build_once(trims: dict[str, str]) -> str:
        key = frozenset(trims.items())
        if key not in built:
            built[key] = build(trims)
        return built[key]

    trims: dict[str, str] = {}
    assistant_specs: list[str] = []
    reads_thinking = ".Thinking" in build_once({})
    for name, (messages, _, role) in TRIM_PROBES.items():
        checks = [(messages, renders.expected(name))]
        specs = ["", *gohelpers.TRIMS]
        if role == "assistant" and renders.markers:
            checks += [(cut_probe(m), renders.expected(f"cut/{m}")) for m in renders.markers]
            specs += [gohelpers.tail_name(m)[3:] for m in renders.markers]  # any Go
            if reads_thinking:  # Go 1.24, see above: the cut followed by a trim
                specs += [gohelpers.after_name(m, trim, only_if, otherwise)[3:] for m in renders.markers
                          for trim in ("", *gohelpers.AFTER_TRIMS)
                          for only_if, otherwise in ((False, ""), (True, ""), *((True, t) for t in gohelpers.TRIMS))]
        if role == "assistant" and renders.drops:
            checks += [(drop_probe(o, c), renders.expected(f"drop/{o}/{c}")) for o, c in renders.drops]
            if reads_thinking:  # Go 1.24 too: the blocks left out, then a trim
                specs += [godrop.drop_name(o, c, trim)[3:] for o, c in renders.drops
                          for trim in ("", *gohelpers.AFTER_TRIMS)]
        checks = [(conv, want) for conv, want in checks if want is not None]
        assistant_specs = specs if role == "assistant" else assistant_specs
        # Every conversation if some helper renders them all; else the padded one alone (the
        # cut then stays a named difference of the proof).
        for wanted in (checks, checks[:1]):
            found = _first_spec(render, build_once, trims, role, specs, wanted)
            if found is not None:
                trims = found
                break
    if "assistant" in trims:  # a final turn the template leaves as it is, or edits otherwise
        lasts = [(last_probe(m), renders.expected(f"last/{m}")) for m in renders.markers]
        lasts = [(conv, want) for conv, want in lasts if want is not None]
        try:
            as_earlier = all(render(build_once(trims), conv) == want for conv, want in lasts)
        except ChatTemplateError:
            as_earlier = False
        if not as_earlier:
            for how in assistant_specs:
                candidate = trims | {LAST: how}
                try:
                    if all(render(build_once(candidate), conv) == want for conv, want in lasts):
                        trims = candidate
                        break
                except ChatTemplateError:
                    continue
    return trims if not trims or renders.choice_holds(build_once(trims)) else {}


def describe_edits(edits: dict[str, str]) -> str:
    """One line for a report: which text the TEMPLATE edits, and how, in Python's words."""
    return "text edited as the template edits it (Go helpers): " + ", ".join(
        (f"{gohelpers.describe_spec(how)} of {role}" if how else f"{role} left as it is").replace(LAST, _LAST_WORDS)
        for role, how in edits.items())


def _first_spec(render, build, trims: dict[str, str], role: str, specs: list[str], checks) -> dict[str, str] | None:
    for how in specs if checks else ():
        candidate = trims | ({role: how} if how else {})
        try:
            go = build(candidate)
            if all(render(go, conv) == want for conv, want in checks):
                return candidate
        except ChatTemplateError:
            continue
    return None
