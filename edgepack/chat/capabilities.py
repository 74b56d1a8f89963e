"""What Ollama infers a model can do from its templates, and which template it then uses.

Ollama reads "tools" and "thinking" from the GGUF's Jinja template (edgepack.chat.proof's
template_capabilities) and from the Go TEMPLATE (.Tools; the text tags around {{ .Thinking }}),
and current Ollama prefers the GGUF's template only when it has more of them
(server/images.go shouldPreferChatTemplate). Modelled here, from ollama's source, for the
TEMPLATEs edgepack writes.
"""

from __future__ import annotations

from edgepack.chat.gotemplate import GoTemplate, _Action, _Call, _If, _Range, _Text, action_end
from edgepack.chat.proof import template_capabilities


def inferred_thinking_tags(source: str) -> tuple[str, str]:
    """The thinking tags Ollama infers from a TEMPLATE (its thinking/template.go InferTags, modelled).

    For each reference to .Thinking inside a range over .Messages, the nearest enclosing list of
    nodes gives the tags: its first node's text (opening) and its last node's text (closing),
    each trimmed and taken only when that node is text; later references override earlier ones.
    ("", ""): Ollama sees no thinking support in the template.
    """
    tags = ["", ""]

    def thinks(tokens) -> bool:
        return any(kind == "field" and value.split(".")[1] == "Thinking" for kind, value in tokens or ())

    def visit(nodes: list, in_messages: bool) -> None:
        def take() -> None:
            if isinstance(nodes[0], _Text):
                tags[0] = nodes[0].text.strip()
            if isinstance(nodes[-1], _Text):
                tags[1] = nodes[-1].text.strip()

        for node in nodes:
            if isinstance(node, (_Action, _Call)) and in_messages and thinks(node.tokens):
                take()  # Ollama visits a {{ template }} call's pipeline too
            elif isinstance(node, _If):
                for cond, body in node.branches:
                    if in_messages and thinks(cond):
                        take()
                    visit(body, in_messages)
            elif isinstance(node, _Range):
                # the nearest range decides
                messages = any(k == "field" and v.split(".")[1] == "Messages" for k, v in node.tokens)
                visit(node.body, messages)
                visit(node.else_body, messages)

    visit(GoTemplate(source).nodes, False)
    return tags[0], tags[1]


def inferred_tool_tag(go_template: str) -> str:
    """The text Ollama's generic tool parser waits for before it reads tool calls out of a reply
    (its tools/template.go parseTag, modelled): the first non-blank text node inside the first
    `if` whose condition names .ToolCalls as a field of its own (not inside parentheses, not on a
    variable), searched depth first and stopping at the first action; cut before any "{" and
    trimmed. "{" (any JSON object) when there is none. A PARSER replaces this parser."""

    def names_tool_calls(tokens) -> bool:
        depth = 0
        for kind, value in tokens or ():
            depth += (kind == "lparen") - (kind == "rparen")
            if depth == 0 and kind == "field" and "ToolCalls" in value.split("."):
                return True
        return False

    def find_if(nodes: list):
        for node in nodes:
            if isinstance(node, _If):
                for cond, body in node.branches:
                    if cond is not None and names_tool_calls(cond):
                        return body
                    found = find_if(body)
                    if found is not None:
                        return found
            elif isinstance(node, _Range):
                found = find_if(node.body)
                if found is None and node.else_body:
                    found = find_if(node.else_body)
                if found is not None:
                    return found
        return None

    def find_text(nodes: list):
        for node in nodes:
            if isinstance(node, _Text):
                if node.text.strip():
                    return node.text
            elif isinstance(node, _If):
                for _, body in node.branches:
                    text = find_text(body)
                    if text is not None:
                        return text
                return None
            elif isinstance(node, _Range):
                return find_text(node.body) or (find_text(node.else_body) if node.else_body else None)
            elif isinstance(node, _Action):
                return None
        return None

    body = find_if(GoTemplate(go_template).nodes)
    text = find_text(body) if body is not None else None
    if text is None:
        return "{"
    tag = text.replace("\r\n", "\n").split("{", 1)[0].strip()
    return tag or "{"


def advertise_thinking(chat_template: str) -> bool:
    """Whether the Go TEMPLATE may show Ollama its thinking tags (the thinking capability).

    Current Ollama prefers the GGUF's own template only when it has more capabilities than the Go
    TEMPLATE (server/images.go shouldPreferChatTemplate). A GGUF template with tools but no thinking
    Ollama sees would tie with a Go TEMPLATE showing thinking, and lose its tools: hide the tags then.
    """
    gguf = template_capabilities(chat_template)
    return not ("tools" in gguf and "thinking" not in gguf)


def go_template_capabilities(go_template: str) -> list[str]:
    """"tools" / "thinking" as ollama infers them from a Go TEMPLATE (server/images.go): .Tools, and
    the thinking tags around {{ .Thinking }} (inferred_thinking_tags)."""
    caps = ["tools"] if ".Tools" in go_template else []
    if all(inferred_thinking_tags(go_template)):
        caps.append("thinking")
    return caps


def _segments(go_template: str) -> list[tuple[bool, str]]:
    """(is_action, source text) pieces of a Go template, its actions found as GoTemplate finds them."""
    out, i = [], 0
    while (start := go_template.find("{{", i)) >= 0:
        if start > i:
            out.append((False, go_template[i:start]))
        i = action_end(go_template, start + 2) + 2
        out.append((True, go_template[start:i]))
    if i < len(go_template):
        out.append((False, go_template[i:]))
    return out


def hide_thinking_tags(go_template: str) -> str:
    """The same template with the thinking tags Ollama would infer written as string actions
    (`{{ "<think>" }}`): the output is unchanged, but Ollama no longer sees the thinking capability
    (its InferTags reads only text nodes). Used where advertising thinking would make current Ollama
    take this TEMPLATE over a GGUF template with tools (see advertise_thinking)."""
    import json

    tags = [t for t in inferred_thinking_tags(go_template) if t]
    if not tags:
        return go_template
    pieces = []
    for is_action, text in _segments(go_template):
        if not is_action:
            for tag in sorted(set(tags), key=len, reverse=True):
                text = text.replace(tag, "\0" + tag + "\0")
            text = "".join(("{{ " + json.dumps(part, ensure_ascii=False) + " }}") if part in tags else part
                           for part in text.split("\0"))
        pieces.append(text)
    return "".join(pieces)
