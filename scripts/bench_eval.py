#!/usr/bin/env python
"""edgepack's evaluation against llama.cpp's own tools, side by side in one run.

Quality: perplexity of the F16 reference and KLD/perplexity of quants, edgepack
(`edgepack.measure.evaluate`) against `llama-perplexity` (and `--kl-divergence`) built from the same
pinned tree, same text, n_ctx, chunks and threads; values and wall time, with ratios.
Speed: pp512/tg128 of `edgepack.measure.bench.measure_speed` against `llama-bench`, interleaved.

    python scripts/bench_eval.py [BUNDLE] [--quant Q4_K_M --quant Q2_K] [--chunks 8] [--threads 2]

Without BUNDLE it builds the embedded default model's Q8_0, Q4_K_M and Q2_K into a temp dir.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgepack.measure.bench import measure_speed
from edgepack.bundle import load_manifest
from edgepack.measure.refcache import divergence, reference_log_probs
from edgepack.measure.scoring import EvalSettings, perplexity
from edgepack.runtime.llama import set_llama_verbose
from edgepack.runtime.native import build_native
from edgepack.measure.texts import default_eval_text


def llama_perplexity(tool: Path, model: Path, text: Path, args, extra: list[str]) -> tuple[dict, float]:
    cmd = [str(tool), "-m", str(model), "-f", str(text), "-c", str(args.ctx), "-b", str(args.ctx),
           "--chunks", str(args.chunks), "-t", str(args.threads), *extra]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"llama-perplexity failed: {done.stderr[-400:]}")
    log = done.stdout + done.stderr

    def grab(pattern: str) -> float | None:
        match = re.search(pattern, log)
        return float(match.group(1)) if match else None

    return {"ppl": grab(r"Final estimate: PPL = ([\d.]+)") or grab(r"Mean PPL\(Q\)\s*:\s*([\d.]+)"),
            "kld": grab(r"Mean    KLD:\s*([-\d.]+)"), "same_top": grab(r"Same top p:\s*([\d.]+)")}, seconds


def llama_bench(tool: Path, model: Path, threads: int, reps: int) -> dict:
    done = subprocess.run([str(tool), "-m", str(model), "-t", str(threads), "-r", str(reps), "-o", "json"],
                          capture_output=True, text=True, check=True)
    rows = json.loads(done.stdout)
    return {("pp" if r["n_prompt"] else "tg"): r["avg_ts"] for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", nargs="?")
    parser.add_argument("--quant", action="append")
    parser.add_argument("--chunk-tokens", dest="ctx", type=int, default=512)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    set_llama_verbose(False)
    tools = build_native(("llama-perplexity", "llama-bench"))
    with tempfile.TemporaryDirectory(prefix="edgepack-bench-eval-") as tmp:
        tmp = Path(tmp)
        if args.bundle:
            bundle = Path(args.bundle)
        else:
            from edgepack.pipeline import build

            bundle = build(None, ["Q8_0", "Q4_K_M", "Q2_K"], output_dir=tmp / "bundle").bundle_dir
        manifest = load_manifest(bundle)
        reference = Path(manifest.reference["path"])
        quants = [f for f in manifest.files if not args.quant or f.quant in args.quant]
        text = default_eval_text()
        text_file = tmp / "eval.txt"
        text_file.write_text(text.text)
        settings = EvalSettings(n_ctx=args.ctx, n_chunks=args.chunks, n_threads=args.threads)
        print(f"text: {text.name}; {args.chunks} chunks of {args.ctx}; {args.threads} threads; flash attention auto\n")

        print(f"{'model':<10} {'PPL edgepack':>13} {'PPL llama':>10} {'ratio':>8} {'KLD edgepack':>13} {'KLD llama':>10}"
              f" {'ratio':>7} {'s edgepack':>11} {'s llama':>8} {'time ratio':>10}")
        ours = perplexity(reference, text.text, settings)
        theirs, their_s = llama_perplexity(tools.tool("llama-perplexity"), reference, text_file, args, [])
        print(f"{manifest.reference['outtype']:<10} {ours.ppl:>13.4f} {theirs['ppl']:>10.4f} {ours.ppl / theirs['ppl']:>8.5f}"
              f" {'':>13} {'':>10} {'':>7} {ours.seconds:>11.2f} {their_s:>8.2f} {ours.seconds / their_s:>10.3f}")
        base_file = tmp / "base.kld"
        llama_perplexity(tools.tool("llama-perplexity"), reference, text_file, args, ["--kl-divergence-base", str(base_file)])
        base = reference_log_probs(reference, text.text, settings)
        for f in quants:
            path = bundle / f.file
            d = divergence(path, base, settings)
            t, t_s = llama_perplexity(tools.tool("llama-perplexity"), path, text_file, args,
                                      ["--kl-divergence-base", str(base_file), "--kl-divergence"])
            print(f"{f.quant:<10} {d.ppl:>13.4f} {t['ppl']:>10.4f} {d.ppl / t['ppl']:>8.5f} {d.mean_kld:>13.5f}"
                  f" {t['kld']:>10.5f} {d.mean_kld / t['kld']:>7.4f} {d.seconds:>11.2f} {t_s:>8.2f} {d.seconds / t_s:>10.3f}")

        print(f"\n{'model':<10} {'pp512 edgepack':>15} {'pp512 llama-bench':>18} {'ratio':>7} {'tg128 edgepack':>15}"
              f" {'tg128 llama-bench':>18} {'ratio':>7}")
        for f in quants:
            path = bundle / f.file
            lb = llama_bench(tools.tool("llama-bench"), path, args.threads, args.reps)
            s = measure_speed(path, repetitions=args.reps, n_threads=args.threads)
            print(f"{f.quant:<10} {s.pp_tps:>15.1f} {lb['pp']:>18.1f} {s.pp_tps / lb['pp']:>7.3f} {s.tg_tps:>15.1f}"
                  f" {lb['tg']:>18.1f} {s.tg_tps / lb['tg']:>7.3f}")


if __name__ == "__main__":
    main()
