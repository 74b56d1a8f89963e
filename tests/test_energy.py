"""Energy sensors on recorded sysfs trees and tool outputs, the idle-baseline arithmetic, and
`bench --energy` end to end on a RAPL tree whose counters advance at a known rate."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgepack.cli import app
from edgepack.measure import power_sources as ps
from edgepack.measure.energy import EnergyUnavailable, energy_figures, idle_watts, open_meter

REC = Path(__file__).parent / "data" / "recorded"


def rapl_tree(root: Path, zones: dict[str, tuple[str, int, int]]) -> Path:
    """zones: {"intel-rapl:0": (name, energy_uj, max_energy_range_uj)}; subzones use two colons."""
    for zone, (name, energy, max_uj) in zones.items():
        parent = zone.rsplit(":", 1)[0] if zone.count(":") == 2 else None
        d = root / "sys/class/powercap" / zone
        d.mkdir(parents=True, exist_ok=True)
        (d / "name").write_text(name + "\n")
        (d / "energy_uj").write_text(f"{energy}\n")
        (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
        if parent:  # the kernel also lists subzones inside their package; top-level only is what counts
            (root / "sys/class/powercap" / parent / zone).mkdir(parents=True, exist_ok=True)
    return root


def test_rapl_counters_add_up_across_a_wraparound(tmp_path):
    rapl_tree(tmp_path, {"intel-rapl:0": ("package-0", 900_000, 1_000_000),
                         "intel-rapl:0:0": ("core", 5, 1_000_000), "intel-rapl:1": ("package-1", 10, 1_000_000)})
    zones = ps.rapl_zones(tmp_path)
    assert [z.name for z in zones] == ["package-0", "package-1"]  # the core subzone is inside package-0
    pkg0 = zones[0]
    energy = tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj"
    energy.write_text("950000\n")
    assert pkg0.read_joules() == pytest.approx(0.05)           # 50 000 µJ
    energy.write_text("100000\n")                              # wrapped at 1 000 000 µJ
    assert pkg0.read_joules() == pytest.approx(0.05 + 0.15)    # 50 000 to the top, 100 000 after it
    energy.write_text("400000\n")
    assert pkg0.read_joules() == pytest.approx(0.5)


def test_psys_replaces_the_packages(tmp_path):
    rapl_tree(tmp_path, {"intel-rapl:0": ("package-0", 1, 10**9), "intel-rapl:1": ("psys", 1, 10**9)})
    assert [z.name for z in ps.rapl_zones(tmp_path)] == ["psys"]


def test_jetson_ina_rails_hwmon_and_iio(tmp_path):
    hw = tmp_path / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    hw.mkdir(parents=True)
    for i, (label, mv, ma) in enumerate([("VDD_IN", 5000, 1200), ("VDD_CPU_GPU_CV", 5000, 100)], start=1):
        (hw / f"in{i}_label").write_text(label + "\n")
        (hw / f"in{i}_input").write_text(f"{mv}\n")
        (hw / f"curr{i}_input").write_text(f"{ma}\n")
    rails = ps.jetson_rails(tmp_path)
    assert [r.name for r in rails] == ["VDD_IN", "VDD_CPU_GPU_CV"]
    total = ps.board_input(rails)
    assert [r.name for r in total] == ["VDD_IN"] and total[0].watts() == pytest.approx(6.0)  # 5 V x 1.2 A

    old = tmp_path / "old/sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    old.mkdir(parents=True)
    (old / "rail_name_0").write_text("POM_5V_IN\n")
    (old / "in_power0_input").write_text("3120\n")
    rails = ps.jetson_rails(tmp_path / "old")
    assert [(r.name, r.watts()) for r in rails] == [("POM_5V_IN", pytest.approx(3.12))]


def test_tegrastats_lines():
    orin = ps.parse_tegrastats((REC / "tegrastats_orin_jp5.txt").read_text())
    assert orin == {"VDD_IN": 4.802, "VDD_CPU_GPU_CV": 0.481, "VDD_SOC": 1.442}  # not RAM 2547/7620MB
    nano = ps.parse_tegrastats((REC / "tegrastats_nano_jp4.txt").read_text())
    assert nano == {"POM_5V_IN": 1.329, "POM_5V_GPU": 0.0, "POM_5V_CPU": 0.203}
    assert ps.tegrastats_total(orin) == 4.802 and ps.tegrastats_total(nano) == 1.329


def test_powermetrics_output():
    watts = ps.parse_powermetrics((REC / "powermetrics_m2.txt").read_text())
    assert watts["CPU"] == 11.234 and watts["ANE"] == 0.0 and watts["Combined"] == 11.29


def test_energy_figures_by_hand():
    # 20 J over 2 s with a 4 W idle baseline: 12 J net for 100 tokens.
    e = energy_figures("tg100", 100, 2.0, 20.0, 4.0, ["RAPL"])
    assert (e.avg_watts, e.net_joules, e.joules_per_token, e.tokens_per_joule) == (10.0, 12.0, 0.12, 8.3333)


class AdvancingCounter:
    """Writes energy_uj as a RAPL package would at `watts`, wrapping at max_energy_range_uj."""

    def __init__(self, path: Path, watts: float, max_uj: int):
        self.path, self.watts, self.max_uj = path, watts, max_uj
        self.start = time.perf_counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(0.0005):
            uj = int((time.perf_counter() - self.start) * self.watts * 1e6) % self.max_uj
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(f"{uj}\n")
            tmp.replace(self.path)

    def close(self):
        self.stop.set()
        self.thread.join()


def test_meter_reads_an_advancing_tree(tmp_path):
    # Wraps every 0.4 s at 25 W, five times in the 2 s measured; the poller reads every 0.02 s. A
    # wrap the poller missed would read 20 W or less. The margins are wide because a loaded CI
    # machine once held the poller back longer than a wrap of 0.08 s (20.3 W was read).
    rapl_tree(tmp_path, {"intel-rapl:0": ("package-0", 0, 10_000_000)})
    counter = AdvancingCounter(tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj", 25.0, 10_000_000)
    try:
        with open_meter(tmp_path, use_zeus=False, tools=False, poll_seconds=0.02) as meter:
            assert meter.sources == ["RAPL package-0 (intel-rapl:0)"]
            time.sleep(0.02)
            assert idle_watts(meter, 2.0) == pytest.approx(25.0, rel=0.08)
    finally:
        counter.close()


def test_no_sensor_is_one_line(tmp_path):
    with pytest.raises(EnergyUnavailable) as err:
        open_meter(tmp_path, use_zeus=False, tools=False)
    assert "no power sensor" in str(err.value) and "\n" not in str(err.value)


def test_bench_energy_on_a_recorded_tree(tiny_reference, tmp_path):
    from edgepack.measure.bench import bench_sweep

    rapl_tree(tmp_path, {"intel-rapl:0": ("package-0", 0, 10**12)})
    counter = AdvancingCounter(tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj", 30.0, 10**12)
    try:
        report = bench_sweep([tiny_reference.path], threads=[1], n_prompt=512, n_gen=64, repetitions=3, energy=True,
                             idle_seconds=0.3, power_root=tmp_path)
    finally:
        counter.close()
    pp, tg = report.results
    for r in (pp, tg):
        assert r.energy_sources == ["RAPL package-0 (intel-rapl:0)"]
        assert r.idle_watts == pytest.approx(30.0, rel=0.15)
        assert r.avg_watts == pytest.approx(30.0, rel=0.5)  # short runs read few counter steps
        assert r.conditions["seconds"] > 0 and r.busy is not None
    assert "J/token" in report.to_markdown()


def test_bench_energy_without_a_sensor_says_so_once(tiny_reference, tmp_path, monkeypatch):
    import edgepack.measure.energy as energy

    monkeypatch.setattr(energy.ps, "zeus_counters", lambda: None)
    monkeypatch.setattr(energy.shutil, "which", lambda name: None)
    monkeypatch.setattr(energy.ps, "rapl_zones", lambda root="/": [])
    monkeypatch.setattr(energy.ps, "jetson_rails", lambda root="/": [])
    res = CliRunner().invoke(app, ["bench", str(tiny_reference.path), "-p", "16", "-n", "4", "-r", "1", "-t", "1",
                                   "--energy", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert all(r["joules_per_token"] is None for r in data["results"])
    assert [n for n in data["notes"] if n.startswith("energy:")] == [
        n for n in data["notes"] if "no power sensor" in n] and len([n for n in data["notes"] if "energy" in n]) == 1


def test_real_sensors_here():
    """The real path: this machine's sensors through zeus or sysfs, or the one-line refusal."""
    try:
        meter = open_meter()
    except EnergyUnavailable as exc:
        assert "\n" not in str(exc)
        pytest.skip(str(exc))
    with meter:
        watts = idle_watts(meter, 1.0)
    assert 0 < watts < 2000, meter.sources
