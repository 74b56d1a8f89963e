"""edgepack's speed engine vs llama-bench, side by side in one run: ratios per quant and test.

The two are interleaved (edgepack, llama-bench, edgepack, llama-bench ...) with the same
threads, batch, prompt/generation lengths and flash-attention setting, so load on a shared
machine hits both alike; the ratio of means is what to read. Target: within ~5 %.

    python scripts/bench_speed.py [BUNDLE] [--quant Q4_K_M ...] [--rounds 2] [-t THREADS]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path


def llama_bench(tool: Path, model: Path, threads: int, reps: int, n_prompt: int, n_gen: int) -> dict:
    done = subprocess.run([str(tool), "-m", str(model), "-t", str(threads), "-r", str(reps), "-p", str(n_prompt),
                           "-n", str(n_gen), "-fa", "auto", "-ngl", "0", "-o", "json"],
                          capture_output=True, text=True, check=True)
    rows = json.loads(done.stdout)
    return {("pp" if r["n_prompt"] else "tg"): r["avg_ts"] for r in rows}


def main() -> None:
    from edgepack.measure.bench import default_threads, measure_speed
    from edgepack.bundle import load_manifest
    from edgepack.runtime.native import find_tool

    ap = argparse.ArgumentParser()
    ap.add_argument("bundle", nargs="?", default="/tmp/out/smol")
    ap.add_argument("--quant", action="append")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("-t", "--threads", type=int)
    ap.add_argument("-r", "--reps", type=int, default=3)
    args = ap.parse_args()
    tool = find_tool("llama-bench")
    if tool is None:
        raise SystemExit("llama-bench is not built: run `edgepack native build` first")
    bundle = Path(args.bundle)
    manifest = load_manifest(bundle)
    threads = args.threads or default_threads()
    quants = args.quant or ["Q8_0", "Q4_K_M", "Q4_0"]
    print(f"threads {threads}, pp512 / tg128, {args.reps} repetitions each, {args.rounds} interleaved rounds")
    print(f"{'quant':<8}{'test':<7}{'edgepack t/s':>14}{'llama-bench t/s':>17}{'ratio':>8}")
    ratios = []
    for q in quants:
        entry = manifest.file(q)
        if entry is None:
            continue
        path = bundle / entry.file
        ours = {"pp": [], "tg": []}
        theirs = {"pp": [], "tg": []}
        for _ in range(args.rounds):
            r = measure_speed(path, n_prompt=512, n_gen=128, repetitions=args.reps, n_threads=threads)
            ours["pp"].append(r.pp_tps)
            ours["tg"].append(r.tg_tps)
            lb = llama_bench(tool, path, threads, args.reps, 512, 128)
            theirs["pp"].append(lb["pp"])
            theirs["tg"].append(lb["tg"])
        for test in ("pp", "tg"):
            a, b = statistics.fmean(ours[test]), statistics.fmean(theirs[test])
            ratios.append(a / b)
            name = "pp512" if test == "pp" else "tg128"
            print(f"{q:<8}{name:<7}{a:>14.1f}{b:>17.1f}{a / b:>8.3f}")
    if ratios:
        print(f"edgepack/llama-bench: min {min(ratios):.3f}, max {max(ratios):.3f}, "
              f"geometric mean {statistics.geometric_mean(ratios):.3f}")


if __name__ == "__main__":
    main()
