"""Stage 5: the bundle directory: GGUFs, Modelfiles, manifest.json and a model card.

`manifest.json` is the bundle's record (source and revision, toolchain, per-file quant,
size, bits per weight, parameters, sha256, options, timings); later stages read it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


from edgepack import progress
from edgepack.atomic import write_text_atomic
from edgepack.errors import EdgepackError
from edgepack.gguf_file import read_gguf
from edgepack.hashing import sha256_file

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = 1


@dataclass
class BundleFile:
    file: str
    quant: str
    ftype: int | None
    size_bytes: int
    bits_per_weight: float
    n_params: int
    sha256: str
    options: dict
    llama_quantize_args: list[str]
    seconds: dict  # {"quantize": s, "sha256": s}
    modelfile: str | None = None
    tensor_types: dict = field(default_factory=dict)


@dataclass
class Manifest:
    edgepack_version: str
    created: str
    source: dict
    toolchain: dict
    reference: dict
    model: dict
    files: list[BundleFile]
    timings: dict
    default_modelfile: str | None = None
    imatrix: dict | None = None  # dataset, chunks, sha256 of the importance matrix every quant used
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    schema: int = MANIFEST_SCHEMA
    extra: dict = field(default_factory=dict)  # sections later stages add (evaluation, tuning, ...)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Manifest":
        data = dict(data)
        data["files"] = [BundleFile(**f) for f in data.get("files", [])]
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def file(self, quant: str) -> BundleFile | None:
        return next((f for f in self.files if f.quant == quant), None)


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def load_manifest(bundle_dir: str | Path) -> Manifest:
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST
    if not bundle_dir.is_dir():
        raise EdgepackError(f"{bundle_dir}: no such bundle directory")
    if not path.is_file():
        raise EdgepackError(f"{bundle_dir} is not an edgepack bundle (no {MANIFEST}); build one with `edgepack build -o {bundle_dir}`")
    try:
        return Manifest.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise EdgepackError(f"{path} is not a valid edgepack manifest ({exc})") from None


def write_manifest(bundle_dir: Path, manifest: Manifest) -> Path:
    return write_text_atomic(bundle_dir / MANIFEST, json.dumps(manifest.to_dict(), indent=2) + "\n")


def file_entry(path: Path, quant: str, options: dict, llama_quantize_args: list[str], quantize_seconds: float) -> BundleFile:
    info = read_gguf(path)
    start = time.perf_counter()
    digest = sha256_file(path, memo=False)
    return BundleFile(
        file=path.name, quant=quant, ftype=info.file_type_id, size_bytes=info.size_bytes,
        bits_per_weight=info.bits_per_weight, n_params=info.n_params, sha256=digest, options=options,
        llama_quantize_args=llama_quantize_args,
        seconds={"quantize": quantize_seconds, "sha256": progress.elapsed(start)},
        tensor_types={k: v.tensors for k, v in info.tensor_types.items()},
    )
