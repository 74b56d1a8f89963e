"""The table of tool layouts: how a template writes tool definitions, tool calls and tool results,
for the Go TEMPLATE's .Tools, .ToolCalls and role "tool" messages.

A layout is data only, like a row of edgepack.chat.formats; modelfiles/chat/turns.gotmpl.j2 writes
it in Go. edgepack.chat.translate tries each layout whose markers occur in the source template and
keeps the first under which the Go TEMPLATE renders the tool conversations of TOOL_CHOICE exactly
as transformers does (given the tools as Ollama hands them to a template:
conversations.template_tool_values); none kept, the TEMPLATE has no .Tools and Ollama refuses tool
requests on it. Definitions are written with Go's `json` through the "ep.pyjson" helper
(chat.gohelpers), which writes what Jinja's `tojson` writes.
Adding a layout: a row here; a layout the fields below cannot express needs a family template.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgepack.chat.conversations import Message, ToolCall, WEATHER_TOOL


@dataclass(frozen=True)
class ToolLayout:
    """Where the tools go (only for formats whose system messages are turns of their own).

    defs: (intro, before each definition, after each, outro): the definitions block, written in a
          system turn at the start whenever tools are given; after the first system message's
          text (and defs_joiner) when there is one, else after the format's default system
          prompt (and defs_joiner) when it has one, else alone.
    no_system_lead: what comes before the intro when there is no system message (None: the
          format's default system prompt and defs_joiner when it has one, else nothing).
    call: (before each call, between its name and arguments, after it), the arguments as JSON,
          after the assistant turn's thinking and text; call_lead before a call that follows text
          or another call.
    results: (before a run of tool messages, before each, after each, after the run).
    """

    name: str
    markers: tuple[str, ...]
    defs: tuple[str, str, str, str]
    defs_joiner: str
    call: tuple[str, str, str]
    results: tuple[str, str, str, str]
    no_system_lead: str | None = None
    call_lead: str = ""


_HERMES_DEFS = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>",
    "\n", "",
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\n</tool_call>",
)
_HERMES_CALL = ('<tool_call>\n{"name": "', '", "arguments": ', "}\n</tool_call>")
_HERMES_RESULTS = ("<|im_start|>user", "\n<tool_response>\n", "\n</tool_response>", "<|im_end|>\n")
_HERMES_MARKERS = ("<tools>", "<tool_call>", "<tool_response>")

LAYOUTS: tuple[ToolLayout, ...] = (
    # Qwen2.5, Qwen3, MiMo: calls follow the turn's (thinking and) text, on a line of their own
    ToolLayout("hermes", _HERMES_MARKERS, _HERMES_DEFS, "\n\n", _HERMES_CALL, _HERMES_RESULTS, call_lead="\n"),
    # QwQ: the same, with the joiner written even when there is no system message
    ToolLayout("hermes-qwq", _HERMES_MARKERS, _HERMES_DEFS, "\n\n", _HERMES_CALL, _HERMES_RESULTS, call_lead="\n",
               no_system_lead="\n\n"),
)

SECOND_TOOL = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a time zone.",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string"}, "format": {"type": "string"}},
                   "required": ["zone"]}}}
_CALLS = (ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {"zone": "Europe/Paris", "format": "24h"}))
# The conversations a layout is chosen on (tools offered: WEATHER_TOOL and SECOND_TOOL); the proof
# conversations (conversations.PROOF_PROBES "tools", "tools_offered") then check the choice.
TOOL_CHOICE: dict[str, tuple[Message, ...]] = {
    "tools/user": (Message("user", "What can you do?"),),
    "tools/system": (Message("system", "Use tools when needed."), Message("user", "What can you do?")),
    "tools/round_trip": (Message("user", "Weather and time in Paris?"),
                         Message("assistant", "", tool_calls=_CALLS),
                         Message("tool", "18 C", tool_name="get_weather"),
                         Message("tool", "14:05", tool_name="get_time"),
                         Message("assistant", "It is 18 C at 14:05."),
                         Message("user", "Thanks. And Rome?")),
    "tools/text_and_call": (Message("user", "Weather in Rome?"),
                            Message("assistant", "Let me check.", tool_calls=_CALLS[:1]),
                            Message("tool", "21 C", tool_name="get_weather")),
}
CHOICE_TOOLS = (WEATHER_TOOL, SECOND_TOOL)


def candidate_layouts(chat_template: str) -> list[ToolLayout]:
    return [layout for layout in LAYOUTS if all(m in chat_template for m in layout.markers)]
