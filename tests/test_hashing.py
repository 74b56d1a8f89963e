"""The sha256 of a file hashed while another process writes it (edgepack.hashing.GrowingFileHash),
compared with hashlib over the finished file."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgepack.hashing import GrowingFileHash

# A writer in its own process: waits, creates the file, appends random chunks with pauses (so the
# follower meets the end of a file that is still growing), then optionally rewrites bytes it
# already wrote, or replaces the file by a new one.
WRITER = textwrap.dedent("""
    import os, sys, time
    path, mode = sys.argv[1], sys.argv[2]
    time.sleep(0.1)
    with open(path, "wb") as fh:
        for i in range(12):
            fh.write(os.urandom(300_000 + i * 7_919))
            fh.flush()
            time.sleep(0.03)
    if mode == "patch-head":  # a header filled in at the end, as llama-quantize does
        with open(path, "r+b") as fh:
            fh.write(b"GGUF-PATCHED")
    elif mode == "replace":
        with open(path + ".new", "wb") as fh:
            fh.write(os.urandom(100_000))
        os.replace(path + ".new", path)
""")


def _follow(tmp_path: Path, mode: str) -> tuple[str, str]:
    path = tmp_path / "out.bin"
    follower = GrowingFileHash(path)
    subprocess.run([sys.executable, "-c", WRITER, str(path), mode], check=True)
    return follower.finish(), hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("mode", ["append", "patch-head", "replace"])
def test_hash_of_a_growing_file_is_the_finished_files(tmp_path, mode):
    got, expected = _follow(tmp_path, mode)
    assert got == expected


def test_cancel_before_the_file_exists(tmp_path):
    follower = GrowingFileHash(tmp_path / "never.bin")
    follower.cancel()
    assert not (tmp_path / "never.bin").exists()
