"""Probe the GPUs: NVML, nvidia-smi, rocm-smi, a Jetson's device tree, Apple's Metal share.

Parsers are pure functions of recorded tool output, tested on recordings; `nvml_gpus` reads
the driver through nvidia-ml-py when it is installed and returns [] otherwise.
"""

from __future__ import annotations

import json
import re

from edgepack.machine.hardware import GpuInfo

JETSON_FAMILIES = (
    # (substring of /proc/device-tree/model, family, GPU, bandwidth GB/s, FP16 TFLOPS (nominal))
    ("AGX Orin", "AGX Orin", "Ampere (2048 CUDA cores)", 204.8, 42.5),
    ("Orin NX", "Orin NX", "Ampere (1024 CUDA cores)", 102.4, 25.0),
    ("Orin Nano", "Orin Nano", "Ampere (1024 CUDA cores)", 68.0, 10.0),
    ("AGX Xavier", "AGX Xavier", "Volta (512 CUDA cores)", 136.5, 11.0),
    ("Xavier NX", "Xavier NX", "Volta (384 CUDA cores)", 59.7, 6.0),
    ("Nano", "Nano", "Maxwell (128 CUDA cores)", 25.6, 0.5),
)


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


def apple_metal_share(memsize: int, wired_limit_mb: int | None = None) -> int:
    """What Metal lets one process use of unified memory: recommendedMaxWorkingSetSize is about
    2/3 of RAM up to 36 GB and 3/4 above; `sysctl iogpu.wired_limit_mb` overrides it."""
    if wired_limit_mb:
        return wired_limit_mb * 2**20
    return int(memsize * (0.75 if memsize > 36 * 10**9 else 2 / 3))



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


def nvml_gpus() -> list[GpuInfo]:
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

