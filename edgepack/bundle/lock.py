"""One lock per bundle directory, held by whatever writes into it (build, eval, bench --tune, ...).

The lock file lives beside the bundle (`.<name>.lock` in its parent), not inside it, so that it
survives the bundle being swapped for a new one and never shows up as a file of the bundle.
filelock gives an OS-level lock (fcntl/msvcrt) that is released when the process dies.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from edgepack.errors import OutputError


def lock_path(bundle_dir: str | Path) -> Path:
    bundle_dir = Path(bundle_dir).absolute()
    return bundle_dir.parent / f".{bundle_dir.name}.lock"


@contextmanager
def bundle_lock(bundle_dir: str | Path, *, timeout: float = 0) -> Iterator[Path]:
    """Hold the bundle's lock; another edgepack process writing it makes this fail with one line."""
    path = lock_path(bundle_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise OutputError(f"another edgepack process is writing {bundle_dir}; wait for it to finish "
                          f"(lock: {path})") from None
    try:
        yield path
    finally:
        lock.release()
