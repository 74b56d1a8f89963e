"""The conditions that change a benchmark's numbers, recorded with every result.

Power mode (Jetson `nvpmodel -q`), CPU governor and frequency, battery or AC, temperature at the
start, and the CPU time other processes used while the benchmark ran: a report made while other
work ran is named busy (one showed tg 6.5 t/s where the same quant runs at 55 t/s alone).
psutil reads what it can on every platform; the sysfs readers take a `root` so recorded trees
are read in tests.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Other processes using more than this many cores on average make a run "busy".
BUSY_CORES = 0.25


def parse_nvpmodel(text: str) -> str | None:
    """`nvpmodel -q` ("NV Power Mode: MAXN\\n0") to "MAXN (mode 0)"."""
    m = re.search(r"NV Power Mode:\s*(\S+)", text)
    if not m:
        return None
    mode = re.search(r"^\s*(\d+)\s*$", text[m.end():], re.M)
    return f"{m.group(1)} (mode {mode.group(1)})" if mode else m.group(1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cpu_governor(root: str | Path = "/") -> str | None:
    """The scaling governor of every CPU, or "mixed: a, b" when they differ."""
    cpus = sorted((Path(root) / "sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_governor"))
    found = sorted({g for g in (_read(p) for p in cpus) if g})
    if not found:
        return None
    return found[0] if len(found) == 1 else "mixed: " + ", ".join(found)


def power_mode() -> str | None:
    if not shutil.which("nvpmodel"):
        return None
    try:
        done = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_nvpmodel(done.stdout)


def max_temperature(temps: dict | None) -> tuple[float | None, str | None]:
    """The hottest sensor reading of psutil.sensors_temperatures() and its name."""
    best, name = None, None
    for chip, entries in (temps or {}).items():
        for e in entries:
            if e.current is not None and 0 < e.current < 150 and (best is None or e.current > best):
                best, name = float(e.current), f"{chip}" + (f" {e.label}" if e.label else "")
    return best, name


def _temperatures() -> dict:
    import psutil

    try:
        return psutil.sensors_temperatures() if hasattr(psutil, "sensors_temperatures") else {}
    except (OSError, RuntimeError):
        return {}


def _busy_seconds(t) -> float:
    return sum(getattr(t, k, 0.0) or 0.0 for k in ("user", "nice", "system", "irq", "softirq", "steal"))


@dataclass
class Conditions:
    power_mode: str | None = None
    cpu_governor: str | None = None
    cpu_mhz: float | None = None
    cpu_mhz_max: float | None = None
    on_battery: bool | None = None       # None: no battery (desktop, board) or unknown
    battery_percent: float | None = None
    temperature_c: float | None = None   # hottest sensor at the start
    temperature_sensor: str | None = None
    seconds: float | None = None
    other_cpu_seconds: float | None = None  # CPU time of every other process during the run
    other_cores: float | None = None        # the same per second of the run
    busy: bool | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class ConditionsRecorder:
    """Conditions at the start, and the CPU time other processes used until finish()."""

    def __init__(self, root: str | Path = "/"):
        import psutil

        self._psutil = psutil
        self.me = psutil.Process()
        c = Conditions(power_mode=power_mode(), cpu_governor=cpu_governor(root))
        freq = psutil.cpu_freq() if hasattr(psutil, "cpu_freq") else None
        if freq:
            c.cpu_mhz, c.cpu_mhz_max = round(freq.current, 1), (round(freq.max, 1) if freq.max else None)
        battery = psutil.sensors_battery() if hasattr(psutil, "sensors_battery") else None
        if battery is not None:
            c.on_battery, c.battery_percent = not battery.power_plugged, round(battery.percent, 1)
        c.temperature_c, c.temperature_sensor = max_temperature(_temperatures())
        self.conditions = c
        self._start = (time.perf_counter(), _busy_seconds(psutil.cpu_times()), self._own_seconds())

    def _own_seconds(self) -> float:
        t = self.me.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    def finish(self) -> Conditions:
        t0, busy0, own0 = self._start
        seconds = time.perf_counter() - t0
        other = max(_busy_seconds(self._psutil.cpu_times()) - busy0 - (self._own_seconds() - own0), 0.0)
        return judge(self.conditions, seconds, other)


def judge(c: Conditions, seconds: float, other_cpu_seconds: float) -> Conditions:
    """Fill in the run's share of other processes' CPU time and name a busy machine or a battery."""
    c.seconds = round(seconds, 3)
    c.other_cpu_seconds = round(other_cpu_seconds, 3)
    c.other_cores = round(other_cpu_seconds / seconds, 3) if seconds > 0 else 0.0
    c.busy = c.other_cores > BUSY_CORES
    if c.busy:
        c.notes.append(f"busy machine: other processes used {c.other_cores:.2f} cores on average during the run; "
                       "numbers are lower than this machine gives alone")
    if c.on_battery:
        c.notes.append(f"on battery ({c.battery_percent:g} %): power saving may lower the numbers")
    if c.cpu_governor and c.cpu_governor not in ("performance", "schedutil", "ondemand"):
        c.notes.append(f"CPU governor {c.cpu_governor!r}")
    return c
