"""What Ollama's own import does with a GGUF's chat template, modelled from ollama's source.

`ollama create` from a GGUF (server/create.go -> server/model.go detectChatTemplate) calls
template.Named (template/template.go) on `tokenizer.chat_template`: the entry of its
template/index.json whose Jinja "template" is nearest by Levenshtein distance (runes,
the Go module agnivade/levenshtein; the first entry wins a tie) is used when that distance is
below 100, and its .gotmpl becomes the model's TEMPLATE (its .json, the stops). Without a
match there is no TEMPLATE: older Ollama then renders `{{ .Prompt }}` (no chat format), current
Ollama the GGUF's template through llama.cpp's Jinja. Current Ollama also sets that Jinja path
over a matched TEMPLATE when shouldPreferChatTemplate holds (server/images.go; capabilities
from chatTemplateCapabilities and goTemplateCapabilities, thinking tags from
thinking/template.go InferTags), modelled by prefers_chat_template below (OLLAMA_GO_TEMPLATE
unset). Before all of that, `ollama create` gives GGUFs of a few architectures a built-in
RENDERER/PARSER (server/create.go, ARCHITECTURE_RENDERERS), which then renders the chat.

Pure functions over template texts: the caller reads ollama's index.json and templates (from a
checkout the user names) and hands them in; nothing of ollama's is copied here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from edgepack.chat.conversations import Probe, has_system, ollama_template_data
from edgepack.chat.gotemplate import GoTemplate, _Action, _If, _Range, _Text
from edgepack.chat.proof import (AS_OLLAMA, DIFFERS, EXACT, NOT_CHECKED, ReferenceRenders, first_difference,
                                 template_capabilities)
from edgepack.chat.sandbox import RenderError, RenderJob, SpecialTokens, render_many
from edgepack.errors import ChatTemplateError, GoTemplateError

MATCH_BELOW = 100  # template.Named: `if score < 100`
GO_TEMPLATE = "the matched Go TEMPLATE"
JINJA_NO_MATCH = "the GGUF's template through llama.cpp's Jinja (no match)"
JINJA_MORE_CAPABILITIES = "the GGUF's template through llama.cpp's Jinja (it has more capabilities)"
# server/create.go: the RENDERER/PARSER `ollama create` sets from a GGUF's general.architecture
ARCHITECTURE_RENDERERS = {"gemma4": "gemma4", "laguna": "laguna", "nemotron_h": "nemotron-3-nano",
                          "nemotron_h_moe": "nemotron-3-nano", "nemotron_h_omni": "nemotron-3-nano"}


# --------------------------------------------------------------------------- distance

def levenshtein_bitparallel(a: str, b: str) -> int:
    """Levenshtein distance over code points (Go runes), bit-parallel (Myers 1999, Hyyrö 2001).

    Hand-written because no Levenshtein library is installed here (rapidfuzz is used when it
    is, see `levenshtein`); Python's big integers hold one bit per character of the shorter
    string, so a 16k x 5k pair costs about 5k big-integer steps instead of 80M cell updates.
    """
    if a == b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    full = (1 << m) - 1
    last = 1 << (m - 1)
    peq: dict[str, int] = {}
    for i, ch in enumerate(b):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    pv, mv, score = full, 0, m
    for ch in a:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = ((((eq & pv) + pv) & full) ^ pv) | eq
        ph = mv | (~(xh | pv) & full)
        mh = pv & xh
        if ph & last:
            score += 1
        elif mh & last:
            score -= 1
        ph = ((ph << 1) | 1) & full
        mh = (mh << 1) & full
        pv = mh | (~(xv | ph) & full)
        mv = ph & xv
    return score


try:  # a well-kept library when the environment has one; same distance, over code points
    from rapidfuzz.distance import Levenshtein as _rapidfuzz
except ImportError:  # pragma: no cover - depends on the environment
    _rapidfuzz = None


def levenshtein(a: str, b: str) -> int:
    """agnivade/levenshtein's ComputeDistance (v1.1.1, as pinned in ollama's go.mod): unit costs on runes.

    (Its rows are uint16, so it would wrap beyond 65535 runes; chat templates are far shorter.)
    """
    return _rapidfuzz.distance(a, b) if _rapidfuzz is not None else levenshtein_bitparallel(a, b)


# --------------------------------------------------------------------------- ollama's index

@dataclass(frozen=True)
class OllamaTemplate:
    """One entry of ollama's template/index.json with its <name>.gotmpl (and <name>.json stops)."""

    name: str
    jinja: str  # the Hugging Face template the entry stands for ("template" in index.json)
    go_template: str  # <name>.gotmpl, CRLF normalised to LF as template.go does
    stops: tuple[str, ...] = ()


def parse_index(index_json: str, read: Callable[[str], str | None]) -> list[OllamaTemplate]:
    """ollama's index, in its order (the order decides ties); `read(filename)` returns a file of
    its template/ folder or None when it is absent (a .json of parameters is optional)."""
    try:
        entries = json.loads(index_json)
        pairs = [(e["name"], e["template"]) for e in entries]
    except (ValueError, TypeError, KeyError) as exc:
        raise ChatTemplateError(f"ollama's template/index.json is not a list of name/template entries ({exc})") from None
    out = []
    for name, jinja in pairs:
        go = read(f"{name}.gotmpl")
        if go is None:
            raise ChatTemplateError(f"ollama's template/{name}.gotmpl is missing (named in index.json)")
        params = read(f"{name}.json")
        try:
            stops = tuple(json.loads(params).get("stop") or ()) if params else ()
        except (ValueError, AttributeError) as exc:
            raise ChatTemplateError(f"ollama's template/{name}.json is not a JSON object of parameters ({exc})") from None
        out.append(OllamaTemplate(name, jinja, go.replace("\r\n", "\n"), stops))
    return out


@dataclass(frozen=True)
class NamedMatch:
    """template.Named's answer: `template` is set when the nearest entry is below MATCH_BELOW."""

    template: OllamaTemplate | None
    nearest: str
    distance: int


def named(chat_template: str, index: list[OllamaTemplate]) -> NamedMatch:
    """The entry template.Named picks: smallest distance, the earlier entry on a tie, used below 100.

    Entries are tried nearest-length first and skipped when the length difference alone (a
    lower bound of the distance) already rules them out; the answer is Named's.
    """
    if not index:
        raise ChatTemplateError("ollama's template index is empty")
    best: tuple[int, int] | None = None  # (distance, position in index)
    for pos, entry in sorted(enumerate(index), key=lambda pe: abs(len(pe[1].jinja) - len(chat_template))):
        bound = abs(len(entry.jinja) - len(chat_template))
        if best is not None and (bound, pos) > best:
            continue
        d = levenshtein(chat_template, entry.jinja)
        if best is None or (d, pos) < best:
            best = (d, pos)
    distance, pos = best
    return NamedMatch(index[pos] if distance < MATCH_BELOW else None, index[pos].name, distance)


# --------------------------------------------------------------------------- capabilities (server/images.go)

def chat_template_capabilities(chat_template: str) -> list[str]:
    """chatTemplateCapabilities: tools / thinking of a GGUF's Jinja template (one model of it, in proof)."""
    return template_capabilities(chat_template)


def chat_template_has_tool_round_trip(chat_template: str) -> bool:
    """chatTemplateHasToolRoundTrip."""
    if "tools" not in chat_template and "tool_call" not in chat_template:
        return False
    calls = "tool_calls" in chat_template or "assistant_tool_call" in chat_template
    results = ("tool_response", "tool_results", "role'] == 'tool'", "role'] == \"tool\"", "role\"] == 'tool'",
               "role\"] == \"tool\"", "message.role == 'tool'", "message.role == \"tool\"", "ipython")
    return calls and any(r in chat_template for r in results)


def _pipes(nodes: list, ranges: tuple = ()):
    """(pipeline tokens, the list holding its node, enclosing ranges) in document order, the way
    ollama walks text/template's tree (an `else if` sits alone in its own list)."""
    for node in nodes:
        if isinstance(node, _Action):
            yield node.tokens, nodes, ranges
        elif isinstance(node, _If):
            for i, (tokens, body) in enumerate(node.branches):
                if tokens is not None:
                    yield tokens, (nodes if i == 0 else []), ranges
                yield from _pipes(body, ranges)
        elif isinstance(node, _Range):
            inner = ranges + (node,)
            yield node.tokens, nodes, inner
            yield from _pipes(node.body, inner)
            yield from _pipes(node.else_body, inner)


def _identifiers(tokens: list) -> list[str]:
    """template.Identifiers of one pipeline: field and variable names (a `(...).Field` chain is not seen)."""
    names = []
    for kind, text in tokens:
        if kind == "field" and text != ".":
            names += text.split(".")[1:]
        elif kind == "var":
            names += text.split(".")
    return names


def go_template_vars(go_template: str) -> set[str]:
    """Template.Vars: every identifier, lower-cased."""
    tree = GoTemplate(go_template)
    return {n.lower() for tokens, _, _ in _pipes(tree.nodes) for n in _identifiers(tokens)}


def _thinking_tags(go_template: str) -> tuple[str, str]:
    """thinking.InferTags: around a `.Thinking` inside a range over `.Messages`, the first and
    last text of the nearest list."""
    tree = GoTemplate(go_template)
    opening = closing = ""
    for tokens, holder, ranges in _pipes(tree.nodes):
        if not any(k == "field" and text.split(".")[1] == "Thinking" for k, text in tokens):
            continue
        if not ranges or not any(k == "field" and text.split(".")[1:2] == ["Messages"] for k, text in ranges[-1].tokens):
            continue
        if holder and isinstance(holder[0], _Text):
            opening = holder[0].text.strip()
        if holder and isinstance(holder[-1], _Text):
            closing = holder[-1].text.strip()
    return opening, closing


def go_template_capabilities(go_template: str) -> list[str]:
    """goTemplateCapabilities: tools (.Tools used), insert (.Suffix used), thinking (tags inferred)."""
    names = go_template_vars(go_template)
    caps = [c for c, var in (("tools", "tools"), ("insert", "suffix")) if var in names]
    if all(_thinking_tags(go_template)):
        caps.append("thinking")
    return caps


def go_template_has_tool_round_trip(go_template: str) -> bool:
    """goTemplateHasToolRoundTrip."""
    names = go_template_vars(go_template)
    return "tools" in names and "toolcalls" in names and any(
        s in go_template for s in ('eq .Role "tool"', "tool_response", "TOOL_RESULTS"))


def prefers_chat_template(chat_template: str, go_template: str) -> bool:
    """shouldPreferChatTemplate: current Ollama runs the GGUF's template instead of the TEMPLATE
    when the GGUF's has more capabilities (unless only the TEMPLATE takes tool results back), or
    the same ones with tools and only the GGUF's takes tool results back."""
    chat_caps, go_caps = chat_template_capabilities(chat_template), go_template_capabilities(go_template)
    if len(chat_caps) > len(go_caps):
        return not go_template_has_tool_round_trip(go_template) or chat_template_has_tool_round_trip(chat_template)
    if set(chat_caps) != set(go_caps) or "tools" not in chat_caps:
        return False
    return chat_template_has_tool_round_trip(chat_template) and not go_template_has_tool_round_trip(go_template)


def current_ollama_path(chat_template: str, match: NamedMatch, architecture: str | None = None) -> str:
    """Which template current Ollama renders with after its own import (no Modelfile TEMPLATE)."""
    if architecture in ARCHITECTURE_RENDERERS:  # a RENDERER comes before any template (server/images.go)
        return renderer_path(ARCHITECTURE_RENDERERS[architecture])
    if match.template is None:
        return JINJA_NO_MATCH
    if prefers_chat_template(chat_template, match.template.go_template):
        return JINJA_MORE_CAPABILITIES
    return GO_TEMPLATE


def renderer_path(name: str) -> str:
    return f"RENDERER/PARSER {name} (set by `ollama create` from the GGUF's architecture)"


# --------------------------------------------------------------------------- rendering the matched TEMPLATE

@dataclass
class ImportRender:
    """The matched TEMPLATE, run as Ollama runs it, against transformers on the proof probes."""

    status: str  # exact / differs / "<modes> refused" / not checked
    differences: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # request kinds Ollama refuses on this TEMPLATE
    notes: list[str] = field(default_factory=list)  # conversations the model's own template refuses

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "differences": list(self.differences), "refused": list(self.refused),
                "notes": list(self.notes)}


def render_matched(go_template: str, chat_template: str, reference: ReferenceRenders,
                   tokens: SpecialTokens) -> ImportRender:
    """Each probe of `reference` through the TEMPLATE with Ollama's data, compared with transformers.

    Requests Ollama refuses on this TEMPLATE (tools without .Tools, think=true without thinking
    tags: server/routes.go) are not rendered. A conversation the model's template refuses is a
    note, not a difference; when it has a system message (templates that refuse the system role)
    it is compared again without it, so that its other content (padded whitespace) is still
    checked. A BOS the Jinja template writes is dropped from its render: the tokenizer adds it.
    """
    try:
        caps = go_template_capabilities(go_template)
        tree = GoTemplate(go_template)
        takes_messages = "messages" in go_template_vars(go_template)
    except GoTemplateError as exc:
        return ImportRender(NOT_CHECKED, [f"edgepack's model of Go templates cannot parse it: {exc}"])
    if not takes_messages:
        return ImportRender(NOT_CHECKED, ["a TEMPLATE without .Messages (Ollama renders it per prompt; not modelled)"])
    result = ImportRender(EXACT)
    compare: list[tuple[str, Probe, bool | None, str | RenderError]] = []
    retry: list[tuple[str, Probe, bool | None]] = []
    for name, probe in reference.probes.items():
        if probe.mode == "tools" and "tools" not in caps:
            result.refused += [] if "tools" in result.refused else ["tools"]
            continue
        if probe.think and "thinking" not in caps:
            result.refused += [] if "thinking" in result.refused else ["thinking"]
            continue
        think = probe.think
        if think is None and "thinking" in caps:  # Ollama turns thinking on when a request leaves it unset
            think = True
        want = reference.results.get(f"{name}{AS_OLLAMA}", reference.results[name]) if think else reference.results[name]
        if isinstance(want, RenderError) and has_system(probe.messages):
            result.notes.append(f"{name}: the model's template refuses it ({want}); compared without its system message")
            retry.append((f"{name} (no system)", replace(probe, messages=tuple(
                m for m in probe.messages if m.role != "system")), think))
        elif isinstance(want, RenderError):
            result.notes.append(f"{name}: the model's template refuses it ({want}); not compared")
        else:
            compare.append((name, probe, think, want))
    if retry:
        jobs = [RenderJob(p.messages, tuple({**p.hf_kwargs(), **({"enable_thinking": t} if t is not None else {})}.items()))
                for _, p, t in retry]
        for (name, probe, think), want in zip(retry, render_many(chat_template, jobs, tokens)):
            if isinstance(want, RenderError):
                result.notes.append(f"{name}: refused as well ({want}); not compared")
            else:
                compare.append((name, probe, think, want))
    unchecked = False
    for name, probe, think, want in compare:
        if tokens.bos and want.startswith(tokens.bos):
            want = want[len(tokens.bos):]
        try:
            got = tree.execute(ollama_template_data(probe.messages, tools=probe.tools, think=think))
        except GoTemplateError as exc:
            unchecked = True
            result.notes.append(f"{name}: not rendered (edgepack's model of Go templates: {exc})")
            continue
        if got != want:
            result.differences.append(f"{name}: {first_difference(want, got)}")
    if result.differences:
        result.status = DIFFERS
    elif unchecked or not compare:
        result.status = NOT_CHECKED
    elif result.refused:
        result.status = " and ".join(result.refused) + " refused"
    return result
