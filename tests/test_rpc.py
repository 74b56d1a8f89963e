"""llama.cpp's RPC backend: two ggml-rpc-server processes on loopback pool one model.

The pinned tree's rpc-server has no memory limit (`-m` came later) and a CPU server reports its
host's whole RAM, so the "small memory" of each server is the cap edgepack plans with
(`host:port=SIZE`); what the servers really hold is read back from llama.cpp's own load log.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from edgepack.errors import RpcError
from edgepack.runtime import rpc

MIB = 2**20


def test_parse_servers_and_device_list():
    servers = rpc.parse_servers("10.0.0.2:50052, 10.0.0.3:50053=512MiB")
    assert [s.endpoint for s in servers] == ["10.0.0.2:50052", "10.0.0.3:50053"]
    assert servers[0].cap_bytes is None and servers[1].cap_bytes == 512 * MIB
    for bad in ("", "host", "host:0", "h:1=lots"):
        with pytest.raises(RpcError):
            rpc.parse_servers(bad)
    text = ("Available devices:\n  RPC0: 10.0.0.2:50052 (7620 MiB, 7000 MiB free)\n"
            "  RPC1: 10.0.0.3:50053 (15000 MiB, 14000 MiB free)\n")
    devices = rpc.parse_device_list(text)
    assert [(d.name, d.description, d.total_bytes, d.free_bytes) for d in devices] == [
        ("RPC0", "10.0.0.2:50052", 7620 * MIB, 7000 * MIB), ("RPC1", "10.0.0.3:50053", 15000 * MIB, 14000 * MIB)]


def _need(plan) -> int:
    return sum(s.need_bytes for s in plan.shares)


def test_plan_splits_layers_to_fit_or_says_by_how_much(pooled_model):
    from edgepack.machine.geometry import load_geometry

    path = pooled_model[0]
    g = load_geometry(path)
    big = [rpc.PoolDevice("RPC0", "a:1", 2**40, 2**40)]
    whole = rpc.plan_pool(path, big, 256)
    assert whole.fits and whole.tensor_split == [g.n_layers + 1]
    # weights on the devices: every layer and the output layer (hand sum over the GGUF's tensors)
    assert whole.shares[0].weights_bytes == sum(g.layer_bytes) + g.output_bytes + g.other_bytes
    need = _need(whole)
    half = [rpc.PoolDevice(f"RPC{i}", f"h:{i + 1}", 2**40, 2**40, cap_bytes=int(need * 0.7)) for i in range(2)]
    split = rpc.plan_pool(path, half, 256)
    assert split.fits and all(n > 0 for n in split.tensor_split) and sum(split.tensor_split) == g.n_layers + 1
    assert all(s.need_bytes <= int(need * 0.7) for s in split.shares)
    one = rpc.plan_pool(path, half[:1], 256)
    assert not one.fits and one.shortfall_bytes == need - int(need * 0.7)
    assert "--tensor-split" in split.llama_args()


# ---------------------------------------------------------------- the real pool

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def rpc_build():
    from edgepack.runtime.native import build_native

    return build_native(("ggml-rpc-server", "llama-server", "llama-bench"), rpc=True)


@pytest.fixture(scope="module")
def pool(rpc_build, tmp_path_factory):
    logs = tmp_path_factory.mktemp("rpc")
    servers = [rpc.start_server(_free_port(), threads=1, log=logs / f"server{i}.log") for i in range(2)]
    yield servers
    for s in servers:
        s.stop()


@pytest.fixture(scope="module")
def pooled_model(tmp_path_factory):
    """A 4-layer F16 model and the cap that makes it fit neither server alone (70 % of its need)."""
    from tiny_models import make_tiny_llama

    from edgepack.source import make_reference, resolve_source

    hf = make_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-4", layers=4, seed=3)
    path = make_reference(resolve_source(str(hf)), "f16").path
    need = _need(rpc.plan_pool(path, [rpc.PoolDevice("RPC0", "x", 2**40, 2**40)], 256))
    return path, int(need * 0.7)


def _endpoints(pool, cap: int | None = None) -> str:
    return ",".join(s.server.endpoint + (f"={cap}B" if cap else "") for s in pool)


def test_servers_report_their_memory(pool):
    devices = rpc.query_devices([s.server for s in pool])
    assert [d.description for d in devices] == [s.server.endpoint for s in pool]
    mem_total = int(re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text()).group(1)) * 1024
    for d in devices:  # a CPU rpc-server reports its host's RAM (sysconf), which /proc/meminfo also tells
        assert abs(d.total_bytes - mem_total) <= 2 * MIB


def _server(args: list[str], log: Path) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    proc = subprocess.Popen([*args, "--host", "127.0.0.1", "--port", str(port), "-t", "1", "--no-warmup", "-lv", "4"],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError("llama-server did not come up: " + log.read_text()[-3000:])


def _complete(port: int, prompt: str) -> list[int]:
    body = json.dumps({"prompt": prompt, "n_predict": 24, "temperature": 0, "top_k": 1, "seed": 1,
                       "return_tokens": True, "cache_prompt": False}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/completion", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())["tokens"]


def test_model_that_fits_neither_server_runs_across_both(pool, pooled_model, rpc_build, tmp_path):
    path, cap = pooled_model
    alone = rpc.plan_rpc(path, _endpoints(pool[:1], cap), 256)
    assert not alone.fits and alone.shortfall_bytes > 0
    plan = rpc.plan_rpc(path, _endpoints(pool, cap), 256)
    assert plan.fits and len(plan.shares) == 2 and all(s.layers for s in plan.shares)

    server = str(rpc_build.tool("llama-server"))
    pooled, port = _server([server, "-m", str(path), *plan.llama_args()], tmp_path / "pool.log")
    try:
        pool_tokens = _complete(port, "The quick brown fox")
    finally:
        pooled.terminate()
        pooled.wait(30)
    local, port = _server([server, "-m", str(path), "-ngl", "0", "-c", "256"], tmp_path / "local.log")
    try:
        local_tokens = _complete(port, "The quick brown fox")
    finally:
        local.terminate()
        local.wait(30)
    assert len(pool_tokens) == 24 and pool_tokens == local_tokens
    # llama.cpp's own account of where the weights went: both servers, as planned
    log = (tmp_path / "pool.log").read_text()
    held = {m.group(1): float(m.group(2)) * MIB
            for m in re.finditer(r"RPC\d+\[([^\]]+)\] model buffer size =\s+([\d.]+) MiB", log)}
    assert set(held) == {s.server.endpoint for s in pool}, log[-3000:]
    for share in plan.shares:  # the layers each server holds are the ones the plan gave it
        assert held[share.description] == pytest.approx(share.weights_bytes, rel=0.02, abs=16 * 1024)


def test_plan_and_bench_commands_over_the_pool(pool, pooled_model, tmp_path):
    from typer.testing import CliRunner

    from edgepack.cli import app

    path, cap = pooled_model
    runner = CliRunner()
    result = runner.invoke(app, ["plan", str(path), "--rpc", _endpoints(pool, cap), "--ctx", "256", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["fits"] and len(plan["tensor_split"]) == 2
    result = runner.invoke(app, ["bench", str(path), "--rpc", _endpoints(pool, cap), "-p", "32", "-n", "8", "-r", "1",
                                 "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["results"]
    assert {(r["setup"].split(" (")[0], r["test"]) for r in rows} == {
        ("rpc pool", "pp32"), ("rpc pool", "tg8"), ("one process", "pp32"), ("one process", "tg8")}
    assert all(r["avg_ts"] > 0 for r in rows)
    result = runner.invoke(app, ["plan", str(path), "--rpc", "127.0.0.1:1", "--ctx", "256"])
    assert result.exit_code != 0 and "does not answer" in result.output


def test_build_writes_pool_settings(pool, tiny_bundle, tmp_path):
    import shutil

    from edgepack.cli.fleet_cmd import write_rpc_settings

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    written = write_rpc_settings(bundle, _endpoints(pool), 512)
    plans = json.loads((bundle / "rpc-pool.json").read_text())
    assert set(plans) == {"Q8_0", "Q4_K_M"} and all(p["fits"] for p in plans.values())
    script = (bundle / "llama-server-rpc.Q4_K_M.sh").read_text()
    assert "--rpc " + ",".join(s.server.endpoint for s in pool) in script and "--tensor-split" in script
    assert len(written) == 3


def test_rpc_build_is_apart_from_the_default_build(tmp_path, monkeypatch):
    from edgepack.runtime import native
    from edgepack.runtime.toolchain import Toolchain

    monkeypatch.setenv("EDGEPACK_CACHE", str(tmp_path))
    assert native._build_dir("cpu", rpc=True) != native._build_dir("cpu")
    assert native.find_native("cpu", rpc=True) is None and native.find_native("cpu") is None
    toolchain = Toolchain("0.3.36", "0" * 40, tmp_path)
    default = native.cmake_args(toolchain, native._build_dir("cpu"), "cpu")
    pooled = native.cmake_args(toolchain, native._build_dir("cpu", rpc=True), "cpu", rpc=True)
    assert "-DGGML_RPC=ON" in pooled and not any("GGML_RPC" in a for a in default)
