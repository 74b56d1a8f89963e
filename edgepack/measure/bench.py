"""Stage: benchmark sweeps. Every model x setting through the speed engine (speed.py), with
optional energy (energy.py) and sustained-speed (sustained.py) runs, under the conditions that
change the numbers (conditions.py).

Results use llama-bench's field names (model_size, n_threads, n_gpu_layers, avg_ts, stddev_ts...)
plus the machine profile, so results from many devices merge into one report.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack import progress
from edgepack.errors import BenchError
from edgepack.measure.speed import (  # noqa: F401  (re-exported: the engine's names were public here)
    SpeedResult, _check_gpu_layers, _mean_sd, _measure, _model_facts, default_threads, measure_speed, parse_list,
)
from edgepack.measure.tune import TuningResult, tune_bundle, tune_candidates  # noqa: F401  (re-exported)
from edgepack.runtime.llama import loaded_model

BENCH_FIELDS = (
    "build_commit", "cpu_info", "gpu_info", "backends", "model_filename", "model_type", "model_size",
    "model_n_params", "n_batch", "n_ubatch", "n_threads", "type_k", "type_v", "n_gpu_layers", "flash_attn",
    "n_prompt", "n_gen", "n_depth", "test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts",
    # edgepack's additions
    "test", "n_parallel", "ttft_ms", "machine", "quant",
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

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BenchReport:
    machine: dict              # the full machine profile
    results: list[BenchRecord]

    def to_dict(self) -> dict:
        return {"edgepack_bench": 1, "machine": self.machine, "results": [r.to_dict() for r in self.results]}

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
        head = "| model | quant | size | params | backend | threads | ngl | n_batch | fa | test | t/s | ttft ms |"
        lines = [f"machine: {self.machine.get('name')} ({(self.machine.get('cpu') or {}).get('model')})", "",
                 head, "|" + "|".join("---" if i < 9 else "--:" for i in range(head.count("|") - 1)) + "|"]
        for r in self.results:
            fa = "auto" if r.flash_attn is None else ("on" if r.flash_attn else "off")
            ttft = f"{r.ttft_ms:.1f}" if r.ttft_ms is not None else ""
            lines.append(f"| {r.model_type} | {r.quant or ''} | {r.model_size / 2**20:.2f} MiB | "
                         f"{r.model_n_params / 1e6:.2f} M | {r.backends} | {r.n_threads} | {r.n_gpu_layers} | "
                         f"{r.n_batch} | {fa} | {r.test} | {r.avg_ts:.2f} ± {r.stddev_ts:.2f} | {ttft} |")
        return "\n".join(lines) + "\n"

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


def _records(result: SpeedResult, *, machine, build_commit: str, backends: str, quant: str | None) -> list[BenchRecord]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = []
    tests = [("pp", result.n_prompt, 0, result.pp_samples_ns, result.n_prompt),
             ("tg", 0, result.n_gen, result.tg_samples_ns, result.n_gen * result.n_parallel)]
    for kind, n_prompt, n_gen, samples, tokens in tests:
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
            ttft_ms=result.ttft_ms if kind == "pp" and result.n_gen else None, machine=machine.name, quant=quant))
    return out


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
                n_gen: int = 128, repetitions: int = 3, flash_attn: bool | None = None) -> BenchReport:
    """Every model x n_gpu_layers x threads x batch x parallel setting, llama-bench style."""
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
    plan = []
    for path, quant in models:
        from edgepack.gguf_file import read_gguf

        n_layers = read_gguf(path).n_layers or 0
        ngls = [parse_list(str(n), n_layers=n_layers, name="n_gpu_layers")[0] for n in (n_gpu_layers or [0])]
        for ngl in ngls:
            _check_gpu_layers(path, ngl)
        plan.append((path, quant, ngls))
    total = sum(len(ngls) for _, _, ngls in plan) * len(threads) * len(batches) * len(parallel)
    with progress.step("Benchmarking", total=total) as bar:
        for path, quant, ngls in plan:
            for ngl in ngls:
                with loaded_model(path, ngl) as model:
                    facts = _model_facts(model)
                    for t in threads:
                        for b in batches:
                            for par in parallel:
                                r = _measure(model, path, facts, n_prompt=n_prompt if par == 1 else 0, n_gen=n_gen,
                                             repetitions=repetitions, n_threads=t, n_gpu_layers=ngl, n_batch=b,
                                             n_parallel=par, flash_attn=flash_attn)
                                results += _records(r, machine=machine, build_commit=commit, backends=backend,
                                                    quant=quant)
                                bar.advance()
    return BenchReport(machine=machine.to_dict(), results=results)


def _build_commit() -> str | None:
    from edgepack.runtime.toolchain import find_toolchain

    try:
        toolchain = find_toolchain()
        return getattr(toolchain, "llama_cpp_commit", None) if toolchain else None
    except Exception:  # no unpacked toolchain: the version string stands in
        return None


