"""How a template's tool layout is chosen: the conversations a layout is tried on, and the first
candidate (chat.tools.layouts) under which the Go TEMPLATE renders them as the source does."""

from __future__ import annotations

from dataclasses import replace

from edgepack.chat.conversations import Message, ToolCall, WEATHER_TOOL
from edgepack.chat.formats import ChatFormat, ThinkingLayout
from edgepack.chat.tools.layout import ToolLayout
from edgepack.chat.tools.layouts import LAYOUTS
from edgepack.errors import EdgepackError

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
# A template that refuses SECOND_TOOL (Command R+ tool_use needs every property described) is chosen
# on the same conversations offering WEATHER_TOOL alone: rendered with this suffix.
ONE_TOOL = "@one-tool"


def candidate_layouts(chat_template: str) -> list[ToolLayout]:
    return [layout for layout in LAYOUTS if all(m in chat_template for m in layout.markers)]


def tools_hold(renders, go_template: str, render) -> bool:
    """Whether `go_template` renders every TOOL_CHOICE conversation the source renders (`renders`:
    chat.translate.SourceRenders; `render`: its Go renderer), exactly, and the source renders at
    least one with tool calls and results (else nothing proves them: Kimi K2 Instruct's queue of
    call ids uses list.append, which transformers' sandbox refuses)."""
    for suffix, tools in (("", CHOICE_TOOLS), (ONE_TOOL, CHOICE_TOOLS[:1])):
        round_trips = 0
        for name, messages in TOOL_CHOICE.items():
            want = renders.expected(name + suffix)
            if want is None:
                continue
            try:
                if render(go_template, messages, tools=tools) != want:
                    return False
            except EdgepackError:  # the Go model refuses the text or the source refused the rest
                return False
            round_trips += any(m.role == "tool" for m in messages)
        if round_trips:
            return True
    return False


def choose_layout(renders, fmt: ChatFormat, thinking: ThinkingLayout | None, render,
                  build) -> tuple[ToolLayout | None, ThinkingLayout | None]:
    """The first candidate layout under which the TEMPLATE (`build(layout, thinking)`) renders the
    tool conversations and still every choice conversation exactly, with the thinking layout (which
    tool-call turns may show more of: empty_after_last_user); (None, thinking) if none does."""
    variants = [thinking]
    if thinking and thinking.kept == "after_last_user":
        variants.append(replace(thinking, empty_after_last_user=True))
    for layout in renders.tool_layouts:
        if (layout.defs_at == "family") != bool(fmt.go_file) or layout.family and layout.family != fmt.family:
            continue  # a family's own template places its own layout's pieces
        if layout.defs_at == "system" and fmt.system != "turn":
            continue  # the definitions go in a system turn of their own
        for variant in variants:
            go = build(layout, variant)
            if layout.loops and ".Thinking" not in go:
                continue  # its loop needs Go 1.24's range over an integer: only where Ollama >= 0.9 is needed anyway
            if tools_hold(renders, go, render) and renders.choice_holds(go):
                return layout, variant
    return None, thinking
