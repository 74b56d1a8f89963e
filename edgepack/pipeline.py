"""`build`: source → 16-bit reference GGUF → quants → bundle, in one call.

The bundle is assembled in a staging directory beside the output and swapped in only when
every file is complete, so a failed or interrupted build never damages a good bundle.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import __version__, progress
from .atomic import atomic_directory, write_text_atomic
from .bundle import Manifest, check_output_dir, file_entry, now_utc, render_model_card, write_manifest
from .convert import Source, ensure_free_space, make_reference, resolve_source, slugify
from .errors import BuildInterrupted, OutputError
from .gguf_file import read_gguf
from .modelfile import modelfile_for_gguf
from .quantize import QuantOptions, quantize_gguf
from .quants import QuantType, resolve_quants
from .toolchain import ensure_toolchain

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
    parent = path.parent if not path.exists() else path
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to {parent}: permission denied; choose another -o")


def estimate_quant_bytes(n_params: int, quant: QuantType) -> int:
    # K-quant mixes keep a few tensors larger than the base type; 10 % covers them and metadata.
    return int(n_params * quant.bits / 8 * 1.1) + (1 << 20)


def build(
    source: str | None = None,
    quants: list[str] | tuple[str, ...] = (),
    *,
    ladder: bool = False,
    output_dir: str | Path | None = None,
    outtype: str = "f16",
    revision: str | None = None,
    options: QuantOptions = QuantOptions(),
) -> BuildResult:
    """Build a bundle of `quants` (default Q4_K_M) from `source` (default: the embedded model)."""
    start = time.perf_counter()
    wanted = resolve_quants(list(quants) or ([] if ladder else [DEFAULT_QUANT]), ladder=ladder)
    if output_dir is not None:
        check_output_dir(Path(output_dir))
        _check_writable(Path(output_dir))
    toolchain = ensure_toolchain()
    src = resolve_source(source, revision)
    out = Path(output_dir) if output_dir is not None else default_output_dir(src)
    check_output_dir(out)
    _check_writable(out)

    reference = make_reference(src, outtype, toolchain=toolchain)
    ref_info = read_gguf(reference.path, with_tokens=True)
    needed = sum(estimate_quant_bytes(ref_info.n_params, q) for q in wanted)
    ensure_free_space(out.parent if out.parent != Path("") else Path("."), needed, f"{len(wanted)} GGUF file(s)")

    warnings = list(reference.warnings)
    notes: list[str] = []
    if src.kind == "default":
        from .default_model import DEFAULT_MODEL_NOTE

        notes.append(DEFAULT_MODEL_NOTE)
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
                modelfile = modelfile_for_gguf(read_gguf(result.path, with_tokens=True), f"./{gguf_name}",
                                               model_name=src.name, quant=quant.name, modelfile_name=modelfile_name)
                write_text_atomic(staging / modelfile_name, modelfile.text)
                entry.modelfile = modelfile_name
                files.append(entry)
                for w in modelfile.warnings:
                    if w not in warnings:
                        warnings.append(w)
            preferred = next((f for f in files if f.quant == DEFAULT_QUANT), files[0])
            shutil.copyfile(staging / preferred.modelfile, staging / "Modelfile")
            default_modelfile = "Modelfile"
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
            )
            write_manifest(staging, manifest)
            write_text_atomic(staging / "README.md", render_model_card(manifest))
    except KeyboardInterrupt:
        raise BuildInterrupted("build interrupted; the previous bundle (if any) was left untouched") from None
    return BuildResult(out, manifest, warnings)
