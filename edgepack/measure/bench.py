"""Stage: benchmark sweeps. Every model x setting through the speed engine (speed.py), with
optional energy (energy.py) and sustained-speed (sustained.py) runs, under the conditions that
change the numbers (conditions.py).

Results use llama-bench's field names (model_size, n_threads, n_gpu_layers, avg_ts, stddev_ts...)
plus the machine profile, so results from many devices merge into one report.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack import progress
from edgepack.errors import BenchError
from edgepack.measure.conditions import ConditionsRecorder
from edgepack.measure.energy import EnergyUnavailable, energy_figures, idle_watts, open_meter
from edgepack.measure.speed import (  # noqa: F401  (re-exported: the engine's names were public here)
    SpeedResult, _check_gpu_layers, _mean_sd, _measure, _model_facts, default_threads, measure_speed, open_runner,
    parse_list,
)
from edgepack.measure.sustained import run_sustained
from edgepack.measure.tune import TuningResult, tune_bundle, tune_candidates  # noqa: F401  (re-exported)
from edgepack.runtime.llama import loaded_model

BENCH_FIELDS = (
    "build_commit", "cpu_info", "gpu_info", "backends", "model_filename", "model_type", "model_size",
    "model_n_params", "n_batch", "n_ubatch", "n_threads", "type_k", "type_v", "n_gpu_layers", "flash_attn",
    "n_prompt", "n_gen", "n_depth", "test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts",
    # edgepack's additions
    "test", "n_parallel", "ttft_ms", "machine", "quant",
    "joules_per_token", "avg_watts", "idle_watts", "tokens_per_joule", "burst_ts", "sustained_ts", "slowdown_after_s",
    "throttling", "busy",
)


@dataclass
class BenchRecord:
    """One test (pp or tg) of one setting, under llama-bench's field names."""

    build_commit: str
    cpu_info: str | None
    gpu_info: str | None
    backends: str
    model_filename: str
    model_type: str
    model_size: int
    model_n_params: int
    n_batch: int
    n_ubatch: int
    n_threads: int
    type_k: str
    type_v: str
    n_gpu_layers: int
    flash_attn: bool | None
    n_prompt: int
    n_gen: int
    n_depth: int
    test_time: str
    avg_ns: int
    stddev_ns: int
    avg_ts: float
    stddev_ts: float
    samples_ns: list[int]
    samples_ts: list[float]
    test: str                  # "pp512", "tg128", "tg128x4" (4 parallel sequences)
    n_parallel: int
    ttft_ms: float | None
    machine: str
    quant: str | None
    # --energy: net of the idle baseline (energy.py)
    joules_per_token: float | None = None
    avg_watts: float | None = None
    idle_watts: float | None = None
    tokens_per_joule: float | None = None
    energy_sources: list[str] | None = None
    # --sustained: a "tg32@120s" record (sustained.py)
    burst_ts: float | None = None
    sustained_ts: float | None = None
    slowdown_after_s: float | None = None
    throttling: str | None = None
    sustained_windows: list[dict] | None = None
    # what changes the numbers (conditions.py)
    conditions: dict | None = None
    busy: bool | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BenchReport:
    machine: dict              # the full machine profile
    results: list[BenchRecord]
    notes: list[str] = field(default_factory=list)  # no energy sensor, busy machine, battery...

    def to_dict(self) -> dict:
        return {"edgepack_bench": 1, "machine": self.machine, "results": [r.to_dict() for r in self.results],
                "notes": self.notes}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_jsonl(self) -> str:
        """One record a line, each carrying the machine summary, so files from many devices concatenate."""
        summary = _machine_summary(self.machine)
        return "".join(json.dumps({**r.to_dict(), "machine_profile": summary}) + "\n" for r in self.results)

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(BENCH_FIELDS)
        for r in self.results:
            d = r.to_dict()
            writer.writerow(["" if d[k] is None else d[k] for k in BENCH_FIELDS])
        return buf.getvalue()

    def to_markdown(self) -> str:
        head = ("| model | quant | size | params | backend | threads | ngl | n_batch | fa | test | t/s | ttft ms "
                "| J/token | W | burst t/s | slowdown after |")
        lines = [f"machine: {self.machine.get('name')} ({(self.machine.get('cpu') or {}).get('model')})", "",
                 head, "|" + "|".join("---" if i < 9 else "--:" for i in range(head.count("|") - 1)) + "|"]

        def num(value, fmt: str) -> str:
            return format(value, fmt) if value is not None else ""

        for r in self.results:
            fa = "auto" if r.flash_attn is None else ("on" if r.flash_attn else "off")
            slowdown = (f"{r.slowdown_after_s:.0f} s" if r.slowdown_after_s is not None
                        else ("never" if r.sustained_ts is not None else ""))
            lines.append(f"| {r.model_type} | {r.quant or ''} | {r.model_size / 2**20:.2f} MiB | "
                         f"{r.model_n_params / 1e6:.2f} M | {r.backends} | {r.n_threads} | {r.n_gpu_layers} | "
                         f"{r.n_batch} | {fa} | {r.test} | {r.avg_ts:.2f} ± {r.stddev_ts:.2f} | {num(r.ttft_ms, '.1f')} | "
                         f"{num(r.joules_per_token, '.4g')} | {num(r.avg_watts, '.1f')} | {num(r.burst_ts, '.2f')} | "
                         f"{slowdown} |")
        lines += [""] + [f"- {n}" for n in self.notes] + [f"- {r.quant or r.model_type} {r.test}: {r.throttling}"
                                                           for r in self.results if r.throttling]
        return "\n".join(lines).rstrip() + "\n"

    def write(self, path: str | Path) -> Path:
        """Format by extension: .md, .csv, .json, .jsonl."""
        from edgepack.atomic import write_text_atomic

        path = Path(path)
        render = {".md": self.to_markdown, ".csv": self.to_csv, ".json": self.to_json, ".jsonl": self.to_jsonl}
        if path.suffix not in render:
            raise BenchError(f"{path}: unknown report format; use .md, .csv, .json or .jsonl")
        return write_text_atomic(path, render[path.suffix]())


def _machine_summary(machine: dict) -> dict:
    cpu, mem = machine.get("cpu") or {}, machine.get("memory") or {}
    gpus = machine.get("gpus") or []
    return {"machine": machine.get("name"), "os": machine.get("os"), "cpu_info": cpu.get("model"),
            "cores": cpu.get("physical_cores"), "memory_total_bytes": mem.get("total_bytes"),
            "gpu_info": gpus[0]["name"] if gpus else None,
            "vram_total_bytes": gpus[0].get("memory_total_bytes") if gpus else None}


def load_bench_results(path: str | Path) -> list[dict]:
    """Records from an edgepack .json/.jsonl report or a llama-bench `-o json` array."""
    text = Path(path).read_text()
    if str(path).endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if isinstance(data, list):
        return data
    summary = _machine_summary(data.get("machine") or {})
    return [{**r, "machine_profile": summary} for r in data.get("results", [])]


def _records(result: SpeedResult, *, machine, build_commit: str, backends: str, quant: str | None,
             conditions=None, idle: float | None = None, sources: list[str] | None = None) -> list[BenchRecord]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = []
    tests = [("pp", result.n_prompt, 0, result.pp_samples_ns, result.n_prompt, result.pp_joules),
             ("tg", 0, result.n_gen, result.tg_samples_ns, result.n_gen * result.n_parallel, result.tg_joules)]
    for kind, n_prompt, n_gen, samples, tokens, joules in tests:
        if not samples:
            continue
        ts = [tokens * 1e9 / s for s in samples]
        name = f"{kind}{n_prompt or n_gen}" + (f"x{result.n_parallel}" if kind == "tg" and result.n_parallel > 1 else "")
        avg_ts, sd_ts = _mean_sd(ts)
        avg_ns, sd_ns = _mean_sd([float(s) for s in samples])
        out.append(BenchRecord(
            build_commit=build_commit, cpu_info=machine.cpu.model, gpu_info=machine.gpu.name if machine.gpu else None,
            backends=backends, model_filename=result.model, model_type=result.model_type, model_size=result.model_size,
            model_n_params=result.model_n_params, n_batch=result.n_batch, n_ubatch=result.n_ubatch,
            n_threads=result.n_threads, type_k="f16", type_v="f16", n_gpu_layers=result.n_gpu_layers,
            flash_attn=result.flash_attn, n_prompt=n_prompt, n_gen=n_gen, n_depth=0, test_time=now,
            avg_ns=int(avg_ns), stddev_ns=int(sd_ns), avg_ts=round(avg_ts, 6), stddev_ts=round(sd_ts, 6),
            samples_ns=list(samples), samples_ts=[round(x, 6) for x in ts], test=name, n_parallel=result.n_parallel,
            ttft_ms=result.ttft_ms if kind == "pp" and result.n_gen else None, machine=machine.name, quant=quant,
            conditions=conditions.to_dict() if conditions else None, busy=conditions.busy if conditions else None))
        if joules and idle is not None:
            e = energy_figures(name, tokens * len(samples), sum(samples) / 1e9, sum(joules), idle, sources or [])
            r = out[-1]
            r.joules_per_token, r.avg_watts, r.idle_watts = e.joules_per_token, e.avg_watts, e.idle_watts
            r.tokens_per_joule, r.energy_sources = e.tokens_per_joule, e.sources
    return out


def _sustained_record(s, *, like: BenchRecord, n_gen: int, seconds: float, conditions) -> BenchRecord:
    """A "tg32@120s" record: avg_ts is the sustained speed, burst_ts the first windows'."""
    return BenchRecord(**{**like.to_dict(), "n_prompt": 0, "n_gen": n_gen, "test": f"tg{n_gen}@{seconds:g}s",
                          "avg_ts": s.sustained_tps, "stddev_ts": 0.0, "avg_ns": int(n_gen * 1e9 / s.sustained_tps),
                          "stddev_ns": 0, "samples_ns": [], "samples_ts": [w["tps"] for w in s.windows],
                          "ttft_ms": None, "burst_ts": s.burst_tps, "sustained_ts": s.sustained_tps,
                          "slowdown_after_s": s.slowdown_after_s, "throttling": s.throttling,
                          "sustained_windows": s.windows, "joules_per_token": None, "avg_watts": None,
                          "idle_watts": None, "tokens_per_joule": None, "energy_sources": None,
                          "conditions": conditions.to_dict(), "busy": conditions.busy})


def resolve_models(paths: list[str | Path]) -> list[tuple[Path, str | None]]:
    """GGUF files and bundle directories (every file the manifest lists) to (path, quant)."""
    from edgepack.bundle import load_manifest
    from edgepack.gguf_file import check_gguf_header

    models: list[tuple[Path, str | None]] = []
    for p in map(Path, paths):
        if p.is_dir():
            manifest = load_manifest(p)
            models += [(p / f.file, f.quant) for f in manifest.files]
        else:
            check_gguf_header(p)
            models.append((p, None))
    return models


def bench_sweep(paths: list[str | Path], *, threads: list[int] | None = None, n_gpu_layers: list[int | str] | None = None,
                batches: list[int] | None = None, parallel: list[int] | None = None, n_prompt: int = 512,
                n_gen: int = 128, repetitions: int = 3, flash_attn: bool | None = None, energy: bool = False,
                idle_seconds: float = 3.0, sustained: float | None = None, cooldown: float = 0.0,
                power_root: str | Path = "/") -> BenchReport:
    """Every model x n_gpu_layers x threads x batch x parallel setting, llama-bench style.

    `energy`: joules per token from the machine's power sensors, net of an idle baseline measured
    first for `idle_seconds` (a machine without a sensor gets a note saying so, and no figure).
    `sustained`: after each single-sequence setting, generate for that many seconds and report
    burst and sustained speed. `cooldown`: seconds of rest before every setting but the first
    (llama-bench's --delay). Each record carries the conditions it ran under."""
    from edgepack.runtime.llama import backends as ggml_backends, is_verbose, set_llama_verbose
    from edgepack.machine.profile import this_machine
    from edgepack.runtime.toolchain import LLAMA_CPP_PYTHON_VERSION

    set_llama_verbose(is_verbose())
    machine = this_machine()
    models = resolve_models(paths)
    threads = threads or [machine.cpu.threads_for_inference()]
    batches = batches or [512]
    parallel = parallel or [1]
    backend = ",".join(ggml_backends())
    commit = _build_commit() or f"llama-cpp-python {LLAMA_CPP_PYTHON_VERSION}"
    results: list[BenchRecord] = []
    notes: list[str] = []
    meter, idle = None, None
    if energy:
        try:
            meter = open_meter(power_root)
        except EnergyUnavailable as exc:
            notes.append(f"energy: {exc}")
        else:
            with progress.step(f"Idle power baseline ({idle_seconds:g} s)"):
                idle = idle_watts(meter, idle_seconds)
    plan = []
    for path, quant in models:
        from edgepack.gguf_file import read_gguf

        n_layers = read_gguf(path).n_layers or 0
        ngls = [parse_list(str(n), n_layers=n_layers, name="n_gpu_layers")[0] for n in (n_gpu_layers or [0])]
        for ngl in ngls:
            _check_gpu_layers(path, ngl)
        plan.append((path, quant, ngls))
    total = sum(len(ngls) for _, _, ngls in plan) * len(threads) * len(batches) * len(parallel)
    first = True
    try:
        with progress.step("Benchmarking", total=total) as bar:
            for path, quant, ngls in plan:
                for ngl in ngls:
                    with loaded_model(path, ngl) as model:
                        facts = _model_facts(model)
                        for t, b, par in itertools.product(threads, batches, parallel):
                            if not first and cooldown > 0:
                                time.sleep(cooldown)
                            first = False
                            recorder = ConditionsRecorder()
                            r = _measure(model, path, facts, n_prompt=n_prompt if par == 1 else 0, n_gen=n_gen,
                                         repetitions=repetitions, n_threads=t, n_gpu_layers=ngl, n_batch=b,
                                         n_parallel=par, flash_attn=flash_attn, meter=meter)
                            cond = recorder.finish()
                            records = _records(r, machine=machine, build_commit=commit, backends=backend,
                                               quant=quant, conditions=cond, idle=idle,
                                               sources=meter.sources if meter else None)
                            results += records
                            if sustained and par == 1 and records:
                                recorder = ConditionsRecorder()
                                window = min(n_gen, 32) or 32
                                s = run_sustained(lambda: open_runner(model, n_ctx=max(window + 8, 64), n_batch=b,
                                                                      n_threads=t, flash_attn=flash_attn),
                                                  seconds=sustained, n_gen_window=window, use_gpu=ngl > 0)
                                results.append(_sustained_record(s, like=records[-1], n_gen=window, seconds=sustained,
                                                                 conditions=recorder.finish()))
                            notes += [f"{Path(path).name} t={t}: {n}" for n in cond.notes if n not in notes]
                            bar.advance()
    finally:
        if meter is not None:
            meter.close()
    return BenchReport(machine=machine.to_dict(), results=results, notes=notes)


def _build_commit() -> str | None:
    from edgepack.runtime.toolchain import find_toolchain

    try:
        toolchain = find_toolchain()
        return getattr(toolchain, "llama_cpp_commit", None) if toolchain else None
    except Exception:  # no unpacked toolchain: the version string stands in
        return None
