"""Per-family Go templates (modelfiles/chat/families/): for each family, the Go template edgepack
chooses for the model's real template (an unmodified copy from the pinned llama.cpp tree), run by
Go's real text/template with Ollama's data, writes exactly what transformers' apply_chat_template
writes, with thinking unset, on and off; a template Go cannot reproduce is reported as differing,
with the difference named, and real Go confirms that difference."""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

import pytest

from edgepack.chat.conversations import PROBES, PROOF_PROBES, Message
from edgepack.chat.formats import FAMILY_FORMATS
from edgepack.chat.report import GO_TEMPLATE, analyze_chat
from edgepack.chat.sandbox import RenderError, RenderJob, SpecialTokens, render_many
from edgepack.chat.translate import render_ollama, translate
from edgepack.errors import ChatTemplateError

PINNED = Path(__file__).parent / "data" / "chat_templates" / "pinned"
TOKENS = SpecialTokens("<s>", "</s>")

# pinned template -> the family row edgepack must choose for it
FAMILIES = {
    "openai-gpt-oss-120b": "gpt-oss/harmony",
    "moonshotai-Kimi-K2": "kimi/k2",
    "Kimi-K2-Instruct": "kimi/k2-instruct",
    "Kimi-K2-Thinking": "kimi/k2-thinking",
    "MiniMax-M2": "minimax/m2",
    "unsloth-Apriel-1.5": "apriel/1.5",
    "Apriel-1.6-15b-Thinker-fixed": "apriel/1.6",
    "tencent-Hy3": "hy/3",
    "Spark2.5": "spark/2.5",
    "upstage-Solar-Open-100B": "solar/open",
    "muse-glimmer": "glimmer/atem",
    "inclusionai-ling-3.0-flash": "ling/bailing-v3",
    "Reka-Edge": "reka/edge",
    "GigaChat3-10B-A1.8B": "gigachat/3",
    "GigaChat3.1-10B-A1.8B": "gigachat/3",
    "Apertus-8B-Instruct": "apertus/apertus",
    "MiniMax-M3": "minimax/m3",
    "Kimi-K3": "kimi/k3",
    "MiniMax-M1": "minimax/m1",
    "ByteDance-Seed-OSS": "seed-oss/seed-oss",
    "GLM-4.6": "glm/4.6",
    "GLM-4.7-Flash": "glm/4.7",
    "poolside-Laguna-S-2.1": "laguna/s",
    "poolside-Laguna-XS-2.1": "laguna/xs-no-default-system",
    "poolside-Laguna-XS.2": "laguna/xs",
    "google-gemma-4-31B-it": "gemma/4",
    "google-gemma-4-31B-it-interleaved": "gemma/4",
    "deepseek-ai-DeepSeek-V3.2": "deepseek/v3.2",
    "deepseek-ai-DeepSeek-V4": "deepseek/v4",
    "deepseek-ai-DeepSeek-V4-Flash-0731": "deepseek/v4-flash",
}
# Templates that trim message content where their family's Go template does not (MiniMax-M1,
# Seed-OSS, Laguna and Gemma 4 trim in Go too: edgepack.chat.gohelpers), so only these conversations may differ.
TRIMMING: dict[str, set[str]] = {}
# ... and these strip the thinking of a final turn Ollama continues (the prefill probe pads it with newlines).

# Text the source rewrites and a Go template cannot (the row's text_rewrites), per template: real Go
# must differ from transformers here, so that the difference the report names is a real one.
THINK_IN_TEXT = (Message("user", "Hi"), Message("assistant", "<think>\nhmm\n</think>\n\nHello"), Message("user", "Bye"))
REWRITES: dict[str, tuple[Message, ...]] = {
    "Apriel-1.6-15b-Thinker-fixed": (Message("user", "Hi"), Message("assistant", "Steps.\n[BEGIN FINAL RESPONSE]\nHello"),
                                     Message("user", "Bye")),
    "muse-glimmer": (Message("system", "Reasoning effort: low."), Message("user", "Hi")),
}
# ... and text a family's template now edits the same way (edgepack.chat.gohelpers): real Go equals it.
CHANNELS_IN_TEXT = (Message("user", "Hi"), Message("assistant", " <|channel>thought\nhmm<channel|>Hello <|channel>x"),
                    Message("user", "Bye"))
REWRITTEN_IN_GO: dict[str, tuple[Message, ...]] = {"MiniMax-M2": THINK_IN_TEXT, "GLM-4.7-Flash": THINK_IN_TEXT,
                                                   "GLM-4.6": THINK_IN_TEXT,
                                                   "google-gemma-4-31B-it": CHANNELS_IN_TEXT,
                                                   "google-gemma-4-31B-it-interleaved": CHANNELS_IN_TEXT}
# (MiniMax M3 cuts answers with loops of its own: tests/test_chat_runtimes.py checks them in real Go.)
NO_THINK: set[str] = set()  # REWRITES rendered with thinking off

# A last assistant turn (Ollama's prefill: the TEMPLATE leaves it open, as transformers'
# continue_final_message does), with and without thinking, which sources keep or drop.
PREFILLS = {"prefill": (Message("user", "What is 6 * 7?"), Message("assistant", "The answer is")),
            "prefill_thinking": (Message("user", "What is 6 * 7?"),
                                 Message("assistant", "The answer is", thinking="6 * 7 = 42."))}
CONTINUE = (("add_generation_prompt", False), ("continue_final_message", True))
# More of what Ollama hands a template: several turns with thinking, a system message later on,
# empty texts. (Consecutive messages of one role are left out: Ollama merges them first.)
MORE = {
    "turns_with_thinking": (Message("user", "u1"), Message("assistant", "a1", thinking="t1"), Message("user", "u2"),
                            Message("assistant", "a2", thinking="t2"), Message("user", "u3")),
    "later_system": (Message("system", "A."), Message("user", "u1"), Message("assistant", "a1"),
                     Message("system", "B."), Message("user", "u2")),
    "empty_texts": (Message("system", ""), Message("user", "u1"), Message("assistant", ""), Message("user", "")),
}


def cases() -> dict[str, tuple[tuple[Message, ...], bool | None, str]]:
    """name -> (messages, think (None: unset), think level): every conversation with thinking unset / on / off."""
    out = {}
    conversations = {**PROBES, **{n: p.messages for n, p in PROOF_PROBES.items() if p.mode != "tools"}, **PREFILLS,
                     **MORE}
    for name, messages in conversations.items():
        for think in (None, True, False):
            out[f"{name}/think={think}"] = (messages, think, "")
    for level in ("low", "high"):  # reasoning effort (gpt-oss, Hy3, Solar); Ollama's .ThinkLevel
        out[f"system_user/think={level}"] = (PROBES["system_user"], True, level)
    return out


CASES = cases()
FORMATS_BY_NAME = {f.name: f for f in FAMILY_FORMATS}


def hf_kwargs(case: str, think: bool | None, level: str) -> tuple:
    kwargs = dict(CONTINUE) if case.startswith("prefill") else {}
    if think is not None:
        kwargs["enable_thinking"] = think
    if level:
        kwargs["reasoning_effort"] = level  # gpt-oss; Ollama hands it to the template as .ThinkLevel
    return tuple(kwargs.items())


def go_payload(m: Message) -> dict:
    return {"role": m.role, "content": m.content, "thinking": m.thinking}


@pytest.fixture(scope="module")
def renders(go_renderer):
    """Per template: the translation and, per case, (transformers, real Go, edgepack's Go model); one Go run."""
    jobs, table = [], {}
    for name in FAMILIES:
        template = (PINNED / f"{name}.jinja").read_text(encoding="utf-8")
        try:
            translation = translate(template, TOKENS)
        except ChatTemplateError as exc:  # reported by the test of this template, not by every test
            table[name] = (template, exc, {})
            continue
        wants = render_many(template, [RenderJob(m, hf_kwargs(c, t, lv)) for c, (m, t, lv) in CASES.items()], TOKENS)
        table[name] = (template, translation, dict(zip(CASES, wants)))
        jobs += [{"template": translation.go_template, "messages": [go_payload(m) for m in msgs], "think": think,
                  "think_level": level} for msgs, think, level in CASES.values()]
    proc = subprocess.run([str(go_renderer)], input=json.dumps(jobs), capture_output=True, text=True, check=True)
    outputs = iter(json.loads(proc.stdout))
    result = {}
    for name, (template, translation, wants) in table.items():
        rows = {}
        if isinstance(translation, ChatTemplateError):
            result[name] = (template, translation, rows)
            continue
        for case, (msgs, think, level) in CASES.items():
            go = next(outputs)
            assert "error" not in go, f"{name} {case}: {go.get('error')}"
            model = render_ollama(translation.go_template, msgs, think=think, think_level=level)
            want = wants[case]
            if isinstance(want, str) and want.startswith(TOKENS.bos):
                want = want[len(TOKENS.bos):]  # llama.cpp's tokenizer adds BOS itself
            rows[case] = (want, go["output"], model)
        result[name] = (template, translation, rows)
    return result


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_go_template_renders_what_transformers_renders_in_real_go(name, renders):
    template, translation, rows = renders[name]
    assert not isinstance(translation, ChatTemplateError), f"{name}: {translation}"
    assert f"{translation.family}/{translation.variant}" == FAMILIES[name]
    compared = 0
    for case, (want, go, model) in rows.items():
        assert model == go, f"{name} {case}: edgepack's Go model and Go disagree"
        if isinstance(want, RenderError):
            continue  # the source refuses this conversation (e.g. a prefill it cannot end)
        if case.split("/")[0] in TRIMMING.get(name, set()):
            assert go != want, f"{name} {case}: said to differ, but Go renders it exactly"
            continue
        assert go == want, f"{name} {case}"
        compared += 1
    assert compared >= len(rows) - 9


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_go_path_is_reported_as_the_renders_show(name, renders):
    template, translation, rows = renders[name]
    report = analyze_chat(template, TOKENS, prove_llama_cpp_path=False)
    go = report.paths[GO_TEMPLATE]
    fmt = FORMATS_BY_NAME[FAMILIES[name]]
    in_go = bool(fmt.rewrites_edit) and any(e.startswith(fmt.rewrites_edit) for e in translation.edits.values())
    if fmt.text_rewrites and not in_go:  # named from the source, before the proof's differences
        assert go.status == "differs" and go.differences[0].startswith("text: the template "), go.differences
    shown = {d.split(":")[0] for d in go.differences} - {"tools", "text"}
    assert shown == TRIMMING.get(name, set()), go.differences  # only what trimming changes differs
    if report.go_template is not None:  # today's date comes from currentDate, never the build day written in
        assert datetime.date.today().isoformat() not in report.go_template
        assert ("currentDate" in report.go_template) == ("strftime_now" in template)
    if name not in TRIMMING:
        assert report.go_template is not None
        # tools are written only where a tool layout is proven, and then exact
        assert (".Tools" in report.go_template) == (go.modes.get("tools", "not handled") == "exact")
        if not fmt.text_rewrites or in_go:
            assert go.status in ("exact", "exact without tools"), go.differences
    elif report.go_template is None:  # written only when the difference is named as trimming
        assert not any("trims whitespace" in d for d in go.differences)


def test_text_the_source_rewrites_really_differs_in_go(go_renderer, renders):
    jobs, wants = [], []
    for name, messages in REWRITES.items():
        template, translation, _ = renders[name]
        assert FORMATS_BY_NAME[FAMILIES[name]].text_rewrites, name  # the row names what differs
        off = name in NO_THINK
        jobs.append({"template": translation.go_template, "messages": [go_payload(m) for m in messages]}
                    | ({"think": False} if off else {}))
        want = render_many(template, [RenderJob(messages, (("enable_thinking", False),) if off else ())], TOKENS)[0]
        wants.append(want[len(TOKENS.bos):] if want.startswith(TOKENS.bos) else want)
    proc = subprocess.run([str(go_renderer)], input=json.dumps(jobs), capture_output=True, text=True, check=True)
    for name, want, got in zip(REWRITES, wants, json.loads(proc.stdout)):
        assert "error" not in got, f"{name}: {got.get('error')}"
        assert got["output"] != want, f"{name}: said to differ on rewritten text, but Go renders it exactly"
    # every row that names a rewrite is shown here (or, done by a Go helper, in REWRITTEN_IN_GO)
    assert {f.name for f in FAMILY_FORMATS if f.text_rewrites and not f.rewrites_edit} == {FAMILIES[n] for n in REWRITES}
    assert {f.name for f in FAMILY_FORMATS if f.rewrites_edit} <= {FAMILIES[n] for n in REWRITTEN_IN_GO}


def test_glm_4_6_adds_nothink_only_to_user_text_not_ending_with_it_in_real_go(go_renderer, renders):
    """GLM 4.6 with thinking off appends /nothink to a user turn unless its text already ends with
    it (the TEMPLATE loops over the text's offsets): real Go against transformers, counts by hand."""
    template, translation, _ = renders["GLM-4.6"]
    texts = ["Hi /nothink", "Hi /nothink ", "/nothink", "Hi", "/nothinkx", "日本 /nothink", "/no", ""]
    jobs = [{"template": translation.go_template, "messages": [go_payload(Message("user", t))], "think": False}
            for t in texts]
    proc = subprocess.run([str(go_renderer)], input=json.dumps(jobs), capture_output=True, text=True, check=True)
    outs = [r.get("output", r.get("error")) for r in json.loads(proc.stdout)]
    for text, out in zip(texts, outs):
        want = render_many(template, [RenderJob((Message("user", text),), (("enable_thinking", False),))], TOKENS)[0]
        assert out == want.removeprefix(TOKENS.bos), text
    assert [out.count("/nothink") for out in outs] == [1, 2, 1, 1, 2, 1, 1, 1]


def test_kimi_k3_leaves_out_thinking_that_is_only_whitespace_in_real_go(go_renderer, renders):
    """Kimi K3 writes an empty think block for thinking that is only whitespace (the source's
    `reasoning_content | trim` test; the TEMPLATE loops over the text): real Go against
    transformers, and which ones are left out by hand (U+200B is no whitespace to Python)."""
    template, translation, _ = renders["Kimi-K3"]
    thoughts = ["  ", "\u3000\n\t", "\u00a0\u2029", " x ", "\u200b", "日本 "]
    conversations = [(Message("user", "Hi"), Message("assistant", "Hello", thinking=t), Message("user", "Bye"))
                     for t in thoughts]
    jobs = [{"template": translation.go_template, "messages": [go_payload(m) for m in c]} for c in conversations]
    proc = subprocess.run([str(go_renderer)], input=json.dumps(jobs), capture_output=True, text=True, check=True)
    outs = [r.get("output", r.get("error")) for r in json.loads(proc.stdout)]
    for messages, out in zip(conversations, outs):
        assert out == render_many(template, [RenderJob(messages)], TOKENS)[0].removeprefix(TOKENS.bos)
    empty = "<|open|>think<|sep|><|close|>think<|sep|><|open|>response<|sep|>Hello"
    assert [empty in out for out in outs] == [True, True, True, False, False, False]


def test_text_a_family_template_rewrites_in_go_is_rendered_as_the_source_does(go_renderer, renders):
    for name, messages in REWRITTEN_IN_GO.items():
        template, translation, _ = renders[name]
        assert "ep.after:" in translation.go_template or "ep.drop:" in translation.go_template, name
        proc = subprocess.run([str(go_renderer)], input=json.dumps([{"template": translation.go_template, "messages": [
            go_payload(m) for m in messages]}]), capture_output=True, text=True, check=True)
        [got] = json.loads(proc.stdout)
        want = render_many(template, [RenderJob(messages)], TOKENS)[0]
        assert got.get("output") == (want[len(TOKENS.bos):] if want.startswith(TOKENS.bos) else want), name
