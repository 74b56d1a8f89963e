"""Energy per token: joules the machine used while a benchmark ran, less what it uses idle.

`EnergyMeter` adds up every sensor found (power_sources.py) into one cumulative joule count:
counters (RAPL, NVML) are read when asked; instantaneous power (Jetson rails, tegrastats,
powermetrics) is sampled by a thread and integrated (trapezoids). `idle_watts` measures the
baseline with nothing running; `energy_figures` turns a run's joules and seconds into J per
token net of that baseline. A machine without a sensor gets `EnergyUnavailable` with one line
saying so: nothing is estimated.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from edgepack import procs
from edgepack.errors import BenchError
from edgepack.measure import power_sources as ps


class EnergyUnavailable(BenchError):
    """No power or energy sensor readable on this machine."""


def _every(seconds: float, read, stop: threading.Event) -> threading.Thread:
    """A daemon thread calling `read` every `seconds` until `stop` is set; a failed sensor read is skipped."""

    def loop() -> None:
        while not stop.wait(seconds):
            try:
                read()
            except (OSError, ValueError):
                pass

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


class PowerSampler:
    """Integrates a watts() function over time in a thread; joules() is the integral so far."""

    def __init__(self, watts, interval: float = 0.05):
        self._watts = watts
        self.interval = interval
        self._lock = threading.Lock()
        self._t = time.perf_counter()
        self._w = watts()
        self._joules = 0.0
        self._stop = threading.Event()
        self._thread = _every(interval, self._step, self._stop)

    def _step(self) -> None:
        w = self._watts()
        t = time.perf_counter()
        with self._lock:
            self._joules += (self._w + w) / 2 * (t - self._t)
            self._t, self._w = t, w

    def joules(self) -> float:
        with self._lock:
            return self._joules + self._w * (time.perf_counter() - self._t)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class _ToolPower:
    """The latest reading of a tool that prints one line per sample (tegrastats, powermetrics)."""

    def __init__(self, args: list[str], parse):
        self.proc = procs.popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.parse = parse
        self.latest: float | None = None
        self._buffer = ""
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        deadline = time.time() + 3
        while self.latest is None and time.time() < deadline and self.proc.poll() is None:
            time.sleep(0.05)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._buffer += line
            value = self.parse(self._buffer)
            if value is not None:
                self.latest, self._buffer = value, ""

    def watts(self) -> float:
        return self.latest or 0.0

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=5)


class EnergyMeter:
    """One cumulative joule count over every sensor found; `sources` names them.

    Counters are also read by a thread every `poll_seconds`, so a counter that wraps around
    (RAPL's does, after its max_energy_range_uj) is never read less than once per wrap."""

    def __init__(self, sources: list[str], counters: list, samplers: list, closers: list, poll_seconds: float = 1.0):
        self.sources = sources
        self._counters, self._samplers, self._closers = counters, samplers, closers
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller = _every(poll_seconds, self.joules, self._stop)

    def joules(self) -> float:
        with self._lock:
            total = sum(c() for c in self._counters)
        return total + sum(s.joules() for s in self._samplers)

    def close(self) -> None:
        self._stop.set()
        self._poller.join()
        for s in self._samplers:
            s.close()
        for c in self._closers:
            c()

    def __enter__(self) -> "EnergyMeter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_meter(root: str | Path = "/", *, use_zeus: bool = True, tools: bool = True,
               interval: float = 0.05, poll_seconds: float = 1.0) -> EnergyMeter:
    """Every sensor this machine offers, through zeus where it covers them, else read directly.
    `root` points the sysfs readers at a recorded tree (tests); `tools` allows tegrastats and
    powermetrics. Raises EnergyUnavailable (one line) when there is none."""
    names, counters, samplers, closers = [], [], [], []
    zeus = ps.zeus_counters() if use_zeus and str(root) == "/" else None
    if zeus:
        names += zeus.names
        counters.append(lambda: sum(zeus.read_joules()))
    else:
        for zone in ps.rapl_zones(root):
            names.append(f"RAPL {zone.name} ({zone.path.name})")
            counters.append(zone.read_joules)
    rails = ps.board_input(ps.jetson_rails(root))
    tool: tuple[str, _ToolPower] | None = None
    if rails:
        names.append("Jetson INA3221 " + "+".join(r.name for r in rails))
        samplers.append(PowerSampler(lambda: sum(r.watts() for r in rails), interval))
    elif tools and not names and shutil.which("tegrastats"):
        tool = "tegrastats", _ToolPower(["tegrastats", "--interval", str(max(int(interval * 1000), 10))],
                                        lambda text: ps.tegrastats_total(ps.parse_tegrastats(text)))
    elif tools and not names and shutil.which("powermetrics") and _sudo_allowed():
        tool = "powermetrics (Combined CPU+GPU+ANE)", _ToolPower(
            ["sudo", "-n", "powermetrics", "--samplers", "cpu_power,gpu_power", "-i",
             str(max(int(interval * 1000), 100))],
            lambda text: ps.parse_powermetrics(text).get("Combined"))
    if tool is not None:  # kept only if it printed a reading
        name, power = tool
        if power.latest is not None:
            names.append(name)
            samplers.append(PowerSampler(power.watts, interval))
            closers.append(power.close)
        else:
            power.close()
    if not names:
        reason = ps.rapl_unreadable_reason(root)
        raise EnergyUnavailable("no power sensor on this machine (no readable RAPL, NVML energy counter, "
                                "Jetson rails, tegrastats or powermetrics)" + (f": {reason}" if reason else
                                "; energy is not reported rather than estimated"))
    return EnergyMeter(names, counters, samplers, closers, poll_seconds)


def _sudo_allowed() -> bool:
    try:
        return subprocess.run(["sudo", "-n", "true"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def idle_watts(meter: EnergyMeter, seconds: float = 3.0) -> float:
    """Average power with nothing of ours running: the baseline subtracted from every run."""
    start_j, start_t = meter.joules(), time.perf_counter()
    time.sleep(seconds)
    return (meter.joules() - start_j) / (time.perf_counter() - start_t)


@dataclass
class EnergyFigures:
    """One test's energy, gross and net of the idle baseline."""

    test: str                  # "pp512" or "tg128"
    tokens: int
    seconds: float
    joules: float              # measured during the timed runs
    idle_watts: float
    avg_watts: float           # joules / seconds
    net_joules: float          # joules - idle_watts * seconds
    joules_per_token: float    # net
    tokens_per_joule: float | None
    sources: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def energy_figures(test: str, tokens: int, seconds: float, joules: float, idle: float,
                   sources: list[str]) -> EnergyFigures:
    net = joules - idle * seconds
    per_token = net / tokens if tokens else 0.0
    return EnergyFigures(test=test, tokens=tokens, seconds=round(seconds, 6), joules=round(joules, 6),
                         idle_watts=round(idle, 4), avg_watts=round(joules / seconds, 4) if seconds else 0.0,
                         net_joules=round(net, 6), joules_per_token=round(per_token, 8),
                         tokens_per_joule=round(1 / per_token, 4) if per_token > 0 else None, sources=sources)
