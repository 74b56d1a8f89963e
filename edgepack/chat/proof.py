"""Proof by rendering, per runtime: does each path write exactly what the model's template writes?

The reference is always transformers' `apply_chat_template` (edgepack.chat.sandbox) on
PROOF_PROBES, conversations no translation was chosen on. Path 1 compares llama.cpp's own
Jinja engine (llama-server /apply-template, edgepack.chat.llama_server); path 2 compares the
Ollama TEMPLATE run the way Ollama runs it (edgepack.chat.gotemplate, which the tests hold to
Go's real text/template). Thinking probes count where the template can think, tool probes
where it takes tools (detected as ollama's server/images.go detects them).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from edgepack.chat.conversations import GO_PROOF_PROBES, PROOF_PROBES, Probe, has_system
from edgepack.chat.sandbox import RenderError, RenderJob, SpecialTokens, TemplateBoundError, render_many
from edgepack.errors import ChatTemplateError, GoTemplateError

EXACT, DIFFERS, NOT_HANDLED, NOT_CHECKED = "exact", "differs", "not handled", "not checked"
AS_OLLAMA = "@think"  # suffix of a probe rendered as current Ollama asks for it (enable_thinking=true)
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

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "how": self.how, "proof": self.proof,
                "differences": list(self.differences), "modes": dict(self.modes),
                "as_ollama_sends": self.as_ollama_sends}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PathResult:
        return cls(status=d["status"], how=d.get("how", ""), proof=d.get("proof", ""),
                   differences=list(d.get("differences", [])), modes=dict(d.get("modes", {})),
                   as_ollama_sends=d.get("as_ollama_sends"))


def template_capabilities(chat_template: str) -> list[str]:
    """"tools" / "thinking" as ollama infers them from a GGUF's chat template (server/images.go)."""
    caps = []
    if "tools" in chat_template or "tool_call" in chat_template:
        caps.append("tools")
    if ("<think>" in chat_template and "</think>" in chat_template) or (
            ("content.split('</think>')" in chat_template or 'content.split("</think>")' in chat_template)
            and "reasoning_content" not in chat_template):
        caps.append("thinking")
    return caps


def applicable_probes(capabilities: list[str]) -> dict[str, Probe]:
    return {name: p for name, p in PROOF_PROBES.items()
            if p.mode == "plain" or p.mode in capabilities}


class ReferenceRenders:
    """transformers' renders of the applicable PROOF_PROBES for one template (one bounded child)."""

    def __init__(self, chat_template: str, tokens: SpecialTokens, capabilities: list[str]):
        self.probes = applicable_probes(capabilities)
        # Current Ollama sends enable_thinking=true when a thinking model's request leaves think
        # unset (server/routes.go, llm/llama_server.go): those renders are checked as well.
        self.ollama_probes = {f"{n}{AS_OLLAMA}": replace(p, think=True) for n, p in self.probes.items()
                              if p.think is None} if "thinking" in capabilities else {}
        # Path 2 only: final assistant turns Ollama continues (prefill).
        self.go_probes = {n: p for n, p in GO_PROOF_PROBES.items() if p.mode == "plain" or p.mode in capabilities}
        jobs = {**self.probes, **self.ollama_probes, **self.go_probes}
        self.results = dict(zip(jobs, render_many(chat_template, [RenderJob.of(p) for p in jobs.values()], tokens)))


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
    for name, probe in probes.items():
        if probe.mode == "tools" and not takes_tools:
            # Ollama refuses a request with tools for a model whose template has no .Tools
            # (server/images.go capabilities): nothing is rendered wrongly, tools are unavailable.
            modes["tools"] = NOT_HANDLED
            continue
        want = reference.results[name]
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
        _mode_update(modes, probe.mode, ok)
        if not ok:
            differences.append(_explain_go(name, probe, want, got, translation.go_template))
    if modes.get("tools") == NOT_HANDLED:
        differences.append("tools: the TEMPLATE has no .Tools, so Ollama refuses requests with tools on this path")
    result = PathResult(_status(modes), f"Ollama TEMPLATE ({translation.family}/{translation.variant}) "
                        "in the Modelfile, run by Ollama's Go text/template", differences=differences, modes=modes)
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
    trimmed = _trimming(probe, want, go_template)
    if trimmed:
        return (f"{name}: the template trims whitespace around message content ({trimmed}), "
                "which a Go template cannot do")
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


# --------------------------------------------------------------------------- path 1: llama.cpp Jinja

def prove_llama_cpp(chat_template: str, reference: ReferenceRenders, tokens: SpecialTokens,
                    server_binary=None) -> PathResult:
    """llama-server's /apply-template against transformers, with the settings that make it equal."""
    from edgepack.chat.llama_server import find_llama_server, template_server

    how = "the GGUF's own chat template, run by llama.cpp's Jinja engine (llama-server, LM Studio, Ollama without TEMPLATE)"
    binary = server_binary or find_llama_server()
    if binary is None:
        return PathResult(NOT_CHECKED, how, "llama-server is not built here (edgepack native build)")
    modes: dict[str, str] = {}
    ollama_modes: dict[str, str] = {}
    differences: list[str] = []
    try:
        with template_server(chat_template, tokens, binary=binary) as server:
            for name, probe in {**reference.probes, **reference.ollama_probes}.items():
                as_ollama = name.endswith(AS_OLLAMA)
                want = reference.results[name]
                got = server.render(probe)
                if server.stuck:
                    break
                if isinstance(want, RenderError) or isinstance(got, RenderError):
                    ok = isinstance(want, RenderError) and isinstance(got, RenderError)
                    why = (f"{name}: transformers: {want if isinstance(want, RenderError) else 'renders'}"
                           f"; llama.cpp: {got if isinstance(got, RenderError) else 'renders'}")
                else:
                    ok = got == want
                    why = "" if ok else f"{name}: {first_difference(want, got)}"
                    if not ok and not as_ollama:
                        why += _setting_that_fixes(server, probe, want, got, chat_template, tokens)
                if as_ollama or probe.think is not None or not reference.ollama_probes:
                    _mode_update(ollama_modes, probe.mode, ok)
                if not as_ollama:
                    _mode_update(modes, probe.mode, ok)
                if not ok:
                    differences.append(why)
    except ChatTemplateError as exc:
        return PathResult(NOT_HANDLED, how, f"llama-server could not load the template: {exc}")
    if server.stuck:
        return PathResult(NOT_HANDLED, how, "llama-server did not finish rendering the template "
                          f"(a loop without bound?); {len(differences)} conversation(s) not compared")
    result = PathResult(_status(modes), how, differences=differences, modes=modes)
    if reference.ollama_probes:
        result.as_ollama_sends = _status(ollama_modes)
    result.proof = (f"llama-server /apply-template (pinned llama.cpp) compared with transformers' apply_chat_template "
                    f"on {len(reference.probes)} conversations ({', '.join(reference.probes)}), thinking on/off "
                    "through enable_thinking"
                    + (f"; again with enable_thinking=true, as current Ollama sends it for thinking models "
                       f"(ollama {OLLAMA_VERSION_NOTE})" if reference.ollama_probes else ""))
    return result


OLLAMA_VERSION_NOTE = "runs its own llama.cpp build, not the pinned one"
FIXED_BY = "; equal with "  # a difference that names the setting making both sides equal


def _setting_that_fixes(server, probe: Probe, want: str, got: str, chat_template: str, tokens: SpecialTokens) -> str:
    """The setting under which llama.cpp and transformers agree, tried on both sides."""
    if probe.think is None:
        for value in (False, True):
            if server.render(probe, enable_thinking=value) == want:
                return (f"{FIXED_BY}enable_thinking={str(value).lower()} (llama-server --reasoning "
                        f"{'on' if value else 'off'}, or chat_template_kwargs)")
    # llama.cpp passes today's date as date_string (Llama 3.x); transformers leaves the template's default.
    import datetime

    today = datetime.date.today().strftime("%d %b %Y")
    if today in got and today not in want:
        job = RenderJob(probe.messages, tuple({**probe.hf_kwargs(), "date_string": today}.items()))
        try:
            [dated] = render_many(chat_template, [job], tokens)
        except TemplateBoundError:
            return ""
        if dated == got:
            return (f"{FIXED_BY}date_string=\"{today}\" given to transformers: llama.cpp fills today's date "
                    "where transformers keeps the template's default")
    return ""
