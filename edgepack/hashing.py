"""Content hashes for checksums and cache keys, with a stat memo so big files hash once."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path

from edgepack import paths

_CHUNK = 8 * 1024 * 1024
_lock = threading.Lock()
_SHA256_NAME = re.compile(r"^[0-9a-f]{64}$")


def sha256_file(path: str | Path, *, memo: bool = True) -> str:
    """sha256 of a file. A memo keyed by (path, size, mtime) skips rehashing unchanged files."""
    path = Path(path)
    real = path.resolve()
    # Files in a huggingface-hub cache are symlinks to blobs named by their sha256 (LFS files).
    if _SHA256_NAME.match(real.name) and real.parent.name == "blobs":
        return real.name
    st = real.stat()
    key = f"{real}|{st.st_size}|{st.st_mtime_ns}"
    memo_path = paths.cache_root() / "sha256-memo.json"
    if memo:
        known = _load_memo(memo_path).get(key)
        if known:
            return known
    digest = hashlib.sha256()
    with real.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    if memo and st.st_size >= _CHUNK:  # only worth remembering for large files
        with _lock:
            data = _load_memo(memo_path)
            data[key] = value
            memo_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo_path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, memo_path)
    return value


def _load_memo(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


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
