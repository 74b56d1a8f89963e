"""Stage: measure speed. Prompt and generation tokens/s, time to first token, sweeps and tuning.

The engine follows llama-bench's method so the two agree: random tokens (BOS first), one
warm-up run, then `repetitions` timed runs with the KV cache cleared before each; prompt
processing (pp) decodes n_prompt tokens in n_batch chunks, generation (tg) decodes n_gen
single tokens from an empty cache. Python stays out of the per-token loop's work: llama_decode
on prepared batches through llama.cpp's C API, no logits read or copied.
Results use llama-bench's field names (model_size, n_threads, n_gpu_layers, avg_ts, stddev_ts...)
plus the machine profile, so results from many devices merge into one report.
"""

from __future__ import annotations

import csv
import ctypes
import io
import json
import random
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack import progress
from edgepack.errors import BenchError
from edgepack.runtime.llama import loaded_model, new_context


@dataclass
class SpeedResult:
    model: str
    model_type: str
    model_size: int
    model_n_params: int
    n_prompt: int
    n_gen: int
    repetitions: int
    n_threads: int
    n_gpu_layers: int
    n_batch: int
    n_ubatch: int
    n_parallel: int
    flash_attn: bool | None
    pp_tps: float | None          # prompt tokens per second (mean over repetitions)
    pp_tps_sd: float | None
    tg_tps: float | None          # generated tokens per second, all sequences together
    tg_tps_sd: float | None
    ttft_ms: float | None         # prompt of n_prompt tokens + the first generated token
    ttft_ms_sd: float | None
    pp_samples_ns: list[int] = field(default_factory=list)
    tg_samples_ns: list[int] = field(default_factory=list)
    ttft_samples_ns: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


# ---------------------------------------------------------------- the engine (llama.cpp C API)

def _model_facts(model) -> tuple[str, int, int, int]:
    import llama_cpp

    buf = ctypes.create_string_buffer(256)
    llama_cpp.llama_model_desc(model, buf, len(buf))
    return (buf.value.decode(errors="replace"), int(llama_cpp.llama_model_size(model)),
            int(llama_cpp.llama_model_n_params(model)), int(llama_cpp.llama_model_n_layer(model)))


class _Runner:
    """Prepared token arrays and batches for one context; each method times one run."""

    def __init__(self, model, ctx, *, n_batch: int, n_parallel: int, seed: int = 1234):
        import llama_cpp

        self.lib = llama_cpp
        self.ctx = ctx
        self.mem = llama_cpp.llama_get_memory(ctx)
        vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        self.bos = llama_cpp.llama_vocab_bos(vocab) if llama_cpp.llama_vocab_get_add_bos(vocab) else None
        self.rng = random.Random(seed)
        self.n_batch = n_batch
        self.n_parallel = n_parallel
        self.batch = llama_cpp.llama_batch_init(max(n_parallel, 1), 0, max(n_parallel, 1))
        for i in range(n_parallel):
            self.batch.n_seq_id[i] = 1
            self.batch.seq_id[i][0] = i
            self.batch.logits[i] = 1

    def close(self) -> None:
        self.lib.llama_batch_free(self.batch)

    def clear(self) -> None:
        self.lib.llama_memory_clear(self.mem, False)

    def _decode(self, batch) -> None:
        if self.lib.llama_decode(self.ctx, batch) != 0:
            raise BenchError("llama_decode failed (context full or out of memory)")

    def prompt(self, n_prompt: int) -> int:
        """Decode n_prompt random tokens in n_batch chunks; nanoseconds."""
        tokens = [self.rng.randrange(self.n_vocab) for _ in range(n_prompt)]
        if self.bos is not None and tokens:
            tokens[0] = self.bos
        array = (ctypes.c_int32 * max(n_prompt, 1))(*tokens)
        chunks = [(i, min(self.n_batch, n_prompt - i)) for i in range(0, n_prompt, self.n_batch)]
        batches = [self.lib.llama_batch_get_one(ctypes.cast(ctypes.byref(array, 4 * i), ctypes.POINTER(ctypes.c_int32)), n)
                   for i, n in chunks]
        start = time.perf_counter_ns()
        for b in batches:
            self._decode(b)
        self.lib.llama_synchronize(self.ctx)
        return time.perf_counter_ns() - start

    def generate(self, n_gen: int) -> int:
        """n_gen decode steps of one token per sequence, continuing each sequence; nanoseconds."""
        lib, ctx, batch, n_par = self.lib, self.ctx, self.batch, self.n_parallel
        pos = [lib.llama_memory_seq_pos_max(self.mem, s) + 1 for s in range(n_par)]
        draws = [[self.rng.randrange(self.n_vocab) for _ in range(n_par)] for _ in range(n_gen)]
        if self.bos is not None and n_gen:
            draws[0] = [self.bos] * n_par
        batch.n_tokens = n_par
        start = time.perf_counter_ns()
        for step in draws:
            for s in range(n_par):
                batch.token[s] = step[s]
                batch.pos[s] = pos[s]
                pos[s] += 1
            if lib.llama_decode(ctx, batch) != 0:
                raise BenchError("llama_decode failed (context full or out of memory)")
            lib.llama_synchronize(ctx)
        return time.perf_counter_ns() - start


def _check_gpu_layers(model_path: Path, n_gpu_layers: int) -> int:
    from edgepack.gguf_file import read_gguf

    n_layers = read_gguf(model_path).n_layers or 0
    if n_gpu_layers < 0 or n_gpu_layers > n_layers + 1:
        raise BenchError(f"n_gpu_layers {n_gpu_layers} is more than {model_path.name} has: {n_layers} layers "
                         f"(use 0 to {n_layers}, or 'all')")
    return n_layers


def _measure(model, model_path: Path, facts, *, n_prompt: int, n_gen: int, repetitions: int, n_threads: int,
             n_gpu_layers: int, n_batch: int, n_parallel: int, flash_attn: bool | None,
             warmup: bool = True) -> SpeedResult:
    if n_prompt < 0 or n_gen < 0 or repetitions < 1 or n_batch < 1 or n_parallel < 1 or n_threads < 1:
        raise BenchError("n_prompt and n_gen must be >= 0; repetitions, n_batch, n_parallel and threads >= 1")
    n_ctx = max(n_prompt + n_parallel * max(n_gen, 1) + n_parallel, 64)
    pp, tg, ttft = [], [], []
    with new_context(model, n_ctx=n_ctx, n_batch=max(n_batch, n_parallel), n_threads=n_threads, n_parallel=n_parallel,
                  flash_attn=flash_attn) as ctx:
        runner = _Runner(model, ctx, n_batch=n_batch, n_parallel=1 if n_parallel == 1 else n_parallel)
        try:
            if warmup:
                if n_prompt:
                    runner.prompt(n_prompt)
                    runner.clear()
                if n_gen:
                    runner.generate(1)
                    runner.clear()
            for _ in range(repetitions):
                if n_prompt:
                    runner.clear()
                    t_pp = runner.prompt(n_prompt)
                    pp.append(t_pp)
                    if n_gen and n_parallel == 1:
                        ttft.append(t_pp + runner.generate(1))
                if n_gen:
                    runner.clear()
                    tg.append(runner.generate(n_gen))
        finally:
            runner.close()
    pp_tps = [n_prompt * 1e9 / t for t in pp]
    tg_tps = [n_gen * n_parallel * 1e9 / t for t in tg]
    pp_m, pp_sd = _mean_sd(pp_tps)
    tg_m, tg_sd = _mean_sd(tg_tps)
    tt_m, tt_sd = _mean_sd([t / 1e6 for t in ttft])
    desc, size, n_params, _ = facts
    return SpeedResult(
        model=str(model_path), model_type=desc, model_size=size, model_n_params=n_params, n_prompt=n_prompt,
        n_gen=n_gen, repetitions=repetitions, n_threads=n_threads, n_gpu_layers=n_gpu_layers, n_batch=n_batch,
        n_ubatch=min(n_batch, 512), n_parallel=n_parallel, flash_attn=flash_attn,
        pp_tps=_r(pp_m), pp_tps_sd=_r(pp_sd), tg_tps=_r(tg_m), tg_tps_sd=_r(tg_sd), ttft_ms=_r(tt_m, 3),
        ttft_ms_sd=_r(tt_sd, 3), pp_samples_ns=pp, tg_samples_ns=tg, ttft_samples_ns=ttft)


def _r(value: float | None, digits: int = 2) -> float | None:
    return round(value, digits) if value is not None else None


def default_threads() -> int:
    from edgepack.machine.profile import this_machine

    return this_machine(measure_bandwidth=False).cpu.threads_for_inference()


def measure_speed(model_path: str | Path, *, n_prompt: int = 512, n_gen: int = 128, repetitions: int = 3,
                  n_threads: int | None = None, n_gpu_layers: int = 0, n_batch: int = 512, n_parallel: int = 1,
                  flash_attn: bool | None = None) -> SpeedResult:
    """Prompt (pp) and generation (tg) tokens/s with mean and sd over repetitions, and time to
    first token, for one GGUF and one setting. n_parallel > 1 generates that many sequences at
    once (tg_tps is their sum)."""
    from edgepack.gguf_file import check_gguf_header
    from edgepack.runtime.llama import set_llama_verbose, is_verbose

    model_path = Path(model_path)
    check_gguf_header(model_path)
    _check_gpu_layers(model_path, n_gpu_layers)
    set_llama_verbose(is_verbose())
    with loaded_model(model_path, n_gpu_layers) as model:
        return _measure(model, model_path, _model_facts(model), n_prompt=n_prompt, n_gen=n_gen,
                        repetitions=repetitions, n_threads=n_threads or default_threads(), n_gpu_layers=n_gpu_layers,
                        n_batch=n_batch, n_parallel=n_parallel, flash_attn=flash_attn)


# ---------------------------------------------------------------- sweeps and reports

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


def parse_list(value: str | None, *, n_layers: int | None = None, name: str = "value") -> list[int] | None:
    """"1,2,4" -> [1, 2, 4]; for n_gpu_layers "all" is n_layers + 1 (the output layer too)."""
    if value is None:
        return None
    out = []
    for part in str(value).split(","):
        part = part.strip().lower()
        if part in ("all", "max") and n_layers is not None:
            out.append(n_layers + 1)
        elif part.isdigit():
            out.append(int(part))
        else:
            raise BenchError(f"{name} {part!r} is not a number" + (" or 'all'" if n_layers is not None else ""))
    return out


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


# ---------------------------------------------------------------- --tune

@dataclass
class TuningResult:
    bundle: str
    quant: str
    file: str
    n_threads: int
    n_gpu_layers: int
    n_batch: int
    pp_tps: float | None
    tg_tps: float | None
    request_seconds: float      # n_prompt / pp + n_gen / tg: what one typical request takes
    candidates: list[dict]
    modelfiles: list[str]

    def modelfile_parameters(self) -> dict:
        return {"num_thread": self.n_threads, "num_gpu": self.n_gpu_layers, "num_batch": self.n_batch}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["modelfile_parameters"] = self.modelfile_parameters()
        return d


def tune_candidates(machine, n_layers: int) -> tuple[list[int], list[int]]:
    """Threads: 1, half, all physical performance cores and, with SMT, all logical ones.
    GPU layers: 0 without a GPU offload build; else 0, half, and all."""
    cores = machine.cpu.threads_for_inference()
    threads = sorted({max(1, cores // 2), cores, 1} | ({machine.cpu.logical_cores}
                     if machine.cpu.logical_cores and machine.cpu.logical_cores > cores else set()))
    ngls = [0]
    if machine.gpus and machine.llama.gpu_offload:
        ngls = sorted({0, n_layers // 2, n_layers + 1})
    return threads, ngls


def tune_bundle(bundle_dir: str | Path, *, quant: str | None = None, n_prompt: int = 128, n_gen: int = 32,
                repetitions: int = 2, threads: list[int] | None = None, n_gpu_layers: list[int | str] | None = None,
                batches: list[int] | None = None) -> TuningResult:
    """Find the fastest threads / n_gpu_layers / n_batch for this machine on the bundle's default
    quant (or `quant`) and write them into the bundle (bundle/record.py, under its lock): the
    manifest's `tuning` section and a PARAMETER num_thread / num_gpu / num_batch in every Modelfile.
    The GGUF is checked against the manifest's sha256 first; a read-only bundle is refused first."""
    from edgepack.bundle import TunedSettings, Tuning, load_manifest
    from edgepack.bundle.integrity import check_listed_file
    from edgepack.bundle.record import check_writable, record_tuning
    from edgepack.gguf_file import read_gguf
    from edgepack.machine.profile import this_machine

    bundle_dir = Path(bundle_dir)
    manifest = load_manifest(bundle_dir)
    check_writable(bundle_dir, "bench --tune")
    if not manifest.files:
        raise BenchError(f"{bundle_dir}: the manifest lists no GGUF files")
    if quant:
        entry = manifest.file(quant.upper())
        if entry is None:
            raise BenchError(f"{bundle_dir} has no {quant}; it has {', '.join(f.quant for f in manifest.files)}")
    else:
        entry = manifest.file("Q4_K_M") or manifest.files[0]
    path = check_listed_file(bundle_dir, entry)  # a tampered GGUF is refused before it is measured
    machine = this_machine()
    n_layers = read_gguf(path).n_layers or 0
    cand_threads, cand_ngl = tune_candidates(machine, n_layers)
    threads = threads or cand_threads
    n_gpu_layers = ([parse_list(str(n), n_layers=n_layers, name="n_gpu_layers")[0] for n in n_gpu_layers]
                    if n_gpu_layers else cand_ngl)
    batches = batches or [512]
    for ngl in n_gpu_layers:
        _check_gpu_layers(path, ngl)
    candidates = []
    with progress.step(f"Tuning {entry.quant}", total=len(threads) * len(n_gpu_layers) * len(batches)) as bar:
        for ngl in n_gpu_layers:
            with loaded_model(path, ngl) as model:
                facts = _model_facts(model)
                for t in threads:
                    for b in batches:
                        r = _measure(model, path, facts, n_prompt=n_prompt, n_gen=n_gen, repetitions=repetitions,
                                     n_threads=t, n_gpu_layers=ngl, n_batch=b, n_parallel=1, flash_attn=None)
                        seconds = n_prompt / r.pp_tps + n_gen / r.tg_tps
                        candidates.append({"n_threads": t, "n_gpu_layers": ngl, "n_batch": b, "pp_tps": r.pp_tps,
                                           "tg_tps": r.tg_tps, "request_seconds": round(seconds, 4)})
                        bar.advance()
    best = min(candidates, key=lambda c: c["request_seconds"])
    result = TuningResult(bundle=str(bundle_dir), quant=entry.quant, file=entry.file, n_threads=best["n_threads"],
                          n_gpu_layers=best["n_gpu_layers"], n_batch=best["n_batch"], pp_tps=best["pp_tps"],
                          tg_tps=best["tg_tps"], request_seconds=best["request_seconds"], candidates=candidates,
                          modelfiles=[])
    params = result.modelfile_parameters()
    tuning = Tuning(
        quant=entry.quant, sha256=entry.sha256, machine=machine.summary(), modelfile_parameters=params,
        settings=TunedSettings(n_threads=result.n_threads, n_gpu_layers=result.n_gpu_layers, n_batch=result.n_batch),
        method={"n_prompt": n_prompt, "n_gen": n_gen, "repetitions": repetitions,
                "score": "seconds for one request of n_prompt + n_gen tokens"},
        candidates=candidates, tuned_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    result.modelfiles = record_tuning(bundle_dir, tuning, params)
    return result


# ---------------------------------------------------------------- peak memory

# Runs in a fresh interpreter so its peak RSS is the model's and the context's, not this process's.
_PEAK_MEMORY_CHILD = r"""
import ctypes, json, sys
import llama_cpp

def status(key):  # VmHWM/VmRSS belong to this process image (ru_maxrss would inherit the parent's peak)
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

path, n_ctx, n_gpu_layers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
quiet = llama_cpp.llama_log_callback(lambda *a: None)  # keep a reference: llama.cpp holds the pointer
llama_cpp.llama_log_set(quiet, ctypes.c_void_p(0))
llama_cpp.llama_backend_init()
base = status("VmRSS")
mp = llama_cpp.llama_model_default_params(); mp.n_gpu_layers = n_gpu_layers
model = llama_cpp.llama_model_load_from_file(path.encode(), mp)
cp = llama_cpp.llama_context_default_params()
cp.n_ctx = n_ctx; cp.n_batch = 512; cp.n_ubatch = 512; cp.flash_attn_type = 1
ctx = llama_cpp.llama_init_from_model(model, cp)
vocab = llama_cpp.llama_model_get_vocab(model)
n = min(512, n_ctx - 8)
toks = (ctypes.c_int32 * n)(*[(i * 7919) % llama_cpp.llama_vocab_n_tokens(vocab) for i in range(n)])
assert llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(toks, n)) == 0
one = (ctypes.c_int32 * 1)(1)
for _ in range(4):
    assert llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(one, 1)) == 0
vram = None
try:
    import pynvml
    pynvml.nvmlInit()
    info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0))
    vram = int(info.used)
except Exception:
    pass
print(json.dumps({"base": base, "peak": status("VmHWM"), "vram_used": vram}))
"""


def measure_peak_memory(path: str | Path, n_ctx: int, n_gpu_layers: int = 0) -> dict:
    """Peak RSS (and used VRAM with NVML) of a process that loads `path` with `n_ctx` and decodes a batch.

    Returns {"base": RSS before the model, "peak": peak RSS, "vram_used": bytes or None}.
    """
    done = subprocess.run([sys.executable, "-c", _PEAK_MEMORY_CHILD, str(path), str(n_ctx), str(n_gpu_layers)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])
