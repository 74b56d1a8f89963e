"""Proof by rendering: every translated Ollama template, run by Go's real text/template, produces
exactly what the model's Hugging Face chat template renders (transformers' Jinja renderer)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from edgepack.chat.templates import (
    FORMATS,
    PROBES,
    ChatTemplateError,
    Message,
    SpecialTokens,
    has_system,
    render_hf,
    render_ollama,
    translate,
)

DATA = Path(__file__).parent / "data" / "chat_templates"
INDEX = json.loads((DATA / "index.json").read_text(encoding="utf-8"))

REQUIRED_FAMILIES = {
    "chatml", "llama2", "llama3", "mistral", "gemma", "phi3", "phi4", "deepseek", "command-r",
    "zephyr", "vicuna", "alpaca", "granite", "falcon", "starcoder2", "openchat",
}

# A conversation no translation was chosen on: longer, with non-ASCII text and quotes.
HELD_OUT = (
    Message("system", "You are a careful assistant. Répondez en français."),
    Message("user", 'What does "naïve" mean?'),
    Message("assistant", "It means innocent or unsophisticated."),
    Message("user", "And {{ braces }}?"),
    Message("assistant", "Those are just characters."),
    Message("user", "Thanks — bye."),
)
CONVERSATIONS = {**PROBES, "held_out": HELD_OUT}


def render_go(binary: Path, jobs: list[tuple[str, tuple[Message, ...]]]) -> list[str]:
    payload = [{"template": t, "messages": [m.to_dict() for m in msgs]} for t, msgs in jobs]
    proc = subprocess.run([str(binary)], input=json.dumps(payload), capture_output=True, text=True, check=True)
    results = json.loads(proc.stdout)
    for r in results:
        assert "error" not in r, r["error"]
    return [r["output"] for r in results]


def tokens_of(name: str) -> tuple[SpecialTokens, bool]:
    entry = INDEX[name]
    return SpecialTokens(entry["bos_token"], entry["eos_token"]), entry["add_bos_token"]


def test_every_required_family_has_a_real_template():
    assert REQUIRED_FAMILIES <= {e["family"] for e in INDEX.values()}
    assert REQUIRED_FAMILIES <= {f.family for f in FORMATS}
    assert sorted(p.stem for p in DATA.glob("*.jinja")) == sorted(INDEX)


@pytest.mark.parametrize("name", sorted(INDEX))
def test_go_template_renders_exactly_what_the_hf_template_renders(name, go_renderer):
    template = (DATA / f"{name}.jinja").read_text(encoding="utf-8")
    tokens, adds_bos = tokens_of(name)
    translation = translate(template, tokens, tokenizer_adds_bos=adds_bos)
    assert translation.family == INDEX[name]["family"]

    fmt = next(f for f in FORMATS if (f.family, f.variant) == (translation.family, translation.variant))
    names = list(CONVERSATIONS)
    go_outputs = render_go(go_renderer, [(translation.go_template, CONVERSATIONS[n]) for n in names])
    compared = 0
    for conv_name, go_output in zip(names, go_outputs):
        conversation = CONVERSATIONS[conv_name]
        # The interpreter edgepack chose the translation with agrees with Go itself.
        assert render_ollama(translation.go_template, conversation) == go_output, conv_name
        try:
            expected = render_hf(template, conversation, tokens)
        except Exception:
            # Only templates that refuse system prompts may fail, and only on those conversations.
            assert fmt.rejects_system and has_system(conversation), conv_name
            system = next(m.content for m in conversation if m.role == "system")
            first_user = next(m.content for m in conversation if m.role == "user")
            assert f"{system}\n\n{first_user}" in go_output if system else first_user in go_output
            continue
        if adds_bos and tokens.bos and expected.startswith(tokens.bos):
            expected = expected[len(tokens.bos):]  # llama.cpp's tokenizer adds BOS itself
        assert go_output == expected, f"{name}: {conv_name}"
        compared += 1
    assert compared >= 2


def test_stops_come_from_the_turn_delimiters():
    tokens, adds_bos = tokens_of("meta-llama-3.1-8b-instruct")
    t = translate((DATA / "meta-llama-3.1-8b-instruct.jinja").read_text(), tokens, tokenizer_adds_bos=adds_bos)
    assert "<|eot_id|>" in t.stops and "<|start_header_id|>" in t.stops
    assert "Cutting Knowledge Date: December 2023" in t.go_template  # the header preamble is kept

    tokens, adds_bos = tokens_of("smollm2-135m-instruct")
    t = translate((DATA / "smollm2-135m-instruct.jinja").read_text(), tokens, tokenizer_adds_bos=adds_bos)
    assert (t.family, t.variant) == ("chatml", "default-system")
    assert t.stops == ["<|im_start|>", "<|im_end|>"]
    assert "You are a helpful AI assistant named SmolLM" in t.go_template


def test_bos_is_written_by_the_template_when_the_tokenizer_does_not_add_it(go_renderer):
    template = (DATA / "llama-2-7b-chat.jinja").read_text()
    tokens = SpecialTokens("<s>", "</s>")
    t = translate(template, tokens, tokenizer_adds_bos=False)
    [out] = render_go(go_renderer, [(t.go_template, PROBES["multi_turn"])])
    assert out == render_hf(template, PROBES["multi_turn"], tokens)
    assert out.startswith("<s>[INST]")


def test_a_template_of_no_known_family_is_not_guessed():
    with pytest.raises(ChatTemplateError, match="matches none"):
        translate("{% for m in messages %}<<{{ m.role }}>> {{ m.content }}\n{% endfor %}", SpecialTokens())


def test_a_known_family_with_rewritten_content_is_refused():
    template = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] | upper"
                " + '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    with pytest.raises(ChatTemplateError, match="looks like chatml"):
        translate(template, SpecialTokens())


def test_a_template_that_cannot_render_or_is_empty_is_one_clear_error():
    with pytest.raises(ChatTemplateError, match="no chat template"):
        translate("  ", SpecialTokens())
    with pytest.raises(ChatTemplateError, match="cannot be rendered") as err:
        translate("{{ raise_exception('nope') }}", SpecialTokens())
    assert "\n" not in str(err.value)


def test_python_model_of_text_template_agrees_with_go_on_ollama_idioms(go_renderer):
    templates = [
        # Ollama's own ChatML shape: prefill of a final assistant message, $last, trim markers.
        "{{- range $i, $_ := .Messages }}\n{{- $last := eq (len (slice $.Messages $i)) 1 -}}\n"
        "<|im_start|>{{ .Role }}\n{{ .Content }}{{ if not $last }}<|im_end|>\n{{ end }}\n"
        "{{- if and (ne .Role \"assistant\") $last }}<|im_end|>\n<|im_start|>assistant\n{{ end }}\n{{- end }}",
        # .System (all system prompts, joined) and or/not with variables and string literals.
        '{{ if .System }}[{{ .System }}]{{ end }}{{ $n := 0 }}{{ range .Messages }}{{ $n = len $.Messages }}'
        '{{ if or (eq .Role "user" "tool") (not .Content) }}U{{ else }}{{ "x\\ty" }}{{ end }}{{ end }}{{ $n }}',
    ]
    conversation = (Message("system", "a"), Message("system", "b"), Message("user", "q"), Message("assistant", "r"))
    jobs = [(t, c) for t in templates for c in (conversation, PROBES["multi_turn"])]
    assert render_go(go_renderer, jobs) == [render_ollama(t, c) for t, c in jobs]


_DEFAULT_SYSTEM = ("{%- if messages[0].role == 'system' %}{%- set sys = messages[0].content{REWRITE} %}"
                   "{%- set rest = messages[1:] %}{%- else %}{%- set sys = 'You are helpful. /think' %}"
                   "{%- set rest = messages %}{%- endif %}<sys>{{ sys }}</sys>"
                   "{%- for m in rest %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{%- endfor %}"
                   "{%- if add_generation_prompt %}<assistant>{%- endif %}")


@pytest.mark.parametrize("rewrite, written", [("", True), (" | replace('/think', '')", False)])
def test_default_system_prompt_is_written_only_where_it_renders_the_same(rewrite, written):
    """SYSTEM reaches llama.cpp's Jinja path as a system message: written only when the template renders
    that exactly like its own default (a template that rewrites system messages, as SmolLM3's does, is left to
    write its default itself)."""
    from edgepack.chat.report import analyze_chat
    from edgepack.chat.sandbox import SpecialTokens

    report = analyze_chat(_DEFAULT_SYSTEM.replace("{REWRITE}", rewrite), SpecialTokens("<s>", "</s>"),
                          prove_llama_cpp_path=False)
    assert report.default_system == ("You are helpful. /think" if written else None)
    assert written or any("not written as SYSTEM" in w for w in report.warnings)


def test_tools_as_current_ollama_re_encodes_them():
    """Hand-written from ollama's api/types.go (Tool, ToolFunction, ToolFunctionParameters, ToolProperty,
    PropertyType): field order of the structs, omitempty, unknown keys dropped, property order kept."""
    from edgepack.chat.conversations import ollama_sent_tools

    tool = {"type": "function", "function": {
        "name": "find", "description": "", "strict": True,
        "parameters": {"type": "object", "additionalProperties": False,
                       "properties": {"q": {"description": "query", "type": "string", "minLength": 1},
                                      "n": {"type": ["integer"], "enum": [1, 2]},
                                      "opt": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": ""}},
                       "required": ["q"]}}}
    assert json.dumps(list(ollama_sent_tools([tool])), separators=(",", ":")) == (
        '[{"type":"function","function":{"name":"find","parameters":{"type":"object","required":["q"],'
        '"properties":{"q":{"type":"string","description":"query"},"n":{"type":"integer","enum":[1,2]},'
        '"opt":{"anyOf":[{"type":"string"},{"type":"null"}]}}}}}]')
    # `items` and `$defs` are Go's `any`: decoded into a map, so written back with sorted keys
    listed = {"type": "function", "function": {"name": "tag", "parameters": {
        "type": "object", "$defs": {"z": 1, "a": 2}, "properties": {"t": {"type": "array", "items": {"type": "string", "aa": 1}}}}}}
    assert json.dumps(list(ollama_sent_tools([listed])), separators=(",", ":")) == (
        '[{"type":"function","function":{"name":"tag","parameters":{"type":"object","$defs":{"a":2,"z":1},'
        '"properties":{"t":{"type":"array","items":{"aa":1,"type":"string"}}}}}}]')
