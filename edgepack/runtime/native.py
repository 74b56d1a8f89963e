"""Build llama.cpp's command-line tools from the pinned tree, once per version and backend.

The Python runtime (llama_cpp) covers loading, generation and quantization; the tools are
for cross-checks against llama.cpp's own numbers (llama-quantize, llama-perplexity,
llama-bench), for the importance matrix (llama-imatrix), and for users (llama-server), for multimodal prompts (llama-mtmd-cli) and for split GGUFs
(llama-gguf-split).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from edgepack import paths, procs, progress
from edgepack.errors import ToolchainError
from edgepack.runtime.toolchain import Toolchain, ensure_toolchain, find_toolchain, LLAMA_CPP_PYTHON_VERSION

DEFAULT_TOOLS = ("llama-quantize", "llama-imatrix", "llama-perplexity", "llama-bench", "llama-server")
# Built on demand: llama-mtmd-cli runs a text model with its vision/audio projector (image
# prompts, time to first token); llama-gguf-split writes, merges and checks split GGUFs.
# llama.cpp's RPC server (`-DGGML_RPC=ON`); named `ggml-rpc-server` in the pinned tree. An RPC build
# has its own directory, so the default tools are never reconfigured; its tools also take `--rpc`.
RPC_TOOLS = ("ggml-rpc-server",)
TOOL_ALIASES = {"rpc-server": "ggml-rpc-server"}
ALL_TOOLS = DEFAULT_TOOLS + ("llama-cli", "llama-mtmd-cli", "llama-gguf-split") + RPC_TOOLS


@dataclass
class NativeBuild:
    backend: str
    build_dir: Path
    tools: dict[str, str] = field(default_factory=dict)  # name -> path
    llama_cpp_commit: str = "unknown"
    compile_flags: str | None = None
    rpc: bool = False  # built with -DGGML_RPC=ON

    def tool(self, name: str) -> Path | None:
        path = self.tools.get(name)
        return Path(path) if path and Path(path).is_file() else None

    def to_dict(self) -> dict:
        return {"backend": self.backend, "build_dir": str(self.build_dir), "tools": self.tools,
                "llama_cpp_commit": self.llama_cpp_commit, "compile_flags": self.compile_flags, "rpc": self.rpc}


def _has_nvidia_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return Path("/etc/nv_tegra_release").exists()  # Jetson: no nvidia-smi, GPU always there
    try:
        return subprocess.run([smi, "-L"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def detect_backend() -> str:
    if platform.system() == "Darwin":
        return "metal"
    if shutil.which("nvcc") and _has_nvidia_gpu():
        return "cuda"
    return "cpu"


def _cuda_arch() -> str | None:
    """The local GPU's compute capability (e.g. "87" on Jetson Orin), so nvcc builds only that."""
    if Path("/etc/nv_tegra_release").exists():
        model = Path("/proc/device-tree/model")
        text = model.read_text(errors="ignore") if model.exists() else ""
        return "87" if "Orin" in text else ("72" if "Xavier" in text else "53")
    smi = shutil.which("nvidia-smi")
    if smi:
        out = subprocess.run([smi, "--query-gpu=compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True)
        caps = sorted({c.strip().replace(".", "") for c in out.stdout.split() if c.strip()})
        if out.returncode == 0 and caps:
            return ";".join(caps)
    return None


def _build_dir(backend: str, version: str = LLAMA_CPP_PYTHON_VERSION, *, rpc: bool = False) -> Path:
    return paths.native_dir() / f"llama-cpp-python-{version}-{backend}{'-rpc' if rpc else ''}"


def _stamp(build_dir: Path) -> Path:
    return build_dir / "edgepack-native.json"


def find_native(backend: str | None = None, *, rpc: bool = False) -> NativeBuild | None:
    """The already-built tools for this version and backend, if any (never builds)."""
    backend = backend or detect_backend()
    stamp = _stamp(_build_dir(backend, rpc=rpc))
    if not stamp.is_file():
        return None
    data = json.loads(stamp.read_text())
    if data.get("compile_flags") != extra_compile_flags():
        return None  # built with other flags (e.g. before the AMX workaround): rebuild
    return NativeBuild(data["backend"], Path(data["build_dir"]), data["tools"], data.get("llama_cpp_commit", "unknown"),
                       data.get("compile_flags"), bool(data.get("rpc", False)))


def find_tool(name: str) -> Path | None:
    build = find_native()
    return build.tool(name) if build else None


# At this llama.cpp version the CPU backend's AMX kernels crash (SIGSEGV in batched matmul of
# Q4_0/Q8_0/K-quants) on Xeons whose AMX otherwise works; GGML_NATIVE would compile them in.
AMX_OFF_FLAGS = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


def cpu_has_amx(cpuinfo: str | None = None) -> bool:
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = next((ln for ln in cpuinfo.splitlines() if ln.startswith("flags")), "")
    return "amx_int8" in flags.split()


def extra_compile_flags() -> str | None:
    """Flags edgepack adds to llama.cpp builds on this host (also used by scripts/setup.sh)."""
    if platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64") and cpu_has_amx():
        return AMX_OFF_FLAGS
    return None


def cmake_args(toolchain: Toolchain, build_dir: Path, backend: str, *, rpc: bool = False) -> list[str]:
    args = ["cmake", "-S", str(toolchain.root), "-B", str(build_dir / "cmake"),
            "-C", str(paths.package_data_dir("native") / "llama-tools.cmake")]
    flags = extra_compile_flags()
    if flags:
        args += [f"-DCMAKE_C_FLAGS={flags}", f"-DCMAKE_CXX_FLAGS={flags}"]
    if shutil.which("ninja"):
        args += ["-G", "Ninja"]
    if backend == "cuda":
        args.append("-DGGML_CUDA=ON")
        arch = _cuda_arch()
        if arch:
            args.append(f"-DCMAKE_CUDA_ARCHITECTURES={arch}")
    elif backend == "metal":
        args.append("-DGGML_METAL=ON")
    if rpc:
        args.append("-DGGML_RPC=ON")
    return args


def build_native(tools: tuple[str, ...] = DEFAULT_TOOLS, backend: str | None = None,
                 jobs: int | None = None, *, rpc: bool = False) -> NativeBuild:
    """Configure and build `tools`; reuse what an earlier build already made.

    `rpc` (implied by asking for ggml-rpc-server) builds them, with llama.cpp's RPC backend, in a
    directory of their own (find_native(rpc=True)); the default build is left as it is.
    """
    tools = tuple(TOOL_ALIASES.get(t, t) for t in tools)
    unknown = [t for t in tools if t not in ALL_TOOLS]
    if unknown:
        raise ToolchainError(f"unknown llama.cpp tool {unknown[0]!r}; choose from {', '.join(ALL_TOOLS)}")
    backend = backend or detect_backend()
    if backend not in ("cpu", "cuda", "metal"):
        raise ToolchainError(f"unknown backend {backend!r}; choose cpu, cuda or metal")
    rpc = rpc or any(t in RPC_TOOLS for t in tools)
    existing = find_native(backend, rpc=rpc)
    if existing and all(existing.tool(t) for t in tools):
        return existing
    if shutil.which("cmake") is None:
        raise ToolchainError("cmake is not installed; install cmake and a C++ compiler, then retry")
    toolchain = ensure_toolchain()
    build_dir = _build_dir(backend, rpc=rpc)
    build_dir.mkdir(parents=True, exist_ok=True)
    jobs = jobs or os.cpu_count() or 2
    log = build_dir / "build.log"
    with log.open("w") as fh, progress.step(f"Building {', '.join(tools)} ({backend}, {jobs} jobs)"):
        for cmd in (cmake_args(toolchain, build_dir, backend, rpc=rpc),
                    ["cmake", "--build", str(build_dir / "cmake"), "--config", "Release",
                     "-j", str(jobs), "--target", *tools]):
            fh.write("$ " + " ".join(cmd) + "\n")
            fh.flush()
            proc = procs.run(cmd, stdout=fh, stderr=subprocess.STDOUT)
            if proc.returncode != 0:
                raise ToolchainError(f"building llama.cpp tools failed (exit {proc.returncode}); see {log}")
    bin_dir = build_dir / "cmake" / "bin"
    found = dict(existing.tools) if existing else {}  # same flags: still valid
    for tool in tools:
        path = bin_dir / tool
        if path.is_file():
            found[tool] = str(path)
    missing = [t for t in tools if t not in found]
    if missing:
        raise ToolchainError(f"the build finished but {missing[0]} is missing; see {log}")
    result = NativeBuild(backend, build_dir, found, toolchain.llama_cpp_commit, extra_compile_flags(), rpc)
    _stamp(build_dir).write_text(json.dumps(result.to_dict(), indent=2))
    return result


__all__ = ["NativeBuild", "RPC_TOOLS", "build_native", "find_native", "find_tool", "detect_backend", "find_toolchain"]
