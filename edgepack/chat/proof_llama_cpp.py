"""Proof of path 1: llama.cpp's own Jinja engine (llama-server /apply-template) against transformers.

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

import html
import json
from dataclasses import replace
from typing import Any

from edgepack.chat.conversations import Message, Probe, has_system, ollama_sent_tools
from edgepack.chat.proof import (AS_OLLAMA, DIFFERS, EXACT, NOT_CHECKED, NOT_HANDLED, PathResult, ReferenceRenders,
                                 first_difference, llama_cpp_date_variables)
from edgepack.chat.renderers import OLLAMA_VERSION
from edgepack.chat.sandbox import RenderError, RenderJob, SpecialTokens, TemplateBoundError, render_many
from edgepack.errors import ChatTemplateError

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
