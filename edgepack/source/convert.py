"""Stage 1: resolve a model source and produce its 16-bit reference GGUF.

Sources: a local Hugging Face directory, a hub id (through huggingface-hub, with its cache
and offline rules), a GGUF file, or the embedded default model. The reference is made once
with llama.cpp's own converter from the pinned tree, cached under a key made of the
source's content, the output type and the toolchain version, and reused by every build.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from edgepack import paths, progress
from edgepack.atomic import atomic_output
from edgepack.errors import OutputError, SourceError, UnsupportedArchitectureError
from edgepack.gguf_file import read_gguf
from edgepack.hashing import sha256_file, sha256_text
from edgepack.quantize.types import get_quant
from edgepack.source.model import Reference, Source
from edgepack.runtime.toolchain import Toolchain, converter_env, ensure_toolchain

OUTTYPES = ("f16", "bf16", "f32", "auto")
# Files that define a HF model; anything else in the directory does not change the GGUF.
_MODEL_FILE = re.compile(
    r"(config\.json|generation_config\.json|.*\.safetensors|.*\.bin|.*\.pt|.*\.pth|"
    r"tokenizer.*|.*\.model|.*\.tiktoken|vocab\..*|merges\.txt|added_tokens\.json|"
    r"special_tokens_map\.json|chat_template\.jinja|chat_template\.json|.*\.safetensors\.index\.json|"
    r".*\.bin\.index\.json|params\.json)$"
)


# ---------------------------------------------------------------- reference GGUF

def _model_files(directory: Path) -> list[Path]:
    files = [p for p in sorted(directory.rglob("*")) if p.is_file() and _MODEL_FILE.match(p.name)
             and not any(part.startswith(".") for part in p.relative_to(directory).parts)]
    return files


def source_content_key(source: Source, outtype: str, toolchain: Toolchain) -> str:
    """Hash of everything the converter reads, plus output type and toolchain version."""
    parts = [toolchain.llama_cpp_python, toolchain.llama_cpp_commit, outtype]
    if source.path.is_dir():
        for f in _model_files(source.path):
            parts += [f.relative_to(source.path).as_posix(), sha256_file(f)]
    else:
        parts += [source.path.name, sha256_file(source.path)]
    return sha256_text(*parts)


def _source_dtype(directory: Path) -> str | None:
    try:
        config = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return config.get("torch_dtype") or config.get("dtype") or (config.get("text_config") or {}).get("torch_dtype")


def choose_outtype(source: Source, outtype: str) -> str:
    """`auto` keeps bf16 sources in BF16; everything else becomes F16 unless asked."""
    outtype = outtype.lower()
    if outtype not in OUTTYPES:
        raise SourceError(f"unknown --outtype {outtype!r}; choose one of {', '.join(OUTTYPES)}")
    if outtype != "auto":
        return outtype
    return "bf16" if source.path.is_dir() and _source_dtype(source.path) == "bfloat16" else "f16"


def _check_architecture(source: Source, toolchain: Toolchain) -> None:
    config = json.loads((source.path / "config.json").read_text())
    archs = config.get("architectures") or []
    if not archs:
        raise UnsupportedArchitectureError(
            f"{source.path / 'config.json'} names no architecture (\"architectures\" is missing)")
    registry = (toolchain.root / "conversion" / "__init__.py").read_text()
    if not any(f'"{arch}"' in registry for arch in archs):
        raise UnsupportedArchitectureError(
            f"architecture {archs[0]!r} is not supported by the pinned llama.cpp converter ({toolchain.build})")


def _estimated_gguf_bytes(directory: Path, outtype: str) -> int | None:
    weights = [p for p in directory.glob("*") if p.suffix in (".safetensors", ".bin")]
    if not weights:
        return None
    total = sum(p.stat().st_size for p in weights)
    dtype = _source_dtype(directory)
    src_bytes = 4 if dtype in ("float32", None) else 2
    dst_bytes = 4 if outtype == "f32" else 2
    return int(total * dst_bytes / src_bytes)


def ensure_free_space(directory: Path, needed: int, what: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if needed > free:
        raise OutputError(
            f"not enough free space in {directory} for {what}: need about {needed / 2**20:.0f} MiB, "
            f"{free / 2**20:.0f} MiB free; free some space or choose another location")


def _cached_reference(key: str, cache_dir: Path | None = None) -> Path:
    return (cache_dir or paths.reference_cache_dir()) / key[:16] / "reference.gguf"


def reference_is_cached(source: Source, outtype: str, toolchain: Toolchain, cache_dir: Path | None = None) -> bool:
    """Whether make_reference would write nothing (for planning disk space before it runs)."""
    if not source.path.is_dir():
        return False  # a GGUF source: planned from its own header instead
    key = source_content_key(source, choose_outtype(source, outtype), toolchain)
    return _cached_reference(key, cache_dir).is_file()


def make_reference(source: Source, outtype: str = "f16", *, toolchain: Toolchain | None = None,
                   cache_dir: Path | None = None) -> Reference:
    """The 16-bit reference GGUF for `source`, converted once and then served from the cache
    (or from `cache_dir`, e.g. another disk: --reference-dir). A split GGUF is read whole."""
    start = time.perf_counter()
    if source.kind == "gguf":
        from edgepack.source.split import is_split_part, merged_source

        if is_split_part(source.path):
            source = replace(source, path=merged_source(source.path, cache_dir or paths.reference_cache_dir()))
        return _reference_from_gguf(source, toolchain, cache_dir)
    toolchain = toolchain or ensure_toolchain()
    outtype = choose_outtype(source, outtype)
    _check_architecture(source, toolchain)
    key = source_content_key(source, outtype, toolchain)
    dest = _cached_reference(key, cache_dir)
    if dest.is_file():
        return Reference(dest, outtype.upper(), sha256_file(dest), dest.stat().st_size, True,
                         progress.elapsed(start), key)
    expected = _estimated_gguf_bytes(source.path, outtype)
    ensure_free_space(dest.parent, int((expected or 0) * 1.05), "the 16-bit reference GGUF")
    _run_converter(source, dest, outtype, toolchain, expected)
    (dest.parent / "source.json").write_text(json.dumps(
        {"source": source.to_dict(), "outtype": outtype, "toolchain": toolchain.to_dict()}, indent=2))
    return Reference(dest, outtype.upper(), sha256_file(dest), dest.stat().st_size, False,
                     progress.elapsed(start), key)


def _run_converter(source: Source, dest: Path, outtype: str, toolchain: Toolchain, expected: int | None) -> None:
    from edgepack.runtime.llama import is_verbose

    with atomic_output(dest) as tmp:
        cmd = [sys.executable, str(toolchain.converter), str(source.path), "--outfile", str(tmp),
               "--outtype", outtype]
        verbose = is_verbose()
        with progress.file_growth(f"Converting {source.name} to {outtype.upper()}", tmp, expected):
            proc = subprocess.run(cmd, env=converter_env(toolchain), text=True,
                                  stdout=None if verbose else subprocess.PIPE,
                                  stderr=None if verbose else subprocess.PIPE)
        if proc.returncode != 0:
            if proc.returncode < 0 or proc.returncode == 130:
                raise KeyboardInterrupt
            raise SourceError(f"llama.cpp's converter failed on {source.spec}: {_converter_reason(proc.stderr or '')}")


def _converter_reason(stderr: str) -> str:
    """The converter's own message, shortened to its last meaningful line."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", line) or "Error:" in line:
            return line[:300]
    return (lines[-1][:300] if lines else "no output (rerun with -v)")


def _reference_from_gguf(source: Source, toolchain: Toolchain | None, cache_dir: Path | None = None) -> Reference:
    """A float GGUF is the reference as it is; a quantized one is dequantized to F16 first."""
    start = time.perf_counter()
    info = read_gguf(source.path)
    if info.is_float:
        return Reference(source.path, info.file_type, sha256_file(source.path), info.size_bytes, True,
                         progress.elapsed(start))
    toolchain = toolchain or ensure_toolchain()
    warning = (f"{source.path.name} is already quantized ({info.file_type}); it was dequantized to F16, "
               "so every quant's quality is bounded by the source's")
    progress.warn(warning)
    key = sha256_text(toolchain.llama_cpp_python, toolchain.llama_cpp_commit, "dequant-f16", sha256_file(source.path))
    dest = _cached_reference(key, cache_dir)
    cached = dest.is_file()
    if not cached:
        from edgepack.quantize.engine import QuantOptions, quantize_gguf

        ensure_free_space(dest.parent, int(info.n_params * 2 * 1.05), "the dequantized F16 reference")
        quantize_gguf(source.path, dest, get_quant("F16"), QuantOptions(allow_requantize=True),
                      expected_bytes=info.n_params * 2)
    return Reference(dest, "F16", sha256_file(dest), dest.stat().st_size, cached, progress.elapsed(start), key,
                     dequantized_from=info.file_type, warnings=[warning])


