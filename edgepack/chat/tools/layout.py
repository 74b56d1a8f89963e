"""What a tool layout is: how a template writes tool definitions, tool calls and tool results, as
pieces of Go template text for the TEMPLATE's .Tools, .ToolCalls and role "tool" messages, and where
modelfiles/chat/turns.gotmpl.j2 (or a family's own template) puts them. The rows are in
chat.tools.layouts; how one is chosen, in chat.tools.choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgepack.chat.gojson import tojson, tojson_indented


@dataclass(frozen=True)
class ToolLayout:
    """Go text for the three places tools appear, and where the definitions go.

    defs: the definitions block (Go text; `$.Tools` are the tools), written when tools are given:
      defs_at "system": in one system turn at the start, after the first system message's text and
            defs_joiner (joiner_if_text: only when that text is not empty); without a system
            message after no_system_lead (None: the format's default system prompt and the joiner
            when it has one, else nothing);
            text_after_defs: the system text after the definitions (and the joiner) instead;
      defs_at "after_system": right after the first system turn (a system message or the default
            system prompt), or first when there is none;
      defs_at "last_user": right before the last user turn;
      defs_at "first_user": at the start of the first user turn's text;
      defs_at "header": inside the format's fixed header or preamble, right after header_defs_after;
      defs_at "family": where a family's own Go template (ChatFormat.go_file) writes them; such a
            layout names its family and is tried only for that family's rows.
    calls: written for an assistant message with tool calls (dot: the message), after its text, or
          instead of it (calls_replace_text), before the turn's end.
    result: one tool message (dot: the message; $prevRole and $nextRole: the roles around it, "" at
          the ends), in place of a turn.
    """

    name: str
    markers: tuple[str, ...]
    defs: str
    calls: str
    result: str
    defs_at: str = "system"
    defs_joiner: str = ""
    joiner_if_text: bool = False
    no_system_lead: str | None = None
    text_after_defs: bool = False
    calls_replace_text: bool = False
    call_turn: str = ""  # Go text for a whole assistant turn with calls, before its end (Qwen3-Coder)
    call_turn_end: str | None = None  # the end of a call turn that is not the last message (None: the format's)
    header_defs_after: str = ""  # defs_at "header": the definitions go into the fixed text, after this text,
    header_defs_replace: str = ""  # in place of this text right after it (written when no tools are given)
    header_lead: str = ""  # "header" formats: written first in the header turn when tools are given
    # defs_at "system": a first system message holding this text gets the definitions in place of
    # each occurrence (its text written as it is), not after it (MiniCPM 5's <tool_def_sep>)
    defs_marker: str = ""
    # a format's default system prompt with tools given: this text of it replaced by that (Granite 3.3)
    default_system_tools: tuple[str, str] | None = None
    helpers: tuple[str, ...] = ("pyjson",)  # the chat.gohelpers helpers the Go text calls
    family: str = ""  # defs_at "family": the ChatFormat.family whose go_file places the pieces

    @property
    def loops(self) -> bool:
        """Whether its Go text loops over a text's bytes or a value's (range over an integer: Go 1.24,
        so only in a TEMPLATE that reads .Thinking, which needs Ollama 0.9 or later anyway)."""
        return (any(h in ("pystr", "pyjson_a") or h.startswith(("gemma", "kimi3")) for h in self.helpers)
                or bool(self.defs_marker)
                or ":= len " in self.defs + self.calls + self.result + self.call_turn)

    @property
    def go_result(self) -> str:
        """`result` with $prevRole and $nextRole set first (in a range over .Messages with index $i)."""
        roles = ('{{ $prevRole := "" }}{{ range $m := slice $.Messages 0 $i }}{{ $prevRole = $m.Role }}{{ end }}'
                 '{{ $nextRole := "" }}{{ $rest := slice $.Messages $i }}{{ if gt (len $rest) 1 }}'
                 '{{ $nextRole = (index $rest 1).Role }}{{ end }}')
        return (roles if "$prevRole" in self.result or "$nextRole" in self.result else "") + self.result


def each_tool(before: str = "", after: str = "", between: str = "", indent: int = 0, depth: int = 0) -> str:
    """Each definition as tojson (tojson(indent=N), `depth` levels deep), with text around it and between two."""
    sep = f"{{{{ if $k }}}}{between}{{{{ end }}}}" if between else ""
    json_text = tojson_indented("$t", indent, depth) if indent else f"{tojson('$t')}"
    return f"{{{{ range $k, $t := $.Tools }}}}{sep}{before}{json_text}{after}{{{{ end }}}}"
