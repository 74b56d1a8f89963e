"""Stage: plan a deployment. Where a GGUF goes on a target, with which context, KV cache and
threads, whether it fits, and how fast it should run; and which quant of a bundle to use.

The arithmetic lives in geometry.py (what the file holds), memory.py (what a setting needs),
runtimes.py (what the runtime process adds) and speed_model.py (how fast); this module chooses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack.errors import PlanError
from edgepack.machine.geometry import ModelGeometry, WeightTensor, load_geometry  # noqa: F401  (re-exported)
from edgepack.machine.memory import (  # noqa: F401  (re-exported)
    CTX_PAD, DEFAULT_UBATCH, KV_BYTES_PER_ELEMENT, KV_TYPES, MIB, MemoryEstimate, check_settings,
    compute_buffer_bytes, estimate_memory, kv_cache_bytes, model_runtime_bytes, padded_ctx, repack_types,
    repacked_bytes,
)
from edgepack.machine.profile import MachineProfile
from edgepack.machine.runtimes import RUNTIME_RESERVE_RAM, RUNTIME_RESERVE_VRAM, get_runtime  # noqa: F401
from edgepack.machine.speed_model import SpeedPrediction, predict_speed  # noqa: F401

# ---------------------------------------------------------------- the plan

@dataclass
class DeploymentPlan:
    model: str
    model_name: str | None
    quant: str
    target: str
    fits: bool
    n_ctx: int
    n_gpu_layers: int
    n_layers: int
    kv_type: str
    flash_attn: bool
    n_threads: int
    n_batch: int
    runtime: str                 # the process the memory is sized for: llama-server, ollama, python
    ram_budget: int | None
    vram_budget: int | None
    memory: MemoryEstimate
    speed: SpeedPrediction
    notes: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)

    def modelfile_parameters(self) -> dict:
        """Ollama PARAMETERs that carry this plan: num_ctx, num_gpu (layers), num_thread."""
        return {"num_ctx": self.n_ctx, "num_gpu": self.n_gpu_layers, "num_thread": self.n_threads}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["memory"] = self.memory.to_dict()
        d["modelfile_parameters"] = self.modelfile_parameters()
        return d


def _budgets(target: MachineProfile, reserve_vram: int) -> tuple[int | None, int | None, bool]:
    """RAM and VRAM the model may use, and whether GPU offload is possible at all."""
    ram = target.memory.available_bytes or target.memory.total_bytes
    gpu = target.gpu
    offload = bool(gpu) and (target.llama.gpu_offload or target.source != "this machine")
    if not offload:
        return ram, None, False
    vram = gpu.memory_free_bytes if gpu.memory_free_bytes is not None else gpu.memory_total_bytes
    return ram, vram, True


def _fits(est: MemoryEstimate, ram: int | None, vram: int | None) -> bool:
    if est.unified_memory:
        # One pool: the GPU share bounds what the GPU side may hold, RAM bounds the sum.
        return (vram is None or est.vram_total <= vram) and (ram is None or est.total <= ram)
    return (ram is None or est.ram_total <= ram) and (vram is None or est.vram_total <= vram)


def plan_deployment(model, target: MachineProfile | str | None = None, ctx: int | None = None, *,
                    n_gpu_layers: int | str | None = None, kv_type: str | None = None, n_threads: int | None = None,
                    n_batch: int = 512, flash_attn: bool | None = None,
                    runtime: str | None = None, reserve_ram: int | None = None,
                    reserve_vram: int | None = None, projector_bytes: int = 0,
                    projector_compute_bytes: int | None = None) -> DeploymentPlan:
    """Choose n_gpu_layers, threads, context and KV-cache type for `model` on `target`.

    Most layers on the GPU that fit its free memory (all of them on unified memory when it
    allows), f16 KV cache unless a quantized one is what makes it fit, the requested context (or,
    without one, the longest up to the model's own that fits), threads = physical performance
    cores. When nothing fits it says so and what would (a shorter context, a smaller quant).
    Memory is sized for `runtime` (llama-server, ollama or python; runtimes.py) and the plan says so."""
    from edgepack.machine.devices import resolve_target
    from edgepack.runtime.toolchain import check_loadable_architecture

    g = load_geometry(model)
    check_loadable_architecture(g.architecture, Path(g.path).name)  # "fits" means nothing if it cannot load
    target = resolve_target(target)
    n_layers = g.n_layers
    if isinstance(n_gpu_layers, str):
        n_gpu_layers = parse_gpu_layers(n_gpu_layers, n_layers)
    if kv_type is not None and kv_type not in KV_TYPES:
        raise PlanError(f"unknown KV cache type {kv_type!r}; choose one of {', '.join(KV_TYPES)}")
    rt = get_runtime(runtime)
    ram, vram, offload = _budgets(target, reserve_vram)
    notes: list[str] = list(target.notes)
    notes.append(f"memory sized for {rt.name}: its process adds {(rt.reserve_ram if reserve_ram is None else reserve_ram) / MIB:.0f} MiB "
                 f"({rt.basis if reserve_ram is None else 'given'})")
    if projector_bytes and projector_compute_bytes is None:
        notes.append("the projector's image-encoder compute buffer is not counted: it was not measured (build "
                     "llama-mtmd-cli: `edgepack native build --tool llama-mtmd-cli`)")
    elif projector_bytes:
        notes.append(f"projector: {projector_bytes / MIB:.1f} MiB file + {projector_compute_bytes / MIB:.2f} MiB "
                     "image-encoder compute buffer (as llama-mtmd-cli reserved it)")
    if n_gpu_layers and not offload:
        raise PlanError(f"target {target.name} has no GPU that llama.cpp can use here; use n_gpu_layers 0")
    requested_ctx = ctx
    if ctx is not None:
        check_settings(g, ctx, n_gpu_layers or 0)
    unified = bool(target.gpu and target.gpu.unified_memory and offload)
    repack = repack_types(target)
    threads = n_threads or target.cpu.threads_for_inference()

    def estimate(c: int, ngl: int, kv: str) -> MemoryEstimate:
        fa = True if kv != "f16" else (flash_attn if flash_attn is not None else True)
        return estimate_memory(g, n_ctx=c, n_gpu_layers=ngl, kv_type=kv, n_batch=n_batch, flash_attn=fa,
                               unified_memory=unified, repack=repack if ngl <= n_layers else ({}, False),
                               runtime=rt.name, reserve_ram=reserve_ram, reserve_vram=reserve_vram,
                               projector_bytes=projector_bytes, projector_compute_bytes=projector_compute_bytes or 0)

    def best_for(c: int) -> MemoryEstimate | None:
        kvs = [kv_type] if kv_type else list(KV_TYPES)
        max_ngl = n_layers + 1 if offload else 0
        ngls = [n_gpu_layers] if n_gpu_layers is not None else list(range(max_ngl, -1, -1))
        best = None
        for kv in kvs:
            for ngl in ngls:
                est = estimate(c, ngl, kv)
                if _fits(est, ram, vram):
                    if best is None or ngl > best.n_gpu_layers:
                        best = est
                    break
            if best is not None and best.n_gpu_layers == ngls[0]:
                return best  # the first (least lossy) KV type that reaches the most offload wins
        return best

    candidates = [ctx] if ctx else _ctx_ladder(g.n_ctx_train or 4096)
    chosen = None
    for c in candidates:
        chosen = best_for(c)
        if chosen:
            break
    suggestions: list[str] = []
    fits = chosen is not None
    if not fits:
        c = ctx or candidates[-1]
        chosen = estimate(c, n_gpu_layers if n_gpu_layers is not None else (n_layers + 1 if offload else 0),
                          kv_type or "f16")
        suggestions = _what_would_fit(g, target, c, ram, vram, estimate, offload, n_gpu_layers, kv_type)
    if fits and chosen.kv_type != "f16":
        notes.append(f"KV cache {chosen.kv_type}: an f16 cache does not fit with {chosen.n_gpu_layers} GPU layers "
                     "(quantized KV needs flash attention, which the plan turns on)")
    if fits and offload and chosen.n_gpu_layers <= n_layers and n_gpu_layers is None:
        notes.append(f"{chosen.n_gpu_layers} of {n_layers} layers fit in GPU memory; the rest run on the CPU")
    if fits and requested_ctx is None and g.n_ctx_train and chosen.n_ctx < g.n_ctx_train:
        notes.append(f"context {chosen.n_ctx} is the longest that fits (the model supports {g.n_ctx_train})")
    return DeploymentPlan(
        model=g.path, model_name=g.name, quant=g.file_type, target=target.name, fits=fits,
        n_ctx=chosen.n_ctx if requested_ctx is None else requested_ctx, n_gpu_layers=chosen.n_gpu_layers,
        n_layers=n_layers, kv_type=chosen.kv_type, flash_attn=chosen.flash_attn, n_threads=threads, n_batch=n_batch,
        runtime=rt.name, ram_budget=ram, vram_budget=vram, memory=chosen,
        speed=predict_speed(g, target, chosen, n_threads=threads), notes=notes, suggestions=suggestions)


def parse_gpu_layers(value: str | int, n_layers: int) -> int:
    if isinstance(value, int):
        return value
    value = value.strip().lower()
    if value in ("all", "max"):
        return n_layers + 1
    if not value.lstrip("-").isdigit():
        raise PlanError(f"n_gpu_layers {value!r} is not a number or 'all'")
    return int(value)


def _ctx_ladder(n_ctx_train: int) -> list[int]:
    """The model's own context, then halvings down to 512, for 'the longest context that fits'."""
    ladder = [n_ctx_train]
    c = 1 << (n_ctx_train.bit_length() - 1)
    c = c // 2 if c == n_ctx_train else c
    while c >= 512:
        ladder.append(c)
        c //= 2
    return ladder


def _what_would_fit(g, target, ctx, ram, vram, estimate, offload, n_gpu_layers, kv_type) -> list[str]:
    from edgepack.quantize.types import QUANT_TYPES

    out = []
    for c in _ctx_ladder(ctx)[1:]:
        for kv in ([kv_type] if kv_type else list(KV_TYPES)):
            est = estimate(c, n_gpu_layers if n_gpu_layers is not None else 0, kv)
            if _fits(est, ram, vram):
                out.append(f"a shorter context: {c} tokens with a {kv} KV cache fits")
                break
        if out:
            break
    base = estimate(ctx, 0, kv_type or "q8_0")
    budget = ram if not offload or vram is None else (max(ram or 0, vram) if not target.unified_memory else ram)
    if budget:
        spare = budget - (base.total - base.weights_ram - base.repack_ram)
        bits_that_fit = spare * 8 / g.n_params if g.n_params else 0
        smaller = [q.name for q in QUANT_TYPES if not q.is_float and not q.needs_imatrix and q.bits + 0.3 <= bits_that_fit]
        if smaller:
            out.append(f"a smaller quant: about {bits_that_fit:.1f} bits per weight would fit at context {ctx} "
                       f"(e.g. {smaller[0]})")
        else:
            out.append(f"no quant of this model fits at context {ctx}: it needs more memory than {budget / 2**30:.1f} GiB")
    return out


# ---------------------------------------------------------------- a bundle: which quant

@dataclass
class QuantChoice:
    quant: str
    file: str
    size_bytes: int
    fits: bool
    quality: float | None        # lower is better (mean KLD, or PPL ratio) when measured
    quality_metric: str
    plan: DeploymentPlan


@dataclass
class BundlePlan:
    bundle: str
    target: str
    recommended: str | None
    reason: str
    choices: list[QuantChoice]

    @property
    def plan(self) -> DeploymentPlan | None:
        return next((c.plan for c in self.choices if c.quant == self.recommended), None)

    def to_dict(self) -> dict:
        return {"bundle": self.bundle, "target": self.target, "recommended": self.recommended, "reason": self.reason,
                "choices": [{**{k: v for k, v in asdict(c).items() if k != "plan"}, "plan": c.plan.to_dict()}
                            for c in self.choices]}


# (EvaluationResult field, name shown); lower is better; the first one measured is used for every quant
QUALITY_METRICS = (("kld", "mean_kld"), ("ppl", "ppl"))


def measured_quality(evaluation, files=None) -> dict[str, tuple[str, float]]:
    """{quant: (metric, value)} from the manifest's typed evaluation section, lower is better.

    With `files` (the manifest's BundleFiles), a result counts only when it measured the very GGUF
    listed now (same sha256): an evaluation of a quant the bundle has since rebuilt is not used.
    Results migrated from 0.1 carry no sha256 and count by quant."""
    if evaluation is None:
        return {}
    current = {f.quant: f.sha256 for f in files} if files is not None else None
    rows = [r for r in evaluation.results if not r.is_reference
            and (current is None or (r.quant in current and r.sha256 in (None, current[r.quant])))]
    for field_name, metric in QUALITY_METRICS:
        found = {r.quant: (metric, float(getattr(r, field_name))) for r in rows
                 if getattr(r, field_name) is not None}
        if found:
            return found
    return {}


def plan_bundle(bundle_dir: str | Path, target: MachineProfile | str | None = None, ctx: int | None = None,
                **kwargs) -> BundlePlan:
    """Plan every quant of a bundle and recommend the best-measured one that fits."""
    from edgepack.bundle import load_manifest
    from edgepack.machine.devices import resolve_target

    bundle_dir = Path(bundle_dir)
    manifest = load_manifest(bundle_dir)
    target = resolve_target(target)
    quality = measured_quality(manifest.evaluation, manifest.files)
    kwargs.setdefault("projector_bytes", manifest.projector.size_bytes if manifest.projector else 0)
    if manifest.projector and manifest.files and "projector_compute_bytes" not in kwargs:
        from edgepack.measure.image import projector_compute_bytes

        smallest = min(manifest.files, key=lambda f: f.size_bytes)  # the encoder's buffer is the projector's own
        kwargs["projector_compute_bytes"] = projector_compute_bytes(
            bundle_dir / manifest.projector.file, manifest.projector.sha256, bundle_dir / smallest.file)
    choices = []
    for f in manifest.files:
        p = plan_deployment(bundle_dir / f.file, target, ctx, **kwargs)
        metric, value = quality.get(f.quant, ("bits_per_weight", None))
        choices.append(QuantChoice(f.quant, f.file, f.size_bytes, p.fits, value, metric if value is not None
                                   else "bits_per_weight", p))
    fitting = [c for c in choices if c.fits]
    by_bits = {f.quant: f.bits_per_weight for f in manifest.files}
    if not fitting:
        return BundlePlan(str(bundle_dir), target.name, None,
                          f"no quant in the bundle fits {target.name}" + (f" at context {ctx}" if ctx else ""), choices)
    measured = [c for c in fitting if c.quality is not None]
    if measured:
        best = min(measured, key=lambda c: (c.quality, c.size_bytes))
        reason = f"lowest measured {best.quality_metric} ({best.quality:.4g}) among the quants that fit"
    else:
        best = max(fitting, key=lambda c: (by_bits.get(c.quant, 0), -c.size_bytes))
        reason = "most bits per weight among the quants that fit (no measured quality in the manifest)"
    return BundlePlan(str(bundle_dir), target.name, best.quant, reason, choices)
