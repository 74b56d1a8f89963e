"""LoRA adapters: shipped beside the quants (ADAPTER, --lora) or merged, and proven to matter."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgepack.bundle.companions import CompanionRequest
from edgepack.pipeline import build
import ollama_parser
from tiny_models import make_tiny_llama
from tiny_multimodal import make_tiny_lora

PROBE = "def fibonacci(n): return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)"


@pytest.fixture(scope="module")
def tiny_lora(tiny_hf_dir, tmp_path_factory):
    return make_tiny_lora(tiny_hf_dir, tmp_path_factory.mktemp("lora") / "my-lora")


@pytest.fixture(scope="module")
def lora_bundle(tiny_hf_dir, tiny_lora, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "with-lora"
    build(str(tiny_hf_dir), ["Q4_K_M"], output_dir=out, companions=CompanionRequest(adapter=str(tiny_lora)))
    return out


def _llama_logits(path, tokens, lora=None):
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=128, logits_all=True, verbose=False, n_threads=2,
                **({"lora_path": str(lora)} if lora else {}))
    try:
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)]), llm
    finally:
        llm.close()


def _peft_logits(base_dir, adapter_dir, tokens, *, enabled=True):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32), adapter_dir)
    with torch.no_grad():
        if enabled:
            return model(torch.tensor([tokens])).logits[0].numpy()
        with model.disable_adapter():
            return model(torch.tensor([tokens])).logits[0].numpy()


def _tokens(gguf):
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    try:
        return llm.tokenize(PROBE.encode(), add_bos=True)
    finally:
        llm.close()


def test_adapter_ships_beside_the_quant(lora_bundle):
    from gguf import GGUFReader

    manifest = json.loads((lora_bundle / "manifest.json").read_text())
    adapter = manifest["adapter"]
    path = lora_bundle / adapter["file"]
    assert adapter["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    reader = GGUFReader(path)
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    modelfile = (lora_bundle / "Modelfile.Q4_K_M").read_text().splitlines()
    assert modelfile.index("FROM ./tiny-llama-Q4_K_M.gguf") + 1 == modelfile.index(f"ADAPTER ./{adapter['file']}")
    parsed = ollama_parser.parse((lora_bundle / "Modelfile.Q4_K_M").read_text())  # as Ollama reads it
    assert [(c, v) for c, v in parsed if c in ("model", "adapter")] == [  # FROM is Ollama's "model" command
        ("model", "./tiny-llama-Q4_K_M.gguf"), ("adapter", f"./{adapter['file']}")]
    ini = (lora_bundle / "llama-server.ini").read_text()
    assert "model = ./tiny-llama-Q4_K_M.gguf" in ini and f"lora = ./{adapter['file']}" in ini


def test_adapter_changes_the_output_as_peft_does(lora_bundle, tiny_hf_dir, tiny_lora, tiny_reference):
    """Independent of edgepack's own check: llama.cpp (F16 base + LoRA GGUF) against transformers + peft."""
    adapter = lora_bundle / json.loads((lora_bundle / "manifest.json").read_text())["adapter"]["file"]
    tokens = _tokens(tiny_reference.path)
    with_lora, _ = _llama_logits(tiny_reference.path, tokens, adapter)
    without, _ = _llama_logits(tiny_reference.path, tokens)
    peft = _peft_logits(tiny_hf_dir, tiny_lora, tokens)
    assert (with_lora.argmax(-1) == peft.argmax(-1)).mean() >= 0.95
    assert np.abs(with_lora - peft).max() < 0.02 * np.abs(peft).max()
    assert (without.argmax(-1) == peft.argmax(-1)).mean() < 0.5  # the adapter really moves the model
    # the quant takes the adapter too
    quant = lora_bundle / "tiny-llama-Q4_K_M.gguf"
    q_with, _ = _llama_logits(quant, tokens, adapter)
    q_without, _ = _llama_logits(quant, tokens)
    assert (q_with.argmax(-1) == peft.argmax(-1)).mean() > (q_without.argmax(-1) == peft.argmax(-1)).mean() + 0.3


def test_manifest_reports_the_adapter_effect(lora_bundle):
    effect = json.loads((lora_bundle / "manifest.json").read_text())["adapter"]["effect"]
    assert effect["matters"] and effect["matches_peft"]
    assert effect["kld_llama_vs_peft"] < 1e-3 and effect["top1_llama_vs_peft"] >= 0.95
    assert effect["kld_base_vs_adapter"] > 0.01 and effect["top1_base_vs_adapter"] < 0.5


def test_an_adapter_that_does_nothing_is_flagged(tiny_hf_dir, tmp_path):
    from edgepack.source.adapter import adapter_effect, convert_adapter
    from edgepack.source import make_reference, resolve_source

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_hf_dir, dtype=torch.float32),
                           LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=True))  # B = 0
    model.save_pretrained(tmp_path / "noop")
    ref = make_reference(resolve_source(str(tiny_hf_dir)), "f16")
    gguf = convert_adapter(tmp_path / "noop", tiny_hf_dir, tmp_path / "noop.gguf")
    effect = adapter_effect(ref.path, tiny_hf_dir, tmp_path / "noop", adapter_gguf=gguf.path)
    assert not effect.matters and effect.kld_base_vs_adapter < 1e-6
    assert any("barely changes" in n for n in effect.notes)


def test_merge_adapter_quantizes_the_merged_weights(tiny_hf_dir, tiny_lora, tmp_path):
    out = tmp_path / "merged"
    result = build(str(tiny_hf_dir), ["Q8_0"], output_dir=out,
                   companions=CompanionRequest(adapter=str(tiny_lora), merge_adapter=True))
    names = sorted(p.name for p in out.iterdir())
    assert not any("lora" in n and n.endswith(".gguf") and "Q8_0" not in n for n in names)
    assert "ADAPTER" not in (out / "Modelfile").read_text()
    quant = out / result.manifest.files[0].file
    tokens = _tokens(quant)
    merged, _ = _llama_logits(quant, tokens)
    peft = _peft_logits(tiny_hf_dir, tiny_lora, tokens)
    base = _peft_logits(tiny_hf_dir, tiny_lora, tokens, enabled=False)
    assert (merged.argmax(-1) == peft.argmax(-1)).mean() >= 0.9
    assert (merged.argmax(-1) == base.argmax(-1)).mean() < 0.5
    assert result.manifest.adapter.merged and result.manifest.adapter.effect["matches_peft"]


def test_adapter_for_another_base_is_refused(tiny_hf_dir, tmp_path):
    from edgepack.cli import app

    other = make_tiny_lora(make_tiny_llama(tmp_path / "wide", hidden=512), tmp_path / "wide-lora")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["build", str(tiny_hf_dir), "--adapter", str(other), "-o", str(out)])
    assert result.exit_code != 0
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "does not fit" in lines[0] and "another base model" in lines[0], result.stderr
    assert not out.exists()


def test_llama_server_presets_load_the_adapter(lora_bundle, native_tools):
    """`llama-server --models-preset llama-server.ini` from the bundle starts the quant with --lora
    (a model server whose adapter fails to load does not answer)."""
    import urllib.request

    from tiny_multimodal import post_json, serve_presets, stop_server

    adapter = json.loads((lora_bundle / "manifest.json").read_text())["adapter"]["file"]
    proc, url = serve_presets(native_tools.tool("llama-server"), lora_bundle)
    try:
        reply = post_json(url + "/v1/chat/completions", {
            "model": "tiny-llama-Q4_K_M", "max_tokens": 4, "messages": [{"role": "user", "content": "Hello"}]})
        with urllib.request.urlopen(url + "/v1/models", timeout=10) as r:
            model = next(m for m in json.loads(r.read())["data"] if m["id"] == "tiny-llama-Q4_K_M")
    finally:
        stop_server(proc)
    assert reply["usage"]["completion_tokens"] > 0
    args = model["status"]["args"]
    assert model["status"]["value"] == "loaded" and args[args.index("--lora") + 1] == f"./{adapter}"
