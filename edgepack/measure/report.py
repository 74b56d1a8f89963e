"""The comparison report: one row per quant (quality, tasks, speed, memory), as Markdown, JSON,
CSV and PNG charts, with a recommendation. Pure table logic here; files are written at the end.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jinja2

from edgepack.atomic import atomic_output, write_text_atomic
from edgepack.errors import ReportError
from edgepack.paths import package_data_dir

REPORT_JSON = "report.json"
QUALITY_CHART = "quality.png"
SPEED_CHART = "speed.png"


@dataclass
class Row:
    quant: str
    file: str
    size_bytes: int
    bits_per_weight: float
    is_reference: bool = False
    ppl: float | None = None
    ppl_err: float | None = None
    kld: float | None = None
    kld_err: float | None = None
    kld_median: float | None = None
    kld_p99: float | None = None
    kld_max: float | None = None
    same_top: float | None = None
    rms_dp: float | None = None
    tasks: dict = field(default_factory=dict)  # name -> {"accuracy", "stderr", "n"}
    speed: dict = field(default_factory=dict)  # "1" (parallel) -> {"pp_tps", "pp_tps_sd", "tg_tps", "tg_tps_sd", "ttft_ms"}
    peak_rss: dict = field(default_factory=dict)  # str(n_ctx) -> bytes
    peak_vram: dict = field(default_factory=dict)  # str(n_ctx) -> bytes of GPU memory in use (with a GPU)
    image_ttft_ms: float | None = None  # one image prompt through the bundle's projector (measure/image.py)
    seconds: float = 0.0


@dataclass
class Report:
    model: str
    reference: str
    text: str
    settings: dict
    machine: dict
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    recommendation: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Report":
        data = dict(data)
        data["rows"] = [Row(**r) for r in data.get("rows", [])]
        return cls(**data)

    @property
    def baseline(self) -> Row | None:
        return next((r for r in self.rows if r.is_reference), None)


# ---------------------------------------------------------------- derived figures (pure)

def size_saving(row: Row, base: Row | None) -> float | None:
    return None if base is None or not base.size_bytes else 1 - row.size_bytes / base.size_bytes


def delta_ppl_pct(row: Row, base: Row | None) -> float | None:
    if base is None or row.ppl is None or not base.ppl:
        return None
    return 100 * (row.ppl / base.ppl - 1)


def speedup(row: Row, base: Row | None, key: str, parallel: str = "1") -> float | None:
    mine = row.speed.get(parallel, {}).get(key)
    theirs = base.speed.get(parallel, {}).get(key) if base else None
    return mine / theirs if mine and theirs else None


def task_delta(row: Row, base: Row | None, name: str) -> float | None:
    mine = row.tasks.get(name, {}).get("accuracy")
    theirs = base.tasks.get(name, {}).get("accuracy") if base else None
    return None if mine is None or theirs is None else mine - theirs


def pareto_front(points: list[tuple[float, float, str]]) -> list[str]:
    """Labels of the points no other point beats on both size and loss (lower is better for both)."""
    front = []
    for size, loss, label in points:
        if not any(s <= size and l <= loss and (s < size or l < loss) for s, l, _ in points):
            front.append(label)
    return front


def parse_size(text: str) -> int:
    """'4GB', '3.5 GiB', '800MB', '123456' → bytes."""
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "K": 2**10, "M": 2**20, "G": 2**30}
    cleaned = text.strip().upper().replace(" ", "")
    number = cleaned.rstrip("KMGTIB")
    unit = cleaned[len(number):]
    try:
        return int(float(number) * units[unit])
    except (ValueError, KeyError):
        raise ReportError(f"cannot read the size {text!r}; write it like 4GB, 3.5GiB or 800MB") from None


def human_bytes(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def recommend(rows: list[Row], *, budget_bytes: int | None = None, max_kld: float | None = None) -> list[str]:
    """Best quality within a size/memory budget, and the smallest quant within a quality bound."""
    lines = []
    quants = [r for r in rows if not r.is_reference and r.kld is not None]

    def footprint(r: Row) -> int:
        return max([r.size_bytes] + [int(v) for v in r.peak_rss.values()])

    if budget_bytes is not None:
        fitting = [r for r in quants if footprint(r) <= budget_bytes]
        if fitting:
            best = min(fitting, key=lambda r: r.kld)
            lines.append(f"Best quality within {human_bytes(budget_bytes)}: {best.quant} "
                         f"(KLD {best.kld:.4f}, {best.size_bytes / 2**20:.0f} MiB file, "
                         f"{footprint(best) / 2**20:.0f} MiB peak).")
        else:
            lines.append(f"No quant fits within {human_bytes(budget_bytes)}; the smallest needs "
                         f"{min(map(footprint, quants)) / 2**20:.0f} MiB." if quants else "No quant was measured.")
    if max_kld is not None:
        good = [r for r in quants if r.kld <= max_kld]
        if good:
            small = min(good, key=lambda r: r.size_bytes)
            lines.append(f"Smallest quant with KLD ≤ {max_kld}: {small.quant} ({small.size_bytes / 2**20:.0f} MiB, "
                         f"KLD {small.kld:.4f}).")
        else:
            lines.append(f"No quant reaches KLD ≤ {max_kld}; the best is "
                         f"{min(quants, key=lambda r: r.kld).quant}." if quants else "No quant was measured.")
    if not lines and quants:
        front = pareto_front([(r.size_bytes, r.kld, r.quant) for r in quants])
        lines.append("Pareto front (size vs KLD): " + ", ".join(front) + ".")
    return lines


# ---------------------------------------------------------------- formats

def _fmt(value, spec: str, missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def table_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the comparison table (shared by Markdown and CSV)."""
    base = report.baseline
    task_names = sorted({name for r in report.rows for name in r.tasks})
    contexts = sorted({c for r in report.rows for c in r.peak_rss}, key=int)
    header = ["quant", "size MiB", "bpw", "saving", "PPL", "ΔPPL %", "KLD", "KLD p99", "same top %", "RMS Δp %"]
    header += [f"{t} acc" for t in task_names] + [f"{t} Δ" for t in task_names]
    vram_contexts = sorted({c for r in report.rows for c in r.peak_vram}, key=int)
    header += ["pp t/s", "tg t/s", "pp ×", "tg ×", "TTFT ms"] + [f"peak MiB @{c}" for c in contexts]
    header += [f"VRAM MiB @{c}" for c in vram_contexts]
    with_image = any(r.image_ttft_ms is not None for r in report.rows)
    header += ["image TTFT ms"] if with_image else []
    cells = []
    for r in report.rows:
        s1 = r.speed.get("1", {})
        row = [r.quant, f"{r.size_bytes / 2**20:.1f}", f"{r.bits_per_weight:.2f}",
               _fmt(size_saving(r, base), ".1%"), _fmt(r.ppl, ".4f"), _fmt(delta_ppl_pct(r, base), "+.2f"),
               _fmt(r.kld, ".5f"), _fmt(r.kld_p99, ".4f"), _fmt(r.same_top and 100 * r.same_top, ".2f"),
               _fmt(r.rms_dp and 100 * r.rms_dp, ".2f")]
        row += [_fmt(r.tasks.get(t, {}).get("accuracy"), ".1%") for t in task_names]
        row += [_fmt(task_delta(r, base, t), "+.1%") for t in task_names]
        row += [_fmt(s1.get("pp_tps"), ".1f"), _fmt(s1.get("tg_tps"), ".1f"), _fmt(speedup(r, base, "pp_tps"), ".2f"),
                _fmt(speedup(r, base, "tg_tps"), ".2f"), _fmt(s1.get("ttft_ms"), ".1f")]
        row += [_fmt(r.peak_rss.get(c) and r.peak_rss[c] / 2**20, ".0f") for c in contexts]
        row += [_fmt(r.peak_vram.get(c) and r.peak_vram[c] / 2**20, ".0f") for c in vram_contexts]
        row += [_fmt(r.image_ttft_ms, ".1f")] if with_image else []
        cells.append(row)
    return header, cells


def to_csv(report: Report) -> str:
    header, cells = table_rows(report)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(cells)
    return out.getvalue()


def to_markdown(report: Report, *, charts: bool = True) -> str:
    header, cells = table_rows(report)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(package_data_dir("modelfiles")), trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    return env.get_template("report.md.j2").render(report=report, header=header, cells=cells, charts=charts,
                                                   quality_chart=QUALITY_CHART, speed_chart=SPEED_CHART)


def draw_charts(report: Report, directory: Path) -> list[Path]:
    """Size vs KLD and vs PPL with the Pareto front marked; generation speed per quant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    quants = [r for r in report.rows if not r.is_reference and r.kld is not None]
    written = []
    if quants:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for ax, key, label in ((axes[0], "kld", "mean KL divergence to 16-bit"), (axes[1], "ppl", "perplexity")):
            points = [(r.size_bytes / 2**20, getattr(r, key), r.quant) for r in quants if getattr(r, key) is not None]
            front = set(pareto_front(points))
            for size, value, name in points:
                on_front = name in front
                ax.scatter(size, value, s=46 if on_front else 28, color="#c0392b" if on_front else "#7f8c8d", zorder=3)
                ax.annotate(name, (size, value), textcoords="offset points", xytext=(4, 4), fontsize=8)
            line = sorted((s, v) for s, v, n in points if n in front)
            if line:
                ax.plot(*zip(*line), color="#c0392b", linewidth=1, zorder=2, label="Pareto front")
            if key == "ppl" and report.baseline and report.baseline.ppl:
                ax.axhline(report.baseline.ppl, color="#2c3e50", linestyle="--", linewidth=1,
                           label=f"{report.baseline.quant} {report.baseline.ppl:.3f}")
            if key == "kld":
                ax.set_yscale("log")
            ax.set_xlabel("file size (MiB)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(f"{report.model}: size against quality")
        fig.tight_layout()
        written.append(_save(fig, directory / QUALITY_CHART))
        plt.close(fig)
    timed = [r for r in report.rows if r.speed.get("1", {}).get("tg_tps")]
    if timed:
        fig, ax = plt.subplots(figsize=(7, 3.8))
        names = [r.quant for r in timed]
        values = [r.speed["1"]["tg_tps"] for r in timed]
        errors = [r.speed["1"].get("tg_tps_sd") or 0 for r in timed]
        ax.bar(names, values, yerr=errors, color=["#2c3e50" if r.is_reference else "#2980b9" for r in timed])
        ax.set_ylabel("generation tokens/s (tg128)")
        ax.set_title(f"{report.model}: generation speed on {report.machine.get('cpu', 'this machine')}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        written.append(_save(fig, directory / SPEED_CHART))
        plt.close(fig)
    return written


def _save(fig, path: Path) -> Path:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path


def write_report(report: Report, directory: str | Path, *, stem: str = "report") -> list[Path]:
    """report.json, report.csv, report.md and the charts, each written atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    charts = draw_charts(report, directory)
    paths = [
        write_text_atomic(directory / f"{stem}.json", json.dumps(report.to_dict(), indent=2) + "\n"),
        write_text_atomic(directory / f"{stem}.csv", to_csv(report)),
        write_text_atomic(directory / f"{stem}.md", to_markdown(report, charts=bool(charts))),
    ]
    return paths + charts


def load_report(path: str | Path) -> Report:
    path = Path(path)
    if path.is_dir():
        path = path / REPORT_JSON
    if not path.is_file():
        raise ReportError(f"{path} does not exist; run `edgepack eval` first")
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(Report).validate_json(path.read_bytes(), strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(str(p) for p in first["loc"]) or "(top)"
        if first["type"] == "json_invalid":
            raise ReportError(f"{path} is not JSON ({first['msg']}); run `edgepack eval` again") from None
        raise ReportError(f"{path} is not an edgepack report: field {place}: {first['msg'].lower()}; "
                          "run `edgepack eval` again") from None
    except OSError as exc:
        raise ReportError(f"cannot read {path} ({exc.strerror or exc})") from None
