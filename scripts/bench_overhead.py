"""edgepack's own overhead, side by side with the same llama.cpp steps by hand, in one run.

1. `edgepack build HF_DIR --quant Q4_K_M` with a cold reference cache (a temporary EDGEPACK_CACHE
   that borrows the unpacked toolchain and native tools) vs `convert_hf_to_gguf.py` then
   `llama-quantize` from the same pinned tree. Target: ratio <= 1.10, and the same bytes.
2. `edgepack inspect` and `edgepack plan` on a GGUF with a Llama-3-sized vocabulary (128,256
   tokens, 280,147 merges) made at run time. Target: each under 0.5 s.

    python scripts/bench_overhead.py [HF_DIR] [--repeat N]

Without HF_DIR, the embedded default model's checkpoint is used. Times are wall-clock seconds of
the whole command (interpreter start included); the best of --repeat runs is compared, after one
uncounted warm-up of both sides, with Python's default bytecode cache on both sides, and with the
order of the two sides alternating from run to run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable


CPU: dict[str, float] = {}  # CPU seconds (user+sys) of the last command, by label


def _timed(cmd: list[str], env: dict, label: str = "") -> float:
    """Wall seconds of a command; its CPU seconds go to CPU[label] (a shared, busy machine inflates
    wall time but not CPU time, so both are printed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU[label] = CPU.get(label, 0.0) + (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return seconds


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _private_cache(root: Path) -> Path:
    """A cold cache that reuses the shared toolchain and native tools."""
    from edgepack import paths

    cache = root / "cache"
    cache.mkdir()
    for kind in ("toolchain", "native"):
        (cache / kind).symlink_to(paths.cache_root() / kind)
    return cache


def _python_env(env: dict) -> dict:
    """Python's default: compiled modules are cached (__pycache__) after their first import, for
    edgepack and for the converter's gguf-py alike; a machine-wide PYTHONDONTWRITEBYTECODE would
    make both sides recompile every module on every run, which no installed tool does."""
    return {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}


def bench_build(hf_dir: Path, repeat: int) -> float:
    from edgepack.runtime.native import build_native
    from edgepack.runtime.toolchain import converter_env, ensure_toolchain

    toolchain = ensure_toolchain()
    quantize = build_native(("llama-quantize",)).tool("llama-quantize")
    best_ours = best_hand = float("inf")
    ratios: list[float] = []
    for i in range(repeat + 1):  # run 0 warms both sides (bytecode, page cache) and is not counted
        with tempfile.TemporaryDirectory(prefix="edgepack-bench-") as tmp:
            tmp = Path(tmp)
            env = _python_env(os.environ | {"EDGEPACK_CACHE": str(_private_cache(tmp)), "EDGEPACK_NO_PROGRESS": "1"})
            CPU.clear()

            def ours() -> float:
                return _timed([PY, "-m", "edgepack.cli", "build", str(hf_dir), "--quant", "Q4_K_M", "-o",
                               str(tmp / "out")], env, "ours")

            def hand() -> float:
                start = time.perf_counter()
                _timed([PY, str(toolchain.converter), str(hf_dir), "--outfile", str(tmp / "ref.gguf"), "--outtype",
                        "f16"], _python_env(converter_env(toolchain)), "hand")
                _timed([str(quantize), str(tmp / "ref.gguf"), str(tmp / "q.gguf"), "Q4_K_M"], env, "hand")
                return time.perf_counter() - start

            if i % 2:  # alternate which side runs first, so neither always meets the warmer machine
                t_ours, t_hand = ours(), hand()
            else:
                t_hand, t_ours = hand(), ours()
            same = _sha(tmp / "q.gguf") == _sha(next((tmp / "out").glob("*-Q4_K_M.gguf")))
        if i == 0:
            print(f"  warm-up: edgepack build {t_ours:6.2f} s, by hand {t_hand:6.2f} s (not counted)")
            continue
        best_ours, best_hand = min(best_ours, t_ours), min(best_hand, t_hand)
        ratios.append(t_ours / t_hand)
        print(f"  run {i}: edgepack build {t_ours:6.2f} s wall ({CPU['ours']:.2f} s CPU)   by hand {t_hand:6.2f} s "
              f"wall ({CPU['hand']:.2f} s CPU)   same bytes: {same}")
    ratio = best_ours / best_hand
    print(f"build: edgepack {best_ours:.2f} s vs llama.cpp by hand {best_hand:.2f} s -> ratio {ratio:.3f} "
          f"(target <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'}); per run (side by side) "
          f"{min(ratios):.3f}-{max(ratios):.3f}, median {statistics.median(ratios):.3f}")
    return ratio


def make_big_vocab_gguf(path: Path, n_vocab: int = 128_256, n_merges: int = 280_147) -> Path:
    """A small Llama whose tokenizer has a Llama-3-sized vocabulary (the weights are tiny)."""
    import gguf
    import numpy as np

    n_embd, n_ff = 64, 128
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("big-vocab")
    w.add_block_count(1)
    w.add_context_length(8192)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(1)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}" for i in range(n_vocab)])
    w.add_token_types([1] * n_vocab)
    w.add_token_merges([f"t{i % 977} k{i}" for i in range(n_merges)])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    w.add_tensor("token_embd.weight", np.zeros((n_vocab, n_embd), dtype=np.float16))
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    for name, shape in (("attn_norm", (n_embd,)), ("ffn_norm", (n_embd,)), ("attn_q", (n_embd, n_embd)),
                        ("attn_k", (n_embd, n_embd)), ("attn_v", (n_embd, n_embd)), ("attn_output", (n_embd, n_embd)),
                        ("ffn_gate", (n_ff, n_embd)), ("ffn_up", (n_ff, n_embd)), ("ffn_down", (n_embd, n_ff))):
        dtype = np.float32 if len(shape) == 1 else np.float16
        w.add_tensor(f"blk.0.{name}.weight", np.zeros(shape, dtype=dtype))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def bench_metadata(repeat: int) -> None:
    from edgepack.gguf_file import read_gguf

    with tempfile.TemporaryDirectory(prefix="edgepack-bench-") as tmp:
        path = make_big_vocab_gguf(Path(tmp) / "big-vocab.gguf")
        env = os.environ | {"EDGEPACK_NO_PROGRESS": "1"}
        baseline = min(_timed([PY, "-c", "import edgepack.cli"], env) for _ in range(repeat))
        read = [PY, "-c", f"from edgepack.gguf_file import read_gguf; read_gguf({str(path)!r})"]
        start = time.perf_counter()
        info = read_gguf(path)
        in_process = time.perf_counter() - start
        print(f"GGUF: {path.stat().st_size / 2**20:.0f} MiB, vocabulary {info.vocab_size}; read_gguf in-process "
              f"{in_process:.3f} s; `import edgepack.cli` alone {baseline:.2f} s")
        for name, cmd in (("read_gguf (python -c)", read),
                          ("inspect", [PY, "-m", "edgepack.cli", "inspect", str(path)]),
                          ("plan", [PY, "-m", "edgepack.cli", "plan", str(path), "--target", "rtx-3060-12gb"])):
            CPU.clear()
            best = min(_timed(cmd, env, name) for _ in range(repeat))
            cpu = CPU[name] / repeat
            print(f"{name}: {best:.2f} s wall, {cpu:.2f} s CPU per run (target < 0.5 s: "
                  f"{'met' if best < 0.5 else 'NOT met'} by wall time, {'met' if cpu < 0.5 else 'NOT met'} by CPU time)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("hf_dir", nargs="?", help="HF model directory (default: the embedded model's checkpoint)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()
    if not args.skip_build:
        if args.hf_dir:
            hf_dir = Path(args.hf_dir)
        else:
            from edgepack.source.default_model import default_source

            hf_dir = default_source().path
        print(f"model: {hf_dir}")
        bench_build(hf_dir, args.repeat)
    bench_metadata(max(args.repeat, 3))


if __name__ == "__main__":
    main()
