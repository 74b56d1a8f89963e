"""Go text for NVIDIA Nemotron 3 Nano's tools (the row "nemotron3" of chat.tools.layouts, placed by
modelfiles/chat/families/nemotron3.gotmpl.j2; Nemotron Nano v2's, the row "nemotron-nano-v2", at the
end): each definition as XML, as the source's loop and its
render_extra_keys macro write it (a property's name, type, description and enum, then its other
keys in the order Ollama's structs write them; the parameters' other keys, then `required`), calls
as <function=...> XML with one <parameter=...> per argument (keys sorted, as a Go map ranges)."""

from __future__ import annotations

import json

from edgepack.chat.gojson import tojson


def _extra(owner: str, fields: tuple[tuple[str, str], ...]) -> str:
    """The keys render_extra_keys writes, each as <key>tojson</key> when the field is set."""
    return "".join(f"{{{{ if {owner}.{go} }}}}\n<{key}>{tojson(f'{owner}.{go}')}</{key}>{{{{ end }}}}" for go, key in fields)


_PROPERTY = (
    "{{ range $k, $p := $t.Function.Parameters.Properties }}\n<parameter>\n<name>{{ $k }}</name>"
    # `type | string`: one type as it is, several as Python writes a list of strings
    "{{ if $p.Type }}\n<type>{{ if eq (len $p.Type) 1 }}{{ index $p.Type 0 }}{{ else }}["
    "{{ range $x, $y := $p.Type }}{{ if $x }}, {{ end }}'{{ $y }}'{{ end }}]{{ end }}</type>{{ end }}"
    '{{ if $p.Description }}\n<description>{{ template "ep.strip" $p.Description }}</description>{{ end }}'
    + f"{{{{ if $p.Enum }}}}\n<enum>{tojson('$p.Enum')}</enum>{{{{ end }}}}"
    + _extra("$p", (("AnyOf", "anyOf"), ("Items", "items"), ("Properties", "properties"), ("Required", "required")))
    + "\n</parameter>{{ end }}")

NEMOTRON_DEFS = (
    "# Tools\n\nYou have access to the following functions:\n\n<tools>{{ range $t := $.Tools }}\n<function>\n"
    '<name>{{ $t.Function.Name }}</name>\n<description>{{ template "ep.strip" $t.Function.Description }}</description>'
    "\n<parameters>" + _PROPERTY + _extra("$t.Function.Parameters", (("Defs", "$defs"), ("Items", "items")))
    + f"{{{{ if $t.Function.Parameters.Required }}}}\n<required>{tojson('$t.Function.Parameters.Required')}</required>"
    "{{ end }}\n</parameters>\n</function>{{ end }}\n</tools>\n\nIf you choose to call a function ONLY reply in the "
    "following format with NO suffix:\n\n<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>"
    "\nvalue_1\n</parameter>\n<parameter=example_parameter_2>\nThis is the value for the second parameter\nthat can span"
    "\nmultiple lines\n</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\nReminder:\n- Function calls MUST follow "
    "the specified format: an inner <function=...></function> block must be nested within <tool_call></tool_call> XML "
    "tags\n- Required parameters MUST be specified\n- You may provide optional reasoning for your function call in "
    "natural language BEFORE the function call, but NOT after\n- If there is no function call available, answer the "
    "question like normal with your current knowledge and do not tell the user about function calls\n</IMPORTANT>")

# A result opens a user turn after a message of the source's loop (the first system message is not
# one) that is not a result, and closes it before a message that is not one, or at the end.
NEMOTRON_RESULT = (
    '{{ $loopPrev := "" }}{{ range $j, $m := slice $.Messages 0 $i }}{{ if or $j (ne $m.Role "system") }}'
    '{{ $loopPrev = $m.Role }}{{ end }}{{ end }}{{ if and $loopPrev (ne $loopPrev "tool") }}<|im_start|>user\n{{ end }}'
    '<tool_response>\n{{ .Content }}\n</tool_response>\n{{ if ne $nextRole "tool" }}<|im_end|>\n{{ end }}')


# Nemotron Nano v2: the definitions (each tool's function as tojson, joined by ", ") and the fixed
# instructions after them; its example calls hold "{{", so they are one Go string action.
NANO_V2_DEFS = (
    "You can use the following tools to assist the user if required:\n<AVAILABLE_TOOLS>["
    f"{{{{ range $k, $t := $.Tools }}}}{{{{ if $k }}}}, {{{{ end }}}}{tojson('$t.Function')}{{{{ end }}}}"
    "]</AVAILABLE_TOOLS>\n\n{{ " + json.dumps(
        "If you decide to call any tool(s), use the following format:\n"
        '<TOOLCALL>[{{"name": "tool_name1", "arguments": "tool_args1"}}, '
        '{{"name": "tool_name2", "arguments": "tool_args2"}}]</TOOLCALL>\n\n'
        "The user will execute tool-calls and return responses from tool(s) in this format:\n"
        '<TOOL_RESPONSE>[{{"tool_response1"}}, {{"tool_response2"}}]</TOOL_RESPONSE>\n\n'
        "Based on the tool responses, you can call additional tools if needed, correct tool calls if any errors "
        "are found, or just respond to the user.", ensure_ascii=False) + " }}")
# A turn's calls (dot: the message): each as {"name": ..., "arguments": tojson}, joined by ", ".
NANO_V2_CALLS = ('<TOOLCALL>[{{ range $j, $c := .ToolCalls }}{{ if $j }}, {{ end }}{"name": "{{ $c.Function.Name }}", '
                 f'"arguments": {tojson("$c.Function.Arguments")}}}{{{{ end }}}}]</TOOLCALL>')
# Results: a run of them in one user turn, <TOOL_RESPONSE>[...] joined by ", ".
NANO_V2_RESULT = ('{{ if ne $prevRole "tool" }}<SPECIAL_11>User\n<TOOL_RESPONSE>[{{ end }}{{ .Content }}'
                  '{{ if eq $nextRole "tool" }}, {{ else }}]</TOOL_RESPONSE>{{ end }}')
