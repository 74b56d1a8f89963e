"""Go text for Cohere Command R+ tool_use (the row "command-r-plus" of chat.tools.layouts, placed by
modelfiles/chat/families/command-r-plus.gotmpl.j2): each definition as a Python function stub, as
the source's new_tool_parser macro writes it, calls as an Action JSON list (each call's arguments
as tojson(indent=4) indented by 8 more spaces), results as <results> system turns.

json_to_python_type as the source evaluates it on what Ollama hands a template: a property's one
type string/number/integer/boolean is str/float/int/bool, "array" List[Union[]] (`json_spec.items`
finds the dict's items method, not the key), no type Union[], several types Union[...] of each; an
"object" type, or a property without a description, makes the source fail, and a type name outside
these makes it recurse without end: then it renders nothing to compare, and Any is written here.
"""

from __future__ import annotations

from edgepack.chat.gojson import tojson_indented

_ONE_TYPE = ('{{ if eq $y "string" }}str{{ else if eq $y "number" }}float{{ else if eq $y "integer" }}int'
             '{{ else if eq $y "boolean" }}bool{{ else if eq $y "array" }}List[Union[]]{{ else }}Any{{ end }}')
_PY_TYPE = ('{{ if eq (len $p.Type) 1 }}{{ $y := index $p.Type 0 }}' + _ONE_TYPE + '{{ else }}Union['
            '{{ range $n, $y := $p.Type }}{{ if $n }},{{ end }}' + _ONE_TYPE + '{{ end }}]{{ end }}')
# whether property $n is in the tool's required list ($req)
_REQUIRED = '{{ $req := false }}{{ range $r := $t.Function.Parameters.Required }}{{ if eq $r $n }}{{ $req = true }}{{ end }}{{ end }}'

COMMAND_R_PLUS_DEFS = (
    '{{ range $k, $t := $.Tools }}{{ if $k }}\n\n{{ end }}```python\ndef {{ $t.Function.Name }}({{ $sep := "" }}'
    '{{ range $n, $p := $t.Function.Parameters.Properties }}{{ $sep }}{{ $sep = ", " }}{{ $n }}: ' + _REQUIRED
    + '{{ if $req }}' + _PY_TYPE + '{{ else }}Optional[' + _PY_TYPE + '] = None{{ end }}{{ end }}) -> List[Dict]:\n'
    '    """{{ $t.Function.Description }}{{ if $t.Function.Parameters.Properties }}\n\n    Args:\n        {{ $sep = "" }}'
    '{{ range $n, $p := $t.Function.Parameters.Properties }}{{ $sep }}{{ $sep = "\\n        " }}{{ $n }} ('
    + _REQUIRED + '{{ if $req }}' + _PY_TYPE + '{{ else }}Optional[' + _PY_TYPE + ']{{ end }}): {{ $p.Description }}'
    '{{ end }}{{ end }}\n    """\n    pass\n```{{ end }}')

COMMAND_R_PLUS_CALLS = (
    '\nAction:\n```json\n[\n{{ range $j, $c := .ToolCalls }}{{ if $j }},\n{{ end }}    {\n        "tool_name": '
    '"{{ $c.Function.Name }}",\n        "parameters": {{ if $c.Function.Arguments }}'
    + tojson_indented("$c.Function.Arguments", 4, depth=2) + '\n{{ else }}{}\n{{ end }}    }{{ end }}\n]```\n')

COMMAND_R_PLUS_RESULT = ('<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|><results>\n{{ template "ep.strip" .Content }}'
                         '</results><|END_OF_TURN_TOKEN|>')
