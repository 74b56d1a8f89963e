"""`read_gguf` / `edgepack inspect`: what is inside a GGUF."""

from __future__ import annotations

import pytest

from edgepack.errors import GGUFError
from edgepack.gguf_file import read_gguf


def test_inspect_quantized_file(tiny_bundle):
    info = read_gguf(tiny_bundle / "tiny-llama-Q4_K_M.gguf")
    assert info.architecture == "llama"
    assert info.file_type == "Q4_K_M" and info.file_type_id == 15
    assert info.context_length == 1024 and info.n_layers == 2 and info.embedding_length == 256
    assert info.vocab_size == 512
    assert info.has_chat_template and "<|im_start|>" in info.chat_template
    # 2 layers × 7 matrices + embedding + output = 16 quantized tensors; 5 norms stay F32.
    assert sum(t.tensors for t in info.tensor_types.values()) == 21
    assert info.tensor_types["F32"].tensors == 5
    assert "Q4_K" in info.tensor_types and "Q6_K" in info.tensor_types  # the _M mix
    expected_params = 512 * 256 * 2 + 2 * (256 * 256 * 2 + 256 * 128 * 2 + 3 * 256 * 512 + 2 * 256) + 256
    assert info.n_params == expected_params
    assert info.bits_per_weight == pytest.approx(info.tensor_bytes * 8 / info.n_params, rel=1e-3)
    assert info.layer_types["blk.0"]["F32"] == 2


def test_not_a_gguf(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_text("not a model")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_gguf(path)


def test_truncated_gguf(tiny_bundle, tmp_path):
    data = (tiny_bundle / "tiny-llama-Q8_0.gguf").read_bytes()
    for cut in (len(data) // 2, 100):
        path = tmp_path / f"cut{cut}.gguf"
        path.write_bytes(data[:cut])
        with pytest.raises(GGUFError, match="truncated"):
            read_gguf(path)


def test_missing_file(tmp_path):
    with pytest.raises(GGUFError, match="no such file"):
        read_gguf(tmp_path / "nope.gguf")
