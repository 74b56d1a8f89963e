"""The speed engine, sweeps, report formats, --tune, and the profile/plan/bench commands."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from edgepack.measure.bench import (
    BENCH_FIELDS, BenchError, bench_sweep, load_bench_results, measure_speed, parse_list, tune_bundle,
)
from edgepack.bundle import load_manifest
from edgepack.cli import app

runner = CliRunner()


def test_measure_speed_fields(tiny_reference):
    r = measure_speed(tiny_reference.path, n_prompt=32, n_gen=8, repetitions=2, n_threads=1, n_batch=16)
    assert r.pp_tps > 0 and r.tg_tps > 0 and r.ttft_ms > 0
    assert len(r.pp_samples_ns) == len(r.tg_samples_ns) == len(r.ttft_samples_ns) == 2
    assert r.pp_tps_sd >= 0 and r.tg_tps_sd >= 0
    # ttft covers the whole prompt plus one token, so it is longer than the prompt alone
    assert min(r.ttft_samples_ns) > min(r.pp_samples_ns)
    assert (r.n_threads, r.n_batch, r.n_ubatch, r.n_parallel) == (1, 16, 16, 1)
    assert r.model_n_params > 0 and r.model_size > 0


def test_parallel_sequences(tiny_reference):
    r = measure_speed(tiny_reference.path, n_prompt=0, n_gen=8, repetitions=1, n_threads=1, n_parallel=4)
    assert r.pp_tps is None and r.ttft_ms is None and r.tg_tps > 0 and r.n_parallel == 4


def test_matches_llama_bench_facts(tiny_reference, native_tools):
    """Same model description, size and parameter count as llama-bench reports (timings: scripts/bench_speed.py)."""
    tool = native_tools.tool("llama-bench")
    if tool is None:
        pytest.skip("llama-bench was not built")
    done = subprocess.run([str(tool), "-m", str(tiny_reference.path), "-p", "16", "-n", "0", "-r", "1", "-t", "1",
                           "-o", "json"], capture_output=True, text=True, check=True)
    theirs = json.loads(done.stdout)[0]
    ours = measure_speed(tiny_reference.path, n_prompt=16, n_gen=0, repetitions=1, n_threads=1)
    assert (ours.model_type, ours.model_size, ours.model_n_params) == (
        theirs["model_type"], theirs["model_size"], theirs["model_n_params"])


def test_bad_settings(tiny_reference):
    with pytest.raises(BenchError, match="n_gpu_layers 50 is more than"):
        measure_speed(tiny_reference.path, n_gpu_layers=50)
    with pytest.raises(BenchError, match="repetitions"):
        measure_speed(tiny_reference.path, n_prompt=8, n_gen=0, repetitions=0, n_threads=1)
    with pytest.raises(BenchError, match="not a number or 'all'"):
        parse_list("1,x", n_layers=2, name="n_gpu_layers")
    assert parse_list("0,1,all", n_layers=2) == [0, 1, 3]


def test_sweep_and_formats(tiny_bundle, tmp_path):
    report = bench_sweep([tiny_bundle], threads=[1, 2], n_prompt=16, n_gen=4, repetitions=1)
    # 2 quants x 2 thread counts x (pp + tg)
    assert len(report.results) == 8
    assert {r.quant for r in report.results} == {"Q8_0", "Q4_K_M"}
    assert {r.test for r in report.results} == {"pp16", "tg4"}
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert tuple(rows[0]) == BENCH_FIELDS and float(rows[0]["avg_ts"]) > 0
    lines = report.to_jsonl().splitlines()
    assert len(lines) == 8 and json.loads(lines[0])["machine_profile"]["cpu_info"] == report.machine["cpu"]["model"]
    md = report.to_markdown()
    assert md.count("| pp16 |") == 4 and "t/s" in md
    for ext in ("md", "csv", "json", "jsonl"):
        report.write(tmp_path / f"r.{ext}")
    merged = load_bench_results(tmp_path / "r.json") + load_bench_results(tmp_path / "r.jsonl")
    assert len(merged) == 16 and all("avg_ts" in r and "machine_profile" in r for r in merged)
    with pytest.raises(BenchError, match="unknown report format"):
        report.write(tmp_path / "r.txt")


def test_tune_writes_bundle(tiny_bundle, tmp_path):
    bundle = tmp_path / "tuned"
    shutil.copytree(tiny_bundle, bundle)
    result = tune_bundle(bundle, threads=[1, 2], n_prompt=16, n_gen=4, repetitions=1)
    assert result.quant == "Q4_K_M" and result.n_threads in (1, 2) and len(result.candidates) == 2
    manifest = load_manifest(bundle)
    tuning = manifest.tuning
    assert tuning.settings.n_threads == result.n_threads and tuning.machine["cpu_info"]
    for f in manifest.files:
        text = (bundle / f.modelfile).read_text()
        assert f"FROM ./{f.file}" in text
        assert f"PARAMETER num_thread {result.n_threads}" in text and "PARAMETER num_gpu 0" in text
    assert f"PARAMETER num_thread {result.n_threads}" in (bundle / "Modelfile").read_text()


def test_tune_scores_a_whole_request(tiny_bundle, tmp_path, monkeypatch):
    """Hand-checked: 1 thread gives pp 100 t/s, tg 10 t/s: 128/100 + 32/10 = 4.48 s a request;
    2 threads give pp 1000 t/s but tg 5 t/s: 0.128 + 6.4 = 6.528 s. The faster prompt loses."""
    from types import SimpleNamespace

    import edgepack.measure.tune as tune

    speeds = {1: (100.0, 10.0), 2: (1000.0, 5.0)}
    monkeypatch.setattr(tune, "_measure", lambda *a, n_threads, **k: SimpleNamespace(
        pp_tps=speeds[n_threads][0], tg_tps=speeds[n_threads][1]))
    bundle = tmp_path / "tuned"
    shutil.copytree(tiny_bundle, bundle)
    result = tune_bundle(bundle, threads=[1, 2], n_prompt=128, n_gen=32, repetitions=1)
    assert [c["request_seconds"] for c in result.candidates] == [4.48, 6.528]
    assert result.n_threads == 1 and result.request_seconds == 4.48


def test_cli_profile_plan_bench(tiny_reference, tmp_path):
    res = runner.invoke(app, ["profile", "--json", "--no-bandwidth", "--save", str(tmp_path / "me.json")])
    assert res.exit_code == 0, res.output
    profile = json.loads(res.stdout)
    assert profile["memory"]["total_bytes"] > 0 and (tmp_path / "me.json").is_file()

    res = runner.invoke(app, ["plan", str(tiny_reference.path), "--target", str(tmp_path / "me.json"),
                              "--ctx", "256", "--json"])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert plan["fits"] and plan["modelfile_parameters"]["num_ctx"] == 256

    res = runner.invoke(app, ["bench", str(tiny_reference.path), "-p", "16", "-n", "4", "-r", "1", "-t", "1",
                              "--json", "-o", str(tmp_path / "b.csv")])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)["results"]) == 2 and (tmp_path / "b.csv").is_file()


@pytest.mark.parametrize("args, fragment", [
    (["plan", "{model}", "--target", "mars-rover"], "unknown target 'mars-rover'"),
    (["plan", "{model}", "--ctx", "999999"], "longer than"),
    (["plan", "{model}", "--target", "rtx-3060-12gb", "--ngl", "64"], "n_gpu_layers 64 is more than"),
    (["plan", "{model}", "--target", "{bad}"], "is not a machine profile"),
    (["bench", "{model}", "--ngl", "64"], "n_gpu_layers 64 is more than"),
    (["bench", "{model}", "--tune"], "--tune needs one bundle directory"),
])
def test_cli_bad_input(tiny_reference, tmp_path, args, fragment):
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "cpu": []}')
    args = [a.format(model=tiny_reference.path, bad=bad) for a in args]
    res = runner.invoke(app, args)
    assert res.exit_code != 0
    assert fragment in " ".join(res.output.split()) and len(res.output.strip().splitlines()) == 1
