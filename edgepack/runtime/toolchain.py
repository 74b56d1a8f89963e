"""The pinned llama.cpp toolchain: one llama.cpp version for converter, quantizer and runtime.

llama-cpp-python's sdist vendors the whole llama.cpp tree it was built from. edgepack
fetches that sdist once (pip download, so the user's index settings apply), unpacks the
llama.cpp tree into the user cache, and runs `convert_hf_to_gguf.py` with that tree's own
`gguf-py`. The runtime (llama_cpp) is the same version, pinned in pyproject.toml.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from edgepack import paths, procs, progress
from edgepack.errors import ToolchainError, UnsupportedArchitectureError

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
SDIST_ENV = "EDGEPACK_LLAMA_CPP_SDIST"  # a local sdist file, for machines without an index
# sha256 of llama_cpp_python-<version>.tar.gz as PyPI serves it: checked before anything is unpacked.
SDIST_SHA256 = {"0.3.36": "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"}

# Parts of the vendored tree we do not need: test vocabularies and documentation.
_SKIP_PREFIXES = ("models/", "docs/", "media/", "benches/", ".github/")
_KEEP_PREFIXES = ("models/templates/",)  # real chat templates: scripts/bench_templates.py


@dataclass(frozen=True)
class Toolchain:
    llama_cpp_python: str
    llama_cpp_commit: str  # full llama.cpp commit the sdist vendors
    root: Path  # the unpacked llama.cpp tree

    @property
    def converter(self) -> Path:
        return self.root / "convert_hf_to_gguf.py"

    @property
    def gguf_py(self) -> Path:
        return self.root / "gguf-py"

    @property
    def build(self) -> str:
        """Short name used in manifests and cache keys, e.g. `llama.cpp 0c1e570 (llama-cpp-python 0.3.36)`."""
        return f"llama.cpp {self.llama_cpp_commit[:7]} (llama-cpp-python {self.llama_cpp_python})"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["root"] = str(self.root)
        d["build"] = self.build
        return d


def installed_runtime_version() -> str | None:
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return None


def _tree_dir(version: str) -> Path:
    return paths.toolchain_dir() / f"llama-cpp-python-{version}"


def find_toolchain(version: str = LLAMA_CPP_PYTHON_VERSION) -> Toolchain | None:
    """The unpacked toolchain if it is already in the cache (no network, no side effects)."""
    root = _tree_dir(version) / "llama.cpp"
    info = _tree_dir(version) / "toolchain.json"
    if not (root / "convert_hf_to_gguf.py").is_file() or not info.is_file():
        return None
    data = json.loads(info.read_text())
    return Toolchain(data["llama_cpp_python"], data["llama_cpp_commit"], root)


def ensure_toolchain(version: str = LLAMA_CPP_PYTHON_VERSION) -> Toolchain:
    """Return the pinned toolchain, fetching and unpacking it on first use.

    Concurrent first uses take turns on a file lock: one unpacks, the others then find its tree.
    A tree is only ever renamed into place whole, and never deleted while it may be in use."""
    from filelock import FileLock

    found = find_toolchain(version)
    if found is not None:
        return found
    runtime = installed_runtime_version()
    if runtime is not None and runtime != version:
        raise ToolchainError(
            f"llama-cpp-python {runtime} is installed but edgepack pins {version}; "
            f"run: pip install llama-cpp-python=={version}"
        )
    paths.toolchain_dir().mkdir(parents=True, exist_ok=True)
    with FileLock(str(_tree_dir(version)) + ".lock"):
        found = find_toolchain(version)  # another process may have unpacked it while we waited
        if found is not None:
            return found
        with tempfile.TemporaryDirectory(prefix="edgepack-sdist-") as tmp:
            sdist = _obtain_sdist(version, Path(tmp))
            check_sdist(sdist, version)
            _unpack(sdist, version)
    found = find_toolchain(version)
    if found is None:  # pragma: no cover - _unpack guarantees it
        raise ToolchainError("the llama.cpp toolchain did not unpack; remove the cache and retry")
    return found


def check_sdist(sdist: Path, version: str) -> None:
    """The sdist must be the one edgepack pins (sha256), wherever it came from."""
    import hashlib

    expected = SDIST_SHA256.get(version)
    if expected is None:
        raise ToolchainError(f"edgepack knows no sha256 for llama-cpp-python {version}'s sdist; use {LLAMA_CPP_PYTHON_VERSION}")
    digest = hashlib.sha256()
    with sdist.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise ToolchainError(
            f"{sdist} is not the llama-cpp-python {version} sdist edgepack pins (sha256 {digest.hexdigest()[:16]}…, "
            f"expected {expected[:16]}…); fetch it again from PyPI" + (f" or fix {SDIST_ENV}" if os.environ.get(SDIST_ENV) else ""))


def _obtain_sdist(version: str, tmp: Path) -> Path:
    local = os.environ.get(SDIST_ENV)
    if local:
        path = Path(local).expanduser()
        if not path.is_file():
            raise ToolchainError(f"{SDIST_ENV}={local} is not a file; point it at llama_cpp_python-{version}.tar.gz")
        return path
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
           f"llama-cpp-python=={version}", "-d", str(tmp)]
    with progress.step(f"Fetching the llama.cpp tree (llama-cpp-python {version} sdist)"):
        proc = procs.run(cmd, capture_output=True, text=True)
    found = sorted(tmp.glob("llama_cpp_python-*.tar.gz"))
    if proc.returncode != 0 or not found:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ToolchainError(
            f"could not download the llama-cpp-python {version} sdist ({last}); "
            f"check the network or set {SDIST_ENV} to a local copy"
        )
    return found[0]


def _unpack(sdist: Path, version: str) -> None:
    """Unpack vendor/llama.cpp into a temp dir and rename it into place (never half a tree)."""
    final = _tree_dir(version)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    commit = "unknown"
    try:
        with progress.step("Unpacking the llama.cpp tree"), tarfile.open(sdist) as tar:
            prefix = None
            for member in tar:
                parts = member.name.split("/", 1)
                if len(parts) < 2:
                    continue
                top, rest = parts
                if rest == ".git/modules/vendor/llama.cpp/HEAD":
                    commit = tar.extractfile(member).read().decode().strip()
                    continue
                if not rest.startswith("vendor/llama.cpp/"):
                    continue
                inner = rest[len("vendor/llama.cpp/"):]
                if not inner or (inner.startswith(_SKIP_PREFIXES) and not inner.startswith(_KEEP_PREFIXES)):
                    continue
                prefix = top
                member.name = "llama.cpp/" + inner
                tar.extract(member, staging, filter="data")
        if prefix is None or not (staging / "llama.cpp" / "convert_hf_to_gguf.py").is_file():
            raise ToolchainError(f"{sdist.name} does not vendor llama.cpp's convert_hf_to_gguf.py")
        (staging / "toolchain.json").write_text(json.dumps(
            {"llama_cpp_python": version, "llama_cpp_commit": commit}, indent=2))
        if final.exists():  # an incomplete tree (no toolchain.json): nobody can be using it
            stale = final.with_name(f".{final.name}.stale-{os.getpid()}")
            final.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


_ARCH_ENTRY = re.compile(r'\{\s*LLM_ARCH_\w+\s*,\s*"([^"]+)"\s*\}')
_NOT_LOADABLE = {"clip", "(unknown)"}  # llama-arch.cpp: clip is a dummy used by llama-quantize


@functools.lru_cache(maxsize=2)
def runtime_architectures(version: str = LLAMA_CPP_PYTHON_VERSION) -> frozenset[str]:
    """Model architectures the pinned llama.cpp can load, from its src/llama-arch.cpp.

    Without the unpacked tree (no build has run yet), gguf-py's table of architectures stands in."""
    found = find_toolchain(version)
    source = found.root / "src" / "llama-arch.cpp" if found else None
    if source is not None and source.is_file():
        names = set(_ARCH_ENTRY.findall(source.read_text(encoding="utf-8", errors="replace")))
    else:
        from gguf.constants import MODEL_ARCH_NAMES

        names = set(MODEL_ARCH_NAMES.values())
    return frozenset(names - _NOT_LOADABLE)


def check_loadable_architecture(architecture: str, what: str) -> None:
    """One line when llama.cpp (the pinned runtime) has no loader for this architecture."""
    if architecture not in runtime_architectures():
        raise UnsupportedArchitectureError(
            f"{what} has architecture {architecture!r}, which the pinned llama.cpp "
            f"(llama-cpp-python {LLAMA_CPP_PYTHON_VERSION}) cannot load")


def converter_env(toolchain: Toolchain) -> dict[str, str]:
    """Environment for running the converter with the tree's own gguf-py first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(toolchain.gguf_py), str(toolchain.root)] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["HF_HUB_OFFLINE"] = "1"  # the converter must never fetch from the hub (nor code from it)
    return env
