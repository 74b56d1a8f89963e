"""Go text for ByteDance Seed-OSS's tools (the row "seed-oss" of chat.tools.layouts, placed by
modelfiles/chat/families/seed-oss.gotmpl.j2): each definition written as a Python function with a
docstring, as the source's tools2doc macros write it, and calls as <seed:tool_call> XML whose
values are Jinja's `value | string` (a string as it is, anything else Python's str(): chat.gopystr)."""

from __future__ import annotations

# py_type of a property's type ($p.Type: a list, one name where the source has a string; a list
# of several, or none, is Any there too)
_PY_TYPE = ('{{ if eq (len $p.Type) 1 }}{{ $y := index $p.Type 0 }}{{ if eq $y "string" }}str'
            '{{ else if eq $y "number" "integer" }}int{{ else if eq $y "boolean" }}bool{{ else if eq $y "array" }}list'
            '{{ else }}Any{{ end }}{{ else }}Any{{ end }}')

# "def name(key: type,...):", the description trimmed, "Args:" with [必填] (required) or [选填] per
# property, then the instructions for calls. The source's "Returns:" needs a function's `returns`,
# which Ollama's tools do not have.
SEED_DEFS = (
    '{{ range $t := $.Tools }}{{ if eq $t.Type "function" }}\n\nFunction:\ndef {{ $t.Function.Name }}('
    '{{ $n := "" }}{{ range $k, $p := $t.Function.Parameters.Properties }}{{ if $n }},{{ end }}{{ $n = "," }}'
    '{{ $k }}: ' + _PY_TYPE + '{{ end }}):\n    """\n    {{ template "ep.strip" $t.Function.Description }}\n\n'
    '{{ if $t.Function.Parameters.Properties }}    Args:{{ range $k, $p := $t.Function.Parameters.Properties }}'
    '\n    - {{ $k }} (' + _PY_TYPE + '){{ $req := false }}{{ range $r := $t.Function.Parameters.Required }}'
    '{{ if eq $r $k }}{{ $req = true }}{{ end }}{{ end }}{{ if $req }} [必填]{{ else }} [选填]{{ end }}: '
    '{{ $p.Description }}{{ end }}\n{{ end }}\n    """{{ end }}{{ end }}\n'
    "工具调用请遵循如下格式:\n<seed:tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>"
    "value_1</parameter>\n<parameter=example_parameter_2>This is the value for the second parameter\nthat can span\n"
    "multiple lines</parameter>\n</function>\n</seed:tool_call>\n")

SEED_CALLS = ('{{ range $c := .ToolCalls }}\n<seed:tool_call>\n<function={{ $c.Function.Name }}>\n'
              '{{ range $k, $v := $c.Function.Arguments }}<parameter={{ $k }}>{{ if eq (printf "%T" $v) "string" }}{{ $v }}'
              '{{ else }}{{ template "ep.pystr" $v }}{{ end }}</parameter>\n{{ end }}</function>\n</seed:tool_call>{{ end }}')

# The system turn the source writes for tools when there is no system message
SEED_NO_SYSTEM = "You are Doubao, a helpful AI assistant. You may call one or more functions to assist with the user query."
