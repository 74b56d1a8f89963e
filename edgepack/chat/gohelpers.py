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

Cost, in Go's text/template on this project's 2-core machine: the strips cost nothing measurable
(one call per character removed). The cuts at a marker look at every byte of every assistant text
on every request: about 3 µs per byte for "ep.after:" and 8 µs per byte for "ep.tail:" (0.3 s and
0.8 s for 100 KB of earlier answers), paid only by TEMPLATEs of templates that cut.
The helpers that write JSON as Jinja's `tojson` does live in edgepack.chat.gojson, the one that
writes Python's str() of a value (`value | string`) in edgepack.chat.gopystr, the one that leaves
blocks between two markers out ("ep.drop:", Gemma 4's thought channels) in edgepack.chat.godrop,
Gemma 4's value notation in edgepack.chat.tools.gemma, the one that writes a value as nested XML
elements (MiniMax M3's to_xml) in edgepack.chat.goxml; text_of, native_of and depth here answer for all.
"""

from __future__ import annotations

import json

from edgepack.chat import godrop, gojson, goxml
from edgepack.chat.godrop import can_cut
from edgepack.chat.gopystr import PYSTR_HELPERS, PYSTR_NEEDS
from edgepack.chat.tools.gemma import GEMMA_HELPERS, GEMMA_NEEDS
from edgepack.chat.tools.kimi3 import KIMI3_HELPERS, KIMI3_NEEDS

# Python's whitespace, by the length of its UTF-8 encoding.
_SPACES: dict[int, list[str]] = {}
for _cp in range(0x10000):
    if chr(_cp).isspace():
        _SPACES.setdefault(len(chr(_cp).encode("utf-8")), []).append(chr(_cp))
assert sorted(_SPACES) == [1, 2, 3], "Python's whitespace is 1 to 3 UTF-8 bytes long"

MAX_DEPTH = 100_000  # Go's text/template maxExecDepth


def _literals(n: int) -> str:
    return " ".join(json.dumps(c) for c in _SPACES[n])  # JSON's \uXXXX and \t, \n are Go literals too


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


# Each strip helper: the side it strips, whether only "\n", and the helper the rest goes to.
_STRIPS: dict[str, tuple[str, bool, str | None]] = {
    "ep.lstrip": ("left", False, None),
    "ep.rstrip": ("right", False, None),
    "ep.strip": ("left", False, "ep.rstrip"),
    # str.strip("\n") and its sides, which thinking-model templates apply to reasoning text
    "ep.lstrip_nl": ("left", True, None),
    "ep.rstrip_nl": ("right", True, None),
    "ep.strip_nl": ("left", True, "ep.rstrip_nl"),
    # newlines from the start, whitespace from the end: Qwen3.5's strip() then, after a cut, lstrip("\n")
    "ep.lstrip_nl_rstrip": ("left", True, "ep.rstrip"),
}
HELPERS: dict[str, str] = {
    name: _strip_from(name, side, f"{{{{ template {json.dumps(then)} . }}}}" if then else "{{ . }}", newlines_only)
    for name, (side, newlines_only, then) in _STRIPS.items()}
NEEDS = {name: (then,) for name, (_, _, then) in _STRIPS.items() if then}
NEEDS["ep.strip_line"] = ("ep.rstrip",)
NEEDS.update(PYSTR_NEEDS)
NEEDS.update(GEMMA_NEEDS)
NEEDS.update(KIMI3_NEEDS)


def _strip_side(name: str, text: str) -> str:
    """`text` with helper `name`'s own side stripped (before the helper it goes on to)."""
    side, newlines_only, _ = _STRIPS[name]
    chars = "\n" if newlines_only else None
    return text.lstrip(chars) if side == "left" else text.rstrip(chars)


def _native_strip(name: str):
    then = _STRIPS[name][2]
    return (lambda s: NATIVE[then](_strip_side(name, s))) if then else (lambda s: _strip_side(name, s))


NATIVE = {name: _native_strip(name) for name in _STRIPS}
# `{% if text.strip() %}{{ text.strip() ~ "\n" }}{% endif %}` (Laguna XS's assistant text): the text
# stripped and a newline, nothing when only whitespace is left (Go cannot test the stripped text).
STRIP_LINE = "ep.strip_line"
_STRIP_LINE_TEXT = _strip_from(STRIP_LINE, "left", '{{ template "ep.rstrip" . }}{{ "\\n" }}')
NATIVE[STRIP_LINE] = lambda s: s.strip() + "\n" if s.strip() else ""

# An XML attribute value as templates escape it by hand, `value | replace('&', '&amp;') |
# replace('"', '&quot;')` (Kimi K3's escape_attr): Go's `html` escapes <, > and ' too. One call
# per byte (names and keys are short; Go's 100,000 calls allow 100 KB).
ATTR = "ep.attr"
ATTR_TEXT = ('{{- define "ep.attr" }}{{ if . }}{{ $c := slice . 0 1 }}{{ if eq $c "&" }}&amp;'
             '{{ else if eq $c "\\"" }}&quot;{{ else }}{{ $c }}{{ end }}{{ template "ep.attr" (slice . 1) }}{{ end }}{{ end }}')


def attr_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;")


def _trimmed(trim: str, text: str) -> str:
    return NATIVE[f"ep.{trim}"](text) if trim else text


# Python's names (`_nl`: with the argument "\n"), and the helpers' after "ep."
TRIMS = ("strip", "lstrip", "rstrip", "strip_nl", "lstrip_nl", "rstrip_nl")


def describe(trim: str) -> str:
    """Python's spelling of a trim: strip() or strip('\\n')."""
    if trim == "lstrip_nl_rstrip":
        return "rstrip().lstrip('\\n')"
    return f"{trim[:-3]}('\\n')" if trim.endswith("_nl") else f"{trim}()"


# ----------------------------------------------------------------- text after a marker
# `text.split(marker)[-1]` (what follows the last marker, the whole text when there is none), then
# optionally a trim: always, only when the marker occurred, or that one then and another trim of
# the whole text otherwise. Spelled as one helper name, "ep.after:<trim or ->:<always|if|else-
# <trim>>:<marker>". It loops over the text's byte offsets with {{ range $i := len $ }}, which
# text/template has since Go 1.24: used only in TEMPLATEs that read .Thinking, which Ollama has
# only since 0.9 (built with Go 1.24); see edgepack.chat.text_edits.
_AFTER = "ep.after:"


AFTER_TRIMS = (*TRIMS, "lstrip_nl_rstrip")


def after_name(marker: str, trim: str = "", only_if_found: bool = False, otherwise: str = "") -> str:
    """`trim` is applied to what follows the marker (always, or only when the marker occurred);
    `otherwise` (with only_if_found) to the whole text when it did not."""
    if trim and trim not in AFTER_TRIMS or otherwise and (otherwise not in AFTER_TRIMS or not only_if_found):
        raise ValueError(f"unknown trim {trim!r} / {otherwise!r}")
    if not can_cut(marker):
        raise ValueError(f"marker {marker!r} cannot be cut by this helper")
    when = f"else-{otherwise}" if otherwise else "if" if only_if_found else "always"
    return f"{_AFTER}{trim or '-'}:{when}:{marker}"


def _parse_after(name: str) -> tuple[str, str, bool, str]:
    """(marker, trim, only_if_found, otherwise)"""
    trim, when, marker = name[len(_AFTER):].split(":", 2)
    if when.startswith("else-"):
        return marker, "" if trim == "-" else trim, True, when[len("else-"):]
    return marker, "" if trim == "-" else trim, when == "if", ""


def _emit(trim: str, value: str) -> str:
    return f'{{{{ template "ep.{trim}" {value} }}}}' if trim else f"{{{{ {value} }}}}"


def _after_text(name: str) -> str:
    marker, trim, only_if_found, otherwise = _parse_after(name)
    n, literal = len(marker.encode("utf-8")), json.dumps(marker, ensure_ascii=False)
    if only_if_found and trim != otherwise:
        emit = f"{{{{ if $found }}}}{_emit(trim, '$kept')}{{{{ else }}}}{_emit(otherwise, '$kept')}{{{{ end }}}}"
    else:
        emit = _emit(trim, "$kept")
    return (f"{{{{- define {json.dumps(name, ensure_ascii=False)} }}}}{{{{ $kept := $ }}}}{{{{ $found := false }}}}"
            f"{{{{ range $i := len $ }}}}{{{{ $rest := slice $ $i }}}}"
            f"{{{{ if and (ge (len $rest) {n}) (eq (slice $rest 0 {n}) {literal}) }}}}"
            f"{{{{ $kept = slice $rest {n} }}}}{{{{ $found = true }}}}{{{{ end }}}}{{{{ end }}}}{emit}{{{{ end }}}}")


def _after_trim(name: str, text: str) -> tuple[str, str]:
    """(the trim applied, the text it is applied to) for helper `name` on `text`."""
    marker, trim, only_if_found, otherwise = _parse_after(name)
    kept = text.split(marker)[-1]
    return (trim if marker in text or not only_if_found else otherwise), kept


def _after_native(name: str):
    def run(text: str) -> str:
        trim, kept = _after_trim(name, text)
        return NATIVE[f"ep.{trim}"](kept) if trim else kept
    return run


# `text.split(marker)[-1]` without a loop, for TEMPLATEs any Ollama runs (Go before 1.24 too):
# "ep.tail:<marker>" calls itself on the text without its last 16 bytes unless a marker ends in
# them, and writes those bytes after the call returns, so what follows the last marker comes out
# in order. One call per 16 bytes after the last marker: Go's 100,000 calls allow 1.6 MB.
_TAIL = "ep.tail:"
_CHUNK = 16


def tail_name(marker: str) -> str:
    if not can_cut(marker):
        raise ValueError(f"marker {marker!r} cannot be cut by this helper")
    return _TAIL + marker


def _tail_text(name: str) -> str:
    """Flat ifs that note where the latest marker in the last 16 bytes ends, then one if: Go
    nests an `else if` chain as ifs inside ifs, and 16 of them per call overflowed Go's stack
    (a fatal error, not a template error) before its 100,000-call limit."""
    marker = name[len(_TAIL):]
    n, literal, quoted = len(marker.encode("utf-8")), json.dumps(marker, ensure_ascii=False), json.dumps(name, ensure_ascii=False)
    parts = ["{{ $j := -1 }}"]
    for j in range(_CHUNK):  # a marker ending j bytes before the end, the smallest j first
        end = f"(len (slice . {j}))" if j else "(len .)"
        parts.append(f"{{{{ if and (lt $j 0) (ge (len .) {n + j}) (eq (slice . (len (slice . {n + j})) {end}) {literal}) }}}}"
                     f"{{{{ $j = {j} }}}}{{{{ end }}}}")
    parts.append(f"{{{{ if ge $j 0 }}}}{{{{ slice . (len (slice . $j)) }}}}"
                 f"{{{{ else if ge (len .) {_CHUNK} }}}}{{{{ template {quoted} (slice . 0 (len (slice . {_CHUNK}))) }}}}"
                 f"{{{{ slice . (len (slice . {_CHUNK})) }}}}{{{{ else }}}}{{{{ . }}}}{{{{ end }}}}")
    return f"{{{{- define {quoted} }}}}" + "".join(parts) + "{{ end }}"


def _tail_depth(marker: str, value: str) -> int:
    raw, mark = value.encode("utf-8"), marker.encode("utf-8")
    at = raw.rfind(mark)
    end = at + len(mark) if at >= 0 else None
    length, calls = len(raw), 1
    while not (end is not None and 0 <= length - end < _CHUNK) and length >= _CHUNK:
        length -= _CHUNK
        calls += 1
    return calls


def text_of(name: str) -> str | None:
    """The Go define block of helper `name` ("ep.strip", "ep.after:..."), None if it is not one."""
    if name in HELPERS:
        return HELPERS[name]
    if name == ATTR:
        return ATTR_TEXT
    if name == STRIP_LINE:
        return _STRIP_LINE_TEXT
    if gojson.is_json_helper(name):
        return gojson.text_of(name)
    if name in PYSTR_HELPERS:
        return PYSTR_HELPERS[name]
    if name in GEMMA_HELPERS:
        return GEMMA_HELPERS[name]
    if name in KIMI3_HELPERS:
        return KIMI3_HELPERS[name]
    if name.startswith(goxml.XML):
        try:
            return goxml.xml_text(goxml.xml_name(name[len(goxml.XML):]))
        except ValueError:
            return None
    if name.startswith(_TAIL):
        try:
            return _tail_text(tail_name(name[len(_TAIL):]))
        except ValueError:
            return None
    if name.startswith(godrop.PREFIX):
        trim = godrop.parse(name)[2] if godrop.is_drop(name) else None
        return godrop.text_of(name) if trim is not None and (not trim or trim in AFTER_TRIMS) else None
    if name.startswith(_AFTER) and name.count(":") >= 3:
        try:
            if after_name(*_parse_after(name)) != name:
                return None
        except ValueError:
            return None
        return _after_text(name)
    return None


def native_of(name: str):
    """The Python function helper `name` is proven equal to (None: it runs as Go text, only
    called from a helper that runs natively)."""
    if gojson.is_json_helper(name):
        return gojson.native_of(name)
    if name in PYSTR_HELPERS or name in GEMMA_HELPERS or name in KIMI3_HELPERS or name.startswith(goxml.XML):
        return None  # takes any JSON value, not a string: runs as Go text
    if name == ATTR:
        return attr_escape
    if name.startswith(_TAIL):
        marker = name[len(_TAIL):]
        return lambda text: text.split(marker)[-1]
    if name.startswith(godrop.PREFIX):
        return lambda text: _trimmed(*godrop.kept(name, text))
    return NATIVE[name] if name in NATIVE else _after_native(name)


def _needs(name: str) -> tuple[str, ...]:
    if gojson.is_json_helper(name):
        return gojson.needs(name)
    if name.startswith(godrop.PREFIX):
        trim = godrop.parse(name)[2]
        return (f"ep.{trim}", *NEEDS.get(f"ep.{trim}", ())) if trim else ()
    if name.startswith(_AFTER):
        _, trim, _, otherwise = _parse_after(name)
        return tuple(n for t in dict.fromkeys((trim, otherwise)) if t for n in (f"ep.{t}", *NEEDS.get(f"ep.{t}", ())))
    return NEEDS.get(name, ())


def describe_spec(spec: str) -> str:
    """A transform (a trim, or after:...) in Python's words."""
    if spec.startswith(_TAIL[3:]):
        return f"split({spec[len(_TAIL) - 3:]!r})[-1]"
    if spec.startswith(godrop.PREFIX[3:]):
        open_marker, close_marker, trim = godrop.parse("ep." + spec)
        return (f"every {open_marker!r}...{close_marker!r} block and {close_marker!r} left out"
                + (f", then {describe(trim)}" if trim else ""))
    if spec.startswith(_AFTER[3:]):
        marker, trim, only_if_found, otherwise = _parse_after("ep." + spec)
        cut = f"split({marker!r})[-1]" + (f".{describe(trim)}" if trim else "")
        if not only_if_found:
            return cut
        return f"{cut} when it contains {marker!r}" + (f", else {describe(otherwise)}" if otherwise else "")
    return describe(spec)


def call(trim: str, expression: str) -> str:
    """The Go action writing `expression` (a Go pipeline) transformed by `trim`: a name of TRIMS
    (Python's str.<trim>()) or a tail_name()/after_name() without its "ep." (chat.text_edits' spec)."""
    if not trim:
        return f"{{{{ {expression} }}}}"
    if text_of(f"ep.{trim}") is None:
        raise ValueError(f"unknown trim {trim!r}")
    return f'{{{{ template {json.dumps("ep." + trim, ensure_ascii=False)} {expression} }}}}'


def defines(trims) -> str:
    """The {{ define }} blocks the given transforms need, to append after a template's last action."""
    names: list[str] = []
    for trim in trims:
        if trim:
            for name in (f"ep.{trim}", *_needs(f"ep.{trim}")):
                if name not in names:
                    names.append(name)
    return "".join(text_of(n) for n in sorted(names))


def depth(name: str, value: str) -> int:
    """How deep Go's calls nest when helper `name` runs on `value` (one call per character removed,
    plus the first; "ep.strip" continues into "ep.rstrip"; "ep.after:..." loops, then trims)."""
    if name.startswith(_TAIL):
        return _tail_depth(name[len(_TAIL):], value)
    if gojson.is_json_helper(name):
        return gojson.depth(name, value)
    if name.startswith(_AFTER):
        trim, kept = _after_trim(name, value)
        return 1 + (depth(f"ep.{trim}", kept) if trim else 0)
    if name == ATTR:
        return len(value.encode("utf-8", "surrogateescape")) + 1
    if name == STRIP_LINE:
        rest = value.lstrip()
        return len(value) - len(rest) + (depth("ep.rstrip", rest) if rest else 1)
    if name.startswith(godrop.PREFIX):
        trim, kept = godrop.kept(name, value)
        return 1 + (depth(f"ep.{trim}", kept) if trim else 0)
    rest = _strip_side(name, value)
    then = _STRIPS[name][2]
    return len(value) - len(rest) + (depth(then, rest) if then else 1)


def blank_check(value: str, flag: str) -> str:
    """Go text that declares `flag` (a variable name) true when `value` (a Go variable holding a
    string) is empty or all whitespace, as Jinja's `value | trim | length == 0`. A loop over the
    text's byte offsets (Go 1.24's range over an integer: only for TEMPLATEs that read .Thinking):
    a whitespace character of 2 or 3 bytes has its other bytes skipped ($skip holds one letter per
    byte still to skip); any other character clears the flag."""
    skip = f"{flag}Skip"
    tests = [f"eq (slice $r 0 1) {_literals(1)}"] + [
        f"and (ge (len $r) {n}) (eq (slice $r 0 {n}) {_literals(n)})" for n in (2, 3)]
    return (f"{{{{ {flag} := true }}}}{{{{ {skip} := \"\" }}}}{{{{ range $k := len {value} }}}}{{{{ if {flag} }}}}"
            f"{{{{ if {skip} }}}}{{{{ {skip} = slice {skip} 1 }}}}{{{{ else }}}}{{{{ $r := slice {value} $k }}}}"
            f"{{{{ if {tests[0]} }}}}{{{{ else if {tests[1]} }}}}{{{{ {skip} = \"x\" }}}}"
            f"{{{{ else if {tests[2]} }}}}{{{{ {skip} = \"xx\" }}}}{{{{ else }}}}{{{{ {flag} = false }}}}{{{{ end }}}}"
            "{{ end }}{{ end }}{{ end }}")
