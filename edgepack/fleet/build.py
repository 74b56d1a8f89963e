"""`build --fleet`: the 16-bit reference once at the head, every quant (and its evaluation) as
its own Ray task with a memory requirement, the bundle assembled at the head by the same
`pipeline.run_build` a local build runs, so the two bundles are byte-identical but for timings.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack.errors import FleetError
from edgepack.fleet.cluster import connect, import_ray, select_devices
from edgepack.fleet.tasks import evaluate_file, quantize_file, remote
from edgepack.fleet.worker import DEVICE_RESOURCE, LABEL_PREFIX

RETRIES = 2  # a quant whose device disconnects is done again elsewhere


@dataclass
class TaskPlacement:
    """Where one task ran and what it cost around the engine's own work."""

    kind: str                 # quantize | evaluate
    item: str                 # quant or file name
    device: str | None
    submitted: float          # head clock (time.time())
    started: float            # device clock
    finished: float           # device clock
    received: float           # head clock
    engine_seconds: float     # the engine's own time (quantize / evaluate)

    @property
    def overhead_seconds(self) -> float:
        """Task time not spent in the engine: writing its inputs, reading its output (and for an
        evaluation, the report evaluate() writes)."""
        return max(0.0, self.finished - self.started - self.engine_seconds)

    @property
    def queued_seconds(self) -> float:
        """Submitted until started: waiting for a free device and the inputs' transfer."""
        return max(0.0, self.started - self.submitted)

    @property
    def returned_seconds(self) -> float:
        """Finished until the head had the result (an upper bound: the head takes results in order)."""
        return max(0.0, self.received - self.finished)

    def to_dict(self) -> dict:
        return asdict(self) | {"overhead_seconds": round(self.overhead_seconds, 3),
                               "queued_seconds": round(self.queued_seconds, 3),
                               "returned_seconds": round(self.returned_seconds, 3)}


@dataclass
class FleetBuildResult:
    build: object             # pipeline.BuildResult
    placements: list[TaskPlacement] = field(default_factory=list)

    @property
    def evaluation(self):
        return self.build.evaluation

    def to_dict(self) -> dict:
        return self.build.to_dict() | {"fleet": [p.to_dict() for p in self.placements]}


def _where(result: dict) -> str | None:
    return result.get("device")


def _task_options(devices: list[str] | None, memory: int | None = None) -> dict:
    options = {"resources": {DEVICE_RESOURCE: 0.001}, "max_retries": RETRIES, "retry_exceptions": False}
    if memory:
        options["memory"] = memory
    if devices:
        options["label_selector"] = {LABEL_PREFIX + "device": f"in({','.join(devices)})"}
    return options


def fleet_build(plan, *, address: str, devices: str | None = None) -> FleetBuildResult:
    """`pipeline.run_build(plan)` with quantization (and the plan's evaluation) done by the fleet's devices.

    The reference is made here once; each missing quant becomes a task that asks for the memory it
    needs; what the devices return goes into the quant cache under the key the build itself looks
    up, so the build here takes it as a finished quant and assembles the bundle as a local build does.
    """
    from dataclasses import replace

    from edgepack import pipeline
    from edgepack.atomic import atomic_output
    from edgepack.bundle.manifest import file_entry
    from edgepack.gguf_file import read_gguf
    from edgepack.hashing import file_record
    from edgepack.quantize.cache import cache_entry
    from edgepack.quantize.prepare import estimate_quant_bytes
    from edgepack.runtime.toolchain import ensure_toolchain
    from edgepack.source import make_reference, resolve_source

    companions = getattr(plan, "companions", None)
    if plan.calibration or plan.imatrix or plan.dry_run or getattr(companions, "merge_adapter", False):
        raise FleetError("--fleet builds do not take --calibration, --imatrix, --merge-adapter or --dry-run yet; "
                         "build those locally")
    checked = pipeline.check_plan(plan)  # every quick check before anything is sent
    connect(address)
    ray = import_ray()
    chosen = select_devices(devices)
    names = [d.name for d in chosen] if devices else None
    toolchain = ensure_toolchain()
    src = resolve_source(plan.source, plan.revision, trust_remote_code=plan.trust_remote_code)
    reference = make_reference(src, plan.outtype, toolchain=toolchain, trust_remote_code=plan.trust_remote_code,
                               cache_dir=checked.reference_dir)
    ref_info = read_gguf(reference.path)
    ref_size = reference.path.stat().st_size
    keys = {q.name: cache_entry(reference.sha256, q, plan.options, None, toolchain.to_dict()) for q in checked.wanted}
    todo = [q for q in checked.wanted if keys[q.name].lookup() is None]  # a cached quant the build resumes itself
    room = max((d.resources.get("memory") or 0) for d in chosen)
    for quant in todo:  # a task no device can hold would wait forever: say so now
        need = ref_size + estimate_quant_bytes(ref_info.n_params, quant)
        if need > room:
            raise FleetError(f"quantizing {quant.name} needs {need / 2**20:.0f} MiB and no selected device offers "
                             f"that much to Ray (at most {room / 2**20:.0f} MiB); add a device or pick others")
    shipped = ray.put(reference.path.read_bytes())  # the reference travels once per device, by the object store
    fields = asdict(plan.options)
    submitted = {}
    for quant in todo:
        need = ref_size + estimate_quant_bytes(ref_info.n_params, quant)  # source and output in memory
        task = remote(quantize_file).options(**_task_options(names, need)).remote(reference.path.name, shipped,
                                                                                   quant.name, fields)
        submitted[task] = (quant, time.time())
    placements: list[TaskPlacement] = []
    pending = list(submitted)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        quant, t0 = submitted[ready[0]]
        try:
            done = ray.get(ready[0])
        except Exception as exc:
            cause = getattr(exc, "cause", None) or exc
            raise FleetError(f"quantizing {quant.name} on the fleet failed: {str(cause).splitlines()[0]}") from None
        placements.append(TaskPlacement("quantize", quant.name, _where(done), t0, done["started"], done["finished"],
                                        time.time(), done["seconds"]))
        key = keys[quant.name]
        key.folder.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_output(key.gguf) as tmp:
                Path(tmp).write_bytes(done["data"])
            entry = file_entry(key.gguf, quant.name, plan.options.to_dict(), plan.options.llama_quantize_args(),
                               done["seconds"])
            key.record(file_record(key.gguf, entry.sha256), done["seconds"], asdict(entry))
        except BaseException:
            key.drop()  # no half entry left in the cache
            raise
    result = pipeline.run_build(replace(plan, evaluate=None, ollama_name=None))
    if plan.evaluate is not None:
        result.evaluation = _fleet_evaluate(result, reference.path, shipped, plan.evaluate, names, placements)
    if plan.ollama_name:
        from edgepack.chat.ollama import create

        result.ollama = create(plan.ollama_name, result.bundle_dir / (result.manifest.default_modelfile or "Modelfile"))
    return FleetBuildResult(result, placements)


def _fleet_evaluate(result, ref_path: Path, shipped, plan, names, placements: list[TaskPlacement]):
    """Rows of `edgepack eval` computed as tasks, then the report made at the head by evaluate() itself."""
    from edgepack.hashing import sha256_file
    from edgepack.measure.evaluate import ROWS_FILE, EvalPlan, _plan_key, evaluate, save_row
    from edgepack.measure.report import Row
    from edgepack.measure.texts import load_eval_text

    ray = import_ray()
    plan = plan or EvalPlan()
    bundle = result.bundle_dir
    t0 = time.time()
    ref_task = remote(evaluate_file).options(**_task_options(names)).remote(ref_path.name, shipped, ref_path.name,
                                                                            None, plan, None)
    tasks = {}
    for f in result.manifest.files:
        data = ray.put((bundle / f.file).read_bytes())
        tasks[f.file] = remote(evaluate_file).options(**_task_options(names)).remote(
            ref_path.name, shipped, f.file, data, plan, ref_task)
    rows = []
    for item, task in [(ref_path.name, ref_task)] + list(tasks.items()):
        try:
            done = ray.get(task)
        except Exception as exc:
            cause = getattr(exc, "cause", None) or exc
            raise FleetError(f"evaluating {item} on the fleet failed: {str(cause).splitlines()[0]}") from None
        placements.append(TaskPlacement("evaluate", item, _where(done), t0, done["started"], done["finished"],
                                        time.time(), done["row"]["seconds"] or 0.0))
        rows.append(done)
    key = _plan_key(plan, sha256_file(ref_path), load_eval_text(plan.text).sha256)
    from edgepack.bundle.record import writing_into

    with writing_into(bundle, "eval"):  # the rows, saved where evaluate() resumes from
        for done in rows:
            save_row(bundle / ROWS_FILE, key, done["sha256"], Row(**done["row"]))
    report, _ = evaluate([bundle], reference=ref_path, plan=plan)  # every row is there: it only writes the report
    return report


__all__ = ["FleetBuildResult", "TaskPlacement", "fleet_build"]
