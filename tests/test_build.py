"""The bundle: files, manifest, Modelfiles, model card, verify; sources and caching."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid

import pytest

from edgepack.bundle import load_manifest, verify_bundle
from edgepack.source import make_reference, resolve_source
from edgepack.gguf_file import read_gguf
from edgepack.pipeline import build


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bundle_layout_and_manifest(tiny_bundle, tiny_hf_dir):
    names = sorted(p.name for p in tiny_bundle.iterdir())
    assert names == ["Modelfile", "Modelfile.Q4_K_M", "Modelfile.Q8_0", "README.md", "manifest.json",
                     "tiny-llama-Q4_K_M.gguf", "tiny-llama-Q8_0.gguf"]
    m = load_manifest(tiny_bundle)
    assert m.source["kind"] == "hf-dir" and m.source["name"] == "tiny-llama"
    assert m.toolchain["llama_cpp_python"] == "0.3.36" and len(m.toolchain["llama_cpp_commit"]) == 40
    assert m.reference["outtype"] == "F16"
    assert [f.quant for f in m.files] == ["Q8_0", "Q4_K_M"]
    for f in m.files:
        path = tiny_bundle / f.file
        assert f.sha256 == sha256(path)
        assert f.size_bytes == path.stat().st_size
        info = read_gguf(path)
        assert f.n_params == info.n_params and f.bits_per_weight == info.bits_per_weight
        assert f.ftype == info.file_type_id
        assert f.seconds["quantize"] > 0
        assert f.options == {"allow_requantize": False, "leave_output_tensor": False, "pure": False,
                             "output_tensor_type": None, "token_embedding_type": None, "tensor_types": [],
                             "prune_layers": [], "imatrix": None}
        assert f.llama_quantize_args == []
    q8, q4 = m.files
    assert 7.5 < q8.bits_per_weight < 9.5 and 4 < q4.bits_per_weight < 6.5
    assert m.model["architecture"] == "llama" and m.model["n_layers"] == 2 and m.model["has_chat_template"]
    assert m.timings["total"] > 0


def test_modelfiles_point_at_their_gguf_and_chat_in_chatml(tiny_bundle):
    text = (tiny_bundle / "Modelfile.Q8_0").read_text()
    assert "FROM ./tiny-llama-Q8_0.gguf" in text
    assert "<|im_start|>" in text and 'PARAMETER stop "<|im_end|>"' in text
    default = (tiny_bundle / "Modelfile").read_text()
    assert "FROM ./tiny-llama-Q4_K_M.gguf" in default  # Q4_K_M is the preferred default


def test_model_card_has_a_row_per_quant(tiny_bundle):
    card = (tiny_bundle / "README.md").read_text()
    assert "| `tiny-llama-Q8_0.gguf` | Q8_0 |" in card
    assert "| `tiny-llama-Q4_K_M.gguf` | Q4_K_M |" in card
    # The pinned tree (llama-cpp-python 0.3.36 vendors llama.cpp build 0c1e570), checked by hand.
    assert "llama.cpp 0c1e570 (llama-cpp-python 0.3.36)" in card
    assert "ollama create" in card


def test_verify_passes_then_catches_tampering(tiny_bundle, tmp_path):
    result = verify_bundle(tiny_bundle)
    assert result.ok and all(c.sha256_ok and c.loads for c in result.files)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundle, copy)
    target = copy / "tiny-llama-Q8_0.gguf"
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF
    target.write_bytes(bytes(data))
    result = verify_bundle(copy)
    assert not result.ok
    bad = {c.file: c for c in result.files}["tiny-llama-Q8_0.gguf"]
    assert not bad.sha256_ok and bad.error == "sha256 mismatch"


def test_reference_is_cached_by_content(tiny_hf_dir, tiny_reference, tmp_path):
    again = make_reference(resolve_source(str(tiny_hf_dir)), "f16")
    assert again.cached and again.path == tiny_reference.path
    changed = tmp_path / "changed"
    shutil.copytree(tiny_hf_dir, changed)
    config = json.loads((changed / "config.json").read_text())
    config["edgepack_test_nonce"] = uuid.uuid4().hex  # new content on every run, so never in the cache yet
    (changed / "config.json").write_text(json.dumps(config))
    other = make_reference(resolve_source(str(changed)), "f16")
    assert not other.cached and other.path != tiny_reference.path


def test_gguf_source_float_is_used_directly(tiny_reference, tmp_path):
    f16 = tmp_path / "model-f16.gguf"
    shutil.copyfile(tiny_reference.path, f16)
    result = build(str(f16), ["Q4_0"], output_dir=tmp_path / "out")
    m = result.manifest
    assert m.source["kind"] == "gguf" and m.source["name"] == "model"
    assert m.reference["path"] == str(f16) and m.reference["dequantized_from"] is None
    assert (tmp_path / "out" / "model-Q4_0.gguf").is_file()


def test_gguf_source_quantized_is_dequantized_with_a_warning(tiny_bundle, tmp_path):
    q8 = tmp_path / "tiny-Q8_0.gguf"
    shutil.copyfile(tiny_bundle / "tiny-llama-Q8_0.gguf", q8)
    result = build(str(q8), ["Q4_K_M", "F16"], output_dir=tmp_path / "out")
    ref = result.manifest.reference
    assert ref["dequantized_from"] == "Q8_0" and ref["outtype"] == "F16"
    assert any("already quantized" in w for w in result.warnings)
    assert read_gguf(ref["path"]).file_type == "F16"
    assert verify_bundle(tmp_path / "out").ok


def test_outtype_auto_keeps_bf16_sources_in_bf16(tmp_path):
    from tiny_models import make_tiny_llama

    src = make_tiny_llama(tmp_path / "bf16-model", dtype="bfloat16")
    ref = make_reference(resolve_source(str(src)), "auto")
    assert ref.outtype == "BF16" and read_gguf(ref.path).file_type == "BF16"
    assert make_reference(resolve_source(str(src)), "f16").outtype == "F16"


def test_rebuild_with_replace_starts_the_bundle_over(tiny_hf_dir, tmp_path):
    out = tmp_path / "out"
    build(str(tiny_hf_dir), ["Q8_0"], output_dir=out)
    build(str(tiny_hf_dir), ["Q4_0"], output_dir=out, replace=True)
    assert sorted(p.name for p in out.glob("*.gguf")) == ["tiny-llama-Q4_0.gguf"]
    assert [f.quant for f in load_manifest(out).files] == ["Q4_0"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_hub_id_from_the_local_cache_offline(tiny_hf_dir, tmp_path, monkeypatch):
    """huggingface-hub's offline rules: a cached snapshot resolves without the network."""
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--edgepack-test--tiny-llama"
    shutil.copytree(tiny_hf_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    source = resolve_source("edgepack-test/tiny-llama")
    assert source.kind == "hub" and source.revision == commit and source.name == "tiny-llama"
    result = build("edgepack-test/tiny-llama", ["Q4_0"], output_dir=tmp_path / "out")
    assert result.manifest.source["revision"] == commit


def test_build_for_a_target_puts_the_plan_in_the_modelfile(tiny_hf_dir, tmp_path):
    result = build(str(tiny_hf_dir), ["Q4_K_M"], output_dir=tmp_path / "out", target="jetson-orin-nano-8gb", ctx=512)
    plan = result.manifest.plans["Q4_K_M"]
    assert plan.fits and plan.n_ctx == 512 and plan.n_gpu_layers == 3  # 2 layers + output: all on the GPU
    text = (tmp_path / "out" / "Modelfile.Q4_K_M").read_text()
    assert "PARAMETER num_ctx 512" in text
    assert f"PARAMETER num_gpu {plan.n_gpu_layers}" in text
    assert f"PARAMETER num_thread {plan.n_threads}" in text


def test_build_for_a_context_longer_than_the_model(tiny_hf_dir, tmp_path):
    from edgepack.errors import EdgepackError

    with pytest.raises(EdgepackError, match="context"):
        build(str(tiny_hf_dir), ["Q4_K_M"], output_dir=tmp_path / "out", ctx=999_999)
    assert not (tmp_path / "out").exists()


def test_rewriting_modelfiles_keeps_the_plan(tiny_hf_dir, tmp_path):
    from edgepack.bundle import rewrite_modelfiles

    out = tmp_path / "out"
    build(str(tiny_hf_dir), ["Q8_0"], output_dir=out, ctx=256)
    written = rewrite_modelfiles(out, load_manifest(out), {"num_batch": 64})
    assert written == ["Modelfile.Q8_0", "Modelfile"]
    text = (out / "Modelfile").read_text()
    assert "PARAMETER num_ctx 256" in text and "PARAMETER num_batch 64" in text
    assert "FROM ./tiny-llama-Q8_0.gguf" in text and "<|im_start|>" in text


def test_a_build_plan_is_checked_before_any_slow_step(tmp_path):
    """Everything the plan gets wrong is said before the source is even looked at."""
    from edgepack.errors import OllamaError, OutputError, QuantError
    from edgepack.pipeline import BuildPlan, run_build

    missing = str(tmp_path / "no-such-model")
    with pytest.raises(OllamaError):
        run_build(BuildPlan(missing, ("Q4_K_M",), output_dir=tmp_path / "out", ollama_name="bad name"))
    with pytest.raises(QuantError, match="importance matrix"):
        run_build(BuildPlan(missing, ("IQ2_XS",), output_dir=tmp_path / "out"))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not an edgepack bundle"):
        run_build(BuildPlan(missing, ("Q4_K_M",), output_dir=foreign))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign"]
