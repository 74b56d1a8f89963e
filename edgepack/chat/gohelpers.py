"""Go template helpers that do what Jinja's `trim`/`strip` do, for Ollama TEMPLATEs.

Go's text/template has no string functions, and Ollama adds none that trim. It does have named
templates that call themselves ({{ define }} / {{ template "name" value }}), `slice` and `len` on
strings, `eq` with several operands and, since Go 1.18, short-circuit `and`/`or`: enough to strip
whitespace one character at a time. Each helper strips exactly what Python's str.strip() strips
(every character for which str.isspace() is true, compared as UTF-8 bytes, 1 to 3 of them), or
what str.strip("\n") strips (the `_nl` helpers), so a template that writes
`{{ template "ep.strip" .Content }}` renders what Jinja's `content | trim` does. tests/test_go_helpers.py runs them in Go's real text/template against Python's own strip.

Ollama accepts them: its template.Parse keeps every defined template, and its Identifiers walk
(template/template.go) reads a {{ template }} call's pipeline, which these calls always have.
Go stops a template at 100,000 nested calls, so a text with more whitespace than that at one end
cannot be stripped; edgepack.chat.gotemplate evaluates the helpers with the same limit.
"""

from __future__ import annotations

import json

# Python's whitespace, by the length of its UTF-8 encoding.
_SPACES: dict[int, list[str]] = {}
for _cp in range(0x10000):
    if chr(_cp).isspace():
        _SPACES.setdefault(len(chr(_cp).encode("utf-8")), []).append(chr(_cp))
assert sorted(_SPACES) == [1, 2, 3], "Python's whitespace is 1 to 3 UTF-8 bytes long"

MAX_DEPTH = 100_000  # Go's text/template maxExecDepth


def _literals(n: int) -> str:
    return " ".join(json.dumps(c) for c in _SPACES[n])  # JSON's \uXXXX and \t, \n are Go literals too


def _head(n: int) -> str:
    return f"(slice . 0 {n})" if n else ""


def _tail(n: int) -> str:
    """The last n bytes of `.`, and `.` without them (no arithmetic in Go templates: len-n is
    the length of `.` sliced from n)."""
    return f"(slice . (len (slice . {n})))"


def _cut_tail(n: int) -> str:
    return f"(slice . 0 (len (slice . {n})))"


def _strip_from(name: str, side: str, done: str, newlines_only: bool = False) -> str:
    """One helper: remove whitespace (or only "\n") from `side` ("left"/"right") recursively, then `done`."""
    branches = []
    for n in ((1,) if newlines_only else (1, 2, 3)):
        part = f"(slice . 0 {n})" if side == "left" else _tail(n)
        rest = f"(slice . {n})" if side == "left" else _cut_tail(n)
        test = f"eq {part} {json.dumps(chr(10)) if newlines_only else _literals(n)}"
        if n > 1:
            test = f"and (ge (len .) {n}) ({test})"
        branches.append(f"{{{{ else if {test} }}}}{{{{ template {json.dumps(name)} {rest} }}}}")
    return (f"{{{{- define {json.dumps(name)} }}}}{{{{ if not . }}}}" + "".join(branches)
            + f"{{{{ else }}}}{done}{{{{ end }}}}{{{{ end }}}}")


HELPERS: dict[str, str] = {
    "ep.lstrip": _strip_from("ep.lstrip", "left", "{{ . }}"),
    "ep.rstrip": _strip_from("ep.rstrip", "right", "{{ . }}"),
    "ep.strip": _strip_from("ep.strip", "left", '{{ template "ep.rstrip" . }}'),
    # str.strip("\n") and its sides, which thinking-model templates apply to reasoning text
    "ep.lstrip_nl": _strip_from("ep.lstrip_nl", "left", "{{ . }}", newlines_only=True),
    "ep.rstrip_nl": _strip_from("ep.rstrip_nl", "right", "{{ . }}", newlines_only=True),
    "ep.strip_nl": _strip_from("ep.strip_nl", "left", '{{ template "ep.rstrip_nl" . }}', newlines_only=True),
}
NATIVE = {"ep.lstrip": str.lstrip, "ep.rstrip": str.rstrip, "ep.strip": str.strip,
          "ep.lstrip_nl": lambda s: s.lstrip("\n"), "ep.rstrip_nl": lambda s: s.rstrip("\n"),
          "ep.strip_nl": lambda s: s.strip("\n")}
NEEDS = {"ep.strip": ("ep.rstrip",), "ep.strip_nl": ("ep.rstrip_nl",)}
# Python's names (`_nl`: with the argument "\n"), and the helpers' after "ep."
TRIMS = ("strip", "lstrip", "rstrip", "strip_nl", "lstrip_nl", "rstrip_nl")


def describe(trim: str) -> str:
    """Python's spelling of a trim: strip() or strip('\\n')."""
    return f"{trim[:-3]}('\\n')" if trim.endswith("_nl") else f"{trim}()"


def call(trim: str, expression: str) -> str:
    """The Go action writing `expression` (a Go pipeline) trimmed as Python's str.<trim>() does."""
    if not trim:
        return f"{{{{ {expression} }}}}"
    if trim not in TRIMS:
        raise ValueError(f"unknown trim {trim!r}")
    return f'{{{{ template "ep.{trim}" {expression} }}}}'


def defines(trims) -> str:
    """The {{ define }} blocks the given trims need, to append after a template's last action."""
    names: list[str] = []
    for trim in trims:
        if trim:
            for name in (f"ep.{trim}", *NEEDS.get(f"ep.{trim}", ())):
                if name not in names:
                    names.append(name)
    return "".join(HELPERS[n] for n in sorted(names))


def depth(name: str, value: str) -> int:
    """How deep Go's calls nest when helper `name` runs on `value` (one call per character removed,
    plus the first; "ep.strip" continues into "ep.rstrip")."""
    if name in ("ep.strip", "ep.strip_nl"):
        left = NATIVE["ep.l" + name[3:]](value)
        return len(value) - len(left) + depth("ep.r" + name[3:], left)
    kept = NATIVE[name](value)
    return len(value) - len(kept) + 1
