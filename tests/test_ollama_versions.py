"""The oldest Ollama a written TEMPLATE runs on, against releases read by hand from ollama's git
history (the tag that first has the field or function, or `go 1.24` in go.mod)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgepack.chat.ollama_versions import needed_ollama
from edgepack.chat.report import ChatReport, analyze_chat
from edgepack.chat.sandbox import SpecialTokens

PINNED = Path(__file__).parent / "data" / "chat_templates" / "pinned"


@pytest.mark.parametrize("go_text, version", [
    ("{{ range .Messages }}{{ .Content }}{{ end }}", None),  # what every TEMPLATE-reading Ollama has
    ('{{ range $k := len .Prompt }}{{ end }}', "0.6.0"),  # Ollama's go.mod: go 1.22.8 in 0.5.0, 1.24.0 in 0.6.0
    ("{{ if .Think }}{{ end }}{{ .Thinking }}", "0.9.0"),
    ("{{ .Thinking }}{{ .ToolName }}", "0.9.6"),
    ("{{ currentDate }}", "0.11.1"),
    ("{{ range .Messages }}{{ .ToolCallID }}{{ end }}", "0.12.10"),  # api.ToolCall gains ID in 0.12.10
    ("{{ yesterdayDate }}", "0.13.3"),
    ("{{ range $t := .Tools }}{{ $t.Function.Parameters.Properties }}{{ end }}", None),
    ("{{ range $k, $p := .Tools }}{{ $p.Properties }}{{ end }}", "0.13.5"),
    ("{{ $p.Properties.ToMap }}{{ currentDate }}", "0.14.0"),
])
def test_the_newest_feature_used_decides(go_text, version):
    need = needed_ollama(go_text)
    assert (need.version if need else None) == version


def test_written_templates_state_the_ollama_they_need():
    tokens = SpecialTokens("<s>", "</s>")
    reports = {n: analyze_chat((PINNED / f"{n}.jinja").read_text(encoding="utf-8"), tokens, prove_llama_cpp_path=False)
               for n in ("google-gemma-4-31B-it", "Qwen-Qwen3-0.6B", "Qwen-Qwen2.5-7B-Instruct")}
    assert {n: r.go_template_needs_ollama for n, r in reports.items()} == {
        "google-gemma-4-31B-it": "0.14.0",  # nested tool properties through ToMap
        "Qwen-Qwen3-0.6B": "0.9.0",  # thinking
        "Qwen-Qwen2.5-7B-Instruct": None}
    gemma = reports["google-gemma-4-31B-it"]
    assert "the Go TEMPLATE needs Ollama 0.14.0 or later" in "\n".join(gemma.summary_lines())  # Modelfile, card, inspect
    again = ChatReport.from_dict(gemma.to_dict())  # the manifest's copy says the same
    assert again.go_template_needs_ollama == "0.14.0" and gemma.to_dict()["go_template_needs_ollama"] == "0.14.0"
