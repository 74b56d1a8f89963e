"""Calibration text and llama.cpp's importance matrix (imatrix).

Below 4 bits, quantization quality depends on which weights matter for real text; the
imatrix, computed by running the 16-bit model over calibration text with `llama-imatrix`,
tells the quantizer. It is saved in llama.cpp's imatrix GGUF format, cached under a key of
its inputs, and reused by every later build.

The default calibration text (Python standard-library docstrings) is present offline and is
not the default evaluation text (CPython's pydoc topics): calibrating on the evaluation text
would flatter the result.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from edgepack import paths, procs, progress
from edgepack.atomic import atomic_output
from edgepack.errors import CalibrationError
from edgepack.hashing import sha256_file, sha256_text

DEFAULT_CALIBRATION_NAME = "python-stdlib-docstrings"
# Prose-heavy standard-library modules; their docstrings are real English technical writing.
_DOCSTRING_MODULES = (
    "argparse", "asyncio", "collections", "concurrent.futures", "contextlib", "csv", "dataclasses",
    "datetime", "decimal", "difflib", "email.message", "enum", "fractions", "functools", "gettext",
    "heapq", "http.client", "http.server", "inspect", "ipaddress", "itertools", "json", "logging",
    "mailbox", "multiprocessing", "optparse", "pathlib", "pickle", "pprint", "queue", "random", "re",
    "sched", "shutil", "smtplib", "socket", "statistics", "string", "subprocess", "tarfile",
    "tempfile", "textwrap", "threading", "tkinter", "typing", "unittest", "urllib.parse",
    "urllib.request", "uuid", "weakref", "zipfile",
)


@dataclass
class CalibrationText:
    name: str  # recorded as the imatrix's dataset
    text: str

    @property
    def sha256(self) -> str:
        return sha256_text(self.text)


@dataclass
class Imatrix(paths.PathRecord):
    path: Path
    dataset: str
    chunks: int
    chunk_size: int
    entries: int
    sha256: str
    cached: bool
    seconds: float = 0.0


def default_calibration_text() -> CalibrationText:
    """Docstrings of prose-heavy stdlib modules, their classes and functions (offline, deterministic)."""
    seen: set[int] = set()
    parts: list[str] = []
    for name in _DOCSTRING_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # e.g. tkinter missing on a minimal Python
            continue
        with warnings.catch_warnings():  # some modules warn on attribute access (typing.io, ...)
            warnings.simplefilter("ignore")
            members = [module] + [getattr(module, attr) for attr in sorted(vars(module)) if not attr.startswith("_")]
            docs = [(obj, getattr(obj, "__doc__", None)) for obj in members]
        for obj, doc in docs:
            if not isinstance(doc, str) or id(doc) in seen or len(doc) < 200:
                continue
            if getattr(obj, "__module__", name) not in (name, None) and obj is not module:
                continue  # re-exported from elsewhere
            seen.add(id(doc))
            parts.append(re.sub(r"\n\s+", "\n", doc.strip()))
    return CalibrationText(DEFAULT_CALIBRATION_NAME, "\n\n".join(parts))


def load_calibration(files: list[str | Path]) -> CalibrationText:
    """Read calibration files (UTF-8 text). `default` names the built-in text."""
    if [str(f) for f in files] == ["default"]:
        return default_calibration_text()
    from edgepack.userfiles import read_text_file

    texts = [read_text_file(f, "calibration file", CalibrationError) for f in files]
    names = [Path(f).name for f in files]
    return CalibrationText("+".join(names), "\n\n".join(texts))


def count_tokens(model_path: Path, text: str) -> int:
    from edgepack.runtime.llama import load_model

    with load_model(model_path, vocab_only=True) as llm:
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def default_chunks(n_params: int) -> int:
    # llama-imatrix runs far below prompt speed (it reads every activation back), so a CPU-sized
    # default: 32 chunks (16k tokens at ctx 512) for small models, fewer for large ones.
    return 32 if n_params < 1e9 else (16 if n_params < 1e10 else 8)


def _imatrix_cache(key: str) -> Path:
    return paths.cache_root() / "imatrix" / f"{key[:20]}.imatrix.gguf"


def read_imatrix(path: str | Path) -> dict:
    """Entries (tensor name → number of columns), dataset names and chunk count of an imatrix GGUF."""
    from gguf import GGUFReader

    path = Path(path)
    try:
        reader = GGUFReader(path)
    except Exception:
        raise CalibrationError(f"{path} is not an imatrix GGUF (it cannot be read as GGUF)") from None
    entries = {}
    for t in reader.tensors:
        if t.name.endswith(".in_sum2"):
            entries[t.name[: -len(".in_sum2")]] = int(t.shape[0])
    if not entries:
        raise CalibrationError(f"{path} holds no importance-matrix data (no *.in_sum2 tensors)")

    def field(key):
        f = reader.fields.get(key)
        return f.contents() if f is not None else None

    return {"entries": entries, "datasets": field("imatrix.datasets") or [],
            "chunks": field("imatrix.chunk_count") or 0, "chunk_size": field("imatrix.chunk_size") or 0}


def check_imatrix_fits(imatrix_path: str | Path, model_path: str | Path) -> dict:
    """Refuse an imatrix computed for another model: every entry must name a tensor with as many columns."""
    from edgepack.gguf_file import read_gguf

    data = read_imatrix(imatrix_path)
    columns = {t.name: t.shape[0] for t in read_gguf(model_path).tensors}
    for name, n in data["entries"].items():
        if name not in columns:
            raise CalibrationError(f"{imatrix_path} was computed for a different model: it has data for {name}, "
                                   "which this model does not have")
        if columns[name] != n:
            raise CalibrationError(f"{imatrix_path} was computed for a different model: {name} has {columns[name]} "
                                   f"columns here but {n} in the imatrix")
    return data


def compute_imatrix(
    reference: str | Path,
    calibration: CalibrationText,
    *,
    chunks: int | None = None,
    ctx: int = 512,
    threads: int | None = None,
    output: str | Path | None = None,
    n_params: int | None = None,
) -> Imatrix:
    """Run llama-imatrix over the calibration text; cached by model, text, chunks and context."""
    import time

    from edgepack.runtime.native import build_native
    from edgepack.runtime.toolchain import ensure_toolchain

    start = time.perf_counter()
    reference = Path(reference)
    n_tokens = count_tokens(reference, calibration.text)
    if n_tokens < ctx:
        raise CalibrationError(
            f"calibration text {calibration.name!r} has {n_tokens} tokens, shorter than one chunk of {ctx}; "
            "give more text or a smaller --ctx")
    available = n_tokens // ctx
    if chunks is None:
        from edgepack.gguf_file import read_gguf

        chunks = default_chunks(n_params or read_gguf(reference).n_params)
    chunks = max(1, min(chunks, available))
    toolchain = ensure_toolchain()
    key = sha256_text(toolchain.llama_cpp_commit, sha256_file(reference), calibration.sha256, str(chunks), str(ctx))
    cached_path = _imatrix_cache(key)
    if cached_path.is_file():
        result = _describe(cached_path, calibration.name, cached=True)
    else:
        tool = build_native(("llama-imatrix",)).tool("llama-imatrix")
        with tempfile.TemporaryDirectory(prefix="edgepack-calib-") as tmp:
            # llama-imatrix records the text file's path as the dataset: give it the dataset's name.
            text_file = Path(tmp) / _dataset_file_name(calibration)
            text_file.write_text(calibration.text, encoding="utf-8")
            with atomic_output(cached_path) as part:
                _run_imatrix(tool, reference, text_file, part, chunks, ctx, threads)
        result = _describe(cached_path, calibration.name, cached=False)
    if output is not None:
        with atomic_output(Path(output)) as part:
            shutil.copyfile(cached_path, part)
        result.path = Path(output)
    result.seconds = progress.elapsed(start)
    return result


def _dataset_file_name(calibration: CalibrationText) -> str:
    """`<name>.txt`, or for a name too long for a file system (many --calibration files joined
    by '+') its start and a hash of the whole: `a.txt+b.txt+…-<hash>.txt`."""
    name = f"{calibration.name}.txt"
    if len(name.encode()) <= 200:
        return name
    head = calibration.name.encode()[:120].decode("utf-8", errors="ignore")
    return f"{head}…-{sha256_text(calibration.name)[:16]}.txt"


def _describe(path: Path, dataset: str, *, cached: bool) -> Imatrix:
    data = read_imatrix(path)
    return Imatrix(path, dataset, int(data["chunks"]), int(data["chunk_size"]), len(data["entries"]),
                   sha256_file(path), cached)


def _run_imatrix(tool: Path, model: Path, text_file: Path, out: Path, chunks: int, ctx: int, threads: int | None) -> None:
    from edgepack.runtime.llama import is_verbose

    # Perplexity stays on: its per-chunk "[i]ppl," output is the only progress llama-imatrix prints.
    cmd = [str(tool), "-m", str(model), "-f", str(text_file), "-o", str(out), "--chunks", str(chunks),
           "-c", str(ctx), "-b", str(ctx), "--output-frequency", str(10**6)]
    if threads:
        cmd += ["-t", str(threads)]
    log = ""
    with progress.step(f"Importance matrix over {chunks} chunks of {ctx} tokens", total=chunks) as bar:
        proc = procs.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            while piece := proc.stdout.read1(4096).decode("utf-8", errors="replace"):
                log += piece
                if is_verbose():
                    print(piece, end="", flush=True)
                done = re.findall(r"\[(\d+)\]\d", log[-200:])
                if done:
                    bar.update(completed=int(done[-1]))
            proc.wait()
        except KeyboardInterrupt:
            proc.kill()
            proc.wait()
            raise
    if proc.returncode != 0 or not out.is_file():
        tail = next((ln.strip() for ln in reversed(log.splitlines()) if ln.strip()), "no output")
        raise CalibrationError(f"llama-imatrix failed (exit {proc.returncode}): {tail[:200]}")


