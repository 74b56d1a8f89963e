"""The fleet and the RPC pool against one machine and one process, side by side.

1. `build --ladder --eval` locally (pipeline.build, then evaluate) and on a multi-node Ray cluster
   started here on loopback (a head and two device nodes of one CPU each, token authentication):
   wall time of each, where every task ran, and the overhead of each task (its time outside the
   engine: writing the inputs, reading the output, the trip back). With two nodes sharing the same
   cores expect no speed-up; what must stay small is the overhead per task.
2. The RPC pool: two ggml-rpc-server processes on loopback holding one model split by the plan,
   against one llama-bench process on the same model (pp/tg tokens/s and their ratio).

    python scripts/bench_fleet.py [SOURCE | --tiny] [--chunks 4] [--skip-fleet] [--skip-rpc]

SOURCE defaults to the embedded SmolLM2-135M-Instruct. The RPC part needs
`edgepack native build --tool rpc-server --tool llama-server --tool llama-bench`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import tempfile
import time
from pathlib import Path

MB = 2**20


def eval_plan(chunks: int):
    from edgepack.measure.evaluate import EvalPlan
    from edgepack.measure.scoring import EvalSettings

    # the measurements of `--eval`, kept short: a few chunks, one speed repetition, one memory context
    return EvalPlan(settings=EvalSettings(n_chunks=chunks, n_threads=1), n_prompt=128, n_gen=32, repetitions=1,
                    memory_contexts=(512,))


def start_cluster():
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), RAY_USAGE_STATS_ENABLED="0")
    from ray.cluster_utils import Cluster

    from edgepack.fleet import worker

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": 300 * MB, "node_ip_address": "127.0.0.1", "include_dashboard": False})
    for name in ("node-a", "node-b"):
        spec = worker.device_spec(name)
        cluster.add_node(num_cpus=1, object_store_memory=300 * MB, node_ip_address="127.0.0.1",
                         resources=worker.node_resources(spec), labels=worker.node_labels(spec))
    return cluster


def _nothing() -> None:
    return None


def empty_task_round_trip(n: int = 20) -> float:
    """Ray's own cost of one task on a device: submit, schedule, run nothing, return."""
    import ray

    from edgepack.fleet.worker import DEVICE_RESOURCE

    task = ray.remote(_nothing).options(resources={DEVICE_RESOURCE: 0.001})
    times = []
    for _ in range(n):
        start = time.perf_counter()
        ray.get(task.remote())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_builds(source: str | None, chunks: int, out: Path) -> Path:
    from edgepack.fleet import fleet_build
    from edgepack.measure.evaluate import evaluate
    from edgepack.pipeline import build

    from edgepack.source import make_reference, resolve_source

    plan = eval_plan(chunks)
    make_reference(resolve_source(source), "f16")  # converted and cached before timing: both builds reuse it
    start = time.perf_counter()
    local = build(source, [], ladder=True, output_dir=out / "local")
    evaluate([local.bundle_dir], plan=plan)
    local_s = time.perf_counter() - start

    t0 = time.perf_counter()
    cluster = start_cluster()
    started_s = time.perf_counter() - t0
    try:
        start = time.perf_counter()
        from edgepack.pipeline import BuildPlan

        remote = fleet_build(BuildPlan(source, (), ladder=True, output_dir=out / "fleet", evaluate=plan),
                             address=cluster.address)
        fleet_s = time.perf_counter() - start
        round_trip = empty_task_round_trip()
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()
    same = all((out / "local" / f.file).read_bytes() == (out / "fleet" / f.file).read_bytes()
               for f in local.manifest.files)
    print(f"--ladder --eval build of {local.manifest.model['name']} ({len(local.manifest.files)} quants, "
          f"{chunks} eval chunks)")
    print(f"  local                {local_s:8.1f} s")
    print(f"  fleet (2 nodes)      {fleet_s:8.1f} s   ratio fleet/local {fleet_s / local_s:.2f} "
          f"(cluster start {started_s:.1f} s, not counted); GGUFs identical: {same}")
    print(f"  {'task':<9} {'item':<30} {'device':<8} {'engine s':>9} {'overhead s':>11} {'queued s':>9} {'back s':>7}")
    for p in remote.placements:
        print(f"  {p.kind:<9} {p.item:<30} {p.device or '?':<8} {p.engine_seconds:9.2f} {p.overhead_seconds:11.3f} "
              f"{p.queued_seconds:9.1f} {p.returned_seconds:7.2f}")
    print(f"  a Ray task that does nothing, there and back: median {round_trip * 1000:.1f} ms")
    for kind in ("quantize", "evaluate"):
        over = [p.overhead_seconds for p in remote.placements if p.kind == kind]
        if over:
            print(f"  overhead per {kind} task: median {statistics.median(over):.3f} s, max {max(over):.3f} s")
    placed = {}
    for p in remote.placements:
        placed[p.device] = placed.get(p.device, 0) + 1
    print(f"  tasks per device: {placed}")
    return out / "local"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_rpc(bundle: Path, quant: str) -> None:
    from edgepack.bundle import load_manifest
    from edgepack.runtime import rpc

    model = bundle / load_manifest(bundle).file(quant).file
    servers = [rpc.start_server(_free_port(), threads=1) for _ in range(2)]
    try:
        plan = rpc.plan_rpc(model, ",".join(s.server.endpoint for s in servers), 640)
        rows = rpc.bench_pool(model, plan, n_prompt=128, n_gen=32, repetitions=2, threads=1)
    finally:
        for s in servers:
            s.stop()
    print(f"RPC pool: {model.name} split {plan.tensor_split} over 2 ggml-rpc-server on loopback, 1 thread each")
    base = {r["test"]: r["avg_ts"] for r in rows if r["setup"] == "one process"}
    for r in rows:
        ratio = f"{r['avg_ts'] / base[r['test']]:.2f}" if r["setup"] != "one process" else "1.00"
        print(f"  {r['setup']:<24} {r['test']:<6} {r['avg_ts']:9.1f} ± {r['stddev_ts']:.1f} t/s   x{ratio}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("source", nargs="?")
    ap.add_argument("--chunks", type=int, default=4)
    ap.add_argument("--quant", default="Q4_K_M", help="The quant the RPC pool serves.")
    ap.add_argument("--skip-fleet", action="store_true")
    ap.add_argument("--skip-rpc", action="store_true")
    ap.add_argument("--tiny", action="store_true", help="A small random Llama made here (tests/tiny_models.py).")
    args = ap.parse_args()
    os.environ.setdefault("EDGEPACK_NO_PROGRESS", "1")
    from edgepack.runtime.llama import set_llama_verbose

    set_llama_verbose(False)
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        out = Path(tmp)
        if args.tiny:
            import sys

            sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
            from tiny_models import make_tiny_llama

            args.source = str(make_tiny_llama(out / "tiny-512x4", hidden=512, layers=4, vocab_size=1024))
        if args.skip_fleet:
            from edgepack.pipeline import build

            bundle = build(args.source, [args.quant], output_dir=out / "local").bundle_dir
        else:
            bundle = bench_builds(args.source, args.chunks, out)
        if not args.skip_rpc:
            bench_rpc(bundle, args.quant)


if __name__ == "__main__":
    main()
