"""Joules per token of every quant of a bundle (or of GGUF files), side by side, on this machine's
power sensors (RAPL, NVML, Jetson rails, powermetrics; see edgepack/measure/energy.py).

The idle baseline is measured once first and subtracted from every run; the quants run one after
another with the same threads, lengths and repetitions, and a cooldown between them so heat from
one does not tax the next. The ratio column is J/token relative to the first quant listed.
A machine without a sensor says so in one line and exits 2: nothing is estimated.

    python scripts/bench_energy.py BUNDLE_OR_GGUF... [-t THREADS] [-p 512] [-n 128] [-r 3] [--cooldown 5]
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    from edgepack.measure.bench import bench_sweep
    from edgepack.measure.energy import EnergyUnavailable, open_meter

    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("-t", "--threads", type=int)
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("-r", "--reps", type=int, default=3)
    ap.add_argument("--idle-seconds", type=float, default=5.0)
    ap.add_argument("--cooldown", type=float, default=5.0)
    args = ap.parse_args()
    try:
        open_meter().close()
    except EnergyUnavailable as exc:
        print(f"bench_energy: {exc}", file=sys.stderr)
        return 2
    report = bench_sweep(args.models, threads=[args.threads] if args.threads else None, n_prompt=args.n_prompt,
                         n_gen=args.n_gen, repetitions=args.reps, energy=True, idle_seconds=args.idle_seconds,
                         cooldown=args.cooldown)
    rows = [r for r in report.results if r.joules_per_token is not None]
    if not rows:
        print("bench_energy: no energy figures came back (see the notes)", *report.notes, sep="\n", file=sys.stderr)
        return 2
    print(f"machine: {report.machine.get('name')}  sensors: {', '.join(rows[0].energy_sources)}  "
          f"idle {rows[0].idle_watts:.2f} W (subtracted)")
    print(f"{'quant':<10}{'test':<8}{'t/s':>10}{'W':>8}{'J/token':>12}{'tokens/J':>10}{'ratio':>8}")
    first: dict[str, float] = {}
    for r in rows:
        kind = r.test[:2]
        first.setdefault(kind, r.joules_per_token)
        ratio = r.joules_per_token / first[kind] if first[kind] else float("nan")
        print(f"{(r.quant or r.model_type):<10}{r.test:<8}{r.avg_ts:>10.2f}{r.avg_watts:>8.1f}"
              f"{r.joules_per_token:>12.5f}{(r.tokens_per_joule or 0):>10.2f}{ratio:>8.2f}")
    for note in report.notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
