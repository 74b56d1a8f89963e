"""The table of tool layouts (chat.tools.layout.ToolLayout), one row per way a family writes tools.

edgepack.chat.tools.choice tries each layout whose markers occur in the source template and keeps
the first under which the Go TEMPLATE renders the tool conversations of TOOL_CHOICE, and still
every other choice conversation, exactly as transformers does (given the tools and calls as Ollama
hands them to a template: conversations.template_tool_values, template_messages). None kept, the
TEMPLATE has no .Tools and Ollama refuses tool requests on it. JSON is written with Go's `json`
through the "ep.pyjson" helper, which writes what Jinja's `tojson` writes (chat.gojson's tojson
and string_or_tojson write the Go actions).
Adding a layout: a row here, written from the source template's own tool code; the choice and the
proof conversations say whether it holds (long Go text for one family goes to a module of its own
in this package, as cohere, deepseek, gemma, kimi3 ... do).
Longer than ~400 lines as one job: it is one table, and a layout is found in one place.
"""

from __future__ import annotations

from edgepack.chat.gojson import string_or_tojson, tojson
from edgepack.chat.tools.functionary import FUNCTIONARY_V31_RULES
from edgepack.chat.tools.cohere import (COHERE_DEFS, COHERE_THINKING, R7B_TOOL_USE, cohere_call_turn,
                                       cohere_result)
from edgepack.chat.tools.deepseek import R1_DISTILL_CALLS, R1_DISTILL_RESULT, V31_CALLS, V31_RESULT
from edgepack.chat.tools.dsml import V32_CALLS, V32_DEFS, V32_RESULT, V4_CALLS, V4_DEFS, V4_RESULT
from edgepack.chat.tools.families import (BIELIK_CALLS, BIELIK_DEFS, BIELIK_RESULT, LAGUNA_XS_CALLS,
                                         LAGUNA_XS_DEFS, LAGUNA_XS_RESULT, LING_CALLS, LING_DEFS, LING_RESULT,
                                         REKA_CALLS, REKA_DEFS, REKA_RESULT)
from edgepack.chat.tools.layout import ToolLayout, each_tool
from edgepack.chat.tools.minimax import (M1_CALLS, M1_DEFS_HEAD, M1_DEFS_TAIL, M1_RESULT, M2_CALLS, M2_DEFS, M2_RESULT,
                                        M3_CALLS, M3_DEFS, M3_XML)
from edgepack.chat.tools.command_r_plus import COMMAND_R_PLUS_CALLS, COMMAND_R_PLUS_DEFS, COMMAND_R_PLUS_RESULT
from edgepack.chat.tools.hermes_pro import HERMES_PRO_CALLS, HERMES_PRO_DEFS, HERMES_PRO_RESULT
from edgepack.chat.tools.kimi3 import K3_CALLS, K3_DEFS, K3_RESULT
from edgepack.chat.tools.minicpm import CALL_TURN as MINICPM_CALL_TURN, DEFS as MINICPM_DEFS, DEFS_MARKER as MINICPM_MARKER
from edgepack.chat.tools.minicpm import RESULT as MINICPM_RESULT
from edgepack.chat.tools.nemotron import NANO_V2_CALLS, NANO_V2_DEFS, NANO_V2_RESULT, NEMOTRON_DEFS, NEMOTRON_RESULT
from edgepack.chat.tools import gemma as tool_gemma
from edgepack.chat.tools.seed import SEED_CALLS, SEED_DEFS, SEED_NO_SYSTEM

_HERMES_DEFS = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
    + each_tool("\n")
    + "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\n</tool_call>"
)
# each call on a line of its own after the text: "\n" before all but a first call after no text
_HERMES_CALLS = ('{{ range $j, $c := .ToolCalls }}{{ if or $j $_.Content }}\n{{ end }}<tool_call>\n{"name": "'
                 f'{{{{ $c.Function.Name }}}}", "arguments": {tojson("$c.Function.Arguments")}}}\n'
                 "</tool_call>{{ end }}")
_HERMES_RESULT = ('{{ if ne $prevRole "tool" }}<|im_start|>user{{ end }}\n<tool_response>\n{{ .Content }}\n'
                  '</tool_response>{{ if ne $nextRole "tool" }}<|im_end|>\n{{ end }}')
_HERMES_MARKERS = ("<tools>", "<tool_call>", "<tool_response>")
_MISTRAL_DEFS = f"[AVAILABLE_TOOLS]{tojson('$.Tools')}[/AVAILABLE_TOOLS]"

# Qwen3-Coder's XML calls: <function=name> and one <parameter=key> per argument (keys sorted, as
# a Go map ranges), the value written as Jinja's `value | string` (a string as it is, True/False/
# None) or, for an object or a list, tojson; a number as Go's json writes it, which is Python's
# str() of the number JSON decodes to (1000000, 1.5) but for a float that is a whole number (18
# for 18.0) or below 1e-4 (0.00001 for 1e-05): fmt's %v would write 1e+06. printf "%T" tells
# Go's decoded JSON types apart.
_XML_VALUE = ('{{ $t := printf "%T" $v }}{{ if eq $t "string" }}{{ $v }}{{ else if eq $t "bool" }}{{ if $v }}True'
              '{{ else }}False{{ end }}{{ else if eq $t "<nil>" }}None'
              f'{{{{ else }}}}{tojson("$v")}{{{{ end }}}}')
_XML_ARGS = f"{{{{ range $k, $v := $c.Function.Arguments }}}}<parameter={{{{ $k }}}}>\n{_XML_VALUE}\n</parameter>\n{{{{ end }}}}"


def _xml_calls(first_after_text: str, first: str, later: str) -> str:
    """Each call as <tool_call><function=...>, led by `first_after_text` / `first` (the turn has
    text / none) or `later`."""
    lead = ("{{ if $j }}" + later + "{{ else if $_.Content }}" + first_after_text + "{{ else }}" + first + "{{ end }}"
            if later or first_after_text or first else "")
    return ("{{ range $j, $c := .ToolCalls }}" + lead + "<tool_call>\n<function={{ $c.Function.Name }}>\n" + _XML_ARGS
            + "</function>\n</tool_call>{{ end }}")


_XML_MARKERS = ("<tools>", "<tool_call>", "<function=", "<parameter=")
# GLM's calls: <arg_key>/<arg_value> pairs, a string value as it is, any other as JSON
_GLM_CALLS = ('{{ range $c := .ToolCalls }}<tool_call>{{ $c.Function.Name }}{{ range $k, $v := $c.Function.Arguments }}'
              '<arg_key>{{ $k }}</arg_key><arg_value>' + string_or_tojson("$v")
              + '</arg_value>{{ end }}</tool_call>{{ end }}')

LAYOUTS: tuple[ToolLayout, ...] = (
    # Qwen2.5, Qwen3, MiMo: calls follow the turn's (thinking and) text
    ToolLayout("hermes", _HERMES_MARKERS, _HERMES_DEFS, _HERMES_CALLS, _HERMES_RESULT, defs_joiner="\n\n"),
    # QwQ: the same, with the joiner written even when there is no system message
    ToolLayout("hermes-qwq", _HERMES_MARKERS, _HERMES_DEFS, _HERMES_CALLS, _HERMES_RESULT, defs_joiner="\n\n",
               no_system_lead="\n\n"),
    # Qwen3-Coder: each definition as XML; a call turn of its own (no newline after the role)
    ToolLayout("xml-qwen3-coder", (*_XML_MARKERS, "render_extra_keys"),
               "\n\n# Tools\n\nYou have access to the following tools:\n\n<tools>{{ range $t := $.Tools }}\n<function>\n"
               '<name>{{ $t.Function.Name }}</name>\n<description>{{ template "ep.strip" $t.Function.Description }}'
               "</description>\n<parameters>{{ range $k, $p := $t.Function.Parameters.Properties }}\n<parameter>\n"
               "<name>{{ $k }}</name>{{ if $p.Type }}\n<type>{{ if eq (len $p.Type) 1 }}{{ index $p.Type 0 }}{{ else }}["
               "{{ range $x, $y := $p.Type }}{{ if $x }}, {{ end }}'{{ $y }}'{{ end }}]{{ end }}</type>{{ end }}"
               '{{ if $p.Description }}\n<description>{{ template "ep.strip" $p.Description }}</description>{{ end }}'
               + "".join(f"{{{{ if $p.{go} }}}}\n<{key}>{tojson(f'$p.{go}')}</{key}>{{{{ end }}}}"
                         for go, key in (("AnyOf", "anyOf"), ("Items", "items"), ("Enum", "enum"),
                                         ("Properties", "properties"), ("Required", "required")))
               + "\n</parameter>{{ end }}"
               + "".join(f"{{{{ if $t.Function.Parameters.{go} }}}}\n<{key}>{tojson(f'$t.Function.Parameters.{go}')}"
                         f"</{key}>{{{{ end }}}}" for go, key in (("Defs", "$defs"), ("Items", "items"), ("Required", "required")))
               + "\n</parameters>\n</function>{{ end }}\n</tools>\n\nIf you choose to call a tool ONLY reply in the following format with NO suffix:\n\n<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n<parameter=example_parameter_2>\nvalue_2\n</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\nReminder:\n- Function calls MUST follow the specified format: the tool calling block MUST begin with an opening <tool_call> tag and end with a closing </tool_call> tag.\n- Required parameters MUST be specified\n- You may provide optional reasoning for your function call in natural language BEFORE the function call, but NOT after\n- If there is no function call available, answer the question like normal with your current knowledge and do not tell the user about function calls\n</IMPORTANT>",
               "",
               '{{ if and $prevRole (ne $prevRole "tool") }}<|im_start|>user\n{{ end }}<tool_response>\n{{ .Content }}\n'
               '</tool_response>\n{{ if ne $nextRole "tool" }}<|im_end|>\n{{ end }}',
               no_system_lead="You are Qwen, a helpful AI assistant that can interact with a computer to solve tasks.",
               call_turn='<|im_start|>assistant{{ if .Content }}\n{{ template "ep.strip" .Content }}\n{{ end }}'
                         + _xml_calls("\n", "\n", "\n"), helpers=("pyjson", "strip")),
    # StepFun 3.5: XML calls right after the text, results in a tool_response turn
    ToolLayout("xml-stepfun", _XML_MARKERS,
               "# Tools\n\nYou have access to the following functions in JSONSchema format:\n\n<tools>" + each_tool("\n")
               + "\n</tools>\n\nIf you choose to call a function ONLY reply in the following format with NO suffix:\n\n<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n<parameter=example_parameter_2>\nThis is the value for the second parameter\nthat can span\nmultiple lines\n</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\nReminder:\n- Function calls MUST follow the specified format: an inner <function=...>\n...\n</function> block must be nested within <tool_call>\n...\n</tool_call> XML tags\n- Required parameters MUST be specified\n</IMPORTANT>",
               _xml_calls("", "", ""),
               '{{ if ne $prevRole "tool" }}<|im_start|>tool_response\n{{ end }}<tool_response>{{ .Content }}'
               '</tool_response>{{ if ne $nextRole "tool" }}<|im_end|>\n{{ end }}', defs_joiner="\n\n"),
    # Qwen3.5: the definitions first and the system text after them; a blank line between text and calls
    ToolLayout("xml-qwen3.5", _XML_MARKERS,
               "# Tools\n\nYou have access to the following functions:\n\n<tools>" + each_tool("\n") + "\n</tools>"
               + "\n\nIf you choose to call a function ONLY reply in the following format with NO suffix:\n\n<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n<parameter=example_parameter_2>\nThis is the value for the second parameter\nthat can span\nmultiple lines\n</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\nReminder:\n- Function calls MUST follow the specified format: an inner <function=...></function> block must be nested within <tool_call></tool_call> XML tags\n- Required parameters MUST be specified\n- You may provide optional reasoning for your function call in natural language BEFORE the function call, but NOT after\n- If there is no function call available, answer the question like normal with your current knowledge and do not tell the user about function calls\n</IMPORTANT>",
               _xml_calls("\n\n", "", "\n"),
               '{{ if and $prevRole (ne $prevRole "tool") }}<|im_start|>user{{ end }}\n<tool_response>\n{{ .Content }}'
               '\n</tool_response>{{ if ne $nextRole "tool" }}<|im_end|>\n{{ end }}', defs_joiner="\n\n",
               joiner_if_text=True, text_after_defs=True),
    # Granite 4: after the system text; calls and results as Hermes writes them, in Granite's turns
    ToolLayout("granite4", ("<tools>", "<tool_call>", "<tool_response>", "<|start_of_role|>"),
               "You are a helpful assistant with access to the following tools. You may call one or more tools to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" + each_tool("\n")
               + '\n</tools>\n\nFor each tool call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>. If a tool does not exist in the provided list of tools, notify the user that you do not have the ability to fulfill the request.',
               _HERMES_CALLS,
               '{{ if ne $prevRole "tool" }}<|start_of_role|>user<|end_of_role|>{{ end }}\n<tool_response>\n{{ .Content }}'
               '\n</tool_response>{{ if ne $nextRole "tool" }}<|end_of_text|>\n{{ end }}', defs_joiner="\n\n",
               no_system_lead=""),
    # Llama 3.1-3.3: "Environment: ipython" in the header, the definitions (indented JSON) in the
    # first user turn, one call as the whole assistant turn, results in ipython turns as JSON strings
    ToolLayout("llama3.1", ("Environment: ipython", "tools_in_user_message", "ipython"),
               "Given the following functions, please respond with a JSON for a function call with its proper "
               "arguments that best answers the given prompt.\n\nRespond in the format {\"name\": function name, "
               "\"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n"
               + each_tool("", "\n\n", indent=4),
               '{{ range $j, $c := .ToolCalls }}{"name": "{{ $c.Function.Name }}", "parameters": '
               f'{tojson("$c.Function.Arguments")}}}{{{{ end }}}}',
               f"<|start_header_id|>ipython<|end_header_id|>\n\n{tojson('.Content')}<|eot_id|>",
               defs_at="first_user", calls_replace_text=True, header_lead="Environment: ipython\n",
               helpers=("pyjson", "pyjson:4")),
    # Kimi K2 (family template): declared first as one JSON list, calls numbered within their turn,
    # results headed "## Return of <id>" (a literal backslash-n: the source writes it as text)
    ToolLayout("kimi-k2", ("tool_declare", "<|tool_calls_section_begin|>", "## Return of", "loop.index0|string"),
               f"<|im_system|>tool_declare<|im_middle|>{tojson('$.Tools')}<|im_end|>",
               "<|tool_calls_section_begin|>{{ range $j, $c := .ToolCalls }}<|tool_call_begin|>functions."
               "{{ $c.Function.Name }}:{{ $j }}<|tool_call_argument_begin|>"
               f"{tojson('$c.Function.Arguments')}<|tool_call_end|>{{{{ end }}}}<|tool_calls_section_end|>",
               "<|im_system|>tool<|im_middle|>## Return of {{ .ToolCallID }}\\n{{ .Content }}<|im_end|>",
               defs_at="family", family="kimi"),
    # GLM 4.7 (family template): a system turn of definitions first; calls as <arg_key>/<arg_value>
    # pairs (a string value as it is, others as JSON), results after one <|observation|> per run
    ToolLayout("glm-4.7", ("<arg_key>", "<|observation|>", "<tool_response>"),
               '<|system|>\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n' + each_tool("", "\n") + '</tools>\n\nFor each function call, output the function name and arguments within the following XML format:\n<tool_call>{function-name}<arg_key>{arg-key-1}</arg_key><arg_value>{arg-value-1}</arg_value><arg_key>{arg-key-2}</arg_key><arg_value>{arg-value-2}</arg_value>...</tool_call>',
               _GLM_CALLS,
               '{{ if ne $prevRole "tool" }}<|observation|>{{ end }}<tool_response>{{ .Content }}</tool_response>',
               defs_at="family", family="glm"),
    # GLM 4.6 (family template): as 4.7 with newlines: each definition on a line of its own, each
    # call "\n<tool_call>name\n" then one <arg_key>/<arg_value> line pair per argument, each result
    # in "\n<tool_response>\n...\n</tool_response>"
    ToolLayout("glm-4.6", ("<arg_key>", "<|observation|>", "<tool_response>", "'\\n<tool_call>' + tc.name"),
               '<|system|>\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n' + each_tool("", "\n") + '</tools>\n\nFor each function call, output the function name and arguments within the following XML format:\n<tool_call>{function-name}\n<arg_key>{arg-key-1}</arg_key>\n<arg_value>{arg-value-1}</arg_value>\n<arg_key>{arg-key-2}</arg_key>\n<arg_value>{arg-value-2}</arg_value>\n...\n</tool_call>',
               '{{ range $c := .ToolCalls }}\n<tool_call>{{ $c.Function.Name }}\n{{ range $k, $v := $c.Function.Arguments }}'
               '<arg_key>{{ $k }}</arg_key>\n<arg_value>' + string_or_tojson("$v") + '</arg_value>\n{{ end }}</tool_call>{{ end }}',
               '{{ if ne $prevRole "tool" }}<|observation|>{{ end }}\n<tool_response>\n{{ .Content }}\n</tool_response>',
               defs_at="family", family="glm"),
    # LFM2: a one-line list in the system turn; calls are not written back; results in a tool turn
    ToolLayout("lfm2", ("List of tools: <|tool_list_start|>[", "<|tool_response_start|>"),
               "List of tools: <|tool_list_start|>[" + each_tool("", between=", ") + "]<|tool_list_end|>", "",
               "<|im_start|>tool\n<|tool_response_start|>{{ .Content }}<|tool_response_end|><|im_end|>\n",
               defs_joiner="\n", joiner_if_text=True),
    # LFM2.5 8B: the same definitions; calls written back as Python calls: name(key='text', key=value),
    # a string in quotes as it is, an object as JSON, anything else as Python's str() (chat.gopystr)
    ToolLayout("lfm2.5-calls", ("List of tools: [", "<|tool_call_start|>[", "format_arg_value"),
               "List of tools: [" + each_tool("", between=", ") + "]",
               "<|tool_call_start|>[{{ range $j, $c := .ToolCalls }}{{ if $j }}, {{ end }}{{ $c.Function.Name }}("
               "{{ $n := 0 }}{{ range $k, $v := $c.Function.Arguments }}{{ if $n }}, {{ end }}{{ $n = 1 }}{{ $k }}="
               '{{ $t := printf "%T" $v }}{{ if eq $t "string" }}\'{{ $v }}\'{{ else if eq $t "map[string]interface {}" }}'
               f'{tojson("$v")}{{{{ else }}}}{{{{ template "ep.pystr" $v }}}}{{{{ end }}}}{{{{ end }}}}){{{{ end }}}}'
               "]<|tool_call_end|>",
               "<|im_start|>tool\n{{ .Content }}<|im_end|>\n", defs_joiner="\n", joiner_if_text=True,
               helpers=("pyjson", "pystr")),
    ToolLayout("lfm2.5", ("List of tools: [",),
               "List of tools: [" + each_tool("", between=", ") + "]", "",
               "<|im_start|>tool\n{{ .Content }}<|im_end|>\n", defs_joiner="\n", joiner_if_text=True),
    # Mistral Small 3.x: the definitions before the last user turn; a call turn is its calls
    ToolLayout("mistral-v7", ("[AVAILABLE_TOOLS]", "[TOOL_CALLS]", "[CALL_ID]", "[TOOL_CONTENT]"), _MISTRAL_DEFS,
               "{{ range .ToolCalls }}[TOOL_CALLS]{{ .Function.Name }}[CALL_ID]{{ .ID }}[ARGS]"
               f"{tojson('.Function.Arguments')}{{{{ end }}}}",
               "[TOOL_RESULTS]{{ .ToolCallID }}[TOOL_CONTENT]{{ .Content }}[/TOOL_RESULTS]",
               defs_at="last_user", calls_replace_text=True),
    # Mistral Nemo: each definition written key by key, calls as one JSON list with their ids
    ToolLayout("mistral-nemo", ("[AVAILABLE_TOOLS]", "[TOOL_CALLS]", "[TOOL_RESULTS]", '"call_id"'),
               '[AVAILABLE_TOOLS][{{ range $k, $t := $.Tools }}{{ if $k }}, {{ end }}{"type": "function", "function": '
               '{"name": "{{ $t.Function.Name }}", "description": "{{ $t.Function.Description }}", "parameters": '
               f'{tojson("$t.Function.Parameters")}{{{{ "}}}}" }}}}{{{{ end }}}}][/AVAILABLE_TOOLS]',
               '[TOOL_CALLS][{{ range $k, $c := .ToolCalls }}{{ if $k }}, {{ end }}{"name": '
               f'{tojson("$c.Function.Name")}, "arguments": {tojson("$c.Function.Arguments")}'
               ', "id": "{{ $c.ID }}"}{{ end }}]',
               '[TOOL_RESULTS]{"content": {{ .Content }}, "call_id": "{{ .ToolCallID }}"}[/TOOL_RESULTS]',
               defs_at="last_user", calls_replace_text=True),
    # Devstral, Ministral 3: the definitions after the first system turn; calls after the text
    ToolLayout("mistral-after-system", ("[AVAILABLE_TOOLS]", "[TOOL_CALLS]", "[TOOL_RESULTS]"), _MISTRAL_DEFS,
               "{{ range .ToolCalls }}[TOOL_CALLS]{{ .Function.Name }}[ARGS]"
               f"{tojson('.Function.Arguments')}{{{{ end }}}}",
               "[TOOL_RESULTS]{{ .Content }}[/TOOL_RESULTS]", defs_at="after_system"),
    # Spark 2.5 (family template): each definition's function as JSON in the system block, right
    # after the default prompt; calls as GLM writes them; results in one <|Tool|> turn per run
    ToolLayout("spark-2.5", ("<|Tool|>", "<arg_key>", "<tool_response>", "tool.function | tojson"),
               "## Tools\nYou have access to the following functions:\n<tools>"
               f"{{{{ range $t := $.Tools }}}}\n{tojson('$t.Function')}{{{{ end }}}}\n</tools>",
               _GLM_CALLS,
               '{{ if ne $prevRole "tool" }}<｜start▁of▁sentence｜><|Tool|>{{ end }}<tool_response>{{ .Content }}'
               '</tool_response>{{ if ne $nextRole "tool" }}<｜end▁of▁sentence｜>{{ end }}',
               defs_at="family", family="spark"),
    # Laguna S (family template): after the system text (a blank line between when there is
    # any) each whole definition as JSON on a line; calls as GLM writes them; results one a turn
    # (the newline after one as a Go string: the family template trims the text before its next action)
    ToolLayout("laguna-s", ("<available_tools>", "All available function signatures are listed below:",
                            '{{- "</available_tools>" -}}', "<arg_key>", "<tool_response>"),
               '{{ if $sys }}\n\n{{ end }}### Tools\n\nYou may call functions to assist with the user query.\n'
               "All available function signatures are listed below:\n<available_tools>\n"
               + each_tool("", "\n") + "</available_tools>",
               _GLM_CALLS, '<tool_response>{{ .Content }}</tool_response>{{ "\\n" }}',
               defs_at="family", family="laguna"),
    # Laguna XS, Ling, Bielik 3 (family templates; Go text in chat.tools.families). Laguna XS: as Laguna
    # S, each piece on lines of its own; Ling: Hermes definitions, <arg_key>/<arg_value> calls, one
    # OBSERVATION turn per run of results; Bielik: the definitions as one JSON list, Hermes calls
    ToolLayout("laguna-xs", ("<available_tools>", "Wrap your thinking in '<think>', '</think>' tags",
                             "<arg_key>", "<tool_response>"),
               LAGUNA_XS_DEFS, LAGUNA_XS_CALLS, LAGUNA_XS_RESULT, defs_at="family", family="laguna"),
    ToolLayout("ling", ("<role>OBSERVATION</role>", "<arg_key>", "If none of the functions can be used"),
               LING_DEFS, LING_CALLS, LING_RESULT, defs_at="family", family="ling"),
    ToolLayout("bielik", ("<|function_list|>", "<|function_output|>", "<tool_call>"),
               BIELIK_DEFS, BIELIK_CALLS, BIELIK_RESULT, defs_at="family", family="bielik"),
    # Reka Edge: Hermes definitions and calls as JSON with ensure_ascii=True, results in human turns
    ToolLayout("reka", ("<tool_call>", "<tool_response>", "tojson(ensure_ascii=True)", "human: "),
               REKA_DEFS, REKA_CALLS, REKA_RESULT, defs_at="family", family="reka", helpers=("pyjson_a",)),
    # Command R7B: the definitions inside the header preamble (description as it is, parameters as
    # JSON); a call turn of its own, its calls numbered across the conversation; a run of results in
    # one turn, each naming the number of the first call with its id. The source skips a result whose
    # id an earlier run already listed (tool_ids_seen): cohere_result replays that choice.
    ToolLayout("command-r7b", ("<|START_ACTION|>", "<|START_TOOL_RESULT|>", "tool_call_id_to_int", "tool_ids_seen",
                               "## Available Tools"),
               R7B_TOOL_USE + COHERE_DEFS + "]\n```\n\n",
               "", cohere_result(f"{tojson('$r.Content')}"), defs_at="header",
               header_defs_after="many more languages.\n", call_turn=cohere_call_turn(COHERE_THINKING),
               call_turn_end="<|END_OF_TURN_TOKEN|>"),
    # Command A (Cohere2 MoE): the definitions in the preamble's tool list (empty without tools),
    # thinking in a call turn only when there is some, each result as {"content": ...}
    ToolLayout("cohere2", ("<|START_ACTION|>", "<|START_TOOL_RESULT|>", "tool_ids_seen", "text_wrapper",
                           "# Available Tools\n```json"),
               COHERE_DEFS, "", cohere_result(f'{{"content": {tojson("$r.Content")}}}'),
               defs_at="header", header_defs_after="# Available Tools\n```json\n[\n", header_defs_replace="\n",
               call_turn=cohere_call_turn("{{ if .Thinking }}" + COHERE_THINKING + "{{ end }}"),
               call_turn_end="<|END_OF_TURN_TOKEN|>"),
    # Tencent Hy3 (family template): definitions as tojson after the system text, calls as
    # <arg_key>/<arg_value> lines (a string value as it is, others as JSON), results in one
    # <tool_responses> block from the first result after a call turn to the next user/assistant turn
    ToolLayout("hy3", ("'<tool_calls{}>'.format(HYTK)", "argvalue_begin_token", "toolresponses_begin_token"),
               "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with "
               "function signatures within <tools></tools> XML tags:\n<tools>\n" + each_tool("", between="\n")
               + "\n</tools>\n\nFor function call returns, you should first print <tool_calls:opensource>\nFor each "
               "function call, you should return object like:\n<tool_call:opensource>{function-name}<tool_sep:opensource>\n"
               "<arg_key:opensource>{arg-key-1}</arg_key:opensource>\n<arg_value:opensource>{arg-value-1}</arg_value:opensource>\n"
               "<arg_key:opensource>{arg-key-2}</arg_key:opensource>\n<arg_value:opensource>{arg-value-2}</arg_value:opensource>\n"
               "...\n</tool_call:opensource>\nAt the end of function call returns, you should print </tool_calls:opensource>"
               "<｜reasoning_mode:opensource｜>reasoning_effort:{{ $effort }}",
               "<tool_calls:opensource>\n{{ range $c := .ToolCalls }}<tool_call:opensource>{{ $c.Function.Name }}"
               "<tool_sep:opensource>\n{{ range $k, $v := $c.Function.Arguments }}<arg_key:opensource>{{ $k }}"
               "</arg_key:opensource>\n<arg_value:opensource>" + string_or_tojson("$v")
               + "</arg_value:opensource>\n{{ end }}</tool_call:opensource>\n"
               "{{ end }}</tool_calls:opensource>",
               # the block opens at the first result since the start or the last call turn
               '{{ $first := true }}{{ range $m := slice $.Messages 0 $i }}{{ if and (eq $m.Role "assistant") $m.ToolCalls }}'
               '{{ $first = true }}{{ else if eq $m.Role "tool" }}{{ $first = false }}{{ end }}{{ end }}'
               "{{ if $first }}<tool_responses:opensource>\n{{ end }}<tool_response:opensource>\n{{ .Content }}\n"
               "</tool_response:opensource>\n",
               defs_at="family", family="hy"),
    # Solar Open (family template): each definition's function as tojson in the system turn; a
    # call turn is its calls (the text left out); a result names every call whose id it answers
    ToolLayout("solar-open", ("<|tool_call:begin|>", "<|tool_response:begin|>", "get_tool_name"),
               "\n\n## Tools\n\n### Tool Call Instruction\nYou may invoke one or more tools to assist with the user's query. "
               "Available tools are provided in JSON Schema format: <|tools:begin|><|tool:begin|><tools-json-object>"
               "<|tool:end|>...<|tools:end|>\n\n### Available Tools\n<|tools:begin|>"
               f"{{{{ range $t := $.Tools }}}}<|tool:begin|>{tojson('$t.Function')}<|tool:end|>{{{{ end }}}}"
               "<|tools:end|>\n\n### Tool Call Format\nFor each tool call, return a JSON object with the following "
               "structure, enclosed within <|tool_call:begin|> and <|tool_call:end|> tags: \n<|tool_call:begin|>"
               "<tool-call-id><|tool_call:name|><tool-name><|tool_call:args|><args-json-object><|tool_call:end|>\n"
               "- The <tool-call-id> must be a randomly generated string consisting of 10 lowercase letters (a-z) "
               "and/or digits (0-9) (e.g., a1b2c3d4e5)\n\n### Tool Response Format\nEach tool is responded by `tool` "
               "with the following structure:\n<|tool_response:id|><tool-call-id><|tool_response:name|><tool-name>"
               "<|tool_response:result|><results><|tool_response:end|>\n- Ensure the <tool-call-id> matches the "
               "corresponding tool call",
               "<|begin|>assistant<|tool_calls|>{{ range $c := .ToolCalls }}<|tool_call:begin|>{{ $c.ID }}"
               "<|tool_call:name|>{{ $c.Function.Name }}<|tool_call:args|>"
               f"{tojson('$c.Function.Arguments')}<|tool_call:end|>{{{{ end }}}}<|calls|>",
               '{{ if ne $prevRole "tool" }}<|begin|>tool<|tool_response|>{{ end }}<|tool_response:begin|>'
               "{{ .ToolCallID }}<|tool_response:name|>{{ $id := .ToolCallID }}{{ range $m := $.Messages }}"
               "{{ range $c := $m.ToolCalls }}{{ if eq $c.ID $id }}{{ $c.Function.Name }}{{ end }}{{ end }}{{ end }}"
               '<|tool_response:result|>{{ .Content }}<|tool_response:end|>{{ if ne $nextRole "tool" }}<|end|>{{ end }}',
               defs_at="family", family="solar", calls_replace_text=True),
    # functionary v3.1: the definitions in the fixed preamble, after the knowledge date; each named
    # with its description and its function as JSON, all HTML-escaped as transformers writes them
    # (the source joins them to `|safe` strings: jinja2's Markup escapes the rest); a call turn is
    # its text, then <function=name>{arguments}</function> per call (the built-in "python" tool as
    # <|python_tag|>{arguments}) and <|eom_id|>; results in ipython turns. Not written: the source's
    # "Environment: ipython" and the removal of a tool of type "code_interpreter" (Ollama documents
    # function tools only).
    ToolLayout("functionary-v3.1", ("<function=", "<|python_tag|>", "<|eom_id|>", "'\"|safe"),
               "\nYou have access to the following functions:\n\n{{ range $t := $.Tools }}Use the function "
               "'{{ html $t.Function.Name }}' to '{{ html $t.Function.Description }}'\n"
               + tojson("$t.Function", escaped=True) + "\n\n{{ end }}" + FUNCTIONARY_V31_RULES,
               "", "<|start_header_id|>ipython<|end_header_id|>\n\n{{ .Content }}<|eot_id|>", defs_at="header",
               header_defs_after="Cutting Knowledge Date: December 2023\n\n",
               call_turn="<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Content }}{{ range $c := .ToolCalls }}"
                         '{{ if eq $c.Function.Name "python" }}<|python_tag|>' + tojson("$c.Function.Arguments")
                         + "{{ else }}<function={{ $c.Function.Name }}>" + tojson("$c.Function.Arguments")
                         + "</function>{{ end }}{{ end }}", call_turn_end="<|eom_id|>",
               helpers=("pyjson", "pyjson.html")),
    # MiniMax M2, M1, Seed-OSS (family templates; Go text in chat.tools.minimax and chat.tools.seed).
    # M2: definitions at the end of the system turn, calls after the text, results in ]~b]tool turns
    ToolLayout("minimax-m2", ("<minimax:tool_call>", "render_tool_namespace", "]~b]tool", "<invoke name="),
               M2_DEFS, M2_CALLS, M2_RESULT, defs_at="family", family="minimax"),
    # M1: a system turn of definitions after the first one, calls in place of the text, tool turns
    ToolLayout("minimax-m1", ("tool_setting=tools", "<tool_calls>", "tool result: "),
               M1_DEFS_HEAD + each_tool("", "\n") + M1_DEFS_TAIL, M1_CALLS, M1_RESULT,
               defs_at="family", family="minimax", calls_replace_text=True),
    # Seed-OSS: definitions as Python functions ending the first system turn, or a Doubao system
    # turn of their own; calls after the text; results in tool turns
    ToolLayout("seed-oss", ("<seed:tool_call>", "Function:\ndef {{ item.function.name }}(", "[必填]", "<parameter="),
               SEED_DEFS, SEED_CALLS, "<seed:bos>tool\n{{ .Content }}<seed:eos>", defs_at="family", family="seed-oss",
               no_system_lead=SEED_NO_SYSTEM, helpers=("strip", "pystr")),
    # Granite 3.3: another default system prompt with tools; the definitions as one tojson(indent=4)
    # list in an available_tools turn after the system turn; calls not written; results in tool turns
    ToolLayout("granite-3.3", ("<|start_of_role|>available_tools<|end_of_role|>", "available_tools | tojson(indent=4)"),
               "<|start_of_role|>available_tools<|end_of_role|>[\n    "
               + each_tool("", between=",\n    ", indent=4, depth=1) + "\n]<|end_of_text|>\n", "",
               "<|start_of_role|>tool<|end_of_role|>{{ .Content }}<|end_of_text|>\n", defs_at="after_system",
               default_system_tools=(" You are a helpful AI assistant.", " You are a helpful assistant with access to "
                                     "the following tools. When a tool is required to answer the user's query, respond "
                                     "only with <|tool_call|> followed by a JSON list of tools used. If a tool does not "
                                     "exist in the provided list of tools, notify the user that you do not have the "
                                     "ability to fulfill the request."), helpers=("pyjson:4",)),
    # DeepSeek R1 distills (family template): no definitions (the source ignores them; .Tools is
    # still read, so Ollama takes tool requests); each result in one run of outputs that the first
    # result of the conversation opens (ns.is_output_first is never set back: later runs continue it).
    # The Llama 8B distill writes calls only for a message whose content is None, which no message
    # through Ollama has: none are written. The Qwen 32B distill writes each call, the conversation's
    # first opening the calls block (ns.is_first is never set back either), then the turn's text.
    ToolLayout("deepseek-r1-distill", ("ns.is_output_first", "<｜tool▁outputs▁begin｜>", "message['content'] is none"),
               "", "", R1_DISTILL_RESULT, defs_at="family", family="deepseek", helpers=()),
    ToolLayout("deepseek-r1-distill-calls", ("ns.is_output_first", "<｜tool▁outputs▁begin｜>",
                                             "tool['function']['arguments'] | tojson"),
               "", R1_DISTILL_CALLS, R1_DISTILL_RESULT, defs_at="family", family="deepseek"),
    # DeepSeek V3.1 (family template): no definitions (the source writes none; .Tools is still read,
    # so Ollama takes tool requests); a call turn's text as it is, then its calls, each call's
    # arguments as tojson, the block and the turn closed even when it is the last; each result
    # <｜tool▁output▁begin｜>...<｜tool▁output▁end｜> in place of a turn.
    ToolLayout("deepseek-v3.1", ("ns.is_last_user", "<｜tool▁output▁begin｜>",
                                 "'<｜tool▁sep｜>' + tool['function']['arguments'] | tojson"),
               "", V31_CALLS, V31_RESULT, defs_at="family", family="deepseek"),
    # DeepSeek V3.2 / V4 (family templates; Go text in chat.tools.dsml): DSML calls after the text;
    # V3.2's results in one <function_results> block per call turn, V4's as <tool_result> user text
    ToolLayout("deepseek-v3.2-dsml", ("｜DSML｜", "function_calls", "<function_results>", "call_order"),
               V32_DEFS, V32_CALLS, V32_RESULT, defs_at="family", family="deepseek"),
    ToolLayout("deepseek-v4-dsml", ("｜DSML｜", "tool_calls", "<tool_result>", "string=\"false\""),
               V4_DEFS, V4_CALLS, V4_RESULT, defs_at="family", family="deepseek"),
    # Nemotron 3 Nano (family template): definitions as XML in the system turn, calls as
    # <function=...> XML after the text, results in user turns
    ToolLayout("nemotron3", ("truncate_history_thinking", "render_extra_keys", "<parameter=", "<tool_response>"),
               NEMOTRON_DEFS,
               "{{ range $c := .ToolCalls }}<tool_call>\n<function={{ $c.Function.Name }}>\n" + _XML_ARGS
               + "</function>\n</tool_call>\n{{ end }}", NEMOTRON_RESULT, defs_at="family", family="nemotron",
               helpers=("pyjson", "strip")),
    # Nemotron Nano v2 (family template): the definitions as tojson in the system turn, calls as a
    # <TOOLCALL> JSON list after the text, each run of results in one user turn
    ToolLayout("nemotron-nano-v2", ("<AVAILABLE_TOOLS>", "<TOOLCALL>", "<TOOL_RESPONSE>", "<SPECIAL_11>"),
               NANO_V2_DEFS, NANO_V2_CALLS, NANO_V2_RESULT, defs_at="family", family="nemotron"),
    # Hermes 2 Pro / 3 tool_use: the definitions inside the fixed system turn (a Python signature as
    # each description), a call turn of its own, results in tool turns (chat.tools.hermes_pro)
    ToolLayout("hermes-pro", ("json_to_python_type", "Here are the available tools: <tools> ", "<tool_response>"),
               HERMES_PRO_DEFS, "", HERMES_PRO_RESULT, defs_at="header",
               header_defs_after="Here are the available tools: <tools> ", call_turn=HERMES_PRO_CALLS,
               helpers=("pyjson", "strip")),
    # Command R+ tool_use (family template): Python stubs in the fixed system turn, an Action JSON
    # list after the text, <results> system turns (chat.tools.command_r_plus)
    ToolLayout("command-r-plus", ("new_tool_parser", "json_to_python_type", "<results>", "Action:"),
               COMMAND_R_PLUS_DEFS, COMMAND_R_PLUS_CALLS, COMMAND_R_PLUS_RESULT, defs_at="family",
               family="command-r-plus", helpers=("pyjson", "pyjson:4", "strip")),
    # Gemma 4 31B-it (family template; Go text in chat.tools.gemma): declarations in its own value
    # notation at the end of the system turn; a call turn writes its thinking, calls, then the
    # results of the tool messages that follow it, and the next assistant message continues it
    ToolLayout("gemma4", ("<|tool>", "<|tool_call>call:", "format_tool_response_block", "continue_same_model_turn"),
               tool_gemma.DEFS, tool_gemma.CALLS, tool_gemma.RESULT, defs_at="family", family="gemma",
               helpers=tool_gemma.HELPERS),
    # Gemma 4 31B-it "interleaved": the same declarations and calls, results in tool turns
    ToolLayout("gemma4-interleaved", ("<|tool>", "<|tool_call>call:", "ns.last_user_message"),
               tool_gemma.DEFS_INTERLEAVED, tool_gemma.CALLS_INTERLEAVED, tool_gemma.RESULT_INTERLEAVED,
               defs_at="family", family="gemma", helpers=tool_gemma.HELPERS_INTERLEAVED),
    # MiniMax M3 (family template; chat.tools.minimax): definitions ending the developer turn, <invoke>
    # calls after the text with nested values as elements (to_xml), results in one ]~b]tool turn per run
    ToolLayout("minimax-m3", ("]<]minimax[>[", "to_xml", "render_tool_namespace", "<response>"),
               M3_DEFS, M3_CALLS, M2_RESULT, defs_at="family", family="minimax", helpers=("pyjson", M3_XML[3:])),
    # MiniCPM 5: the definitions after the system text or in place of its <tool_def_sep>; a call turn
    # of its own: the text before its first <tool_sep>, then the calls (chat.tools.minicpm)
    ToolLayout("minicpm5", ("<tool_def_sep>", "<tool_sep>", "has_tool_sep", "<param name="),
               MINICPM_DEFS, "", MINICPM_RESULT, defs_joiner="\n\n", defs_marker=MINICPM_MARKER,
               call_turn=MINICPM_CALL_TURN, helpers=("pyjson", "pystr", "strip_nl")),
    # Kimi K3 (family template): a tool-declare message of key-sorted compact JSON first, XTML call
    # tags after the response, results matched to the calls by id (chat.tools.kimi3)
    ToolLayout("kimi-k3", ("json_sorted", "tool-declare", "render_tool_message", "_xtml_json_block"),
               K3_DEFS, K3_CALLS, K3_RESULT, defs_at="family", family="kimi",
               helpers=("pyjson", "pyjson.compact", "kimi3.value", "kimi3.prop", "attr")),
)
