"""A Go template helper that writes a JSON value as nested XML elements, for Ollama TEMPLATEs.

MiniMax M3 writes a tool call's argument values with a recursive Jinja macro (`to_xml`): an
object as one <key>...</key> element per key whose value is not None, a list as one
<item>...</item> element per item, each tag led by the template's namespace token, True/False as
JSON (true/false), None as nothing, a string as it is and a number as Python's str(). Go's
text/template has no such function, so "ep.xml:<token>" writes it from the value as Ollama
decodes it (Go's `any`: a map with its keys sorted, a list, a string, a bool, nil or a float64),
calling itself for what an object or a list holds; printf "%T" tells the types apart.
Hand-written because no library gives Go templates this macro.

Where it differs from Python: a number is written as Go's JSON writes it (a float that is a
whole number as 18 where Python writes 18.0, as chat.gopystr says).
"""

from __future__ import annotations

import json

XML = "ep.xml:"


def xml_name(token: str) -> str:
    """The helper writing a value as elements whose tags `token` leads (MiniMax M3: "]<]minimax[>[")."""
    if not token or "{{" in token or "}}" in token:
        raise ValueError(f"token {token!r} cannot lead the tags of a Go template")
    return XML + token


def xml_text(name: str) -> str:
    """The Go define block of helper `name` (xml_name(token))."""
    token = name[len(XML):]
    quoted = json.dumps(name, ensure_ascii=False)
    return (f"{{{{- define {quoted} }}}}{{{{ $t := printf \"%T\" . }}}}"
            '{{ if eq $t "map[string]interface {}" }}{{ range $k, $v := . }}{{ if ne (printf "%T" $v) "<nil>" }}'
            f"{token}<{{{{ $k }}}}>{{{{ template {quoted} $v }}}}{token}</{{{{ $k }}}}>{{{{ end }}}}{{{{ end }}}}"
            '{{ else if eq $t "[]interface {}" }}{{ range $v := . }}'
            f"{token}<item>{{{{ template {quoted} $v }}}}{token}</item>{{{{ end }}}}"
            '{{ else if eq $t "bool" }}{{ if . }}true{{ else }}false{{ end }}{{ else if eq $t "string" }}{{ . }}'
            '{{ else if ne $t "<nil>" }}{{ json . }}{{ end }}{{ end }}')
