"""Sustained speed on recorded runs (hand-checked), run conditions, and --sustained/--cooldown end to end."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typer.testing import CliRunner

from edgepack.cli import app
from edgepack.measure.conditions import Conditions, cpu_governor, judge, parse_nvpmodel
from edgepack.measure.sustained import Window, analyse, jetson_gpu_mhz

REC = Path(__file__).parent / "data" / "recorded"


def run(tps: list[float], mhz: list[float], temps: list[float]) -> list[Window]:
    """One window a second, 10 tokens each, at the given speeds."""
    return [Window(t=float(i + 1), tokens=10, seconds=10 / s, cpu_mhz=m, temperature_c=c)
            for i, (s, m, c) in enumerate(zip(tps, mhz, temps))]


def test_a_board_that_throttles():
    # 20 t/s for 4 s, then the clock drops from 2000 to 1400 MHz at 85 °C and speed to 14 t/s.
    windows = run([20, 20, 20, 20, 14, 14, 14, 14, 14], [2000] * 4 + [1400] * 5, [60, 65, 70, 80] + [85] * 5)
    r = analyse(windows)
    assert r.burst_tps == 20.0 and r.sustained_tps == 14.0 and r.ratio == 0.7
    # the running median of 3 windows first drops below 18 t/s at the 6th window (20, 14, 14)
    assert r.slowdown_after_s == 6.0
    assert r.throttling == "thermal or power throttling: CPU clock fell from 2000 to 1400 MHz at 85 °C"


def test_one_slow_window_is_not_a_slowdown_and_steady_is_never():
    r = analyse(run([20, 20, 20, 10, 20, 20, 20, 20, 20], [2000] * 9, [50] * 9))
    assert r.slowdown_after_s is None and r.throttling is None and r.sustained_tps == 20.0


def test_slowdown_without_a_clock_drop_is_not_called_throttling():
    r = analyse(run([20, 20, 20, 15, 15, 15], [2000] * 6, [50] * 6))
    assert r.slowdown_after_s == 5.0 and r.throttling.startswith("speed fell without a clock drop")


def test_nvpmodel_and_governor(tmp_path):
    assert parse_nvpmodel((REC / "nvpmodel_orin.txt").read_text()) == "15W (mode 0)"
    assert parse_nvpmodel("no such thing") is None
    for cpu, gov in (("cpu0", "performance"), ("cpu1", "performance")):
        d = tmp_path / f"sys/devices/system/cpu/{cpu}/cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_governor").write_text(gov + "\n")
    assert cpu_governor(tmp_path) == "performance"
    (tmp_path / "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor").write_text("powersave\n")
    assert cpu_governor(tmp_path) == "mixed: performance, powersave"
    gpu = tmp_path / "sys/class/devfreq/17000000.ga10b"
    gpu.mkdir(parents=True)
    (gpu / "cur_freq").write_text("306000000\n")
    assert jetson_gpu_mhz(tmp_path) == 306.0


def test_busy_machine_is_named():
    busy = judge(Conditions(), seconds=10.0, other_cpu_seconds=6.0)
    assert busy.busy and busy.other_cores == 0.6 and "busy machine" in busy.notes[0]
    quiet = judge(Conditions(), seconds=10.0, other_cpu_seconds=1.0)
    assert not quiet.busy and quiet.notes == []
    battery = judge(Conditions(on_battery=True, battery_percent=41.0), seconds=1.0, other_cpu_seconds=0.0)
    assert battery.notes == ["on battery (41 %): power saving may lower the numbers"]


def test_other_processes_cpu_time_is_counted():
    """A process burning CPU beside the benchmark shows up as other processes' CPU time."""
    import subprocess
    import sys

    from edgepack.measure.conditions import ConditionsRecorder

    recorder = ConditionsRecorder()
    # started in the background by a shell that exits at once: not our child, so not our CPU time
    burn = "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"
    subprocess.run(["sh", "-c", f"'{sys.executable}' -c '{burn}' >/dev/null 2>&1 &"], check=True)
    time.sleep(1.8)
    c = recorder.finish()
    assert c.other_cpu_seconds >= 1.0 and c.busy and c.seconds >= 1.8


def test_cli_sustained_and_cooldown(tiny_reference):
    start = time.perf_counter()
    res = CliRunner().invoke(app, ["bench", str(tiny_reference.path), "-p", "16", "-n", "16", "-r", "1", "-t", "1,2",
                                   "--sustained", "1", "--cooldown", "1", "--json"])
    assert res.exit_code == 0, res.output
    assert time.perf_counter() - start >= 1 + 2 * 1  # one cooldown between the two settings, two sustained runs
    results = json.loads(res.stdout)["results"]
    assert [r["test"] for r in results] == ["pp16", "tg16", "tg16@1s"] * 2
    s = results[2]
    assert s["sustained_ts"] == s["avg_ts"] and s["burst_ts"] > 0 and len(s["sustained_windows"]) >= 3
    assert all(w["tokens"] == 16 for w in s["sustained_windows"])
    assert all(r["conditions"]["seconds"] > 0 for r in results)
    res = CliRunner().invoke(app, ["bench", str(tiny_reference.path), "--sustained", "-1"])
    assert res.exit_code != 0 and "--sustained" in res.output
