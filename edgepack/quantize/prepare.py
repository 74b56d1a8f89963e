"""What the quantize stage checks and settles before any quant is made: the importance-matrix plan,
tensor patterns that must match, the size each quant will have, and the imatrix itself."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from edgepack.errors import QuantError
from edgepack.hashing import sha256_file
from edgepack.quantize.engine import QuantOptions, quantize_gguf
from edgepack.quantize.types import QuantType


def check_calibration_plan(wanted: list[QuantType], calibration, imatrix) -> None:
    """Fail before any slow step when an imatrix-only type has no calibration."""
    if calibration and imatrix:
        raise QuantError("give either --calibration or --imatrix, not both")
    if imatrix is not None and not Path(imatrix).is_file():
        raise QuantError(f"imatrix file {imatrix} does not exist")
    if not (calibration or imatrix):
        needy = [q.name for q in wanted if q.needs_imatrix]
        if needy:
            raise QuantError(f"{', '.join(needy)} need{'s' if len(needy) == 1 else ''} an importance matrix: "
                             "add --calibration FILE (or --calibration default) or --imatrix FILE")


def check_tensor_options(options: QuantOptions, ref_info) -> None:
    """Patterns must match a tensor and pruned layers must exist (llama.cpp would silently ignore them)."""
    if options.tensor_types:
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


def estimate_quant_bytes(n_params: int, quant: QuantType) -> int:
    # K-quant mixes keep a few tensors larger than the base type; 10 % covers them and metadata.
    return int(n_params * quant.bits / 8 * 1.1) + (1 << 20)


@dataclass
class ImatrixChoice:
    """The importance matrix every quant of this build uses (None: none), and the options naming it."""

    options: QuantOptions
    record: dict | None = None  # what the manifest keeps: dataset, chunks, sha256, ...

    @property
    def sha256(self) -> str | None:
        return self.record["sha256"] if self.record else None


def settle_imatrix(reference_path: Path, n_params: int, options: QuantOptions, *, imatrix=None,
                   calibration_text=None, chunks: int | None = None) -> ImatrixChoice:
    """Check a given imatrix against the model, or compute one from calibration text (cached)."""
    from edgepack.quantize.imatrix import check_imatrix_fits, compute_imatrix

    if imatrix is not None:
        data = check_imatrix_fits(imatrix, reference_path)
        record = {"path": str(imatrix), "dataset": ", ".join(Path(d).stem for d in data["datasets"]) or None,
                  "chunks": data["chunks"], "chunk_size": data["chunk_size"], "entries": len(data["entries"]),
                  "sha256": sha256_file(imatrix), "computed": False}
        return ImatrixChoice(replace(options, imatrix=str(imatrix)), record)
    if calibration_text is not None:
        computed = compute_imatrix(reference_path, calibration_text, chunks=chunks, n_params=n_params)
        return ImatrixChoice(replace(options, imatrix=str(computed.path)), computed.to_dict() | {"computed": True})
    return ImatrixChoice(options)


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


def dry_run_sizes(model: str, reference, wanted: list[QuantType], options: QuantOptions) -> DryRunResult:
    sizes = []
    for quant in wanted:
        r = quantize_gguf(reference.path, None, quant, options, dry_run=True)
        sizes.append(DryRunSize(quant.name, r.size_bytes, r.bits_per_weight))
    return DryRunResult(model, reference.to_dict(), sizes, options.to_dict())
