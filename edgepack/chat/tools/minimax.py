"""Go text for MiniMax's tools (the rows "minimax-m3", "minimax-m2" and "minimax-m1" of
chat.tools.layouts, placed by modelfiles/chat/families/minimax-m3.gotmpl.j2, minimax-m2.gotmpl.j2
and minimax-m1.gotmpl.j2)."""

from __future__ import annotations

from edgepack.chat.gojson import string_or_tojson, tojson
from edgepack.chat.goxml import xml_name

# M2: each definition's function as tojson in a <tool> line, at the end of the system turn
M2_DEFS = ("\n\n# Tools\nYou may call one or more tools to assist with the user query.\nHere are the tools available in "
           "JSONSchema format:\n\n<tools>\n{{ range $t := $.Tools }}<tool>"
           f"{tojson('$t.Function')}</tool>\n{{{{ end }}}}</tools>\n\n"
           "When making tool calls, use XML format to invoke tools and pass parameters:\n\n<minimax:tool_call>\n"
           '<invoke name="tool-name-1">\n<parameter name="param-key-1">param-value-1</parameter>\n'
           '<parameter name="param-key-2">param-value-2</parameter>\n...\n</invoke>\n</minimax:tool_call>')
# M2: <invoke> blocks after the text, a string value as it is, any other as JSON
M2_CALLS = ('\n<minimax:tool_call>\n{{ range $c := .ToolCalls }}<invoke name="{{ $c.Function.Name }}">\n'
            '{{ range $k, $v := $c.Function.Arguments }}<parameter name="{{ $k }}">' + string_or_tojson("$v")
            + '</parameter>\n{{ end }}</invoke>\n{{ end }}'
            "</minimax:tool_call>")
# M2: <response> lines, one ]~b]tool turn per run of tool messages
M2_RESULT = ('{{ if ne $prevRole "tool" }}]~b]tool{{ end }}\n<response>{{ .Content }}</response>'
             '{{ if ne $nextRole "tool" }}[e~[\n{{ end }}')

# M1: a tool_setting system turn, each tool as tojson on a line (its lines: chat.tools.layout.each_tool)
M1_DEFS_HEAD = "<beginning_of_sentence>system tool_setting=tools\nYou are provided with these tools:\n<tools>\n"
M1_DEFS_TAIL = ("</tools>\n\nIf you need to call tools, please respond with <tool_calls></tool_calls> XML tags, and "
                "provide tool-name and json-object of arguments, following the format below:\n<tool_calls>\n"
                '{"name": <tool-name>, "arguments": <args-json-object>}\n...\n</tool_calls><end_of_sentence>\n')
# M1: the calls, one JSON object a line, in place of the turn's text
M1_CALLS = ('<tool_calls>\n{{ range $c := .ToolCalls }}{"name": "{{ $c.Function.Name }}", "arguments": '
            f'{tojson("$c.Function.Arguments")}}}\n{{{{ end }}}}</tool_calls>')
# M1: each result in a tool turn of its own (the newline as an action: the family template trims before its next action)
M1_RESULT = '<beginning_of_sentence>tool name=tools\ntool result: {{ .Content }}\n\n<end_of_sentence>{{ "\\n" }}'

# M3: tags led by the namespace token; each definition's function as tojson in a <tool> line,
# after the developer turn's text, then the call format
M3_NS = "]<]minimax[>["
M3_XML = xml_name(M3_NS)
M3_DEFS = ("\n\n# Tools\nYou may call one or more tools to assist with the user query.\nHere are the tools available in "
           "JSONSchema format:\n\n<tools>\n{{ range $t := $.Tools }}<tool>"
           f"{tojson('$t.Function')}</tool>\n{{{{ end }}}}</tools>\n\n"
           f"To call tools, wrap all invocations in a single {M3_NS}<tool_call>{M3_NS}</tool_call> block. Parameter "
           "values containing nested objects or arrays are recursively expanded into XML elements. Example:\n\n"
           f"{M3_NS}<tool_call>\n"
           + "".join(M3_NS + part for part in (
               '<invoke name="tool-name-1">', f"<param-1>value-1{M3_NS}</param-1>", "<param-2>", "<item>",
               f"<key-a>val-a{M3_NS}</key-a>", f"<key-b>val-b{M3_NS}</key-b>", "</item>", "</param-2>", "</invoke>\n",
               '<invoke name="tool-name-2">', f"<param-1>value-1{M3_NS}</param-1>", "</invoke>\n"))
           + f"{M3_NS}</tool_call>")
# M3: <invoke> blocks after the text, each argument not None as an element, its value through the
# source's to_xml macro (chat.goxml)
M3_CALLS = (f"{M3_NS}<tool_call>\n{{{{ range $c := .ToolCalls }}}}{M3_NS}<invoke name=\"{{{{ $c.Function.Name }}}}\">"
            '{{ range $k, $v := $c.Function.Arguments }}{{ if ne (printf "%T" $v) "<nil>" }}'
            f'{M3_NS}<{{{{ $k }}}}>{{{{ template "{M3_XML}" $v }}}}{M3_NS}</{{{{ $k }}}}>{{{{ end }}}}{{{{ end }}}}'
            f"{M3_NS}</invoke>\n{{{{ end }}}}{M3_NS}</tool_call>")
