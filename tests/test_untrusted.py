"""Untrusted sources and input, driven through the real CLI: refused in one line, nothing run or damaged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from edgepack.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, *fragments):
    assert result.exit_code != 0
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ------------------------------------------------------------------ code shipped with a model

EVIL = """\
from pathlib import Path
Path({marker!r}).write_text("ran")
from transformers import PreTrainedTokenizer
class EvilTokenizer(PreTrainedTokenizer):
    pass
"""


def _model_with_code(tiny_hf_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The tiny Llama whose tokenizer_config asks transformers for its own tokenizer module.

    The pinned converter loads tokenizers of class HybridDNATokenizer with trust_remote_code=True,
    so at the branch point this module ran during conversion and wrote the marker."""
    model = tmp_path / "with-code"
    shutil.copytree(tiny_hf_dir, model)
    marker = tmp_path / "marker"
    (model / "tokenization_evil.py").write_text(EVIL.format(marker=str(marker)))
    config = json.loads((model / "tokenizer_config.json").read_text())
    config |= {"tokenizer_class": "HybridDNATokenizer",
               "auto_map": {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}}
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    return model, marker


def test_remote_code_is_refused_and_does_not_run(tiny_hf_dir, tmp_path):
    model, marker = _model_with_code(tiny_hf_dir, tmp_path)
    result = run("build", model, "-o", tmp_path / "out")
    assert_one_line_error(result, "tokenization_evil.py", "--trust-remote-code")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_remote_code_runs_only_when_trusted(tiny_hf_dir, tmp_path, monkeypatch):
    model, marker = _model_with_code(tiny_hf_dir, tmp_path)
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "hf-modules"))
    result = run("build", model, "-o", tmp_path / "out", "--trust-remote-code")
    assert marker.read_text() == "ran"  # the user allowed it: the converter imported the module
    assert result.exit_code != 0  # (the fake tokenizer then cannot tokenize: the converter's one-line error)
    assert len(result.stderr.strip().splitlines()) == 1


def test_architecture_loaded_with_remote_code_and_a_script(tiny_hf_dir, tmp_path):
    """No auto_map, but QWen's converter calls AutoTokenizer(trust_remote_code=True) and a .py is there."""
    model = tmp_path / "qwen-like"
    shutil.copytree(tiny_hf_dir, model)
    (model / "tokenization_qwen.py").write_text("raise SystemExit('must not run')\n")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(config | {"architectures": ["QWenLMHeadModel"]}))
    assert_one_line_error(run("build", model, "-o", tmp_path / "out"), "QWenLMHeadModel", "tokenization_qwen.py",
                          "--trust-remote-code")


def test_remote_architectures_are_read_from_the_pinned_converter():
    from edgepack.runtime.toolchain import ensure_toolchain
    from edgepack.source.trust import remote_code_architectures

    found = remote_code_architectures(str(ensure_toolchain().root / "conversion"))
    # Hand-checked in the pinned tree: these classes call AutoTokenizer(..., trust_remote_code=True).
    assert {"QWenLMHeadModel", "ChatGLMModel", "DreamModel", "LLaDAModelLM", "MiniMaxM1ForCausalLM",
            "HunYuanMoEV1ForCausalLM"} <= found
    # ...and these never do (GPT-2 BPE / sentencepiece vocabularies only).
    assert not {"GPT2LMHeadModel", "Qwen2ForCausalLM", "GemmaForCausalLM", "PhiForCausalLM"} & found


def test_converter_runs_offline(monkeypatch):
    from edgepack.runtime.toolchain import converter_env, ensure_toolchain

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert converter_env(ensure_toolchain())["HF_HUB_OFFLINE"] == "1"


def test_hub_download_skips_python_files(monkeypatch, tmp_path):
    import huggingface_hub

    calls = []

    def fake_snapshot(repo_id, **kwargs):  # records what would be fetched; the hub is not reachable here
        calls.append(kwargs)
        raise huggingface_hub.errors.LocalEntryNotFoundError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    assert_one_line_error(run("build", "org/model", "-o", tmp_path / "out"), "cannot reach")
    assert "*.py" in calls[0]["ignore_patterns"] and "*.py" not in calls[0]["allow_patterns"]
    run("build", "org/model", "-o", tmp_path / "out", "--trust-remote-code")
    assert "*.py" in calls[1]["allow_patterns"] and not calls[1]["ignore_patterns"]
