#!/usr/bin/env python
"""Do conversion and quantization stream? Peak RSS and time against the checkpoint's size.

Builds a synthetic Llama checkpoint of about --gb gigabytes at run time (random F16 weights,
many layers, written shard by shard with safetensors so the generator never holds more than
one shard), then runs edgepack's two heavy steps in fresh processes, each watched from outside:

  convert   make_reference: llama.cpp's convert_hf_to_gguf.py (lazy tensors) -> F16 GGUF
  quantize  quantize_gguf: llama_model_quantize in-process -> Q4_K_M (and Q8_0 with --q8)

For each step it prints wall time and the peak resident memory of the whole process tree,
sampled every 0.2 s: total RSS (what `top` shows; includes pages of memory-mapped files,
which the kernel can drop at will) and anonymous RSS (heap: what streaming must keep small),
plus the kernel's own high-water mark (VmHWM) of the largest process. Target: peak RSS under
25 % of the checkpoint size.

    nice python scripts/bench_large.py [--gb 3.2] [--keep DIR] [--q8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HIDDEN, FFN, HEADS, KV_HEADS = 2048, 5632, 32, 4  # TinyLlama-1.1B's shapes (K-quants apply: multiples of 256)


def layer_params() -> int:
    head_dim = HIDDEN // HEADS
    return 2 * HIDDEN * HIDDEN + 2 * HIDDEN * KV_HEADS * head_dim + 3 * HIDDEN * FFN + 2 * HIDDEN


def make_checkpoint(out: Path, gb: float, vocab: int = 512) -> int:
    """Write the checkpoint shard by shard; returns its size in bytes."""
    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_models import train_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    train_tokenizer(out, vocab)
    n_layers = max(1, int(gb * 1e9 / 2 / layer_params()))
    head_dim = HIDDEN // HEADS
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HIDDEN,
              "intermediate_size": FFN, "num_hidden_layers": n_layers, "num_attention_heads": HEADS,
              "num_key_value_heads": KV_HEADS, "vocab_size": vocab, "max_position_embeddings": 2048,
              "rms_norm_eps": 1e-5, "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False,
              "torch_dtype": "float16", "hidden_act": "silu", "rope_theta": 10000.0}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    gen = torch.Generator().manual_seed(0)

    def rand(*shape):
        return (torch.randn(*shape, generator=gen) * 0.02).to(torch.float16)

    weight_map: dict[str, str] = {}
    layers_per_shard = 4
    n_shards = (n_layers + layers_per_shard - 1) // layers_per_shard + 1
    for shard in range(n_shards):
        name = f"model-{shard + 1:05d}-of-{n_shards:05d}.safetensors"
        tensors = {}
        if shard == 0:
            tensors = {"model.embed_tokens.weight": rand(vocab, HIDDEN), "lm_head.weight": rand(vocab, HIDDEN),
                       "model.norm.weight": torch.ones(HIDDEN, dtype=torch.float16)}
        else:
            for i in range((shard - 1) * layers_per_shard, min(n_layers, shard * layers_per_shard)):
                p = f"model.layers.{i}."
                tensors.update({
                    p + "self_attn.q_proj.weight": rand(HIDDEN, HIDDEN),
                    p + "self_attn.k_proj.weight": rand(KV_HEADS * head_dim, HIDDEN),
                    p + "self_attn.v_proj.weight": rand(KV_HEADS * head_dim, HIDDEN),
                    p + "self_attn.o_proj.weight": rand(HIDDEN, HIDDEN),
                    p + "mlp.gate_proj.weight": rand(FFN, HIDDEN),
                    p + "mlp.up_proj.weight": rand(FFN, HIDDEN),
                    p + "mlp.down_proj.weight": rand(HIDDEN, FFN),
                    p + "input_layernorm.weight": torch.ones(HIDDEN, dtype=torch.float16),
                    p + "post_attention_layernorm.weight": torch.ones(HIDDEN, dtype=torch.float16),
                })
        save_file(tensors, out / name, metadata={"format": "pt"})
        weight_map.update({k: name for k in tensors})
        del tensors
    total = sum(p.stat().st_size for p in out.glob("*.safetensors"))
    (out / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))
    return total


def _status(pid: int) -> dict[str, int]:
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return values


def watch(cmd: list[str], env: dict) -> dict:
    """Run `cmd`; sample the RSS of its whole process tree until it exits."""
    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    peak = {"rss": 0, "anon": 0, "hwm": 0}
    done = threading.Event()

    def sample():
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                pids = [root.pid] + [c.pid for c in root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            stats = [_status(p) for p in pids]
            peak["rss"] = max(peak["rss"], sum(s.get("VmRSS", 0) for s in stats))
            peak["anon"] = max(peak["anon"], sum(s.get("RssAnon", 0) for s in stats))
            peak["hwm"] = max([peak["hwm"]] + [s.get("VmHWM", 0) for s in stats])
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    rc = proc.wait()
    done.set()
    thread.join()
    if rc != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed with exit {rc}")
    return peak | {"seconds": round(time.perf_counter() - start, 1)}


def step(kind: str, src: str, dest: str, quant: str) -> None:
    """One heavy step in this (fresh) process."""
    from edgepack.runtime.llama import set_llama_verbose

    set_llama_verbose(False)
    if kind == "convert":
        from edgepack.source import make_reference, resolve_source

        ref = make_reference(resolve_source(src), "f16", cache_dir=Path(dest))
        Path(dest, "reference.txt").write_text(str(ref.path))
    else:
        from edgepack.quantize.engine import QuantOptions, quantize_gguf
        from edgepack.quantize.types import get_quant

        quantize_gguf(src, dest, get_quant(quant), QuantOptions(nthread=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=3.2, help="checkpoint size to build (default 3.2)")
    ap.add_argument("--keep", type=Path, help="work here and keep the files (default: a temporary directory)")
    ap.add_argument("--q8", action="store_true", help="also quantize to Q8_0")
    ap.add_argument("--step", nargs=4, metavar=("KIND", "SRC", "DEST", "QUANT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        step(*args.step)
        return
    work = args.keep or Path(tempfile.mkdtemp(prefix="edgepack-bench-large-"))
    try:
        t = time.perf_counter()
        size = make_checkpoint(work / "synthetic-llama", args.gb)
        print(f"checkpoint: {size / 1e9:.2f} GB, {len(list((work / 'synthetic-llama').glob('*.safetensors')))} shards, "
              f"built in {time.perf_counter() - t:.0f} s", flush=True)
        env = dict(os.environ, EDGEPACK_NO_PROGRESS="1")
        me = [sys.executable, __file__, "--step"]
        rows = [("convert -> F16", watch(me + ["convert", str(work / "synthetic-llama"), str(work / "ref"), "-"], env))]
        reference = Path((work / "ref" / "reference.txt").read_text())
        for quant in ["Q4_K_M"] + (["Q8_0"] if args.q8 else []):
            rows.append((f"quantize -> {quant}",
                         watch(me + ["quantize", str(reference), str(work / f"{quant}.gguf"), quant], env)))
        print("\n| step | seconds | peak RSS (GB) | RSS / checkpoint | peak anon RSS (GB) | anon / checkpoint | max VmHWM (GB) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, r in rows:
            print(f"| {name} | {r['seconds']} | {r['rss'] / 1e9:.2f} | {r['rss'] / size:.1%} | {r['anon'] / 1e9:.2f} "
                  f"| {r['anon'] / size:.1%} | {r['hwm'] / 1e9:.2f} |")
        print(f"\ncheckpoint {size / 1e9:.2f} GB; reference {reference.stat().st_size / 1e9:.2f} GB; "
              f"target: peak RSS < 25 % of the checkpoint")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
