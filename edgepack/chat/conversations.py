"""The conversations chat templates are checked on, and how each runtime is handed one.

Two sets, on purpose: PROBES choose a prompt format (edgepack.chat.translate); PROOF_PROBES,
which no choice was made on, prove it (edgepack.chat.proof). The proof set has what real chats
have and format choice avoids: padded whitespace, unicode, code with braces, several assistant
turns, thinking, tools and tool results.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Iterable

from edgepack.chat.gotemplate import GoStruct, JSONList, JSONMap, OrderedMap, PropertyType, go_json


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = "call12345"  # 9 alphanumerics: Mistral templates refuse other tool-call ids


@dataclass(frozen=True)
class Message:
    role: str  # "system", "user", "assistant" or "tool"
    content: str
    thinking: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_name: str = ""  # role "tool": the function whose result this is
    tool_call_id: str = "call12345"  # role "tool": the id of the call it answers (ToolCall.id)

    def to_dict(self) -> dict[str, Any]:
        """The message as Hugging Face chat templates see it (transformers' conventions)."""
        d: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.thinking:
            d["reasoning_content"] = self.thinking
        if self.tool_calls:
            d["tool_calls"] = [{**({"id": c.id} if c.id else {}), "type": "function",  # an empty id is none too
                                "function": {"name": c.name, "arguments": c.arguments}} for c in self.tool_calls]
        if self.role == "tool":  # an empty id or name is none (Ollama leaves them out)
            d |= {"tool_call_id": self.tool_call_id} if self.tool_call_id else {}
            d |= {"name": self.tool_name} if self.tool_name else {}
        return d

    def to_openai(self) -> dict[str, Any]:
        """The message as llama-server's OpenAI-compatible API takes it (arguments as a JSON string)."""
        d = self.to_dict()
        for call in d.get("tool_calls", []):
            call["function"] = dict(call["function"], arguments=json.dumps(call["function"]["arguments"]))
        return d


@dataclass(frozen=True)
class Probe:
    """One conversation and the settings it is rendered with."""

    messages: tuple[Message, ...]
    mode: str = "plain"  # "plain", "thinking" or "tools"
    think: bool | None = None  # enable_thinking / Ollama's think; None: not set
    tools: tuple[dict, ...] = ()
    # The final assistant message is continued (Ollama's prefill; transformers' continue_final_message).
    prefill: bool = False

    def hf_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.prefill:
            kwargs |= {"add_generation_prompt": False, "continue_final_message": True}
        if self.think is not None:
            kwargs["enable_thinking"] = self.think
        if self.tools:
            kwargs["tools"] = [dict(t) for t in self.tools]
        return kwargs


def _conversation(*pairs: tuple[str, str]) -> tuple[Message, ...]:
    return tuple(Message(role, content) for role, content in pairs)


def has_system(messages: Iterable[Message]) -> bool:
    return any(m.role == "system" for m in messages)


# The conversations a prompt format is chosen on. Contents carry no leading or trailing
# whitespace, so that formats are told apart by their layout alone; PROOF_PROBES add it back.
PROBES: dict[str, tuple[Message, ...]] = {
    "user": _conversation(("user", "Hello there.")),
    "system_user": _conversation(("system", "You are terse."), ("user", "What is 2+2?")),
    "multi_turn": _conversation(
        ("user", "Hi!"),
        ("assistant", "Hello! How can I help?"),
        ("user", "Write two lines:\nfirst, then second."),
    ),
    "system_multi_turn": _conversation(
        ("system", "Answer in French."),
        ("user", "Good morning."),
        ("assistant", "Bonjour."),
        ("user", "Thanks!"),
    ),
    "empty_system": _conversation(("system", ""), ("user", "Hello?")),
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                       "required": ["city"]},
    },
}

_PADDED = _conversation(
    ("system", "  Keep answers short.  \n"),
    ("user", "\n  What's the capital of France?  "),
    ("assistant", " Paris. \n"),
    ("user", "And of Italy?\n\n"),
)
_UNICODE_CODE = _conversation(
    ("user", "Ünïcødé — 日本語 🙂. Explain:\n```python\ndef f(d):\n    return {k: [v] for k, v in d.items()}\n```"),
    ("assistant", "It maps each key to a one-item list: `{'a': 1}` → `{'a': [1]}`."),
    ("user", "And in Go, {{ .Content }} or {% raw %}?"),
)
_SEVERAL_ASSISTANT_TURNS = _conversation(
    ("user", "Count with me: one."),
    ("assistant", "two"),
    ("user", "three"),
    ("assistant", "four"),
    ("user", "five"),
)
_SYSTEM_SEVERAL_TURNS = _conversation(
    ("system", "You are a pirate."),
    ("user", "Hello"),
    ("assistant", "Arr, hello!"),
    ("user", "Bye"),
)
_THINKING_HISTORY = (
    Message("user", "What is 17 * 3?"),
    Message("assistant", "51", thinking="17 * 3 = 51."),
    Message("user", "And 17 * 4?"),
)
_TOOL_ROUND_TRIP = (
    Message("user", "Weather in Paris?"),
    Message("assistant", "", tool_calls=(ToolCall("get_weather", {"city": "Paris"}),)),
    Message("tool", "18 C, sunny", tool_name="get_weather"),
)

PROOF_PROBES: dict[str, Probe] = {
    "padded": Probe(_PADDED),
    "unicode_code": Probe(_UNICODE_CODE),
    "several_assistant_turns": Probe(_SEVERAL_ASSISTANT_TURNS),
    "system_several_turns": Probe(_SYSTEM_SEVERAL_TURNS),
    "thinking_on": Probe(_THINKING_HISTORY, mode="thinking", think=True),
    "thinking_off": Probe(_THINKING_HISTORY, mode="thinking", think=False),
    # Thinking can change the system turn (an added instruction, another default): with a system prompt.
    "thinking_system_on": Probe((Message("system", "Be brief."), *_THINKING_HISTORY), mode="thinking", think=True),
    "thinking_system_off": Probe((Message("system", "Be brief."), *_THINKING_HISTORY), mode="thinking", think=False),
    "tools": Probe(_TOOL_ROUND_TRIP, mode="tools", tools=(WEATHER_TOOL,)),
    "tools_offered": Probe(_conversation(("user", "Any tools?")), mode="tools", tools=(WEATHER_TOOL,)),
}


# Path 2 only (llama-server's /apply-template has no prefill to compare): a final assistant turn
# that Ollama continues, with thinking (how the template writes a turn's thinking) and without;
# and an earlier turn's thinking for templates Ollama does not see as thinking (Cohere2 keeps it).
_PREFILL_USER = Message("user", "Name a prime below 10.")
GO_PROOF_PROBES: dict[str, Probe] = {
    "earlier_thinking": Probe(_THINKING_HISTORY),
    "prefill": Probe((_PREFILL_USER, Message("assistant", "Seven, because")), prefill=True),
    "prefill_thinking": Probe((_PREFILL_USER, Message("assistant", "Seven", thinking="Primes: 2, 3, 5, 7.")),
                              prefill=True),
    # Thinking padded with newlines, as models write it: Qwen3 strips them (so must the TEMPLATE).
    "prefill_padded_thinking": Probe((_PREFILL_USER, Message("assistant", "Seven", thinking="\nPrimes: 2, 3, 5.\n")),
                                     prefill=True),
    "prefill_thinking_on": Probe((_PREFILL_USER, Message("assistant", "Seven", thinking="Primes: 2, 3, 5, 7.")),
                                 mode="thinking", think=True, prefill=True),
    # The padded conversation without its system message, so that a template refusing system
    # messages (Gemma 2) is still checked on padded content.
    "padded_no_system": Probe(tuple(m for m in _PADDED if m.role != "system")),
    # An earlier answer with its thinking left in the text, as clients that do not split it send it
    # back: many templates cut the text at </think>; edgepack's TEMPLATE does too (chat.gohelpers)
    # where it can, else the difference is named.
    "thinking_in_content": Probe((Message("user", "What is 17 * 3?"),
                                  Message("assistant", "<think>\n17 * 3 = 51.\n</think>\n\n51"),
                                  Message("user", "And 17 * 4?"))),
}


# Ollama's tool types (api/types.go, template/template.go): (Go field, JSON name, omitempty).
_PROPERTY_TAGS = tuple((go, go[0].lower() + go[1:], True) for go in
                       ("AnyOf", "Type", "Items", "Description", "Enum", "Properties", "Required"))
_TOOL_TAGS = (("Type", "type", False), ("Items", "items", True), ("Function", "function", False))
_PARAMETERS_TAGS = (("Type", "type", False), ("Defs", "$defs", True), ("Items", "items", True),
                    ("Required", "required", True), ("Properties", "properties", False))
# api.ToolFunction leaves an empty description out; the template's templateToolFunction writes it
_API_FUNCTION_TAGS = (("Name", "name", False), ("Description", "description", True), ("Parameters", "parameters", False))
_TEMPLATE_FUNCTION_TAGS = (("Name", "name", False), ("Description", "description", False),
                           ("Parameters", "parameters", False))
_CALL_TAGS = (("ID", "ID", False), ("Function", "Function", False))
_CALL_FUNCTION_TAGS = (("Index", "Index", False), ("Name", "Name", False), ("Arguments", "Arguments", False))


def _tool_property(prop: Any) -> GoStruct:
    """api.ToolProperty as a request decodes it: nested properties keep their order."""
    prop = prop if isinstance(prop, dict) else {}
    kind = prop.get("type")
    nested = prop.get("properties")
    return GoStruct(_PROPERTY_TAGS, {
        # (nil slices as empty lists: Go prints both as [])
        "AnyOf": [_tool_property(p) for p in prop.get("anyOf") or []],
        "Type": PropertyType([kind] if isinstance(kind, str) else kind or []),
        "Items": prop.get("items"), "Description": prop.get("description", ""), "Enum": list(prop.get("enum") or []),
        "Properties": OrderedMap((k, _tool_property(v)) for k, v in nested.items()) if isinstance(nested, dict) else None,
        "Required": list(prop.get("required") or [])})


def _tool(tool: dict, *, for_template: bool) -> GoStruct:
    """One tool definition decoded into Ollama's types: the request's api.Tool (its top-level
    properties an ordered map), or the templateTool a TEMPLATE is given (a plain Go map, so sorted
    when written, and the description always written)."""
    fn = tool.get("function") or {}
    params = fn.get("parameters") or {}
    props = params.get("properties")
    properties = ((JSONMap if for_template else OrderedMap)((k, _tool_property(v)) for k, v in props.items())
                  if isinstance(props, dict) else None)
    parameters = GoStruct(_PARAMETERS_TAGS, {
        "Type": params.get("type", ""), "Defs": params.get("$defs"), "Items": params.get("items"),
        "Required": list(params.get("required") or []), "Properties": properties})
    function = GoStruct(_TEMPLATE_FUNCTION_TAGS if for_template else _API_FUNCTION_TAGS,
                        {"Name": fn.get("name", ""), "Description": fn.get("description", ""), "Parameters": parameters})
    return GoStruct(_TOOL_TAGS, {"Type": tool.get("type", ""), "Items": tool.get("items"), "Function": function},
                    printable=True)


def ollama_sent_tools(tools: Iterable[dict]) -> tuple[dict, ...]:
    """Tool definitions as current Ollama passes them on to llama-server: decoded into its api.Tool
    structs and encoded again (ollama api/types.go), so keys come in the structs' field order
    (parameters: type, $defs, items, required, properties), empty fields are left out, and keys
    the structs do not have are dropped; property order is kept (an ordered map)."""
    return tuple(json.loads(go_json(_tool(t, for_template=False))) for t in tools)


def ollama_tools(tools: Iterable[dict]) -> JSONList:
    """.Tools as Ollama's template sees them (template/template.go's templateTool, converted from
    the request's api.Tool): struct fields in Go's order, the description always written, the
    top-level properties a plain Go map (written with sorted keys), nested ones in their order."""
    return JSONList(_tool(t, for_template=True) for t in tools)


def _go_decoded(value: Any) -> Any:
    """A JSON value as Go's encoding/json decodes it into `any`: every number a float64."""
    if isinstance(value, dict):
        return {k: _go_decoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_decoded(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def template_messages(messages: Iterable[Message]) -> tuple[Message, ...]:
    """Messages as a Go template sees them through Ollama: tool-call arguments are a Go map
    (templateArgs), so their keys come sorted, nested ones too, and numbers as Go writes them."""
    return tuple(replace(m, tool_calls=tuple(replace(c, arguments=json.loads(go_json(dict(c.arguments))))
                                             for c in m.tool_calls)) if m.tool_calls else m for m in messages)


def template_tool_values(tools: Iterable[dict]) -> tuple[dict, ...]:
    """The tool definitions a template sees through Ollama, as plain JSON values in the order
    Go writes them: what transformers must be given to render the same tools."""
    return tuple(json.loads(go_json(t)) for t in ollama_tools(tools))


def ollama_template_data(messages: Iterable[Message], *, tools: Iterable[dict] = (), think: bool | None = None,
                         think_level: str = "") -> dict[str, Any]:
    """The data Ollama executes a `.Messages` template with (template.Execute after collate).

    Consecutive messages with the same role (but tool) are merged with a blank line; `.System`
    is every system message joined by a blank line, and system messages stay in `.Messages`.
    """
    collated: list[dict[str, Any]] = []
    system: list[str] = []
    for m in messages:
        if m.role == "system":
            system.append(m.content)
        if collated and collated[-1]["Role"] == m.role and m.role != "tool":
            collated[-1]["Content"] += "\n\n" + m.content
            continue
        calls = [GoStruct(_CALL_TAGS, {"ID": c.id, "Function": GoStruct(_CALL_FUNCTION_TAGS, {
                     "Index": i, "Name": c.name, "Arguments": JSONMap(_go_decoded(dict(c.arguments)))})}) for i, c in enumerate(m.tool_calls)]
        collated.append({"Role": m.role, "Content": m.content, "Thinking": m.thinking, "Images": [],
                         "ToolCalls": calls or None, "ToolName": m.tool_name,
                         "ToolCallID": m.tool_call_id if m.role == "tool" else ""})
    tools = list(tools)
    return {
        "System": "\n\n".join(system),
        "Messages": collated,
        "Tools": ollama_tools(tools) if tools else None,
        "Response": "",
        "Think": bool(think),
        "ThinkLevel": think_level,
        "IsThinkSet": think is not None,
    }
