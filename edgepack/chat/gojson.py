"""Go template helpers that write JSON as Jinja's `tojson` does, for Ollama TEMPLATEs with tools.

Ollama's only JSON function is `json` (Go's json.Marshal: compact, `<`, `>`, `&`, U+2028 and
U+2029 escaped); chat templates write `tojson` (Python's json.dumps with ensure_ascii=False:
", " and ": ", those characters as they are; some with indent=N). Go's text/template has no string
functions, so, as in edgepack.chat.gohelpers, these are named templates that walk the text byte by
byte with `slice`, `eq` and recursion. Hand-written because nothing else runs inside a TEMPLATE.
tests/test_go_json.py runs each in Go's real text/template against Python's json.dumps.
"""

from __future__ import annotations

import json

from edgepack.chat.gotemplate import go_html

# ----------------------------------------------------------------- Python's JSON from Go's
# Jinja's `tojson` in transformers is json.dumps(value, ensure_ascii=False): ", " and ": " between
# items, and <, >, & and U+2028/U+2029 written as they are. Ollama's `json` is Go's json.Marshal:
# compact, and those five escaped as \u003c, \u003e, \u0026, \u2028, \u2029. "ep.pyjson" writes
# Go's output the Python way, byte by byte: outside strings a space after each , and :, inside
# strings the five escapes undone; everything else (the other escapes, which both languages write
# alike) is copied. "ep.pyjson" is the state outside a string, "ep.pyjson.s" inside one; a plain
# run inside a string is copied up to 8 bytes per call, so Go's 100,000 calls allow about
# 100 KB of JSON per call site (each tool is written by its own call). Numbers are Go's: a
# float that is a whole number is written 18, where Python writes 18.0.
PYJSON = "ep.pyjson"
_PYJSON_IN = "ep.pyjson.s"
_RUN = 8
_UNESCAPE = {"\\u003c": "<", "\\u003e": ">", "\\u0026": "&", "\\u2028": "\u2028", "\\u2029": "\u2029"}


def _unescape_go(text: str) -> str:
    """Go text, inside a string at a backslash (`text`: the Go pipeline of the text from it; $n the
    escape's length so far, $e what to write): one of the five escapes becomes its character."""
    return (f"{{{{ if ge (len {text}) 6 }}}}{{{{ $u := slice {text} 0 6 }}}}"
            + "".join(f'{{{{ if eq $u {json.dumps(esc)} }}}}{{{{ $n = 6 }}}}{{{{ $e = {json.dumps(char)} }}}}{{{{ end }}}}'
                      for esc, char in _UNESCAPE.items()) + "{{ end }}")


def _escape_at(text: str, i: int) -> tuple[str, int]:
    """What the helpers write for the backslash escape at text[i], and its length in `text`."""
    six = text[i:i + 6]
    return (_UNESCAPE[six], 6) if six in _UNESCAPE else (text[i:i + 2], 2)


def _pyjson_texts(name: str = PYJSON, escape: bool = False, compact: bool = False) -> dict[str, str]:
    """The two helpers' Go text; `escape`: every byte written through Go's `html` (see PYJSON_HTML);
    `compact`: no space after , and : (see PYJSON_COMPACT)."""
    inner, q = name + ".s", json.dumps(name)
    qi = json.dumps(inner)
    w = (lambda x: f"{{{{ html ({x}) }}}}" if " " in x else f"{{{{ html {x} }}}}") if escape else (lambda x: f"{{{{ {x} }}}}")
    quote = "&#34;" if escape else '"'
    out = (f'{{{{- define {q} }}}}{{{{ if . }}}}{{{{ $c := slice . 0 1 }}}}'
           + ('{{ $c }}' if compact else
              '{{ if eq $c "," }}, {{ end }}{{ if eq $c ":" }}: {{ end }}{{ if not (eq $c "," ":") }}' + w("$c") + '{{ end }}')
           + f'{{{{ if eq $c "\\"" }}}}{{{{ template {qi} (slice . 1) }}}}{{{{ else }}}}{{{{ template {q} (slice . 1) }}}}'
           '{{ end }}{{ end }}{{ end }}')
    run = ["{{ $n := 0 }}{{ $stop := false }}"]
    for k in range(_RUN):  # flat ifs: the length of the plain run at the start, up to 8 bytes
        run.append(f'{{{{ if and (not $stop) (gt (len .) {k}) (not (eq (slice . {k} {k + 1}) "\\"" "\\\\")) }}}}'
                   f'{{{{ $n = {k + 1} }}}}{{{{ else }}}}{{{{ $stop = true }}}}{{{{ end }}}}')
    inside = (f'{{{{- define {qi} }}}}{{{{ if . }}}}' + "".join(run)
              + '{{ if $n }}' + w("slice . 0 $n") + f'{{{{ template {qi} (slice . $n) }}}}{{{{ end }}}}'
              + '{{ if not $n }}{{ $c := slice . 0 1 }}'
              + f'{{{{ if eq $c "\\"" }}}}{quote}{{{{ template {q} (slice . 1) }}}}{{{{ end }}}}'
              + '{{ if and (eq $c "\\\\") (ge (len .) 2) }}{{ $n = 2 }}{{ $e := slice . 0 2 }}'
              + _unescape_go(".")
              + w("$e") + f'{{{{ template {qi} (slice . $n) }}}}{{{{ end }}}}{{{{ end }}}}{{{{ end }}}}{{{{ end }}}}')
    return {name: out, inner: inside}


def _pyjson_walk(text: str, compact: bool = False) -> tuple[str, int]:
    """What "ep.pyjson" (`compact`: "ep.pyjson.compact") writes for `text` (Go's compact JSON) and
    how many calls it nests."""
    out: list[str] = []
    i, calls, inside = 0, 1, False
    while i < len(text):
        c = text[i]
        if not inside:
            out.append(c if compact else ", " if c == "," else ": " if c == ":" else c)
            inside = c == '"'
            i += 1
        else:
            run = 0
            while run < _RUN and i + run < len(text) and text[i + run] not in '"\\':
                run += 1
            if run:
                out.append(text[i:i + run])
                i += run
            elif c == '"':
                out.append(c)
                inside = False
                i += 1
            elif i + 1 < len(text):  # a backslash escape
                piece, n = _escape_at(text, i)
                out.append(piece)
                i += n
            else:
                break  # a lone backslash at the end: Go writes nothing more
        calls += 1
    return "".join(out), calls


def pyjson(text: str) -> str:
    """Python's json.dumps(value, ensure_ascii=False) from Go's json.Marshal(value)."""
    return _pyjson_walk(text)[0]


# "ep.pyjson.html" writes the same, HTML-escaped as Go's `html` escapes (&, <, >, ', " as &amp;
# &lt; &gt; &#39; &#34;; a NUL byte, which JSON never leaves raw, as U+FFFD). That is
# markupsafe's escape: what transformers' jinja2 writes where a template joins tojson's (plain
# str) output to a `|safe` string, a Markup (functionary v3.1's definitions).
PYJSON_HTML = "ep.pyjson.html"


# "ep.pyjson.compact" keeps Go's compact separators and undoes only its five escapes: Python's
# json.dumps(value, ensure_ascii=False, separators=(",", ":")), which is also what a template
# writes that joins `tojson` of each scalar with "," and ":" itself (Kimi K3's json_sorted).
PYJSON_COMPACT = "ep.pyjson.compact"


def pyjson_compact(text: str) -> str:
    """Python's json.dumps(value, ensure_ascii=False, separators=(",", ":")) from Go's json.Marshal(value)."""
    return _pyjson_walk(text, compact=True)[0]


JSON_HELPERS = _pyjson_texts() | _pyjson_texts(PYJSON_HTML, escape=True) | _pyjson_texts(PYJSON_COMPACT, compact=True)


# ----------------------------------------------------------------- ASCII JSON, as tojson(ensure_ascii=True)
# "ep.pyjson_a" writes json.dumps(value, ensure_ascii=True) (Reka Edge): as "ep.pyjson", but inside
# strings every character beyond ASCII as \uXXXX (lowercase hex; above U+FFFF as its UTF-16
# surrogate pair) and U+2028/U+2029 left escaped. Go templates have no arithmetic: a character's
# UTF-8 bytes are written in binary (printf "%08b"), the code point's (or the surrogates') bits cut
# out of them, and each group of four bits found among the 16 (printf "%04b") and written in hex;
# above U+FFFF, the plane less one is found the same way among 17. Those searches loop with range
# over an integer (Go 1.24): taken only into TEMPLATEs that read .Thinking (chat.tools.layout, ToolLayout.loops).
PYJSON_ASCII = "ep.pyjson_a"
_ASCII_UNESCAPE = {k: v for k, v in _UNESCAPE.items() if v.isascii()}


def _ascii_texts() -> dict[str, str]:
    n, inside, u16, hex4 = (json.dumps(x) for x in (PYJSON_ASCII, PYJSON_ASCII + ".s", PYJSON_ASCII + ".u",
                                                    PYJSON_ASCII + ".x"))
    out = _pyjson_texts(PYJSON_ASCII)[PYJSON_ASCII]  # outside strings as "ep.pyjson"
    run = ["{{ $n := 0 }}{{ $stop := false }}"]
    for k in range(_RUN):  # the plain ASCII run at the start, up to 8 bytes
        run.append(f'{{{{ if and (not $stop) (gt (len .) {k}) (not (eq (slice . {k} {k + 1}) "\\"" "\\\\")) '
                   f'(lt (index . {k}) 127) }}}}{{{{ $n = {k + 1} }}}}{{{{ else }}}}{{{{ $stop = true }}}}{{{{ end }}}}')
    unescape = ("{{ if ge (len .) 6 }}{{ $u := slice . 0 6 }}"
                + "".join(f'{{{{ if eq $u {json.dumps(esc)} }}}}{{{{ $n = 6 }}}}{{{{ $e = {json.dumps(char)} }}}}{{{{ end }}}}'
                          for esc, char in _ASCII_UNESCAPE.items()) + "{{ end }}")
    bits = '(slice (printf "%08b" (index . {})) 2)'
    beyond = ('{{ if ge (index . 0) 127 }}{{ $b0 := printf "%08b" (index . 0) }}'
              f'{{{{ if lt (index . 0) 128 }}}}{{{{ $n = 1 }}}}{{{{ template {u16} (print "00000000" $b0) }}}}'
              f'{{{{ else if lt (index . 0) 224 }}}}{{{{ $n = 2 }}}}{{{{ template {u16} (print "00000" (slice $b0 3) {bits.format(1)}) }}}}'
              f'{{{{ else if lt (index . 0) 240 }}}}{{{{ $n = 3 }}}}{{{{ template {u16} (print (slice $b0 4) {bits.format(1)} '
              f'{bits.format(2)}) }}}}'
              '{{ else }}{{ $n = 4 }}{{ $b1 := printf "%08b" (index . 1) }}{{ $b2 := printf "%08b" (index . 2) }}'
              '{{ $u := print (slice $b0 5) (slice $b1 2 4) }}{{ $w := "" }}{{ $prev := "" }}{{ range $m := 17 }}'
              '{{ if eq (printf "%05b" $m) $u }}{{ $w = $prev }}{{ end }}{{ $prev = printf "%04b" $m }}{{ end }}'
              f'{{{{ template {u16} (print "110110" $w (slice $b1 4) (slice $b2 2 4)) }}}}'
              f'{{{{ template {u16} (print "110111" (slice $b2 4) {bits.format(3)}) }}}}{{{{ end }}}}'
              f'{{{{ template {inside} (slice . $n) }}}}{{{{ end }}}}')
    string = (f'{{{{- define {inside} }}}}{{{{ if . }}}}' + "".join(run)
              + f'{{{{ if $n }}}}{{{{ slice . 0 $n }}}}{{{{ template {inside} (slice . $n) }}}}{{{{ end }}}}'
              + '{{ if not $n }}{{ $c := slice . 0 1 }}'
              + f'{{{{ if eq $c "\\"" }}}}"{{{{ template {n} (slice . 1) }}}}{{{{ end }}}}'
              + '{{ if and (eq $c "\\\\") (ge (len .) 2) }}{{ $n = 2 }}{{ $e := slice . 0 2 }}' + unescape
              + f'{{{{ $e }}}}{{{{ template {inside} (slice . $n) }}}}{{{{ end }}}}' + beyond
              + '{{ end }}{{ end }}{{ end }}')
    code = (f'{{{{- define {u16} }}}}\\u{{{{ template {hex4} (slice . 0 4) }}}}{{{{ template {hex4} (slice . 4 8) }}}}'
            f'{{{{ template {hex4} (slice . 8 12) }}}}{{{{ template {hex4} (slice . 12 16) }}}}{{{{ end }}}}')
    nibble = (f'{{{{- define {hex4} }}}}{{{{ range $m := 16 }}}}{{{{ if eq (printf "%04b" $m) $ }}}}{{{{ printf "%x" $m }}}}'
              '{{ end }}{{ end }}{{ end }}')
    return {PYJSON_ASCII: out, PYJSON_ASCII + ".s": string, PYJSON_ASCII + ".u": code, PYJSON_ASCII + ".x": nibble}


def pyjson_ascii(text: str) -> str:
    """Python's json.dumps(value, ensure_ascii=True) from Go's json.Marshal(value)."""
    return "".join(c if c < "\x7f" else json.dumps(c)[1:-1] for c in pyjson(text))


ASCII_HELPERS = _ascii_texts()


# ----------------------------------------------------------------- indented JSON, as tojson(indent=N)
# "ep.pyjson:<N>" writes Go's compact JSON as json.dumps(value, indent=N, ensure_ascii=False):
# a newline and the indentation after each opening bracket and comma, before each closing one,
# ": " after keys, empty objects and lists kept as {} and []. The depth travels as one letter in
# front of the text (a for 0 ... p for 15: Go templates have no arithmetic, so each letter maps
# to the next and the previous by a flat list of ifs); deeper than 15 levels the helper stops
# with a template error (an index out of range) rather than write wrong text. One call per byte.
_INDENT = "ep.pyjson:"
_DEPTHS = "abcdefghijklmnop"


def indent_name(width: int) -> str:
    if not 0 < width <= 8:
        raise ValueError(f"indent {width} is not supported")
    return f"{_INDENT}{width}"


def tojson_indented(value: str, width: int, depth: int = 0) -> str:
    """Go text writing the Go value `value` as tojson(indent=width) does `depth` levels deep (an item
    of an indented list: 1), through the "ep.pyjson:<width>" helper."""
    return f'{{{{ template "{indent_name(width)}" (print "{_DEPTHS[depth]}" (json {value})) }}}}'


def _indent_texts(name: str) -> dict[str, str]:
    width = int(name[len(_INDENT):])
    quoted, inside = json.dumps(name), json.dumps(name + ".s")
    levels = []
    for k, d in enumerate(_DEPTHS):  # per depth: the next letters and the indentations around it
        up = _DEPTHS[k + 1] if k + 1 < len(_DEPTHS) else ""
        down = _DEPTHS[k - 1] if k else ""
        levels.append(f'{{{{ if eq $d "{d}" }}}}{{{{ $up = "{up}" }}}}{{{{ $down = "{down}" }}}}'
                      f'{{{{ $here = {json.dumps(" " * width * k)} }}}}{{{{ $in = {json.dumps(" " * width * (k + 1))} }}}}'
                      f'{{{{ $out = {json.dumps(" " * width * max(k - 1, 0))} }}}}{{{{ end }}}}')
    out = (f'{{{{- define {quoted} }}}}{{{{ $d := slice . 0 1 }}}}{{{{ $s := slice . 1 }}}}{{{{ if $s }}}}{{{{ $c := slice $s 0 1 }}}}'
           '{{ $up := "" }}{{ $down := "" }}{{ $here := "" }}{{ $in := "" }}{{ $out := "" }}' + "".join(levels)
           + '{{ $empty := and (ge (len $s) 2) (eq (slice $s 0 2) "{}" "[]") }}'
           + f'{{{{ if $empty }}}}{{{{ slice $s 0 2 }}}}{{{{ template {quoted} (print $d (slice $s 2)) }}}}{{{{ end }}}}'
           + '{{ if and (not $empty) (eq $c "{" "[") }}{{ if not $up }}{{ index "" 1 }}{{ end }}'
           + f'{{{{ $c }}}}\n{{{{ $in }}}}{{{{ template {quoted} (print $up (slice $s 1)) }}}}{{{{ end }}}}'
           + f'{{{{ if eq $c "}}" "]" }}}}\n{{{{ $out }}}}{{{{ $c }}}}{{{{ template {quoted} (print $down (slice $s 1)) }}}}{{{{ end }}}}'
           + f'{{{{ if eq $c "," }}}},\n{{{{ $here }}}}{{{{ template {quoted} (print $d (slice $s 1)) }}}}{{{{ end }}}}'
           + f'{{{{ if eq $c ":" }}}}: {{{{ template {quoted} (print $d (slice $s 1)) }}}}{{{{ end }}}}'
           + f'{{{{ if eq $c "\\"" }}}}"{{{{ template {inside} (print $d (slice $s 1)) }}}}{{{{ end }}}}'
           + f'{{{{ if not (or $empty (eq $c "{{" "[" "}}" "]" "," ":" "\\"")) }}}}{{{{ $c }}}}'
           + f'{{{{ template {quoted} (print $d (slice $s 1)) }}}}{{{{ end }}}}{{{{ end }}}}{{{{ end }}}}')
    string = (f'{{{{- define {inside} }}}}{{{{ $d := slice . 0 1 }}}}{{{{ $s := slice . 1 }}}}{{{{ if $s }}}}'
              '{{ $c := slice $s 0 1 }}'
              f'{{{{ if eq $c "\\"" }}}}"{{{{ template {quoted} (print $d (slice $s 1)) }}}}{{{{ end }}}}'
              '{{ if not (eq $c "\\"" "\\\\") }}{{ $c }}'
              f'{{{{ template {inside} (print $d (slice $s 1)) }}}}{{{{ end }}}}'
              '{{ if and (eq $c "\\\\") (ge (len $s) 2) }}{{ $n := 2 }}{{ $e := slice $s 0 2 }}'
              + _unescape_go("$s") +
              f'{{{{ $e }}}}{{{{ template {inside} (print $d (slice $s $n)) }}}}{{{{ end }}}}{{{{ end }}}}{{{{ end }}}}')
    return {name: out, name + ".s": string}


def _indent_walk(width: int, text: str) -> tuple[str, int]:
    """What "ep.pyjson:<width>" writes for `text` (a depth letter, then Go's compact JSON) and how
    many calls it nests; ValueError where the Go text stops with an error (too deep)."""
    if not text or text[0] not in _DEPTHS:
        raise ValueError("the text does not start with a depth letter")
    out: list[str] = []
    i, calls, depth, inside = 1, 1, _DEPTHS.index(text[0]), False
    while i < len(text):
        c = text[i]
        if inside:
            if c == '"':
                out.append(c)
                inside = False
                i += 1
            elif c == "\\":
                if i + 1 >= len(text):
                    break
                piece, n = _escape_at(text, i)
                out.append(piece)
                i += n
            else:
                out.append(c)
                i += 1
        elif text[i:i + 2] in ("{}", "[]"):
            out.append(text[i:i + 2])
            i += 2
        elif c in "{[":
            if depth + 1 >= len(_DEPTHS):
                raise ValueError("JSON nested deeper than the helper follows")
            depth += 1
            out.append(c + "\n" + " " * width * depth)
            i += 1
        elif c in "}]":
            depth -= 1
            out.append("\n" + " " * width * max(depth, 0) + c)
            i += 1
        elif c == ",":
            out.append(",\n" + " " * width * depth)
            i += 1
        elif c == ":":
            out.append(": ")
            i += 1
        else:
            out.append(c)
            inside = c == '"'
            i += 1
        calls += 1
    return "".join(out), calls


def _indent_native(name: str):
    width = int(name[len(_INDENT):])

    def run(text: str) -> str:
        try:
            return _indent_walk(width, text)[0]
        except ValueError as exc:
            from edgepack.errors import GoTemplateError
            raise GoTemplateError(f"template: {name}: error calling index: {exc}") from None
    return run


# ----------------------------------------------------------------- for the Go text of tool layouts

def tojson(value: str, escaped: bool = False, compact: bool = False, ensure_ascii: bool = False) -> str:
    """The Go action writing Jinja's `value | tojson` of the Go pipeline `value` (`escaped`: as
    markupsafe escapes it, PYJSON_HTML; `compact`: with "," and ":" alone, PYJSON_COMPACT;
    `ensure_ascii`: `tojson(ensure_ascii=True)`, PYJSON_ASCII)."""
    name = PYJSON_HTML if escaped else PYJSON_COMPACT if compact else PYJSON_ASCII if ensure_ascii else PYJSON
    return f'{{{{ template "{name}" (json {value}) }}}}'


def string_or_tojson(value: str) -> str:
    """The Go actions writing a decoded JSON value (`value`: a Go variable) as a template writes
    `v if v is string else v | tojson`: a string as it is, anything else as JSON."""
    return f'{{{{ if eq (printf "%T" {value}) "string" }}}}{{{{ {value} }}}}{{{{ else }}}}{tojson(value)}{{{{ end }}}}'


# ----------------------------------------------------------------- what edgepack.chat.gohelpers asks

def is_json_helper(name: str) -> bool:
    return name in JSON_HELPERS or name in ASCII_HELPERS or name.startswith(_INDENT)


def text_of(name: str) -> str | None:
    if name in JSON_HELPERS:
        return JSON_HELPERS[name]
    if name in ASCII_HELPERS:
        return ASCII_HELPERS[name]
    base = name.removesuffix(".s")
    try:
        if indent_name(int(base[len(_INDENT):])) != base:
            return None
    except ValueError:
        return None
    return _indent_texts(base)[name]


def native_of(name: str):
    """The Python function the helper is proven equal to (None for the in-string halves, which
    only their own helper calls)."""
    if name == PYJSON:
        return pyjson
    if name == PYJSON_HTML:
        return lambda text: go_html(pyjson(text))  # Go's own html, as the model runs it
    if name == PYJSON_COMPACT:
        return pyjson_compact
    if name == PYJSON_ASCII:
        return pyjson_ascii
    if name == _PYJSON_IN or name.endswith((".s", ".u", ".x")):
        return None
    return _indent_native(name)


def needs(name: str) -> tuple[str, ...]:
    if name.startswith(PYJSON_ASCII):
        return tuple(h for h in ASCII_HELPERS if h != name)
    base = name.removesuffix(".s")
    return (base + ".s",) if name == base else (base,)


def depth(name: str, value: str) -> int:
    if name in (PYJSON, PYJSON_HTML, PYJSON_COMPACT):
        return _pyjson_walk(value)[1]
    if name == PYJSON_ASCII:  # a character beyond ASCII is a step of its own, and two calls deeper at most
        return _pyjson_walk(value)[1] + sum(c >= "\x7f" for c in value) + 2
    try:
        return _indent_walk(int(name[len(_INDENT):]), value)[1]
    except ValueError:
        return 1  # the helper itself stops with a template error
