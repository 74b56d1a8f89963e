"""`build`: source → 16-bit reference GGUF → quants → bundle, as named stages over a checked `BuildPlan`.

Everything a plan asks for is checked before the first slow step. The bundle directory's lock is
held for the whole build; the bundle is assembled in a staging directory beside it (hard links to
the files it keeps from the previous bundle) and swapped in with one atomic exchange, so at every
instant the directory holds the old bundle or the new one. Each finished quant waits in the quant
cache until the bundle is in place, so an interrupted build resumes with the quants it had not made.
"""

from __future__ import annotations

import dataclasses
import errno
import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgepack import procs, progress
from edgepack.atomic import make_staging_dir, remove_stale_partials
from edgepack.bundle.lock import bundle_lock
from edgepack.bundle.swap import remove_tree, restore_interrupted_swap, swap_in
from edgepack.errors import BuildInterrupted, OutputError
from edgepack.paths import reference_cache_dir
from edgepack.procs import signals_deferred, sigterm_as_interrupt
from edgepack.quantize.engine import QuantOptions
from edgepack.quantize.prepare import (DryRunResult, DryRunSize, check_calibration_plan, check_tensor_options,
                                       dry_run_sizes, estimate_quant_bytes, settle_imatrix)
from edgepack.quantize.types import QuantType, resolve_quants
from edgepack.runtime.toolchain import ensure_toolchain
from edgepack.source import Source, ensure_free_space, make_reference, resolve_source, slugify
from edgepack.bundle import companions as comp_stage
from edgepack.bundle.companions import CompanionRequest
from edgepack.source.convert import reference_is_cached
from edgepack.source.early import start_early_conversion
from edgepack.source.space import plan_build_space

if TYPE_CHECKING:
    from edgepack.bundle import BundleFile, Manifest, PlanRecord
    from edgepack.chat.early import EarlyChat
# The bundle writer, the manifest's models, the chat stage and the quant cache are imported where
# they are used: a build starts its converter first (edgepack.source.early) and imports them while
# it waits.

DEFAULT_QUANT = "Q4_K_M"
__all__ = ["BuildPlan", "BuildResult", "DryRunResult", "DryRunSize", "build", "run_build"]


@dataclass(frozen=True)
class BuildPlan:
    """What one build makes. `run_build` checks all of it before any slow step."""

    source: str | None = None  # HF directory, hub id, GGUF; None: the embedded default model
    quants: tuple[str, ...] = ()  # default: Q4_K_M (or the ladder)
    ladder: bool = False
    output_dir: str | Path | None = None  # default: out/<model>
    outtype: str = "f16"
    revision: str | None = None
    options: QuantOptions = QuantOptions()
    calibration: tuple[str, ...] = ()  # text files, or ("default",): compute an importance matrix
    imatrix: str | Path | None = None  # or reuse one
    imatrix_chunks: int | None = None
    target: str | None = None  # a device to plan for (preset, profile JSON, "this")
    ctx: int | None = None  # the deployment context to plan for
    replace: bool = False  # start the bundle over instead of adding to it
    trust_remote_code: bool = False  # allow a source whose conversion runs its own Python code
    dry_run: bool = False
    evaluate: object | None = None  # an edgepack.measure.evaluate.EvalPlan: measure the bundle after
    ollama_name: str | None = None  # then `ollama create NAME`
    companions: CompanionRequest = CompanionRequest()  # adapter, projector, split parts (bundle/companions.py)
    reference_dir: str | Path | None = None  # the 16-bit reference here instead of the cache
    keep_reference: bool = True  # False: delete it after the build


@dataclass
class BuildResult:
    bundle_dir: Path
    manifest: Manifest
    warnings: list[str] = field(default_factory=list)
    reused: dict[str, str] = field(default_factory=dict)  # quant -> "bundle" or "cache": not remade
    evaluation: object | None = None  # the Report when the plan asked for one
    ollama: object | None = None  # the CreateResult when the plan named an Ollama model

    def to_dict(self) -> dict:
        d = {"bundle_dir": str(self.bundle_dir), "manifest": self.manifest.to_dict(), "warnings": self.warnings,
             "reused": self.reused}
        return d | ({"evaluation": self.evaluation} if self.evaluation is not None else {}) \
            | ({"ollama": self.ollama} if self.ollama is not None else {})


@dataclass
class _Checked:
    """What checking a plan settled."""

    plan: BuildPlan
    wanted: list[QuantType]
    calibration_text: object | None
    target_profile: object | None
    base_source: Source | None = None  # the source before --merge-adapter folded the adapter in

    @property
    def reference_dir(self) -> Path | None:
        return Path(self.plan.reference_dir) if self.plan.reference_dir is not None else None


def default_output_dir(source: Source) -> Path:
    return Path("out") / slugify(source.name)


def check_plan(plan: BuildPlan) -> _Checked:
    """Every check that needs no conversion or quantization, so a bad plan fails in a second."""
    from edgepack.quantize.imatrix import load_calibration

    wanted = resolve_quants(list(plan.quants) or ([] if plan.ladder else [DEFAULT_QUANT]), ladder=plan.ladder)
    check_calibration_plan(wanted, plan.calibration, plan.imatrix)
    text = load_calibration(list(plan.calibration)) if plan.calibration else None
    if plan.ollama_name:
        from edgepack.chat.ollama import parse_model_name

        parse_model_name(plan.ollama_name)
    if plan.output_dir is not None and not plan.dry_run:
        from edgepack.bundle.output import check_output_dir, check_writable

        check_output_dir(Path(plan.output_dir), replace=plan.replace)
        check_writable(Path(plan.output_dir))
    profile = None
    if plan.target is not None or plan.ctx is not None:
        from edgepack.machine.devices import resolve_target

        profile = resolve_target(plan.target)
    return _Checked(plan, wanted, text, profile)


def run_build(plan: BuildPlan) -> BuildResult | DryRunResult:
    """Build the plan's bundle, then (if asked) evaluate it and create the Ollama model."""
    with sigterm_as_interrupt():  # SIGTERM cleans up like Ctrl-C
        return _run(plan, time.perf_counter())


def _run(plan: BuildPlan, start: float) -> BuildResult | DryRunResult:
    if plan.companions.split.enabled and not plan.replace:
        plan = dataclasses.replace(plan, replace=True)  # split parts are not carried over: make every quant anew
    checked = check_plan(plan)
    toolchain = ensure_toolchain()
    src = resolve_source(plan.source, plan.revision, trust_remote_code=plan.trust_remote_code)
    comp_stage.check_request(plan.companions, src)
    # The chat stage and the converter start now, beside the checks below (edgepack.chat.early,
    # edgepack.source.early); both are cancelled when the build stops or does not need them.
    from edgepack.chat.early import EarlyChat

    early_chat = None if plan.dry_run else EarlyChat(src.path if src.path.is_dir() else None)
    early = None if plan.dry_run or plan.companions.merge_adapter else start_early_conversion(
        src, plan.outtype, toolchain, checked.reference_dir, trust_remote_code=plan.trust_remote_code)
    if early is not None:
        early.idle_work += _AFTER_CONVERSION_IMPORTS
    try:
        if not plan.dry_run:  # disk space for everything the build writes, before the first slow step
            out_dir = Path(plan.output_dir) if plan.output_dir is not None else default_output_dir(src)
            merge = plan.companions.merge_adapter
            def is_cached() -> bool:
                return reference_is_cached(src, plan.outtype, toolchain, checked.reference_dir)
            # hashing the source beside the early converter: at lower priority than the converter
            cached = (procs.in_lowered_thread(is_cached) if early is not None else is_cached()) and not merge
            if cached and early is not None:
                early.cancel()
                early = None
            plan_build_space(src, outtype=plan.outtype, quant_bits=[q.bits for q in checked.wanted],
                             output_dir=out_dir, reference_dir=checked.reference_dir or reference_cache_dir(),
                             reference_cached=cached, split=plan.companions.split.enabled,
                             merge_adapter=merge).check(ensure_free_space)
        checked.base_source, src = src, comp_stage.source_with_adapter(src, plan.companions)
        if plan.dry_run:
            reference, ref_info, imatrix, _ = _reference_stage(checked, src, toolchain)
            return dry_run_sizes(src.name, reference, checked.wanted, imatrix.options)
        out = Path(plan.output_dir) if plan.output_dir is not None else default_output_dir(src)
        from edgepack.bundle.output import check_writable

        check_writable(out)  # the lock file goes beside it
        with bundle_lock(out) as lock_file:
            try:
                result = _build_locked(checked, src, out, toolchain, start, early, early_chat)
            finally:
                lock_file.unlink(missing_ok=True)  # while held: filelock re-checks the inode it locked
    finally:
        if early is not None:
            early.cancel()  # a no-op when make_reference used it
        if early_chat is not None:
            early_chat.cancel()
    if plan.evaluate is not None:
        from edgepack.measure.evaluate import evaluate

        result.evaluation, _ = evaluate([result.bundle_dir], plan=plan.evaluate)
    if plan.ollama_name:
        from edgepack.chat.ollama import create

        result.ollama = create(plan.ollama_name, result.bundle_dir / (result.manifest.default_modelfile or "Modelfile"))
    return result


def _import(name: str):
    return lambda: importlib.import_module(name)


def _load_llama_cpp() -> None:
    from edgepack.runtime.llama import llama_module

    llama_module()


# What a build imports only after the reference exists (the chat stage's modules, the quantizer,
# the model card's hub client): imported while the converter runs, when this thread has nothing
# else to do.
_AFTER_CONVERSION_IMPORTS = [_import("edgepack.chat.modelfile"), _load_llama_cpp, _import("huggingface_hub.repocard")]


def build(source: str | None = None, quants: list[str] | tuple[str, ...] = (), **settings) -> BuildResult | DryRunResult:
    """Build a bundle of `quants` (default Q4_K_M) from `source` (default: the embedded model).

    `settings` are BuildPlan's fields: output_dir, ladder, options, calibration, imatrix, target,
    ctx, replace, dry_run, evaluate (an EvalPlan), ollama_name, ...
    """
    if "calibration" in settings:
        settings["calibration"] = tuple(settings["calibration"] or ())
    return run_build(BuildPlan(source, tuple(quants), **settings))


def _reference_stage(checked: _Checked, src: Source, toolchain, early=None, early_chat: EarlyChat | None = None):
    """The reference, its metadata, the imatrix settled for it, and (with `early_chat`) the chat report."""
    from edgepack.gguf_file import read_gguf

    plan = checked.plan
    reference = make_reference(src, plan.outtype, toolchain=toolchain, trust_remote_code=plan.trust_remote_code,
                               cache_dir=checked.reference_dir, early=early)
    ref_info = read_gguf(reference.path)
    # Joined before anything else runs here (the imatrix may import modules of its own).
    chat = early_chat.report_for(ref_info) if early_chat is not None else None
    check_tensor_options(plan.options, ref_info)
    imatrix = settle_imatrix(reference.path, ref_info.n_params, plan.options, imatrix=plan.imatrix,
                             calibration_text=checked.calibration_text, chunks=plan.imatrix_chunks)
    return reference, ref_info, imatrix, chat


def _remove_debris(out: Path) -> None:
    """Staging dirs and partial files of builds that were killed (their pid is gone)."""
    from edgepack.quantize.cache import remove_stale_cache_partials

    restore_interrupted_swap(out)
    remove_stale_partials(out.parent, out.name)
    remove_stale_cache_partials()
    remove_stale_partials(reference_cache_dir(), recursive=True)


def _build_locked(checked: _Checked, src: Source, out: Path, toolchain, start: float, early,
                  early_chat: EarlyChat) -> BuildResult:
    from edgepack.bundle.output import carry_over, check_inside, check_output_dir, check_same_build, check_source_kept
    from edgepack.bundle.writer import finish_bundle
    from edgepack.quantize.cache import cache_entry

    plan = checked.plan
    _remove_debris(out)
    state = check_output_dir(out, replace=plan.replace)  # again, now that no other build can change it
    check_inside(src.path, state, plan.replace)
    # The chat stage: once per bundle, before quantizing (a bad template costs no quantization work),
    # started on the source's template while the converter runs (edgepack.chat.early).
    reference, ref_info, imatrix, chat = _reference_stage(checked, src, toolchain, early, early_chat)
    check_same_build(state, reference.to_dict(), toolchain.to_dict())
    if checked.target_profile is not None:
        from edgepack.machine.plan import plan_deployment

        plan_deployment(reference.path, checked.target_profile, plan.ctx)  # a context the model lacks fails here
    comp = comp_stage.prepare(plan.companions, src, checked.base_source, reference, ref_info.embedding_length,
                              checked.reference_dir)
    needed = sum(estimate_quant_bytes(ref_info.n_params, q) for q in checked.wanted) + comp_stage.extra_bytes(comp)
    ensure_free_space(out.parent, needed, f"{len(checked.wanted)} GGUF file(s)")
    staging = make_staging_dir(out)
    swapped = False
    try:
        wanted = {q.name: imatrix.options.to_dict() | {"imatrix": imatrix.sha256} for q in checked.wanted}
        carry = carry_over(state, staging, wanted, imatrix.sha256)
        for warning in carry.warnings:
            progress.warn(warning)
        manifest, result = _quantize_stage(checked, src, reference, ref_info, imatrix, toolchain, staging, carry, out,
                                           chat, comp)
        manifest.timings["total"] = progress.elapsed(start)
        finish_bundle(staging, manifest, mode=state.mode)
        check_source_kept(src.path, state, staging)
        with signals_deferred():
            old = swap_in(staging, out)
            swapped = True
            remove_tree(old)
    except (KeyboardInterrupt, BuildInterrupted) as exc:
        what = str(exc) if isinstance(exc, BuildInterrupted) else "build interrupted"
        where = (f"{out} still holds the previous bundle" if state.manifest or state.files
                 else f"nothing was written to {out}")
        raise BuildInterrupted(f"{what}; {where}" if not swapped else
                               f"interrupted after the new bundle was in place in {out}") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise OutputError(f"no space left on the device while writing {out}; free some space or choose "
                              "another -o; the previous bundle (if any) was left untouched") from None
        raise
    finally:
        if not swapped:
            remove_tree(staging)
    for quant in checked.wanted:  # the bundle holds them now
        cache_entry(reference.sha256, quant, imatrix.options, imatrix.sha256, toolchain.to_dict()).drop()
    if not plan.keep_reference and reference.path != src.path and reference.cache_key:
        remove_tree(reference.path.parent)  # the keyed cache entry, never a user's file
    return result


def _quantize_stage(checked: _Checked, src: Source, reference, ref_info, imatrix, toolchain, staging: Path,
                    carry, out: Path, chat, comp) -> tuple[Manifest, BuildResult]:
    from edgepack.bundle import ChatTemplateInfo, PlanRecord
    from edgepack.bundle.writer import make_quant, new_manifest, write_quant_modelfile
    from edgepack.quantize.cache import cache_entry

    plan = checked.plan
    warnings = list(reference.warnings) + comp.warnings
    reused: dict[str, str] = {}
    made: dict[str, BundleFile] = {}
    plans: dict[str, PlanRecord] = {}
    chat_template = None
    tuned = carry.tuning.modelfile_parameters if carry.tuning else None  # bench --tune's, as on the kept files
    for quant in checked.wanted:
        entry = next((e for e in carry.kept if e.quant == quant.name), None) if quant.name in carry.reused else None
        if entry is not None:
            reused[quant.name] = "bundle"
        else:
            key = cache_entry(reference.sha256, quant, imatrix.options, imatrix.sha256, toolchain.to_dict())
            entry, from_cache = make_quant(reference, quant, imatrix.options, key,
                                            staging / f"{slugify(src.name)}-{quant.name}.gguf", ref_info.n_params)
            if from_cache:
                reused[quant.name] = "cache"
        sources = comp_stage.finish_quant(comp, entry, staging / entry.file, slugify(src.name))  # split, mmproj, lora
        deploy = {}
        if checked.target_profile is not None:
            from edgepack.machine.plan import plan_deployment
            from edgepack.measure.image import projector_compute_bytes

            p = plan_deployment(staging / entry.file, checked.target_profile, plan.ctx,
                                projector_bytes=comp.projector.size_bytes if comp.projector else 0,
                                projector_compute_bytes=projector_compute_bytes(
                                    comp.projector.path, comp.projector.sha256, staging / entry.file)
                                if comp.projector else None)
            plans[quant.name] = PlanRecord(p.target, p.fits, p.n_ctx, p.n_gpu_layers, p.n_threads, p.kv_type,
                                           list(p.suggestions))
            if p.fits:
                deploy = p.modelfile_parameters()
            else:
                warnings.append(f"{quant.name} does not fit {p.target} at context {p.n_ctx}: "
                                + "; ".join(p.suggestions or ["try a smaller quant"]))
        written = write_quant_modelfile(staging, entry, ref_info, model_name=src.name, deploy=deploy, parameters=tuned,
                                        chat=chat, source_dir=src.path if src.path.is_dir() else None, sources=sources)
        chat_template = written.chat_template
        warnings += [w for w in written.warnings if w not in warnings]
        made[quant.name] = entry
    old_quants = {e.quant for e in carry.kept}
    files = [made.get(e.quant, e) for e in carry.kept] + [e for q, e in made.items() if q not in old_quants]
    old_plans = {q: p for q, p in carry.plans.items() if q not in made}
    sections = {"chat_template": ChatTemplateInfo(**chat_template), "evaluation": carry.evaluation,
                "tuning": carry.tuning, "plans": old_plans | plans, "chat": chat.to_dict()}
    sections |= comp_stage.write_into(comp, staging, files, slugify(src.name))
    timings = {"convert": reference.seconds, "reference_cached": reference.cached,
               "quantize_total": round(sum(e.seconds["quantize"] for q, e in made.items() if q not in reused), 3),
               "reused": reused}
    manifest = new_manifest(src, reference, ref_info, toolchain, files, timings=timings, warnings=warnings,
                            imatrix=imatrix.record or carry.imatrix, **sections)
    return manifest, BuildResult(out, manifest, warnings + carry.warnings, reused)
