"""The work a device does for the fleet, as Ray tasks that call edgepack's own engines.

Files travel through Ray's object store: the head puts each GGUF (or the 16-bit reference) once,
every task that needs it gets the same object, and a device writes it to a temporary directory
before running the same bench, quantize or evaluate code a local run uses. Results come back as
plain data (rows, bytes), so the head assembles reports and bundles exactly as a local run does.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from edgepack.fleet.cluster import import_ray


def _tempdir():
    return tempfile.TemporaryDirectory(prefix="edgepack-fleet-")


def _device_here() -> str | None:
    """The device name of the node this task runs on (from its labels)."""
    from edgepack.fleet.worker import LABEL_PREFIX

    try:
        labels = import_ray().get_runtime_context().get_node_labels()
    except Exception:
        return None
    value = labels.get(LABEL_PREFIX + "device")
    return value[0] if isinstance(value, list) else value


def bench_file(device: dict, file_name: str, quant: str | None, data: bytes | str, settings: dict) -> dict:
    """Bench one GGUF on this device; rows under llama-bench's field names, tagged with the device.

    `data` is the file's bytes (from the object store) or its path in a directory every device
    mounts (`--shared-dir`), read where it is."""
    from edgepack.errors import FleetError
    from edgepack.measure.bench import _machine_summary, bench_sweep

    started = time.time()
    with _tempdir() as tmp:
        if isinstance(data, str):
            path = Path(data)
            if not path.is_file():
                raise FleetError(f"{path} is not there on {device['name']}: is the shared directory mounted?")
        else:
            path = Path(tmp) / file_name
            path.write_bytes(data)
        report = bench_sweep([path], **settings)
    summary = _machine_summary(report.machine)
    rows = []
    for record in report.results:
        row = record.to_dict()
        row.update(machine=device["name"], quant=quant or row["quant"], model_filename=file_name, device=device,
                   machine_profile=summary)
        rows.append(row)
    return {"device": device["name"], "file": file_name, "rows": rows, "started": started, "finished": time.time()}


def quantize_file(reference_name: str, reference: bytes, quant_name: str, options: dict) -> dict:
    """Quantize the 16-bit reference to one type here; the GGUF's bytes and llama.cpp's numbers."""
    from edgepack.quantize.engine import QuantOptions, quantize_gguf
    from edgepack.quantize.types import resolve_quants

    started = time.time()
    quant = resolve_quants([quant_name])[0]
    with _tempdir() as tmp:
        source = Path(tmp) / reference_name
        source.write_bytes(reference)
        result = quantize_gguf(source, Path(tmp) / f"{quant.name}.gguf", quant, QuantOptions(**options))
        data = result.path.read_bytes()
    return {"quant": quant.name, "data": data, "seconds": result.seconds, "size_bytes": result.size_bytes,
            "bits_per_weight": result.bits_per_weight, "device": _device_here(), "started": started,
            "finished": time.time()}


def evaluate_file(reference_name: str, reference: bytes, file_name: str, data: bytes | None, plan,
                  reference_row: dict | None) -> dict:
    """One row of `edgepack eval` (the file against the reference) computed here, by evaluate() itself.

    `data` None evaluates the reference's own row. `reference_row` (that task's result) goes into
    evaluate's resume file, so the reference is not measured again for every quant.
    """
    from edgepack.hashing import sha256_file
    from edgepack.measure.evaluate import ROWS_FILE, _plan_key, evaluate, save_row
    from edgepack.measure.report import Row
    from edgepack.measure.texts import load_eval_text

    started = time.time()
    with _tempdir() as tmp:
        tmp = Path(tmp)
        ref = tmp / reference_name
        ref.write_bytes(reference)
        targets = []
        if data is not None:
            (tmp / "models").mkdir()
            target = tmp / "models" / file_name
            target.write_bytes(data)
            targets.append(target)
        out = tmp / "report"
        out.mkdir()
        ref_sha = sha256_file(ref)
        if reference_row:
            save_row(out / ROWS_FILE, _plan_key(plan, ref_sha, load_eval_text(plan.text).sha256), ref_sha,
                     Row(**reference_row["row"]))
        report, _ = evaluate(targets, reference=ref, plan=plan, output_dir=out)
        sha = sha256_file(targets[0]) if targets else ref_sha
    name = file_name if data is not None else reference_name
    row = next(r for r in report.rows if r.file == name)
    from dataclasses import asdict

    return {"file": name, "row": asdict(row), "sha256": sha, "device": _device_here(), "started": started,
            "finished": time.time()}


def device_profile() -> dict:
    """This device's machine profile, measured here."""
    from edgepack.machine.profile import this_machine

    return this_machine(measure_bandwidth=True).to_dict()


_REMOTE: dict = {}


def remote(fn):
    """`fn` as a Ray remote function (made once per process, so importing this module needs no Ray)."""
    if fn.__name__ not in _REMOTE:
        _REMOTE[fn.__name__] = import_ray().remote(max_retries=0)(fn)
    return _REMOTE[fn.__name__]


__all__ = ["bench_file", "device_profile", "evaluate_file", "quantize_file", "remote"]
