#!/usr/bin/env python
"""Does the importance matrix pay? KLD to the 16-bit model with and without one, side by side.

Builds Q2_K, Q3_K_M, Q4_K_M and IQ3_M of the embedded default model (SmolLM2-135M-Instruct)
with and without an imatrix computed from edgepack's default calibration text (Python
standard-library docstrings), then measures the KL divergence of each against the F16 reference
with llama.cpp's own `llama-perplexity --kl-divergence` (same pinned tree) on a text that was
not used for calibration (CPython's pydoc topics, the first 60,000 characters).

    python scripts/bench_imatrix.py [--chunks 8] [--imatrix-chunks 32] [--quant Q2_K ...]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgepack.quantize.imatrix import compute_imatrix, default_calibration_text
from edgepack.source import make_reference, resolve_source
from edgepack.runtime.llama import set_llama_verbose
from edgepack.runtime.native import build_native
from edgepack.quantize.engine import QuantOptions, quantize_gguf
from edgepack.quantize.types import get_quant


def eval_text() -> str:
    from pydoc_data.topics import topics

    return "\n".join(topics.values())[:60_000]


def kld(tool: Path, model: Path, base: Path, text: Path, ctx: int, chunks: int, threads: int) -> dict:
    cmd = [str(tool), "-m", str(model), "-f", str(text), "-c", str(ctx), "-b", str(ctx), "--chunks", str(chunks),
           "-t", str(threads), "--kl-divergence-base", str(base), "--kl-divergence"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"llama-perplexity failed on {model.name}: {out.stderr[-500:]}")
    log = out.stdout + out.stderr

    def grab(label: str) -> float:
        match = re.search(label + r"\s*:\s*([-\d.]+)", log)
        return float(match.group(1)) if match else float("nan")

    return {"kld": grab(r"Mean    KLD"), "ppl": grab(r"Mean PPL\(Q\)"), "same_top": grab(r"Same top p")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quant", action="append", help="quant types (default Q2_K Q3_K_M Q4_K_M IQ3_M)")
    parser.add_argument("--chunks", type=int, default=8, help="evaluation chunks of --ctx tokens")
    parser.add_argument("--chunk-tokens", dest="ctx", type=int, default=512)
    parser.add_argument("--imatrix-chunks", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    quants = [get_quant(q) for q in (args.quant or ["Q2_K", "Q3_K_M", "Q4_K_M", "IQ3_M"])]

    set_llama_verbose(False)
    tools = build_native(("llama-perplexity", "llama-quantize", "llama-imatrix"))
    perplexity = tools.tool("llama-perplexity")
    reference = make_reference(resolve_source(None))
    start = time.perf_counter()
    imatrix = compute_imatrix(reference.path, default_calibration_text(), chunks=args.imatrix_chunks)
    print(f"imatrix: {imatrix.dataset}, {imatrix.chunks} chunks of {imatrix.chunk_size} tokens "
          f"({'cached' if imatrix.cached else f'{time.perf_counter() - start:.0f} s'})")

    with tempfile.TemporaryDirectory(prefix="edgepack-bench-imatrix-") as tmp:
        tmp = Path(tmp)
        text = tmp / "eval.txt"
        text.write_text(eval_text())
        base = tmp / "base.kld"
        subprocess.run([str(perplexity), "-m", str(reference.path), "-f", str(text), "-c", str(args.ctx),
                        "-b", str(args.ctx), "--chunks", str(args.chunks), "-t", str(args.threads),
                        "--kl-divergence-base", str(base)], check=True, capture_output=True)
        print(f"evaluation: CPython pydoc topics (60,000 chars), {args.chunks} chunks of {args.ctx} tokens, "
              "llama-perplexity defaults (flash attention auto)\n")
        print(f"{'quant':<8} {'KLD plain':>10} {'KLD imatrix':>12} {'ratio':>7}   {'PPL plain':>9} {'PPL imatrix':>11}"
              f"   {'same-top plain':>14} {'same-top imatrix':>16}")
        for quant in quants:
            plain = quantize_gguf(reference.path, tmp / f"{quant.name}.gguf", quant).path
            with_im = quantize_gguf(reference.path, tmp / f"{quant.name}-imatrix.gguf", quant,
                                    QuantOptions(imatrix=str(imatrix.path))).path
            a = kld(perplexity, plain, base, text, args.ctx, args.chunks, args.threads)
            b = kld(perplexity, with_im, base, text, args.ctx, args.chunks, args.threads)
            print(f"{quant.name:<8} {a['kld']:>10.5f} {b['kld']:>12.5f} {b['kld'] / a['kld']:>7.3f}   "
                  f"{a['ppl']:>9.4f} {b['ppl']:>11.4f}   {a['same_top']:>13.2f}% {b['same_top']:>15.2f}%")


if __name__ == "__main__":
    main()
