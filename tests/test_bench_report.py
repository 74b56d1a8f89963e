"""`edgepack report a.json b.json`: bench results of two devices, with energy and sustained speed, in one table and chart."""

from __future__ import annotations

import csv
import io
import json

from typer.testing import CliRunner

from edgepack.cli import app


def record(machine: str, test: str, ts: float, **extra) -> dict:
    return {"machine": machine, "model_filename": "m-Q4_K_M.gguf", "quant": "Q4_K_M", "model_size": 2**20,
            "model_n_params": 10**6, "backends": "CPU", "n_threads": 4, "n_gpu_layers": 0, "n_batch": 512,
            "test": test, "avg_ts": ts, "stddev_ts": 0.5, **extra}


def test_two_devices_merge_with_energy_and_sustained(tmp_path):
    orin = {"edgepack_bench": 1, "machine": {"name": "orin", "cpu": {"model": "Cortex-A78AE"}}, "notes": [], "results": [
        record("orin", "tg128", 20.0, joules_per_token=0.25, avg_watts=7.5, tokens_per_joule=4.0),
        record("orin", "tg32@120s", 15.0, burst_ts=20.0, sustained_ts=15.0, slowdown_after_s=42.0,
               throttling="thermal or power throttling: CPU clock fell from 2200 to 1500 MHz at 88 °C")]}
    laptop = {"edgepack_bench": 1, "machine": {"name": "laptop"}, "notes": [], "results": [
        record("laptop", "tg128", 55.0, joules_per_token=0.5, avg_watts=30.0, tokens_per_joule=2.0, busy=True,
               conditions={"other_cores": 1.2})]}
    (tmp_path / "orin.json").write_text(json.dumps(orin))
    (tmp_path / "laptop.json").write_text(json.dumps(laptop))
    res = CliRunner().invoke(app, ["report", "--bench", str(tmp_path / "orin.json"), str(tmp_path / "laptop.json"),
                                   "-o", str(tmp_path / "merged.md")])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "merged.md").read_text()
    assert "| J/token | W | tokens/J | burst t/s | sustained t/s | slowdown after |" in md
    assert "| orin | m-Q4_K_M.gguf | Q4_K_M | 1.0 | 1.0 M | CPU | 4 | 0 | 512 | tg128 | 20.00 ± 0.50 | 0.25 | 7.5 | 4 |" in md
    assert "| tg32@120s | 15.00 ± 0.50 |  |  |  | 20.00 | 15.00 | 42 s |" in md
    assert "tg128 (busy)" in md and "CPU clock fell from 2200 to 1500 MHz" in md
    assert "![energy and sustained speed](merged-energy.png)" in md
    assert (tmp_path / "merged-energy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = CliRunner().invoke(app, ["report", "--bench", str(tmp_path / "orin.json"), str(tmp_path / "laptop.json"),
                                   "-o", str(tmp_path / "merged.csv")])
    rows = list(csv.DictReader(io.StringIO((tmp_path / "merged.csv").read_text())))
    assert [(r["machine"], r["joules_per_token"], r["sustained_ts"]) for r in rows] == [
        ("orin", "0.25", ""), ("orin", "", "15.0"), ("laptop", "0.5", "")]


def test_no_energy_no_chart(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([record("a", "tg128", 10.0)]))  # llama-bench's -o json shape
    res = CliRunner().invoke(app, ["report", "--bench", str(tmp_path / "a.json"), "-o", str(tmp_path / "m.md")])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "m-energy.png").exists() and "energy.png" not in (tmp_path / "m.md").read_text()
