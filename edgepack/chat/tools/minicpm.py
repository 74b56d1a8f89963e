"""Go text for MiniCPM 5's tools (the row "minicpm5" of chat.tools.layouts, in the generic ChatML
TEMPLATE with thinking kept after the last user turn).

Its source writes an assistant turn with calls as follows, and so does this text: the text is
cut at </think> when the message has no thinking of its own (what follows the last </think>,
newlines stripped before it; the thinking what precedes the first, after the last <think>); then
only what precedes the text's first `<tool_sep>` is kept: the source means to put each call's
<function> element in place of a marker, but sets `processed_content` inside a for loop, where
a Jinja2 assignment does not outlive the iteration, so the text before the first marker is all
that remains; the calls are then written after it (the source tests a variable `has_tool_sep`
that it never sets), each after a newline unless it is the first and that text is empty. Byte
loops over the text (range over an integer, Go 1.24; the TEMPLATE reads .Thinking, so needs
Ollama 0.9 or later anyway). An argument value is written as Jinja's `{{ value }}`: a string as
it is, in a CDATA block when it holds <, & or a newline, any other value as Python's str()
(chat.gopystr).
"""

from __future__ import annotations

from edgepack.chat.gojson import tojson

DEFS_MARKER = "<tool_def_sep>"  # in a system message: replaced by the definitions
_SEP = "<tool_sep>"

DEFS = ("# Tools\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>"
        "{{ range $t := $.Tools }}\n" + tojson("$t") + "{{ end }}"
        "\n</tools>\n\nTool usage guidelines:\n- You may call zero or more functions. If no function calls are needed, "
        "just answer normally and do not include any <function ... </function>.\n- When calling a function, return an "
        'XML object within <function ... </function> using:\n<function name="function-name"><param name="param-name">'
        "param-value</param></function>\n- param-value may be multi-line. If it contains <, & or newline characters, "
        'wrap it in a CDATA block: <param name="param-name"><![CDATA[...multi-line value...]]></param>')

RESULT = ('{{ if ne $prevRole "tool" }}<|im_start|>user{{ end }}\n<tool_response>\n{{ .Content }}\n'
          '</tool_response>{{ if ne $nextRole "tool" }}<|im_end|>\n{{ end }}')


def _at(text: str, offset: str, marker: str) -> str:
    """Go condition: `marker` starts at byte `offset` of the string variable `text`."""
    n = len(marker.encode("utf-8"))
    return f'and (ge (len (slice {text} {offset})) {n}) (eq (slice (slice {text} {offset}) 0 {n}) "{marker}")'


def _lstrip_nl(source: str, target: str) -> str:
    """Go text setting `target` to `source` without its leading newlines (str.lstrip('\\n'));
    `source` is read once into $from, so that it may be `target` itself."""
    return (f'{{{{ $from := {source} }}}}{{{{ {target} = "" }}}}{{{{ $left := true }}}}{{{{ range $p := len $from }}}}'
            '{{ if and $left (ne (slice (slice $from $p) 0 1) "\\n") }}{{ ' + target + ' = slice $from $p }}'
            "{{ $left = false }}{{ end }}{{ end }}")


def _call(c: str) -> str:
    """One call (the Go variable `c`) as <function name=...><param name=...>...</param></function>."""
    return (f'<function name="{{{{ {c}.Function.Name }}}}">{{{{ range $k, $v := {c}.Function.Arguments }}}}'
            '<param name="{{ $k }}">{{ if eq (printf "%T" $v) "string" }}{{ $cdata := false }}{{ range $q := len $v }}'
            '{{ if eq (slice (slice $v $q) 0 1) "<" "&" "\\n" }}{{ $cdata = true }}{{ end }}{{ end }}'
            "{{ if $cdata }}<![CDATA[{{ $v }}]]>{{ else }}{{ $v }}{{ end }}"
            '{{ else }}{{ template "ep.pystr" $v }}{{ end }}</param>{{ end }}</function>')


# The cut at </think>: $head before the first, $tail after the last; the thinking ($think) is
# .Thinking, or what follows the last <think> in $head when more than newlines.
_CUT = ('{{ $text := .Content }}{{ $think := .Thinking }}{{ if not $think }}{{ $cut := false }}{{ $head := "" }}'
        '{{ $tail := "" }}{{ range $p := len $text }}{{ if ' + _at("$text", "$p", "</think>") + " }}"
        "{{ if not $cut }}{{ $head = slice $text 0 $p }}{{ end }}{{ $cut = true }}{{ $tail = slice (slice $text $p) 8 }}"
        "{{ end }}{{ end }}{{ if $cut }}" + _lstrip_nl("$tail", "$text")
        + '{{ $t := $head }}{{ range $p := len $head }}{{ if ' + _at("$head", "$p", "<think>") + " }}"
        "{{ $t = slice (slice $head $p) 7 }}{{ end }}{{ end }}{{ range $p := len $t }}"
        '{{ if ne (slice (slice $t $p) 0 1) "\\n" }}{{ $think = $t }}{{ end }}{{ end }}{{ end }}{{ end }}')
# The text before the first <tool_sep> ($text: the source's `content`)
_BEFORE_SEP = ("{{ $found := false }}{{ $before := $text }}{{ range $p := len $text }}{{ if and (not $found) ("
               + _at("$text", "$p", _SEP) + ") }}{{ $before = slice $text 0 $p }}{{ $found = true }}{{ end }}{{ end }}"
               "{{ $text = $before }}")
# The thinking after the last user turn, the text then without its leading newlines
_THINKING = ('{{ $shown := $text }}{{ if and (gt $i $lastUser) $think }}<think>\n{{ template "ep.strip_nl" $think }}'
             "\n</think>\n\n" + _lstrip_nl("$text", "$shown") + "{{ end }}{{ $shown }}")
# ... then each call, after a newline unless it is the first and the text is empty
_CALLS = "{{ range $j, $c := $_.ToolCalls }}{{ if or $j $text }}\n{{ end }}" + _call("$c") + "{{ end }}"

CALL_TURN = "<|im_start|>assistant\n" + _CUT + _BEFORE_SEP + _THINKING + _CALLS
