"""Go text for DeepSeek V3.2 and V4's DSML tools (the rows "deepseek-v3.2-dsml" and "deepseek-v4-dsml"
of chat.tools.layouts, placed by modelfiles/chat/families/deepseek-v3.2.gotmpl.j2 and deepseek-v4.gotmpl.j2):
the definitions as a header and each tool's function as tojson on a line of its own, after the system
text; calls as DSML invoke/parameter blocks, a string value as it is with string="true", any other as
tojson with string="false" (Go's decoded JSON types told apart with printf "%T", as chat.gojson's
string_or_tojson does). V3.2 gathers a call turn's results in one <function_results> block, matched
to the calls by order; V4 writes each result as <tool_result> in a user turn."""

from __future__ import annotations

from edgepack.chat.gojson import tojson

DSML = "｜DSML｜"

# What follows the definitions, per version, and the header before them (the source's tools_header
# and tools_footer, with its dsml_token and thinking tokens written out).
_V32_HEADER = (
    "## Tools\n\nYou have access to a set of tools you can use to answer the user's question.\n"
    f'You can invoke functions by writing a "<{DSML}function_calls>" block like the following as part of your '
    f"reply to the user:\n<{DSML}function_calls>\n<{DSML}invoke name=\"$FUNCTION_NAME\">\n"
    f'<{DSML}parameter name="$PARAMETER_NAME" string="true|false">$PARAMETER_VALUE</{DSML}parameter>\n...\n'
    f'</{DSML}invoke>\n<{DSML}invoke name="$FUNCTION_NAME2">\n...\n</{DSML}invoke>\n</{DSML}function_calls>\n\n'
    "String and scalar parameters should be specified as is without any escaping or quotes, while lists and "
    'objects should use JSON format. The "string" attribute should be set to "true" for string type parameters '
    'and "false" for other types (numbers, booleans, arrays, objects).\n\nIf the thinking_mode is enabled, then '
    "after function results you should strongly consider outputting a thinking block. Here is an example:\n\n"
    f"<{DSML}function_calls>\n...\n</{DSML}function_calls>\n\n<function_results>\n...\n</function_results>\n\n"
    "<think>...thinking about results</think>\n\nHere are the functions available in JSONSchema format:\n"
    "<functions>\n"
)
_V4_HEADER = (
    "## Tools\n\nYou have access to a set of tools to help answer the user's question. You can invoke tools by "
    f'writing a "<{DSML}tool_calls>" block like the following:\n\n<{DSML}tool_calls>\n'
    f'<{DSML}invoke name="$TOOL_NAME">\n<{DSML}parameter name="$PARAMETER_NAME" string="true|false">'
    f"$PARAMETER_VALUE</{DSML}parameter>\n...\n</{DSML}invoke>\n<{DSML}invoke name=\"$TOOL_NAME2\">\n...\n"
    f"</{DSML}invoke>\n</{DSML}tool_calls>\n\n"
    'String parameters should be specified as is and set `string="true"`. For all other types (numbers, '
    'booleans, arrays, objects), pass the value in JSON format and set `string="false"`.\n\n'
    "If thinking_mode is enabled (triggered by <think>), you MUST output your complete reasoning inside "
    "<think>...</think> BEFORE any tool calls or final response.\n\nOtherwise, output directly after </think> "
    "with tool calls or final response.\n\n### Available Tool Schemas\n\n"
)
_V4_FOOTER = "\nYou MUST strictly follow the above defined tool name and parameter schemas to invoke tool calls.\n"

# each function tool's definition as tojson, then a newline
_SCHEMAS = '{{ range $t := $.Tools }}{{ if eq $t.Type "function" }}' + tojson("$t.Function") + "\n{{ end }}{{ end }}"
V32_DEFS = _V32_HEADER + _SCHEMAS + "</functions>\n"
V4_DEFS = _V4_HEADER + _SCHEMAS + _V4_FOOTER


def _calls(block: str, empty_args_line: bool) -> str:
    """A call turn's <DSML block>: per call an invoke, per argument (keys sorted, as a Go map ranges) a
    parameter; V4 writes an empty line for a call without arguments."""
    value = ('{{ if eq (printf "%T" $v) "string" }}true">{{ $v }}{{ else }}false">' + tojson("$v") + "{{ end }}")
    empty = "{{ if not $c.Function.Arguments }}\n{{ end }}" if empty_args_line else ""
    return (f"\n\n<{DSML}{block}>\n{{{{ range $c := .ToolCalls }}}}<{DSML}invoke name=\"{{{{ $c.Function.Name }}}}\">\n"
            f'{{{{ range $k, $v := $c.Function.Arguments }}}}<{DSML}parameter name="{{{{ $k }}}}" string="{value}'
            f"</{DSML}parameter>\n{{{{ end }}}}{empty}</{DSML}invoke>\n{{{{ end }}}}</{DSML}{block}>")


V32_CALLS = _calls("function_calls", empty_args_line=False)
V4_CALLS = _calls("tool_calls", empty_args_line=True)

# V3.2: a result's place is its distance from the last call turn before it (call_order in the source,
# counted here as a string of one letter per message since); the first opens <function_results>, the
# one whose place is that turn's number of calls closes it, and the family template's $pending then
# says the next assistant turn follows results ("\n\n" instead of <｜Assistant｜>). With no call turn
# before it, nothing closes the block: the source counts the calls of messages[-1] then, which only
# a final call turn has (a prefill, which Ollama continues and transformers cuts before its calls).
V32_RESULT = ('{{ $since := "" }}{{ $calls := 0 }}{{ range $m := slice $.Messages 0 $i }}'
              '{{ if and (eq $m.Role "assistant") $m.ToolCalls }}{{ $since = "" }}{{ $calls = len $m.ToolCalls }}'
              '{{ else }}{{ $since = print $since "x" }}{{ end }}{{ end }}'
              "{{ if not $since }}\n\n<function_results>{{ end }}\n<result>{{ .Content }}</result>"
              '{{ if eq (len (print $since "x")) $calls }}\n</function_results>{{ $pending = "tool" }}{{ end }}')
# V4: a result is user text (the family template's $inUser: a blank line within a user turn)
V4_RESULT = ('{{ if $inUser }}{{ "\\n\\n" }}{{ else }}<｜User｜>{{ $inUser = true }}{{ end }}'
             "<tool_result>{{ .Content }}</tool_result>")
