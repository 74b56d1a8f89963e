"""Go text for Moonshot Kimi K3's tools (the row "kimi-k3" of chat.tools.layouts, placed by
modelfiles/chat/families/kimi-k3.gotmpl.j2), written from the source template's own macros.

Definitions: a tool-declare system message holding the tool list as the source's json_sorted
macro writes it: compact, every mapping's keys in Jinja's dictsort order (lower-cased; Go maps
range by bytes, so chat.tools.gemma's dictsort_range picks them pass by pass when a key has an
upper-case letter). Ollama's tool structs are written field by field in that order ("ep.kimi3.prop"
for a property, nested properties through ToolPropertiesMap's ToMap), decoded JSON values
(items, enum, $defs) by "ep.kimi3.value". Where it differs from the source: lower case is ASCII's
(Python's lower() also changes É to é), and numbers are Go's JSON text (0.00001 where Python
writes 1e-05).
Calls: a tools block after the response, each call numbered from 1 and each argument an
<|open|>argument key=... type=...<|sep|> tag, its value as it is when a string, else tojson.
Results: the run of tool messages starting at a tool message is written there; when every
result of the run answers a call of the latest assistant message by id, they come in the calls'
order (each call id once, all results answering it) named by the call, else in message order
named by their tool name (or, without one, by the call at their place). Results are numbered
from 1 after each assistant message. An empty id or tool name counts as none (Ollama leaves out
empty ones when it passes messages on).
The helpers loop with {{ range $i := len $ }} (Go 1.24): the TEMPLATE reads .Thinking. A request
with tools needs Ollama 0.13.5 or later (ToolProperty's Properties; before, the TEMPLATE stops with
an error), a tool with an object-typed property 0.14 or later (ToolPropertiesMap's ToMap).
"""

from __future__ import annotations

from edgepack.chat.gojson import string_or_tojson, tojson
from edgepack.chat.tools.gemma import dictsort_range


def _attr(value: str) -> str:
    return f'{{{{ template "ep.attr" {value} }}}}'


def _compact(value: str) -> str:
    return tojson(value, compact=True)


def _entries(mapping: str, helper: str) -> str:
    """{"key":value,...} of a Go map, keys in dictsort's order, each value through `helper`."""
    return ('{{ "{" }}{{ $n := "" }}' + dictsort_range(mapping, '{{ $n }}{{ $n = "," }}' + _compact("$k")
                                                       + f':{{{{ template "{helper}" $v }}}}') + '{{ "}" }}')


VALUE, PROPERTY = "ep.kimi3.value", "ep.kimi3.prop"
# a decoded JSON value: a map's keys in dictsort's order, a list's items in theirs, the rest as tojson
_VALUE_TEXT = (f'{{{{- define "{VALUE}" }}}}{{{{ $y := printf "%T" . }}}}{{{{ if eq $y "map[string]interface {{}}" }}}}'
               + _entries(".", VALUE) + f'{{{{ else if eq $y "[]interface {{}}" }}}}[{{{{ range $j, $x := . }}}}'
               f'{{{{ if $j }}}},{{{{ end }}}}{{{{ template "{VALUE}" $x }}}}{{{{ end }}}}]{{{{ else }}}}'
               + _compact(".") + "{{ end }}{{ end }}")


def _field(key: str, value: str, test: str = "", helper: str = "") -> str:
    written = f'{{{{ template "{helper}" {value} }}}}' if helper else _compact(value)
    return f'{{{{ if {test or value} }}}}{{{{ $s }}}}"{key}":{written}{{{{ $s = "," }}}}{{{{ end }}}}'


# one of Ollama's tool properties (api.ToolProperty), its fields in sorted order, empty ones left
# out as Go's json leaves them out
_PROPERTY_TEXT = (
    f'{{{{- define "{PROPERTY}" }}}}{{{{ "{{" }}}}{{{{ $s := "" }}}}'
    f'{{{{ if .AnyOf }}}}"anyOf":[{{{{ range $j, $a := .AnyOf }}}}{{{{ if $j }}}},{{{{ end }}}}'
    f'{{{{ template "{PROPERTY}" $a }}}}{{{{ end }}}}]{{{{ $s = "," }}}}{{{{ end }}}}'
    + _field("description", ".Description") + _field("enum", ".Enum", helper=VALUE)
    + _field("items", ".Items", 'ne (json .Items) "null"', helper=VALUE)
    + '{{ if ne (json .Properties) "null" }}{{ $s }}"properties":' + _entries(".Properties.ToMap", PROPERTY)
    + '{{ $s = "," }}{{ end }}' + _field("required", ".Required") + _field("type", ".Type") + '{{ "}" }}{{ end }}')
KIMI3_HELPERS = {VALUE: _VALUE_TEXT, PROPERTY: _PROPERTY_TEXT}
KIMI3_NEEDS = {VALUE: ("ep.pyjson.compact", "ep.pyjson.compact.s"), PROPERTY: (VALUE, "ep.pyjson.compact",
                                                                                 "ep.pyjson.compact.s")}

_PARAMETERS = (
    '{{ $p := $t.Function.Parameters }}{{ "{" }}'
    f'{{{{ if ne (json $p.Defs) "null" }}}}"$defs":{{{{ template "{VALUE}" $p.Defs }}}},{{{{ end }}}}'
    f'{{{{ if ne (json $p.Items) "null" }}}}"items":{{{{ template "{VALUE}" $p.Items }}}},{{{{ end }}}}'
    '"properties":{{ if eq (json $p.Properties) "null" }}null{{ else }}' + _entries("$p.Properties", PROPERTY)
    + '{{ end }}{{ if $p.Required }},"required":' + _compact("$p.Required") + "{{ end }}"
    ',"type":' + _compact("$p.Type") + '{{ "}" }}')

K3_DEFS = (
    '<|open|>message role="system" type="tool-declare"<|sep|># Tools\nHere are the available tools, described in '
    "JSONSchema.\n\n```json\n[{{ range $k, $t := $.Tools }}{{ if $k }},{{ end }}"
    '{{ "{" }}"function":{{ "{" }}"description":' + _compact("$t.Function.Description")
    + ',"name":' + _compact("$t.Function.Name") + ',"parameters":' + _PARAMETERS + '{{ "}" }}'
    f'{{{{ if ne (json $t.Items) "null" }}}},"items":{{{{ template "{VALUE}" $t.Items }}}}{{{{ end }}}}'
    ',"type":' + _compact("$t.Type") + '{{ "}" }}{{ end }}]\n```<|close|>message<|sep|><|end_of_msg|>')

# xtml_type of a decoded JSON value ($v)
_TYPE = ('{{ $y := printf "%T" $v }}{{ if eq $y "bool" }}boolean{{ else if eq $y "<nil>" }}null'
         '{{ else if eq $y "float64" }}number{{ else if eq $y "string" }}string'
         '{{ else if eq $y "map[string]interface {}" }}object{{ else }}array{{ end }}')

K3_CALLS = (
    '<|open|>tools<|sep|>{{ $ci := "" }}{{ range $c := .ToolCalls }}{{ $ci = print $ci "x" }}'
    '<|open|>call tool="' + _attr("$c.Function.Name") + '" index="{{ len $ci }}"<|sep|>'
    '{{ range $k, $v := $c.Function.Arguments }}<|open|>argument key="' + _attr("$k") + '" type="' + _TYPE
    + '"<|sep|>' + string_or_tojson("$v") + "<|close|>argument<|sep|>{{ end }}<|close|>call<|sep|>{{ end }}"
    "<|close|>tools<|sep|>")


def _result(name: str) -> str:
    return ('{{ $n = print $n "x" }}<|open|>message role="tool" tool="' + _attr(name)
            + '" index="{{ len $n }}"<|sep|>{{ $m.Content }}<|close|>message<|sep|><|end_of_msg|>')


_RUN = '{{ range $m := slice $.Messages $i }}{{ if ne $m.Role "tool" }}{{ break }}{{ end }}'
K3_RESULT = (
    # only the first tool message of a run writes (the whole run)
    '{{ $prev := "" }}{{ range $m := slice $.Messages 0 $i }}{{ $prev = $m.Role }}{{ end }}{{ if ne $prev "tool" }}'
    # the latest assistant message's calls, and the results written since it
    '{{ $calls := .ToolCalls }}{{ $n := "" }}{{ range $m := slice $.Messages 0 $i }}'
    '{{ if eq $m.Role "assistant" }}{{ $calls = $m.ToolCalls }}{{ $n = "" }}'
    '{{ else if eq $m.Role "tool" }}{{ $n = print $n "x" }}{{ end }}{{ end }}'
    # whether every result of the run answers one of them by id
    '{{ $resolved := true }}' + _RUN + '{{ $found := false }}{{ if $m.ToolCallID }}{{ range $c := $calls }}'
    '{{ if and $c.ID (eq $c.ID $m.ToolCallID) }}{{ $found = true }}{{ end }}{{ end }}{{ end }}'
    '{{ if not $found }}{{ $resolved = false }}{{ end }}{{ end }}'
    '{{ if $resolved }}{{ range $k, $c := $calls }}{{ $seen := false }}{{ range $d := slice $calls 0 $k }}'
    '{{ if eq $d.ID $c.ID }}{{ $seen = true }}{{ end }}{{ end }}{{ if and $c.ID (not $seen) }}'
    + _RUN + '{{ if eq $m.ToolCallID $c.ID }}' + _result("$c.Function.Name") + '{{ end }}{{ end }}{{ end }}{{ end }}'
    '{{ else }}' + _RUN + '{{ $name := $m.ToolName }}{{ if not $name }}{{ range $k, $c := $calls }}'
    '{{ if eq $k (len $n) }}{{ $name = $c.Function.Name }}{{ end }}{{ end }}{{ end }}' + _result("$name")
    + "{{ end }}{{ end }}{{ end }}")
