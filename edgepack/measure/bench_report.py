"""Bench results from many machines in one table: `edgepack report orin.json laptop.json`.

Reads `edgepack bench` reports (.json/.jsonl) and `llama-bench -o json` arrays, and renders one
Markdown/CSV table with speed, joules per token and sustained speed, plus an energy chart
(J/token and sustained against burst speed per machine and quant).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from edgepack.errors import ReportError

BENCH_COLUMNS = ("machine", "model_filename", "quant", "model_size", "model_n_params", "backends", "n_threads",
                 "n_gpu_layers", "n_batch", "test", "avg_ts", "stddev_ts", "joules_per_token", "avg_watts",
                 "tokens_per_joule", "burst_ts", "sustained_ts", "slowdown_after_s", "throttling", "busy")
ENERGY_CHART = "energy.png"


def merge_bench_results(paths: list[str | Path]) -> list[dict]:
    """Records of `edgepack bench` (.json/.jsonl) or `llama-bench -o json` files, one list for all machines."""
    from edgepack.measure.bench import load_bench_results

    records = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ReportError(f"{path} does not exist")
        try:
            found = load_bench_results(path)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ReportError(f"{path} is not a bench result (edgepack bench -o x.json, or llama-bench -o json): {exc}") from None
        if not found:
            raise ReportError(f"{path} holds no bench results (make them with edgepack bench -o x.json or llama-bench -o json)")
        for r in found:
            if not isinstance(r, dict) or "avg_ts" not in r:
                raise ReportError(f"{path} is not a bench result: its records have no avg_ts")
            machine = r.get("machine") or (r.get("machine_profile") or {}).get("cpu_info") or r.get("cpu_info") or path.stem
            test = r.get("test") or (f"pp{r['n_prompt']}" if r.get("n_prompt") else f"tg{r.get('n_gen')}")
            records.append({**r, "machine": machine, "test": test, "quant": r.get("quant") or r.get("model_type"),
                            "source": str(path)})
    return records


def _num(value, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else ""


def bench_notes(records: list[dict]) -> list[str]:
    """Throttling found by --sustained, and results measured while other processes were busy."""
    notes = [f"{r['machine']} {r.get('quant') or ''} {r['test']}: {r['throttling']}" for r in records
             if r.get("throttling")]
    return notes + [f"{r['machine']} {r.get('quant') or ''} {r['test']}: measured while other processes were busy "
                    f"({(r.get('conditions') or {}).get('other_cores')} cores)" for r in records if r.get("busy")]


def bench_markdown(records: list[dict], *, notes: list[str] = (), chart: str | None = None) -> str:
    header = ["machine", "model", "quant", "size MiB", "params", "backend", "threads", "ngl", "batch", "test", "t/s",
              "J/token", "W", "tokens/J", "burst t/s", "sustained t/s", "slowdown after"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in records:
        slowdown = (f"{r['slowdown_after_s']:.0f} s" if r.get("slowdown_after_s") is not None
                    else ("never" if r.get("sustained_ts") is not None else ""))
        lines.append("| " + " | ".join([
            str(r["machine"]), Path(str(r.get("model_filename", ""))).name, str(r.get("quant") or ""),
            f"{r.get('model_size', 0) / 2**20:.1f}", f"{r.get('model_n_params', 0) / 1e6:.1f} M",
            str(r.get("backends", "")), str(r.get("n_threads", "")), str(r.get("n_gpu_layers", "")),
            str(r.get("n_batch", "")), str(r["test"]) + (" (busy)" if r.get("busy") else ""),
            f"{r['avg_ts']:.2f} ± {r.get('stddev_ts') or 0:.2f}", _num(r.get("joules_per_token"), ".4g"),
            _num(r.get("avg_watts"), ".1f"), _num(r.get("tokens_per_joule"), ".3g"), _num(r.get("burst_ts"), ".2f"),
            _num(r.get("sustained_ts"), ".2f"), slowdown]) + " |")
    out = "\n".join(lines) + "\n"
    if notes:
        out += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    if chart:
        out += f"\n![energy and sustained speed]({chart})\n"
    return out


def bench_chart(records: list[dict], path: str | Path) -> Path | None:
    """Joules per generated token, and sustained against burst tokens/s, per machine and quant.
    None when the records hold neither (nothing is drawn from absent numbers)."""
    energy = [r for r in records if r.get("joules_per_token") is not None and str(r["test"]).startswith("tg")]
    sustained = [r for r in records if r.get("sustained_ts") is not None]
    if not energy and not sustained:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgepack.measure.report import _save

    fig, axes = plt.subplots(1, 2 if energy and sustained else 1, figsize=(11 if energy and sustained else 6, 4))
    axes = list(axes) if hasattr(axes, "__len__") else [axes]
    if energy:
        ax = axes.pop(0)
        labels = [f"{r['machine']}\n{r.get('quant') or ''} t={r.get('n_threads')}" for r in energy]
        ax.bar(range(len(energy)), [r["joules_per_token"] for r in energy], color="#4c72b0")
        ax.set_xticks(range(len(energy)), labels, fontsize=7, rotation=30, ha="right")
        ax.set_ylabel("joules per generated token (net of idle)")
        ax.set_title("energy per token")
    if sustained:
        ax = axes.pop(0)
        labels = [f"{r['machine']}\n{r.get('quant') or ''}" for r in sustained]
        x = range(len(sustained))
        ax.bar([i - 0.2 for i in x], [r["burst_ts"] for r in sustained], width=0.4, label="burst", color="#dd8452")
        ax.bar([i + 0.2 for i in x], [r["sustained_ts"] for r in sustained], width=0.4, label="sustained", color="#55a868")
        ax.set_xticks(list(x), labels, fontsize=7, rotation=30, ha="right")
        ax.set_ylabel("generated tokens/s")
        ax.set_title("burst and sustained speed")
        ax.legend()
    fig.tight_layout()
    written = _save(fig, Path(path))
    plt.close(fig)
    return written


def bench_csv(records: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(BENCH_COLUMNS)
    for r in records:
        writer.writerow([r.get(c, "") for c in BENCH_COLUMNS])
    return out.getvalue()
