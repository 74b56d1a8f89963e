"""Power and energy sensors: every reader turns one sensor into a cumulative joule counter.

Through zeus (the ML.ENERGY project's library) where it covers the sensor on this machine:
Intel/AMD RAPL (/sys/class/powercap, wraparound tracked), NVIDIA NVML energy counters, Jetson's
INA power rails and Apple silicon (with zeus-apple-silicon). Hand-written readers where zeus is
not installed or finds nothing: RAPL and Jetson INA3221 rails read from a sysfs tree given as
`root` (recorded trees are read in the tests), `tegrastats` output lines, and macOS
`powermetrics` output (needs root; used only when `sudo -n` allows it). Readers of instantaneous power are integrated over time by a
sampling thread (power.py's `PowerSampler`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RaplZone:
    """One top-level powercap zone (a CPU package or psys), read as a counter with wraparound."""

    path: Path
    name: str
    max_uj: int
    last_uj: int = 0
    total_uj: int = 0

    def read_joules(self) -> float:
        now = int((self.path / "energy_uj").read_text())
        delta = now - self.last_uj
        if delta < 0:  # the counter passed max_energy_range_uj and started again from 0
            delta += self.max_uj
        self.total_uj += delta
        self.last_uj = now
        return self.total_uj / 1e6


def rapl_zones(root: str | Path = "/") -> list[RaplZone]:
    """Readable top-level RAPL zones under root/sys/class/powercap (subzones such as core or
    dram are parts of their package and are not added again; psys, when present, is the
    whole platform and replaces the packages)."""
    base = Path(root) / "sys/class/powercap"
    zones = []
    for d in sorted(base.glob("intel-rapl:*")) if base.is_dir() else []:
        if d.name.count(":") != 1:
            continue
        try:
            name = (d / "name").read_text().strip()
            max_uj = int((d / "max_energy_range_uj").read_text())
            now = int((d / "energy_uj").read_text())
        except (OSError, ValueError):  # energy_uj is root-only on kernels since 2020 (CVE-2020-8694)
            continue
        zones.append(RaplZone(d, name, max_uj, last_uj=now))
    psys = [z for z in zones if z.name == "psys"]
    return psys or zones


def rapl_unreadable_reason(root: str | Path = "/") -> str | None:
    """Why RAPL zones exist but cannot be read (permissions), for the one-line message."""
    base = Path(root) / "sys/class/powercap"
    for d in sorted(base.glob("intel-rapl:*")) if base.is_dir() else []:
        try:
            (d / "energy_uj").read_text()
        except PermissionError:
            return (f"{d / 'energy_uj'} is readable by root only; run with sudo or "
                    "`sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj`")
        except OSError:
            continue
    return None


# ---------------------------------------------------------------- Jetson INA3221 rails (sysfs)

@dataclass
class InaRail:
    name: str
    power: Path | None = None     # mW
    voltage: Path | None = None   # mV
    current: Path | None = None   # mA

    def watts(self) -> float:
        if self.power is not None:
            return float(self.power.read_text()) / 1000
        return float(self.voltage.read_text()) * float(self.current.read_text()) / 1e6


def jetson_rails(root: str | Path = "/") -> list[InaRail]:
    """INA3221 rails of a Jetson: hwmon style (in{i}_label, in{i}_input mV, curr{i}_input mA)
    and the older iio style (rail_name_{i}, in_power{i}_input mW)."""
    rails = []
    drivers = Path(root) / "sys/bus/i2c/drivers"
    for driver in ("ina3221", "ina3221x"):
        for device in sorted((drivers / driver).glob("*-*")) if (drivers / driver).is_dir() else []:
            for hwmon in sorted(device.glob("hwmon/hwmon*")):
                for label in sorted(hwmon.glob("in*_label")):
                    i = label.name[2:-6]
                    volt, curr = hwmon / f"in{i}_input", hwmon / f"curr{i}_input"
                    if volt.is_file() and curr.is_file():
                        rails.append(InaRail(label.read_text().strip(), voltage=volt, current=curr))
            for iio in sorted(device.glob("iio:device*")):
                for name in sorted(iio.glob("rail_name_*")):
                    i = name.name.rsplit("_", 1)[1]
                    power = iio / f"in_power{i}_input"
                    if power.is_file():
                        rails.append(InaRail(name.read_text().strip(), power=power))
    return rails


def board_input(rails: list[InaRail]) -> list[InaRail]:
    """The rail that feeds the whole module (VDD_IN / POM_5V_IN) when there is one, else all rails."""
    total = [r for r in rails if r.name.upper() in ("VDD_IN", "POM_5V_IN", "VIN_SYS_5V0")]
    return total[:1] or rails


# ---------------------------------------------------------------- tools' output (pure parsers)

# "VDD_IN 5012mW/4980mW" (JetPack 5+), or a rail name without units: "POM_5V_IN 3012/2980" (JetPack 4).
# "RAM 2547/7620MB" and "SWAP 0/3810MB" have the same shape but are memory, not power.
_TEGRA_RAIL_MW = re.compile(r"\b([A-Z][A-Z0-9_]+) (\d+)mW/(\d+)mW")
_TEGRA_RAIL_BARE = re.compile(r"\b((?:VDD|POM|VIN)_[A-Z0-9_]+) (\d+)/(\d+)\b(?!\s*[kMG]?B)")


def parse_tegrastats(line: str) -> dict[str, float]:
    """One `tegrastats` line to {rail: watts (the current reading, not the running average)}."""
    rails = {m.group(1): int(m.group(2)) / 1000 for m in _TEGRA_RAIL_MW.finditer(line)}
    rails.update({m.group(1): int(m.group(2)) / 1000 for m in _TEGRA_RAIL_BARE.finditer(line)})
    return rails


def tegrastats_total(rails: dict[str, float]) -> float | None:
    for name in ("VDD_IN", "POM_5V_IN"):
        if name in rails:
            return rails[name]
    return sum(rails.values()) if rails else None


_POWERMETRICS = re.compile(r"^(CPU|GPU|ANE|Combined) Power(?: \([^)]*\))?:\s*([\d.]+)\s*mW", re.M)


def parse_powermetrics(text: str) -> dict[str, float]:
    """`powermetrics --samplers cpu_power,gpu_power` output to {"CPU"|"GPU"|"ANE"|"Combined": watts}."""
    return {m.group(1): float(m.group(2)) / 1000 for m in _POWERMETRICS.finditer(text)}


# ---------------------------------------------------------------- zeus (the real sensors)

@dataclass
class ZeusCounters:
    """Cumulative joules of every device zeus finds: RAPL packages (and DRAM), NVIDIA GPUs, a Jetson."""

    names: list[str] = field(default_factory=list)
    _reads: list = field(default_factory=list)

    def read_joules(self) -> list[float]:
        return [read() for read in self._reads]


def zeus_counters() -> ZeusCounters | None:
    try:
        from zeus.device import get_cpus, get_gpus
    except ImportError:
        return None
    found = ZeusCounters()
    try:
        cpus = get_cpus()
        for i in range(len(cpus.cpus)):
            found.names.append(f"RAPL package {i} (zeus)")
            found._reads.append(lambda i=i: cpus.get_total_energy_consumption(i).cpu_mj / 1000)
            if cpus.supports_get_dram_energy_consumption(i):
                found.names.append(f"RAPL DRAM {i} (zeus)")
                found._reads.append(lambda i=i: (cpus.get_total_energy_consumption(i).dram_mj or 0) / 1000)
    except Exception:  # zeus raises its own init errors when there is no RAPL or no permission
        pass
    try:
        from zeus.device.soc import get_soc

        soc = get_soc()
        first = soc.get_total_energy_consumption()
        if getattr(first, "total_energy_mj", None) is not None:  # Jetson: the module's input rail
            found.names.append("Jetson power rails (zeus)")
            found._reads.append(lambda: soc.get_total_energy_consumption().total_energy_mj / 1000)
        elif getattr(first, "cpu_total_mj", None) is not None:  # Apple silicon
            parts = ("cpu_total_mj", "dram_mj", "gpu_mj", "gpu_sram_mj", "ane_mj")
            found.names.append("Apple silicon CPU+GPU+ANE+DRAM (zeus)")
            found._reads.append(lambda: sum(getattr(soc.get_total_energy_consumption(), k) or 0 for k in parts) / 1000)
    except Exception:
        pass
    try:
        gpus = get_gpus()
        for i in range(len(gpus)):
            gpus.get_total_energy_consumption(i)  # Volta and newer; older GPUs raise here
            found.names.append(f"GPU {i} {gpus.get_name(i)} (NVML via zeus)")
            found._reads.append(lambda i=i: gpus.get_total_energy_consumption(i) / 1000)
    except Exception:
        pass
    return found if found.names else None
