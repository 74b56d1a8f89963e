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
from typing import TYPE_CHECKING, ContextManager

from edgepack import paths, procs, progress
from edgepack.atomic import atomic_output, write_text_atomic
from edgepack.errors import EdgepackError, OutputError, SourceError, UnsupportedArchitectureError
from edgepack.gguf_file import read_gguf
from edgepack.hashing import GrowingFileHash, file_record, matches_record, sha256_file, sha256_text
from edgepack.quantize.types import get_quant
from edgepack.source.model import Reference, Source
from edgepack.source.trust import check_remote_code
from edgepack.runtime.toolchain import Toolchain, converter_env, ensure_toolchain

if TYPE_CHECKING:
    from edgepack.source.early import EarlyConversion

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
    if not isinstance(config, dict):
        return None
    text_config = config.get("text_config")
    text_dtype = text_config.get("torch_dtype") if isinstance(text_config, dict) else None
    return config.get("torch_dtype") or config.get("dtype") or text_dtype


def choose_outtype(source: Source, outtype: str) -> str:
    """`auto` keeps bf16 sources in BF16; everything else becomes F16 unless asked."""
    outtype = outtype.lower()
    if outtype not in OUTTYPES:
        raise SourceError(f"unknown --outtype {outtype!r}; choose one of {', '.join(OUTTYPES)}")
    if outtype != "auto":
        return outtype
    return "bf16" if source.path.is_dir() and _source_dtype(source.path) == "bfloat16" else "f16"


def source_architectures(directory: Path) -> list[str]:
    """The "architectures" of a HF config.json, checked for shape (a list of names)."""
    config_path = directory / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SourceError(f"{config_path} is not readable JSON ({exc})") from None
    if not isinstance(config, dict):
        raise SourceError(f"{config_path} must hold a JSON object, not a {type(config).__name__}")
    archs = config.get("architectures")
    if not archs:
        raise UnsupportedArchitectureError(
            f"{config_path} names no architecture (\"architectures\" is missing)")
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise SourceError(f"{config_path}: \"architectures\" must be a list of names, "
                          f"e.g. [\"LlamaForCausalLM\"], not {json.dumps(archs)[:80]}")
    return archs


def _check_architecture(source: Source, toolchain: Toolchain, trust_remote_code: bool) -> None:
    archs = source_architectures(source.path)
    registry = (toolchain.root / "conversion" / "__init__.py").read_text()
    if not any(f'"{arch}"' in registry for arch in archs):
        raise UnsupportedArchitectureError(
            f"architecture {archs[0]!r} is not supported by the pinned llama.cpp converter ({toolchain.build})")
    check_remote_code(source.path, archs, toolchain.root / "conversion", trusted=trust_remote_code)


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


def _entry_file(dest: Path) -> Path:
    return dest.parent / "source.json"


def _checked_cache_entry(dest: Path) -> dict | None:
    """The record of a cached reference when the file still matches it (sha256, size, mtime).

    An entry whose file was changed, cut short or bit-flipped is dropped with a one-line note,
    so the caller rebuilds it; an entry without a record (older edgepack) is hashed and recorded."""
    if not dest.is_file():
        return None
    try:
        entry = json.loads(_entry_file(dest).read_text())
    except (OSError, ValueError):
        entry = {}
    entry = entry if isinstance(entry, dict) else {}
    record = entry.get("file")
    if record is None:
        entry["file"] = file_record(dest)
        write_text_atomic(_entry_file(dest), json.dumps(entry, indent=2))
        return entry
    if matches_record(dest, record):
        return entry
    progress.warn(f"the cached reference {dest} does not match its recorded sha256 (corrupt or changed); rebuilding it")
    dest.unlink()
    return None


def _record_cache_entry(dest: Path, entry: dict, sha256: str | None = None) -> str:
    entry["file"] = file_record(dest, sha256)
    write_text_atomic(_entry_file(dest), json.dumps(entry, indent=2))
    return entry["file"]["sha256"]


def make_reference(source: Source, outtype: str = "f16", *, toolchain: Toolchain | None = None,
                   trust_remote_code: bool = False, cache_dir: Path | None = None,
                   early: EarlyConversion | None = None) -> Reference:
    """The 16-bit reference GGUF for `source`, converted once and then served from the cache
    (or from `cache_dir`, e.g. another disk: --reference-dir). A split GGUF is read whole.
    `early`: a converter already started for it (edgepack.source.early), used or cancelled here.

    A source whose conversion would run Python code shipped with it is refused unless
    `trust_remote_code` (see edgepack.source.trust)."""
    start = time.perf_counter()
    if source.kind == "gguf":
        from edgepack.source.split import is_split_part, merged_source

        if is_split_part(source.path):
            source = replace(source, path=merged_source(source.path, cache_dir or paths.reference_cache_dir()))
        return _reference_from_gguf(source, toolchain, cache_dir)
    toolchain = toolchain or ensure_toolchain()
    outtype = choose_outtype(source, outtype)
    _check_architecture(source, toolchain, trust_remote_code)
    key = source_content_key(source, outtype, toolchain)
    dest = _cached_reference(key, cache_dir)
    entry = _checked_cache_entry(dest)
    if entry is not None:
        if early is not None:
            early.cancel()
        return Reference(dest, outtype.upper(), entry["file"]["sha256"], dest.stat().st_size, True,
                         progress.elapsed(start), key)
    if early is not None and early.fits(source, outtype, dest.parent.parent):
        early.wait_into(dest)
        sha256 = early.sha256
    else:
        if early is not None:
            early.cancel()
        expected = _estimated_gguf_bytes(source.path, outtype)
        ensure_free_space(dest.parent, int((expected or 0) * 1.05), "the 16-bit reference GGUF")
        sha256 = _run_converter(source, dest, outtype, toolchain, expected)
    digest = _record_cache_entry(dest, {"source": source.to_dict(), "outtype": outtype,
                                        "toolchain": toolchain.to_dict()}, sha256)
    return Reference(dest, outtype.upper(), digest, dest.stat().st_size, False,
                     progress.elapsed(start), key)


def reference_converter_args(source: Source, outfile: Path, outtype: str, toolchain: Toolchain) -> list[str]:
    """convert_hf_to_gguf.py's arguments (after the interpreter) for a source's reference GGUF."""
    return [str(toolchain.converter), str(source.path), "--outfile", str(outfile), "--outtype", outtype]


def conversion_step(source: Source, outfile: Path, outtype: str, expected: int | None) -> ContextManager:
    """The progress bar of a reference conversion, following the file it writes."""
    return progress.file_growth(f"Converting {source.name} to {outtype.upper()}", outfile, expected)


def conversion_failed(source: Source) -> str:
    return f"llama.cpp's converter failed on {source.spec}"


def _run_converter(source: Source, dest: Path, outtype: str, toolchain: Toolchain, expected: int | None) -> str:
    """Convert into `dest`; returns its sha256 (hashed while the converter wrote it)."""
    with atomic_output(dest) as tmp:
        follower = GrowingFileHash(tmp)
        try:
            run_converter_script(reference_converter_args(source, tmp, outtype, toolchain), toolchain,
                                 conversion_step(source, tmp, outtype, expected), SourceError, conversion_failed(source))
            return follower.finish()
        finally:
            follower.cancel()


def run_converter_script(args: list[str], toolchain: Toolchain, step: ContextManager, error: type[EdgepackError],
                         failed: str) -> None:
    """Run one of the pinned tree's converter scripts (`args` after the Python interpreter) through
    edgepack.procs inside the progress `step`; a failure raises `error` as "<failed>: <the converter's
    own last error line>", Ctrl-C or a killed converter as KeyboardInterrupt."""
    from edgepack.runtime.llama import is_verbose

    verbose = is_verbose()
    with step:
        proc = procs.run([sys.executable, *args], env=converter_env(toolchain), text=True,
                         stdout=None if verbose else subprocess.PIPE,
                         stderr=None if verbose else subprocess.PIPE)
    check_converter_exit(proc.returncode, proc.stderr, error, failed)


def check_converter_exit(returncode: int | None, stderr: str | None, error: type[EdgepackError], failed: str) -> None:
    """A converter that did not succeed: killed or Ctrl-C (no exit status, a signal, 130) as
    KeyboardInterrupt, anything else as `error` "<failed>: <the converter's own last error line>"."""
    if returncode == 0:
        return
    if returncode is None or returncode < 0 or returncode == 130:
        raise KeyboardInterrupt
    raise error(f"{failed}: {converter_reason(stderr or '')}")


def converter_reason(stderr: str) -> str:
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
    entry = _checked_cache_entry(dest)
    cached = entry is not None
    if not cached:
        from edgepack.quantize.engine import QuantOptions, quantize_gguf

        ensure_free_space(dest.parent, int(info.n_params * 2 * 1.05), "the dequantized F16 reference")
        quantize_gguf(source.path, dest, get_quant("F16"), QuantOptions(allow_requantize=True),
                      expected_bytes=info.n_params * 2)
        _record_cache_entry(dest, {"source": source.to_dict(), "outtype": "f16", "dequantized_from": info.file_type,
                                   "toolchain": toolchain.to_dict()})
        entry = json.loads(_entry_file(dest).read_text())
    return Reference(dest, "F16", entry["file"]["sha256"], dest.stat().st_size, cached, progress.elapsed(start), key,
                     dequantized_from=info.file_type, warnings=[warning])


