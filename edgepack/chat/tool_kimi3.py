"""Go text for Moonshot Kimi K3's tools (the row "kimi-k3" of chat.tool_layouts, placed by
modelfiles/chat/families/kimi-k3.gotmpl.j2), written from the source template's own macros.

Definitions: a tool-declare system message holding the tool list as the source's json_sorted
macro writes it: compact, every mapping's keys sorted (Ollama's tool structs written field by
field in sorted order, properties through chat.gojson's "ep.pyjson.sorted"). json_sorted sorts
with Jinja's dictsort, which ignores case; Go's maps sort by bytes, so property names that sort
differently once lowercased ("Zone" before "city") come out in another order.
Calls: a tools block after the response, each call numbered from 1 and each argument an
<|open|>argument key=... type=...<|sep|> tag, its value as it is when a string, else tojson.
Results: the run of tool messages starting at a tool message is written there; when every
result of the run answers a call of the latest assistant message by id, they come in the calls'
order (each call id once, all results answering it) named by the call, else in message order
named by their tool name (or, without one, by the call at their place). Results are numbered
from 1 after each assistant message. An empty id or tool name counts as none (Ollama leaves out
empty ones when it passes messages on).
"""

from __future__ import annotations

from edgepack.chat.gojson import string_or_tojson, tojson


def _attr(value: str) -> str:
    return f'{{{{ template "ep.attr" {value} }}}}'


def _compact(value: str) -> str:
    return tojson(value, compact=True)


_PARAMETERS = (
    '{{ $p := $t.Function.Parameters }}{{ "{" }}'
    '{{ if ne (json $p.Defs) "null" }}"$defs":' + _compact("$p.Defs") + ",{{ end }}"
    '{{ if ne (json $p.Items) "null" }}"items":' + _compact("$p.Items") + ",{{ end }}"
    '"properties":{{ if eq (json $p.Properties) "null" }}null{{ else }}{{ "{" }}{{ $s := "" }}'
    '{{ range $name, $v := $p.Properties }}{{ $s }}{{ $s = "," }}' + _compact("$name")
    + ':{{ template "ep.pyjson.sorted" $v }}{{ end }}{{ "}" }}{{ end }}'
    '{{ if $p.Required }},"required":' + _compact("$p.Required") + "{{ end }}"
    ',"type":' + _compact("$p.Type") + '{{ "}" }}')

K3_DEFS = (
    '<|open|>message role="system" type="tool-declare"<|sep|># Tools\nHere are the available tools, described in '
    "JSONSchema.\n\n```json\n[{{ range $k, $t := $.Tools }}{{ if $k }},{{ end }}"
    '{{ "{" }}"function":{{ "{" }}"description":' + _compact("$t.Function.Description")
    + ',"name":' + _compact("$t.Function.Name") + ',"parameters":' + _PARAMETERS + '{{ "}" }}'
    '{{ if ne (json $t.Items) "null" }},"items":' + _compact("$t.Items") + "{{ end }}"
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
