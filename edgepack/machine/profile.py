"""Stage: know the machine. CPU, ISA, cores, caches, memory, disk, GPUs and llama.cpp backends.

Parsers (`parse_*`) are pure functions of recorded tool output, tested on recordings; the
collectors around them read /proc, /sys, sysctl, NVML, nvidia-smi and rocm-smi and report
whatever is missing as absent (None or an empty list), never as a crash.
A profile saved with `--json` on a device is a planning target elsewhere (`load_profile`).
"""

from __future__ import annotations

import json
import platform
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack.errors import ProfileError
from edgepack.machine.hardware import CpuInfo, GpuInfo, LlamaBuild, MemoryInfo
from edgepack.machine.probe_cpu import (  # noqa: F401  (re-exported: the parsers' public home was here)
    ARM_FLAGS, SYSCTL_FLAGS, X86_FLAGS, cpu_from_sysctl, linux_caches, linux_core_kinds, measure_memory_bandwidth,
    nominal_cpu_gflops, parse_cache_size, parse_cpuinfo, parse_cpulist, parse_sysctl, parse_system_info, read_text,
    run_tool,
)
from edgepack.machine.probe_gpu import (  # noqa: F401
    JETSON_FAMILIES, apple_metal_share, nvml_gpus, parse_jetson, parse_nvidia_smi_csv, parse_rocm_smi_json,
)

PROFILE_SCHEMA = 1
GIB = 2**30


@dataclass
class MachineProfile:
    name: str
    os: str | None = None
    source: str = "this machine"      # "this machine", "preset", or a file path
    cpu: CpuInfo = field(default_factory=CpuInfo)
    memory: MemoryInfo = field(default_factory=MemoryInfo)
    gpus: list[GpuInfo] = field(default_factory=list)
    llama: LlamaBuild = field(default_factory=LlamaBuild)
    board: str | None = None          # Jetson model string, Apple chip, Raspberry Pi model
    board_release: str | None = None  # /etc/nv_tegra_release first line
    cpu_fp32_gflops: float | None = None  # nominal peak, for prompt-speed predictions
    notes: list[str] = field(default_factory=list)
    schema: int = PROFILE_SCHEMA

    @property
    def unified_memory(self) -> bool:
        return any(g.unified_memory for g in self.gpus)

    @property
    def gpu(self) -> GpuInfo | None:
        return self.gpus[0] if self.gpus else None

    def summary(self) -> dict:
        """The few fields a benchmark row carries so results from many machines can be merged."""
        gpu = self.gpu
        return {"machine": self.name, "cpu_info": self.cpu.model, "gpu_info": gpu.name if gpu else None,
                "os": self.os, "memory_total_bytes": self.memory.total_bytes,
                "vram_total_bytes": gpu.memory_total_bytes if gpu else None}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object, *, origin: str = "profile") -> "MachineProfile":
        """Validate and rebuild a profile; a wrong shape is one clear ProfileError."""
        if not isinstance(data, dict):
            raise ProfileError(f"{origin} is not a machine profile (expected a JSON object, got {type(data).__name__})")
        missing = [k for k in ("name", "cpu", "memory") if k not in data]
        if missing:
            raise ProfileError(f"{origin} is not a machine profile: missing {', '.join(missing)} "
                               "(make one with `edgepack profile --json > file.json`)")
        try:
            known = set(cls.__dataclass_fields__)
            fields_ = {k: v for k, v in data.items() if k in known}
            fields_["cpu"] = _build(CpuInfo, data["cpu"])
            fields_["memory"] = _build(MemoryInfo, data["memory"])
            fields_["gpus"] = [_build(GpuInfo, g) for g in data.get("gpus") or []]
            fields_["llama"] = _build(LlamaBuild, data.get("llama") or {})
            profile = cls(**fields_)
        except (TypeError, ValueError) as exc:
            raise ProfileError(f"{origin} is not a machine profile of the expected shape ({exc})") from None
        _check_numbers(profile, origin)
        return profile


def _build(kind, value):
    if not isinstance(value, dict):
        raise TypeError(f"{kind.__name__} must be an object, not {type(value).__name__}")
    known = set(kind.__dataclass_fields__)
    return kind(**{k: v for k, v in value.items() if k in known})


def _check_numbers(profile: MachineProfile, origin: str) -> None:
    checks = [("memory.total_bytes", profile.memory.total_bytes),
              ("memory.available_bytes", profile.memory.available_bytes),
              ("cpu.physical_cores", profile.cpu.physical_cores)]
    checks += [(f"gpus[{i}].memory_total_bytes", g.memory_total_bytes) for i, g in enumerate(profile.gpus)]
    for name, value in checks:
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
            raise ProfileError(f"{origin} is not a machine profile of the expected shape ({name} = {value!r})")
    if not profile.memory.total_bytes:
        raise ProfileError(f"{origin} is not a usable machine profile: memory.total_bytes is missing")


def collect_profile(*, disk_path: str | Path = ".", measure_bandwidth: bool = True) -> MachineProfile:
    """Profile this machine. Every probe is optional: what cannot be read is left absent."""
    import psutil

    system = platform.system()
    profile = MachineProfile(name=platform.node() or "this machine", os=f"{system} {platform.release()}".strip())
    sysctl: dict[str, str] = {}
    if system == "Linux":
        cpuinfo = read_text("/proc/cpuinfo")
        profile.cpu = parse_cpuinfo(cpuinfo) if cpuinfo else CpuInfo()
        linux_core_kinds(profile.cpu)
        profile.cpu.cache_bytes = linux_caches()
        max_freq = read_text("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
        if max_freq and max_freq.strip().isdigit():
            profile.cpu.max_mhz = int(max_freq) / 1000
    elif system == "Darwin":
        sysctl = parse_sysctl(run_tool(["sysctl", "-a"]) or "")
        profile.cpu = cpu_from_sysctl(sysctl)
    profile.cpu.arch = profile.cpu.arch or platform.machine() or None
    profile.cpu.logical_cores = profile.cpu.logical_cores or psutil.cpu_count(logical=True)
    profile.cpu.physical_cores = profile.cpu.physical_cores or psutil.cpu_count(logical=False)
    if not profile.cpu.max_mhz:
        freq = psutil.cpu_freq() if hasattr(psutil, "cpu_freq") else None
        profile.cpu.max_mhz = (freq.max or freq.current) if freq else None
    profile.cpu_fp32_gflops = nominal_cpu_gflops(profile.cpu)

    vm, swap = psutil.virtual_memory(), psutil.swap_memory()
    profile.memory = MemoryInfo(total_bytes=int(vm.total), available_bytes=int(vm.available),
                                swap_total_bytes=int(swap.total), swap_free_bytes=int(swap.free))
    try:
        profile.memory.disk_path = str(Path(disk_path).resolve())
        profile.memory.disk_free_bytes = shutil.disk_usage(disk_path).free
    except OSError:
        profile.memory.disk_path = None
    if measure_bandwidth:
        threads = profile.cpu.threads_for_inference()
        profile.memory.bandwidth_gbps = measure_memory_bandwidth(threads=threads)
        if profile.memory.bandwidth_gbps:
            profile.memory.bandwidth_source = f"measured (array read, {threads} threads)"

    profile.gpus = nvml_gpus() or parse_nvidia_smi_csv(run_tool([
        "nvidia-smi", "--query-gpu=name,memory.total,memory.free,compute_cap,driver_version",
        "--format=csv,noheader,nounits"]) or "")
    model = read_text("/proc/device-tree/model")
    if model:
        profile.board = model.replace("\x00", "").strip()
        release = read_text("/etc/nv_tegra_release")
        profile.board_release = release.splitlines()[0].strip() if release else None
        jetson = parse_jetson(model, release, profile.memory.total_bytes)
        if jetson:
            jetson.memory_free_bytes = profile.memory.available_bytes
            profile.gpus = [jetson]  # nvidia-smi on Jetson reports no memory; the device tree is the truth
    if system == "Darwin" and profile.cpu.vendor == "Apple" and sysctl.get("hw.memsize", "").isdigit():
        memsize = int(sysctl["hw.memsize"])
        wired = sysctl.get("iogpu.wired_limit_mb", "")
        share = apple_metal_share(memsize, int(wired) if wired.isdigit() and int(wired) else None)
        profile.board = profile.cpu.model
        profile.gpus = [GpuInfo(name=f"{profile.cpu.model} GPU", vendor="apple", memory_total_bytes=share,
                                memory_free_bytes=min(share, profile.memory.available_bytes or share),
                                unified_memory=True, source="sysctl")]
    if not profile.gpus:
        profile.gpus = parse_rocm_smi_json(run_tool(["rocm-smi", "--showproductname", "--showmeminfo", "vram", "--json"]) or "")

    profile.llama = _llama_build()
    profile.cpu.llama_isa = [f for f in parse_system_info(profile.llama.system_info or "")[0]]
    if profile.gpus and not profile.llama.gpu_offload:
        profile.notes.append("a GPU is present but the installed llama.cpp was built for CPU only: "
                             "plans for this machine keep every layer on the CPU")
    return profile


def _llama_build() -> LlamaBuild:
    try:
        from edgepack.runtime.llama import llama_module

        llama_cpp = llama_module()

        from edgepack.runtime.llama import backends, system_info
    except ImportError:
        return LlamaBuild()
    info = system_info()
    names = backends()
    _, sections = parse_system_info(info)
    built = [b for b in ("CUDA", "Metal", "Vulkan", "HIP", "SYCL", "OpenCL", "BLAS")
             if any(b.lower() in n.lower() for n in names + sections)]
    return LlamaBuild(system_info=info, backends=names, gpu_offload=bool(llama_cpp.llama_supports_gpu_offload()),
                      built_with=built)


def save_profile(profile: MachineProfile, path: str | Path) -> Path:
    from edgepack.atomic import write_text_atomic

    return write_text_atomic(path, json.dumps(profile.to_dict(), indent=2) + "\n")


def load_profile(path: str | Path) -> MachineProfile:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the profile ({exc.strerror})") from None
    except ValueError as exc:
        raise ProfileError(f"{path} is not JSON ({exc})") from None
    profile = MachineProfile.from_dict(data, origin=str(path))
    profile.source = str(path)
    return profile


def this_machine(**kwargs) -> MachineProfile:
    """The profile of the machine we run on, collected once per process."""
    key = tuple(sorted(kwargs.items()))
    if key not in _cache:
        _cache[key] = collect_profile(**kwargs)
    return _cache[key]


_cache: dict = {}


def is_this_machine(profile: MachineProfile) -> bool:
    return profile.source == "this machine"

