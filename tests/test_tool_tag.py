"""Where Ollama's generic tool parser looks for tool calls in a reply: its rule (tools/template.go
parseTag) as edgepack models it, on hand-written TEMPLATEs whose tag was worked out by hand from
that rule, and the tag edgepack's TEMPLATEs show it, checked by hand per family."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgepack.chat.capabilities import inferred_tool_tag
from edgepack.chat.conversations import PROOF_PROBES
from edgepack.chat.report import GO_TEMPLATE, analyze_chat
from edgepack.chat.sandbox import SpecialTokens

PINNED = Path(__file__).parent / "data" / "chat_templates" / "pinned"
R = "{{ range .Messages }}"


@pytest.mark.parametrize("go_text, tag", [
    (R + '{{ if .ToolCalls }}<tool_call>{{ range .ToolCalls }}{"name": "{{ .Function.Name }}"}{{ end }}{{ end }}{{ end }}',
     "<tool_call>"),
    (R + "{{ if .ToolCalls }}[TOOL_CALLS] [{{ range .ToolCalls }}{}{{ end }}]{{ end }}{{ end }}", "[TOOL_CALLS] ["),
    (R + "{{ .Content }}{{ end }}", "{"),  # no if on .ToolCalls: any JSON object
    (R + "{{ if .ToolCalls }}{{ .Content }}<x>{{ end }}{{ end }}", "{"),  # an action comes first: the search stops
    (R + '{{ if and (eq .Role "assistant") .ToolCalls }}  \n <a> {{ end }}{{ end }}', "<a>"),  # blank text skipped
    (R + "{{ if (not .ToolCalls) }}<b>{{ end }}{{ end }}", "{"),  # inside parentheses: not the if's own field
    ("{{ range $i, $_ := .Messages }}{{ if $_.ToolCalls }}<v>{{ end }}{{ end }}", "{"),  # a variable's field: not a field node
    ("{{ if false }}{{ if .ToolCalls }}<t>{{ end }}{{ end }}" + R + "{{ if .ToolCalls }}<u>{{ end }}{{ end }}", "<t>"),
    (R + "{{ if .ToolCalls }}{{ if .Content }}\n{{ end }}<c>{{ end }}{{ end }}", "{"),  # an if without text ends it
])
def test_ollamas_tag_rule_as_modelled(go_text, tag):
    assert inferred_tool_tag(go_text) == tag


# the tag a call in each model's reply starts with (read by hand from the source templates' call text)
JSON_CALLS = {"Qwen-Qwen3-0.6B": "<tool_call>", "Qwen-Qwen2.5-7B-Instruct": "<tool_call>",
              "Mistral-Small-3.2-24B-Instruct-2506": "[TOOL_CALLS]", "meta-llama-Llama-3.1-8B-Instruct": "{",
              "CohereForAI-c4ai-command-r7b-12-2024-tool_use": "<|START_ACTION|>", "moonshotai-Kimi-K2":
              "<|tool_calls_section_begin|>", "deepseek-ai-DeepSeek-V3.1": "<｜tool▁calls▁begin｜>",
              "NVIDIA-Nemotron-Nano-v2": "<TOOLCALL>[", "ibm-granite-granite-4.0": "<tool_call>"}
NOT_JSON = ("Qwen3-Coder", "GLM-4.7-Flash", "deepseek-ai-DeepSeek-V4")  # XML / key-value / DSML arguments


@pytest.mark.parametrize("name", [*JSON_CALLS, *NOT_JSON])
def test_ollama_finds_calls_where_the_model_writes_them(name):
    report = analyze_chat((PINNED / f"{name}.jinja").read_text(encoding="utf-8"), SpecialTokens("<s>", "</s>"),
                          prove_llama_cpp_path=False)
    go = report.paths[GO_TEMPLATE]
    assert go.modes.get("tools") == "exact", go.differences  # the tag block changes no render
    notes = [n for n in go.notes if n.startswith("tool calls in replies")]
    warned = [w for w in report.warnings if w.startswith("tool calls in replies")]
    if name in JSON_CALLS:
        assert inferred_tool_tag(report.go_template) == JSON_CALLS[name]
        assert len(notes) == 1 and not warned
    else:  # Ollama's generic parser cannot read them: said, and the TEMPLATE left as it was
        assert not notes and len(warned) == 1 and "{{ if false }}{{ if .ToolCalls }}" not in report.go_template


def test_the_tag_block_writes_nothing_in_real_go(go_renderer):
    from test_chat_templates import render_go

    report = analyze_chat((PINNED / "Qwen-Qwen3-0.6B.jinja").read_text(encoding="utf-8"), SpecialTokens("<s>", "</s>"),
                          prove_llama_cpp_path=False)
    block, rest = report.go_template.split("{{ end }}{{ end }}", 1)
    assert block.endswith("{{ if false }}{{ if .ToolCalls }}<tool_call>")
    messages = PROOF_PROBES["several_assistant_turns"].messages
    assert render_go(go_renderer, [(report.go_template, messages)]) == render_go(go_renderer, [(rest, messages)])
