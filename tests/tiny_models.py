"""Tiny Llama-architecture Hugging Face models made at test time.

Random weights (fixed seed), a SentencePiece tokenizer trained on CPython's own docs, and a
ChatML chat template. Hidden and FFN sizes are multiples of 256 so K-quants really apply
instead of falling back to legacy types.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Callable

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def training_text(max_chars: int = 200_000) -> str:
    from pydoc_data.topics import topics

    return "\n".join(topics.values())[:max_chars]


def train_tokenizer(out_dir: Path, vocab_size: int = 512) -> None:
    import sentencepiece as spm

    model = io.BytesIO()
    lines = [ln for ln in training_text().splitlines() if ln.strip()]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type="bpe",
        byte_fallback=True, user_defined_symbols=["<|im_start|>", "<|im_end|>"],
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2, num_threads=1,
    )
    (out_dir / "tokenizer.model").write_bytes(model.getvalue())
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "add_bos_token": True, "add_eos_token": False,
        "chat_template": CHATML_TEMPLATE,
    }, indent=2))


def make_tiny_llama(out_dir: Path, *, hidden: int = 256, layers: int = 2, vocab_size: int = 512,
                    dtype: str = "float16", seed: int = 0, architecture: str | None = None) -> Path:
    """Write a loadable HF Llama checkpoint to `out_dir` and return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out_dir.mkdir(parents=True, exist_ok=True)
    train_tokenizer(out_dir, vocab_size)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, rms_norm_eps=1e-5,
        bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.save_pretrained(out_dir)
    if architecture is not None:  # pretend to be another architecture (for error paths)
        cfg = json.loads((out_dir / "config.json").read_text())
        cfg["architectures"] = [architecture]
        (out_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    return out_dir


def write_gguf_file(path: Path, arch: str, describe: Callable, tensors: dict) -> Path:
    """A GGUF written directly with gguf-py: `describe(writer)` adds its metadata, then `tensors`
    (name -> numpy array) in order."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    describe(writer)
    for name, data in tensors.items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
