"""Go text for the DeepSeek R1 distills' tools (the rows "deepseek-r1-distill" and
"deepseek-r1-distill-calls" of chat.tools.layouts, placed by
modelfiles/chat/families/deepseek-r1-distill.gotmpl.j2, and the row "deepseek-v3.1", placed by
modelfiles/chat/families/deepseek-v3.1.gotmpl.j2). The sources keep flags in a namespace
that are never set back (is_output_first, is_first): here each is derived from the messages before
the one being written."""

from __future__ import annotations

from edgepack.chat.gojson import tojson

# A result opens the outputs block if it is the conversation's first; any later one, in this run or
# a later one, continues it on a new line.
R1_DISTILL_RESULT = ('{{ $firstOutput := true }}{{ range $m := slice $.Messages 0 $i }}{{ if eq $m.Role "tool" }}'
                     "{{ $firstOutput = false }}{{ end }}{{ end }}{{ if $firstOutput }}<｜tool▁outputs▁begin｜>"
                     "{{ else }}\n{{ end }}<｜tool▁output▁begin｜>{{ .Content }}<｜tool▁output▁end｜>")

# The Qwen 32B distill: the conversation's first call opens the calls block (with its own
# <｜Assistant｜>), every other call goes on a new line; each turn's calls end the block and the turn.
R1_DISTILL_CALLS = ('{{ $callsBefore := false }}{{ range $m := slice $.Messages 0 $i }}{{ if and (eq $m.Role "assistant") '
                    "$m.ToolCalls }}{{ $callsBefore = true }}{{ end }}{{ end }}{{ range $j, $c := .ToolCalls }}"
                    "{{ if or $j $callsBefore }}\n<｜tool▁call▁begin｜>{{ else }}<｜Assistant｜><｜tool▁calls▁begin｜>"
                    "<｜tool▁call▁begin｜>{{ end }}function<｜tool▁sep｜>{{ $c.Function.Name }}\n```json\n"
                    f"{tojson('$c.Function.Arguments')}\n```<｜tool▁call▁end｜>{{{{ end }}}}"
                    "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>")

# DeepSeek V3.1: after the turn's text as it is (not cut at </think>; the family template writes it),
# the calls block holding each call (name, then its arguments as tojson), closed with the turn;
# each result in place of a turn.
V31_CALLS = ("<｜tool▁calls▁begin｜>{{ range $c := .ToolCalls }}<｜tool▁call▁begin｜>{{ $c.Function.Name }}"
             f"<｜tool▁sep｜>{tojson('$c.Function.Arguments')}<｜tool▁call▁end｜>{{{{ end }}}}"
             "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>")
V31_RESULT = "<｜tool▁output▁begin｜>{{ .Content }}<｜tool▁output▁end｜>"
