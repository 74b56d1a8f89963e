"""Commands of the fleet (Ray) and of RPC pools: worker, fleet head/ls, and the --fleet/--rpc
branches of bench, plan and build (those commands hand over to the functions here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from edgepack.cli._app import JsonFlag, app, handle_errors, print_json, print_report

out = Console()
err = Console(stderr=True)

fleet_app = typer.Typer(help="A fleet of devices on Ray: start the head, list the devices.", no_args_is_help=True)
app.add_typer(fleet_app, name="fleet")

FleetOption = Annotated[Optional[str], typer.Option(
    "--fleet", help="Run on the Ray fleet whose head is at HOST:PORT (see `edgepack fleet head`).")]
DevicesOption = Annotated[Optional[str], typer.Option(
    "--devices", help="With --fleet: devices by name, comma-separated shell patterns, e.g. 'jetson-*,laptop-2'.")]
SharedDirOption = Annotated[Optional[Path], typer.Option(
    "--shared-dir", help="With --fleet: a directory every device mounts at the same path; files go there, not through Ray.")]
RpcOption = Annotated[Optional[str], typer.Option(
    "--rpc", help="llama.cpp RPC servers HOST:PORT[=SIZE],... pooled for one model (SIZE caps a server).")]


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f} MiB"


def _profile(target: Optional[str]):
    if target is None:
        return None, None
    from edgepack.machine.devices import PRESETS, resolve_target

    return resolve_target(target), (target if target in PRESETS else None)


@app.command()
@handle_errors
def worker(
    head: Annotated[str, typer.Option("--head", help="The Ray head's address, HOST:PORT (required: never guessed).")],
    name: Annotated[str, typer.Option("--name", help="This device's name in the fleet, e.g. orin-1.")],
    target: Annotated[Optional[str], typer.Option(
        "--target", help="Announce a preset or profile JSON instead of this machine's measured profile.")] = None,
    bind: Annotated[str, typer.Option("--bind", help="The address this node listens on (default: loopback only).")] = "127.0.0.1",
    num_cpus: Annotated[Optional[int], typer.Option("--num-cpus", help="CPUs Ray may use here (default: all).")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Join a cluster started without Ray's token authentication.")] = False,
):
    """Join the fleet's Ray cluster as a device (runs until Ctrl-C)."""
    from edgepack.fleet.worker import device_spec, run_ray, worker_command

    profile, preset = _profile(target)
    spec = device_spec(name, profile, preset)
    cmd = worker_command(head, spec, bind=bind, num_cpus=num_cpus)
    err.print(f"joining {head} as {name} ({spec.arch}, {spec.gpu or 'no GPU'}); Ctrl-C leaves the fleet", highlight=False)
    raise typer.Exit(run_ray(cmd, auth=not no_auth))


@fleet_app.command("head")
@handle_errors
def fleet_head(
    bind: Annotated[str, typer.Option("--bind", help="The address the head listens on (default: loopback only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Ray's port; keep it inside your network.")] = 6379,
    name: Annotated[Optional[str], typer.Option("--name", help="Also make the head a device with this name.")] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Without Ray's token authentication (not advised).")] = False,
    block: Annotated[bool, typer.Option("--block", help="Stay in the foreground; Ctrl-C stops the head.")] = False,
):
    """Start the fleet's Ray head (token authentication on; stop it with `ray stop`, or Ctrl-C with --block)."""
    from edgepack.fleet.worker import device_spec, head_command, run_ray

    if block:
        err.print(f"head at {bind}:{port}; on each device: edgepack worker --head {bind}:{port} --name NAME", highlight=False)
    code = run_ray(head_command(bind=bind, port=port, spec=device_spec(name) if name else None, block=block),
                   auth=not no_auth)
    if code == 0 and not block:
        err.print(f"head at {bind}:{port}; on each device: edgepack worker --head {bind}:{port} --name NAME "
                  "(with the token from ~/.ray/auth_token there)", highlight=False)
    raise typer.Exit(code)


@fleet_app.command("ls")
@handle_errors
def fleet_ls(
    head: Annotated[str, typer.Option("--head", help="The Ray head's address, HOST:PORT.")],
    as_json: JsonFlag = False,
):
    """The fleet's devices: name, profile, address, and whether they are busy or gone."""
    from edgepack.fleet.cluster import connect, list_devices

    connect(head, what="--head")
    devices = list_devices()
    if as_json:
        print_json([d.to_dict() for d in devices])
        return
    table = Table(title=f"fleet at {head}")
    for col in ("device", "state", "preset", "arch", "gpu", "memory", "VRAM", "CPUs", "address"):
        table.add_column(col)
    for d in devices:
        s = d.spec
        state = "gone" if not d.alive else ("busy" if d.busy else "idle")
        table.add_row(d.name, state, s.preset or "-", s.arch or "-", s.gpu or "-", _mib(s.memory_bytes),
                      _mib(s.vram_bytes), str(d.resources.get("CPU", "-")), d.address)
    out.print(table)


# ---------------------------------------------------------------- the branches of bench, plan, build

def bench_elsewhere(models: list[Path], *, fleet: str | None, devices: str | None, rpc: str | None, settings: dict,
                    output: Optional[Path], as_json: bool, shared_dir: Optional[Path] = None) -> None:
    """`bench --fleet` (every GGUF on every device) or `bench --rpc` (one GGUF over a pool)."""
    from edgepack.errors import BenchError

    if fleet and rpc:
        raise BenchError("give --fleet or --rpc, not both")
    if fleet:
        from edgepack.fleet.bench import fleet_bench

        print_report(fleet_bench(models, fleet, devices=devices, settings=settings, shared_dir=shared_dir),
                     output, as_json)
        return
    from edgepack.runtime.rpc import bench_pool, plan_rpc

    if len(models) != 1 or models[0].is_dir():
        raise BenchError("--rpc benches one GGUF file over the pool")
    n_prompt, n_gen = settings.get("n_prompt", 512), settings.get("n_gen", 128)
    plan = plan_rpc(models[0], rpc, n_prompt + n_gen)
    rows = bench_pool(models[0], plan, n_prompt=n_prompt, n_gen=n_gen, repetitions=settings.get("repetitions", 3),
                      threads=(settings.get("threads") or [None])[0])
    if output:
        import json

        from edgepack.atomic import write_text_atomic

        write_text_atomic(output, json.dumps({"edgepack_bench": 1, "rpc_plan": plan.to_dict(), "results": rows},
                                             indent=2) + "\n")
    if as_json:
        print_json({"rpc_plan": plan.to_dict(), "results": rows})
        return
    _print_pool_plan(plan)
    base = {r["test"]: r["avg_ts"] for r in rows if r["setup"] == "one process"}
    for r in rows:
        ratio = f"  ({r['avg_ts'] / base[r['test']]:.2f}x one process)" if r["setup"] != "one process" and base.get(r["test"]) else ""
        out.print(f"  {r['setup']:<22} {r['test']:<6} {r['avg_ts']:10.2f} ± {r['stddev_ts']:.2f} t/s{ratio}",
                  highlight=False)


def _print_pool_plan(plan) -> None:
    status = "[green]fits[/green]" if plan.fits else f"[red]does not fit: {_mib(plan.shortfall_bytes)} short[/red]"
    out.print(f"[bold]{Path(plan.model).name}[/bold] over {', '.join(plan.servers)} at context {plan.n_ctx}: {status}")
    table = Table()
    for col in ("device", "server", "layers", "weights", "KV", "compute", "needs", "budget", "fits"):
        table.add_column(col, justify="left" if col in ("device", "server", "layers", "fits") else "right")
    for s in plan.shares:
        layers = f"{s.layers[0]}-{s.layers[-1]}" if s.layers else "-"
        table.add_row(s.device, s.description, layers, _mib(s.weights_bytes), _mib(s.kv_bytes), _mib(s.compute_bytes),
                      _mib(s.need_bytes), _mib(s.budget_bytes), "yes" if s.fits else "[red]no[/red]")
    out.print(table)
    if plan.fits:
        out.print("  llama-server " + " ".join(plan.llama_args()), highlight=False)
    for note in plan.notes:
        out.print(f"  note: {note}", highlight=False)


def plan_elsewhere(model: Path, *, fleet: str | None, devices: str | None, rpc: str | None, ctx: int | None,
                   kv_type: str | None, as_json: bool) -> None:
    """`plan --rpc` (split over a pool) or `plan --fleet` (which quant fits which device)."""
    from edgepack.errors import PlanError

    if fleet and rpc:
        raise PlanError("give --fleet or --rpc, not both")
    if rpc:
        from edgepack.runtime.rpc import plan_rpc

        if model.is_dir():
            raise PlanError("--rpc plans one GGUF file over the pool")
        plan = plan_rpc(model, rpc, ctx or 4096, kv_type=kv_type or "f16")
        if as_json:
            print_json(plan.to_dict())
        else:
            _print_pool_plan(plan)
        return
    from edgepack.fleet.plan import plan_fleet

    results = plan_fleet(model, fleet, devices=devices, ctx=ctx, kv_type=kv_type)
    if as_json:
        print_json({name: r for name, r in results.items()})
        return
    for name, r in results.items():
        if not model.is_dir():
            out.print(f"[bold]{name}[/bold]: {'fits' if r.fits else 'does not fit'}, ctx {r.n_ctx}, "
                      f"ngl {r.n_gpu_layers}/{r.n_layers}, KV {r.kv_type}", highlight=False)
            continue
        out.print(f"[bold]{name}[/bold]: recommended {r.recommended or 'none'} ({r.reason})", highlight=False)
        for c in r.choices:
            out.print(f"  {c.quant:<8} {'fits' if c.fits else 'does not fit'}  ctx {c.plan.n_ctx}  "
                      f"ngl {c.plan.n_gpu_layers}", highlight=False)


def write_rpc_settings(bundle: Path, rpc: str, ctx: int | None) -> list[Path]:
    """`build --rpc`: the pool plan of every quant of the bundle and its llama-server command."""
    from edgepack.bundle import load_manifest
    from edgepack.runtime.rpc import parse_servers, plan_pool, query_devices

    servers = parse_servers(rpc)
    devices = query_devices(servers)
    manifest = load_manifest(bundle)
    plans = {f.quant: plan_pool(bundle / f.file, devices, ctx or 4096, servers=servers) for f in manifest.files}
    return write_pool_settings(bundle, plans)


def fleet_build_command(plan, *, fleet: str, devices: str | None):
    """`build --fleet`: the same build, quantized (and evaluated) by the fleet's devices."""
    from edgepack.fleet.build import fleet_build

    result = fleet_build(plan, address=fleet, devices=devices)
    for p in result.placements:
        err.print(f"  {p.kind:<9} {p.item:<28} on {p.device or '?':<12} engine {p.engine_seconds:6.2f} s  "
                  f"overhead {p.overhead_seconds:5.2f} s", highlight=False)
    return result


POOL_SETTINGS = "rpc-pool.json"


def write_pool_settings(bundle: str | Path, plans: dict) -> list[Path]:
    """Per quant: the pool plan (rpc-pool.json) and the llama-server command that serves it
    (`llama-server-rpc.<QUANT>.sh`), under the bundle's lock. Ollama cannot use llama.cpp's RPC
    backend, so there is no Modelfile for the pool; the bundle's Modelfiles stay single-device."""
    import json
    import shlex

    from edgepack.atomic import write_text_atomic
    from edgepack.bundle.record import writing_into

    bundle = Path(bundle)
    with writing_into(bundle, "build --rpc"):
        written = [write_text_atomic(bundle / POOL_SETTINGS, json.dumps(
            {quant: plan.to_dict() | {"model": Path(plan.model).name} for quant, plan in plans.items()}, indent=2) + "\n")]
        for quant, plan in plans.items():
            if not plan.fits:
                continue
            args = " ".join(shlex.quote(a) for a in plan.llama_args())
            text = ("#!/bin/sh\n# Serve this quant over the llama.cpp RPC pool planned by edgepack "
                    "(start ggml-rpc-server on each board first).\n"
                    f'exec llama-server -m "$(dirname "$0")/{Path(plan.model).name}" {args} "$@"\n')
            path = write_text_atomic(bundle / f"llama-server-rpc.{quant}.sh", text)
            path.chmod(0o755)
            written.append(path)
    return written
