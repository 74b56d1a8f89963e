"""Where Ollama's generic tool parser finds tool calls in a reply, for a TEMPLATE with tools.

Without a PARSER, Ollama reads tool calls out of a model's reply with one parser for all models
(its tools/ package): it waits for a tag it takes from the TEMPLATE (the first text inside the
first `if` on .ToolCalls: chat.capabilities.inferred_tool_tag), then reads a tool's name and a
JSON object of arguments. edgepack's TEMPLATEs write calls through helpers and loops, so that
first text is often not the tag (Ollama then waits for "{", or for a turn header the model never
writes, and no call is returned). The tag is therefore read from the TEMPLATE's own renders: the
reply to a tool call is what the TEMPLATE writes for a call turn after the generation prompt,
up to the first "{", the tool's name or the end of its first line. It is declared where Ollama
reads it, in a block that is never executed (`{{ if false }}{{ if .ToolCalls }}TAG{{ end }}{{ end }}`,
first in the TEMPLATE: the output is unchanged). Hand-written: nothing else knows Ollama's rule.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from edgepack.chat.capabilities import inferred_tool_tag
from edgepack.chat.conversations import Message, ToolCall, WEATHER_TOOL
from edgepack.errors import EdgepackError

_CALL = ToolCall("get_weather", {"city": "Paris"})
_ASK = (Message("user", "Weather in Paris?"),)
_NEXT = Message("user", "Thanks.")  # the call turn is an earlier one, written whole
_TEXT = "\u00a7 sunny"  # a plain answer: no tag starts with it
_MARKER = re.compile(r"<[^<>\s{}]+>|\[[A-Z_]+\]")
_DECLARE = "{{/* the tag Ollama's tool parser reads calls after */}}{{ if false }}{{ if .ToolCalls }}%s{{ end }}{{ end }}"


@dataclass(frozen=True)
class ToolTag:
    tag: str  # what Ollama waits for ("{": any JSON object)
    json_calls: bool  # the arguments follow it as a JSON object, which Ollama's parser reads


def reply_tag(go_template: str, render) -> ToolTag | None:
    """The tag a model's reply with a tool call starts with, as the TEMPLATE writes call turns
    (None: it writes no call). The reply is what a call turn writes after the text both it and a
    turn of plain text start with (the turn's header, a closed think block); the tag is its first
    marker (`<...>`, `[...]`) or else its first line, up to a "{", the tool's name or the call's id."""
    try:
        call = render(go_template, _ASK + (Message("assistant", "", tool_calls=(_CALL,)), _NEXT), tools=(WEATHER_TOOL,))
        text = render(go_template, _ASK + (Message("assistant", _TEXT), _NEXT), tools=(WEATHER_TOOL,))
    except EdgepackError:
        return None
    start = text.find(_TEXT)
    common = 0
    while common < min(len(call), max(start, 0)) and call[common] == text[common]:
        common += 1
    for open_, close in (("<", ">"), ("[", "]")):  # never start inside a marker both turns begin alike
        if call.rfind(open_, 0, common) > call.rfind(close, 0, common):
            common = call.rfind(open_, 0, common)
    reply = call[common:].lstrip()
    if start < 0 or "Paris" not in reply:
        return None
    while (m := _MARKER.match(reply)) and "think" in m.group(0).lower():  # a think block the turn writes first
        reply = reply[m.end():].lstrip()
    marker = _MARKER.match(reply)
    stops = [i for i in (reply.find("{"), reply.find(_CALL.name), reply.find(_CALL.id), reply.find("\n")) if i >= 0]
    if marker and (not stops or marker.end() <= min(stops)):
        tag = marker.group(0)
    else:
        tag = reply[:min(stops)].strip() if stops else reply.strip()
    return ToolTag(tag or "{", _json_arguments(reply[len(tag):] if tag else reply))


def _json_arguments(after: str) -> bool:
    """Whether a JSON object holding the call's arguments follows (as Ollama's parser reads it)."""
    decoder = json.JSONDecoder()
    for i, c in enumerate(after):
        if c == "{":
            try:
                value, _ = decoder.raw_decode(after, i)
            except ValueError:
                continue
            if isinstance(value, dict) and (value == _CALL.arguments or value.get("arguments") == _CALL.arguments
                                            or value.get("parameters") == _CALL.arguments):
                return True
    return False


def declare_tag(go_template: str, tag: str) -> str:
    """The TEMPLATE with `tag` where Ollama's parser reads it (unchanged when it already reads it, or
    a longer tag the reply starts with: `<TOOLCALL>[` for `<TOOLCALL>`)."""
    current = inferred_tool_tag(go_template)
    if current == tag or (current != "{" and current.startswith(tag)) or "{{" in tag or "}}" in tag:
        return go_template
    return _DECLARE % tag + go_template
