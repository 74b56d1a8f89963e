"""`bench --tune`: the fastest threads / GPU layers / batch for this machine, written into a bundle."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from edgepack import progress
from edgepack.errors import BenchError
from edgepack.measure.speed import _check_gpu_layers, _measure, _model_facts, parse_list
from edgepack.runtime.llama import loaded_model

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
