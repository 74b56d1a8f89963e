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

import jinja2

from . import progress
from .atomic import write_text_atomic
from .errors import EdgepackError, GGUFError, OutputError, VerifyError
from .gguf_file import read_gguf
from .hashing import sha256_file
from .paths import package_data_dir

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


def _card_environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(package_data_dir("modelfiles")),
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["mib"] = lambda b: f"{b / 2**20:.1f}"
    env.filters["params"] = lambda n: f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"
    return env


def render_model_card(manifest: Manifest, *, evaluation_table: str | None = None) -> str:
    """The bundle's README.md; `evaluation_table` (Markdown) adds the measured comparison and charts."""
    from .modelfile import suggested_ollama_name

    return _card_environment().get_template("model_card.md.j2").render(
        edgepack_version=manifest.edgepack_version,
        source=manifest.source,
        toolchain=manifest.toolchain,
        reference=manifest.reference,
        model=manifest.model,
        files=[asdict(f) for f in manifest.files],
        notes=manifest.notes + manifest.warnings,
        chat_template=manifest.extra.get("chat_template"),
        evaluation=manifest.extra.get("evaluation"),
        evaluation_table=evaluation_table,
        imatrix=manifest.imatrix,
        default_modelfile=manifest.default_modelfile or "Modelfile",
        ollama_name=suggested_ollama_name(manifest.model["name"], manifest.files[0].quant).split(":")[0],
    )


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


def rewrite_modelfiles(bundle_dir: str | Path, manifest: Manifest, parameters: dict) -> list[str]:
    """Re-render every Modelfile of a bundle with extra PARAMETERs (e.g. tuned settings).

    Everything the build put there stays: the source's sampling defaults and license (when the
    source directory is still there) and the deployment plan's num_ctx/num_gpu/num_thread;
    `parameters` override them.
    """
    from .modelfile import modelfile_for_gguf

    bundle_dir = Path(bundle_dir)
    source_dir = Path(manifest.source.get("path") or "")
    source_dir = source_dir if manifest.source.get("path") and source_dir.is_dir() else None
    plans = manifest.extra.get("plans", {})
    preferred = manifest.file("Q4_K_M") or manifest.files[0]  # the build copies its Modelfile to `Modelfile`
    written: list[str] = []
    for f in manifest.files:
        if not f.modelfile:
            continue
        plan = plans.get(f.quant) or {}
        deploy = ({"num_ctx": plan["n_ctx"], "num_gpu": plan["n_gpu_layers"], "num_thread": plan["n_threads"]}
                  if plan.get("fits") else {})
        text = modelfile_for_gguf(read_gguf(bundle_dir / f.file, with_tokens=True), f"./{f.file}",
                                  model_name=manifest.model.get("name", f.file), quant=f.quant,
                                  modelfile_name=f.modelfile, source_dir=source_dir, parameters=parameters,
                                  **deploy).text
        write_text_atomic(bundle_dir / f.modelfile, text)
        written.append(f.modelfile)
        if manifest.default_modelfile and f is preferred:
            write_text_atomic(bundle_dir / manifest.default_modelfile, text)
            written.append(manifest.default_modelfile)
    return written


# ---------------------------------------------------------------- verify

@dataclass
class FileCheck:
    file: str
    sha256_ok: bool
    loads: bool
    error: str | None = None


@dataclass
class VerifyResult:
    bundle: str
    ok: bool
    files: list[FileCheck]

    def to_dict(self) -> dict:
        return asdict(self)


def verify_bundle(bundle_dir: str | Path, *, load: bool = True) -> VerifyResult:
    """Re-hash every file the manifest lists and load each GGUF with llama.cpp."""
    bundle_dir = Path(bundle_dir)
    manifest = load_manifest(bundle_dir)
    checks: list[FileCheck] = []
    with progress.step("Verifying", total=len(manifest.files)) as bar:
        for entry in manifest.files:
            path = bundle_dir / entry.file
            if not path.is_file():
                checks.append(FileCheck(entry.file, False, False, "missing"))
                bar.advance()
                continue
            ok = sha256_file(path, memo=False) == entry.sha256
            loads, error = (True, None)
            if not ok:
                loads, error = False, "sha256 mismatch"
            elif load:
                loads, error = _loads(path)
            checks.append(FileCheck(entry.file, ok, loads, error))
            bar.advance()
    return VerifyResult(str(bundle_dir), all(c.sha256_ok and c.loads for c in checks), checks)


def _loads(path: Path) -> tuple[bool, str | None]:
    from .llama_runtime import load_model

    try:
        read_gguf(path)
        with load_model(path, n_ctx=64, n_batch=64, n_gpu_layers=0) as llm:
            tokens = llm.tokenize(b"Hello", add_bos=True)
            llm.eval(tokens)
        return True, None
    except GGUFError as exc:
        return False, str(exc)
    except Exception as exc:  # llama.cpp's loader raises ValueError/RuntimeError
        return False, f"llama.cpp could not load it ({exc})"


def require_verified(result: VerifyResult) -> None:
    bad = [c for c in result.files if not (c.sha256_ok and c.loads)]
    if bad:
        first = bad[0]
        raise VerifyError(f"{len(bad)} of {len(result.files)} files failed verification; first: {first.file}: {first.error}")


def check_output_dir(output_dir: Path) -> None:
    """Refuse to replace a directory that is not an edgepack bundle (it may hold the user's files)."""
    if output_dir.exists():
        if not output_dir.is_dir():
            raise OutputError(f"{output_dir} exists and is not a directory; choose another -o")
        if any(output_dir.iterdir()) and not (output_dir / MANIFEST).is_file():
            raise OutputError(f"{output_dir} is not empty and is not an edgepack bundle; choose another -o or empty it")
