"""Stage 3: what each quant costs against the 16-bit reference, for a bundle or a list of GGUFs:
perplexity and KL divergence (llama-perplexity's method, see scoring.py and refcache.py), task
accuracy, speed and peak memory, gathered into one report whose rows are saved as they finish.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack import progress
from edgepack.errors import EvalError
from edgepack.hashing import sha256_file
from edgepack.measure.refcache import divergence, reference_log_probs
from edgepack.measure.scoring import EvalSettings

DEFAULT_MEMORY_CONTEXTS = (512, 1024, 2048)
TASK_ENGINE = ("edgepack's zero-shot log-likelihood (sum over the answer's tokens, no length normalisation; "
               "not comparable with published scores)")

@dataclass
class EvalPlan:
    """What to measure; the same plan gives the same rows, so an interrupted run resumes."""

    text: str | None = None  # a file; None: the default text
    settings: EvalSettings = field(default_factory=EvalSettings)
    tasks: tuple[str, ...] = ()
    speed: bool = True
    parallel: tuple[int, ...] = (1,)
    n_prompt: int = 512
    n_gen: int = 128
    repetitions: int = 3
    memory_contexts: tuple[int, ...] = DEFAULT_MEMORY_CONTEXTS
    budget: str | None = None
    max_kld: float | None = None
    lm_eval: tuple[str, ...] = ()        # lm-evaluation-harness tasks, run against llama-server (lm_eval_runner.py)
    lm_eval_limit: int | None = None
    lm_eval_include: str | None = None   # a directory of the user's own lm-eval task YAML files

def _models_to_evaluate(targets: list[str | Path], reference: str | Path | None):
    """(model name, reference path, [(quant, file path, size, bpw)], bundle dir or None)."""
    from edgepack.bundle import MANIFEST, load_manifest
    from edgepack.gguf_file import read_gguf

    missing = [t for t in targets if not Path(t).exists()]
    if missing:
        raise EvalError(f"{missing[0]}: no such file or directory (give a bundle directory or GGUF files)")
    if len(targets) == 1 and Path(targets[0]).is_dir():
        bundle = Path(targets[0])
        manifest = load_manifest(bundle)
        ref = Path(reference) if reference else Path(manifest.reference["path"])
        if not ref.is_file():
            raise EvalError(f"the bundle's 16-bit reference {ref} is gone (cache cleared?); pass --reference "
                            "F16.gguf or rebuild")
        files = [(f.quant, bundle / f.file, f.size_bytes, f.bits_per_weight) for f in manifest.files]
        return manifest.model.get("name", bundle.name), ref, files, bundle
    if any(Path(t).is_dir() for t in targets):
        raise EvalError(f"give one bundle directory, or GGUF files with --reference (see {MANIFEST})")
    if reference is None:
        raise EvalError("GGUF files need --reference F16.gguf (the 16-bit model they were made from)")
    files = []
    for t in targets:
        info = read_gguf(t)
        files.append((info.file_type, Path(t), info.size_bytes, info.bits_per_weight))
    return read_gguf(reference).name or Path(reference).stem, Path(reference), files, None

def _plan_key(plan: EvalPlan, reference: Path, text_sha: str) -> str:
    data = json.dumps({"plan": asdict(plan), "reference": sha256_file(reference), "text": text_sha}, sort_keys=True,
                      default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:16]

def evaluate(targets: list[str | Path], *, reference: str | Path | None = None, plan: EvalPlan = EvalPlan(),
             output_dir: str | Path | None = None):
    """Measure every GGUF against the 16-bit reference and write the report.

    A bundle gets report.{md,json,csv}, charts, `manifest.extra["evaluation"]` and a model card
    that shows them. Each finished row is saved at once (eval-rows.jsonl), so an interrupted run
    loses nothing finished and the next run with the same plan resumes.
    """
    from edgepack.measure.peak_memory import measure_peak_memory
    from edgepack.measure.speed import default_threads, measure_speed
    from edgepack.measure.report import Report, Row, parse_size, recommend, write_report
    from edgepack.measure.tasks import load_task, run_task
    from edgepack.measure.texts import load_eval_text

    name, ref_path, files, bundle = _models_to_evaluate(list(targets), reference)
    text = load_eval_text(plan.text)
    tasks = [load_task(t) for t in plan.tasks]  # bad task files fail before any measuring
    if plan.lm_eval:
        from edgepack.measure.lm_eval_runner import task_manager

        task_manager(list(plan.lm_eval), plan.lm_eval_include)
    budget = parse_size(plan.budget) if plan.budget else None
    settings = plan.settings
    if settings.n_threads is None:
        settings = EvalSettings(**(asdict(settings) | {"n_threads": default_threads()}))
    out = Path(output_dir) if output_dir else (bundle if bundle else Path("eval-report"))
    out.mkdir(parents=True, exist_ok=True)
    key = _plan_key(plan, ref_path, text.sha256)
    rows_path = out / "eval-rows.jsonl"
    done: dict[str, Row] = {}
    if rows_path.is_file():
        for line in rows_path.read_text().splitlines():
            record = json.loads(line)
            if record.get("plan") == key:
                done[record["row"]["file"]] = Row(**record["row"])
    else:
        rows_path.write_text("")

    base = reference_log_probs(ref_path, text.text, settings)
    from edgepack.gguf_file import read_gguf

    ref_info = read_gguf(ref_path)
    models = [(ref_info.file_type, ref_path, ref_info.size_bytes, ref_info.bits_per_weight, True)]
    models += [(q, p, s, b, False) for q, p, s, b in files]
    rows: list[Row] = []
    for quant, path, size, bpw, is_ref in models:
        if str(path.name) in done:
            rows.append(done[str(path.name)])
            continue
        start = time.perf_counter()
        row = Row(quant=quant, file=path.name, size_bytes=size, bits_per_weight=bpw, is_reference=is_ref)
        if is_ref:
            row.ppl, row.ppl_err = base.ppl, base.ppl_err
            row.kld, row.same_top, row.rms_dp = 0.0, 1.0, 0.0
        else:
            d = divergence(path, base, settings)
            row.ppl, row.ppl_err, row.kld, row.kld_err = d.ppl, d.ppl_err, d.mean_kld, d.mean_kld_err
            row.kld_median, row.kld_p99, row.kld_max = d.median_kld, d.p99_kld, d.max_kld
            row.same_top, row.rms_dp = d.same_top, d.rms_dp
        for task in tasks:
            r = run_task(path, task, n_threads=settings.n_threads, n_gpu_layers=settings.n_gpu_layers)
            row.tasks[task.name] = {"accuracy": r.accuracy, "stderr": r.stderr, "n": r.n, "kind": r.kind,
                                    "engine": TASK_ENGINE}
        if plan.lm_eval:
            from edgepack.measure.lm_eval_runner import run_lm_eval

            for score in run_lm_eval(path, list(plan.lm_eval), limit=plan.lm_eval_limit, include=plan.lm_eval_include,
                                     n_threads=settings.n_threads, n_gpu_layers=settings.n_gpu_layers):
                row.tasks[score.task] = score.as_task_entry()
        if plan.speed:
            for n_parallel in plan.parallel:
                s = measure_speed(path, n_prompt=plan.n_prompt, n_gen=plan.n_gen, repetitions=plan.repetitions,
                                  n_threads=settings.n_threads, n_gpu_layers=settings.n_gpu_layers,
                                  n_parallel=n_parallel, flash_attn=settings.flash_attn)
                row.speed[str(n_parallel)] = {"pp_tps": s.pp_tps, "pp_tps_sd": s.pp_tps_sd, "tg_tps": s.tg_tps,
                                              "tg_tps_sd": s.tg_tps_sd, "ttft_ms": s.ttft_ms}
        for n_ctx in plan.memory_contexts:
            memory = measure_peak_memory(path, n_ctx, settings.n_gpu_layers)
            row.peak_rss[str(n_ctx)] = memory["peak"]
            if memory.get("vram_used") is not None:
                row.peak_vram[str(n_ctx)] = memory["vram_used"]
        row.seconds = progress.elapsed(start)
        with rows_path.open("a") as fh:  # saved as soon as it is finished
            fh.write(json.dumps({"plan": key, "row": asdict(row)}) + "\n")
        rows.append(row)

    from edgepack.machine.profile import this_machine

    machine = this_machine(measure_bandwidth=False)
    summary = machine.summary()
    notes = []
    if bundle is not None:
        from edgepack.bundle import load_manifest

        manifest = load_manifest(bundle)
        if manifest.source.get("kind") == "default":
            from edgepack.source.default_model import DEFAULT_MODEL_NOTE

            notes.append(DEFAULT_MODEL_NOTE)
        if manifest.imatrix:
            notes.append(f"Quants use an importance matrix from {manifest.imatrix.get('dataset')!r}.")
    engines = sorted({f"{name}: {entry.get('metric', 'accuracy')} by {entry['engine']}" for row in rows
                      for name, entry in row.tasks.items() if entry.get("engine")})
    notes += [f"Task {line}." for line in engines]
    report = Report(
        model=name, reference=ref_path.name, text=text.name,
        settings={"n_ctx": settings.n_ctx, "n_chunks": base.n_chunks, "n_threads": settings.n_threads,
                  "n_gpu_layers": settings.n_gpu_layers, "flash_attn": settings.flash_attn,
                  "tasks": [t.name for t in tasks], "lm_eval": list(plan.lm_eval),
                  "lm_eval_limit": plan.lm_eval_limit,
                  "speed": ({"n_prompt": plan.n_prompt, "n_gen": plan.n_gen, "repetitions": plan.repetitions,
                             "n_threads": settings.n_threads, "n_gpu_layers": settings.n_gpu_layers,
                             "parallel": list(plan.parallel)} if plan.speed else None),
                  "memory_contexts": list(plan.memory_contexts)},
        machine={"cpu": summary.get("cpu_info"), "cores": machine.cpu.logical_cores if machine.cpu else None,
                 "threads_used": settings.n_threads, "gpu": summary.get("gpu_info"), "os": summary.get("os"),
                 "memory_bytes": summary.get("memory_total_bytes"), "llama_cpp": _llama_build()},
        rows=rows, notes=notes,
        recommendation=recommend(rows, budget_bytes=budget, max_kld=plan.max_kld),
    )
    written = write_report(report, out)
    if bundle is not None:
        _record_in_bundle(bundle, report)
    return report, written

def _llama_build() -> str:
    from edgepack.runtime.toolchain import find_toolchain

    toolchain = find_toolchain()
    return toolchain.build if toolchain else "unknown"

def _record_in_bundle(bundle: Path, report) -> None:
    from edgepack.atomic import write_text_atomic
    from edgepack.bundle import load_manifest, render_model_card, write_manifest
    from edgepack.measure.report import table_rows

    manifest = load_manifest(bundle)
    manifest.extra["evaluation"] = {
        "text": report.text, "settings": report.settings, "machine": report.machine,
        "results": [{"quant": r.quant, "kld": r.kld, "ppl": r.ppl, "same_top": r.same_top,
                     "tg_tps": r.speed.get("1", {}).get("tg_tps")} for r in report.rows],
        "report": "report.md", "recommendation": report.recommendation,
    }
    write_manifest(bundle, manifest)
    header, cells = table_rows(report)
    table = "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                      ["| " + " | ".join(row) + " |" for row in cells])
    write_text_atomic(bundle / "README.md", render_model_card(manifest, evaluation_table=table))
