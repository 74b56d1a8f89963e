"""Built-in planning targets: common edge boards, GPUs, Macs and a CPU-only laptop.

Figures are the vendors' nominal ones (memory, peak DRAM/VRAM bandwidth, FP16 tensor
throughput); `available` is what is left for a model once the OS and desktop have taken their
share, so plans for a preset are conservative. A profile JSON saved on the real device
(`edgepack profile --json`) is always the better target.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgepack.machine.profile import CpuInfo, GpuInfo, LlamaBuild, MachineProfile, MemoryInfo, ProfileError, load_profile

GIB = 2**30

ARM_A78 = ["NEON", "DOTPROD", "FP16_VA"]
ARM_A76 = ["NEON", "DOTPROD", "FP16_VA"]
APPLE_M = ["NEON", "DOTPROD", "MATMUL_INT8", "FP16_VA"]
X86_LAPTOP = ["SSE3", "SSSE3", "AVX", "AVX2", "FMA", "F16C", "BMI2", "AVX_VNNI"]
X86_SERVER = ["SSE3", "SSSE3", "AVX", "AVX2", "FMA", "F16C", "BMI2", "AVX512_F", "AVX512_BW", "AVX512_VL",
              "AVX512_VNNI"]


@dataclass(frozen=True)
class DevicePreset:
    name: str
    description: str
    ram_gib: float
    ram_available_gib: float        # left for the model after OS/desktop
    ram_bandwidth_gbps: float
    cpu_model: str
    cpu_cores: int                  # performance cores llama.cpp should use
    cpu_mhz: float
    cpu_isa: tuple[str, ...]
    cpu_fp32_gflops: float
    gpu_name: str | None = None
    vram_gib: float | None = None   # discrete VRAM, or the GPU's share of unified memory
    vram_bandwidth_gbps: float | None = None
    gpu_fp16_tflops: float | None = None
    compute_capability: str | None = None
    unified_memory: bool = False
    backend: str = "CPU"            # the llama.cpp backend a user would build there
    efficiency_cores: int | None = None

    def profile(self) -> MachineProfile:
        gpus = []
        if self.gpu_name:
            vram = int((self.vram_gib or self.ram_available_gib) * GIB)
            gpus.append(GpuInfo(name=self.gpu_name, vendor="apple" if self.backend == "Metal" else "nvidia",
                                memory_total_bytes=vram, memory_free_bytes=vram,
                                compute_capability=self.compute_capability, unified_memory=self.unified_memory,
                                bandwidth_gbps=self.vram_bandwidth_gbps or self.ram_bandwidth_gbps,
                                fp16_tflops=self.gpu_fp16_tflops, source="preset"))
        return MachineProfile(
            name=self.name, os=None, source="preset",
            cpu=CpuInfo(model=self.cpu_model, arch="aarch64" if "NEON" in self.cpu_isa else "x86_64",
                        isa=list(self.cpu_isa), llama_isa=list(self.cpu_isa) + ["REPACK"],
                        physical_cores=self.cpu_cores + (self.efficiency_cores or 0),
                        logical_cores=self.cpu_cores + (self.efficiency_cores or 0),
                        performance_cores=self.cpu_cores if self.efficiency_cores else None,
                        efficiency_cores=self.efficiency_cores, max_mhz=self.cpu_mhz),
            memory=MemoryInfo(total_bytes=int(self.ram_gib * GIB), available_bytes=int(self.ram_available_gib * GIB),
                              bandwidth_gbps=self.ram_bandwidth_gbps, bandwidth_source="nominal"),
            gpus=gpus,
            llama=LlamaBuild(backends=["CPU"] + ([self.backend] if self.backend != "CPU" else []),
                             gpu_offload=self.backend != "CPU",
                             built_with=[self.backend] if self.backend != "CPU" else []),
            board=self.description, cpu_fp32_gflops=self.cpu_fp32_gflops,
        )


def _jetson(name, desc, ram, avail, bw, cores, gpu, tflops, mhz=1700.0) -> DevicePreset:
    return DevicePreset(name, desc, ram, avail, bw, "Cortex-A78AE", cores, mhz, tuple(ARM_A78),
                        cores * mhz / 1000 * 16, gpu_name=gpu, vram_gib=avail, vram_bandwidth_gbps=bw,
                        gpu_fp16_tflops=tflops, compute_capability="8.7", unified_memory=True, backend="CUDA")


def _nvidia(name, desc, vram, bw, tflops, cc) -> DevicePreset:
    # A desktop/server host with 32-64 GB RAM and 8 fast cores; the GPU is what matters.
    return DevicePreset(name, desc, 32, 24, 60.0, "x86-64 host (8 cores)", 8, 4000.0, tuple(X86_SERVER), 1024.0,
                        gpu_name=desc, vram_gib=vram, vram_bandwidth_gbps=bw, gpu_fp16_tflops=tflops,
                        compute_capability=cc, backend="CUDA")


def _apple(name, desc, ram, bw, p_cores, e_cores, tflops) -> DevicePreset:
    # Metal may use about 2/3 of unified memory (recommendedMaxWorkingSetSize).
    return DevicePreset(name, desc, ram, ram - 3, bw, desc, p_cores, 3500.0, tuple(APPLE_M),
                        p_cores * 3.5 * 16, gpu_name=f"{desc} GPU", vram_gib=round(ram * 2 / 3, 2),
                        vram_bandwidth_gbps=bw, gpu_fp16_tflops=tflops, unified_memory=True, backend="Metal",
                        efficiency_cores=e_cores)


PRESETS: dict[str, DevicePreset] = {p.name: p for p in (
    _jetson("jetson-orin-nano-8gb", "NVIDIA Jetson Orin Nano 8GB", 7.4, 6.0, 68.0, 6,
            "Jetson Orin Nano (Ampere, 1024 CUDA cores)", 10.0, mhz=1500.0),
    _jetson("jetson-orin-nx-16gb", "NVIDIA Jetson Orin NX 16GB", 15.3, 13.5, 102.4, 8,
            "Jetson Orin NX (Ampere, 1024 CUDA cores)", 25.0, mhz=2000.0),
    _jetson("jetson-agx-orin-32gb", "NVIDIA Jetson AGX Orin 32GB", 30.6, 28.0, 204.8, 8,
            "Jetson AGX Orin (Ampere, 1792 CUDA cores)", 27.0, mhz=2200.0),
    _jetson("jetson-agx-orin-64gb", "NVIDIA Jetson AGX Orin 64GB", 61.4, 58.0, 204.8, 12,
            "Jetson AGX Orin (Ampere, 2048 CUDA cores)", 42.5, mhz=2200.0),
    _nvidia("rtx-3060-12gb", "NVIDIA GeForce RTX 3060 12GB", 12, 360.0, 51.0, "8.6"),
    _nvidia("rtx-4090-24gb", "NVIDIA GeForce RTX 4090 24GB", 24, 1008.0, 165.0, "8.9"),
    _nvidia("t4-16gb", "NVIDIA Tesla T4 16GB", 15, 320.0, 65.0, "7.5"),
    _nvidia("a100-40gb", "NVIDIA A100 40GB", 40, 1555.0, 312.0, "8.0"),
    _nvidia("a100-80gb", "NVIDIA A100 80GB", 80, 2039.0, 312.0, "8.0"),
    _apple("apple-m-8gb", "Apple M2 8GB", 8, 100.0, 4, 4, 3.6),
    _apple("apple-m-16gb", "Apple M3 16GB", 16, 100.0, 4, 4, 4.1),
    _apple("apple-m-32gb", "Apple M2 Pro 32GB", 32, 200.0, 8, 4, 6.8),
    DevicePreset("raspberry-pi-5-8gb", "Raspberry Pi 5 8GB (Cortex-A76, LPDDR4X-4267)", 8, 7.0, 17.0,
                 "Cortex-A76", 4, 2400.0, tuple(ARM_A76), 4 * 2.4 * 16),
    DevicePreset("laptop-16gb-cpu", "16 GB laptop, CPU only (8 cores AVX2, dual-channel DDR4-3200)", 16, 11.0,
                 51.2, "x86-64 laptop (8 cores)", 8, 3500.0, tuple(X86_LAPTOP), 8 * 3.5 * 32),
)}


def preset_names() -> list[str]:
    return list(PRESETS)


def resolve_target(target: str | Path | MachineProfile | None) -> MachineProfile:
    """A preset name, a profile JSON path, an existing profile, or None for this machine."""
    from edgepack.machine.profile import this_machine

    if target is None or (isinstance(target, str) and target in ("", "this", "local")):
        return this_machine()
    if isinstance(target, MachineProfile):
        return target
    text = str(target)
    if text in PRESETS:
        return PRESETS[text].profile()
    if text.endswith(".json") or Path(text).is_file():
        return load_profile(text)
    raise ProfileError(f"unknown target {text!r}; presets: {', '.join(PRESETS)}; or a profile JSON "
                       "written by `edgepack profile --json`")
