"""Path 2 (Ollama Go TEMPLATE) for the families of the pinned tree's templates that edgepack writes
with its generic layouts: real templates from models/templates/ (unmodified copies in
tests/data/chat_templates/pinned/), rendered by transformers, against the TEMPLATE edgepack
writes, run by Go's real text/template (tests/go), with thinking unset, on and off and an
earlier assistant turn that has thinking."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
from pathlib import Path

import pytest

from edgepack.chat.conversations import GO_PROOF_PROBES, PROBES, PROOF_PROBES, Message
from edgepack.chat.capabilities import inferred_thinking_tags
from edgepack.chat.report import GO_TEMPLATE, analyze_chat
from edgepack.chat.sandbox import RenderJob, SpecialTokens, render_many
from edgepack.chat.translate import CHOICE_KWARGS, CHOICE_PROBES, render_ollama

PINNED = Path(__file__).parent / "data" / "chat_templates" / "pinned"
TOKENS = SpecialTokens("<s>", "</s>")
EXACT_NT = "exact without tools"

# pinned template -> (family/variant chosen, Go TEMPLATE status, conversations that differ, trims the TEMPLATE does)
FAMILIES = {
    # These cut an earlier answer's text at </think> (as clients that do not split thinking send it),
    # and so does the TEMPLATE (Go helpers); the real-Go comparison below includes that conversation.
    "StepFun3.5-Flash": ("chatml/plain", "exact", set(),
                         "split('</think>')[-1].lstrip('\\n') when it contains '</think>' of assistant"),
    # Both also strip newlines around the thinking a continued final turn keeps (so does the TEMPLATE).
    # Qwen3's tools are written as it writes them (chat.tools.layouts): exact with tools too.
    "Qwen-Qwen3-0.6B": ("chatml/plain", "exact", set(),
                        "split('</think>')[-1].lstrip('\\n') when it contains '</think>' of assistant, "
                        "strip('\\n') of thinking"),
    "openbmb-MiniCPM5-1B": ("chatml/plain", "exact", set(),
                            "split('</think>')[-1].lstrip('\\n') when it contains '</think>' of assistant, "
                            "strip('\\n') of thinking"),
    "LFM2.5-8B-A1B": ("chatml/skip-empty-system", "exact", set(),
                      "split('</think>')[-1].strip() when it contains '</think>' of assistant, "
                      "a final assistant turn (continued) left as it is"),
    # Bielik strips an assistant turn's leading space (so does the TEMPLATE), and with thinking on
    # adds an instruction to the system prompt (so does its family template).
    "Bielik-11B-v3.0-Instruct": ("bielik/3", "exact", set(), "lstrip() of assistant, strip() of thinking"),
    # V3.1: a family template of its own, which cuts an answer after its FIRST </think> (a byte loop:
    # it shows Ollama its <think> tags, so reads .Thinking); exact with tools too.
    "deepseek-ai-DeepSeek-V3.1": ("deepseek/v3.1", "exact", set(), ""),
    # Family templates of their own now (DSML tools: chat.tools.dsml), exact with tools too.
    "deepseek-ai-DeepSeek-V3.2": ("deepseek/v3.2", "exact", set(), ""),
    "deepseek-ai-DeepSeek-V4": ("deepseek/v4", "exact", set(), ""),
    # R1 distills (a family template for their tool outputs): exact with tools too
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B": ("deepseek/r1-distill", "exact", set(), "split('</think>')[-1] of assistant"),
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B": ("deepseek/r1-distill-think-switch", "exact", set(),
                                                 "split('</think>')[-1] of assistant"),
    # Its TEMPLATE reads no .Thinking (so may meet Ollama built with Go < 1.24): the loop-free cut.
    "llama-cpp-deepseek-r1": ("deepseek/r1-eos-after-user", EXACT_NT, set(), "split('</think>')[-1] of assistant"),
    "ibm-granite-granite-4.1": ("granite/skip-empty-system", "exact", set(), ""),
    # with tools another default system prompt, and the definitions as tojson(indent=4): exact with tools too
    "ibm-granite-granite-3.3-2B-Instruct": ("granite/default-system", "exact", set(), ""),
    "Cohere2MoE": ("command-r/cohere2", "exact", set(), ""),
    "CohereForAI-c4ai-command-r7b-12-2024-tool_use": ("command-r/r7b", "exact", set(), ""),
    "meetkai-functionary-medium-v3.1": ("llama3/preamble", "exact", set(), ""),
    "meetkai-functionary-medium-v3.2": ("llama3/functionary-v3.2", EXACT_NT, set(), ""),
    # Trims message content: the TEMPLATE trims it the same way (Go helpers), checked in real Go.
    # rwkv and QwQ never write a turn's thinking but open a think block: their TEMPLATEs show Ollama
    # the tags (a block never written), so they may cut at </think> and trim after (Go 1.24's range).
    "llama-cpp-rwkv-world": ("rwkv/world", "exact", set(),
                             "strip() of user, split('</think>')[-1].strip() of assistant"),
    "Qwen-QwQ-32B": ("chatml/plain", "exact", set(), "split('</think>')[-1].lstrip('\\n') of assistant, "
                     "a final assistant turn (continued) left as it is"),
    "meta-llama-Llama-3.2-3B-Instruct": ("llama3/3.1", "exact", set(),
                                         "strip() of system, strip() of user, strip() of assistant"),
    # A family template of its own: rewrites assistant text and thinking as the source does (tags and
    # blank text found by loops over the text), so no edits are named.
    "NVIDIA-Nemotron-3-Nano-30B-A3B-BF16": ("nemotron/3-nano", "exact", set(), ""),
    # Nano v2 too (its reasoning mode from /think and /no_think in the messages, its answers cut
    # between their first and second </think>: loops, as it shows Ollama its <think> tags)
    "NVIDIA-Nemotron-Nano-v2": ("nemotron/nano-v2", "exact", set(), ""),
    # Its reasoning mode and custom instructions come from scans of the system text (below).
    "HuggingFaceTB-SmolLM3-3B": ("smollm/3", "exact", set(), ""),
}

_THINKING_HISTORY = CHOICE_PROBES["thinking_history"]
_PREFILL = (Message("user", "Next prime after 7?"), Message("assistant", "It is", thinking="8 is even, so 11?"))
# Every conversation without tools, each with thinking unset, on and off; and final assistant turns
# (Ollama's prefill) with and without thinking, compared with transformers' continue_final_message.
CONVERSATIONS = PROBES | {name: p.messages for name, p in PROOF_PROBES.items() if p.mode != "tools"} | {
    "thinking_history": _THINKING_HISTORY,
    "prefill": _PREFILL[:1] + (Message("assistant", "It is"),),
    "prefill_thinking": _PREFILL,
    "prefill_after_history": _THINKING_HISTORY + _PREFILL[1:],
    "prefill_padded_thinking": GO_PROOF_PROBES["prefill_padded_thinking"].messages,
    "thinking_in_content": GO_PROOF_PROBES["thinking_in_content"].messages,
    "padded_no_system": GO_PROOF_PROBES["padded_no_system"].messages,
}
PREFILL_KWARGS = CHOICE_KWARGS["prefill"]


def pinned(name: str) -> str:
    return (PINNED / f"{name}.jinja").read_text(encoding="utf-8")


def go_payload(m: Message) -> dict:
    return {"role": m.role, "content": m.content, "thinking": m.thinking}


def render_go(binary: Path, jobs: list[dict]) -> list[str]:
    proc = subprocess.run([str(binary)], input=json.dumps(jobs), capture_output=True, text=True, check=True)
    results = json.loads(proc.stdout)
    for r in results:
        assert "error" not in r, r["error"]
    return [r["output"] for r in results]


def hf(template: str, messages, think: bool | None) -> str:
    return hf_many(template, [(messages, think)])[0]


def hf_many(template: str, jobs) -> list[str]:
    """transformers' renders (one bounded child), less the BOS llama.cpp's tokenizer adds itself."""
    def kwargs(messages, think) -> tuple:
        prefill = PREFILL_KWARGS if messages[-1].role == "assistant" else ()
        return prefill + (() if think is None else (("enable_thinking", think),))

    texts = render_many(template, [RenderJob(tuple(m), kwargs(m, t)) for m, t in jobs], TOKENS)
    assert all(isinstance(t, str) for t in texts), texts
    return [t.removeprefix(TOKENS.bos) for t in texts]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_real_go_renders_the_family_as_transformers_does_with_thinking(name, go_renderer):
    template = pinned(name)
    family, status, differing, trims = FAMILIES[name]
    report = analyze_chat(template, TOKENS, prove_llama_cpp_path=False)
    go = report.paths[GO_TEMPLATE]
    assert (f"{report.family}/{report.variant}", go.status) == (family, status), go.differences
    assert report.go_template is not None
    assert (".Tools" in report.go_template) == (go.modes.get("tools") == "exact")  # tools written only when proven
    # Text the template trims is trimmed by the TEMPLATE too (edgepack.chat.gohelpers), and said so.
    assert not any("trims whitespace" in d for d in go.differences), go.differences
    assert [n for n in go.notes if n.startswith("text edited")] == ([f"text edited as the template edits it "
                                                                      f"(Go helpers): {trims}"] if trims else [])

    jobs = [(conv, think) for conv in CONVERSATIONS for think in (None, True, False)]
    outs = render_go(go_renderer, [{"template": report.go_template, "think": think,
                                    "messages": [go_payload(m) for m in CONVERSATIONS[c]]} for c, think in jobs])
    wants = hf_many(template, [(CONVERSATIONS[c], think) for c, think in jobs])
    mismatched = set()
    for (conv, think), out, want in zip(jobs, outs, wants):
        # The Python model edgepack proves with agrees with Go itself.
        assert render_ollama(report.go_template, CONVERSATIONS[conv], think=think) == out, (conv, think)
        if out != want:
            mismatched.add(conv)
    assert mismatched == differing


@pytest.mark.parametrize("name, history, block", [
    # Shown to Ollama as string actions, not text: see the test below.
    ("Cohere2MoE", True, '{{ "<|START_THINKING|>" }}{{ .Thinking }}{{ "<|END_THINKING|>" }}'),
    # (trimmed as the template trims it: edgepack.chat.gohelpers)
    ("Bielik-11B-v3.0-Instruct", True, '<think>\n{{ template "ep.strip" .Thinking }}\n</think>\n'),
    ("Qwen-Qwen3-0.6B", False, '<think>\n{{ template "ep.strip_nl" .Thinking }}\n</think>\n\n'),
    ("deepseek-ai-DeepSeek-V3.2", False, "<think>{{ .Thinking }}</think>{{ else }}</think>"),
])
def test_thinking_is_kept_or_dropped_as_the_template_does(name, history, block):
    """An earlier turn's thinking is kept (Cohere2, Bielik) or dropped (Qwen3, DeepSeek); a final turn
    (Ollama's prefill) keeps it where the template does. The block is written with the template's
    own tags around {{ .Thinking }}, from which Ollama infers the model's thinking tags."""
    template = pinned(name)
    report = analyze_chat(template, TOKENS, prove_llama_cpp_path=False)
    out = render_ollama(report.go_template, _THINKING_HISTORY, think=True)
    assert ("Greet back." in out) is history
    assert out == hf(template, _THINKING_HISTORY, True)
    prefill = render_ollama(report.go_template, CONVERSATIONS["prefill_thinking"], think=True)
    assert prefill == hf(template, CONVERSATIONS["prefill_thinking"], True)
    if block is None:
        assert ".Thinking" not in report.go_template and "8 is even" not in prefill
    else:
        assert block in report.go_template and "8 is even" in prefill


DATED = {"ibm-granite-granite-3.3-2B-Instruct": "%B %d, %Y", "meta-llama-Llama-3.2-3B-Instruct": "%d %b %Y"}


@pytest.mark.parametrize("name", sorted(DATED))
def test_a_date_in_the_templates_own_format_is_built_by_go_from_current_date(name, go_renderer):
    """The TEMPLATE holds no date: on any day, real Go writes that day as the template's strftime does."""
    template, fmt = pinned(name), DATED[name]
    assert f"strftime_now({fmt!r})" in template.replace('"', "'")
    report = analyze_chat(template, TOKENS, prove_llama_cpp_path=False)
    today = datetime.date.today()
    go_template = report.go_template
    assert go_template is not None and today.strftime(fmt) not in go_template
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", go_template)
    messages = PROOF_PROBES["several_assistant_turns"].messages
    rendered_today = hf(template, messages, None)
    assert today.strftime(fmt) in rendered_today
    days = [datetime.date(2027, m, d) for m in range(1, 13) for d in (1, 9, 28)] + [datetime.date(2028, 2, 29)]
    outs = render_go(go_renderer, [{"template": go_template, "messages": [go_payload(m) for m in messages],
                                    "today": day.isoformat()} for day in days])
    for day, out in zip(days, outs):
        assert out == rendered_today.replace(today.strftime(fmt), day.strftime(fmt)), day


def test_the_go_template_never_takes_current_ollama_away_from_a_more_capable_gguf_template():
    """Ollama infers thinking from the text around {{ .Thinking }} and prefers the GGUF's template only
    when it has more capabilities. Qwen3's TEMPLATE shows thinking and takes tools, as its GGUF
    template does: current Ollama takes the TEMPLATE. Cohere2's (tools; no thinking Ollama sees) would lose to a Go
    TEMPLATE showing thinking, and a TEMPLATE without its tools would lose them, so there the tags are string
    actions: its TEMPLATE (tools too) ties, and current Ollama takes it."""
    qwen = analyze_chat(pinned("Qwen-Qwen3-0.6B"), TOKENS, prove_llama_cpp_path=False)
    assert '<think>\n{{ template "ep.strip_nl" .Thinking }}' in qwen.go_template and ".Tools" in qwen.go_template
    assert qwen.current_ollama == "the Go TEMPLATE"
    assert inferred_thinking_tags(qwen.go_template) == ("<think>", "</think>")
    cohere = analyze_chat(pinned("Cohere2MoE"), TOKENS, prove_llama_cpp_path=False)
    assert cohere.capabilities == ["tools"]
    # its TEMPLATE writes tools too (chat.tools.layouts "cohere2"): a tie, which current Ollama gives the TEMPLATE
    assert "<|START_THINKING|>{{ .Thinking" not in cohere.go_template and cohere.current_ollama == "the Go TEMPLATE"
    assert not all(inferred_thinking_tags(cohere.go_template))
    bielik = analyze_chat(pinned("Bielik-11B-v3.0-Instruct"), TOKENS, prove_llama_cpp_path=False)
    assert bielik.capabilities == ["tools", "thinking"] and '<think>\n{{ template "ep.strip" .Thinking }}' in bielik.go_template
    assert inferred_thinking_tags(bielik.go_template) == ("<think>", "</think>")


@pytest.mark.parametrize("name, capabilities", [("Qwen-QwQ-32B", ["tools", "thinking"]),
                                                ("deepseek-ai-DeepSeek-V3.1", ["tools", "thinking"]),
                                                ("NVIDIA-Nemotron-Nano-v2", ["tools", "thinking"]),
                                                ("llama-cpp-rwkv-world", ["thinking"])])
def test_a_template_that_never_writes_thinking_but_opens_a_think_block_shows_ollama_its_tags(name, capabilities):
    """QwQ, DeepSeek V3.1, Nemotron Nano v2 and RWKV World open <think> after the generation prompt and never
    write a turn's thinking.
    Their TEMPLATEs name .Thinking between the tags in a block never written, so that Ollama infers
    the tags (and parses the model's thinking out of its answer, and accepts think): the capabilities
    then equal the GGUF template's, so current Ollama takes the TEMPLATE; nothing changes in the text."""
    template = pinned(name)
    report = analyze_chat(template, TOKENS, prove_llama_cpp_path=False)
    assert report.capabilities == capabilities and report.current_ollama == "the Go TEMPLATE"
    assert "{{ if false }}<think>{{ .Thinking }}</think>{{ end }}" in report.go_template
    assert inferred_thinking_tags(report.go_template) == ("<think>", "</think>")
    for conv in (_THINKING_HISTORY, CONVERSATIONS["prefill_thinking"], CONVERSATIONS["prefill_after_history"]):
        for think in (None, True, False):
            out = render_ollama(report.go_template, conv, think=think)
            assert out == hf(template, conv, think) and "Greet back." not in out and "8 is even" not in out


@pytest.mark.parametrize("name", ["Qwen-QwQ-32B", "LFM2.5-8B-A1B"])
def test_a_final_answer_the_template_does_not_cut_is_continued_as_it_is_in_real_go(name, go_renderer):
    """QwQ cuts earlier answers at </think> (`if not loop.last`), LFM2.5 those before the last user
    turn: a final assistant turn Ollama continues keeps its text, padding and </think> included,
    while an earlier answer is still cut. Real Go against transformers."""
    template = pinned(name)
    report = analyze_chat(template, TOKENS, prove_llama_cpp_path=False)
    text = "\n\n Plan.\n</think>\n\n It is"
    conversations = [(Message("user", "Hi"), Message("assistant", text)),
                     (Message("user", "Hi"), Message("assistant", text), Message("user", "Again"),
                      Message("assistant", "\n More.</think>\n So"))]
    outs = render_go(go_renderer, [{"template": report.go_template, "messages": [go_payload(m) for m in conv]}
                                   for conv in conversations])
    assert outs == hf_many(template, [(conv, None) for conv in conversations])
    assert text in outs[0] and "Plan." not in outs[1].split("Again")[0]


def test_rwkv_world_writes_only_its_last_system_message_first_in_real_go(go_renderer):
    """RWKV World keeps the last system message's text (an empty one writes none) and writes it first."""
    template = pinned("llama-cpp-rwkv-world")
    report = analyze_chat(template, TOKENS, prove_llama_cpp_path=False)
    conversations = [(Message("system", "A"), Message("user", "u"), Message("assistant", "a"), Message("system", "B"),
                      Message("user", "v")),
                     (Message("system", "A"), Message("user", "u"), Message("assistant", "a"), Message("system", ""),
                      Message("user", "v")),
                     (Message("user", "u"), Message("assistant", "a"), Message("system", " C "), Message("user", "v"))]
    outs = render_go(go_renderer, [{"template": report.go_template, "messages": [go_payload(m) for m in conv]}
                                   for conv in conversations])
    assert outs == hf_many(template, [(conv, None) for conv in conversations])
    assert outs[0].startswith("System: B\n\nUser: u") and not outs[1].startswith("System:")


@pytest.mark.parametrize("template, tags", [
    ("{{ range .Messages }}{{ if .Thinking }}<think>\n{{ .Thinking }}\n</think>{{ end }}{{ .Content }}{{ end }}",
     ("<think>", "</think>")),
    # Only a field (.Thinking), inside a range over .Messages, counts; text must start and end the list.
    ("{{ range $m := .Messages }}<t>{{ $m.Thinking }}</t>{{ end }}", ("", "")),
    ("{{ range .Tools }}<t>{{ .Thinking }}</t>{{ end }}", ("", "")),
    ('{{ range .Messages }}{{ if .Thinking }}{{ "<t>" }}{{ .Thinking }}{{ "</t>" }}{{ end }}{{ end }}', ("", "")),
    ("{{ range .Messages }}[{{ if .Thinking }}x{{ end }}]{{ .Content }}{{ end }}", ("[", "")),
])
def test_thinking_tags_are_inferred_as_ollama_infers_them(template, tags):
    """Hand-checked against ollama's thinking/template.go InferTags (nearest list, text first and last)."""
    assert inferred_thinking_tags(template) == tags


@pytest.mark.parametrize("name, caught", [
    # Qwen3 opens an empty think block on a continued turn without thinking, too (and strips the
    # newlines around thinking and cuts text at </think>, which the bare TEMPLATE does not).
    ("Qwen-Qwen3-0.6B", {"prefill", "prefill_thinking", "prefill_thinking_on", "prefill_padded_thinking",
                         "thinking_in_content"}),
    # Cohere2 keeps every turn's thinking; Ollama does not see it as a thinking model.
    ("Cohere2MoE", {"earlier_thinking", "prefill_thinking", "prefill_padded_thinking"}),
])
def test_the_go_proof_covers_thinking_in_earlier_and_continued_turns(name, caught):
    """prove_go compares an earlier turn's thinking and a final assistant turn Ollama continues
    (prefill): a TEMPLATE that drops the thinking the template keeps is caught there, though every
    other proof conversation agrees."""
    from dataclasses import replace

    from edgepack.chat.formats import FORMATS
    from edgepack.chat.proof import ReferenceRenders, prove_go, template_capabilities
    from edgepack.chat.tools.layouts import LAYOUTS
    from edgepack.chat.translate import go_template_for, translate

    template = pinned(name)
    translation = translate(template, TOKENS)
    assert translation.thinking is not None
    fmt = next(f for f in FORMATS if f.name == f"{translation.family}/{translation.variant}").with_tokens(TOKENS)
    tools = next((layout for layout in LAYOUTS if layout.name == translation.tools), None)
    without = replace(translation, go_template=go_template_for(fmt, fixed_text=translation.fixed_text,
                                                                think_tails=translation.think_tails, tools=tools))
    reference = ReferenceRenders(template, TOKENS, template_capabilities(template))
    names = lambda result: {d.split(":")[0] for d in result.differences}  # noqa: E731
    proven = names(prove_go(reference, translation, TOKENS, True, False))
    result = prove_go(reference, without, TOKENS, True, False)
    assert result.status == "differs" and names(result) - proven == caught


def test_a_template_with_a_date_go_cannot_write_is_left_out_not_frozen():
    """Llama 3.2's TEMPLATE is exact without tools (trimming included); with a date format
    currentDate cannot build (a weekday) it is left out: the build day is never written."""
    template = pinned("meta-llama-Llama-3.2-3B-Instruct").replace('strftime_now("%d %b %Y")',
                                                                  'strftime_now("%A %d %b %Y")')
    report = analyze_chat(template, TOKENS, prove_llama_cpp_path=False)
    go = report.paths[GO_TEMPLATE]
    assert go.status == "differs" and go.differences[0].startswith("date:")
    assert report.go_template is None and any("TEMPLATE left out" in w and "date" in w for w in report.warnings)


def test_hidden_thinking_tags_render_the_same_in_real_go_and_ollama_sees_no_thinking(go_renderer):
    """A family template whose tags would make current Ollama take it over a GGUF template with tools
    (gpt-oss, Seed-OSS, Hy3, ...): its tags become string actions; Go renders the same bytes."""
    from edgepack.chat.capabilities import go_template_capabilities, hide_thinking_tags, inferred_thinking_tags

    shown = ('{{- range $i, $_ := .Messages }}{{ "}} braces {{" }}<|{{ .Role }}|>{{ if .Thinking }}<think>\n'
             '{{ .Thinking }}\n</think>{{ end }}{{ .Content }}<think>not a tag here</think>{{ end }}')
    hidden = hide_thinking_tags(shown)
    assert inferred_thinking_tags(shown) == ("<think>", "</think>") and go_template_capabilities(shown) == ["thinking"]
    assert inferred_thinking_tags(hidden) == ("", "") and go_template_capabilities(hidden) == []
    messages = [Message("user", "Hi"), Message("assistant", "Hello", thinking="hmm"), Message("user", "Bye")]
    outs = render_go(go_renderer, [{"template": t, "messages": [go_payload(m) for m in messages]}
                                   for t in (shown, hidden)])
    assert outs[0] == outs[1] and "<think>\nhmm\n</think>Hello" in outs[0] and "}} braces {{" in outs[0]


# Hy3's family template writes tools (layout hy3): current Ollama keeps the Go TEMPLATE, with .Tools
@pytest.mark.parametrize("name, current", [("openai-gpt-oss-120b", "the GGUF's template"),
                                           ("tencent-Hy3", "the Go TEMPLATE")])
def test_a_family_template_never_takes_tools_away_from_current_ollama(name, current):
    template = pinned(name)
    report = analyze_chat(template, TOKENS, prove_llama_cpp_path=False)
    assert "tools" in report.capabilities and report.go_template is not None
    assert report.current_ollama.startswith(current)  # the GGUF's template keeps its tools, or the TEMPLATE has them
    assert current.startswith("the GGUF's template") or ".Tools" in report.go_template


@pytest.mark.parametrize("system", ["  Be brief. /no_think  ", "/think", "/no_think", "x/think/no_think y",
                                    "a/no_/thinkthink b", "é /no_think ü\u3000 ", "/think \t\n", "", "   "])
def test_smollm3_reads_its_reasoning_mode_and_instructions_from_the_system_text_in_real_go(system, go_renderer):
    """SmolLM3 switches its reasoning mode on /no_think (else /think) anywhere in the system text,
    removes every /no_think and then every /think from it and right-trims the rest; blank, it writes
    a default for the mode. Real Go against transformers, thinking unset, on and off."""
    template = pinned("HuggingFaceTB-SmolLM3-3B")
    report = analyze_chat(template, TOKENS, prove_llama_cpp_path=False)
    conversation = (Message("system", system), Message("user", "Hi"), Message("assistant", "\nHello"),
                    Message("user", "Bye"))
    jobs = [(conversation, think) for think in (None, True, False)]
    outs = render_go(go_renderer, [{"template": report.go_template, "think": think,
                                    "messages": [go_payload(m) for m in messages]} for messages, think in jobs])
    assert outs == hf_many(template, jobs)
    if system == "  Be brief. /no_think  ":  # by hand
        assert "Reasoning Mode: /no_think\n\n## Custom Instructions\n\n  Be brief.\n\n<|im_end|>" in outs[0]
