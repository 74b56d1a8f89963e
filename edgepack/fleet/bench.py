"""`bench --fleet`: every GGUF on every selected device, one report.

Each GGUF is put in Ray's object store once; one task per (device, GGUF) runs the same bench
engine as `edgepack bench` on that device (pinned to its node, one at a time through the
device's own resource). A device that disconnects mid-run keeps the rows it finished; its other
files are reported missing, and nothing of the other devices is lost.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from edgepack.errors import BenchError
from edgepack.fleet.cluster import connect, import_ray, node_alive, select_devices
from edgepack.fleet.tasks import bench_file, remote
from edgepack.fleet.worker import device_resource


@dataclass
class DeviceOutcome:
    name: str
    spec: dict
    status: str = "ok"                     # ok | lost (the device went away) | failed (the bench failed there)
    finished: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class FleetBenchReport:
    devices: list[DeviceOutcome]
    results: list[dict]                    # bench rows, `machine` = the device name

    def to_dict(self) -> dict:
        return {"edgepack_bench": 1, "fleet": [asdict(d) for d in self.devices], "results": self.results}

    def rows_of(self, device: str) -> list[dict]:
        return [r for r in self.results if r["machine"] == device]

    def to_markdown(self) -> str:
        from edgepack.measure.bench_report import bench_markdown

        parts = []
        for d in self.devices:
            spec = d.spec
            what = ", ".join(str(v) for v in (spec.get("preset"), spec.get("arch"), spec.get("gpu")) if v)
            parts.append(f"## {d.name}" + (f" ({what})" if what else ""))
            if d.status != "ok":
                parts.append(f"**{d.status}**: {d.error or ''} — finished {len(d.finished)}, "
                             f"missing {', '.join(d.missing) or 'none'}")
            rows = self.rows_of(d.name)
            parts.append(bench_markdown(rows) if rows else "(no results)\n")
        return "\n".join(parts)

    def write(self, path: str | Path) -> Path:
        """.json (readable by `edgepack report`), .jsonl, .md or .csv; a chart beside .md."""
        from edgepack.atomic import write_text_atomic
        from edgepack.measure.bench_report import bench_csv

        path = Path(path)
        render = {".json": lambda: json.dumps(self.to_dict(), indent=2) + "\n",
                  ".jsonl": lambda: "".join(json.dumps(r) + "\n" for r in self.results),
                  ".md": self.to_markdown, ".csv": lambda: bench_csv(self.results)}
        if path.suffix not in render:
            raise BenchError(f"{path}: unknown report format; use .md, .csv, .json or .jsonl")
        written = write_text_atomic(path, render[path.suffix]())
        if path.suffix == ".md" and self.results:
            draw_chart(self, path.with_suffix(".png"))
        return written


def draw_chart(report: FleetBenchReport, path: Path) -> Path:
    """Generation speed of each file, one group of bars per device."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tg = [r for r in report.results if r["test"].startswith("tg")]
    devices = [d.name for d in report.devices]
    files = sorted({r["model_filename"] for r in tg})
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(devices) * max(1, len(files)) / 2), 4))
    width = 0.8 / max(1, len(files))
    for i, name in enumerate(files):
        speeds = [next((r["avg_ts"] for r in tg if r["machine"] == d and r["model_filename"] == name), 0) for d in devices]
        ax.bar([x + i * width for x in range(len(devices))], speeds, width, label=Path(name).stem)
    ax.set_xticks([x + width * (len(files) - 1) / 2 for x in range(len(devices))], devices)
    ax.set_ylabel("generation, tokens/s")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _into_shared(path: Path, shared: Path) -> Path:
    """The file in the shared directory (copied once, under its sha256, so two files of one name never clash)."""
    import shutil

    from edgepack.hashing import sha256_file

    if not shared.is_dir():
        raise BenchError(f"--shared-dir {shared} is not a directory")
    if path.resolve().parent == shared.resolve():
        return path.resolve()
    target = shared.resolve() / sha256_file(path)[:16] / path.name
    if not target.is_file() or target.stat().st_size != path.stat().st_size:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".partial")
        shutil.copyfile(path, tmp)
        tmp.replace(target)
    return target


def _is_device_loss(exc: Exception) -> bool:
    ray = import_ray()
    lost = (ray.exceptions.NodeDiedError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError,
            ray.exceptions.TaskUnschedulableError, ray.exceptions.TaskCancelledError)
    return isinstance(exc, lost)


def fleet_bench(paths: list[str | Path], address: str, *, devices: str | None = None, settings: dict | None = None,
                shared_dir: str | Path | None = None, on_result: Callable[[dict], None] | None = None,
                poll_seconds: float = 1.0) -> FleetBenchReport:
    """Bench every GGUF of `paths` on every device matching `devices` (default: all) of the fleet at `address`.

    `settings` are bench_sweep's keyword arguments. Files go through Ray's object store, or, with
    `shared_dir` (a directory every device mounts at the same path), are copied there once and
    read in place. `on_result` sees each finished (device, file).
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from edgepack.measure.bench import resolve_models

    models = resolve_models(list(paths))  # bad paths fail before anything is sent
    connect(address)
    ray = import_ray()
    chosen = select_devices(devices)
    if shared_dir is not None:
        shipped = [(path.name, quant, str(_into_shared(path, Path(shared_dir)))) for path, quant in models]
    else:
        shipped = [(path.name, quant, ray.put(path.read_bytes())) for path, quant in models]  # once per file
    outcomes = {d.name: DeviceOutcome(d.name, d.spec.to_dict()) for d in chosen}
    pending: dict = {}
    for d in chosen:
        info = {"name": d.name, "node_id": d.node_id} | d.spec.to_dict()
        for name, quant, ref in shipped:
            task = remote(bench_file).options(
                resources={device_resource(d.name): 1.0},  # one bench at a time on a device
                scheduling_strategy=NodeAffinitySchedulingStrategy(d.node_id, soft=False),
            ).remote(info, name, quant, ref, settings or {})
            pending[task] = (d, name)
    results: list[dict] = []
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=poll_seconds)
        for task in ready:
            device, name = pending.pop(task)
            outcome = outcomes[device.name]
            try:
                done = ray.get(task)
            except Exception as exc:  # Ray wraps what happened there; sort device loss from a failed bench
                outcome.missing.append(name)
                if _is_device_loss(exc):
                    outcome.status, outcome.error = "lost", f"{device.name} disconnected"
                else:
                    outcome.status = "failed" if outcome.status == "ok" else outcome.status
                    outcome.error = str(getattr(exc, "cause", None) or exc).splitlines()[0]
                continue
            results += done["rows"]
            outcome.finished.append(name)
            if on_result:
                on_result(done)
        if not ready:  # nothing came back for a while: give up on the work of devices that are gone
            for task, (device, name) in list(pending.items()):
                if not node_alive(device.node_id):
                    ray.cancel(task, force=True)
                    pending.pop(task)
                    outcome = outcomes[device.name]
                    outcome.missing.append(name)
                    outcome.status, outcome.error = "lost", f"{device.name} disconnected"
    order = {name: i for i, (name, _, _) in enumerate(shipped)}
    results.sort(key=lambda r: (r["machine"], order.get(r["model_filename"], 0)))
    return FleetBenchReport(devices=list(outcomes.values()), results=results)


__all__ = ["DeviceOutcome", "FleetBenchReport", "fleet_bench"]
