"""Disk space for a whole build, checked before the first slow step.

A 70B build writes a 140 GB reference, then every quant into a staging directory beside the
output, and (with --split-max-size) briefly a quant and its parts side by side. Finding out
that the disk is full after an hour of conversion is the failure this module prevents: every
file the build will write is estimated up front, the estimates are added up per filesystem
(the reference may live on another disk with --reference-dir), and the build stops with one
line naming the disk that is short. The estimates are upper bounds; llama.cpp writes no
more than the tensors plus metadata.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack.errors import OutputError

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


@dataclass
class SpaceNeed:
    what: str
    where: Path  # a directory (it may not exist yet)
    bytes: int


@dataclass
class DiskPlan:
    needs: list[SpaceNeed] = field(default_factory=list)

    def add(self, what: str, where: Path, nbytes: int) -> None:
        if nbytes > 0:
            self.needs.append(SpaceNeed(what, Path(where), int(nbytes)))

    def by_filesystem(self) -> dict[int, tuple[Path, int, list[str]]]:
        """Device id -> (a directory on it, bytes needed, what for)."""
        out: dict[int, tuple[Path, int, list[str]]] = {}
        for need in self.needs:
            existing = _existing_ancestor(need.where)
            dev = os.stat(existing).st_dev
            where, total, whats = out.get(dev, (existing, 0, []))
            out[dev] = (where, total + need.bytes, whats + [need.what])
        return out

    def check(self, ensure=None) -> None:
        """OutputError naming the first filesystem without room for what goes there (through
        `ensure(directory, bytes, what)` when given, e.g. the pipeline's ensure_free_space)."""
        for where, total, whats in self.by_filesystem().values():
            if ensure is not None:
                ensure(where, total, ", ".join(whats))
                continue
            free = shutil.disk_usage(where).free
            if total > free:
                raise OutputError(
                    f"not enough free space in {where} for {', '.join(whats)}: need about {total / 2**20:.0f} MiB, "
                    f"{free / 2**20:.0f} MiB free; free some space, choose another -o, or put the 16-bit reference "
                    "elsewhere with --reference-dir")

    def to_dict(self) -> dict:
        return {"needs": [asdict(n) | {"where": str(n.where)} for n in self.needs],
                "total_bytes": sum(n.bytes for n in self.needs)}


def _existing_ancestor(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path if path.is_dir() else path.parent


def checkpoint_bytes(directory: Path) -> int:
    """Bytes of weights in a HF checkpoint directory."""
    return sum(p.stat().st_size for p in Path(directory).glob("*") if p.suffix in _WEIGHT_SUFFIXES)


def checkpoint_dtype_bytes(directory: Path) -> int:
    try:
        config = json.loads((Path(directory) / "config.json").read_text())
    except (OSError, ValueError):
        return 4
    dtype = config.get("torch_dtype") or config.get("dtype") or (config.get("text_config") or {}).get("torch_dtype")
    return 4 if dtype in (None, "float32") else 2


def estimate_params(source_path: Path) -> int:
    """Parameters of a HF checkpoint (from its weight bytes and dtype) or of a GGUF (from its tensors)."""
    source_path = Path(source_path)
    if source_path.is_dir():
        return checkpoint_bytes(source_path) // checkpoint_dtype_bytes(source_path)
    from edgepack.gguf_file import read_gguf

    return read_gguf(source_path).n_params


def quant_bytes(n_params: int, bits: float) -> int:
    # K-quant mixes keep a few tensors larger than the base type; 10 % covers them and metadata.
    return int(n_params * bits / 8 * 1.1) + (1 << 20)


def _reference_bytes(n_params: int, bytes_per_weight: int) -> int:
    # norms stay F32 and the vocabulary is metadata: 2 % and 4 MiB cover both
    return int(n_params * bytes_per_weight * 1.02) + (4 << 20)


def plan_build_space(source, *, outtype: str, quant_bits: list[float], output_dir: Path, reference_dir: Path,
                     reference_cached: bool, split: bool = False, merge_adapter: bool = False,
                     merged_dir: Path | None = None) -> DiskPlan:
    """Every file a build will write, before it writes any: the merged checkpoint (--merge-adapter),
    the 16-bit reference (unless cached), the staging bundle beside the output, and with --split-*
    the largest quant once more while it is split."""
    from edgepack.source.split import is_split_part, split_parts

    plan = DiskPlan()
    path = Path(source.path)
    if path.is_dir():
        n_params = estimate_params(path)
        if merge_adapter:
            plan.add("the merged checkpoint", merged_dir or reference_dir, checkpoint_bytes(path))
        if not reference_cached:
            plan.add("the 16-bit reference GGUF", reference_dir, _reference_bytes(n_params, 4 if outtype == "f32" else 2))
    else:
        parts = split_parts(path) if is_split_part(path) else [path]
        n_params = sum(estimate_params(p) for p in parts)
        if len(parts) > 1:
            plan.add("the merged split source", reference_dir, sum(p.stat().st_size for p in parts))
        from edgepack.gguf_file import read_gguf

        if not read_gguf(parts[0]).is_float and not reference_cached:
            plan.add("the dequantized F16 reference", reference_dir, _reference_bytes(n_params, 2))
    sizes = [quant_bytes(n_params, b) for b in quant_bits]
    # vision towers and adapters are small next to the text model; 2 % covers them
    plan.add(f"{len(sizes)} GGUF file(s) in the staging bundle", output_dir.parent, int(sum(sizes) * 1.02))
    if split and sizes:
        plan.add("splitting the largest quant", output_dir.parent, max(sizes))
    return plan
