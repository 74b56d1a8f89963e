"""What Ollama's own import does with a chat template (edgepack.chat.ollama_import), on a tiny
hand-made index written here; nothing of ollama's own files is used."""

from __future__ import annotations

import json
import random
from pathlib import Path

from test_chat_templates import render_go

from edgepack.chat.conversations import Message
from edgepack.chat.gotemplate import GoTemplate
from edgepack.chat.ollama_import import (
    GO_TEMPLATE, JINJA_MORE_CAPABILITIES, JINJA_NO_MATCH, current_ollama_path, go_template_capabilities,
    levenshtein, levenshtein_bitparallel, named, parse_index, prefers_chat_template, render_matched, renderer_path,
)
from edgepack.chat.proof import ReferenceRenders, template_capabilities
from edgepack.chat.sandbox import SpecialTokens


def _dp(a: str, b: str) -> int:
    """The textbook dynamic programme, as the independent check of the bit-parallel distance."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def test_distance_is_levenshtein_on_runes():
    # hand-computed
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("flaw", "lawn") == 2
    assert levenshtein("", "abc") == levenshtein("abc", "") == 3
    assert levenshtein("same", "same") == 0
    # on runes, as agnivade/levenshtein: one edit each, where bytes would count 2 and 3
    assert levenshtein("ü", "u") == 1
    assert levenshtein("日本", "日本語") == 1
    rng = random.Random(7)
    for _ in range(300):  # both sides of the 64-bit word edge, and strings of very different lengths
        a = "".join(rng.choice("ab日c") for _ in range(rng.randint(0, 150)))
        b = "".join(rng.choice("ab日c") for _ in range(rng.randint(0, 150)))
        assert levenshtein_bitparallel(a, b) == _dp(a, b) == levenshtein(a, b), (a, b)


def _tiny_index(tmp_path: Path) -> Path:
    """Two fake entries in ollama's layout: index.json, <name>.gotmpl, and one <name>.json."""
    folder = tmp_path / "template"
    folder.mkdir()
    entries = [{"name": "xs", "template": "x" * 200}, {"name": "ys", "template": "y" * 200}]
    (folder / "index.json").write_text(json.dumps(entries))
    (folder / "xs.gotmpl").write_text("{{ range .Messages }}X{{ .Content }}{{ end }}")
    (folder / "ys.gotmpl").write_text("{{ range .Messages }}Y{{ .Content }}\r\n{{ end }}")
    (folder / "ys.json").write_text(json.dumps({"stop": ["<Y>"]}))
    return folder


def _load(folder: Path):
    return parse_index((folder / "index.json").read_text(),
                       lambda name: (folder / name).read_text() if (folder / name).is_file() else None)


def test_the_nearest_template_is_chosen_and_100_is_no_match(tmp_path):
    index = _load(_tiny_index(tmp_path))
    assert [(e.name, e.stops) for e in index] == [("xs", ()), ("ys", ("<Y>",))]
    assert index[1].go_template.endswith("\n{{ end }}")  # CRLF normalised, as template.go does

    near_y = "z" * 3 + "y" * 197
    m = named(near_y, index)
    assert (m.template.name, m.distance) == ("ys", 3)
    m = named("z" * 99 + "y" * 101, index)  # 99 edits: still a match
    assert (m.template.name, m.distance) == ("ys", 99)
    m = named("z" * 100 + "y" * 100, index)  # 100 edits: no match, nearest still named
    assert (m.template, m.nearest, m.distance) == (None, "ys", 100)
    assert current_ollama_path("z" * 100 + "y" * 100, m) == JINJA_NO_MATCH
    m = named("x" * 50 + "y" * 150, index)  # 50 from ys, 150 from xs
    assert (m.template.name, m.distance) == ("ys", 50)
    m = named("x" * 100 + "y" * 99, index)  # 100 from xs, 101 from ys: no match, nearest xs
    assert (m.template, m.nearest, m.distance) == (None, "xs", 100)


def test_ties_go_to_the_earlier_entry(tmp_path):
    index = _load(_tiny_index(tmp_path))
    tie = "x" * 60 + "y" * 60  # 140 from each: 60 substitutions and 80 insertions
    assert _dp(tie, "x" * 200) == _dp(tie, "y" * 200) == 140
    m = named(tie, index)
    assert (m.nearest, m.distance) == ("xs", 140)
    short = "x" * 5 + "y" * 5  # 195 from both
    assert named(short, index).nearest == "xs"
    index.reverse()
    assert named(short, index).nearest == "ys"


CHATML_GO = ("{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
             "{{ end }}<|im_start|>assistant\n")
TOOLS_GO = (CHATML_GO + "{{ if .Tools }}{{ range .Messages }}{{ if .ToolCalls }}c{{ end }}"
            '{{ if eq .Role "tool" }}r{{ end }}{{ end }}{{ end }}')


def test_the_capability_rule_of_current_ollama():
    plain_jinja = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tools_jinja = "{% if tools %}{{ tools | tojson }}{% endif %}" + plain_jinja
    thinking_tools_jinja = "<think></think>" + tools_jinja
    round_trip_jinja = tools_jinja + "{% if message.role == 'tool' %}{{ m.tool_calls }}{% endif %}"
    assert go_template_capabilities(CHATML_GO) == []
    assert go_template_capabilities(TOOLS_GO) == ["tools"]
    # the GGUF's template can do more (tools) than the TEMPLATE: current Ollama runs the GGUF's
    assert prefers_chat_template(tools_jinja, CHATML_GO)
    assert not prefers_chat_template(plain_jinja, CHATML_GO)
    # more capabilities, but only the TEMPLATE takes tool results back: the TEMPLATE stays
    assert not prefers_chat_template(thinking_tools_jinja, TOOLS_GO)
    assert prefers_chat_template(thinking_tools_jinja + round_trip_jinja, TOOLS_GO)
    # the same capabilities: the GGUF's only when it alone takes tool results back
    assert prefers_chat_template(round_trip_jinja, TOOLS_GO.replace('eq .Role "tool"', 'eq .Role "x"'))
    assert not prefers_chat_template(tools_jinja, TOOLS_GO)
    # thinking of a TEMPLATE: the text around .Thinking inside a range over .Messages (InferTags)
    thinking_go = "{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}{{ end }}"
    assert go_template_capabilities(thinking_go) == ["thinking"]
    assert go_template_capabilities("{{ range $.Messages }}<think>{{ .Thinking }}</think>{{ end }}") == []
    assert go_template_capabilities("{{ range .Messages }}<think>{{ .Thinking }}{{ end }}") == []  # no closing tag
    assert not prefers_chat_template("<think></think>" + plain_jinja, thinking_go)

    class Match:  # template.Named's answer for a matched entry
        class template:
            go_template = CHATML_GO
    assert current_ollama_path(tools_jinja, Match) == JINJA_MORE_CAPABILITIES
    assert current_ollama_path(plain_jinja, Match) == GO_TEMPLATE
    # `ollama create` gives some architectures a built-in renderer, which comes before any template
    assert current_ollama_path(tools_jinja, Match, "nemotron_h") == renderer_path("nemotron-3-nano")
    assert current_ollama_path(plain_jinja, Match, "llama") == GO_TEMPLATE


CHATML_JINJA = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
                "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
TOKENS = SpecialTokens("<s>", "</s>")


def test_the_matched_template_is_run_against_transformers():
    reference = ReferenceRenders(CHATML_JINJA, TOKENS, template_capabilities(CHATML_JINJA))
    assert render_matched(CHATML_GO, CHATML_JINJA, reference, TOKENS).status == "exact"
    wrong = render_matched(CHATML_GO.replace("<|im_end|>\n{{ end }}", "<|im_end|>{{ end }}"), CHATML_JINJA,
                           reference, TOKENS)
    assert wrong.status == "differs" and wrong.differences
    # a BOS the Jinja template writes is the tokenizer's job under Ollama, not the TEMPLATE's
    with_bos = "{{ bos_token }}" + CHATML_JINJA
    assert render_matched(CHATML_GO, with_bos, ReferenceRenders(with_bos, TOKENS, []), TOKENS).status == "exact"
    # a template that trims content, and refuses system messages: the padded conversation is
    # compared without its system message, and Go's untrimmed content differs
    trimming = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}"
                "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] | trim + '<|im_end|>\\n' }}{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    result = render_matched(CHATML_GO, trimming, ReferenceRenders(trimming, TOKENS, []), TOKENS)
    assert result.status == "differs"
    assert [d.split(":")[0] for d in result.differences] == ["padded (no system)"]
    assert any("refuses it" in n for n in result.notes)
    # tool requests: Ollama refuses them on a TEMPLATE without .Tools
    tools_jinja = CHATML_JINJA + "{% if tools %}{% endif %}"
    refused = render_matched(CHATML_GO, tools_jinja, ReferenceRenders(tools_jinja, TOKENS, ["tools"]), TOKENS)
    assert (refused.status, refused.refused) == ("tools refused", ["tools"])


def test_range_break_continue_and_printf_agree_with_go(go_renderer):
    # the idioms of ollama's own templates (system prompts gathered with printf, skipped with continue)
    templates = [
        '{{- $system := "" }}{{- range .Messages }}{{- if eq .Role "system" }}'
        '{{- if not $system }}{{ $system = .Content }}{{- else }}{{ $system = printf "%s\\n\\n%s" $system .Content }}'
        "{{- end }}{{- continue }}{{- end }}[{{ .Role }}:{{ if $system }}{{ $system }}|{{ $system = \"\" }}{{ end }}"
        "{{ .Content }}]{{ end }}",
        '{{ range $i, $m := .Messages }}{{ if eq $i 2 }}{{ break }}{{ end }}{{ printf "%d=%v%%" $i .Role }};{{ end }}',
    ]
    conversation = (Message("system", "a"), Message("user", "q"), Message("system", "b"), Message("user", "r"),
                    Message("assistant", "s"))
    jobs = [(t, conversation) for t in templates]
    from edgepack.chat.conversations import ollama_template_data
    ours = [GoTemplate(t).execute(ollama_template_data(c)) for t, c in jobs]
    assert render_go(go_renderer, jobs) == ours
    assert ours[1] == "0=system%;1=user%;"
