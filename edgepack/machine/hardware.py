"""What a machine is made of, as plain records: CPU, GPU, memory, the llama.cpp build.

The probes (probe_cpu.py, probe_gpu.py) fill these in; profile.py gathers them into a
MachineProfile. Kept apart so the probes and the profile import them without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

@dataclass
class CpuInfo:
    vendor: str | None = None
    model: str | None = None
    arch: str | None = None
    isa: list[str] = field(default_factory=list)        # what the CPU offers
    llama_isa: list[str] = field(default_factory=list)  # what the installed llama.cpp build uses
    physical_cores: int | None = None
    logical_cores: int | None = None
    performance_cores: int | None = None
    efficiency_cores: int | None = None
    cache_bytes: dict[str, int] = field(default_factory=dict)  # "L1d", "L2", "L3" (per core for L1/L2)
    max_mhz: float | None = None

    def threads_for_inference(self) -> int:
        """llama.cpp runs best on physical performance cores; SMT siblings and E-cores slow it."""
        return self.performance_cores or self.physical_cores or self.logical_cores or 1


@dataclass
class GpuInfo:
    name: str
    vendor: str                      # "nvidia", "amd", "apple"
    memory_total_bytes: int | None = None
    memory_free_bytes: int | None = None
    compute_capability: str | None = None
    driver: str | None = None
    unified_memory: bool = False     # Jetson and Apple: the GPU uses system RAM
    bandwidth_gbps: float | None = None
    fp16_tflops: float | None = None
    source: str = ""                 # "nvml", "nvidia-smi", "jetson", "sysctl", "rocm-smi", "preset"


@dataclass
class MemoryInfo:
    total_bytes: int | None = None
    available_bytes: int | None = None
    swap_total_bytes: int | None = None
    swap_free_bytes: int | None = None
    disk_path: str | None = None
    disk_free_bytes: int | None = None
    bandwidth_gbps: float | None = None   # measured (this machine) or nominal (presets)
    bandwidth_source: str | None = None


@dataclass
class LlamaBuild:
    system_info: str | None = None
    backends: list[str] = field(default_factory=list)
    gpu_offload: bool = False
    built_with: list[str] = field(default_factory=list)  # CUDA / Metal / Vulkan / HIP / ... found in the build

