"""A real multi-node Ray cluster on loopback (ray.cluster_utils.Cluster), with token authentication:
nodes stand for devices through the resources and labels `edgepack worker` gives them."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from edgepack.errors import FleetError  # noqa: E402
from edgepack.fleet import worker  # noqa: E402

MB = 2**20


def _node_args(name: str, preset: str | None = None, **extra) -> dict:
    from edgepack.machine.devices import resolve_target

    spec = worker.device_spec(name, resolve_target(preset) if preset else None, preset)
    return {"num_cpus": 1, "object_store_memory": 80 * MB, "node_ip_address": "127.0.0.1",
            "resources": worker.node_resources(spec), "labels": worker.node_labels(spec)} | extra


@pytest.fixture(scope="module")
def fleet():
    """Head (no device), orin-1 (announces the Jetson preset, too little memory for quantizing),
    laptop-2 (this machine). Each Ray process runs at low priority on the shared cores."""
    from ray._private.authentication_test_utils import reset_auth_token_state
    from ray.cluster_utils import Cluster

    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_USAGE_STATS_ENABLED")}
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), RAY_USAGE_STATS_ENABLED="0")
    reset_auth_token_state()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": 80 * MB, "node_ip_address": "127.0.0.1", "include_dashboard": False})
    nodes = {"orin-1": cluster.add_node(**_node_args("orin-1", "jetson-orin-nano-8gb", memory=1 * MB)),
             "laptop-2": cluster.add_node(**_node_args("laptop-2"))}
    from edgepack.fleet.cluster import connect

    connect(cluster.address)
    yield cluster, nodes
    ray.shutdown()
    cluster.shutdown()
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    reset_auth_token_state()


def test_commands_bind_loopback_and_need_an_address():
    spec = worker.DeviceSpec("orin-1", "jetson-orin-nano-8gb", "aarch64", None, "Orin", 8 * 2**30, None)
    head = worker.head_command()
    assert head[head.index("--node-ip-address") + 1] == "127.0.0.1" and "0.0.0.0" not in " ".join(head)
    assert "--include-dashboard=false" in head
    cmd = worker.worker_command("10.0.0.5:6379", spec)
    assert cmd[cmd.index("--address") + 1] == "10.0.0.5:6379"
    assert cmd[cmd.index("--node-ip-address") + 1] == "127.0.0.1"
    assert json.loads(cmd[cmd.index("--resources") + 1]) == {"edgepack-device": 1.0, "edgepack-device-orin-1": 1.0}
    assert "edgepack.dev/preset=jetson-orin-nano-8gb" in cmd[cmd.index("--labels") + 1].split(",")
    assert worker.ray_environment()["RAY_AUTH_MODE"] in ("token", os.environ.get("RAY_AUTH_MODE"))
    for bad in (None, "", "auto", "host", "host:99999"):
        with pytest.raises(FleetError):
            worker.check_address(bad)
    with pytest.raises(FleetError, match="device name"):
        worker.device_spec("orin 1")


def test_devices_join_with_their_profile(fleet):
    from edgepack.fleet.cluster import list_devices, select_devices
    from edgepack.machine.devices import resolve_target

    devices = {d.name: d for d in list_devices()}
    assert set(devices) == {"orin-1", "laptop-2"}  # the head is no device
    orin = devices["orin-1"].spec
    preset = resolve_target("jetson-orin-nano-8gb")
    assert orin.preset == "jetson-orin-nano-8gb" and orin.arch == preset.cpu.arch == "aarch64"
    assert orin.memory_bytes == round(preset.memory.total_bytes / 2**30) * 2**30
    assert devices["laptop-2"].spec.arch == os.uname().machine
    assert devices["laptop-2"].resources["edgepack-device-laptop-2"] == 1.0
    assert [d.name for d in select_devices("orin-*")] == ["orin-1"]
    assert [d.name for d in select_devices("laptop-2,orin-1")] == ["laptop-2", "orin-1"]
    with pytest.raises(FleetError, match="matches no live device"):
        select_devices("jetson-*")


def test_fleet_ls_cli(fleet):
    from typer.testing import CliRunner

    from edgepack.cli import app

    result = CliRunner().invoke(app, ["fleet", "ls", "--head", fleet[0].address, "--json"])
    assert result.exit_code == 0, result.output
    listed = {d["name"]: d for d in json.loads(result.stdout)}
    assert listed["orin-1"]["spec"]["gpu"] and listed["laptop-2"]["alive"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_head_requires_rays_token(tmp_path):
    """`edgepack fleet head`'s command and environment: a head on loopback with Ray's token
    authentication; a driver without the token is turned away, one with it gets in."""
    import socket
    import time

    port = _free_port()
    env = {k: v for k, v in worker.ray_environment().items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    env["HOME"] = str(tmp_path)  # the head writes its new token to ~/.ray/auth_token
    code = ("import sys; from edgepack.fleet.worker import head_command, run_ray\n"
            f"sys.exit(run_ray(head_command(port={port}, block=True)))\n")
    head = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert head.poll() is None and time.monotonic() < deadline, "the head did not start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(1)
        token = tmp_path / ".ray" / "auth_token"
        assert token.is_file() and token.stat().st_size > 0
        code = ("import sys; from edgepack.fleet.cluster import connect, import_ray\n"
                f"connect('127.0.0.1:{port}'); print(len(import_ray().nodes()))\n")
        stranger = env | {"RAY_AUTH_MODE": "disabled", "HOME": str(tmp_path / "elsewhere")}
        proc = subprocess.run([sys.executable, "-c", code], env=stranger, capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and ("InvalidAuthToken" in proc.stderr or "Authentication" in proc.stderr), \
            proc.stderr[-2000:]
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and proc.stdout.split()[-1] == "1", proc.stderr[-2000:]
        no_token = env | {"HOME": str(tmp_path / "elsewhere")}  # token mode but no token: one clear line
        proc = subprocess.run([sys.executable, "-m", "edgepack.cli", "fleet", "ls", "--head", f"127.0.0.1:{port}"],
                              env=no_token, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and proc.stderr.startswith("error: ") and "auth_token" in proc.stderr
    finally:  # `ray start --block` stops its node on SIGTERM; whatever of the group is left goes after
        _kill_group(head, grace=5)


def _kill_group(proc: subprocess.Popen, grace: float = 3) -> None:
    """Stop a `ray start --block` this test started, and whatever its process group left `grace` seconds on."""
    import signal
    import time

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    time.sleep(grace)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _closed(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0


def test_worker_command_joins_a_head(tmp_path):
    """`edgepack worker` joins a head started by `edgepack fleet head`, with its profile.

    On 127.0.0.2: Ray's `ray start` turns 127.0.0.1 into the machine's LAN address, any other
    loopback address it keeps."""
    import time

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")} | {"HOME": str(tmp_path)}
    cli = [sys.executable, "-m", "edgepack.cli"]
    head = subprocess.Popen(cli + ["fleet", "head", "--bind", "127.0.0.2", "--port", str(port), "--block"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    node = None
    try:
        deadline = time.monotonic() + 180
        while not (tmp_path / ".ray" / "auth_token").is_file() or _closed("127.0.0.2", port):
            assert head.poll() is None and time.monotonic() < deadline, "the head did not start"
            time.sleep(1)
        node = subprocess.Popen(cli + ["worker", "--head", f"127.0.0.2:{port}", "--name", "orin-9", "--bind",
                                       "127.0.0.2", "--num-cpus", "1", "--target", "jetson-orin-nano-8gb"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline, listed = time.monotonic() + 180, []
        while not listed and time.monotonic() < deadline:
            assert node.poll() is None, "the worker exited"
            proc = subprocess.run(cli + ["fleet", "ls", "--head", f"127.0.0.2:{port}", "--json"], env=env,
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr[-2000:]
            listed = [d for d in json.loads(proc.stdout) if d["alive"]]
            time.sleep(0 if listed else 2)
        assert [(d["name"], d["spec"]["preset"], d["spec"]["arch"], d["address"]) for d in listed] == [
            ("orin-9", "jetson-orin-nano-8gb", "aarch64", "127.0.0.2")]
    finally:
        if node is not None:
            _kill_group(node)
        _kill_group(head)


def test_fleet_bench_every_file_on_every_device(fleet, tiny_bundle, tmp_path):
    from edgepack.bundle import load_manifest
    from edgepack.fleet import fleet_bench
    from edgepack.gguf_file import read_gguf

    report = fleet_bench([tiny_bundle], fleet[0].address, devices="orin-1,laptop-2",
                         settings=dict(n_prompt=16, n_gen=4, repetitions=1, threads=[1]))
    files = [f.file for f in load_manifest(tiny_bundle).files]
    assert {d.name: (d.status, sorted(d.finished)) for d in report.devices} == {
        "orin-1": ("ok", sorted(files)), "laptop-2": ("ok", sorted(files))}
    for device in ("orin-1", "laptop-2"):
        rows = report.rows_of(device)
        assert sorted((r["model_filename"], r["test"]) for r in rows) == sorted(
            (f, t) for f in files for t in ("pp16", "tg4"))
        for r in rows:  # the file arrived whole: gguf-py counts the same parameters llama.cpp loaded
            assert r["model_n_params"] == read_gguf(tiny_bundle / r["model_filename"]).n_params
            assert r["device"]["name"] == device and r["avg_ts"] > 0
    assert {r["device"]["preset"] for r in report.rows_of("orin-1")} == {"jetson-orin-nano-8gb"}
    report.write(tmp_path / "fleet.md")
    text = (tmp_path / "fleet.md").read_text()
    assert "## orin-1" in text and "## laptop-2" in text and (tmp_path / "fleet.png").stat().st_size > 0
    report.write(tmp_path / "fleet.json")  # `edgepack report` merges it like any bench result
    from edgepack.measure.bench_report import merge_bench_results

    assert {r["machine"] for r in merge_bench_results([tmp_path / "fleet.json"])} == {"orin-1", "laptop-2"}


def test_fleet_bench_keeps_what_a_lost_device_finished(fleet, tiny_bundle, tiny_reference):
    from edgepack.fleet import fleet_bench

    cluster, _ = fleet
    doomed = cluster.add_node(**_node_args("doomed-3"))
    files = [tiny_reference.path, *sorted(tiny_bundle.glob("*.gguf"))]
    killed = []

    def on_result(done):
        if done["device"] == "doomed-3" and not killed:
            cluster.remove_node(doomed, allow_graceful=False)  # pulled the plug after its first file
            killed.append(done["file"])

    report = fleet_bench(files, cluster.address, devices="doomed-3,laptop-2", on_result=on_result,
                         settings=dict(n_prompt=128, n_gen=64, repetitions=3, threads=[1]))
    outcome = {d.name: d for d in report.devices}
    names = sorted(f.name for f in files)
    assert outcome["laptop-2"].status == "ok" and sorted(outcome["laptop-2"].finished) == names
    assert len(report.rows_of("laptop-2")) == 2 * len(names)
    lost = outcome["doomed-3"]
    assert killed and lost.status == "lost"
    assert killed[0] in lost.finished and 1 <= len(lost.finished) < len(names)
    assert sorted(lost.finished + lost.missing) == names
    assert sorted({r["model_filename"] for r in report.rows_of("doomed-3")}) == sorted(lost.finished)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _comparable(manifest: dict) -> dict:
    """A manifest without what differs between any two builds: times, the creation date, and the
    measured numbers of the evaluation (compared separately)."""
    m = json.loads(json.dumps(manifest))
    m.pop("created", None)
    m.pop("timings", None)
    for key in ("seconds", "cached"):  # how long the reference took, and whether the cache had it
        m["reference"].pop(key, None)
    for f in m["files"]:
        f.pop("seconds", None)
    evaluation = m.get("extra", {}).pop("evaluation", None)
    return m | {"evaluated": [r["quant"] for r in evaluation["results"]] if evaluation else None}


def test_fleet_build_matches_a_local_build(fleet, tiny_hf_dir, tmp_path):
    from edgepack.fleet import fleet_build
    from edgepack.measure.evaluate import EvalPlan, evaluate
    from edgepack.measure.scoring import EvalSettings
    from edgepack.pipeline import build

    quants = ["Q8_0", "Q4_K_M", "Q4_0"]
    plan = EvalPlan(settings=EvalSettings(n_ctx=128, n_chunks=2, n_threads=1), speed=False, memory_contexts=())
    local = build(str(tiny_hf_dir), quants, output_dir=tmp_path / "local")
    local_report, _ = evaluate([local.bundle_dir], plan=plan)
    from edgepack.pipeline import BuildPlan

    remote = fleet_build(BuildPlan(str(tiny_hf_dir), tuple(quants), output_dir=tmp_path / "fleet", evaluate=plan),
                         address=fleet[0].address)
    a, b = tmp_path / "local", tmp_path / "fleet"
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    for f in local.manifest.files:
        assert _sha(a / f.file) == _sha(b / f.file) == f.sha256
        assert (a / f.modelfile).read_text() == (b / f.modelfile).read_text()
    assert _comparable(json.loads((a / "manifest.json").read_text())) == \
        _comparable(json.loads((b / "manifest.json").read_text()))
    # each quant was its own task, placed by its memory requirement: orin-1 has 1 MB for tasks
    quantized = [p for p in remote.placements if p.kind == "quantize"]
    assert sorted(p.item for p in quantized) == sorted(quants)
    assert {p.device for p in quantized} == {"laptop-2"}
    for p in remote.placements:  # the engine's own time lies within the task's, on the device's clock
        assert p.started <= p.finished and p.engine_seconds <= p.finished - p.started + 0.01
    # the evaluation rows computed on the devices are the ones a local evaluation computes
    local_rows = {r.file: r for r in local_report.rows}
    for r in remote.evaluation.rows:
        assert r.ppl == pytest.approx(local_rows[r.file].ppl, rel=1e-6)
        assert r.kld == pytest.approx(local_rows[r.file].kld, rel=1e-5, abs=1e-9)
    assert (b / "report.md").is_file()


def test_fleet_plan_uses_each_devices_profile(fleet, tiny_bundle):
    from edgepack.fleet.plan import plan_fleet
    from edgepack.machine.plan import plan_bundle

    plans = plan_fleet(tiny_bundle, fleet[0].address, ctx=512)
    assert set(plans) == {"orin-1", "laptop-2"}
    here = plan_bundle(tiny_bundle, "jetson-orin-nano-8gb", 512)  # what orin-1 announced
    orin = plans["orin-1"]
    assert orin.recommended == here.recommended
    assert [(c.quant, c.fits, c.plan.n_gpu_layers) for c in orin.choices] == \
        [(c.quant, c.fits, c.plan.n_gpu_layers) for c in here.choices]
    assert all(c.plan.n_gpu_layers == 0 for c in plans["laptop-2"].choices)  # measured there: no GPU


def test_bench_and_build_commands_on_the_fleet(fleet, tiny_bundle, tiny_hf_dir, tmp_path):
    from typer.testing import CliRunner

    from edgepack.cli import app

    address = fleet[0].address
    runner = CliRunner()
    result = runner.invoke(app, ["bench", str(tiny_bundle), "--fleet", address, "--devices", "laptop-*", "-p", "16",
                                 "-n", "4", "-r", "1", "-t", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [d["name"] for d in report["fleet"]] == ["laptop-2"] and {r["machine"] for r in report["results"]} == {"laptop-2"}
    result = runner.invoke(app, ["build", str(tiny_hf_dir), "-q", "Q4_0", "-o", str(tmp_path / "b"), "--fleet", address,
                                 "--devices", "laptop-*", "--json"])
    assert result.exit_code == 0, result.output
    built = json.loads(result.stdout)
    assert [(p["kind"], p["item"], p["device"]) for p in built["fleet"]] == [("quantize", "Q4_0", "laptop-2")]
    assert _sha(tmp_path / "b" / built["manifest"]["files"][0]["file"]) == built["manifest"]["files"][0]["sha256"]
    shared = tmp_path / "shared"  # a directory every device mounts: files are read there, not shipped
    shared.mkdir()
    result = runner.invoke(app, ["bench", str(tiny_bundle), "--fleet", address, "--devices", "orin-1", "--shared-dir",
                                 str(shared), "-p", "16", "-n", "4", "-r", "1", "-t", "1", "--json"])
    assert result.exit_code == 0, result.output
    copied = sorted(p.name for p in shared.rglob("*.gguf"))
    assert copied == sorted(p.name for p in tiny_bundle.glob("*.gguf"))
    assert sorted({r["model_filename"] for r in json.loads(result.stdout)["results"]}) == copied
    result = runner.invoke(app, ["build", str(tiny_hf_dir), "-q", "Q4_0", "-o", str(tmp_path / "c"), "--fleet", address,
                                 "--devices", "orin-1"])  # 1 MB for tasks there: refused at once, not queued forever
    assert result.exit_code == 1 and "no selected device offers" in result.output and not (tmp_path / "c").exists()
    result = runner.invoke(app, ["bench", str(tiny_bundle), "--fleet", address, "--devices", "jetson-*"])
    assert result.exit_code == 1 and "matches no live device" in result.output
    result = runner.invoke(app, ["plan", str(tiny_bundle), "--fleet", address, "--ctx", "512"])
    assert result.exit_code == 0 and "orin-1" in result.output and "laptop-2" in result.output, result.output
    result = runner.invoke(app, ["plan", str(tiny_bundle), "--fleet", address, "--ctx", "512", "--json"])
    assert set(json.loads(result.stdout)) == {"orin-1", "laptop-2"}
