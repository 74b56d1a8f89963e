"""Untrusted sources and input, driven through the real CLI: refused in one line, nothing run or damaged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from test_cli import assert_one_line_error, run  # the CLI as a user drives it, one-line errors
from tiny_models import write_gguf_file


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
    assert_one_line_error(run("imatrix", model, "-o", tmp_path / "m.imatrix"), "tokenization_evil.py")
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


# ------------------------------------------------------------------ one line, never a traceback

def _copy(tiny_hf_dir: Path, tmp_path: Path, name: str = "m") -> Path:
    model = tmp_path / name
    shutil.copytree(tiny_hf_dir, model)
    return model


def test_config_json_that_is_a_list(tiny_hf_dir, tmp_path):
    model = _copy(tiny_hf_dir, tmp_path)
    (model / "config.json").write_text("[1, 2]")
    assert_one_line_error(run("build", model, "-o", tmp_path / "out"), "config.json", "JSON object")


def test_architectures_given_as_a_string(tiny_hf_dir, tmp_path):
    model = _copy(tiny_hf_dir, tmp_path)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(config | {"architectures": "LlamaForCausalLM"}))
    assert_one_line_error(run("build", model, "-o", tmp_path / "out"), "list of names", '"LlamaForCausalLM"')


def test_invalid_hub_ids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for repo_id in ("org/..", "a/b..c", "a/-b"):
        assert_one_line_error(run("build", repo_id, "-o", tmp_path / "out"), "not a valid hub id", repr(repo_id))


def test_many_calibration_files(tiny_hf_dir, tmp_path):
    from tiny_models import training_text

    import uuid

    text = f"{uuid.uuid4()}\n" + training_text(40_000)  # a text no cached imatrix was made from
    files = []
    for i in range(14):
        path = tmp_path / f"calibration-part-number-{i:02d}-of-the-corpus.txt"
        path.write_text(text[i * 2500:(i + 1) * 2500])
        files.append(path)
    args = [a for f in files for a in ("--calibration", f)]
    result = run("imatrix", tiny_hf_dir, *args, "--chunks", "2", "--chunk-tokens", "64", "-o", tmp_path / "m.imatrix", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["dataset"].count("+") == 13 and data["chunks"] == 2


def test_task_file_that_is_not_utf8(tiny_bundle, tmp_path):
    task = tmp_path / "quiz.jsonl"
    task.write_bytes('{"question": "caf\u00e9?", "choices": ["a", "b"], "answer": "A"}\n'.encode("latin-1"))
    assert_one_line_error(run("eval", tiny_bundle, "--tasks", task, "--no-speed", "--memory-ctx", "", "-o",
                              tmp_path / "r"), "quiz.jsonl", "UTF-8")
    csv_task = tmp_path / "quiz.csv"
    csv_task.write_bytes("caf\u00e9?,a,b,A\n".encode("latin-1"))
    assert_one_line_error(run("eval", tiny_bundle, "--tasks", csv_task, "--no-speed", "--memory-ctx", "", "-o",
                              tmp_path / "r"), "quiz.csv", "UTF-8")


def test_disk_full_during_quantization(tiny_hf_dir, tmp_path, monkeypatch):
    """A disk that fills after the free-space check (another process wrote to it): 'disk full', one line."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        import pytest

        pytest.skip("needs root to mount a small tmpfs")
    try:
        monkeypatch.setattr("edgepack.pipeline.ensure_free_space", lambda *a, **k: None)
        result = run("build", tiny_hf_dir, "-q", "Q8_0", "-o", disk / "out")
        assert_one_line_error(result, "disk full", "Q8_0")
        assert not (disk / "out").exists()
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_lgpl_license_with_form_feeds(tiny_hf_dir, tmp_path):
    model = _copy(tiny_hf_dir, tmp_path)
    lgpl = ("                  GNU LESSER GENERAL PUBLIC LICENSE\r\n                       Version 2.1, February 1999\r\n"
            "\r\n  Copyright (C) 1991, 1999 Free Software Foundation, Inc.\r\n\f\r\n"
            "                            Preamble\r\n\r\n  The licenses for most software...\r\n\f\r\n"
            "                  GNU LESSER GENERAL PUBLIC LICENSE\r\n   TERMS AND CONDITIONS\r\n")
    (model / "LICENSE").write_bytes(lgpl.encode())
    result = run("build", model, "-q", "Q8_0", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    modelfile = (tmp_path / "out" / "Modelfile").read_text()
    assert "Preamble" in modelfile and "\f" not in modelfile and "\r" not in modelfile


def test_plan_refuses_an_architecture_the_runtime_cannot_load(tmp_path):
    import numpy as np

    def describe(w) -> None:
        w.add_block_count(1)
        w.add_context_length(2048)
        w.add_embedding_length(64)
        w.add_head_count(4)

    path = write_gguf_file(tmp_path / "alien.gguf", "alienformer", describe, {
        "token_embd.weight": np.ones((32, 64), dtype=np.float16),
        "blk.0.attn_q.weight": np.ones((64, 64), dtype=np.float16)})
    assert_one_line_error(run("plan", path, "--target", "rtx-3060-12gb"), "alienformer", "cannot load")


# ------------------------------------------------------------------ evaluation text

def _long_single_line(tmp_path: Path) -> Path:
    from tiny_models import training_text

    text = " ".join(training_text(50_000).split())  # one line, no newline anywhere
    path = tmp_path / "long.txt"
    path.write_text(text * 2)  # ~100k characters: far more than 100 chunks of 16 (or 128) tokens
    return path


def test_eval_chunks_are_capped_by_default(tiny_bundle, tmp_path):
    text = _long_single_line(tmp_path)
    bundle = shutil.copytree(tiny_bundle, tmp_path / "bundle")  # eval records into the bundle it measures
    result = run("eval", bundle, "--text", text, "--chunk-tokens", "16", "--no-speed", "--memory-ctx", "",
                 "-o", tmp_path / "r", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["settings"]["n_chunks"] == 100
    notes = [ln for ln in result.stderr.splitlines() if "--chunks" in ln]
    assert len(notes) == 1 and "scoring the first 100" in notes[0]


def test_eval_checks_free_space_before_planning_cache_files(tiny_bundle, tmp_path, monkeypatch):
    import shutil as sh
    from collections import namedtuple

    text = _long_single_line(tmp_path)
    real = sh.disk_usage
    usage = namedtuple("usage", "total used free")
    # A disk with 4 MiB free under the cache: 150 chunks of distributions need ~10 MiB.
    monkeypatch.setattr(sh, "disk_usage", lambda p: usage(1 << 30, 0, 4 << 20) if "eval-reference" in str(p)
                        else real(p))
    result = run("eval", tiny_bundle, "--text", text, "--chunk-tokens", "128", "--chunks", "150", "--no-speed",
                 "--memory-ctx", "", "-o", tmp_path / "r")
    assert_one_line_error(result, "not enough free space", "--chunks")


# ------------------------------------------------------------------ chat template discovery

def test_chat_template_found_where_the_converter_finds_it(tiny_hf_dir, tmp_path):
    """chat_template.json (no template in tokenizer_config.json): SpecialVocab, as the converter, finds it."""
    from edgepack.chat.modelfile import read_source_chat_info
    from edgepack.gguf_file import read_gguf
    from edgepack.source import make_reference, resolve_source

    model = _copy(tiny_hf_dir, tmp_path)
    config = json.loads((model / "tokenizer_config.json").read_text())
    template = config.pop("chat_template")
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    (model / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    reference = make_reference(resolve_source(str(model)))
    assert read_gguf(reference.path).chat_template == template  # the converter put it into the GGUF
    found = read_source_chat_info(model)
    assert (found.chat_template, found.bos_token, found.eos_token) == (template, "<s>", "</s>")
