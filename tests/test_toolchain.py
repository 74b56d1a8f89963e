"""The pinned toolchain: the sdist is checked before unpacking, concurrent first uses both work."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from edgepack.errors import ToolchainError

REPO = Path(__file__).resolve().parents[1]


def _fake_sdist(path: Path, n_files: int = 3000) -> str:
    """A llama-cpp-python-shaped sdist (vendor/llama.cpp/...) with many files, so unpacking takes a while."""
    top = "llama_cpp_python-0.3.36/"
    with tarfile.open(path, "w:gz") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(top + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add(".git/modules/vendor/llama.cpp/HEAD", b"0123456789abcdef0123456789abcdef01234567\n")
        add("vendor/llama.cpp/convert_hf_to_gguf.py", b"print('converter')\n")
        for i in range(n_files):
            add(f"vendor/llama.cpp/src/file{i}.cpp", os.urandom(512))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sdist_with_another_sha256_is_refused(tmp_path, monkeypatch):
    from edgepack.runtime import toolchain

    sdist = tmp_path / "llama_cpp_python-0.3.36.tar.gz"
    _fake_sdist(sdist, n_files=3)
    monkeypatch.setenv("EDGEPACK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGEPACK_LLAMA_CPP_SDIST", str(sdist))
    with pytest.raises(ToolchainError, match="is not the llama-cpp-python 0.3.36 sdist edgepack pins"):
        toolchain.ensure_toolchain()
    assert not list((tmp_path / "cache" / "toolchain").glob("llama-cpp-python-*/"))


def test_the_pinned_sdist_passes(tmp_path):
    from edgepack.runtime.toolchain import SDIST_SHA256, check_sdist

    # Anything hashing to the pinned value passes; proven on a real copy when one is at hand.
    local = os.environ.get("EDGEPACK_LLAMA_CPP_SDIST")
    if not local:
        pytest.skip("set EDGEPACK_LLAMA_CPP_SDIST to a copy of the real sdist to check the pin")
    check_sdist(Path(local), "0.3.36")
    assert len(SDIST_SHA256["0.3.36"]) == 64


CHILD = textwrap.dedent("""
    import os, sys, time
    from edgepack.runtime import toolchain
    if hasattr(toolchain, "SDIST_SHA256"):
        toolchain.SDIST_SHA256["0.3.36"] = sys.argv[1]  # the fake sdist of this test stands for the pinned one
    tc = toolchain.ensure_toolchain()
    inode = os.stat(tc.root).st_ino
    open(sys.argv[2], "w").close()
    while not os.path.exists(sys.argv[3]):  # keep using the tree until the other build is done too
        time.sleep(0.02)
    assert os.stat(tc.root).st_ino == inode, "the tree this process uses was replaced"
    assert tc.converter.is_file()
""")


def test_two_first_time_builds_share_one_unpack(tmp_path):
    sdist = tmp_path / "llama_cpp_python-0.3.36.tar.gz"
    sha = _fake_sdist(sdist)
    env = os.environ | {"EDGEPACK_CACHE": str(tmp_path / "cache"), "EDGEPACK_LLAMA_CPP_SDIST": str(sdist),
                        "PYTHONPATH": str(REPO)}
    a, b = tmp_path / "a.done", tmp_path / "b.done"
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, sha, str(mine), str(other)], env=env,
                              stderr=subprocess.PIPE, text=True) for mine, other in ((a, b), (b, a))]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    trees = sorted(p.name for p in (tmp_path / "cache" / "toolchain").iterdir())
    assert trees == ["llama-cpp-python-0.3.36", "llama-cpp-python-0.3.36.lock"]  # no staging left behind
