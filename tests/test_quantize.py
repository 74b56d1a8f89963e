"""Every listed quant type: made by llama.cpp, the right types inside, loads and generates."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from edgepack.gguf_file import read_gguf
from edgepack.quantize.engine import QuantOptions, quantize_gguf
from edgepack.quantize.types import BUILD_QUANTS, DEFAULT_LADDER, get_quant, resolve_quants
from edgepack.errors import QuantError

# The tensor type most weights of the tiny model get for each ftype (hidden size 256, so
# K-quants apply). Mixes put attn_v/ffn_down in larger types, so check attn_q.
EXPECTED_ATTN_Q_TYPE = {
    "F16": "F16", "BF16": "BF16", "Q8_0": "Q8_0", "Q6_K": "Q6_K", "Q5_K_M": "Q5_K", "Q5_K_S": "Q5_K",
    "Q5_1": "Q5_1", "Q5_0": "Q5_0", "Q4_K_M": "Q4_K", "Q4_K_S": "Q4_K", "Q4_1": "Q4_1", "Q4_0": "Q4_0",
    "Q3_K_L": "Q3_K", "Q3_K_M": "Q3_K", "Q3_K_S": "Q3_K", "Q2_K": "Q2_K",
}


@pytest.fixture(scope="module")
def quantized(tiny_reference, tmp_path_factory):
    out = tmp_path_factory.mktemp("quants")
    return {name: quantize_gguf(tiny_reference.path, out / f"tiny-{name}.gguf", get_quant(name)).path
            for name in BUILD_QUANTS}


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_quant_table_covers_the_issue():
    assert set(EXPECTED_ATTN_Q_TYPE) == set(BUILD_QUANTS)
    assert get_quant("q4_k").name == "Q4_K_M"
    assert get_quant("Q5_K").name == "Q5_K_M"
    assert get_quant("q3_k").name == "Q3_K_M"
    assert [q.name for q in resolve_quants(["q2_k", "Q8_0", "q8_0"])] == ["Q8_0", "Q2_K"]
    assert [q.name for q in resolve_quants([], ladder=True)] == list(DEFAULT_LADDER)


def test_unknown_quant_lists_valid_ones():
    with pytest.raises(QuantError) as err:
        get_quant("Q4_K_XL")
    message = str(err.value)
    assert "Q4_K_XL" in message and "Q4_K_M" in message and "Q2_K" in message and "\n" not in message


@pytest.mark.parametrize("name", BUILD_QUANTS)
def test_each_quant_has_its_types_and_file_type(quantized, name):
    info = read_gguf(quantized[name])
    quant = get_quant(name)
    assert info.file_type_id == quant.ftype
    assert info.file_type == name
    types = {t.name: t.tensor_type.name for t in __import__("gguf").GGUFReader(quantized[name]).tensors}
    assert types["blk.0.attn_q.weight"] == EXPECTED_ATTN_Q_TYPE[name]
    assert types["blk.0.attn_norm.weight"] == "F32"  # 1-d tensors stay F32
    assert info.n_params == read_gguf(quantized["F16"]).n_params


@pytest.mark.parametrize("name", BUILD_QUANTS)
def test_each_quant_loads_and_generates(quantized, name):
    from edgepack.runtime.llama import load_model

    with load_model(quantized[name], n_ctx=128, n_gpu_layers=0, seed=1) as llm:
        out = llm.create_completion("The", max_tokens=8, temperature=0.0)
    assert out["usage"]["completion_tokens"] > 0


def test_sizes_shrink_with_bits(quantized):
    size = {name: quantized[name].stat().st_size for name in BUILD_QUANTS}
    assert size["F16"] > size["Q8_0"] > size["Q6_K"] > size["Q5_K_M"] > size["Q4_K_M"] > size["Q3_K_M"] > size["Q2_K"]


@pytest.mark.parametrize("name", BUILD_QUANTS)
def test_byte_identical_to_llama_quantize(quantized, name, native_tools, tiny_reference, tmp_path):
    tool = native_tools.tool("llama-quantize")
    dest = tmp_path / f"native-{name}.gguf"
    proc = subprocess.run([str(tool), str(tiny_reference.path), str(dest), name], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sha256(dest) == sha256(quantized[name])


def test_options_match_llama_quantize_flags(tiny_reference, native_tools, tmp_path):
    options = QuantOptions(pure=True, output_tensor_type="Q8_0", token_embedding_type="Q6_K")
    ours = quantize_gguf(tiny_reference.path, tmp_path / "ours.gguf", get_quant("Q4_K_M"), options).path
    theirs = tmp_path / "theirs.gguf"
    cmd = [str(native_tools.tool("llama-quantize")), *options.llama_quantize_args(), str(tiny_reference.path),
           str(theirs), "Q4_K_M"]
    subprocess.run(cmd, check=True, capture_output=True)
    assert sha256(ours) == sha256(theirs)
    types = {t.name: t.tensor_type.name for t in __import__("gguf").GGUFReader(ours).tensors}
    assert types["output.weight"] == "Q8_0"
    assert types["token_embd.weight"] == "Q6_K"
    assert types["blk.1.ffn_down.weight"] == "Q4_K"  # --pure: no K-quant mixture


def test_failed_quantize_leaves_nothing(tmp_path):
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF" + b"\0" * 64)
    dest = tmp_path / "out.gguf"
    with pytest.raises(QuantError):
        quantize_gguf(bogus, dest, get_quant("Q4_0"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bogus.gguf"]
