"""Go text for Command R's tools (R7B, Command A; the rows "command-r7b" and "cohere2" of
chat.tools.layouts): calls numbered across the whole conversation, and result turns written only
where the source's tool_ids_seen queue lets it write one, replayed message by message (Go templates
keep no list and do no arithmetic: counters are strings whose `len` is the count)."""

from __future__ import annotations

from edgepack.chat.gojson import tojson

# R7B's tool-use instructions, written after "many more languages.\n" of its preamble, up to the list
R7B_TOOL_USE = ('\nYou have been trained to have advanced reasoning and tool-use capabilities and you should make best use of these skills to serve user\'s requests.\n\n## Tool Use\nThink about how you can make best use of the provided tools to help with the task and come up with a high level plan that you will execute first.\n\n0. Start by writing <|START_THINKING|> followed by a detailed step by step plan of how you will solve the problem. For each step explain your thinking fully and give details of required tool calls (if needed). Unless specified otherwise, you write your plan in natural language. When you finish, close it out with <|END_THINKING|>.\n    You can optionally choose to skip this step when the user request is so straightforward to address that only a trivial plan would be needed.\n    NOTE: You MUST skip this step when you are directly responding to the user\'s request without using any tools.\n\nThen carry out your plan by repeatedly executing the following steps.\n1. Action: write <|START_ACTION|> followed by a list of JSON-formatted tool calls, with each one containing "tool_name" and "parameters" fields.\n    When there are multiple tool calls which are completely independent of each other (i.e. they can be executed in parallel), you should list them out all together in one step. When you finish, close it out with <|END_ACTION|>.\n2. Observation: you will then receive results of those tool calls in JSON format in the very next turn, wrapped around by <|START_TOOL_RESULT|> and <|END_TOOL_RESULT|>. Carefully observe those results and think about what to do next. Note that these results will be provided to you in a separate turn. NEVER hallucinate results.\n    Every tool call produces a list of results (when a tool call produces no result or a single result, it\'ll still get wrapped inside a list). Each result is clearly linked to its originating tool call via its "tool_call_id".\n3. Reflection: start the next turn by writing <|START_THINKING|> followed by what you\'ve figured out so far, any changes you need to make to your plan, and what you will do next. When you finish, close it out with <|END_THINKING|>.\n    You can optionally choose to skip this step when everything is going according to plan and no special pieces of information or reasoning chains need to be recorded.\n    NOTE: You MUST skip this step when you are done with tool-use actions and are ready to respond to the user.\n\nYou can repeat the above 3 steps multiple times (could be 0 times too if no suitable tool calls are available or needed), until you decide it\'s time to finally respond to the user.\n\n4. Response: then break out of the loop and write <|START_RESPONSE|> followed by a piece of text which serves as a response to the user\'s last request. Use all previous tool calls and results to help you when formulating your response. When you finish, close it out with <|END_RESPONSE|>.\n\n## Available Tools\nHere is the list of tools that you have available to you.\nYou can ONLY use the tools listed here. When a tool is not listed below, it is NOT available and you should NEVER attempt to use it.\nEach tool is represented as a JSON object with fields like "name", "description", "parameters" (per JSON Schema), and optionally, "responses" (per JSON Schema).\n\n```json\n[\n')

# Command R (R7B, Command A) calls: "x" for each call of the earlier messages, so `len $n` is the next call's number
_COHERE_COUNT = '{{ $n := "" }}{{ range $m := slice $.Messages 0 $i }}{{ range $m.ToolCalls }}{{ $n = print $n "x" }}{{ end }}{{ end }}'
# Its results. The source's loop: a tool message whose tool_call_id is in tool_ids_seen is skipped;
# one that is not opens a turn, lists itself and the tool messages right after it, and adds their
# ids to tool_ids_seen. Replayed for messages 0..$i: $flags has a "1" per message added to it
# ($head: this run's turn is open), so message $i opens a turn exactly when the source's does.
# Cost: every tool message replays the messages before it, cubic in the conversation's length; real
# Go on this project's machine: 0.1 s for 100 messages (25 tool results), 0.8 s for 200 (50).
_COHERE_SEEN = ('{{ $flags := "" }}{{ $head := false }}{{ $write := false }}{{ $pr := "" }}'
                '{{ range $j, $m := $.Messages }}{{ if ne $pr "tool" }}{{ $head = false }}{{ end }}{{ $flag := "0" }}'
                '{{ $w := false }}{{ if eq $m.Role "tool" }}{{ if $head }}{{ $flag = "1" }}{{ else }}{{ $in := false }}'
                '{{ range $k, $p := slice $.Messages 0 $j }}{{ if and (eq $p.Role "tool") (eq $p.ToolCallID $m.ToolCallID) '
                '(eq (slice (slice $flags $k) 0 1) "1") }}{{ $in = true }}{{ end }}{{ end }}'
                '{{ if not $in }}{{ $w = true }}{{ $head = true }}{{ end }}{{ end }}{{ end }}'
                '{{ if eq $j $i }}{{ $write = $w }}{{ end }}{{ $flags = print $flags $flag }}{{ $pr = $m.Role }}{{ end }}')
# tool_call_id_to_int: the number of the first call (over all messages) with the result's id
_COHERE_ID = ('{{ $c := "" }}{{ $found := false }}{{ range $mm := $.Messages }}{{ range $mm.ToolCalls }}'
              '{{ if and (not $found) (eq .ID $r.ToolCallID) }}{{ len $c }}{{ $found = true }}{{ end }}'
              '{{ $c = print $c "x" }}{{ end }}{{ end }}')


def cohere_result(value: str) -> str:
    """A Command R result turn when the source opens one: the run's results, each written by `value`
    (Go text, $r: the tool message)."""
    return (_COHERE_SEEN + '{{ if $write }}<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|><|START_TOOL_RESULT|>[\n'
            '{{ $more := true }}{{ range $x, $r := slice $.Messages $i }}{{ if and $x (ne $r.Role "tool") }}'
            '{{ $more = false }}{{ end }}{{ if $more }}{{ if $x }},\n{{ end }}    {\n        "tool_call_id": "'
            + _COHERE_ID + '",\n        "results": {\n            "0": ' + value
            + '\n        },\n        "is_error": null\n    }{{ end }}{{ end }}\n]<|END_TOOL_RESULT|><|END_OF_TURN_TOKEN|>{{ end }}')


def cohere_call_turn(thinking: str) -> str:
    """A Command R call turn, `thinking` first; calls numbered across the conversation."""
    return ('<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>' + thinking + '<|START_ACTION|>[\n' + _COHERE_COUNT
            + '{{ range $j, $c := .ToolCalls }}    {"tool_call_id": "{{ len $n }}", "tool_name": "{{ $c.Function.Name }}", '
            f'"parameters": {tojson("$c.Function.Arguments")}}}{{{{ if ne (len (slice $_.ToolCalls $j)) 1 }}}},'
            '{{ end }}\n{{ $n = print $n "x" }}{{ end }}]<|END_ACTION|>')


# Command R's definitions: the description as it is, the parameters as JSON, one a line
COHERE_DEFS = ('{{ range $k, $t := $.Tools }}    {"name": "{{ $t.Function.Name }}", "description": '
                f'"{{{{ $t.Function.Description }}}}", "parameters": {tojson("$t.Function.Parameters")}, '
                '"responses": null}{{ if ne (len (slice $.Tools $k)) 1 }},{{ end }}\n{{ end }}')
# the thinking tags as string actions: Ollama infers no thinking capability from them (chat.capabilities)
COHERE_THINKING = '{{ "<|START_THINKING|>" }}{{ .Thinking }}{{ "<|END_THINKING|>" }}'
