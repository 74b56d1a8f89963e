"""Proof by rendering, per runtime: does each path write exactly what the model's template writes?

The reference is always transformers' `apply_chat_template` (edgepack.chat.sandbox) on
PROOF_PROBES, conversations no translation was chosen on. Path 1 compares llama.cpp's own
Jinja engine (llama-server /apply-template, edgepack.chat.llama_server); path 2 compares the
Ollama TEMPLATE run the way Ollama runs it (edgepack.chat.gotemplate, which the tests hold to
Go's real text/template). Thinking probes count where the template can think, tool probes
where it takes tools (detected as ollama's server/images.go detects them; path 1 also checks
thinking on/off where enable_thinking changes what the template writes).

Path 1 is exact when, on every conversation the source template renders, llama.cpp writes the
same bytes. What the source fails on in transformers is a note, not a difference; what it refuses
on purpose (raise_exception) and llama.cpp renders anyway is a difference. A difference names the
llama-server setting that makes both equal (enable_thinking, preserve_reasoning, the date) or what
llama.cpp does differently. "As current Ollama sends it" is modelled from ollama's code: the
Modelfile's SYSTEM first, think=true where ollama sees thinking, earlier thinking left out, and
the date variables llama.cpp fills itself (date_string, datetime: a user of either runtime gets
today's date, so transformers is given the same; edgepack's Go templates use currentDate).
"""

from __future__ import annotations

import datetime
import html
import json
from dataclasses import dataclass, field, replace
from typing import Any

from edgepack.chat.conversations import GO_PROOF_PROBES, PROOF_PROBES, Message, Probe, has_system, ollama_sent_tools
from edgepack.chat.renderers import OLLAMA_VERSION
from edgepack.chat.sandbox import RenderError, RenderJob, SpecialTokens, TemplateBoundError, render_many
from edgepack.errors import ChatTemplateError, GoTemplateError

EXACT, DIFFERS, NOT_HANDLED, NOT_CHECKED = "exact", "differs", "not handled", "not checked"
AS_OLLAMA = "@ollama"  # suffix of a probe rendered as current Ollama asks llama.cpp for it
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
    # What was not a difference but is worth knowing, per conversation (path 1: conversations the
    # source template itself refuses, requests current Ollama refuses).
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "how": self.how, "proof": self.proof,
                "differences": list(self.differences), "modes": dict(self.modes),
                "as_ollama_sends": self.as_ollama_sends,
                "as_ollama_tools_reencoded": self.as_ollama_tools_reencoded, "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PathResult:
        return cls(status=d["status"], how=d.get("how", ""), proof=d.get("proof", ""),
                   differences=list(d.get("differences", [])), modes=dict(d.get("modes", {})),
                   as_ollama_sends=d.get("as_ollama_sends"),
                   as_ollama_tools_reencoded=d.get("as_ollama_tools_reencoded"), notes=list(d.get("notes", [])))


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
        names = [*self.probes, *candidates, *ollama, *self.go_probes]
        self.results = dict(zip(names, render_many(chat_template, jobs, tokens)))
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
    if name == "thinking_in_content":
        return (f"{name}: the template rewrites an assistant text that carries its thinking as <think>...</think> "
                f"(cut at </think>, or otherwise edited), which a Go template cannot do ({first_difference(want, got)})")
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

OLLAMA_VERSION_NOTE = "runs its own llama.cpp build, not the pinned one"  # said wherever Ollama is modelled
FIXED_BY = "; equal with "  # a difference that names the setting making both sides equal
LLAMA_CPP_DIFFERS = "; llama.cpp differs: "  # a difference traced to llama.cpp itself, no setting fixes it
NONE_RENDERED = "not checked: the source template renders none of the probes"
_ORDER = {NOT_CHECKED: 0, EXACT: 1, DIFFERS: 2}


def prove_llama_cpp(chat_template: str, reference: ReferenceRenders, tokens: SpecialTokens,
                    server_binary=None, *, ollama_system: str | None = None) -> PathResult:
    """llama-server's /apply-template against transformers, with the settings that make it equal.

    Exact means: on every conversation the source template renders, llama.cpp writes the same
    bytes. A conversation the source fails on in transformers (it raises, as for any user of the
    model there) is no difference but a note; a mode, or a path, where the source renders none is
    not checked. A conversation the template refuses on purpose (raise_exception) is handled as the
    source does only if llama.cpp refuses it too; rendering it instead is a difference.
    `ollama_system`: the SYSTEM of edgepack's Modelfile, which current Ollama sends first.
    """
    from edgepack.chat.llama_server import find_llama_server, template_server

    how = "the GGUF's own chat template, run by llama.cpp's Jinja engine (llama-server, LM Studio, Ollama without TEMPLATE)"
    binary = server_binary or find_llama_server()
    if binary is None:
        return PathResult(NOT_CHECKED, how, "llama-server is not built here (edgepack native build)")
    probes = {**reference.probes, **getattr(reference, "switch_probes", {})}
    modes: dict[str, str] = {}
    ollama_modes: dict[str, str] = {}
    reencoded_modes: dict[str, str] = {}  # as Ollama sends, against transformers on Ollama's own tool encoding
    differences: list[str] = []
    notes = [f"{n}: current Ollama refuses think=true for this model (ollama sees no thinking capability in the "
             "template), so it is compared with the explicit setting only" for n in getattr(reference, "ollama_refused", [])]
    try:
        with template_server(chat_template, tokens, binary=binary) as server:
            for name, probe in {**probes, **reference.ollama_probes}.items():
                as_ollama = name.endswith(AS_OLLAMA)
                sent = as_ollama_sends(probe, ollama_system) if as_ollama else probe
                want = reference.results[name]
                got = server.render(sent)
                if server.stuck:
                    break
                if _deliberate(want) and not isinstance(got, RenderError):
                    outcome = DIFFERS  # the template's own raise_exception: llama.cpp does not handle it as the source
                    differences.append(f"{name}: the template refuses it ({want}); llama.cpp renders it instead"
                                       + (" (for a template without a system role it puts the system prompt into "
                                          "the first user turn)" if has_system(sent.messages) else ""))
                elif isinstance(want, RenderError):
                    outcome = NOT_CHECKED
                    base = reference.results.get(name.removesuffix(AS_OLLAMA))
                    if not (as_ollama and isinstance(base, RenderError)):
                        notes.append(f"{name}: the source template refuses it ({want}); llama.cpp "
                                     + (f"refuses it too ({got})" if isinstance(got, RenderError) else "renders it"))
                elif isinstance(got, RenderError):
                    outcome = DIFFERS
                    differences.append(f"{name}: transformers renders it; llama.cpp refuses it ({got})")
                elif got == want:
                    outcome = EXACT
                else:
                    outcome = DIFFERS
                    differences.append(f"{name}: {first_difference(want, got)}"
                                       + _why_llama_cpp_differs(server, sent, probe, want, got, chat_template,
                                                                tokens, as_ollama))
                _record(ollama_modes if as_ollama else modes, probe.mode, outcome)
                if as_ollama:
                    if outcome == DIFFERS and _json(sent.tools) != _json(probe.tools) and isinstance(got, str) and got == _hf(
                            chat_template, probe.messages, {**probe.hf_kwargs(), "tools": [dict(t) for t in sent.tools],
                                                            **llama_cpp_date_variables()}, tokens):
                        outcome = EXACT  # llama.cpp rendered exactly the tools Ollama re-encoded
                    _record(reencoded_modes, probe.mode, outcome)
    except ChatTemplateError as exc:
        return PathResult(NOT_HANDLED, how, f"llama-server could not load the template: {exc}")
    if server.stuck:
        return PathResult(NOT_HANDLED, how, "llama-server did not finish rendering the template "
                          f"(a loop without bound?); {len(differences)} conversation(s) not compared")
    status = _path1_status(modes)
    result = PathResult(status, how, differences=differences, modes=modes, notes=notes)
    if ollama_modes and _path1_status(ollama_modes) != status:
        result.as_ollama_sends = _path1_status(ollama_modes)
    if reencoded_modes and _path1_status(reencoded_modes) != _path1_status(ollama_modes):
        result.as_ollama_tools_reencoded = _path1_status(reencoded_modes)
    compared = ", ".join(probes)
    result.proof = (NONE_RENDERED if status == NOT_CHECKED else
                    f"llama-server /apply-template (pinned llama.cpp) compared with transformers' apply_chat_template "
                    f"on {len(probes)} conversations ({compared}), thinking on/off through enable_thinking"
                    + (f"; again as current Ollama sends them (ollama {OLLAMA_VERSION}, which {OLLAMA_VERSION_NOTE}): "
                       + ("the Modelfile's SYSTEM first, " if ollama_system else "") + "think=true for a model "
                       "ollama sees thinking in, earlier turns' thinking left out (ollama sends no reasoning_content), "
                       "the template's date as llama.cpp fills it (date_string, datetime)"
                       if reference.ollama_probes else ""))
    return result


def _deliberate(result) -> bool:
    """The template refused the conversation on purpose (raise_exception), not by failing in transformers."""
    return isinstance(result, RenderError) and result.kind == "raised" and str(result).startswith("TemplateError:")


def as_ollama_sends(probe: Probe, system: str | None = None) -> Probe:
    """The conversation as current Ollama hands it to llama-server: the Modelfile's SYSTEM first
    unless the chat starts with a system message (server/routes.go), then role, content, tool
    calls and tool names, no thinking (llm/llama_server.go llamaServerChatMessage), and the tool
    definitions re-encoded from its structs (edgepack.chat.conversations.ollama_sent_tools)."""
    messages = tuple(replace(m, thinking="") for m in probe.messages)
    if system and messages and messages[0].role != "system":
        messages = (Message("system", system),) + messages
    return replace(probe, messages=messages, tools=ollama_sent_tools(probe.tools))


def _record(modes: dict[str, str], mode: str, outcome: str) -> None:
    if _ORDER[outcome] > _ORDER.get(modes.get(mode, ""), -1):
        modes[mode] = outcome


def _path1_status(modes: dict[str, str]) -> str:
    checked = {v for v in modes.values() if v != NOT_CHECKED}
    if not checked:
        return NOT_CHECKED
    return EXACT if checked == {EXACT} else DIFFERS


# llama-server's defaults for settings a chat template may read, with the value that matches
# transformers' default (a template sees the variable undefined there).
_SETTINGS = (
    ({"enable_thinking": False}, "enable_thinking=false (llama-server --reasoning off, or chat_template_kwargs): "
     "llama.cpp turns thinking on by default for a template that can think; transformers leaves it undefined"),
    ({"enable_thinking": True}, "enable_thinking=true (llama-server --reasoning on, or chat_template_kwargs)"),
    ({"preserve_reasoning": False}, "preserve_reasoning=false (llama-server --no-reasoning-preserve, or "
     "chat_template_kwargs): llama-server keeps earlier turns' reasoning by default (preserve_thinking=true, "
     "clear_thinking/drop_thinking/truncate_history_thinking=false)"),
    ({"enable_thinking": False, "preserve_reasoning": False}, "enable_thinking=false and preserve_reasoning=false "
     "(llama-server --reasoning off --no-reasoning-preserve, or chat_template_kwargs)"),
    ({"enable_thinking": True, "preserve_reasoning": False}, "enable_thinking=true and preserve_reasoning=false "
     "(llama-server --reasoning on --no-reasoning-preserve, or chat_template_kwargs)"),
)


def _why_llama_cpp_differs(server, probe: Probe, asked: Probe, want: str, got: str, chat_template: str,
                           tokens: SpecialTokens, as_ollama: bool) -> str:
    """The setting under which llama.cpp and transformers agree, or what in llama.cpp differs.

    `probe` is what llama.cpp was sent, `asked` the conversation transformers rendered.
    """
    for kwargs, text in _SETTINGS:
        if "enable_thinking" in kwargs and probe.think is not None:
            continue  # the probe sets it on both sides already
        if server.render(probe, **kwargs) == want:
            return FIXED_BY + text + ("; current Ollama sends no such setting but enable_thinking from think"
                                      if as_ollama and "preserve_reasoning" in kwargs else "")
    if probe.think is None:  # thinking's default aside, what else differs?
        got_off = server.render(probe, enable_thinking=False)
        if isinstance(got_off, str) and got_off != got:
            return (f"; llama.cpp turns thinking on by default, and with enable_thinking=false it still differs "
                    f"{first_difference(want, got_off)}"
                    + _llama_cpp_cause(replace(probe, think=False), asked, want, got_off, chat_template, tokens, as_ollama))
    return _llama_cpp_cause(probe, asked, want, got, chat_template, tokens, as_ollama)


def _llama_cpp_cause(probe: Probe, asked: Probe, want: str, got: str, chat_template: str, tokens: SpecialTokens,
                     as_ollama: bool) -> str:
    dated = llama_cpp_date_variables()
    kwargs = {**probe.hf_kwargs(), **dated}
    if as_ollama and (probe.messages, _json(probe.tools)) != (asked.messages, _json(asked.tools)) and _hf(
            chat_template, probe.messages, kwargs, tokens) == got:
        # llama.cpp renders what it was sent exactly: the request current Ollama makes is the difference.
        causes = []
        if probe.messages[0].role == "system" and asked.messages[0].role != "system" and _hf(
                chat_template, (probe.messages[0],) + asked.messages, kwargs, tokens) != want:
            causes.append("edgepack's Modelfile SYSTEM (the template's default system prompt), which current Ollama "
                          "sends as a system message, is written differently by the template than its own default")
        if any(m.thinking for m in asked.messages) and _hf(
                chat_template, tuple(replace(m, thinking="") for m in asked.messages), kwargs, tokens) != want:
            causes.append("current Ollama leaves earlier turns' thinking out of what it sends llama.cpp (no "
                          "reasoning_content, ollama's llm/llama_server.go), and the template writes those turns "
                          "differently without it")
        if _json(probe.tools) != _json(asked.tools) and _hf(chat_template, probe.messages, {**kwargs, "tools": [
                dict(t) for t in asked.tools]}, tokens) != got:
            causes.append("current Ollama re-encodes tool definitions from its own structs before sending them "
                          "(ollama api/types.go: \"required\" before \"properties\", empty and unknown keys left "
                          "out), and the template writes the definitions as JSON")
        return "; " + "; and ".join(causes or ["current Ollama's request differs from the conversation"])
    if not as_ollama and dated["date_string"] in got and dated["date_string"] not in want:
        if _hf(chat_template, probe.messages, {**probe.hf_kwargs(), **dated}, tokens) == got:
            return (f"{FIXED_BY}date_string=\"{dated['date_string']}\" given to transformers: llama.cpp fills today's "
                    "date where transformers keeps the template's default")
    if html.unescape(want) == got:
        return (LLAMA_CPP_DIFFERS + "transformers' jinja2 HTML-escapes text the template joins to a |safe string "
                "(Markup), here the tool JSON; llama.cpp's Jinja has no such escaping and writes it as is")
    if ("'<|tool_call>call:'" in chat_template and "{#- OpenAI Chat Completions:" not in chat_template
            and any(m.role == "tool" for m in probe.messages)):
        return (LLAMA_CPP_DIFFERS + "for an older Gemma 4 template (no \"OpenAI Chat Completions\" section) it moves "
                "tool results into the assistant turn before rendering (common/chat.cpp convert_tool_responses_gemma4)")
    stripped = tuple(replace(m, content=m.content.strip(), thinking=m.thinking.strip()) for m in probe.messages)
    if stripped != probe.messages and _hf(chat_template, stripped, probe.hf_kwargs(), tokens) == got:
        return (LLAMA_CPP_DIFFERS + "it trims whitespace around every message's content before rendering this "
                "template (a workaround in llama.cpp's common/chat.cpp), the template itself keeps it")
    return ""


def _json(value) -> str:
    """Order-sensitive form of tool definitions (dicts compare equal whatever their key order)."""
    return json.dumps(value)


def _hf(chat_template: str, messages, kwargs: dict[str, Any], tokens: SpecialTokens) -> str | RenderError | None:
    try:
        [out] = render_many(chat_template, [RenderJob(tuple(messages), tuple(kwargs.items()))], tokens)
    except TemplateBoundError:
        return None
    return out
