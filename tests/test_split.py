"""Split GGUFs: parts llama.cpp loads as one, each with its sha256; split sources read whole; merge."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import ollama_parser
from edgepack.bundle.companions import CompanionRequest
from edgepack.pipeline import build
from edgepack.source.split import SplitSettings

runner = CliRunner()


@pytest.fixture(scope="module")
def split_tools():
    from edgepack.runtime.native import build_native

    return build_native(("llama-gguf-split",))


@pytest.fixture(scope="module")
def split_bundle(tiny_hf_dir, tmp_path_factory, split_tools):
    out = tmp_path_factory.mktemp("bundles") / "split"
    build(str(tiny_hf_dir), ["Q8_0"], output_dir=out, companions=CompanionRequest(split=SplitSettings(max_tensors=8)))
    return out


def _logits(path, text=b"Hello world, this is a test of split files."):
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=64, logits_all=True, verbose=False, n_threads=2)
    try:
        tokens = llm.tokenize(text, add_bos=True)
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)])
    finally:
        llm.close()


def _tensor_bytes(path):
    from gguf import GGUFReader

    return {t.name: bytes(t.data.tobytes()) for t in GGUFReader(path).tensors}


def test_parts_are_named_hashed_and_listed(split_bundle):
    manifest = json.loads((split_bundle / "manifest.json").read_text())
    parts = manifest["split"]["parts"]["Q8_0"]
    n = len(parts)
    assert n >= 3  # 2 layers x 9 tensors + embeddings, at most 8 tensors a part
    assert [p["file"] for p in parts] == [f"tiny-llama-Q8_0-{i:05d}-of-{n:05d}.gguf" for i in range(1, n + 1)]
    for p in parts:
        assert p["sha256"] == hashlib.sha256((split_bundle / p["file"]).read_bytes()).hexdigest()
    assert not (split_bundle / "tiny-llama-Q8_0.gguf").exists()
    assert manifest["files"][0]["file"] == parts[0]["file"]
    froms = [ln for ln in (split_bundle / "Modelfile.Q8_0").read_text().splitlines() if ln.startswith("FROM ")]
    assert froms == [f"FROM ./{p['file']}" for p in parts]
    parsed = ollama_parser.parse((split_bundle / "Modelfile.Q8_0").read_text())  # Ollama joins these parts
    assert [v for c, v in parsed if c == "model"] == [f"./{p['file']}" for p in parts]
    assert f"model = ./{parts[0]['file']}" in (split_bundle / "llama-server.ini").read_text()


def test_verify_checks_every_part(split_bundle, tmp_path):
    from edgepack.bundle import verify_bundle

    assert verify_bundle(split_bundle).ok
    copy = tmp_path / "copy"
    shutil.copytree(split_bundle, copy)
    last = sorted(copy.glob("*-of-*.gguf"))[-1]
    data = bytearray(last.read_bytes())
    data[-3] ^= 0xFF
    last.write_bytes(bytes(data))
    bad = [c for c in verify_bundle(copy).files if not c.sha256_ok]
    assert [c.file for c in bad] == [last.name]


def test_llama_cpp_loads_the_parts_as_the_unsplit_file(split_bundle, tiny_bundle):
    first = split_bundle / json.loads((split_bundle / "manifest.json").read_text())["files"][0]["file"]
    np.testing.assert_array_equal(_logits(first), _logits(tiny_bundle / "tiny-llama-Q8_0.gguf"))


def test_merge_writes_one_file_with_the_same_tensors(split_bundle, tiny_bundle, tmp_path):
    from edgepack.cli import app

    parts = sorted(split_bundle.glob("*-of-*.gguf"))
    out = tmp_path / "merged.gguf"
    result = runner.invoke(app, ["merge", str(parts[1]), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["output"] == str(out)
    assert _tensor_bytes(out) == _tensor_bytes(tiny_bundle / "tiny-llama-Q8_0.gguf")
    np.testing.assert_array_equal(_logits(out), _logits(tiny_bundle / "tiny-llama-Q8_0.gguf"))


def test_a_split_source_is_read_whole(tiny_reference, tiny_bundle, tmp_path, split_tools):
    from edgepack.source.split import split_gguf

    src = tmp_path / "src" / "tiny-f16.gguf"
    src.parent.mkdir()
    shutil.copyfile(tiny_reference.path, src)
    parts = split_gguf(src, SplitSettings(max_size="1M"))
    n = len(parts)
    assert n >= 2 and [p.name for p in parts] == [f"tiny-f16-{i:05d}-of-{n:05d}.gguf" for i in range(1, n + 1)]
    assert all(p.stat().st_size <= 1_000_000 + 65536 for p in parts[1:])
    out = tmp_path / "out"
    result = build(str(parts[0]), ["Q8_0"], output_dir=out)
    assert result.manifest.model["n_params"] == json.loads((tiny_bundle / "manifest.json").read_text())["model"]["n_params"]
    assert _tensor_bytes(out / result.manifest.files[0].file) == _tensor_bytes(tiny_bundle / "tiny-llama-Q8_0.gguf")


def test_a_missing_part_is_one_line_and_writes_nothing(split_bundle, tmp_path):
    from edgepack.cli import app

    copy = tmp_path / "copy"
    shutil.copytree(split_bundle, copy)
    parts = sorted(copy.glob("*-of-*.gguf"))
    parts[1].unlink()
    for args in (["build", str(parts[0]), "-o", str(tmp_path / "out")], ["merge", str(parts[0])]):
        result = runner.invoke(app, args)
        assert result.exit_code != 0
        lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and parts[1].name in lines[0] and "missing" in lines[0], result.stderr
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in copy.glob("*.gguf")) == sorted(p.name for p in parts if p.exists())


def test_split_settings_are_checked_before_any_work(tiny_hf_dir, tmp_path):
    from edgepack.cli import app

    for args in (["--split-max-size", "4X"], ["--split-max-size", "4G", "--split-max-tensors", "8"],
                 ["--split-max-tensors", "0"]):
        result = runner.invoke(app, ["build", str(tiny_hf_dir), "-o", str(tmp_path / "out"), *args])
        assert result.exit_code != 0 and "--split-max-" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ large models: disk space, reference placement

def test_disk_plan_is_an_upper_bound_of_what_the_build_writes(tiny_hf_dir, tmp_path):
    from edgepack.source import resolve_source
    from edgepack.source.space import plan_build_space
    from edgepack.quantize.types import get_quant

    src = resolve_source(str(tiny_hf_dir))
    quants = ["Q8_0", "Q4_K_M"]
    plan = plan_build_space(src, outtype="f16", quant_bits=[get_quant(q).bits for q in quants],
                            output_dir=tmp_path / "out", reference_dir=tmp_path / "refs", reference_cached=False)
    needs = {n.what: n.bytes for n in plan.needs}
    result = build(str(tiny_hf_dir), quants, output_dir=tmp_path / "out", reference_dir=tmp_path / "refs")
    ref = Path(result.manifest.reference["path"])
    assert ref.is_relative_to(tmp_path / "refs")
    assert ref.is_file() and ref.stat().st_size <= needs["the 16-bit reference GGUF"] <= 1.1 * ref.stat().st_size + 2**23
    written = sum(f.size_bytes for f in result.manifest.files)
    assert written <= needs["2 GGUF file(s) in the staging bundle"]


def test_not_enough_space_stops_before_anything_is_written(tmp_path, monkeypatch):
    from collections import namedtuple

    from edgepack.cli import app
    from tiny_models import make_tiny_llama

    model = make_tiny_llama(tmp_path / "fresh", seed=7)  # not converted yet: the reference is planned too
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("edgepack.source.space.shutil.disk_usage", lambda p: usage(10**9, 10**9 - 2**20, 2**20))
    refs = tmp_path / "refs"
    result = runner.invoke(app, ["build", str(model), "-o", str(tmp_path / "out"), "--reference-dir", str(refs)])
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    # one check for the whole build (reference and staging bundle), before the converter runs
    assert len(lines) == 1 and "not enough free space" in lines[0], result.stderr
    assert "16-bit reference" in lines[0] and "staging bundle" in lines[0]
    assert not (tmp_path / "out").exists()
    assert not refs.exists() or not list(refs.rglob("*.gguf"))


def test_reference_dir_and_drop_reference(tiny_hf_dir, tmp_path):
    from edgepack.cli import app

    refs = tmp_path / "refs"
    result = runner.invoke(app, ["build", str(tiny_hf_dir), "-q", "Q8_0", "-o", str(tmp_path / "a"),
                                 "--reference-dir", str(refs), "--json"])
    assert result.exit_code == 0, result.stderr
    kept = json.loads(result.stdout)["manifest"]["reference"]["path"]
    assert kept.startswith(str(refs)) and (tmp_path / kept).is_file()
    result = runner.invoke(app, ["build", str(tiny_hf_dir), "-q", "Q8_0", "-o", str(tmp_path / "b"),
                                 "--reference-dir", str(refs), "--drop-reference", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["manifest"]["reference"]["cached"]  # reused the kept one ...
    assert not any(refs.rglob("*.gguf"))  # ... and dropped it afterwards
    assert (tmp_path / "b" / "tiny-llama-Q8_0.gguf").is_file()
