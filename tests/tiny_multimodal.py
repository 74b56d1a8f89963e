"""Tiny models made at test time for issue 12: a Gemma 3 vision model and a PEFT LoRA.

Random weights (fixed seed), the SentencePiece tokenizer of tiny_models. The Gemma 3 text
model keeps hidden size 256 (K-quants apply); its SigLIP vision tower is small (64x64 images,
16x16 patches, 2x2 image tokens) so the projector converts and runs in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

from tiny_models import train_tokenizer

GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' "
    "else message['role']) + '\n' + message['content'] + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def make_tiny_gemma3_vision(out_dir: Path, *, hidden: int = 256, vision_hidden: int = 64, seed: int = 0) -> Path:
    """A Gemma3ForConditionalGeneration checkpoint (text + SigLIP vision + projector)."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    out_dir.mkdir(parents=True, exist_ok=True)
    train_tokenizer(out_dir, 512)
    cfg = json.loads((out_dir / "tokenizer_config.json").read_text())
    cfg["chat_template"] = GEMMA_TEMPLATE
    (out_dir / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2))
    torch.manual_seed(seed)
    text = dict(vocab_size=512, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=1024,
                sliding_window=128, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    vision = dict(hidden_size=vision_hidden, intermediate_size=2 * vision_hidden, num_hidden_layers=2,
                  num_attention_heads=2, image_size=64, patch_size=16, layer_norm_eps=1e-6, vision_use_head=False)
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                          boi_token_index=3, eoi_token_index=4, image_token_index=5)
    model = Gemma3ForConditionalGeneration(config).to(torch.float16)
    model.save_pretrained(out_dir)
    _canonical_vision_names(out_dir / "model.safetensors")
    (out_dir / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Gemma3ImageProcessor", "image_seq_length": 4,
        "size": {"height": 64, "width": 64}, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "do_normalize": True, "do_resize": True, "resample": 2, "rescale_factor": 1 / 255,
    }, indent=2))
    return out_dir


def _canonical_vision_names(path: Path) -> None:
    """Published Gemma 3 checkpoints name the tower `vision_tower.vision_model.*` (what the converter maps);
    transformers 5 saves it without `vision_model.`."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(path)
    renamed = {("vision_tower.vision_model." + k[len("vision_tower."):] if k.startswith("vision_tower.")
                and not k.startswith("vision_tower.vision_model.") else k): v for k, v in tensors.items()}
    save_file(renamed, path, metadata={"format": "pt"})


def make_tiny_lora(base_dir: Path, out_dir: Path, *, r: int = 8, seed: int = 1) -> Path:
    """A random PEFT LoRA on `base_dir` (init_lora_weights=False: B is not zero, so it changes the output)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj", "down_proj"],
                        init_lora_weights=False, lora_dropout=0.0, task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    with torch.no_grad():  # peft's random init is tiny next to these random weights; make it count
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.mul_(20)
    model.save_pretrained(out_dir)
    return out_dir


def serve_presets(server_bin: Path, bundle: Path):
    """Start llama-server in router mode on the bundle's llama-server.ini (from the bundle directory);
    returns (process, base URL). The caller terminates it."""
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(server_bin), "--models-preset", "llama-server.ini", "--host", "127.0.0.1",
                             "--port", str(port), "-c", "512", "-t", "2"], cwd=bundle,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("llama-server did not start")


def stop_server(proc) -> None:
    import os
    import signal

    os.killpg(proc.pid, signal.SIGTERM)  # the router and the model servers it started
    proc.wait(timeout=30)


def post_json(url: str, payload: dict) -> dict:
    import urllib.request

    request = urllib.request.Request(url, method="POST", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as r:
        return json.loads(r.read())
