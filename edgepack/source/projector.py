"""The multimodal projector (mmproj) GGUF of a vision/audio source, next to its text reference.

llama.cpp splits a multimodal checkpoint in two: the text model (the reference every quant is
made from) and the encoder + projector, written by the same converter with `--mmproj`. The
projector stays F16 by default (Q8_0 on request); llama.cpp's mtmd tools, llama-server
(`--mmproj`) and Ollama (a projector GGUF given as a further FROM) pair it with any quant of
the text model whose embedding width equals the projector's output width.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from edgepack import progress
from edgepack.atomic import atomic_output
from edgepack.errors import ProjectorError
from edgepack.hashing import sha256_file, sha256_text
from edgepack.paths import PathRecord
from edgepack.source.model import Source
from edgepack.runtime.toolchain import Toolchain, ensure_toolchain

PROJECTOR_TYPES = ("f16", "q8_0", "f32", "bf16")


@dataclass
class Projector(PathRecord):
    path: Path
    outtype: str  # "F16", "Q8_0", ...
    sha256: str
    size_bytes: int
    projector_type: str | None  # llama.cpp's clip.projector_type, e.g. "gemma3"
    projection_dim: int | None  # width of what it feeds the text model
    modalities: list[str]
    cached: bool
    seconds: float


def _config(directory: Path) -> dict:
    try:
        return json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return {}


def has_projector(source: Source, toolchain: Toolchain | None = None) -> bool:
    """A HF source whose architecture the pinned converter exports with --mmproj."""
    if not source.path.is_dir():
        return False
    config = _config(source.path)
    if not any(k in config for k in ("vision_config", "audio_config", "whisper_config")):
        return False
    toolchain = toolchain or ensure_toolchain()
    registry = (toolchain.root / "conversion" / "__init__.py").read_text()
    mmproj_map = registry.partition("MMPROJ_MODEL_MAP")[2]
    return any(f'"{arch}"' in mmproj_map for arch in config.get("architectures") or [])


def read_projector(path: Path) -> Projector:
    """Describe a projector GGUF; ProjectorError when the file is not one."""
    from gguf import GGUFReader

    start = time.perf_counter()
    try:
        reader = GGUFReader(path)
    except (OSError, ValueError) as exc:
        raise ProjectorError(f"{path} is not a readable GGUF ({exc})") from None

    def field(key):
        f = reader.fields.get(key)
        return f.contents() if f is not None else None

    if field("general.architecture") != "clip":
        raise ProjectorError(f"{path.name} is not a projector GGUF (architecture {field('general.architecture')!r}, "
                             "expected 'clip'); give the mmproj file llama.cpp's converter wrote with --mmproj")
    modalities = [m for m in ("vision", "audio") if field(f"clip.has_{m}_encoder")]
    dim = field("clip.vision.projection_dim") or field("clip.audio.projection_dim")
    ftype = field("general.file_type")
    from gguf import LlamaFileType

    outtype = LlamaFileType(ftype).name.removeprefix("MOSTLY_").removeprefix("ALL_") if ftype is not None else "unknown"
    return Projector(path, outtype, sha256_file(path), path.stat().st_size,
                     field("clip.projector_type") or field("clip.vision.projector_type"), dim, modalities,
                     True, progress.elapsed(start))


def check_projector_fits(projector: Projector, embedding_length: int | None, model_name: str) -> None:
    """The projector must output vectors as wide as the text model's embeddings."""
    if projector.projection_dim and embedding_length and projector.projection_dim != embedding_length:
        raise ProjectorError(
            f"{projector.path.name} projects to width {projector.projection_dim} but {model_name} has embeddings of "
            f"width {embedding_length}: it is a projector for another model; give the one converted from this model")


def make_projector(source: Source, outtype: str = "f16", *, cache_dir: Path, cache_key: str,
                   toolchain: Toolchain | None = None) -> Projector:
    """Convert the source's projector with the pinned converter (`--mmproj`), cached beside the reference."""
    start = time.perf_counter()
    outtype = outtype.lower()
    if outtype not in PROJECTOR_TYPES:
        raise ProjectorError(f"unknown --mmproj-type {outtype!r}; choose one of {', '.join(PROJECTOR_TYPES)}")
    toolchain = toolchain or ensure_toolchain()
    key = sha256_text(cache_key, "mmproj", outtype)
    dest = cache_dir / key[:16] / f"mmproj-{outtype.upper()}.gguf"
    if dest.is_file():
        proj = read_projector(dest)
        proj.seconds = progress.elapsed(start)
        return proj
    dest.parent.mkdir(parents=True, exist_ok=True)
    from edgepack.source.convert import run_converter_script

    with atomic_output(dest) as tmp:
        run_converter_script(
            [str(toolchain.converter), str(source.path), "--mmproj", "--outfile", str(tmp), "--outtype", outtype],
            toolchain, progress.step(f"Converting {source.name}'s projector to {outtype.upper()}"),
            ProjectorError, f"llama.cpp's converter could not export the projector of {source.spec}")
    proj = read_projector(dest)
    proj.cached, proj.seconds = False, progress.elapsed(start)
    return proj
