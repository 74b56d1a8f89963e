"""The quant table agrees with llama.cpp's own constants and with hand-checked block sizes."""

from __future__ import annotations

import llama_cpp
import pytest

from edgepack.quantize.types import QUANT_TYPES, get_quant, quant_for_ftype


@pytest.mark.parametrize("quant", QUANT_TYPES, ids=lambda q: q.name)
def test_ftype_is_llama_cpps(quant):
    # llama-cpp-python's ctypes constants come from llama.h, not from gguf-py.
    name = "LLAMA_FTYPE_ALL_F32" if quant.name == "F32" else f"LLAMA_FTYPE_MOSTLY_{quant.name}"
    assert getattr(llama_cpp, name) == quant.ftype


# Bits per weight from the block layouts in ggml-common.h, worked out by hand:
# Q8_0: 32 int8 + fp16 scale = 34 bytes / 32; Q4_K: 256 weights in 144 bytes; Q6_K: 210 / 256;
# IQ4_XS: 136 / 256; TQ1_0: 54 / 256; Q2_K: 84 / 256.
@pytest.mark.parametrize("name,bits", [("Q8_0", 8.5), ("Q4_K_M", 4.5), ("Q6_K", 6.5625), ("IQ4_XS", 4.25),
                                       ("TQ1_0", 1.6875), ("Q2_K", 2.625), ("F16", 16.0), ("IQ3_M", 3.4375)])
def test_bits_per_weight(name, bits):
    assert get_quant(name).bits == bits


def test_guessed_file_type_flag_is_ignored():
    assert quant_for_ftype(15 | 1024).name == "Q4_K_M"
