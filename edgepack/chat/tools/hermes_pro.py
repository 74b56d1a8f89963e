"""Go text for NousResearch Hermes 2 Pro / Hermes 3 tool_use templates (the row "hermes-pro" of
chat.tools.layouts): the definitions inside the fixed system turn, each as the source writes it by
hand: a JSON-like object whose description is a Python signature and an Args list built by its
json_to_python_type macro, then the parameters as tojson; calls as <tool_call> JSON in a turn of
their own (the turn's text left out), results in tool turns.

json_to_python_type, as the source's macro evaluates on what Ollama hands a template: a property's
one type string/number/integer/boolean is str/float/int/bool, "array" is list[Union[]] and "object"
dict (the macro looks at `json_spec|items` and `additionalProperties`, which Ollama's types never
carry), no type is Union[] and several types Union[...] of each. A type name outside these makes
the macro recurse without end in the source, which then renders nothing to compare.
"""

from __future__ import annotations

from edgepack.chat.gojson import tojson

_ONE_TYPE = ('{{ if eq $y "string" }}str{{ else if eq $y "number" }}float{{ else if eq $y "integer" }}int'
             '{{ else if eq $y "boolean" }}bool{{ else if eq $y "array" }}list[Union[]]{{ else if eq $y "object" }}dict'
             '{{ else }}Any{{ end }}')
_PY_TYPE = ('{{ if eq (len $p.Type) 1 }}{{ $y := index $p.Type 0 }}' + _ONE_TYPE + '{{ else }}Union['
            '{{ range $n, $y := $p.Type }}{{ if $n }},{{ end }}' + _ONE_TYPE + '{{ end }}]{{ end }}')

HERMES_PRO_DEFS = (
    '{{ range $k, $t := $.Tools }}{{ if $k }}\n{{ end }}{"type": "function", "function": {"name": "{{ $t.Function.Name }}", '
    '"description": "{{ $t.Function.Name }}({{ $sep := "" }}{{ range $n, $p := $t.Function.Parameters.Properties }}'
    '{{ $sep }}{{ $sep = ", " }}{{ $n }}: ' + _PY_TYPE + '{{ end }}) - {{ $t.Function.Description }}\n\n'
    '{{ $first := true }}{{ range $n, $p := $t.Function.Parameters.Properties }}{{ if $first }}    Args:\n{{ end }}'
    '{{ $first = false }}        {{ $n }}(' + _PY_TYPE + '): {{ template "ep.strip" $p.Description }}{{ end }}'
    '", "parameters": {{ if $t.Function.Parameters.Properties }}' + tojson("$t.Function.Parameters")
    + '{{ else }}{}{{ end }}}{{ end }}')

HERMES_PRO_CALLS = ('<|im_start|>assistant{{ range $c := .ToolCalls }}\n<tool_call>\n{"name": "{{ $c.Function.Name }}", '
                    '"arguments": ' + tojson("$c.Function.Arguments") + '}\n</tool_call>{{ end }}')

# A run of results in one tool turn, opened after a message that is not a result (none at the start)
# and closed at the end of the run, with no newline after it
HERMES_PRO_RESULT = ('{{ if and $prevRole (ne $prevRole "tool") }}<|im_start|>tool\n{{ end }}<tool_response>\n'
                     '{{ .Content }}\n</tool_response>{{ if $nextRole }}\n{{ end }}'
                     '{{ if ne $nextRole "tool" }}<|im_end|>{{ end }}')
