"""Go template helpers that write Python's str() of a JSON value, for Ollama TEMPLATEs.

Jinja's `value | string` of a tool-call argument that is an object or a list is Python's str():
{'a': 1.5, 'z': True}, strings inside it as repr() writes them. Go's text/template has no such
function, so "ep.pystr" writes it from the value as Ollama decodes it (Go's `any`: a map with its
keys sorted, a list, a string, a bool, nil or a float64), and "ep.pystr.s" writes a string as
repr() does: in single quotes unless it holds a ' and no ", backslashes, the quote, \\n, \\r and
\\t escaped, other control characters and the non-printable characters of NONPRINTABLE as
\\xNN or \\uNNNN. Hand-written because no library gives Go templates Python's repr.

Where it differs from Python (say so where it is used): numbers are Go's JSON (a float that is
a whole number is written 18 where Python writes 18.0), and non-printable characters outside
NONPRINTABLE (private use, unassigned code points, rarer format characters) are written as they
are where repr() escapes them. The string walk loops over byte offsets with
{{ range $i := len $ }} (text/template since Go 1.24; see gohelpers' "ep.after").
"""

from __future__ import annotations

import json

PYSTR = "ep.pystr"
PYSTR_S = "ep.pystr.s"

# Non-printable in Python's sense (str.isprintable() false) among the characters below U+10000
# that text commonly holds: C0 controls, DEL, C1 controls, no-break and other spaces but " ",
# soft hyphen, zero-width and direction marks, line/paragraph separators, the BOM.
_CANDIDATES = [*range(0x20), 0x7F, *range(0x80, 0x100), 0x1680, 0x180E, *range(0x2000, 0x2070), 0x3000, 0xFEFF,
               *range(0xFFF9, 0xFFFC)]
NONPRINTABLE = tuple(chr(c) for c in _CANDIDATES if not chr(c).isprintable() and chr(c) not in "\n\r\t")


def _escape(ch: str) -> str:
    c = ord(ch)
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def _string_text() -> str:
    scan = ('{{ $sq := false }}{{ $dq := false }}{{ range $i := len $ }}{{ $c := slice (slice $ $i) 0 1 }}'
            '{{ if eq $c "\'" }}{{ $sq = true }}{{ end }}{{ if eq $c "\\"" }}{{ $dq = true }}{{ end }}{{ end }}'
            '{{ $q := "\'" }}{{ if and $sq (not $dq) }}{{ $q = "\\"" }}{{ end }}{{ $q }}')
    branches = ['{{ if eq $c "\\\\" }}{{ $e = "\\\\\\\\" }}{{ else if eq $c $q }}{{ $e = print "\\\\" $q }}',
                '{{ else if eq $c "\\n" }}{{ $e = "\\\\n" }}{{ else if eq $c "\\r" }}{{ $e = "\\\\r" }}',
                '{{ else if eq $c "\\t" }}{{ $e = "\\\\t" }}']
    for ch in NONPRINTABLE:  # the character's UTF-8 bytes at this offset; later bytes skipped
        n = len(ch.encode("utf-8"))
        at = "$c" if n == 1 else f"(slice $r 0 {n})"
        guard = "" if n == 1 else f"(ge (len $r) {n}) "
        test = f"eq {at} {json.dumps(ch)}" if n == 1 else f"and {guard}(eq {at} {json.dumps(ch)})"
        skip = f'{{{{ $skip = "{"x" * (n - 1)}" }}}}' if n > 1 else ""
        branches.append(f"{{{{ else if {test} }}}}{{{{ $e = {json.dumps(_escape(ch))} }}}}{skip}")
    walk = ('{{ $skip := "" }}{{ range $i := len $ }}{{ if $skip }}{{ $skip = slice $skip 1 }}{{ else }}'
            '{{ $r := slice $ $i }}{{ $c := slice $r 0 1 }}{{ $e := $c }}' + "".join(branches)
            + "{{ end }}{{ $e }}{{ end }}{{ end }}{{ $q }}")
    return f'{{{{- define "{PYSTR_S}" }}}}' + scan + walk + "{{ end }}"


def _value_text() -> str:
    return (f'{{{{- define "{PYSTR}" }}}}{{{{ $t := printf "%T" . }}}}'
            f'{{{{ if eq $t "string" }}}}{{{{ template "{PYSTR_S}" . }}}}'
            '{{ else if eq $t "bool" }}{{ if . }}True{{ else }}False{{ end }}{{ else if eq $t "<nil>" }}None'
            '{{ else if eq $t "map[string]interface {}" }}{{ "{" }}{{ $n := "" }}{{ range $k, $v := . }}'
            f'{{{{ if $n }}}}, {{{{ end }}}}{{{{ $n = "," }}}}{{{{ template "{PYSTR_S}" $k }}}}: {{{{ template "{PYSTR}" $v }}}}'
            '{{ end }}{{ "}" }}{{ else if eq $t "[]interface {}" }}[{{ range $j, $v := . }}{{ if $j }}, {{ end }}'
            f'{{{{ template "{PYSTR}" $v }}}}{{{{ end }}}}]{{{{ else }}}}{{{{ json . }}}}{{{{ end }}}}{{{{ end }}}}')


PYSTR_HELPERS = {PYSTR: _value_text(), PYSTR_S: _string_text()}
PYSTR_NEEDS = {PYSTR: (PYSTR_S,)}
