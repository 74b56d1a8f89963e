"""Calibration text, importance matrix, IQ types, mixed precision, pruning and dry runs."""

from __future__ import annotations


import pytest
from gguf import GGUFReader

from edgepack.quantize.imatrix import (
    CalibrationError,
    check_imatrix_fits,
    compute_imatrix,
    default_calibration_text,
    load_calibration,
    read_imatrix,
)
from edgepack.errors import QuantError
from edgepack.gguf_file import read_gguf
from edgepack.pipeline import build
from edgepack.quantize.types import ALL_QUANTS, get_quant
from edgepack.quantize.engine import QuantOptions, parse_keep, parse_tensor_type, quantize_gguf


def tensor_types(path) -> dict[str, str]:
    return {t.name: t.tensor_type.name for t in GGUFReader(path).tensors}


@pytest.fixture(scope="module")
def tiny_imatrix(tiny_reference):
    return compute_imatrix(tiny_reference.path, default_calibration_text(), chunks=4, ctx=128)


def test_default_calibration_text_is_real_prose_and_not_the_eval_text():
    from pydoc_data.topics import topics

    text = default_calibration_text()
    assert text.name == "python-stdlib-docstrings"
    assert len(text.text) > 200_000 and text.text.count(" the ") > 1000
    eval_lines = {ln.strip() for t in topics.values() for ln in t.splitlines() if len(ln.strip()) > 60}
    calib_lines = {ln.strip() for ln in text.text.splitlines() if len(ln.strip()) > 60}
    assert len(eval_lines & calib_lines) < 0.01 * len(calib_lines)


def test_bad_calibration_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"abc\0\1\2" * 100)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1") * 100)
    for path, fragment in ((empty, "is empty"), (binary, "is binary"), (latin, "not UTF-8"),
                           (tmp_path / "missing.txt", "does not exist")):
        with pytest.raises(CalibrationError, match=fragment):
            load_calibration([path])


def test_imatrix_from_calibration(tiny_imatrix, tiny_reference):
    data = read_imatrix(tiny_imatrix.path)
    assert tiny_imatrix.entries == 14 == len(data["entries"])  # 2 layers × 7 matrices (output excluded)
    assert tiny_imatrix.chunks == 4 and tiny_imatrix.chunk_size == 128
    assert data["datasets"] and "python-stdlib-docstrings" in data["datasets"][0]
    again = compute_imatrix(tiny_reference.path, default_calibration_text(), chunks=4, ctx=128)
    assert again.cached and again.sha256 == tiny_imatrix.sha256


def test_calibration_shorter_than_one_chunk(tiny_reference, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("Just a few words of text.")
    with pytest.raises(CalibrationError, match="shorter than one chunk"):
        compute_imatrix(tiny_reference.path, load_calibration([short]), ctx=128)


def test_imatrix_for_another_model_is_refused(tiny_imatrix, tmp_path):
    from tiny_models import make_tiny_llama

    from edgepack.source import make_reference, resolve_source

    other = make_reference(resolve_source(str(make_tiny_llama(tmp_path / "wide", hidden=512))))
    with pytest.raises(CalibrationError, match="different model"):
        check_imatrix_fits(tiny_imatrix.path, other.path)
    with pytest.raises(CalibrationError, match="different model"):
        build(str(tmp_path / "wide"), ["Q4_K_M"], imatrix=tiny_imatrix.path, output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_imatrix_only_types_need_calibration(tiny_hf_dir, tmp_path):
    with pytest.raises(QuantError, match="--calibration"):
        build(str(tiny_hf_dir), ["IQ2_XS", "Q4_K_M"], output_dir=tmp_path / "out")
    with pytest.raises(QuantError, match="importance matrix"):
        quantize_gguf(tmp_path / "x.gguf", tmp_path / "y.gguf", get_quant("IQ1_S"))
    assert not list(tmp_path.iterdir())


def test_build_with_calibration_makes_iq_types(tiny_hf_dir, tmp_path):
    calib = tmp_path / "domain.txt"
    calib.write_text(default_calibration_text().text[:60_000])
    out = tmp_path / "out"
    result = build(str(tiny_hf_dir), ["IQ2_XS", "IQ3_M", "Q2_K_S", "Q4_K_M"], calibration=[str(calib)],
                   imatrix_chunks=3, output_dir=out)
    m = result.manifest
    assert m.imatrix["dataset"] == "domain.txt" and m.imatrix["chunks"] == 3 and m.imatrix["computed"]
    for f in m.files:
        info = read_gguf(out / f.file)
        assert info.file_type == f.quant
        assert info.metadata["quantize.imatrix.chunks_count"] == 3
        assert "domain" in info.metadata["quantize.imatrix.dataset"]
        assert "--imatrix" in f.llama_quantize_args
    assert tensor_types(out / "tiny-llama-IQ2_XS.gguf")["blk.0.attn_q.weight"] == "IQ2_XS"
    from edgepack.bundle import verify_bundle

    assert verify_bundle(out).ok


@pytest.mark.parametrize("name", ["IQ4_NL", "IQ4_XS", "IQ3_S", "IQ3_M", "TQ1_0", "TQ2_0"])
def test_types_that_need_no_imatrix(tiny_reference, tmp_path, name):
    path = quantize_gguf(tiny_reference.path, tmp_path / f"{name}.gguf", get_quant(name)).path
    assert read_gguf(path).file_type == name
    from edgepack.runtime.llama import load_model

    with load_model(path, n_ctx=64, n_gpu_layers=0) as llm:
        assert llm.create_completion("The", max_tokens=4, temperature=0)["usage"]["completion_tokens"] > 0


def test_every_llama_quantize_type_is_in_the_table():
    for name in ("IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M",
                 "IQ4_XS", "IQ4_NL", "Q2_K_S", "TQ1_0", "TQ2_0"):
        assert name in ALL_QUANTS
    assert get_quant("iq2_xxs").needs_imatrix and get_quant("IQ3_XXS").needs_imatrix
    assert not get_quant("IQ4_XS").needs_imatrix and not get_quant("IQ3_M").needs_imatrix


def test_mixed_precision_keep_and_tensor_types(tiny_hf_dir, tiny_reference, native_tools, tmp_path):
    out_type, embd_type, patterns = parse_keep(["output=Q8_0", "token_embd=q8_0"])
    options = QuantOptions(output_tensor_type=out_type, token_embedding_type=embd_type,
                           tensor_types=(parse_tensor_type(r"blk\.(0|1)\.ffn_down=Q6_K"),))
    result = build(str(tiny_hf_dir), ["Q3_K_M"], options=options, output_dir=tmp_path / "out")
    types = tensor_types(tmp_path / "out" / "tiny-llama-Q3_K_M.gguf")
    assert types["output.weight"] == "Q8_0" and types["token_embd.weight"] == "Q8_0"
    assert types["blk.0.ffn_down.weight"] == types["blk.1.ffn_down.weight"] == "Q6_K"
    assert types["blk.0.attn_q.weight"] == "Q3_K"
    entry = result.manifest.files[0]
    assert entry.options["tensor_types"] == [r"blk\.(0|1)\.ffn_down=q6_k"]
    assert entry.options["output_tensor_type"] == "Q8_0"
    info = read_gguf(tmp_path / "out" / "tiny-llama-Q3_K_M.gguf")
    assert info.layer_types["blk.0"]["Q6_K"] >= 1  # visible per layer in `edgepack inspect --layers`


def test_bad_tensor_options(tiny_hf_dir, tmp_path):
    with pytest.raises(QuantError, match="matches no tensor"):
        build(str(tiny_hf_dir), ["Q4_K_M"], options=QuantOptions(tensor_types=("nonexistent_tensor=q8_0",)),
              output_dir=tmp_path / "out")
    with pytest.raises(QuantError, match="unknown tensor type"):
        parse_tensor_type("ffn_down=Q9_9")
    with pytest.raises(QuantError, match="does not exist"):
        build(str(tiny_hf_dir), ["Q4_K_M"], options=QuantOptions(prune_layers=(7,)), output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_prune_layers(tiny_hf_dir, tmp_path):
    build(str(tiny_hf_dir), ["Q8_0"], options=QuantOptions(prune_layers=(1,)), output_dir=tmp_path / "out")
    info = read_gguf(tmp_path / "out" / "tiny-llama-Q8_0.gguf")
    assert info.n_layers == 1 and "blk.1" not in info.layer_types


def test_dry_run_sizes_match_real_files_and_write_nothing(tiny_hf_dir, tiny_bundle, tmp_path):
    result = build(str(tiny_hf_dir), ["Q8_0", "Q4_K_M"], dry_run=True, output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    sizes = {s.quant: s for s in result.sizes}
    for quant in ("Q8_0", "Q4_K_M"):
        real = read_gguf(tiny_bundle / f"tiny-llama-{quant}.gguf").tensor_bytes
        assert sizes[quant].size_bytes == pytest.approx(real, rel=0.01)
        assert sizes[quant].bits_per_weight > 0
