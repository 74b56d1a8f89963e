"""Proof by rendering, per runtime: does each path write exactly what the model's template writes?

The reference is always transformers' `apply_chat_template` (edgepack.chat.sandbox) on
PROOF_PROBES, conversations no translation was chosen on. Path 1 compares llama.cpp's own
Jinja engine (llama-server /apply-template, edgepack.chat.llama_server); path 2 compares the
Ollama TEMPLATE run the way Ollama runs it (edgepack.chat.gotemplate, which the tests hold to
Go's real text/template). Thinking probes count where the template can think, tool probes
where it takes tools (detected as ollama's server/images.go detects them; path 1 also checks
thinking on/off where enable_thinking changes what the template writes).

Path 1 (llama.cpp) lives in edgepack.chat.proof_llama_cpp; this module holds what both share
and path 2.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field, replace
from typing import Any

from edgepack.chat.conversations import (GO_PROOF_PROBES, PROOF_PROBES, Probe, has_system, template_messages,
                                         template_tool_values)
from edgepack.chat.sandbox import RenderError, RenderJob, SpecialTokens, render_many, with_empty_tool_list
from edgepack.errors import ChatTemplateError, GoTemplateError

EXACT, DIFFERS, NOT_HANDLED, NOT_CHECKED = "exact", "differs", "not handled", "not checked"
AS_OLLAMA = "@ollama"  # suffix of a probe rendered as current Ollama asks llama.cpp for it
AS_GO_TEMPLATE = "@go"  # suffix of a tool probe rendered with the tools as a Go TEMPLATE receives them
EXACT_WITHOUT_TOOLS = "exact without tools"  # every other mode exact; Ollama refuses tool requests


@dataclass
class PathResult:
    """How one runtime renders the chat, and how that was proven."""

    status: str  # exact / differs / not handled / not checked
    how: str  # how chat is rendered on this path
    proof: str = ""  # what was compared with what
    differences: list[str] = field(default_factory=list)  # how it differs; the setting that fixes it, if any
    modes: dict[str, str] = field(default_factory=dict)  # plain / thinking / tools -> status
    # Path 1 only: the status for the requests current Ollama sends (thinking models: think=true
    # unless the request says otherwise); None where that is the plain status.
    as_ollama_sends: str | None = None
    # Path 1 only: the same, judged against transformers given the tool definitions as current Ollama
    # re-encodes them (ollama_sent_tools) -- the request Ollama itself makes; None where that changes nothing.
    as_ollama_tools_reencoded: str | None = None
    # Path 2 only: the tool conversations judged against transformers given the request's own tool
    # definitions and call arguments, which Ollama re-encodes (its structs' key order, maps sorted)
    # before a TEMPLATE runs; None where that changes nothing. `modes["tools"]` is judged on the
    # re-encoded ones, which are all a TEMPLATE can see.
    tools_as_requested: str | None = None
    # What was not a difference but is worth knowing, per conversation (path 1: conversations the
    # source template itself refuses, requests current Ollama refuses).
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "how": self.how, "proof": self.proof,
                "differences": list(self.differences), "modes": dict(self.modes),
                "as_ollama_sends": self.as_ollama_sends,
                "as_ollama_tools_reencoded": self.as_ollama_tools_reencoded,
                "tools_as_requested": self.tools_as_requested, "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PathResult:
        return cls(status=d["status"], how=d.get("how", ""), proof=d.get("proof", ""),
                   differences=list(d.get("differences", [])), modes=dict(d.get("modes", {})),
                   as_ollama_sends=d.get("as_ollama_sends"),
                   as_ollama_tools_reencoded=d.get("as_ollama_tools_reencoded"),
                   tools_as_requested=d.get("tools_as_requested"), notes=list(d.get("notes", [])))


def template_capabilities(chat_template: str) -> list[str]:
    """"tools" / "thinking" as ollama infers them from a GGUF's chat template (server/images.go).

    Only these markers count for ollama: a template that thinks by other marks (Gemma 4's
    `<|think|>`, Command R7B's `<|START_THINKING|>`) has no "thinking" capability there, so
    current Ollama sends no think for it and refuses think=true.
    """
    caps = []
    if "tools" in chat_template or "tool_call" in chat_template:
        caps.append("tools")
    if ("<think>" in chat_template and "</think>" in chat_template) or (
            ("content.split('</think>')" in chat_template or 'content.split("</think>")' in chat_template)
            and "reasoning_content" not in chat_template and "<SPECIAL_12>" not in chat_template):
        caps.append("thinking")
    return caps


def applicable_probes(capabilities: list[str]) -> dict[str, Probe]:
    return {name: p for name, p in PROOF_PROBES.items()
            if p.mode == "plain" or p.mode in capabilities}


class ReferenceRenders:
    """transformers' renders of the applicable PROOF_PROBES for one template (one bounded child).

    `probes`: by ollama's capabilities (paths 1 and 2). `switch_probes` (path 1): the thinking
    probes of a template ollama does not see thinking in but that renders differently with
    enable_thinking true and false, so llama.cpp's enable_thinking is compared there too.
    `ollama_probes` (path 1): each conversation as current Ollama asks llama.cpp for it
    (`as_ollama_sends`), rendered here with the date variables llama.cpp fills itself.
    """

    def __init__(self, chat_template: str, tokens: SpecialTokens, capabilities: list[str]):
        self.probes = applicable_probes(capabilities)
        ollama_thinks = "thinking" in capabilities
        candidates = {} if ollama_thinks else {n: p for n, p in PROOF_PROBES.items() if p.mode == "thinking"}
        ollama = {f"{n}{AS_OLLAMA}": p for n, p in {**self.probes, **candidates}.items()}
        ollama = {n: replace(p, think=_ollama_think(p, ollama_thinks)) for n, p in ollama.items()
                  if not _ollama_refuses_think(p, ollama_thinks)}
        dated = llama_cpp_date_variables()
        # Path 2 only: final assistant turns Ollama continues (prefill).
        self.go_probes = {n: p for n, p in GO_PROOF_PROBES.items() if p.mode == "plain" or p.mode in capabilities}
        jobs = [RenderJob.of(p) for p in {**self.probes, **candidates}.values()]
        jobs += [RenderJob(p.messages, tuple({**p.hf_kwargs(), **dated}.items())) for p in ollama.values()]
        jobs += [RenderJob.of(p) for p in self.go_probes.values()]
        # Path 2: tool conversations as a Go TEMPLATE receives them (template_tool_values,
        # template_messages): Ollama decodes the request into its own types before any template runs.
        go_tools = {f"{n}{AS_GO_TEMPLATE}": replace(p, messages=template_messages(p.messages),
                                                    tools=template_tool_values(p.tools))
                    for n, p in self.probes.items() if p.mode == "tools"}
        jobs += [RenderJob.of(p) for p in go_tools.values()]
        names = [*self.probes, *candidates, *ollama, *self.go_probes, *go_tools]
        self.results = dict(zip(names, render_many(chat_template, jobs, tokens)))
        # Path 2 only: what a tool-use template that fails without a tool list renders given an empty
        # one, as a TEMPLATE gets an empty .Tools (path 1 compares llama.cpp with what transformers does).
        go_names = set(self.go_probes) | {n for n, p in self.probes.items() if p.mode != "tools"}
        go_jobs = [(n, j) for n, j in zip(names, jobs) if n in go_names]
        retried = with_empty_tool_list(chat_template, [j for _, j in go_jobs],
                                       [self.results[n] for n, _ in go_jobs], tokens)
        self.with_tool_list = {go_jobs[i][0]: text for i, text in retried.items()}
        on, off = (self.results.get(n) for n in ("thinking_on", "thinking_off"))
        switches = bool(candidates) and isinstance(on, str) and isinstance(off, str) and on != off
        self.switch_probes = candidates if switches else {}
        self.ollama_probes = {n: p for n, p in ollama.items()
                              if n.removesuffix(AS_OLLAMA) in self.probes or switches}
        self.ollama_refused = [n for n, p in candidates.items() if switches and _ollama_refuses_think(p, ollama_thinks)]


def _ollama_think(probe: Probe, ollama_thinks: bool) -> bool | None:
    # Current Ollama sets think=true when a thinking model's request leaves it unset
    # (server/routes.go); it passes an explicit think on as enable_thinking (llm/llama_server.go).
    return True if probe.think is None and ollama_thinks else probe.think


def _ollama_refuses_think(probe: Probe, ollama_thinks: bool) -> bool:
    # "... does not support thinking": think=true for a model without the capability (server/routes.go).
    return probe.think is True and not ollama_thinks


def llama_cpp_date_variables(today: datetime.date | None = None) -> dict[str, str]:
    """The date variables llama.cpp gives every template (common/chat.cpp common_chat_extra_context)."""
    today = today or datetime.date.today()
    return {"date_string": today.strftime("%d %b %Y"), "datetime": today.strftime("%b %d %Y")}


def first_difference(want: str, got: str, width: int = 24) -> str:
    i = next((k for k, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
    return f"at character {i}: template {want[max(0, i - 8):i + width]!r}, here {got[max(0, i - 8):i + width]!r}"


def _status(modes: dict[str, str]) -> str:
    values = set(modes.values())
    if not values or values == {NOT_HANDLED}:
        return NOT_HANDLED
    if modes.get("tools") == NOT_HANDLED and {v for k, v in modes.items() if k != "tools"} == {EXACT}:
        return EXACT_WITHOUT_TOOLS
    return EXACT if values == {EXACT} else DIFFERS


def _mode_update(modes: dict[str, str], mode: str, ok: bool) -> None:
    if not ok:
        modes[mode] = DIFFERS
    else:
        modes.setdefault(mode, EXACT)


# --------------------------------------------------------------------------- path 2: Ollama Go TEMPLATE

def prove_go(reference: ReferenceRenders, translation, tokens: SpecialTokens, emits_bos: bool,
             rejects_system: bool) -> PathResult:
    from edgepack.chat.translate import render_ollama

    modes: dict[str, str] = {}
    differences: list[str] = []
    takes_tools = ".Tools" in translation.go_template
    probes = {**reference.probes, **reference.go_probes}
    as_requested = True  # every tool conversation also equal to the render of the request's own tools
    empty_tool_list: list[str] = []  # compared with the source given an empty tool list
    for name, probe in probes.items():
        if probe.mode == "tools" and not takes_tools:
            # Ollama refuses a request with tools for a model whose template has no .Tools
            # (server/images.go capabilities): nothing is rendered wrongly, tools are unavailable.
            modes["tools"] = NOT_HANDLED
            continue
        want = reference.results[f"{name}{AS_GO_TEMPLATE}" if probe.mode == "tools" else name]
        if name in reference.with_tool_list:
            want = reference.with_tool_list[name]
            empty_tool_list.append(name)
        if isinstance(want, RenderError):
            if probe.prefill or (rejects_system and has_system(probe.messages)):
                # the source cannot continue a final turn, or refuses system prompts (edgepack's
                # placement is stated instead): nothing to compare
                continue
            differences.append(f"{name}: the source template refuses it ({want}); the Go template renders it")
            _mode_update(modes, probe.mode, False)
            continue
        if translation.tokenizer_adds_bos and emits_bos and tokens.bos and want.startswith(tokens.bos):
            want = want[len(tokens.bos):]
        try:
            got = render_ollama(translation.go_template, probe.messages, tools=probe.tools, think=probe.think)
        except (GoTemplateError, ChatTemplateError) as exc:
            got = f"<error: {exc}>"
        ok = got == want
        if probe.mode == "tools":
            requested = reference.results[name]
            if requested != want:  # the request's own order is not what reaches the TEMPLATE
                as_requested = as_requested and got == requested
        _mode_update(modes, probe.mode, ok)
        if not ok:
            differences.append(_explain_go(name, probe, want, got, translation.go_template))
    if modes.get("tools") == NOT_HANDLED:
        differences.append("tools: the TEMPLATE has no .Tools, so Ollama refuses requests with tools on this path")
    result = PathResult(_status(modes), f"Ollama TEMPLATE ({translation.family}/{translation.variant}) "
                        "in the Modelfile, run by Ollama's Go text/template", differences=differences, modes=modes)
    if empty_tool_list:
        result.notes.append("the source template fails without a tool list (tools=None); conversations without "
                            "tools are compared with it given an empty one, as Ollama gives a TEMPLATE an empty "
                            f".Tools ({', '.join(empty_tool_list)})")
    reordered = takes_tools and any(reference.results[n] != reference.results[f"{n}{AS_GO_TEMPLATE}"]
                                    for n, p in reference.probes.items() if p.mode == "tools")
    if reordered:
        result.tools_as_requested = EXACT if as_requested else DIFFERS
    result.proof = ("rendered with Ollama's template data (.Messages, .Tools, .Think, currentDate) and compared with "
                    f"transformers' apply_chat_template on {len(probes)} conversations "
                    f"({', '.join(probes)}; prefill: a final assistant turn Ollama continues, as "
                    "transformers' continue_final_message)")
    return result


def _explain_go(name: str, probe: Probe, want: str, got: str, go_template: str) -> str:
    from dataclasses import replace

    from edgepack.chat.translate import render_ollama

    if probe.mode == "tools":
        return (f"{name}: tool definitions, calls or results are written differently "
                f"({first_difference(want, got)})")
    if probe.mode == "thinking":
        return f"{name}: thinking is written differently ({first_difference(want, got)})"
    if name == "thinking_in_content":
        return (f"{name}: the template rewrites an assistant text that carries its thinking as <think>...</think> "
                f"(cut at </think>, or otherwise edited), which this Go TEMPLATE does not do ({first_difference(want, got)})")
    trimmed = _trimming(probe, want, go_template)
    if trimmed:
        return (f"{name}: the template trims whitespace around message content ({trimmed}), "
                "which this Go TEMPLATE does not reproduce")
    return f"{name}: {first_difference(want, got)}"


_TRIMS = {"strip": str.strip, "lstrip": str.lstrip, "rstrip": str.rstrip}


def _trimming(probe: Probe, want: str, go_template: str) -> str:
    """Which trimming of which roles' content (or of thinking) turns the Go render into the
    template's ("" if none)."""
    from itertools import product

    from edgepack.chat.translate import render_ollama

    roles = sorted({m.role for m in probe.messages})
    thinking = ("", "strip") if any(m.thinking for m in probe.messages) else ("",)
    # Thinking alone, then trimming every role (the common case), then each role's own choice.
    choices = [("",) * len(roles), ("strip",) * len(roles)] + list(product(("", *_TRIMS), repeat=len(roles)))
    for choice in choices:
        for think_trim in thinking[::-1] if not any(choice) else thinking:
            if not any(choice) and not think_trim:
                continue
            how = dict(zip(roles, choice))
            messages = tuple(replace(m, content=_TRIMS[how[m.role]](m.content) if how[m.role] else m.content,
                                     thinking=m.thinking.strip() if think_trim else m.thinking)
                             for m in probe.messages)
            try:
                if render_ollama(go_template, messages, think=probe.think) == want:
                    named = [f"{trim} of {role}" for role, trim in how.items() if trim]
                    return ", ".join(named + (["strip of thinking"] if think_trim else []))
            except (GoTemplateError, ChatTemplateError):
                continue
    return ""
