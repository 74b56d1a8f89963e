"""The only code that writes later stages' results into an existing bundle: evaluation, tuning, a
re-rendered report, and Modelfiles written beside a bundle's GGUF.

Each write holds the bundle's lock (lock.py), re-reads the manifest under it, and re-checks that
the GGUFs the results were measured on are still the ones listed (a rebuild may have swapped the
bundle meanwhile): results for a quant no longer present, or whose bytes changed, are not recorded.
A read-only bundle is refused with one line before anything is measured or written.
"""

from __future__ import annotations

import errno
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from edgepack.atomic import write_text_atomic
from edgepack.bundle.card import render_model_card
from edgepack.bundle.integrity import current_sha256
from edgepack.bundle.lock import bundle_lock
from edgepack.bundle.manifest import MODEL_CARD, Evaluation, Manifest, Tuning, load_manifest, write_manifest
from edgepack.bundle.names import bundle_path
from edgepack.errors import OutputError


def check_writable(bundle_dir: str | Path, what: str) -> None:
    """Refuse (one line) to start `what` on a bundle whose directory cannot be written."""
    bundle_dir = Path(bundle_dir)
    try:
        with tempfile.NamedTemporaryFile(dir=bundle_dir, prefix=".edgepack-write-check."):
            pass
    except OSError as exc:
        reason = {errno.EROFS: "on a read-only file system", errno.EACCES: "not writable",
                  errno.EPERM: "not writable"}.get(exc.errno, exc.strerror or "not writable")
        raise OutputError(f"{bundle_dir} is {reason}, so {what} cannot record its results there; nothing was "
                          "written; copy the bundle somewhere writable" + (" or pass -o DIR for the report"
                                                                           if what == "eval" else "")) from None


# Measured results wait this long for a build holding the lock (then are re-checked against what it left).
RECORD_WAIT_SECONDS = 600


@contextmanager
def writing(bundle_dir: str | Path, what: str, *, wait: float = 0) -> Iterator[Manifest]:
    """Hold the bundle's lock and yield its manifest as it is now; OS errors become one line."""
    bundle_dir = Path(bundle_dir)
    try:
        with bundle_lock(bundle_dir, timeout=wait):
            yield load_manifest(bundle_dir)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise OutputError(f"no space left on the device while {what} wrote into {bundle_dir}") from None
        raise OutputError(f"{what} could not write into {bundle_dir} ({exc.strerror or exc}); "
                          "the files already there were left as they were") from None


def still_listed(bundle_dir: Path, manifest: Manifest, quant: str, sha256: str | None) -> bool:
    """Is `quant` in the manifest with these bytes, and on disk with them?"""
    entry = manifest.file(quant)
    if entry is None or sha256 is None or entry.sha256 != sha256:
        return False
    path = bundle_path(bundle_dir, entry.file)
    return path.is_file() and current_sha256(path) == sha256


def record_evaluation(bundle_dir: str | Path, measured: dict[str, str],
                      write_reports: Callable[[set[str]], tuple[Evaluation, str]]) -> tuple[Manifest, list[str]]:
    """Record an evaluation of the GGUFs `measured` ({quant: sha256 measured}). Under the lock, keep the
    quants whose GGUF is still the one measured; `write_reports(kept quants)` writes the report files
    from those rows only and returns the manifest's evaluation section and the Markdown table for the
    card; then the manifest and the card are written. Returns (manifest, quants dropped)."""
    bundle_dir = Path(bundle_dir)
    with writing(bundle_dir, "eval", wait=RECORD_WAIT_SECONDS) as manifest:
        kept = {q for q, sha in measured.items() if still_listed(bundle_dir, manifest, q, sha)}
        evaluation, table = write_reports(kept)
        manifest.evaluation = evaluation
        write_manifest(bundle_dir, manifest)
        write_text_atomic(bundle_dir / MODEL_CARD, render_model_card(manifest, evaluation_table=table))
    return manifest, sorted(set(measured) - kept)


def record_tuning(bundle_dir: str | Path, tuning: Tuning, parameters: dict) -> list[str]:
    """Record tuned settings and re-render every Modelfile with them, under the lock; refused (one line)
    when the tuned GGUF was replaced meanwhile. Returns the Modelfiles written."""
    from edgepack.bundle.writer import rewrite_modelfiles
    from edgepack.errors import VerifyError

    bundle_dir = Path(bundle_dir)
    with writing(bundle_dir, "bench --tune", wait=RECORD_WAIT_SECONDS) as manifest:
        if not still_listed(bundle_dir, manifest, tuning.quant, tuning.sha256):
            raise VerifyError(f"{tuning.quant} in {bundle_dir} was replaced or removed while it was being tuned; "
                              "nothing was recorded; run bench --tune again")
        written = rewrite_modelfiles(bundle_dir, manifest, parameters)
        manifest.tuning = tuning
        write_manifest(bundle_dir, manifest)
    return written


@contextmanager
def writing_into(directory: str | Path, what: str) -> Iterator[None]:
    """Around a command's writes into `directory`: when it is a bundle, refuse a read-only one in one line
    first and hold its lock; elsewhere, an OS error becomes one line."""
    from edgepack.bundle.manifest import MANIFEST

    directory = Path(directory)
    if (directory / MANIFEST).is_file():
        check_writable(directory, what)
        with writing(directory, what):
            yield
        return
    try:
        yield
    except OSError as exc:
        raise OutputError(f"{what} could not write into {directory} ({exc.strerror or exc}); choose another "
                          "directory") from None


def write_beside_gguf(target: Path, text: str) -> Path:
    """Write a Modelfile; inside a bundle directory under its lock (refused in one line when read-only)."""
    with writing_into(target.parent, "modelfile"):
        return write_text_atomic(target, text)
