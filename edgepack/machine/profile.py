"""Stage: know the machine. CPU, ISA, cores, caches, memory, disk, GPUs and llama.cpp backends.

Parsers (`parse_*`) are pure functions of recorded tool output, tested on recordings; the
collectors around them read /proc, /sys, sysctl, NVML, nvidia-smi and rocm-smi and report
whatever is missing as absent (None or an empty list), never as a crash.
A profile saved with `--json` on a device is a planning target elsewhere (`load_profile`).
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack.errors import ProfileError

PROFILE_SCHEMA = 1
GIB = 2**30


# The ISA features that decide which llama.cpp kernels run, under llama.cpp's own names.
# x86: /proc/cpuinfo flag -> name; ARM: /proc/cpuinfo "Features" -> name.
X86_FLAGS = {
    "pni": "SSE3", "ssse3": "SSSE3", "avx": "AVX", "avx2": "AVX2", "fma": "FMA", "f16c": "F16C",
    "bmi2": "BMI2", "avx512f": "AVX512_F", "avx512bw": "AVX512_BW", "avx512vl": "AVX512_VL",
    "avx512vbmi": "AVX512_VBMI", "avx512_vnni": "AVX512_VNNI", "avx512_bf16": "AVX512_BF16",
    "avx_vnni": "AVX_VNNI", "amx_tile": "AMX_TILE", "amx_int8": "AMX_INT8", "amx_bf16": "AMX_BF16",
}
ARM_FLAGS = {
    "asimd": "NEON", "asimddp": "DOTPROD", "i8mm": "MATMUL_INT8", "sve": "SVE", "sve2": "SVE2",
    "fphp": "FP16_VA", "asimdhp": "FP16_VA", "sme": "SME",
}
# macOS sysctl hw.optional.* -> name (Apple Silicon always has NEON).
SYSCTL_FLAGS = {
    "hw.optional.AdvSIMD": "NEON", "hw.optional.arm.FEAT_DotProd": "DOTPROD",
    "hw.optional.arm.FEAT_I8MM": "MATMUL_INT8", "hw.optional.arm.FEAT_FP16": "FP16_VA",
    "hw.optional.arm.FEAT_SME": "SME", "hw.optional.arm.FEAT_BF16": "BF16",
}

# Peak DRAM bandwidth (GB/s) of the Jetson modules, from NVIDIA's module data sheets.
JETSON_FAMILIES = (
    # (substring of /proc/device-tree/model, family, GPU, bandwidth GB/s, FP16 TFLOPS (nominal))
    ("AGX Orin", "AGX Orin", "Ampere (2048 CUDA cores)", 204.8, 42.5),
    ("Orin NX", "Orin NX", "Ampere (1024 CUDA cores)", 102.4, 25.0),
    ("Orin Nano", "Orin Nano", "Ampere (1024 CUDA cores)", 68.0, 10.0),
    ("AGX Xavier", "AGX Xavier", "Volta (512 CUDA cores)", 136.5, 11.0),
    ("Xavier NX", "Xavier NX", "Volta (384 CUDA cores)", 59.7, 6.0),
    ("Nano", "Nano", "Maxwell (128 CUDA cores)", 25.6, 0.5),
)


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


# ---------------------------------------------------------------- pure parsers

def parse_cpuinfo(text: str) -> CpuInfo:
    """/proc/cpuinfo of x86 or ARM Linux: vendor, model, ISA features, logical and physical cores."""
    blocks = [b for b in text.strip().split("\n\n") if b.strip()]
    entries = []
    for block in blocks:
        entry: dict[str, str] = {}
        for line in block.splitlines():
            if ":" in line:
                key, _, value = line.partition(":")
                entry[key.strip()] = value.strip()
        entries.append(entry)
    procs = [e for e in entries if "processor" in e]
    first = procs[0] if procs else (entries[0] if entries else {})
    info = CpuInfo(logical_cores=len(procs) or None)
    if "flags" in first:  # x86
        flags = set(first["flags"].split())
        info.arch = "x86_64" if "lm" in flags else "x86"
        info.vendor = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(first.get("vendor_id", ""),
                                                                          first.get("vendor_id"))
        info.model = first.get("model name")
        info.isa = _ordered({v for k, v in X86_FLAGS.items() if k in flags}, X86_FLAGS.values())
        cores = {(e.get("physical id", "0"), e.get("core id", e.get("processor"))) for e in procs}
        info.physical_cores = len(cores) or None
        if "cpu MHz" in first:
            info.max_mhz = float(first["cpu MHz"])
    elif "Features" in first:  # ARM (aarch64)
        feats = set(first["Features"].split())
        info.arch = "aarch64" if "asimd" in feats else "arm"
        implementer = first.get("CPU implementer", "").lower()
        info.vendor = _ARM_IMPLEMENTERS.get(implementer, implementer or None)
        parts = sorted({e.get("CPU part", "").lower() for e in procs if e.get("CPU part")})
        names = [_ARM_PARTS.get(p, p) for p in parts]
        tail = [e for e in entries if "Model" in e or "Hardware" in e]
        board = tail[-1].get("Model") or tail[-1].get("Hardware") if tail else None
        info.model = " + ".join(names) if names else board
        info.isa = _ordered({v for k, v in ARM_FLAGS.items() if k in feats}, ARM_FLAGS.values())
        info.physical_cores = info.logical_cores  # ARM cores have no SMT siblings in practice
    return info


_ARM_IMPLEMENTERS = {"0x41": "ARM", "0x4e": "NVIDIA", "0x61": "Apple", "0x51": "Qualcomm", "0x48": "HiSilicon"}
_ARM_PARTS = {"0xd0b": "Cortex-A76", "0xd08": "Cortex-A72", "0xd03": "Cortex-A53", "0xd05": "Cortex-A55",
              "0xd41": "Cortex-A78", "0xd42": "Cortex-A78AE", "0xd4f": "Neoverse-V2", "0xd0c": "Neoverse-N1",
              "0xd40": "Neoverse-V1", "0x004": "Carmel", "0xd07": "Cortex-A57", "0xd4b": "Cortex-A78C"}


def _ordered(found: set[str], order) -> list[str]:
    seen: list[str] = []
    for name in order:
        if name in found and name not in seen:
            seen.append(name)
    return seen


def parse_system_info(text: str) -> tuple[list[str], list[str]]:
    """llama.cpp's system info ("CPU : SSE3 = 1 | AVX = 1 | ... |" plus a section per backend).

    Returns (CPU features the build uses, backend sections present such as CUDA, Metal, Vulkan).
    """
    features: list[str] = []
    backends: list[str] = []
    for section in re.split(r"\|\s*(?=[A-Za-z][\w ]*\s:\s)", text):
        head, sep, rest = section.partition(" : ")
        if not sep:
            continue
        name = head.strip(" |")
        if name.upper() == "CPU":
            features += [m.group(1) for m in re.finditer(r"([A-Z0-9_]+)\s*=\s*1\b", rest)]
        elif name:
            backends.append(name)
    return features, backends


def parse_nvidia_smi_csv(text: str) -> list[GpuInfo]:
    """`nvidia-smi --query-gpu=name,memory.total,memory.free,compute_cap,driver_version
    --format=csv,noheader,nounits` (memory in MiB). A header line, if present, is skipped."""
    gpus = []
    for line in text.strip().splitlines():
        cols = [c.strip() for c in line.split(",")]
        if len(cols) < 3 or cols[0].lower() == "name":
            continue

        def mib(value: str) -> int | None:
            value = value.replace("MiB", "").strip()
            return int(float(value) * 2**20) if re.fullmatch(r"[\d.]+", value) else None

        gpus.append(GpuInfo(
            name=cols[0], vendor="nvidia", memory_total_bytes=mib(cols[1]), memory_free_bytes=mib(cols[2]),
            compute_capability=cols[3] if len(cols) > 3 and cols[3] not in ("", "[N/A]") else None,
            driver=cols[4] if len(cols) > 4 else None, source="nvidia-smi"))
    return gpus


def parse_jetson(model: str | None, tegra_release: str | None, mem_total_bytes: int | None) -> GpuInfo | None:
    """A Jetson from /proc/device-tree/model and /etc/nv_tegra_release; its GPU shares system RAM."""
    if not model or "jetson" not in model.lower():
        return None
    model = model.replace("\x00", "").strip()
    for needle, family, gpu, bandwidth, tflops in JETSON_FAMILIES:
        if needle.lower() in model.lower():
            break
    else:
        family, gpu, bandwidth, tflops = "Jetson", "NVIDIA integrated GPU", None, None
    driver = None
    if tegra_release:
        m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", tegra_release)
        if m:
            driver = f"L4T R{m.group(1)}.{m.group(2)}"
    return GpuInfo(name=f"Jetson {family} ({gpu})", vendor="nvidia", memory_total_bytes=mem_total_bytes,
                   memory_free_bytes=None, driver=driver, unified_memory=True, bandwidth_gbps=bandwidth,
                   fp16_tflops=tflops, source="jetson")


def parse_sysctl(text: str) -> dict[str, str]:
    """`sysctl -a` style "key: value" (macOS) or "key = value" (BSD) lines to a dict."""
    values = {}
    for line in text.splitlines():
        m = re.match(r"^([\w.]+)\s*[:=]\s*(.*)$", line.strip())
        if m:
            values[m.group(1)] = m.group(2).strip()
    return values


def apple_metal_share(memsize: int, wired_limit_mb: int | None = None) -> int:
    """What Metal lets one process use of unified memory: recommendedMaxWorkingSetSize is about
    2/3 of RAM up to 36 GB and 3/4 above; `sysctl iogpu.wired_limit_mb` overrides it."""
    if wired_limit_mb:
        return wired_limit_mb * 2**20
    return int(memsize * (0.75 if memsize > 36 * 10**9 else 2 / 3))


def cpu_from_sysctl(values: dict[str, str]) -> CpuInfo:
    def num(key):
        v = values.get(key)
        return int(v) if v is not None and v.isdigit() else None

    brand = values.get("machdep.cpu.brand_string")
    arm = values.get("hw.optional.arm64") == "1" or (brand or "").startswith("Apple")
    isa = [name for key, name in SYSCTL_FLAGS.items() if values.get(key) == "1"]
    if not arm:
        feats = (values.get("machdep.cpu.features", "") + " " + values.get("machdep.cpu.leaf7_features", "")).lower()
        isa = _ordered({v for k, v in X86_FLAGS.items() if k.replace("pni", "sse3") in feats.replace(".", "_").split()},
                       X86_FLAGS.values())
    caches = {}
    for key, name in (("hw.perflevel0.l1dcachesize", "L1d"), ("hw.l1dcachesize", "L1d"),
                      ("hw.perflevel0.l2cachesize", "L2"), ("hw.l2cachesize", "L2"), ("hw.l3cachesize", "L3")):
        if num(key) and name not in caches:
            caches[name] = num(key)
    return CpuInfo(
        vendor="Apple" if arm and brand and brand.startswith("Apple") else values.get("machdep.cpu.vendor"),
        model=brand, arch="arm64" if arm else "x86_64", isa=_ordered(set(isa), list(SYSCTL_FLAGS.values()) + list(X86_FLAGS.values())),
        physical_cores=num("hw.physicalcpu"), logical_cores=num("hw.logicalcpu"),
        performance_cores=num("hw.perflevel0.physicalcpu"), efficiency_cores=num("hw.perflevel1.physicalcpu"),
        cache_bytes=caches)


def parse_rocm_smi_json(text: str) -> list[GpuInfo]:
    """`rocm-smi --showproductname --showmeminfo vram --json`."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    gpus = []
    for card, values in sorted(data.items()):
        if not card.startswith("card") or not isinstance(values, dict):
            continue
        total = values.get("VRAM Total Memory (B)")
        used = values.get("VRAM Total Used Memory (B)")
        total_b = int(total) if total and str(total).isdigit() else None
        used_b = int(used) if used and str(used).isdigit() else None
        name = values.get("Card Series") or values.get("Card series") or values.get("Card model") or card
        gpus.append(GpuInfo(name=name, vendor="amd", memory_total_bytes=total_b,
                            memory_free_bytes=total_b - used_b if total_b is not None and used_b is not None else None,
                            compute_capability=values.get("GFX Version"), source="rocm-smi"))
    return gpus


def parse_cpulist(text: str) -> list[int]:
    """A kernel cpulist such as "0-7,16-23" to CPU numbers."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if "-" in part:
            lo, hi = part.split("-")
            cpus += range(int(lo), int(hi) + 1)
        elif part.strip():
            cpus.append(int(part))
    return cpus


def parse_cache_size(text: str) -> int | None:
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]?)B?\s*", text)
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[m.group(2)]


def nominal_cpu_gflops(cpu: CpuInfo) -> float | None:
    """Peak FP32 FMA throughput: cores x clock x FLOPs per cycle (two FMA pipes of the widest SIMD)."""
    cores = cpu.threads_for_inference()
    if not cpu.max_mhz or not cores:
        return None
    isa = set(cpu.isa)
    per_cycle = 64 if "AVX512_F" in isa else 32 if "AVX2" in isa or "FMA" in isa else 16 if "NEON" in isa else 8
    return round(cores * cpu.max_mhz / 1000 * per_cycle, 1)


# ---------------------------------------------------------------- collectors (I/O at the edge)

def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def _run(args: list[str], timeout: float = 10) -> str | None:
    if not shutil.which(args[0]):
        return None
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _linux_core_kinds(cpu: CpuInfo) -> None:
    """Intel hybrid: /sys/devices/cpu_core and cpu_atom; ARM big.LITTLE: cpu_capacity per CPU."""
    p_list, e_list = _read("/sys/devices/cpu_core/cpus"), _read("/sys/devices/cpu_atom/cpus")
    if p_list and e_list:
        cpu.performance_cores = len(parse_cpulist(p_list)) // (2 if (cpu.logical_cores or 0) > (cpu.physical_cores or 0) else 1)
        cpu.efficiency_cores = len(parse_cpulist(e_list))
        return
    caps = []
    for cap_file in sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpu_capacity")):
        text = _read(str(cap_file))
        if text and text.strip().isdigit():
            caps.append(int(text))
    if caps and len(set(caps)) > 1:
        top = max(caps)
        cpu.performance_cores = sum(1 for c in caps if c == top)
        cpu.efficiency_cores = len(caps) - cpu.performance_cores


def _linux_caches() -> dict[str, int]:
    caches: dict[str, int] = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        level, kind, size = (_read(str(index / n)) for n in ("level", "type", "size"))
        if not (level and kind and size):
            continue
        name = f"L{level.strip()}" + ({"Data": "d", "Instruction": "i"}.get(kind.strip(), ""))
        if parse_cache_size(size) is not None:
            caches[name] = parse_cache_size(size)
    return caches


def _nvml_gpus() -> list[GpuInfo]:
    try:
        import pynvml  # from nvidia-ml-py, optional
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver / no GPU: NVML raises its own error types
        return []
    gpus = []
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        driver = driver.decode() if isinstance(driver, bytes) else driver
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            gpus.append(GpuInfo(name=name.decode() if isinstance(name, bytes) else name, vendor="nvidia",
                                memory_total_bytes=int(mem.total), memory_free_bytes=int(mem.free),
                                compute_capability=f"{major}.{minor}", driver=driver, source="nvml"))
    except Exception:
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
    return gpus


def measure_memory_bandwidth(size_bytes: int = 512 * 2**20, threads: int = 1, repeats: int = 3) -> float | None:
    """Read bandwidth (GB/s) of summing one large array split over `threads` threads, the best
    of a few runs: what token generation lives on. numpy releases the GIL in reductions."""
    try:
        import numpy as np
    except ImportError:
        return None
    from concurrent.futures import ThreadPoolExecutor

    threads = max(1, threads)
    data = np.ones(size_bytes // 8, dtype=np.float64)
    chunks = np.array_split(data, threads)
    best = None
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(np.sum, chunks))
            seconds = time.perf_counter() - start
            best = seconds if best is None else min(best, seconds)
    return round(size_bytes / best / 1e9, 1) if best else None


def collect_profile(*, disk_path: str | Path = ".", measure_bandwidth: bool = True) -> MachineProfile:
    """Profile this machine. Every probe is optional: what cannot be read is left absent."""
    import psutil

    system = platform.system()
    profile = MachineProfile(name=platform.node() or "this machine", os=f"{system} {platform.release()}".strip())
    sysctl: dict[str, str] = {}
    if system == "Linux":
        cpuinfo = _read("/proc/cpuinfo")
        profile.cpu = parse_cpuinfo(cpuinfo) if cpuinfo else CpuInfo()
        _linux_core_kinds(profile.cpu)
        profile.cpu.cache_bytes = _linux_caches()
        max_freq = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
        if max_freq and max_freq.strip().isdigit():
            profile.cpu.max_mhz = int(max_freq) / 1000
    elif system == "Darwin":
        sysctl = parse_sysctl(_run(["sysctl", "-a"]) or "")
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

    profile.gpus = _nvml_gpus() or parse_nvidia_smi_csv(_run([
        "nvidia-smi", "--query-gpu=name,memory.total,memory.free,compute_cap,driver_version",
        "--format=csv,noheader,nounits"]) or "")
    model = _read("/proc/device-tree/model")
    if model:
        profile.board = model.replace("\x00", "").strip()
        release = _read("/etc/nv_tegra_release")
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
        profile.gpus = parse_rocm_smi_json(_run(["rocm-smi", "--showproductname", "--showmeminfo", "vram", "--json"]) or "")

    profile.llama = _llama_build()
    profile.cpu.llama_isa = [f for f in parse_system_info(profile.llama.system_info or "")[0]]
    if profile.gpus and not profile.llama.gpu_offload:
        profile.notes.append("a GPU is present but the installed llama.cpp was built for CPU only: "
                             "plans for this machine keep every layer on the CPU")
    return profile


def _llama_build() -> LlamaBuild:
    try:
        import llama_cpp

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

