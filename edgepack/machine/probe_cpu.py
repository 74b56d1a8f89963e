"""Probe the CPU and memory: /proc/cpuinfo, sysctl (macOS), llama.cpp's system info, sysfs
caches and core kinds, and a read-bandwidth measurement.

Parsers (`parse_*`, `cpu_from_sysctl`) are pure functions of recorded tool output, tested on
recordings; the readers (`read_text`, `run_tool`, `linux_*`) report what is missing as None.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

from edgepack.machine.hardware import CpuInfo


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


def parse_sysctl(text: str) -> dict[str, str]:
    """`sysctl -a` style "key: value" (macOS) or "key = value" (BSD) lines to a dict."""
    values = {}
    for line in text.splitlines():
        m = re.match(r"^([\w.]+)\s*[:=]\s*(.*)$", line.strip())
        if m:
            values[m.group(1)] = m.group(2).strip()
    return values


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


def read_text(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def run_tool(args: list[str], timeout: float = 10) -> str | None:
    if not shutil.which(args[0]):
        return None
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def linux_core_kinds(cpu: CpuInfo) -> None:
    """Intel hybrid: /sys/devices/cpu_core and cpu_atom; ARM big.LITTLE: cpu_capacity per CPU."""
    p_list, e_list = read_text("/sys/devices/cpu_core/cpus"), read_text("/sys/devices/cpu_atom/cpus")
    if p_list and e_list:
        cpu.performance_cores = len(parse_cpulist(p_list)) // (2 if (cpu.logical_cores or 0) > (cpu.physical_cores or 0) else 1)
        cpu.efficiency_cores = len(parse_cpulist(e_list))
        return
    caps = []
    for cap_file in sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpu_capacity")):
        text = read_text(str(cap_file))
        if text and text.strip().isdigit():
            caps.append(int(text))
    if caps and len(set(caps)) > 1:
        top = max(caps)
        cpu.performance_cores = sum(1 for c in caps if c == top)
        cpu.efficiency_cores = len(caps) - cpu.performance_cores


def linux_caches() -> dict[str, int]:
    caches: dict[str, int] = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        level, kind, size = (read_text(str(index / n)) for n in ("level", "type", "size"))
        if not (level and kind and size):
            continue
        name = f"L{level.strip()}" + ({"Data": "d", "Instruction": "i"}.get(kind.strip(), ""))
        if parse_cache_size(size) is not None:
            caches[name] = parse_cache_size(size)
    return caches


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

