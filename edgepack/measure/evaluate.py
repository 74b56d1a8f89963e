"""Stage 3: what each quant costs against the 16-bit reference, for a bundle or a list of GGUFs:
perplexity and KL divergence (llama-perplexity's method, see scoring.py and refcache.py), task
accuracy, speed and peak memory, gathered into one report whose rows are saved as they finish.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from edgepack import progress
from edgepack.errors import EvalError
from edgepack.hashing import sha256_file
from edgepack.measure.refcache import divergence, reference_log_probs
from edgepack.measure.scoring import EvalSettings

if TYPE_CHECKING:  # at run time imported where it is used, as the functions below do
    from edgepack.measure.report import Row

DEFAULT_MEMORY_CONTEXTS = (512, 1024, 2048)
ROWS_FILE = "eval-rows.jsonl"
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
    image: bool = True                   # with a bundle's projector: time to first token of one image prompt
    image_file: str | None = None        # the image for it; None: a generated test picture

def _models_to_evaluate(targets: list[str | Path], reference: str | Path | None):
    """(model name, reference path, [(quant, file path, size, bpw, sha256)], bundle dir or None).

    A bundle's GGUFs are checked against the manifest's sha256 first (integrity.py's fast path):
    a tampered file is refused with one line, before anything is measured."""
    from edgepack.bundle import MANIFEST, load_manifest
    from edgepack.bundle.integrity import check_listed_file
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
        files = [(f.quant, check_listed_file(bundle, f), f.size_bytes, f.bits_per_weight, f.sha256)
                 for f in manifest.files]
        return manifest.model.get("name", bundle.name), ref, files, bundle
    if any(Path(t).is_dir() for t in targets):
        raise EvalError(f"give one bundle directory, or GGUF files with --reference (see {MANIFEST})")
    if reference is None:
        raise EvalError("GGUF files need --reference F16.gguf (the 16-bit model they were made from)")
    files = []
    for t in targets:
        info = read_gguf(t)
        files.append((info.file_type, Path(t), info.size_bytes, info.bits_per_weight, sha256_file(t)))
    return read_gguf(reference).name or Path(reference).stem, Path(reference), files, None

def _plan_key(plan: EvalPlan, reference_sha256: str, text_sha: str) -> str:
    """Settings, reference and text; rows under one key are told apart by their GGUF's sha256."""
    data = json.dumps({"plan": asdict(plan), "reference": reference_sha256, "text": text_sha}, sort_keys=True,
                      default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:16]

def evaluate(targets: list[str | Path], *, reference: str | Path | None = None, plan: EvalPlan = EvalPlan(),
             output_dir: str | Path | None = None):
    """Measure every GGUF against the 16-bit reference and write the report.

    A bundle gets report.{md,json,csv}, charts, the manifest's `evaluation` section and a model card
    that shows them (bundle/record.py). Each finished row is saved at once (eval-rows.jsonl), keyed by
    the plan (settings, reference sha256, text) and the measured GGUF's sha256, so an interrupted run
    loses nothing finished and the next run with the same plan resumes; a GGUF with other bytes
    under the same name is measured again.
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
    record = bundle is not None and _can_record(bundle, into_bundle=out.resolve() == bundle.resolve())
    _make_output_dir(out)
    ref_sha = sha256_file(ref_path)
    key = _plan_key(plan, ref_sha, text.sha256)
    rows_path = out / ROWS_FILE
    done = load_saved_rows(rows_path, key)

    base = reference_log_probs(ref_path, text.text, settings)
    from edgepack.gguf_file import read_gguf

    ref_info = read_gguf(ref_path)
    models = [(ref_info.file_type, ref_path, ref_info.size_bytes, ref_info.bits_per_weight, ref_sha, True)]
    models += [(q, p, s, b, sha, False) for q, p, s, b, sha in files]
    projector = _bundle_projector(bundle) if plan.image else None
    if plan.image_file and projector is None:
        raise EvalError("--image needs a bundle with a projector (a multimodal build); drop it, or give that bundle")
    if plan.image_file and not Path(plan.image_file).is_file():
        raise EvalError(f"--image {plan.image_file}: no such file; give a PNG or JPEG picture")
    rows: list[Row] = []
    measured: dict[int, str] = {}  # id(row) -> sha256 of the GGUF it measured
    for quant, path, size, bpw, sha, is_ref in models:
        if sha in done:  # the same bytes, reference and settings: measured before
            row = replace(done[sha], quant=quant, file=path.name, is_reference=is_ref)
            rows.append(row)
            measured[id(row)] = sha
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
        if projector is not None:
            from edgepack.measure.image import image_prompt

            row.image_ttft_ms = image_prompt(path, projector, Path(plan.image_file) if plan.image_file else None,
                                             n_threads=settings.n_threads).ttft_ms
        for n_ctx in plan.memory_contexts:
            memory = measure_peak_memory(path, n_ctx, settings.n_gpu_layers)
            row.peak_rss[str(n_ctx)] = memory["peak"]
            if memory.get("vram_used") is not None:
                row.peak_vram[str(n_ctx)] = memory["vram_used"]
        row.seconds = progress.elapsed(start)
        save_row(rows_path, key, sha, row)
        rows.append(row)
        measured[id(row)] = sha

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
    if not record:
        return report, write_report(report, out)
    return _record_in_bundle(bundle, report, measured, out, budget, plan.max_kld)

def _bundle_projector(bundle: Path | None) -> Path | None:
    """The bundle's projector GGUF (checked against the manifest's sha256), or None."""
    if bundle is None:
        return None
    from edgepack.bundle import load_manifest
    from edgepack.bundle.integrity import check_listed_file

    projector = load_manifest(bundle).projector
    return check_listed_file(bundle, projector) if projector else None

def _llama_build() -> str:
    from edgepack.runtime.toolchain import find_toolchain

    toolchain = find_toolchain()
    return toolchain.build if toolchain else "unknown"

def _record_in_bundle(bundle: Path, report, measured: dict[int, str], out: Path, budget: int | None,
                      max_kld: float | None):
    """Write the report and record it in the bundle (bundle/record.py: under its lock, only the rows
    whose GGUF is still the one listed; a rebuild during the eval drops the others)."""
    from edgepack.bundle import Evaluation, EvaluationResult
    from edgepack.bundle.record import record_evaluation
    from edgepack.measure.report import recommend, table_rows, write_report

    written: list[Path] = []
    by_quant = {r.quant: measured[id(r)] for r in report.rows if not r.is_reference}

    def write_reports(kept: set[str]):
        gone = [r.quant for r in report.rows if not r.is_reference and r.quant not in kept]
        if gone:
            report.rows = [r for r in report.rows if r.is_reference or r.quant in kept]
            report.notes.append(f"Not reported: {', '.join(gone)} (replaced or removed from the bundle during the "
                                "evaluation).")
            report.recommendation = recommend(report.rows, budget_bytes=budget, max_kld=max_kld)
        written.extend(write_report(report, out))
        evaluation = Evaluation(
            text=report.text, settings=report.settings, machine=report.machine, report="report.md",
            results=[EvaluationResult(quant=r.quant, sha256=measured[id(r)], is_reference=r.is_reference, kld=r.kld,
                                      ppl=r.ppl, same_top=r.same_top, tg_tps=r.speed.get("1", {}).get("tg_tps"),
                                      image_ttft_ms=r.image_ttft_ms)
                     for r in report.rows],
            recommendation=report.recommendation,
            files=[p.name for p in written] + [ROWS_FILE] if out.resolve() == bundle.resolve() else [])
        header, cells = table_rows(report)
        table = "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                          ["| " + " | ".join(row) + " |" for row in cells])
        return evaluation, table

    _, dropped = record_evaluation(bundle, by_quant, write_reports)
    if dropped:
        progress.warn(f"not recorded: {', '.join(dropped)} changed in {bundle} during the evaluation")
    return report, written


def _can_record(bundle: Path, *, into_bundle: bool) -> bool:
    """Whether the results go into the bundle; a read-only bundle is refused before measuring, unless
    the report goes elsewhere (-o), where it is then only reported."""
    from edgepack.bundle.record import check_writable
    from edgepack.errors import OutputError

    try:
        check_writable(bundle, "eval")
    except OutputError:
        if into_bundle:
            raise
        progress.warn(f"{bundle} is read-only: the report goes to the output directory only, not into the bundle")
        return False
    return True


def _make_output_dir(out: Path) -> None:
    from edgepack.errors import OutputError

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the report directory {out} ({exc.strerror or exc}); choose another -o") from None
    if not out.is_dir():
        raise OutputError(f"{out} is not a directory; choose another -o")


def load_saved_rows(rows_path: Path, key: str) -> dict[str, Row]:
    """Rows saved by earlier runs of this plan, by the sha256 of the GGUF they measured. A damaged line (a
    kill cuts the last one short) is dropped with a one-line note and the file rewritten without it."""
    from edgepack.measure.report import Row

    if not rows_path.is_file():
        return {}
    try:
        lines = rows_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise EvalError(f"cannot read {rows_path} ({exc.strerror or exc}); delete it to measure again") from None
    done: dict[str, Row] = {}
    good: list[str] = []
    unkeyed = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if isinstance(record, dict) and "plan" in record and "sha256" not in record:
                unkeyed += 1  # saved by edgepack 0.1, keyed by file name: not trusted
                continue
            row = Row(**record["row"])
            if not isinstance(record["plan"], str) or not isinstance(record["sha256"], str):
                raise TypeError
        except (ValueError, TypeError, KeyError):
            progress.warn(f"{rows_path.name} line {number} is cut off or damaged (an interrupted run?); dropped, "
                          "that model is measured again")
            continue
        good.append(line)
        if record["plan"] == key:
            done[record["sha256"]] = row
    if unkeyed:
        progress.warn(f"{rows_path.name}: {unkeyed} row(s) saved by edgepack 0.1 (keyed by file name) are measured again")
    if len(good) != len([l for l in lines if l.strip()]) or (lines and not rows_path.read_bytes().endswith(b"\n")):
        from edgepack.atomic import write_text_atomic

        write_text_atomic(rows_path, "".join(f"{line}\n" for line in good))
    return done


def save_row(rows_path: Path, key: str, sha256: str, row) -> None:
    """Append one finished row at once, so an interrupted run loses nothing finished."""
    with rows_path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"plan": key, "sha256": sha256, "row": asdict(row)}) + "\n")
