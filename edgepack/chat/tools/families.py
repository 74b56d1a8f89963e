"""Go text for the tools of Laguna XS, Ling (Bailing V3), Bielik 3 and Reka Edge (rows "laguna-xs",
"ling", "bielik" and "reka" of chat.tools.layouts, placed by their family templates under
modelfiles/chat/families/), written from each source template's own tool code. Variables the
family templates set: $on (Laguna: thinking on), $text (Ling, Reka: the answer as written, after a
cut at </think>), $skip (Bielik: the first message is a system one)."""

from __future__ import annotations

from edgepack.chat.gojson import string_or_tojson, tojson
from edgepack.chat.tools.layout import each_tool


# <arg_key>/<arg_value> pairs, a string value as it is, any other as JSON, each followed by `end`
def _arg_pairs(end: str) -> str:
    return ('{{ range $k, $v := $c.Function.Arguments }}<arg_key>{{ $k }}</arg_key>\n<arg_value>'
            + string_or_tojson("$v") + f"</arg_value>{end}{{{{ end }}}}")


# Laguna XS: as Laguna S, each piece on lines of its own, with the calls' format after the
# definitions (and how to wrap thinking, while thinking is on)
LAGUNA_XS_DEFS = (
    "\n\n### Tools\n\nYou may call functions to assist with the user query.\n"
    "All available function signatures are listed below:\n<available_tools>\n"
    + each_tool(after="\n") + "</available_tools>\n\n{{ if $on }}Wrap your thinking in '<think>', "
    "'</think>' tags, followed by a function call. {{ end }}For each function call, return an unescaped "
    "XML-like object with function name and arguments within '<tool_call>' and '</tool_call>' tags, like "
    "here:\n{{ if $on }}<think> your thoughts here </think>\n{{ end }}<tool_call>function-name\n"
    "<arg_key>argument-key</arg_key>\n<arg_value>value-of-argument-key</arg_value>\n</tool_call>")
LAGUNA_XS_CALLS = ("{{ range $c := .ToolCalls }}<tool_call>{{ $c.Function.Name }}\n" + _arg_pairs("\n")
                   + "</tool_call>\n{{ end }}")
# (the newline after a result as a Go string: the family template trims the text before its next action)
LAGUNA_XS_RESULT = '<tool_response>\n{{ .Content }}\n</tool_response>{{ "\\n" }}'

# Ling: the definitions as Hermes writes them, then the source's instructions for XML calls
LING_DEFS = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with "
    "function signatures within <tools></tools> XML tags:\n<tools>" + each_tool(before="\n") + "\n</tools>\n\n"
    "If none of the functions can be used, point it out. If the given question lacks the parameters "
    "required by the function, also point it out.\nIf you need to use a function, for each function call, "
    "output the function name and arguments within the following XML format:\n<tool_call>{function-name}\n"
    "<arg_key>{arg-key-1}</arg_key>\n<arg_value>{arg-value-1}</arg_value>\n<arg_key>{arg-key-2}</arg_key>\n"
    "<arg_value>{arg-value-2}</arg_value>\n...\n</tool_call>\n")
LING_CALLS = ("{{ range $j, $c := .ToolCalls }}{{ if or $j $text }}\n{{ end }}<tool_call>{{ $c.Function.Name }}\n"
              + _arg_pairs("") + "\n</tool_call>{{ end }}")
LING_RESULT = ('{{ if ne $prevRole "tool" }}<role>OBSERVATION</role>{{ end }}\n<tool_response>\n{{ .Content }}\n'
               '</tool_response>{{ if ne $nextRole "tool" }}<|role_end|>{{ end }}')

# Bielik 3: the definitions as one JSON list, one a line; calls as Hermes writes them, each after a
# newline; a run of results in one user turn. The source looks at a result's neighbours by its
# place in messages[1:] when the first message is a system one: the message two back, and itself.
BIELIK_DEFS = (
    "\n\nMasz dostęp do następujących narzędzi. Definicje narzędzi znajdują się poniżej wewnątrz znaczników "
    "<|function_list|>:\n<|function_list|>\n[" + each_tool(between=",\n") + "]\n<|function_list|>\n\n"
    'Aby wywołać narzędzie, użyj formatu <tool_call>{"name": "nazwa_narzędzia", "arguments": {"argument": '
    '"wartość"}}</tool_call>. Wyniki działania narzędzi zostaną przekazane z markerem <|function_output|>.\n')
BIELIK_CALLS = ('{{ range $c := .ToolCalls }}\n<tool_call>\n{"name": "{{ $c.Function.Name }}", "arguments": '
                + tojson("$c.Function.Arguments") + "}\n</tool_call>{{ end }}")
BIELIK_RESULT = (
    '{{ $p1 := "" }}{{ $p2 := "" }}{{ range $m := slice $.Messages 0 $i }}{{ $p2 = $p1 }}{{ $p1 = $m.Role }}'
    '{{ end }}{{ $prev := $p1 }}{{ if $skip }}{{ $prev = $p2 }}{{ end }}{{ if ne $prev "tool" }}<|im_start|>user\n'
    '{{ end }}<|function_output|>{{ .Content }}{{ if or (eq (len (slice $.Messages $i)) 1) (and (not $skip) '
    '(ne $nextRole "tool")) }}<|im_end|>\n{{ end }}')

# Reka Edge: Hermes definitions and instructions, as JSON with ensure_ascii=True; each call as a
# Hermes <tool_call> block after the text (and a newline, when the text does not end with one);
# a run of results in one human turn
REKA_DEFS = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with "
    "function signatures within <tools></tools> XML tags:\n<tools>"
    + "{{ range $t := $.Tools }}\n" + tojson("$t", ensure_ascii=True) + "{{ end }}"
    + "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\n</tool_call>")
REKA_CALLS = ('{{ if and $text (ne (slice $text (len (slice $text 1))) "\\n") }}\n{{ end }}{{ range $c := .ToolCalls }}'
              '<tool_call>\n{"name": "{{ $c.Function.Name }}", "arguments": '
              + tojson("$c.Function.Arguments", ensure_ascii=True) + "}\n</tool_call>{{ end }}")
REKA_RESULT = ('{{ if ne $prevRole "tool" }}human: {{ end }}<tool_response>\n{{ .Content }}\n</tool_response>'
               '{{ if ne $nextRole "tool" }}<sep>{{ end }}')
