"""Put a finished bundle in place of the old one so that at every instant the directory holds one of them.

Linux: renameat2(RENAME_EXCHANGE) swaps the two directory entries in one system call (ext4, xfs,
btrfs, tmpfs, ...); macOS: renamex_np(RENAME_SWAP) does the same. Python's os module has neither,
hence ctypes. Where neither works (Windows, a file system without exchange) the fallback renames
the old bundle aside and the new one in: between those two renames (microseconds, signals held
back) the directory is briefly absent, and a crash there leaves the old bundle in `.NAME.PID.old.partial`,
which the next build puts back. The old tree is removed only after the new one is in place.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import sys
from pathlib import Path

from edgepack.procs import signals_deferred

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h
_RENAME_SWAP = 2  # macOS sys/stdio.h


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths; False when this platform or file system cannot."""
    libc = _libc()
    if libc is None:
        return False
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        rc = libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    elif sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        rc = libc.renamex_np(os.fsencode(a), os.fsencode(b), _RENAME_SWAP)
    else:
        return False
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def swap_in(staging: Path, dest: Path) -> Path | None:
    """Make `staging` appear as `dest`. Returns where the old bundle now is (to be removed), or None."""
    with signals_deferred():
        if not os.path.lexists(dest):
            os.rename(staging, dest)
            return None
        if exchange(staging, dest):
            return staging  # the old bundle now sits at the staging name
        old = dest.with_name(f".{dest.name}.{os.getpid()}.old.partial")
        os.rename(dest, old)
        os.rename(staging, dest)
        return old


def remove_tree(path: Path | None) -> None:
    if path is not None and os.path.lexists(path):
        shutil.rmtree(path, ignore_errors=True)


def restore_interrupted_swap(dest: Path) -> bool:
    """After a crash between the fallback's two renames, put the old bundle back (before debris is removed)."""
    from edgepack.atomic import stale_partials

    if os.path.lexists(dest):
        return False
    aside = [p for p in stale_partials(dest.parent, dest.name) if p.name.endswith(".old.partial")]
    if aside:
        os.rename(max(aside, key=lambda p: p.stat().st_mtime), dest)
    return bool(aside)
