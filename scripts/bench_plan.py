"""Predicted vs measured: peak memory (RSS here, VRAM where a GPU is present) for several quants and
contexts, and tokens/s, printed side by side. Target: memory within ±10 %.

Each memory point runs in a fresh child process that loads the model with the context, decodes
one full batch (so the compute buffer is touched, as in real use) and a few tokens, and reports
its peak RSS. The runtime reserve in the prediction is that child's own RSS before the model
loads (the Python interpreter and llama.cpp's libraries), measured, not assumed.

    python scripts/bench_plan.py [BUNDLE] [--quant Q8_0 --quant Q4_K_M ...] [--ctx 512 --ctx 8192]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgepack.measure.peak_memory import measure_peak_memory as measure_peak

def main() -> None:
    from edgepack.measure.bench import measure_speed
    from edgepack.bundle import load_manifest
    from edgepack.machine.plan import estimate_memory, load_geometry, predict_speed, repack_types
    from edgepack.machine.profile import this_machine

    ap = argparse.ArgumentParser()
    ap.add_argument("bundle", nargs="?", default="/tmp/out/smol")
    ap.add_argument("--quant", action="append")
    ap.add_argument("--ctx", action="append", type=int)
    ap.add_argument("--ngl", type=int, default=0)
    ap.add_argument("--no-speed", action="store_true")
    args = ap.parse_args()
    bundle = Path(args.bundle)
    manifest = load_manifest(bundle)
    quants = args.quant or ["Q8_0", "Q4_K_M", "Q4_0", "Q2_K"]
    contexts = args.ctx or [512, 2048, 8192]
    machine = this_machine()
    print(f"machine: {machine.cpu.model}, {machine.cpu.threads_for_inference()} threads, "
          f"bandwidth {machine.memory.bandwidth_gbps} GB/s ({machine.memory.bandwidth_source}), "
          f"llama.cpp CPU features: {' '.join(machine.cpu.llama_isa)}")
    print(f"\n{'quant':<8}{'ctx':>6}{'pred MiB':>10}{'meas MiB':>10}{'ratio':>8}   (weights+repack+vocab / KV / compute / reserve)")
    ratios = []
    for q in quants:
        entry = manifest.file(q)
        if entry is None:
            continue
        g = load_geometry(bundle / entry.file)
        for c in contexts:
            if g.n_ctx_train and c > g.n_ctx_train:
                continue
            m = measure_peak(bundle / entry.file, c, args.ngl)
            est = estimate_memory(g, n_ctx=c, n_gpu_layers=args.ngl, flash_attn=True, repack=repack_types(machine),
                                  reserve_ram=m["base"])
            ratio = m["peak"] / est.ram_total
            ratios.append(ratio)
            print(f"{q:<8}{c:>6}{est.ram_total / 2**20:>10.1f}{m['peak'] / 2**20:>10.1f}{ratio:>8.3f}   "
                  f"({(est.weights_ram + est.repack_ram + est.model_runtime_ram) / 2**20:.1f} / {est.kv_ram / 2**20:.1f} / "
                  f"{est.compute_ram / 2**20:.1f} / {est.reserve_ram / 2**20:.1f})"
                  + (f"  VRAM used {m['vram_used'] / 2**20:.0f} MiB vs predicted {est.vram_total / 2**20:.0f}"
                     if m.get("vram_used") else ""))
    if ratios:
        worst = max(ratios, key=lambda r: abs(r - 1))
        print(f"measured/predicted: min {min(ratios):.3f}, max {max(ratios):.3f}; worst {abs(worst - 1) * 100:.1f} % "
              f"({'within' if abs(worst - 1) <= 0.10 else 'OUTSIDE'} ±10 %)")
    if args.no_speed:
        return
    print(f"\n{'quant':<8}{'tg pred':>9}{'tg meas':>9}{'ratio':>7}{'pp pred':>9}{'pp meas':>9}{'ratio':>7}")
    for q in quants:
        entry = manifest.file(q)
        if entry is None:
            continue
        g = load_geometry(bundle / entry.file)
        est = estimate_memory(g, n_ctx=640, n_gpu_layers=args.ngl, repack=repack_types(machine))
        pred = predict_speed(g, machine, est, depth=64)
        r = measure_speed(bundle / entry.file, n_prompt=512, n_gen=128, repetitions=3, n_gpu_layers=args.ngl)
        print(f"{q:<8}{pred.tg_tps:>9.1f}{r.tg_tps:>9.1f}{r.tg_tps / pred.tg_tps:>7.2f}"
              f"{pred.pp_tps:>9.1f}{r.pp_tps:>9.1f}{r.pp_tps / pred.pp_tps:>7.2f}")
    print(f"(prediction basis: {pred.basis}; measured = edgepack's engine, pp512/tg128, 3 repetitions)")


if __name__ == "__main__":
    main()
