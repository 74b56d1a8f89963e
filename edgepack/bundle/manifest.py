"""Stage 5: the bundle's record, `manifest.json`, as types.

The manifest names the source and revision, the toolchain, every file (quant, size, bits per
weight, parameters, sha256, options, timings) and the typed sections later stages add: the chat
template the Modelfiles use, the evaluation, the tuning and the deployment plans. Loading it
checks every type (pydantic, strict), the schema version (schema 1, written by edgepack 0.1 with an
untyped `extra` dict, is migrated), and every file name it holds (see names.py), so nothing that
reads a bundle ever follows a name out of it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import Required, TypedDict  # pydantic needs typing_extensions' TypedDict before 3.12

from edgepack import progress
from edgepack.atomic import write_text_atomic
from edgepack.bundle.names import MANIFEST, check_bundle_paths
from edgepack.errors import ManifestError
from edgepack.gguf_file import read_gguf
from edgepack.hashing import remember_sha256, sha256_file

MANIFEST_SCHEMA = 2
MODEL_CARD = "README.md"
# What `edgepack eval` writes into a bundle besides the manifest and the card (0.1 wrote the same).
EVALUATION_FILES = ("report.md", "report.json", "report.csv", "quality.png", "speed.png", "eval-rows.jsonl")

_STRICT = ConfigDict(extra="forbid")
_OPEN = ConfigDict(extra="allow")


# The provenance sections stay plain dicts in Python (`manifest.model["name"]`); their keys that later
# stages read are typed here (TypedDicts: checked on load, other keys allowed).
@with_config(_OPEN)
class SourceInfo(TypedDict, total=False):
    kind: Required[str]
    spec: Required[str]
    name: Required[str]
    path: str | None
    revision: str | None
    license: str | None


@with_config(_OPEN)
class ReferenceInfo(TypedDict, total=False):
    path: Required[str]
    outtype: Required[str]
    sha256: Required[str]
    size_bytes: Required[int]
    dequantized_from: str | None


@with_config(_OPEN)
class ModelInfo(TypedDict, total=False):
    name: Required[str]
    architecture: str | None
    n_params: Required[int]
    n_layers: int | None
    context_length: int | None
    has_chat_template: bool


@with_config(_OPEN)
class ToolchainInfo(TypedDict, total=False):
    llama_cpp_python: Required[str]
    llama_cpp_commit: Required[str]
    build: Required[str]


@dataclass
class BundleFile:
    __pydantic_config__ = _STRICT

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
class ChatTemplateInfo:
    """The chat format the Modelfiles' TEMPLATE was translated from (family None: none translated)."""

    __pydantic_config__ = _STRICT

    family: str | None = None
    variant: str | None = None
    system_handling: str | None = None


@dataclass
class EvaluationResult:
    """One row of the evaluation report, as the manifest keeps it."""

    __pydantic_config__ = _STRICT

    quant: str
    sha256: str | None = None  # of the measured GGUF; None in manifests migrated from 0.1
    is_reference: bool = False
    kld: float | None = None
    ppl: float | None = None
    same_top: float | None = None
    tg_tps: float | None = None
    image_ttft_ms: float | None = None  # one image prompt with the bundle's projector (absent: text-only)


@dataclass
class Evaluation:
    __pydantic_config__ = _STRICT

    text: str
    settings: dict
    machine: dict
    results: list[EvaluationResult]
    report: str = "report.md"
    recommendation: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=lambda: list(EVALUATION_FILES))  # report files in the bundle

    def result(self, quant: str) -> EvaluationResult | None:
        return next((r for r in self.results if r.quant == quant and not r.is_reference), None)


@dataclass
class TunedSettings:
    __pydantic_config__ = _STRICT

    n_threads: int
    n_gpu_layers: int
    n_batch: int


@dataclass
class Tuning:
    __pydantic_config__ = _STRICT

    quant: str
    settings: TunedSettings
    modelfile_parameters: dict
    machine: dict
    method: dict
    candidates: list[dict]
    tuned_at: str
    sha256: str | None = None  # of the tuned GGUF; None in manifests migrated from 0.1


@dataclass
class PlanRecord:
    """The deployment plan a build made for one quant on its `--target` (Modelfile PARAMETERs)."""

    __pydantic_config__ = _STRICT

    target: str
    fits: bool
    n_ctx: int
    n_gpu_layers: int
    n_threads: int
    kv_type: str
    suggestions: list[str] = field(default_factory=list)

    def modelfile_parameters(self) -> dict:
        return {"num_ctx": self.n_ctx, "num_gpu": self.n_gpu_layers, "num_thread": self.n_threads} if self.fits else {}


@dataclass
class PartRecord:
    """One file that travels with the quants: a split part, with its sha256."""

    __pydantic_config__ = _STRICT

    file: str
    size_bytes: int
    sha256: str


@dataclass
class ProjectorRecord:
    """A multimodal source's projector GGUF (mmproj), paired with every quant (bundle/companions.py)."""

    __pydantic_config__ = _STRICT

    file: str
    sha256: str
    size_bytes: int
    outtype: str
    projector_type: str | None
    projection_dim: int | None
    modalities: list[str]


@dataclass
class AdapterRecord:
    """A LoRA adapter: shipped as `file` (ADAPTER, --lora) or merged into every quant; its measured effect."""

    __pydantic_config__ = _STRICT

    name: str
    rank: int | None
    alpha: float | None
    target_modules: list[str]
    merged: bool
    effect: dict | None  # edgepack.source.adapter.AdapterEffect.to_dict()
    file: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    outtype: str | None = None


@dataclass
class SplitRecord:
    __pydantic_config__ = _STRICT

    max_size: str | None
    max_tensors: int | None
    parts: dict[str, list[PartRecord]]  # quant -> its parts, in order


@dataclass
class Manifest:
    __pydantic_config__ = _STRICT

    edgepack_version: str
    created: str
    source: SourceInfo
    toolchain: ToolchainInfo
    reference: ReferenceInfo
    model: ModelInfo
    files: list[BundleFile]
    timings: dict
    default_modelfile: str | None = None
    imatrix: dict | None = None  # dataset, chunks, sha256 of the importance matrix every quant used
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    schema: int = MANIFEST_SCHEMA
    chat_template: ChatTemplateInfo | None = None
    chat: dict | None = None  # per runtime, how chat is rendered and proven: edgepack.chat.report.ChatReport.to_dict()
    evaluation: Evaluation | None = None
    tuning: Tuning | None = None
    plans: dict[str, PlanRecord] = field(default_factory=dict)
    projector: ProjectorRecord | None = None
    adapter: AdapterRecord | None = None
    split: SplitRecord | None = None
    llama_server: str | None = None  # llama-server presets (--models-preset) pairing quants with projector/adapter

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict, *, where: str = MANIFEST) -> "Manifest":
        """Check and type a manifest's JSON object; schema 1 (edgepack 0.1) is migrated first."""
        from edgepack.bundle.names import check_manifest_names

        if not isinstance(data, dict):
            raise ManifestError(f"{where}: the manifest is not a JSON object; rebuild the bundle")
        schema = data.get("schema", 1)
        if type(schema) is int and schema == 1:  # (True == 1 in Python)
            data = migrate_schema_1(data)
        elif type(schema) is not int or schema != MANIFEST_SCHEMA:
            raise ManifestError(f"{where}: schema {schema!r} is not one this edgepack reads (1 or {MANIFEST_SCHEMA}); "
                                "use the edgepack that wrote it, or rebuild the bundle")
        try:
            manifest = _ADAPTER.validate_json(json.dumps(data), strict=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            place = ".".join(str(p) for p in first["loc"]) or "(top)"
            raise ManifestError(f"{where}: field {place}: {first['msg'].lower()} ({exc.error_count()} problem(s)); "
                                "the manifest was edited or damaged, rebuild the bundle") from None
        check_manifest_names(manifest, where)
        return manifest

    def file(self, quant: str) -> BundleFile | None:
        return next((f for f in self.files if f.quant == quant), None)

    def file_named(self, name: str) -> BundleFile | None:
        return next((f for f in self.files if f.file == name), None)

    def known_names(self) -> set[str]:
        """Every file name the manifest accounts for (GGUFs, Modelfiles, the card, eval reports)."""
        names = {MANIFEST, MODEL_CARD} | {f.file for f in self.files} | {f.modelfile for f in self.files if f.modelfile}
        if self.default_modelfile:
            names.add(self.default_modelfile)
        if self.evaluation:
            names |= set(self.evaluation.files) | {self.evaluation.report}
        return names | {name for name, _ in self.companion_files()} | ({self.llama_server} if self.llama_server else set())

    def companion_files(self) -> list[tuple[str, str]]:
        """(file, sha256) of the projector, the adapter GGUF and every split part."""
        out = [(r.file, r.sha256) for r in (self.projector, self.adapter) if r is not None and r.file]
        for parts in (self.split.parts.values() if self.split else ()):
            out += [(p.file, p.sha256) for p in parts]
        return out

    def modelfiles(self) -> list[str]:
        names = [f.modelfile for f in self.files if f.modelfile]
        return names + ([self.default_modelfile] if self.default_modelfile and self.default_modelfile not in names
                        else [])


_ADAPTER = TypeAdapter(Manifest)


def migrate_schema_1(data: dict) -> dict:
    """A manifest written by edgepack 0.1 (schema 1: sections in an untyped `extra` dict) in schema 2's shape.

    0.1 wrote `extra` = {"chat_template": {...}, "plans": {quant: {...}}, "evaluation": {text, settings,
    machine, results: [{quant, kld, ppl, same_top, tg_tps}], report, recommendation}, "tuning": {machine,
    quant, settings, modelfile_parameters, method, candidates, tuned_at}}. Values of the wrong shape are
    left for the type check to name.
    """
    data = dict(data)
    extra = data.pop("extra", None) or {}
    if not isinstance(extra, dict):
        raise ManifestError(f"{MANIFEST}: field extra: not an object (a schema 1 manifest); rebuild the bundle")
    data["schema"] = MANIFEST_SCHEMA
    if extra.get("chat_template") is not None:
        data["chat_template"] = extra["chat_template"]
    if extra.get("plans"):
        data["plans"] = extra["plans"]
    evaluation = extra.get("evaluation")
    if isinstance(evaluation, dict):
        evaluation = dict(evaluation)
        results = evaluation.get("results")
        if isinstance(results, list):
            reference = (data.get("reference") or {}).get("outtype") if isinstance(data.get("reference"), dict) else None
            evaluation["results"] = [
                (dict(r) | {"is_reference": i == 0 and r.get("quant") == reference and r.get("kld") == 0})
                if isinstance(r, dict) else r for i, r in enumerate(results)]
        evaluation.setdefault("files", list(EVALUATION_FILES))
    if evaluation is not None:
        data["evaluation"] = evaluation
    if extra.get("tuning") is not None:
        data["tuning"] = extra["tuning"]
    return data


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def load_manifest(bundle_dir: str | Path) -> Manifest:
    """The bundle's manifest, checked: types, schema, and every file name it holds (one-line errors)."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST
    if not bundle_dir.is_dir():
        raise ManifestError(f"{bundle_dir}: no such bundle directory")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ManifestError(f"{path} is not a regular file; an edgepack bundle's manifest never is a link")
    if not path.is_file():
        raise ManifestError(f"{bundle_dir} is not an edgepack bundle (no {MANIFEST}); build one with "
                            f"`edgepack build -o {bundle_dir}`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # (UnicodeDecodeError is a ValueError)
        raise ManifestError(f"{path} is not a valid edgepack manifest ({exc})") from None
    except OSError as exc:
        raise ManifestError(f"cannot read {path} ({exc.strerror or exc})") from None
    manifest = Manifest.from_dict(data, where=str(path))
    check_bundle_paths(bundle_dir, manifest)
    return manifest


def write_manifest(bundle_dir: Path, manifest: Manifest) -> Path:
    return write_text_atomic(Path(bundle_dir) / MANIFEST, manifest.to_json())


def file_entry(path: Path, quant: str, options: dict, llama_quantize_args: list[str], quantize_seconds: float) -> BundleFile:
    info = read_gguf(path)
    start = time.perf_counter()
    digest = sha256_file(path, memo=False)
    remember_sha256(path, digest)  # what integrity.current_sha256 recalls for this exact file
    return BundleFile(
        file=path.name, quant=quant, ftype=info.file_type_id, size_bytes=info.size_bytes,
        bits_per_weight=info.bits_per_weight, n_params=info.n_params, sha256=digest, options=options,
        llama_quantize_args=llama_quantize_args,
        seconds={"quantize": quantize_seconds, "sha256": progress.elapsed(start)},
        tensor_types={k: v.tensors for k, v in info.tensor_types.items()},
    )
