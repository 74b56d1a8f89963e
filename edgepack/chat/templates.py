"""Translate a Hugging Face chat template (Jinja) into an Ollama TEMPLATE (Go text/template).

A chat template is never guessed. Each known prompt format (`ChatFormat`, one row per family
variant) is turned into a Go template (modelfiles/chat/turns.gotmpl.j2), and a format is
accepted only when, for every probe conversation, that Go template filled the way Ollama fills
it renders exactly the text the Hugging Face template renders with transformers' own Jinja
renderer. Anything else is reported as untranslatable.

Pure: no files are written and nothing is run; the Go templates are read from the package data.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Iterable

import jinja2

from edgepack.errors import ChatTemplateError, GoTemplateError
from edgepack.paths import package_data_dir


# --------------------------------------------------------------------------- conversations

@dataclass(frozen=True)
class Message:
    role: str  # "system", "user" or "assistant"
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


def _conversation(*pairs: tuple[str, str]) -> tuple[Message, ...]:
    return tuple(Message(role, content) for role, content in pairs)


# The conversations every translation must reproduce exactly. Contents carry no leading or
# trailing whitespace: several families trim message contents in Jinja, which Go cannot do.
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


def has_system(messages: Iterable[Message]) -> bool:
    return any(m.role == "system" for m in messages)


# --------------------------------------------------------------------------- Hugging Face side

@dataclass(frozen=True)
class SpecialTokens:
    """The token strings a chat template sees as `bos_token` / `eos_token` (None: undefined)."""

    bos: str | None = None
    eos: str | None = None

    def template_kwargs(self) -> dict[str, str]:
        # transformers passes only the special tokens a tokenizer defines.
        return {k: v for k, v in (("bos_token", self.bos), ("eos_token", self.eos)) if v is not None}


def render_hf(chat_template: str, messages: Iterable[Message], tokens: SpecialTokens) -> str:
    """Render a Hugging Face chat template exactly as `apply_chat_template(..., add_generation_prompt=True)`.

    Uses transformers' own renderer (sandboxed jinja2, trim_blocks, lstrip_blocks,
    raise_exception, strftime_now, tojson). Raises jinja2.TemplateError when the template does.
    """
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(
        conversations=[[m.to_dict() for m in messages]],
        chat_template=chat_template,
        add_generation_prompt=True,
        **tokens.template_kwargs(),
    )
    return rendered[0]


# --------------------------------------------------------------------------- Ollama side

def ollama_template_data(messages: Iterable[Message]) -> dict[str, Any]:
    """The data Ollama executes a `.Messages` template with (its template.Execute + collate).

    Consecutive messages with the same role are merged with a blank line; `.System` is every
    system message joined by a blank line, and system messages also stay in `.Messages`.
    """
    collated: list[dict[str, Any]] = []
    system: list[str] = []
    for m in messages:
        if m.role == "system":
            system.append(m.content)
        if collated and collated[-1]["Role"] == m.role and m.role != "tool":
            collated[-1]["Content"] += "\n\n" + m.content
        else:
            collated.append({"Role": m.role, "Content": m.content, "Thinking": "", "Images": [], "ToolCalls": []})
    return {
        "System": "\n\n".join(system),
        "Messages": collated,
        "Tools": [],
        "Response": "",
        "Think": False,
        "IsThinkSet": False,
    }


def render_ollama(go_template: str, messages: Iterable[Message]) -> str:
    """Render an Ollama TEMPLATE for a chat the way Ollama does (Python model of Go's text/template)."""
    if ".Messages" not in go_template:
        raise ChatTemplateError("only templates that range over .Messages can be rendered here")
    return GoTemplate(go_template).execute(ollama_template_data(messages))


# ---- a small interpreter for the part of Go's text/template the translations use
# (text, trim markers, comments, if/else if/else, range with variables, variables and
# assignment, fields, string/number literals, parentheses, and the builtins below).

_GO_SPACE = " \t\r\n"  # what text/template's trim markers remove


def _go_truth(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, (str, list, tuple, dict)):
        return len(value) > 0
    return True


def _go_print(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _go_eq(a: Any, *others: Any) -> bool:
    return any(type(a) is type(b) and a == b for b in others)


def _go_slice(seq: Any, *idx: int) -> Any:
    if len(idx) == 1:
        return seq[idx[0]:]
    if len(idx) == 2:
        return seq[idx[0]:idx[1]]
    raise GoTemplateError("slice takes one or two indexes here")


def _go_index(seq: Any, *keys: Any) -> Any:
    for k in keys:
        seq = seq[k]
    return seq


_GO_FUNCS = {
    "not": lambda a: not _go_truth(a),
    "eq": _go_eq,
    "ne": lambda a, b: not _go_eq(a, b),
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "len": len,
    "index": _go_index,
    "slice": _go_slice,
}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<num>-?\d+)
      | (?P<decl>:=)
      | (?P<assign>=)
      | (?P<lparen>\()
      | (?P<rparen>\)(?:\.[A-Za-z0-9_]+)*)  # a field chain may follow a parenthesised pipeline
      | (?P<comma>,)
      | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
      | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


def _lex_action(src: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(src):
        if src[pos:].strip() == "":
            break
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise GoTemplateError(f"unsupported Go template syntax near {src[pos:pos + 20]!r}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


@dataclass
class _Text:
    text: str


@dataclass
class _Action:
    tokens: list


@dataclass
class _If:
    branches: list  # [(tokens, body)], else body has tokens None


@dataclass
class _Range:
    tokens: list
    body: list
    else_body: list


class GoTemplate:
    def __init__(self, source: str):
        self.nodes = self._parse(self._split(source))

    # lexing into text and actions, applying trim markers
    @staticmethod
    def _split(source: str) -> list[tuple[str, str]]:
        parts: list[tuple[str, str]] = []
        pos = 0
        trim_next = False
        while True:
            start = source.find("{{", pos)
            text = source[pos:] if start < 0 else source[pos:start]
            if trim_next:
                text = text.lstrip(_GO_SPACE)
            if start < 0:
                parts.append(("text", text))
                return parts
            inner_start = start + 2
            if source.startswith("- ", inner_start) or source.startswith("-\n", inner_start):
                text = text.rstrip(_GO_SPACE)
                inner_start += 1
            parts.append(("text", text))
            end = inner_start
            while True:  # find the closing braces outside string literals
                if source.startswith("}}", end):
                    break
                if end >= len(source):
                    raise GoTemplateError("unclosed action")
                if source[end] == '"':
                    end += 1
                    while source[end] != '"':
                        end += 2 if source[end] == "\\" else 1
                end += 1
            inner = source[inner_start:end]
            trim_next = inner.endswith(" -") or inner.endswith("\n-")
            if trim_next:
                inner = inner[:-1]
            inner = inner.strip()
            if not (inner.startswith("/*") and inner.endswith("*/")):
                parts.append(("action", inner))
            pos = end + 2

    def _parse(self, parts: list[tuple[str, str]]) -> list:
        stack: list[tuple[Any, list]] = []  # (control node, current body list)
        root: list = []
        body = root
        for kind, value in parts:
            if kind == "text":
                if value:
                    body.append(_Text(value))
                continue
            tokens = _lex_action(value)
            head = tokens[0][1] if tokens and tokens[0][0] == "ident" else None
            if head == "if":
                node = _If([(tokens[1:], [])])
                body.append(node)
                stack.append((node, body))
                body = node.branches[0][1]
            elif head == "range":
                node = _Range(tokens[1:], [], [])
                body.append(node)
                stack.append((node, body))
                body = node.body
            elif head == "else":
                node, _ = stack[-1]
                rest = tokens[1:]
                if isinstance(node, _If):
                    if rest and rest[0] == ("ident", "if"):
                        node.branches.append((rest[1:], []))
                    else:
                        node.branches.append((None, []))
                    body = node.branches[-1][1]
                elif isinstance(node, _Range) and not rest:
                    body = node.else_body
                else:
                    raise GoTemplateError(f"unsupported else: {value!r}")
            elif head == "end":
                _, body = stack.pop()
            elif head in ("with", "define", "template", "block", "break", "continue"):
                raise GoTemplateError(f"unsupported Go template action {head!r}")
            else:
                body.append(_Action(tokens))
        if stack:
            raise GoTemplateError("missing {{ end }}")
        return root

    # evaluation
    def execute(self, data: dict[str, Any]) -> str:
        out: list[str] = []
        self._run(self.nodes, data, [{"$": data}], out)
        return "".join(out)

    def _run(self, nodes: list, dot: Any, scopes: list[dict], out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                out.append(node.text)
            elif isinstance(node, _Action):
                value, declared = self._pipeline(node.tokens, dot, scopes)
                if not declared:
                    out.append(_go_print(value))
            elif isinstance(node, _If):
                for tokens, body in node.branches:
                    if tokens is None or _go_truth(self._pipeline(tokens, dot, scopes)[0]):
                        self._run(body, dot, scopes + [{}], out)
                        break
            elif isinstance(node, _Range):
                tokens = node.tokens
                names: list[str] = []
                if any(t[0] == "decl" for t in tokens):
                    split = [i for i, t in enumerate(tokens) if t[0] == "decl"][0]
                    names = [t[1] for t in tokens[:split] if t[0] == "var"]
                    tokens = tokens[split + 1:]
                seq = self._pipeline(tokens, dot, scopes)[0] or []
                if not seq:
                    self._run(node.else_body, dot, scopes + [{}], out)
                for i, item in enumerate(seq):
                    scope: dict[str, Any] = {}
                    if len(names) == 1:
                        scope[names[0]] = item
                    elif len(names) == 2:
                        scope[names[0]], scope[names[1]] = i, item
                    self._run(node.body, item, scopes + [scope], out)

    def _pipeline(self, tokens: list, dot: Any, scopes: list[dict]) -> tuple[Any, bool]:
        """Evaluate `$x := ...`, `$x = ...` or a plain command; returns (value, was_assignment)."""
        if len(tokens) >= 2 and tokens[0][0] == "var" and tokens[1][0] in ("decl", "assign"):
            value = self._command(tokens[2:], dot, scopes)
            name = tokens[0][1]
            if tokens[1][0] == "decl":
                scopes[-1][name] = value
            else:
                for scope in reversed(scopes):
                    if name in scope:
                        scope[name] = value
                        break
                else:
                    raise GoTemplateError(f"undefined variable {name}")
            return value, True
        return self._command(tokens, dot, scopes), False

    def _command(self, tokens: list, dot: Any, scopes: list[dict]) -> Any:
        args, pos = [], 0
        while pos < len(tokens):
            arg, pos = self._operand(tokens, pos, dot, scopes)
            args.append(arg)
        if not args:
            raise GoTemplateError("empty command")
        head = args[0]
        if isinstance(head, _Func):
            return head.call(self, args[1:], dot, scopes)
        if len(args) > 1:
            raise GoTemplateError("only functions take arguments")
        return head.value if isinstance(head, _Lazy) else head

    def _operand(self, tokens: list, pos: int, dot: Any, scopes: list[dict]) -> tuple[Any, int]:
        kind, text = tokens[pos]
        if kind == "ident":
            if text in ("and", "or"):
                return _Func(text), pos + 1
            if text in _GO_FUNCS:
                return _Func(text), pos + 1
            if text in ("true", "false"):
                return text == "true", pos + 1
            raise GoTemplateError(f"unknown function {text!r}")
        if kind == "lparen":
            depth, end = 1, pos + 1
            while depth:
                depth += {"lparen": 1, "rparen": -1}.get(tokens[end][0], 0)
                end += 1
            inner = tokens[pos + 1:end - 1]
            chain = tokens[end - 1][1].split(".")[1:]
            return _Lazy(lambda: _fields(self._command(inner, dot, scopes), chain)), end
        if kind == "str":
            return json.loads(text), pos + 1
        if kind == "num":
            return int(text), pos + 1
        if kind == "field":
            return _fields(dot, text.split(".")[1:] if text != "." else []), pos + 1
        if kind == "var":
            name, *path = text.split(".")
            for scope in reversed(scopes):
                if name in scope:
                    return _fields(scope[name], path), pos + 1
            raise GoTemplateError(f"undefined variable {name}")
        raise GoTemplateError(f"unexpected {text!r}")


class _Lazy:
    """A parenthesised pipeline, evaluated when used (so `and`/`or` can short-circuit)."""

    def __init__(self, thunk):
        self._thunk = thunk

    @property
    def value(self) -> Any:
        return self._thunk()


@dataclass
class _Func:
    name: str

    def call(self, tmpl: GoTemplate, args: list, dot: Any, scopes: list[dict]) -> Any:
        def value(a):
            return a.value if isinstance(a, _Lazy) else a

        if self.name in ("and", "or"):
            result = None
            for a in args:  # Go evaluates and/or lazily and returns the deciding argument
                result = value(a)
                if _go_truth(result) != (self.name == "and"):
                    return result
            return result
        return _GO_FUNCS[self.name](*[value(a) for a in args])


def _fields(value: Any, path: list[str]) -> Any:
    for name in path:
        if not isinstance(value, dict) or name not in value:
            raise GoTemplateError(f"no field {name!r}")
        value = value[name]
    return value


# --------------------------------------------------------------------------- prompt formats

@dataclass(frozen=True)
class ChatFormat:
    """One family variant's prompt layout; `{bos}`/`{eos}` stand for the model's token strings.

    system: "turn"       system messages are turns of their own, where they occur
            "first_user" the system prompt goes inside the first user turn (system_wrap around it)
            "last_user"  ... inside the last message when it is a user turn (Mistral v3)
            "header"     a system turn is always written first, starting with a fixed preamble
                         (extracted from the template, e.g. Llama 3.1's knowledge/today dates)
            "dropped"    system messages are not rendered at all
    """

    family: str
    variant: str
    markers: tuple[str, ...]  # all must occur in the Hugging Face template's source
    user: tuple[str, str]
    assistant: tuple[str, str]
    generation: str  # written after the conversation, unless it ends with an assistant turn
    stops: tuple[str, ...]
    system: str = "turn"
    system_turn: tuple[str, str] = ("", "")
    system_wrap: tuple[str, str] = ("", "\n\n")
    rejects_system: bool = False  # the template raises on system messages (edgepack: first_user)
    skip_empty_system: bool = False
    default_system: bool = False  # a default system prompt is written when none is given
    preamble: bool = False  # fixed text right after BOS, before any turn
    separator: str = ""  # between turns (not before the first)
    turn_bos: str = ""  # written before every user turn but the first (Llama 2's "{bos}")
    note: str = ""

    def with_tokens(self, tokens: SpecialTokens) -> ChatFormat:
        def sub(s: str) -> str:
            return s.replace("{bos}", tokens.bos or "").replace("{eos}", tokens.eos or "")

        def pair(p: tuple[str, str]) -> tuple[str, str]:
            return (sub(p[0]), sub(p[1]))

        return replace(
            self, user=pair(self.user), assistant=pair(self.assistant), generation=sub(self.generation),
            system_turn=pair(self.system_turn), system_wrap=pair(self.system_wrap),
            stops=tuple(sub(s) for s in self.stops), turn_bos=sub(self.turn_bos),
        )

    @property
    def name(self) -> str:
        return f"{self.family}/{self.variant}"


CHATML = dict(
    markers=("<|im_start|>", "<|im_end|>"),
    system_turn=("<|im_start|>system\n", "<|im_end|>\n"),
    user=("<|im_start|>user\n", "<|im_end|>\n"),
    assistant=("<|im_start|>assistant\n", "<|im_end|>\n"),
    generation="<|im_start|>assistant\n",
    stops=("<|im_start|>", "<|im_end|>"),
)
LLAMA3 = dict(
    markers=("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    system_turn=("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>"),
    user=("<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"),
    assistant=("<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
    generation="<|start_header_id|>assistant<|end_header_id|>\n\n",
    stops=("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
)
GEMMA = dict(
    markers=("<start_of_turn>", "<end_of_turn>"),
    user=("<start_of_turn>user\n", "<end_of_turn>\n"),
    assistant=("<start_of_turn>model\n", "<end_of_turn>\n"),
    generation="<start_of_turn>model\n",
    stops=("<start_of_turn>", "<end_of_turn>"),
    system="first_user",
)
MISTRAL_STOPS = ("[INST]", "[/INST]")
DEEPSEEK3 = dict(
    markers=("<｜User｜>", "<｜Assistant｜>"),
    user=("<｜User｜>", ""),
    assistant=("<｜Assistant｜>", "<｜end▁of▁sentence｜>"),
    stops=("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"),
)
GRANITE = dict(
    markers=("<|start_of_role|>", "<|end_of_role|>"),
    system_turn=("<|start_of_role|>system<|end_of_role|>", "<|end_of_text|>\n"),
    user=("<|start_of_role|>user<|end_of_role|>", "<|end_of_text|>\n"),
    assistant=("<|start_of_role|>assistant<|end_of_role|>", "<|end_of_text|>\n"),
    generation="<|start_of_role|>assistant<|end_of_role|>",
    stops=("<|start_of_role|>", "<|end_of_role|>", "<|end_of_text|>"),
)
PHI3_STOPS = ("<|end|>", "<|user|>", "<|assistant|>")
ALPACA = dict(
    markers=("### Instruction:", "### Response:"),
    system_turn=("", "\n\n"),
    user=("### Instruction:\n", "\n\n"),
    assistant=("### Response:\n", "{eos}\n\n"),
    generation="### Response:\n",
    stops=("### Instruction:", "### Response:"),
)
VICUNA = dict(
    markers=("USER: ", "ASSISTANT:"),
    user=("USER: ", "\n"),
    assistant=("ASSISTANT: ", "{eos}\n"),
    generation="ASSISTANT:",
    stops=("USER:", "ASSISTANT:"),
)

FORMATS: tuple[ChatFormat, ...] = (
    ChatFormat("chatml", "plain", **CHATML),
    ChatFormat("chatml", "default-system", **CHATML, default_system=True,
               note="writes the model's default system prompt when none is given"),
    ChatFormat("chatml", "yi", markers=("<|im_start|>", "<|im_end|>"), system_turn=("", ""),
               user=("<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n"),
               assistant=("", "<|im_end|>\n"), generation="", stops=CHATML["stops"]),
    ChatFormat("llama3", "3", **LLAMA3),
    ChatFormat("llama3", "3.1", **LLAMA3, system="header",
               note="the system turn starts with the template's knowledge-cutoff/today dates, "
                    "fixed at the time the Modelfile was written"),
    ChatFormat("llama2", "chat", markers=("[INST]", "<<SYS>>"), user=("[INST] ", " [/INST]"), turn_bos="{bos}",
               assistant=(" ", " {eos}"), generation="", system="first_user",
               system_wrap=("<<SYS>>\n", "\n<</SYS>>\n\n"),
               stops=("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>")),
    ChatFormat("mistral", "v1-no-system", markers=("[INST]",), user=("[INST] ", " [/INST]"),
               assistant=("", "{eos}"), generation="", system="first_user", rejects_system=True,
               stops=MISTRAL_STOPS),
    ChatFormat("mistral", "v1", markers=("[INST]",), user=(" [INST] ", " [/INST]"),
               assistant=(" ", "{eos}"), generation="", system="first_user", stops=MISTRAL_STOPS),
    ChatFormat("mistral", "v3", markers=("[INST]",), user=("[INST] ", "[/INST]"),
               assistant=(" ", "{eos}"), generation="", system="last_user", stops=MISTRAL_STOPS),
    ChatFormat("mistral", "v3-tekken", markers=("[INST]",), user=("[INST]", "[/INST]"),
               assistant=("", "{eos}"), generation="", system="last_user", stops=MISTRAL_STOPS),
    ChatFormat("mistral", "v7", markers=("[INST]", "[SYSTEM_PROMPT]"),
               system_turn=("[SYSTEM_PROMPT] ", "[/SYSTEM_PROMPT]"), user=("[INST] ", "[/INST]"),
               assistant=(" ", "{eos}"), generation="", stops=MISTRAL_STOPS),
    ChatFormat("mistral", "v7-tekken", markers=("[INST]", "[SYSTEM_PROMPT]"),
               system_turn=("[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"), user=("[INST]", "[/INST]"),
               assistant=("", "{eos}"), generation="", stops=MISTRAL_STOPS),
    ChatFormat("gemma", "1-2", **GEMMA, rejects_system=True),
    ChatFormat("gemma", "3", **GEMMA),
    ChatFormat("phi3", "system", markers=("<|end|>", "<|assistant|>"), system_turn=("<|system|>\n", "<|end|>\n"),
               user=("<|user|>\n", "<|end|>\n"), assistant=("<|assistant|>\n", "<|end|>\n"),
               generation="<|assistant|>\n", stops=PHI3_STOPS),
    ChatFormat("phi3", "3.5", markers=("<|end|>", "<|assistant|>"), system_turn=("<|system|>\n", "<|end|>\n"),
               user=("<|user|>\n", "<|end|>\n"), assistant=("<|assistant|>\n", "<|end|>\n"),
               generation="<|assistant|>\n", skip_empty_system=True, stops=PHI3_STOPS),
    ChatFormat("phi3", "no-system", markers=("<|end|>", "<|assistant|>"),
               user=("<|user|>\n", "<|end|>\n<|assistant|>\n"), assistant=("", "<|end|>\n"),
               generation="", system="dropped", stops=PHI3_STOPS,
               note="the template ignores system messages, so SYSTEM has no effect"),
    ChatFormat("phi4", "4", markers=("<|im_start|>", "<|im_sep|>"),
               system_turn=("<|im_start|>system<|im_sep|>", "<|im_end|>"),
               user=("<|im_start|>user<|im_sep|>", "<|im_end|><|im_start|>assistant<|im_sep|>"),
               assistant=("", "<|im_end|>"), generation="", stops=("<|im_start|>", "<|im_end|>", "<|im_sep|>")),
    ChatFormat("deepseek", "llm-v2", markers=("User: ", "Assistant:"), system_turn=("", "\n\n"),
               user=("User: ", "\n\n"), assistant=("Assistant: ", "{eos}"), generation="Assistant:",
               stops=("User:", "Assistant:")),
    ChatFormat("deepseek", "v3", **DEEPSEEK3, generation="<｜Assistant｜>"),
    ChatFormat("deepseek", "r1", **DEEPSEEK3, generation="<｜Assistant｜><think>\n"),
    ChatFormat("command-r", "command-r", markers=("<|START_OF_TURN_TOKEN|>",),
               system_turn=("<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>", "<|END_OF_TURN_TOKEN|>"),
               user=("<|START_OF_TURN_TOKEN|><|USER_TOKEN|>", "<|END_OF_TURN_TOKEN|>"),
               assistant=("<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", "<|END_OF_TURN_TOKEN|>"),
               generation="<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
               stops=("<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>")),
    ChatFormat("zephyr", "zephyr", markers=("<|user|>", "<|assistant|>"),
               system_turn=("<|system|>\n", "{eos}\n"), user=("<|user|>\n", "{eos}\n"),
               assistant=("<|assistant|>\n", "{eos}\n"), generation="<|assistant|>\n",
               stops=("<|system|>", "<|user|>", "<|assistant|>", "</s>")),
    ChatFormat("vicuna", "plain-system", **VICUNA, system_turn=("", "\n\n")),
    ChatFormat("vicuna", "default-system", **VICUNA, system_turn=("", "\n\n"), default_system=True),
    ChatFormat("vicuna", "orca", **VICUNA, system_turn=("SYSTEM: ", "\n")),
    ChatFormat("alpaca", "plain", **ALPACA),
    ChatFormat("alpaca", "default-system", **ALPACA, default_system=True),
    ChatFormat("granite", "3.0", **GRANITE),
    ChatFormat("granite", "default-system", **GRANITE, default_system=True,
               note="writes the model's default system prompt (with its date fixed when written)"),
    ChatFormat("falcon", "falcon3", markers=("<|user|>", "<|assistant|>"), system_turn=("<|system|>\n", "\n"),
               user=("<|user|>\n", "\n"), assistant=("<|assistant|>\n", "{eos}\n"),
               generation="<|assistant|>\n", stops=("<|system|>", "<|user|>", "<|assistant|>")),
    ChatFormat("falcon", "180b-chat", markers=("Falcon:",), system_turn=("System: ", ""),
               user=("User: ", ""), assistant=("Falcon: ", ""), generation="\nFalcon:", separator="\n",
               stops=("User:", "Falcon:", "System:")),
    ChatFormat("starcoder2", "instruct", markers=("### Instruction", "### Response"), preamble=True,
               user=("### Instruction\n", "\n\n"), assistant=("### Response\n", "{eos}\n\n"),
               generation="### Response\n", system="first_user", rejects_system=True,
               stops=("### Instruction", "### Response")),
    ChatFormat("openchat", "3.5", markers=("GPT4 Correct",),
               system_turn=("GPT4 Correct System: ", "<|end_of_turn|>"),
               user=("GPT4 Correct User: ", "<|end_of_turn|>"),
               assistant=("GPT4 Correct Assistant: ", "<|end_of_turn|>"), generation="GPT4 Correct Assistant:",
               stops=("<|end_of_turn|>", "GPT4 Correct User:", "GPT4 Correct Assistant:")),
)

FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(f.family for f in FORMATS))


# --------------------------------------------------------------------------- Go templates

def _go_text(text: str) -> str:
    """Text for a Go template: verbatim when safe, else a Go string literal action."""
    if text and ("{{" in text or "}}" in text or text[-1] == "{" or text[0] == "}"):
        return "{{ " + json.dumps(text, ensure_ascii=False) + " }}"
    return text


@lru_cache(maxsize=1)
def _go_environment() -> jinja2.Environment:
    # Different delimiters, so the Go template's own {{ }} pass through untouched.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(package_data_dir("modelfiles") / "chat"),
        block_start_string="[%", block_end_string="%]",
        variable_start_string="[=", variable_end_string="=]",
        comment_start_string="[#", comment_end_string="#]",
        undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["go_text"] = _go_text
    env.filters["go_string"] = lambda s: json.dumps(s, ensure_ascii=False)
    return env


def go_template_for(fmt: ChatFormat, *, fixed_text: str | None = None, leading_text: str = "") -> str:
    """The Ollama TEMPLATE for a format whose `{bos}`/`{eos}` are already substituted.

    fixed_text: the default system prompt, preamble or header preamble the format extracts.
    leading_text: written first (the BOS text, when the tokenizer does not add BOS itself).
    """
    text = _go_environment().get_template("turns.gotmpl.j2").render(
        f=fmt, fixed_text=fixed_text or "", leading_text=leading_text,
    )
    return text.rstrip("\n")  # every template ends with an action; the file's last newline is not text


# --------------------------------------------------------------------------- translation

@dataclass
class Translation:
    family: str
    variant: str
    go_template: str
    stops: list[str]
    system_handling: str  # how system prompts reach the model, in words
    notes: list[str] = field(default_factory=list)


_SENTINEL = "\u2063EDGEPACK-FIXED-TEXT\u2063"
_BOS_SENTINEL = "\u2063EDGEPACK-BOS\u2063"


def _expected(chat_template: str, messages, tokens: SpecialTokens, strip_bos: bool) -> str | None:
    """The HF rendering Ollama must reproduce (None: the template rejects this conversation)."""
    try:
        text = render_hf(chat_template, messages, tokens)
    except jinja2.TemplateError:
        return None
    if strip_bos and tokens.bos and text.startswith(tokens.bos):
        text = text[len(tokens.bos):]
    return text


def _fixed_text(fmt: ChatFormat, expected_user_only: str) -> str | None | bool:
    """Extract the text a format takes from the template (default system prompt, preamble).

    Returns False when the format has such a slot but the template's output does not fit it.
    """
    if not (fmt.default_system or fmt.preamble or fmt.system == "header"):
        return None
    ours = render_ollama(go_template_for(fmt, fixed_text=_SENTINEL), PROBES["user"])
    before, _, after = ours.partition(_SENTINEL)
    text = expected_user_only
    if not (text.startswith(before) and text.endswith(after) and len(text) >= len(before) + len(after)):
        return False
    return text[len(before):len(text) - len(after)]


def template_emits_bos(chat_template: str, tokens: SpecialTokens) -> bool:
    """Whether the template starts its output with `bos_token` (not merely with the same text)."""
    if not tokens.bos:
        return False
    marked = SpecialTokens(_BOS_SENTINEL, tokens.eos)
    try:
        return render_hf(chat_template, PROBES["user"], marked).startswith(_BOS_SENTINEL)
    except jinja2.TemplateError:
        return False


def _matches(chat_template: str, fmt: ChatFormat, tokens: SpecialTokens, emits_bos: bool):
    """(go_template_without_bos, fixed_text) when `fmt` reproduces the template on every probe."""
    expected = {name: _expected(chat_template, conv, tokens, emits_bos) for name, conv in PROBES.items()}
    if expected["user"] is None or expected["multi_turn"] is None:
        return None
    fixed = _fixed_text(fmt, expected["user"])
    if fixed is False:
        return None
    go = go_template_for(fmt, fixed_text=fixed)
    for name, conv in PROBES.items():
        want = expected[name]
        if want is None:
            if not (fmt.rejects_system and has_system(conv)):
                return None
            continue
        if fmt.rejects_system and has_system(conv):
            return None  # the format says the template rejects system messages; it did not
        if render_ollama(go, conv) != want:
            return None
    return go, fixed


def _system_handling(fmt: ChatFormat) -> str:
    if fmt.rejects_system:
        return ("the source template rejects system messages; edgepack puts the system prompt "
                "at the start of the first user message")
    return {
        "turn": "system messages are turns of their own",
        "first_user": "the system prompt is merged into the first user message",
        "last_user": "the system prompt is merged into the last user message",
        "header": "the system prompt follows the template's fixed header in the first turn",
        "dropped": "the source template drops system messages",
    }[fmt.system]


def candidate_formats(chat_template: str) -> list[ChatFormat]:
    """Formats whose markers all occur in the template source."""
    return [f for f in FORMATS if all(m in chat_template for m in f.markers)]


def translate(chat_template: str, tokens: SpecialTokens, *, tokenizer_adds_bos: bool = True) -> Translation:
    """The Ollama TEMPLATE and stops for a Hugging Face chat template, proven on PROBES.

    Raises ChatTemplateError (one line) when the template cannot be rendered or no known format
    reproduces it exactly.
    """
    if not chat_template or not chat_template.strip():
        raise ChatTemplateError("the model has no chat template")
    try:
        render_hf(chat_template, PROBES["user"], tokens)
    except jinja2.TemplateError as exc:
        raise ChatTemplateError(f"the chat template cannot be rendered ({type(exc).__name__}: {exc})") from None
    # BOS: llama.cpp's tokenizer adds it when the GGUF says so, so the Go template must not
    # write it again; when the tokenizer does not, the Go template writes it as text.
    emits_bos = template_emits_bos(chat_template, tokens)
    candidates = candidate_formats(chat_template)
    for fmt in candidates:
        concrete = fmt.with_tokens(tokens)
        found = _matches(chat_template, concrete, tokens, emits_bos)
        if found is None:
            continue
        go, fixed = found
        if emits_bos and not tokenizer_adds_bos:
            go = go_template_for(concrete, fixed_text=fixed, leading_text=tokens.bos or "")
        notes = [fmt.note] if fmt.note else []
        if fixed:
            notes.append(f"fixed text taken from the template: {fixed!r}")
        return Translation(
            family=fmt.family, variant=fmt.variant, go_template=go, stops=list(concrete.stops),
            system_handling=_system_handling(fmt), notes=notes,
        )
    if candidates:
        names = ", ".join(dict.fromkeys(f.family for f in candidates))
        raise ChatTemplateError(
            f"the chat template looks like {names} but renders differently from every edgepack "
            "translation of it (tools, content rewriting or another variant)"
        )
    raise ChatTemplateError("the chat template matches none of the families edgepack can translate")
