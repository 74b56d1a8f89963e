"""Write artifacts under a temporary name and rename them into place only when complete.

A failed or interrupted step therefore never leaves a half-written file and never replaces a
good one. Temporary names carry the writer's pid (`.NAME.PID.partial`, staging directories
`.NAME.PID.RANDOM.partial`), so what a killed process left is recognised and removed later
(`remove_stale_partials`) while a live writer's files are left alone.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_PARTIAL_FILE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.partial$")  # temp_name()
_PARTIAL_TAIL = re.compile(r"^(?P<pid>\d+)(?:\.[A-Za-z0-9_]+)?\.partial$")  # after ".NAME.": staging, swap


def temp_name(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{os.getpid()}.partial")


@contextmanager
def atomic_output(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; on success rename it to `dest`, else delete it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(dest)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp} was not written")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(dest: str | Path, text: str) -> Path:
    with atomic_output(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(dest)


def link_or_copy(src: Path, dest: Path) -> None:
    """`dest` becomes a new name for `src` (a copy across file systems); never writes through an old `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(dest):
        dest.unlink()
    try:
        os.link(src, dest)
    except OSError:
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)


def make_staging_dir(dest: Path) -> Path:
    """An empty directory beside `dest` (same file system, so it can be renamed onto it)."""
    return Path(tempfile.mkdtemp(prefix=f".{dest.name}.{os.getpid()}.", suffix=".partial", dir=dest.parent))


def _owner_gone(path: Path, pid: int) -> bool:
    """The pid in a temporary name is dead, or is a newer process that reused the number."""
    import psutil

    try:
        started = psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return not psutil.pid_exists(pid)
    try:
        return started > path.lstat().st_mtime + 1
    except FileNotFoundError:
        return False


def stale_partials(directory: Path, name: str | None = None) -> list[Path]:
    """Temporary files and staging dirs in `directory` (of `name`, if given) whose writer is gone."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        if name is None:
            match = _PARTIAL_FILE.match(path.name)
        else:
            match = path.name.startswith(f".{name}.") and _PARTIAL_TAIL.match(path.name[len(name) + 2:])
        if match and _owner_gone(path, int(match["pid"])):
            found.append(path)
    return found


def remove_stale_partials(directory: Path, name: str | None = None, *, recursive: bool = False) -> list[Path]:
    """Delete what killed writers left in `directory` (and its subfolders with `recursive`)."""
    directories = [directory] + ([p for p in directory.rglob("*") if p.is_dir() and not p.is_symlink()
                                  and not p.name.endswith(".partial")] if recursive and directory.is_dir() else [])
    removed = []
    for folder in directories:
        for path in stale_partials(folder, name):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed
