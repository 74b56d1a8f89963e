"""`build`: source → 16-bit reference GGUF → quants → bundle, in one call.

The bundle is assembled in a staging directory beside the output and swapped in only when
every file is complete, so a failed or interrupted build never damages a good bundle.
"""

from __future__ import annotations

import errno
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from edgepack import __version__, paths, progress
from edgepack.atomic import atomic_directory, write_text_atomic
from edgepack.bundle import ChatTemplateInfo, Manifest, PlanRecord, check_output_dir, file_entry, now_utc, render_model_card, write_manifest
from edgepack.source import Source, ensure_free_space, make_reference, resolve_source, slugify
from edgepack.source.convert import reference_is_cached
from edgepack.errors import BuildInterrupted, OutputError, QuantError
from edgepack.hashing import sha256_file
from edgepack.gguf_file import read_gguf
from edgepack.chat.modelfile import chat_report_for_gguf, modelfile_for_gguf
from edgepack.quantize.engine import QuantOptions, quantize_gguf
from edgepack.quantize.types import QuantType, resolve_quants
from edgepack.runtime.toolchain import ensure_toolchain
from edgepack.bundle import companions as comp_stage
from edgepack.bundle.companions import CompanionRequest
from edgepack.source.space import plan_build_space, quant_bytes

DEFAULT_QUANT = "Q4_K_M"


@dataclass
class BuildResult:
    bundle_dir: Path
    manifest: Manifest
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"bundle_dir": str(self.bundle_dir), "manifest": self.manifest.to_dict(), "warnings": self.warnings}


def default_output_dir(source: Source) -> Path:
    return Path("out") / slugify(source.name)


def _check_writable(path: Path) -> None:
    """Probe with a real temporary file: permission bits alone lie for root and read-only mounts."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot create {path}: {parent} is not a directory; choose another -o")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write to {parent} ({exc.strerror or exc}); choose another -o") from None


def estimate_quant_bytes(n_params: int, quant: QuantType) -> int:
    return quant_bytes(n_params, quant.bits)


@dataclass
class DryRunSize:
    quant: str
    size_bytes: int | None
    bits_per_weight: float | None


@dataclass
class DryRunResult:
    model: str
    reference: dict
    sizes: list[DryRunSize]
    options: dict

    def to_dict(self) -> dict:
        return asdict(self)


def _calibration_plan(wanted: list[QuantType], calibration, imatrix) -> None:
    """Fail before any slow step when an imatrix-only type has no calibration."""
    if calibration and imatrix:
        raise QuantError("give either --calibration or --imatrix, not both")
    if not (calibration or imatrix):
        needy = [q.name for q in wanted if q.needs_imatrix]
        if needy:
            raise QuantError(f"{', '.join(needy)} need{'s' if len(needy) == 1 else ''} an importance matrix: "
                             "add --calibration FILE (or --calibration default) or --imatrix FILE")


def _check_tensor_options(options: QuantOptions, ref_info) -> None:
    """Patterns must match a tensor and pruned layers must exist (llama.cpp would silently ignore them)."""
    names = [t.name for t in ref_info.tensors]
    for spec in options.tensor_types:
        pattern = spec.rpartition("=")[0]
        if not any(re.search(pattern, n) for n in names):
            raise QuantError(f"--tensor-type pattern {pattern!r} matches no tensor of this model "
                             f"(names look like {names[len(names) // 2]!r})")
    n_layers = ref_info.n_layers or 0
    bad = [i for i in options.prune_layers if not 0 <= i < n_layers]
    if bad:
        raise QuantError(f"--prune-layers {bad[0]} does not exist; this model has layers 0..{n_layers - 1}")
    if len(set(options.prune_layers)) >= n_layers > 0:
        raise QuantError("--prune-layers would remove every layer")


def build(
    source: str | None = None,
    quants: list[str] | tuple[str, ...] = (),
    *,
    ladder: bool = False,
    output_dir: str | Path | None = None,
    outtype: str = "f16",
    revision: str | None = None,
    options: QuantOptions = QuantOptions(),
    calibration: list[str] | tuple[str, ...] = (),
    imatrix: str | Path | None = None,
    imatrix_chunks: int | None = None,
    dry_run: bool = False,
    target: str | None = None,
    ctx: int | None = None,
    companions: CompanionRequest = CompanionRequest(),
    reference_dir: str | Path | None = None,
    keep_reference: bool = True,
    trust_remote_code: bool = False,
):
    """Build a bundle of `quants` (default Q4_K_M) from `source` (default: the embedded model).

    `calibration` (text files, or ["default"]) computes an importance matrix with llama-imatrix;
    `imatrix` reuses one. With `dry_run`, returns the size each quant would have and writes
    nothing but the cached 16-bit reference. With `target` (a preset, a profile JSON, or "this")
    and/or `ctx`, each Modelfile carries the deployment plan (num_ctx, num_gpu, num_thread).
    `companions`: a LoRA adapter (beside the quants or merged), the projector of a multimodal
    source, split parts. `reference_dir` holds the 16-bit reference instead of the cache;
    `keep_reference=False` deletes it after the build.
    A source whose conversion would run its own Python code is refused unless `trust_remote_code`.
    """
    from edgepack.quantize.imatrix import check_imatrix_fits, compute_imatrix, load_calibration

    start = time.perf_counter()
    wanted = resolve_quants(list(quants) or ([] if ladder else [DEFAULT_QUANT]), ladder=ladder)
    _calibration_plan(wanted, calibration, imatrix)
    calibration_text = load_calibration(list(calibration)) if calibration else None
    if imatrix is not None and not Path(imatrix).is_file():
        raise QuantError(f"imatrix file {imatrix} does not exist")
    # Check the output before the slow steps when we can; the default name needs the source.
    if output_dir is not None and not dry_run:
        out = Path(output_dir)
        check_output_dir(out)
        _check_writable(out)
    target_profile = None
    if target is not None or ctx is not None:
        from edgepack.machine.devices import resolve_target
        from edgepack.machine.plan import plan_deployment

        target_profile = resolve_target(target)  # an unknown preset fails here, before the slow steps
    toolchain = ensure_toolchain()
    src = resolve_source(source, revision, trust_remote_code=trust_remote_code)
    if output_dir is None and not dry_run:
        out = default_output_dir(src)
        check_output_dir(out)
        _check_writable(out)

    ref_dir = Path(reference_dir) if reference_dir is not None else None
    comp_stage.check_request(companions, src)
    if not dry_run:  # disk space for everything the build writes, checked before the first slow step
        cached = reference_is_cached(src, outtype, toolchain, ref_dir) and not companions.merge_adapter
        plan_build_space(src, outtype=outtype, quant_bits=[q.bits for q in wanted], output_dir=out,
                         reference_dir=ref_dir or paths.reference_cache_dir(), reference_cached=cached,
                         split=companions.split.enabled, merge_adapter=companions.merge_adapter).check(ensure_free_space)
    base_src, src = src, comp_stage.source_with_adapter(src, companions)
    reference = make_reference(src, outtype, toolchain=toolchain, trust_remote_code=trust_remote_code,
                               cache_dir=ref_dir)
    ref_info = read_gguf(reference.path, with_tokens=True)
    _check_tensor_options(options, ref_info)
    comp = (comp_stage.prepare(companions, src, base_src, reference, ref_info.embedding_length, ref_dir)
            if not dry_run else comp_stage.Companions(companions))
    imatrix_info = None
    if imatrix is not None:
        data = check_imatrix_fits(imatrix, reference.path)
        imatrix_info = {"path": str(imatrix), "dataset": ", ".join(Path(d).stem for d in data["datasets"]) or None,
                        "chunks": data["chunks"], "chunk_size": data["chunk_size"], "entries": len(data["entries"]),
                        "sha256": sha256_file(imatrix), "computed": False}
        options = replace(options, imatrix=str(imatrix))
    elif calibration_text is not None:
        computed = compute_imatrix(reference.path, calibration_text, chunks=imatrix_chunks, n_params=ref_info.n_params)
        imatrix_info = computed.to_dict() | {"computed": True}
        options = replace(options, imatrix=str(computed.path))

    if dry_run:
        sizes = []
        for quant in wanted:
            r = quantize_gguf(reference.path, None, quant, options, dry_run=True)
            sizes.append(DryRunSize(quant.name, r.size_bytes, r.bits_per_weight))
        return DryRunResult(src.name, reference.to_dict(), sizes, options.to_dict())

    if target_profile is not None:
        plan_deployment(reference.path, target_profile, ctx)  # a context the model lacks: fail before quantizing
    plans: dict[str, dict] = {}

    needed = sum(estimate_quant_bytes(ref_info.n_params, q) for q in wanted) + comp_stage.extra_bytes(comp)
    ensure_free_space(out.parent, needed, f"{len(wanted)} GGUF file(s)")

    warnings = list(reference.warnings) + comp.warnings
    notes: list[str] = []
    if src.kind == "default":
        from edgepack.source.default_model import DEFAULT_MODEL_NOTE

        notes.append(DEFAULT_MODEL_NOTE)
    # The chat stage: once per bundle, before quantizing (a bad template costs no quantization work).
    chat = chat_report_for_gguf(ref_info, src.path if src.path.is_dir() else None)
    slug = slugify(src.name)
    files = []
    default_modelfile = None
    try:
        with atomic_directory(out) as staging:
            for quant in wanted:
                gguf_name = f"{slug}-{quant.name}.gguf"
                result = quantize_gguf(reference.path, staging / gguf_name, quant, options,
                                       expected_bytes=estimate_quant_bytes(ref_info.n_params, quant))
                entry = file_entry(result.path, quant.name, options.to_dict(), options.llama_quantize_args(),
                                   result.seconds)
                modelfile_name = f"Modelfile.{quant.name}"
                from_args = comp_stage.finish_quant(comp, entry, result.path, slug)  # split, projector, adapter
                deploy = {}
                if target_profile is not None:
                    plan = plan_deployment(staging / entry.file, target_profile, ctx,
                                           projector_bytes=comp.projector.size_bytes if comp.projector else 0)
                    plans[quant.name] = {"target": plan.target, "fits": plan.fits, "n_ctx": plan.n_ctx,
                                         "n_gpu_layers": plan.n_gpu_layers, "n_threads": plan.n_threads,
                                         "kv_type": plan.kv_type, "suggestions": plan.suggestions}
                    if plan.fits:
                        deploy = plan.modelfile_parameters()
                    else:
                        warnings.append(f"{quant.name} does not fit {plan.target} at context {plan.n_ctx}: "
                                        + "; ".join(plan.suggestions or ["try a smaller quant"]))
                modelfile = modelfile_for_gguf(read_gguf(staging / entry.file, with_tokens=True), **from_args,
                                               model_name=src.name, quant=quant.name, modelfile_name=modelfile_name,
                                               source_dir=src.path if src.path.is_dir() else None, chat=chat,
                                               **deploy)
                write_text_atomic(staging / modelfile_name, modelfile.text)
                entry.modelfile = modelfile_name
                chat_template = {"family": modelfile.template_family, "variant": modelfile.template_variant,
                                 "system_handling": modelfile.system_handling}
                files.append(entry)
                for w in modelfile.warnings:
                    if w not in warnings:
                        warnings.append(w)
            preferred = next((f for f in files if f.quant == DEFAULT_QUANT), files[0])
            shutil.copyfile(staging / preferred.modelfile, staging / "Modelfile")
            default_modelfile = "Modelfile"
            companion_fields = comp_stage.write_into(comp, staging, files, slug)
            manifest = Manifest(
                edgepack_version=__version__,
                created=now_utc(),
                source=src.to_dict(),
                toolchain=toolchain.to_dict() | {"root": None},
                reference=reference.to_dict(),
                model={
                    "name": src.name,
                    "architecture": ref_info.architecture,
                    "n_params": ref_info.n_params,
                    "n_layers": ref_info.n_layers,
                    "context_length": ref_info.context_length,
                    "embedding_length": ref_info.embedding_length,
                    "vocab_size": ref_info.vocab_size,
                    "has_chat_template": ref_info.has_chat_template,
                },
                files=files,
                timings={"convert": reference.seconds, "reference_cached": reference.cached,
                         "quantize_total": round(sum(f.seconds["quantize"] for f in files), 3),
                         "total": progress.elapsed(start)},
                default_modelfile=default_modelfile,
                warnings=warnings,
                notes=notes,
                imatrix=imatrix_info,
                chat_template=ChatTemplateInfo(**chat_template),
                chat=chat.to_dict(),
                plans={q: PlanRecord(**p) for q, p in plans.items()},
                **companion_fields,
            )
            write_manifest(staging, manifest)
            write_text_atomic(staging / "README.md", render_model_card(manifest))
    except KeyboardInterrupt:
        raise BuildInterrupted("build interrupted; the previous bundle (if any) was left untouched") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise OutputError(f"no space left on the device while writing {out}; free some space or choose another -o; "
                              "the previous bundle (if any) was left untouched") from None
        raise
    if not keep_reference and reference.path != src.path and reference.cache_key:
        shutil.rmtree(reference.path.parent, ignore_errors=True)  # the keyed cache entry, never a user's file
    return BuildResult(out, manifest, warnings)
