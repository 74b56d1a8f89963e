"""Content hashes for checksums and cache keys, with a stat memo so big files hash once.

Every byte is hashed: a file's name is never taken for its content (a huggingface-hub blob named
by its sha256 may be a link to anything). The memo, in the user's cache, maps a file's identity
(device, inode, size, mtime and ctime in nanoseconds) to its sha256; any write to the file, or
setting its mtime back, changes its ctime, so a memo hit means the bytes are the ones hashed.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from filelock import FileLock

from edgepack import paths

_CHUNK = 8 * 1024 * 1024
_MEMO_ENTRIES = 4096  # newest kept; a miss only costs a re-hash


def _memo_path() -> Path:
    return paths.cache_root() / "sha256-memo.json"


def file_identity(path: str | Path) -> str:
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def sha256_file(path: str | Path, *, memo: bool = True) -> str:
    """sha256 of a file's bytes. With `memo`, an unchanged file (same identity, see above) is not re-hashed."""
    path = Path(path)
    if memo:
        known = recall_sha256(path)
        if known:
            return known
    with path.open("rb", buffering=0) as fh:
        value = hashlib.file_digest(fh, "sha256").hexdigest()  # one reused buffer, the GIL released
    if memo and path.stat().st_size >= _CHUNK:  # only worth remembering for large files
        remember_sha256(path, value)
    return value


class GrowingFileHash:
    """sha256 of a file another process is writing front to back, hashed while it grows.

    For a writer that only appends (the pinned gguf-py's GGUFWriter writes header, metadata,
    tensor index and tensor data in one forward pass), so the hash is ready when the writer is
    done instead of costing a full read afterwards. A thread follows the file from its start;
    `finish()`, called once the writer has exited, reads what is left and returns the digest.
    Checked, not assumed: the file must be the inode followed, as long as the bytes hashed, and its
    first MiB (where a writer that patched a header in place would have written) the bytes read
    then; otherwise `finish()` hashes the whole file again. hashlib and reads release the GIL.
    """

    _POLL = 0.05  # seconds between looks at a file that has not grown
    _HEAD = 1 << 20

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._digest = hashlib.sha256()
        self._done = threading.Event()
        self._head = b""
        self._count = 0
        self._ino: int | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._follow, name="edgepack-hash", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        # edgepack.procs (psutil) is not imported at module level: hashing is on paths that never
        # start a process. Its users (source.convert, source.early) have imported it already.
        from edgepack.procs import lower_this_thread

        lower_this_thread()  # the writer comes first; finish() reads whatever is left
        try:
            while not self.path.exists():
                if self._done.wait(self._POLL):
                    return
            with self.path.open("rb", buffering=0) as fh:
                self._ino = os.fstat(fh.fileno()).st_ino
                while True:
                    finishing = self._done.is_set()  # read after the writer ended: this pass reaches the end
                    while chunk := fh.read(_CHUNK):
                        self._digest.update(chunk)
                        if len(self._head) < self._HEAD:
                            self._head += chunk[:self._HEAD - len(self._head)]
                        self._count += len(chunk)
                    if finishing:
                        return
                    self._done.wait(self._POLL)
        except BaseException as exc:  # noqa: BLE001  reported by finish(), which then hashes anew
            self._error = exc

    def finish(self) -> str:
        """The file's sha256, once its writer has exited (the file complete at `self.path`)."""
        self._done.set()
        self._thread.join()
        st = self.path.stat()
        if (self._error is None and st.st_ino == self._ino and st.st_size == self._count
                and _read_head(self.path, len(self._head)) == self._head):
            return self._digest.hexdigest()
        return sha256_file(self.path, memo=False)

    def cancel(self) -> None:
        self._done.set()
        self._thread.join()


def _read_head(path: Path, n: int) -> bytes:
    with path.open("rb", buffering=0) as fh:
        return fh.read(n)


def recall_sha256(path: str | Path) -> str | None:
    """The sha256 remembered for this very file (same identity), or None."""
    try:
        key = file_identity(path)
    except OSError:
        return None
    return _load_memo(_memo_path()).get(key)


def remember_sha256(path: str | Path, digest: str) -> None:
    """Remember `digest` for `path` as it is now (call right after hashing it)."""
    memo_path = _memo_path()
    try:
        key = file_identity(path)
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(memo_path) + ".lock", timeout=10):
            data = _load_memo(memo_path)
            data.pop(key, None)
            data[key] = digest
            data = dict(list(data.items())[-_MEMO_ENTRIES:])
            tmp = memo_path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, memo_path)
    except (OSError, TimeoutError):
        pass  # a memo that cannot be written only costs a re-hash next time


def _load_memo(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def sha256_text(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


# ---------------------------------------------------------------- checked cache entries

def file_record(path: str | Path, sha256: str | None = None) -> dict:
    """What a cache records about a file it keeps: sha256, size and mtime."""
    path = Path(path)
    st = path.stat()
    return {"sha256": sha256 or sha256_file(path, memo=False), "size_bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def matches_record(path: str | Path, record: dict | None) -> bool:
    """Is `path` still the file `record` describes?

    Same size and mtime as recorded: trusted without rehashing (a change of content through the
    file system moves the mtime). Otherwise every byte is hashed and compared with the sha256."""
    path = Path(path)
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    if st.st_size != record.get("size_bytes"):
        return False
    if st.st_mtime_ns == record.get("mtime_ns"):
        return True
    return sha256_file(path, memo=False) == record["sha256"]
