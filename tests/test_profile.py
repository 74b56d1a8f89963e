"""Profile parsers on recorded outputs, presets, and profile JSON round trips and bad shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgepack.machine.devices import PRESETS, resolve_target
from edgepack.machine.profile import (
    MachineProfile, ProfileError, apple_metal_share, collect_profile, cpu_from_sysctl, load_profile,
    parse_cache_size, parse_cpuinfo, parse_cpulist, parse_jetson, parse_nvidia_smi_csv, parse_rocm_smi_json,
    parse_sysctl, parse_system_info, save_profile,
)

REC = Path(__file__).parent / "data" / "recorded"


def rec(name: str) -> str:
    return (REC / name).read_text()


def test_cpuinfo_x86():
    cpu = parse_cpuinfo(rec("cpuinfo_x86_ryzen.txt"))
    assert (cpu.vendor, cpu.model, cpu.arch) == ("AMD", "AMD Ryzen 7 5800U with Radeon Graphics", "x86_64")
    assert (cpu.logical_cores, cpu.physical_cores) == (4, 2)
    assert {"SSE3", "AVX", "AVX2", "FMA", "F16C"} <= set(cpu.isa)
    assert not any(f.startswith("AVX512") or f.startswith("AMX") for f in cpu.isa)
    assert cpu.threads_for_inference() == 2  # SMT siblings are not counted


def test_cpuinfo_arm_jetson_and_pi():
    orin = parse_cpuinfo(rec("cpuinfo_arm_orin.txt"))
    assert (orin.arch, orin.vendor, orin.model, orin.logical_cores) == ("aarch64", "ARM", "Cortex-A78AE", 6)
    assert orin.isa == ["NEON", "DOTPROD", "FP16_VA"]  # no i8mm, no SVE on A78AE
    pi = parse_cpuinfo(rec("cpuinfo_arm_pi5.txt"))
    assert (pi.model, pi.physical_cores) == ("Cortex-A76", 2)
    assert "MATMUL_INT8" not in pi.isa and "DOTPROD" in pi.isa


def test_system_info_features_and_backends():
    features, backends = parse_system_info(rec("system_info_jetson_cuda.txt"))
    assert features == ["NEON", "ARM_FMA", "FP16_VA", "DOTPROD", "LLAMAFILE", "OPENMP", "REPACK"]
    assert backends == ["CUDA"]
    assert parse_system_info("") == ([], [])


def test_nvidia_smi_csv():
    gpus = parse_nvidia_smi_csv(rec("nvidia_smi.csv"))
    assert [g.name for g in gpus] == ["NVIDIA GeForce RTX 3060", "NVIDIA GeForce RTX 4090"]
    assert gpus[0].memory_total_bytes == 12288 * 2**20 and gpus[1].memory_free_bytes == 1203 * 2**20
    assert (gpus[0].compute_capability, gpus[0].driver) == ("8.6", "550.54.14")
    t4 = parse_nvidia_smi_csv(rec("nvidia_smi_header.csv"))
    assert len(t4) == 1 and t4[0].memory_total_bytes == 15360 * 2**20
    assert parse_nvidia_smi_csv("") == []


def test_jetson_device_tree():
    gpu = parse_jetson(rec("jetson_orin_nano_model.txt"), rec("nv_tegra_release.txt"), 8 * 2**30)
    assert gpu.unified_memory and gpu.bandwidth_gbps == 68.0 and "Orin Nano" in gpu.name
    assert gpu.driver == "L4T R36.3.0" and gpu.memory_total_bytes == 8 * 2**30
    xavier = parse_jetson(rec("jetson_agx_xavier_model.txt"), None, 16 * 2**30)
    assert "AGX Xavier" in xavier.name and xavier.driver is None
    assert parse_jetson("Raspberry Pi 5 Model B Rev 1.0", None, 2**30) is None
    assert parse_jetson(None, None, None) is None


def test_sysctl_apple():
    values = parse_sysctl(rec("sysctl_apple_m2.txt"))
    cpu = cpu_from_sysctl(values)
    assert (cpu.vendor, cpu.model, cpu.arch) == ("Apple", "Apple M2", "arm64")
    assert (cpu.performance_cores, cpu.efficiency_cores, cpu.threads_for_inference()) == (4, 4, 4)
    assert {"NEON", "DOTPROD", "MATMUL_INT8", "FP16_VA"} <= set(cpu.isa) and "SME" not in cpu.isa
    assert cpu.cache_bytes["L2"] == 16 * 2**20
    assert apple_metal_share(16 * 2**30) == int(16 * 2**30 * 2 / 3)
    assert apple_metal_share(64 * 2**30) == int(64 * 2**30 * 0.75)
    assert apple_metal_share(16 * 2**30, wired_limit_mb=14000) == 14000 * 2**20


def test_rocm_smi():
    gpus = parse_rocm_smi_json(rec("rocm_smi.json"))
    assert gpus[0].name == "Radeon RX 7900 XTX" and gpus[0].vendor == "amd"
    assert gpus[0].memory_free_bytes == 25753026560 - 1073741824
    assert parse_rocm_smi_json("not json") == []


def test_small_parsers():
    assert parse_cpulist("0-3,8,10-11") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_cache_size("48K") == 48 * 1024 and parse_cache_size("32768K") == 32 * 2**20
    assert parse_cache_size("weird") is None


def test_collect_this_machine_and_round_trip(tmp_path):
    p = collect_profile(disk_path=tmp_path, measure_bandwidth=False)
    assert p.memory.total_bytes and p.memory.available_bytes and p.cpu.logical_cores
    assert p.memory.disk_free_bytes and p.llama.backends and p.llama.system_info
    assert "CPU" in p.llama.backends
    path = save_profile(p, tmp_path / "me.json")
    back = load_profile(path)
    assert back.cpu == p.cpu and back.memory == p.memory and back.source == str(path)


def test_presets_are_complete():
    for name in ("jetson-orin-nano-8gb", "jetson-orin-nx-16gb", "jetson-agx-orin-32gb", "jetson-agx-orin-64gb",
                 "rtx-3060-12gb", "rtx-4090-24gb", "t4-16gb", "a100-40gb", "a100-80gb", "apple-m-8gb",
                 "apple-m-16gb", "apple-m-32gb", "raspberry-pi-5-8gb", "laptop-16gb-cpu"):
        p = resolve_target(name)
        assert p.memory.total_bytes and p.memory.bandwidth_gbps and p.cpu_fp32_gflops
        # the profile JSON of a preset is itself a valid target
        assert MachineProfile.from_dict(json.loads(json.dumps(p.to_dict()))).name == name
    assert PRESETS["jetson-orin-nano-8gb"].profile().unified_memory
    assert not PRESETS["laptop-16gb-cpu"].profile().gpus


@pytest.mark.parametrize("data, fragment", [
    ([1, 2], "expected a JSON object"),
    ({"name": "x"}, "missing cpu, memory"),
    ({"name": "x", "cpu": "fast", "memory": {}}, "expected shape"),
    ({"name": "x", "cpu": {}, "memory": {"total_bytes": "lots"}}, "memory.total_bytes"),
    ({"name": "x", "cpu": {}, "memory": {}}, "total_bytes is missing"),
])
def test_bad_profile_shapes(tmp_path, data, fragment):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match=fragment):
        load_profile(path)


def test_unknown_target_lists_presets():
    with pytest.raises(ProfileError, match="unknown target 'jetson-nope'.*jetson-orin-nano-8gb"):
        resolve_target("jetson-nope")
