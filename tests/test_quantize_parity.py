"""In-process quantization byte-identical to llama-quantize for the IQ and ternary types that
need no importance matrix (the 16 K/legacy/float types are in test_quantize.py)."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from edgepack.gguf_file import read_gguf
from edgepack.quantize.engine import quantize_gguf
from edgepack.quantize.types import get_quant

# llama-quantize refuses IQ1_*, IQ2_*, IQ3_XXS/IQ3_XS and Q2_K_S without --imatrix; these it makes without one.
NO_IMATRIX_TYPES = ("IQ4_NL", "IQ4_XS", "IQ3_S", "IQ3_M", "TQ2_0", "TQ1_0")
ATTN_Q_TYPE = {"IQ4_NL": "IQ4_NL", "IQ4_XS": "IQ4_XS", "IQ3_S": "IQ3_S", "IQ3_M": "IQ3_S", "TQ2_0": "TQ2_0",
               "TQ1_0": "TQ1_0"}


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", NO_IMATRIX_TYPES)
def test_byte_identical_to_llama_quantize(name, tiny_reference, native_tools, tmp_path):
    quant = get_quant(name)
    assert not quant.needs_imatrix
    ours = quantize_gguf(tiny_reference.path, tmp_path / f"ours-{name}.gguf", quant).path
    theirs = tmp_path / f"theirs-{name}.gguf"
    proc = subprocess.run([str(native_tools.tool("llama-quantize")), str(tiny_reference.path), str(theirs), name],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sha256(ours) == sha256(theirs)
    assert read_gguf(ours).file_type_id == quant.ftype
    types = {t.name: t.tensor_type.name for t in __import__("gguf").GGUFReader(ours).tensors}
    assert types["blk.0.attn_q.weight"] == ATTN_Q_TYPE[name]


def test_llama_quantize_wants_an_imatrix_where_the_table_says_so(tiny_reference, native_tools, tmp_path):
    """The table's needs_imatrix flag is llama-quantize's own rule (checked for one such type)."""
    assert get_quant("IQ2_XS").needs_imatrix
    proc = subprocess.run([str(native_tools.tool("llama-quantize")), str(tiny_reference.path),
                           str(tmp_path / "x.gguf"), "IQ2_XS"], capture_output=True, text=True)
    assert proc.returncode != 0 and "imatrix" in (proc.stdout + proc.stderr).lower()
