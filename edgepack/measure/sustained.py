"""Sustained speed: generate continuously for a while and watch speed, clocks and temperatures.

A board that is fast for ten seconds may settle much lower once hot. `run_sustained` generates
window after window of tokens for `seconds`, recording tokens/s, CPU (and Jetson/NVIDIA GPU)
clocks and the hottest temperature per window; `analyse` reports burst speed (the first
windows), sustained speed (the last third), when speed first fell by more than 10 % and why,
when the clocks show it (throttling).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack.measure.conditions import _temperatures, max_temperature

SLOWDOWN = 0.10        # a fall of more than 10 % from burst speed
BURST_WINDOWS = 3      # burst: the median of the first windows
SMOOTH_WINDOWS = 3     # the slowdown is judged on a running median, so one hiccup does not count


@dataclass
class Window:
    t: float              # seconds since the start, at the end of the window
    tokens: int
    seconds: float
    cpu_mhz: float | None = None
    gpu_mhz: float | None = None
    temperature_c: float | None = None

    @property
    def tps(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


@dataclass
class SustainedResult:
    seconds: float
    burst_tps: float
    sustained_tps: float
    ratio: float                      # sustained / burst
    slowdown_after_s: float | None    # when speed first fell by more than 10 %, None if it never did
    throttling: str | None            # what the clocks and temperatures say, when speed fell
    windows: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def jetson_gpu_mhz(root: str | Path = "/") -> float | None:
    """The integrated GPU's current clock from devfreq (17000000.ga10b on Orin, 57000000.gpu on Xavier...)."""
    for path in sorted(Path(root).glob("sys/class/devfreq/*/cur_freq")):
        name = path.parent.name.lower()
        if "gpu" in name or "ga10b" in name or "gv11b" in name or "gp10b" in name:
            try:
                return int(path.read_text()) / 1e6
            except (OSError, ValueError):
                return None
    return None


def _nvml_clock_and_temp():
    try:
        import pynvml

        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        return (float(pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM)),
                float(pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)))
    except Exception:  # no NVML, no driver, no GPU
        return None, None


def sample_clocks(use_gpu: bool) -> tuple[float | None, float | None, float | None]:
    """(CPU MHz, GPU MHz, hottest temperature °C) now."""
    import psutil

    freq = psutil.cpu_freq() if hasattr(psutil, "cpu_freq") else None
    temp, _ = max_temperature(_temperatures())
    gpu = jetson_gpu_mhz()
    if use_gpu and gpu is None:
        gpu, gpu_temp = _nvml_clock_and_temp()
        if gpu_temp is not None:
            temp = max(temp or 0.0, gpu_temp)
    return (round(freq.current, 1) if freq else None), gpu, temp


def analyse(windows: list[Window]) -> SustainedResult:
    """Burst, sustained and slowdown figures from a run's windows (pure; tested on recordings)."""
    if not windows:
        raise ValueError("no windows to analyse")
    tps = [w.tps for w in windows]
    burst = statistics.median(tps[:BURST_WINDOWS])
    tail = windows[len(windows) - max(len(windows) // 3, 1):]
    sustained = sum(w.tokens for w in tail) / sum(w.seconds for w in tail)
    slowdown_at, index = None, None
    for i in range(len(tps)):
        recent = statistics.median(tps[max(0, i - SMOOTH_WINDOWS + 1):i + 1])
        if i >= SMOOTH_WINDOWS - 1 and recent < (1 - SLOWDOWN) * burst:
            slowdown_at, index = windows[i].t, i
            break
    return SustainedResult(seconds=round(windows[-1].t, 3), burst_tps=round(burst, 3),
                           sustained_tps=round(sustained, 3), ratio=round(sustained / burst, 4) if burst else 0.0,
                           slowdown_after_s=round(slowdown_at, 3) if slowdown_at is not None else None,
                           throttling=_name_throttling(windows, index) if index is not None else None,
                           windows=[{**asdict(w), "tps": round(w.tps, 3)} for w in windows])


def _name_throttling(windows: list[Window], index: int) -> str:
    first, now = windows[0], windows[index]
    parts = []
    for label, a, b in (("CPU clock", first.cpu_mhz, now.cpu_mhz), ("GPU clock", first.gpu_mhz, now.gpu_mhz)):
        if a and b and b < (1 - SLOWDOWN) * a:
            parts.append(f"{label} fell from {a:.0f} to {b:.0f} MHz")
    temp = f" at {now.temperature_c:.0f} °C" if now.temperature_c is not None else ""
    if parts:
        return "thermal or power throttling: " + " and ".join(parts) + temp
    return ("speed fell without a clock drop" + temp + ": memory, another process or power limits "
            "(see the run's conditions)")


def run_sustained(ctx_factory, *, seconds: float, n_gen_window: int = 32, use_gpu: bool = False,
                  clock=time.perf_counter) -> SustainedResult:
    """Generate windows of `n_gen_window` tokens from an empty cache for `seconds`.

    `ctx_factory()` gives a context manager yielding the speed engine's runner (speed.py)."""
    windows: list[Window] = []
    with ctx_factory() as runner:
        runner.generate(1)  # warm-up
        runner.clear()
        start = clock()
        while clock() - start < seconds:
            ns = runner.generate(n_gen_window)
            runner.clear()
            cpu, gpu, temp = sample_clocks(use_gpu)
            windows.append(Window(t=clock() - start, tokens=n_gen_window, seconds=ns / 1e9, cpu_mhz=cpu,
                                  gpu_mhz=gpu, temperature_c=temp))
    return analyse(windows)
