"""Commands of the deployment stage: profile, plan, bench."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from edgepack.cli._app import JsonFlag, VerboseFlag, app, handle_errors, print_json, print_report, setup
from edgepack.cli.options import Ctx, one_thread_count, thread_counts, Threads
from edgepack.cli.fleet_cmd import DevicesOption, FleetOption, RpcOption, SharedDirOption, bench_elsewhere, plan_elsewhere

out = Console()


def _gib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f} GiB"


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f} MiB"


@app.command()
@handle_errors
def profile(
    save: Annotated[Optional[Path], typer.Option("--save", help="Also write the profile JSON to this file.")] = None,
    disk: Annotated[Path, typer.Option("--disk", help="Where the bundle goes (for free disk space).")] = Path("."),
    no_bandwidth: Annotated[bool, typer.Option("--no-bandwidth", help="Skip the short memory-bandwidth measurement.")] = False,
    as_json: JsonFlag = False,
    verbose: VerboseFlag = False,
):
    """This machine: CPU, ISA, cores, caches, memory, disk, GPUs and the llama.cpp build's backends."""
    from edgepack.machine.profile import collect_profile, save_profile

    setup(verbose)
    p = collect_profile(disk_path=disk, measure_bandwidth=not no_bandwidth)
    if save:
        save_profile(p, save)
    if as_json:
        print_json(p)
        return
    c, m = p.cpu, p.memory
    rows = [
        ("machine", f"{p.name} ({p.os})"),
        ("cpu", f"{c.vendor or '-'} {c.model or '-'} [{c.arch or '-'}]"),
        ("cores", f"{c.physical_cores} physical, {c.logical_cores} logical"
         + (f", {c.performance_cores} P + {c.efficiency_cores} E" if c.performance_cores else "")),
        ("caches", ", ".join(f"{k} {v // 1024} KiB" for k, v in c.cache_bytes.items()) or "-"),
        ("ISA (cpu)", " ".join(c.isa) or "-"),
        ("ISA (llama.cpp)", " ".join(c.llama_isa) or "-"),
        ("memory", f"{_gib(m.total_bytes)} total, {_gib(m.available_bytes)} available, swap {_gib(m.swap_total_bytes)}"),
        ("bandwidth", f"{m.bandwidth_gbps} GB/s ({m.bandwidth_source})" if m.bandwidth_gbps else "-"),
        ("disk free", f"{_gib(m.disk_free_bytes)} at {m.disk_path}" if m.disk_path else "-"),
        ("llama.cpp", f"backends {', '.join(p.llama.backends) or '-'}; GPU offload "
         f"{'yes' if p.llama.gpu_offload else 'no'}"),
    ]
    if p.board:
        rows.append(("board", p.board + (f" ({p.board_release})" if p.board_release else "")))
    for g in p.gpus or []:
        rows.append(("gpu", f"{g.name}: {_gib(g.memory_total_bytes)} total, {_gib(g.memory_free_bytes)} free"
                     + (f", cc {g.compute_capability}" if g.compute_capability else "")
                     + (f", driver {g.driver}" if g.driver else "") + (" (unified memory)" if g.unified_memory else "")))
    if not p.gpus:
        rows.append(("gpu", "none found"))
    for key, value in rows:
        out.print(f"  {key:<16} {value}", highlight=False)
    for note in p.notes:
        out.print(f"  [yellow]note:[/yellow] {note}")


@app.command()
@handle_errors
def plan(
    model: Annotated[Path, typer.Argument(help="A .gguf file or a bundle directory.")],
    target: Annotated[Optional[str], typer.Option("--target", help="A preset name or a profile JSON (default: this machine).")] = None,
    ctx: Ctx = None,
    ngl: Annotated[Optional[str], typer.Option("--ngl", help="Force n_gpu_layers (a number or 'all').")] = None,
    kv_type: Annotated[Optional[str], typer.Option("--kv-type", help="Force the KV cache type: f16, q8_0, q4_0.")] = None,
    threads: Threads = None,
    runtime: Annotated[Optional[str], typer.Option("--runtime", help="Size memory for this runtime's process: "
                                                   "llama-server (default), ollama, python.")] = None,
    list_targets: Annotated[bool, typer.Option("--list-targets", help="List the built-in target presets.")] = False,
    mmproj: Annotated[Optional[Path], typer.Option(
        help="The model's projector GGUF, counted in memory (a bundle's own projector is counted anyway).")] = None,
    fleet: FleetOption = None,
    devices: DevicesOption = None,
    rpc: RpcOption = None,
    as_json: JsonFlag = False,
):
    """Will MODEL fit on the target, with which n_gpu_layers / threads / context / KV type, and how fast."""
    from edgepack.machine.devices import PRESETS
    from edgepack.machine.plan import plan_bundle, plan_deployment

    if list_targets:
        if as_json:
            print_json({name: p.description for name, p in PRESETS.items()})
        else:
            for name, p in PRESETS.items():
                out.print(f"  {name:<22} {p.description}", highlight=False)
        return
    if fleet or rpc:
        return plan_elsewhere(model, fleet=fleet, devices=devices, rpc=rpc, ctx=ctx, kv_type=kv_type, as_json=as_json)
    threads = one_thread_count(threads)
    if model.is_dir():
        result = plan_bundle(model, target, ctx, n_gpu_layers=ngl, kv_type=kv_type, n_threads=threads,
                             runtime=runtime)
        if as_json:
            print_json(result)
            return
        table = Table(title=f"{model} on {result.target}")
        for col in ("quant", "size", "fits", "ctx", "ngl", "KV", "RAM", "VRAM", "tg t/s (pred.)", "quality"):
            table.add_column(col, justify="left" if col in ("quant", "fits", "KV") else "right")
        for c in result.choices:
            p = c.plan
            table.add_row(c.quant, _mib(c.size_bytes), "yes" if c.fits else "[red]no[/red]", str(p.n_ctx),
                          str(p.n_gpu_layers), p.kv_type, _mib(p.memory.ram_total), _mib(p.memory.vram_total),
                          f"{p.speed.tg_tps:.0f}" if p.speed.tg_tps else "-",
                          f"{c.quality_metric} {c.quality:.4g}" if c.quality is not None else "-")
        out.print(table)
        out.print(f"recommended: [bold]{result.recommended or 'none'}[/bold] ({result.reason})")
        if result.plan:
            out.print(f"Modelfile PARAMETERs: {result.plan.modelfile_parameters()}")
        return
    projector = {}
    if mmproj:  # imported only here: a plan without a projector stays quick
        from edgepack.hashing import sha256_file
        from edgepack.measure.image import projector_compute_bytes
        from edgepack.source.projector import read_projector

        projector = {"projector_bytes": read_projector(mmproj).size_bytes,
                     "projector_compute_bytes": projector_compute_bytes(mmproj, sha256_file(mmproj), model)}
    p = plan_deployment(model, target, ctx, n_gpu_layers=ngl, kv_type=kv_type, n_threads=threads, runtime=runtime,
                        **projector)
    if as_json:
        print_json(p)
        return
    _print_plan(p)


def _print_plan(p) -> None:
    m = p.memory
    status = "[green]fits[/green]" if p.fits else "[red]does not fit[/red]"
    out.print(f"[bold]{Path(p.model).name}[/bold] ({p.quant}) on [bold]{p.target}[/bold]: {status}")
    out.print(f"  n_ctx {p.n_ctx}, n_gpu_layers {p.n_gpu_layers}/{p.n_layers}, KV cache {p.kv_type}, "
              f"flash attention {'on' if p.flash_attn else 'off'}, threads {p.n_threads}, runtime {p.runtime}",
              highlight=False)
    table = Table(title="memory")
    for col in ("", "RAM", "VRAM"):
        table.add_column(col, justify="left" if not col else "right")
    for label, ram, vram in (("weights", m.weights_ram, m.weights_vram), ("CPU repack copy", m.repack_ram, 0),
                             ("vocabulary, metadata", m.model_runtime_ram, 0),
                             ("KV cache", m.kv_ram, m.kv_vram), ("compute buffers", m.compute_ram, m.compute_vram),
                             (f"{p.runtime} process", m.reserve_ram, m.reserve_vram),
                             ("projector (mmproj)", m.projector_ram, m.projector_vram),
                             ("projector compute buffer", m.projector_compute_ram, m.projector_compute_vram),
                             ("total", m.ram_total, m.vram_total), ("budget", p.ram_budget, p.vram_budget)):
        table.add_row(label, _mib(ram), _mib(vram) if vram or label in ("total", "budget") else "-")
    out.print(table)
    s = p.speed
    out.print(f"  predicted: tg {s.tg_tps or '-'} t/s, pp {s.pp_tps or '-'} t/s ({s.basis})", highlight=False)
    out.print(f"  Modelfile PARAMETERs: {p.modelfile_parameters()}", highlight=False)
    for note in p.notes:
        out.print(f"  note: {note}", highlight=False)
    for s in p.suggestions:
        out.print(f"  [yellow]would fit:[/yellow] {s}", highlight=False)


@app.command()
@handle_errors
def bench(
    models: Annotated[list[Path], typer.Argument(help="GGUF files and/or bundle directories.")],
    threads: Threads = None,
    ngl: Annotated[Optional[str], typer.Option("--ngl", help="n_gpu_layers values, e.g. 0,16,all.")] = None,
    batch: Annotated[Optional[str], typer.Option("--batch", "-b", help="Batch sizes, e.g. 128,512.")] = None,
    parallel: Annotated[Optional[str], typer.Option("--parallel", help="Parallel sequences for tg, e.g. 1,4,8.")] = None,
    n_prompt: Annotated[int, typer.Option("--n-prompt", "-p", help="Prompt tokens (pp test).")] = 512,
    n_gen: Annotated[int, typer.Option("--n-gen", "-n", help="Generated tokens (tg test).")] = 128,
    repetitions: Annotated[int, typer.Option("--repetitions", "-r", help="Timed runs per test.")] = 3,
    flash_attn: Annotated[str, typer.Option("--fa", help="Flash attention: auto, on, off.")] = "auto",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the report: .md, .csv, .json, .jsonl.")] = None,
    tune: Annotated[bool, typer.Option("--tune", help="Find the fastest threads/n_gpu_layers and write them into the bundle.")] = False,
    quant: Annotated[Optional[str], typer.Option("--quant", "-q", help="With --tune: the quant to tune on (default Q4_K_M).")] = None,
    energy: Annotated[bool, typer.Option("--energy", help="Joules per token from RAPL/NVML/Jetson/powermetrics, "
                                         "net of an idle baseline.")] = False,
    idle_seconds: Annotated[float, typer.Option("--idle-seconds", help="With --energy: how long the idle baseline "
                                                "is measured.")] = 3.0,
    sustained: Annotated[Optional[float], typer.Option("--sustained", help="Also generate for this many seconds: "
                                                       "burst and sustained t/s, clocks, temperatures.")] = None,
    cooldown: Annotated[float, typer.Option("--cooldown", help="Seconds of rest between settings "
                                            "(llama-bench's --delay).")] = 0.0,
    image: Annotated[Optional[str], typer.Option(
        help="Instead: time to first token of one image prompt (an image file, or 'generated' for a test picture).")] = None,
    mmproj: Annotated[Optional[Path], typer.Option(help="With --image and a GGUF file: its projector GGUF.")] = None,
    fleet: FleetOption = None,
    devices: DevicesOption = None,
    rpc: RpcOption = None,
    shared_dir: SharedDirOption = None,
    as_json: JsonFlag = False,
    verbose: VerboseFlag = False,
):
    """Prompt and generation speed, llama-bench style, over threads x n_gpu_layers x batch (and quants);
    with --energy joules per token, with --sustained speed once the machine is hot."""
    from edgepack.measure.bench import BenchError, bench_sweep, parse_list, tune_bundle

    setup(verbose)
    if image is not None:
        _bench_image(models, None if image == "generated" else Path(image), mmproj, threads, n_gen, as_json)
        return
    fa = {"auto": None, "on": True, "off": False}.get(flash_attn.lower(), "bad")
    if fa == "bad":
        raise BenchError(f"--fa {flash_attn!r}: use auto, on or off")
    if (sustained is not None and sustained <= 0) or cooldown < 0 or idle_seconds <= 0:
        raise BenchError("--sustained and --idle-seconds must be positive and --cooldown not negative (seconds)")
    if tune:
        if len(models) != 1 or not models[0].is_dir():
            raise BenchError("--tune needs one bundle directory (it writes the settings into its Modelfiles)")
        result = tune_bundle(models[0], quant=quant, threads=thread_counts(threads),
                             n_gpu_layers=ngl.split(",") if ngl else None,
                             batches=parse_list(batch, name="batch"))
        if as_json:
            print_json(result)
            return
        for c in result.candidates:
            out.print(f"  threads {c['n_threads']:>2}  ngl {c['n_gpu_layers']:>3}  batch {c['n_batch']:>4}  "
                      f"pp {c['pp_tps']:8.1f} t/s  tg {c['tg_tps']:7.1f} t/s  request {c['request_seconds']:.3f} s",
                      highlight=False)
        out.print(f"fastest on {result.quant}: {result.modelfile_parameters()} → written to "
                  f"{', '.join(result.modelfiles)} and manifest.json", highlight=False)
        return
    if fleet or rpc:
        return bench_elsewhere(models, fleet=fleet, devices=devices, rpc=rpc, output=output, as_json=as_json,
                               shared_dir=shared_dir, settings=dict(
            threads=thread_counts(threads), n_gpu_layers=ngl.split(",") if ngl else None,
            batches=parse_list(batch, name="batch"), parallel=parse_list(parallel, name="parallel"),
            n_prompt=n_prompt, n_gen=n_gen, repetitions=repetitions, flash_attn=fa, energy=energy,
            idle_seconds=idle_seconds, sustained=sustained, cooldown=cooldown))
    report = bench_sweep(models, threads=thread_counts(threads),
                         n_gpu_layers=ngl.split(",") if ngl else None, batches=parse_list(batch, name="batch"),
                         parallel=parse_list(parallel, name="parallel"), n_prompt=n_prompt, n_gen=n_gen,
                         repetitions=repetitions, flash_attn=fa, energy=energy, idle_seconds=idle_seconds,
                         sustained=sustained, cooldown=cooldown)
    print_report(report, output, as_json)
    if as_json and report.notes:  # the no-sensor line and busy-machine notes reach a --json user too
        Console(stderr=True).print("\n".join(report.notes), highlight=False)


def _bench_image(models: list[Path], image: Path | None, mmproj: Path | None, threads: str | None, n_gen: int,
                 as_json: bool) -> None:
    from edgepack.measure.bench import BenchError
    from edgepack.measure.image import bundle_image_prompts, image_prompt

    n_threads = (thread_counts(threads) or [None])[0]
    results = []
    for m in models:
        if m.is_dir():
            results += bundle_image_prompts(m, image, n_threads=n_threads, n_predict=n_gen)
        elif mmproj is None:
            raise BenchError(f"--image with the GGUF file {m.name} needs its projector: add --mmproj FILE")
        else:
            results.append(image_prompt(m, mmproj, image, n_threads=n_threads, n_predict=n_gen))
    if as_json:
        print_json(results)
        return
    table = Table(title="one image prompt (llama-mtmd-cli)")
    for col in ("model", "prompt tokens", "image encode ms", "prompt ms", "TTFT ms", "tg t/s", "generated"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in results:
        table.add_row(Path(r.model).name, str(r.n_prompt_tokens), f"{r.image_encode_ms:.0f}", f"{r.prompt_eval_ms:.1f}",
                      f"{r.ttft_ms:.1f}", f"{r.tg_tps:.1f}" if r.tg_tps else "-", str(r.n_generated))
    out.print(table)
