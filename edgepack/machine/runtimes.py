"""The runtime a plan sizes for, and what its process adds besides the model and the context.

A plan's memory is the model's buffers (weights, KV cache, compute buffer, repacked copies; see
memory.py) plus the resident memory of the runtime process itself: its code, libraries,
threads and allocator. That last part differs by runtime, so a plan names the one it is for:

- llama-server: llama.cpp's own server. Measured on the pinned llama-server (CPU build, x86-64
  Linux): its peak resident set with the context filled, less the plan's model buffers, is
  16.8-18.9 MiB at contexts 1024 and 8192 (tests/test_plan_vs_server.py checks the whole plan
  against a running server at two contexts, within 10 %). GPU builds map their CUDA/Metal
  libraries too; that host-side share is not measured here.
- python: llama-cpp-python in a Python process (interpreter, numpy, the llama.cpp library).
- ollama: Ollama's runner process; its llama.cpp engine is the same, the Go runtime adds to it.
  Not measured here (no Ollama on the machines this was built on): the llama-server figure plus
  Go's runtime, stated as an estimate in the plan's notes.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgepack.errors import PlanError

MIB = 2**20


@dataclass(frozen=True)
class Runtime:
    name: str
    reserve_ram: int      # the process without a model: code, libraries, threads, allocator
    reserve_vram: int     # CUDA context and cuBLAS workspace on a discrete GPU
    basis: str            # where reserve_ram comes from


RUNTIMES: dict[str, Runtime] = {
    "llama-server": Runtime("llama-server", int(17.5 * MIB), 400 * MIB,
                            "measured: resident set of the pinned llama-server without model buffers"),
    "python": Runtime("python", 64 * MIB, 400 * MIB,
                      "measured: a Python process with numpy, psutil and llama-cpp-python loaded (54 MiB) "
                      "plus allocator slack"),
    "ollama": Runtime("ollama", int(17.5 * MIB) + 32 * MIB, 400 * MIB,
                      "estimate: llama-server's figure plus about 32 MiB for the Go runtime (not measured)"),
}
DEFAULT_RUNTIME = "llama-server"

# Kept for callers that passed the reserves explicitly (the Python runtime's figures).
RUNTIME_RESERVE_RAM = RUNTIMES["python"].reserve_ram
RUNTIME_RESERVE_VRAM = RUNTIMES["python"].reserve_vram


def get_runtime(name: str | None) -> Runtime:
    key = (name or DEFAULT_RUNTIME).strip().lower()
    if key not in RUNTIMES:
        raise PlanError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}")
    return RUNTIMES[key]
