"""Commands of the foundation: build, inspect, verify, doctor, native."""

from __future__ import annotations

import shlex

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from edgepack.cli._app import JsonFlag, VerboseFlag, app, handle_errors, print_json, setup
from edgepack.cli.options import ChunkTokens, Ctx, one_thread_count, Threads
from edgepack.cli.fleet_cmd import DevicesOption, FleetOption, RpcOption, fleet_build_command, write_rpc_settings

out = Console()


@app.command()
@handle_errors
def build(
    source: Annotated[Optional[str], typer.Argument(
        help="HF model directory, hub id (org/name) or .gguf file; default: the embedded SmolLM2-135M-Instruct.")] = None,
    quant: Annotated[Optional[list[str]], typer.Option(
        "--quant", "-q", help="Quant type (repeatable), e.g. Q4_K_M, Q8_0. Default: Q4_K_M.")] = None,
    ladder: Annotated[bool, typer.Option("--ladder", help="Build the default ladder Q8_0 … Q2_K.")] = False,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Bundle directory (default: out/<model>).")] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Start the bundle over; without it a rebuild keeps the quants and reports it does not remake.")] = False,
    outtype: Annotated[str, typer.Option(help="16-bit reference type: f16, bf16, f32, or auto (bf16 for bf16 sources).")] = "f16",
    revision: Annotated[Optional[str], typer.Option(help="Hub revision (branch, tag or commit).")] = None,
    threads: Threads = None,
    pure: Annotated[bool, typer.Option(help="No K-quant mixtures: every tensor gets the base type.")] = False,
    leave_output_tensor: Annotated[bool, typer.Option(help="Keep output.weight unquantized.")] = False,
    output_tensor_type: Annotated[Optional[str], typer.Option(help="ggml type for output.weight, e.g. Q8_0.")] = None,
    token_embedding_type: Annotated[Optional[str], typer.Option(help="ggml type for token_embd.weight.")] = None,
    keep: Annotated[Optional[list[str]], typer.Option(
        "--keep", help="Keep a tensor at a type: output=Q8_0, token_embd=Q8_0, or NAME=TYPE (repeatable).")] = None,
    tensor_type: Annotated[Optional[list[str]], typer.Option(
        "--tensor-type", help="REGEX=TYPE for matching tensors, e.g. 'blk\\.(0|1)\\.ffn_down=Q6_K' (repeatable).")] = None,
    prune_layers: Annotated[Optional[str], typer.Option(help="Comma-separated layer numbers to remove.")] = None,
    calibration: Annotated[Optional[list[str]], typer.Option(
        "--calibration", help="Calibration text file(s) for an importance matrix, or 'default' for the built-in text.")] = None,
    imatrix: Annotated[Optional[Path], typer.Option(help="Reuse an importance matrix (llama.cpp imatrix GGUF).")] = None,
    imatrix_chunks: Annotated[Optional[int], typer.Option(help="Chunks of calibration text for the imatrix.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report the size each quant would have.")] = False,
    target: Annotated[Optional[str], typer.Option(
        help="Plan for a device (preset name, profile JSON, or 'this'): the Modelfiles get num_ctx/num_gpu/num_thread.")] = None,
    ctx: Ctx = None,
    evaluate: Annotated[bool, typer.Option("--eval", help="Then measure every quant (quality, speed, memory) and add the report to the bundle.")] = False,
    eval_chunks: Annotated[Optional[int], typer.Option(help="With --eval: chunks of the evaluation text.")] = None,
    eval_tasks: Annotated[Optional[list[Path]], typer.Option("--tasks", help="With --eval: task files (repeatable).")] = None,
    ollama: Annotated[Optional[str], typer.Option(
        "--ollama", help="Also run `ollama create NAME` on the bundle's Modelfile (prints the command without ollama).")] = None,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="Allow a model whose conversion runs Python code shipped with it (auto_map); fetch its *.py from the hub.")] = False,
    adapter: Annotated[Optional[Path], typer.Option(
        help="A PEFT LoRA directory for SOURCE: shipped as a LoRA GGUF beside the quants (ADAPTER, --lora).")] = None,
    merge_adapter: Annotated[bool, typer.Option(
        "--merge-adapter", help="With --adapter: merge it into the weights (transformers + peft) before converting.")] = False,
    adapter_check: Annotated[bool, typer.Option(
        "--adapter-check/--no-adapter-check",
        help="Compare base, base + adapter and transformers + peft on a probe text (loads the base in float32).")] = True,
    mmproj_type: Annotated[str, typer.Option(help="Type of a multimodal source's projector GGUF: f16 or q8_0.")] = "f16",
    mmproj: Annotated[Optional[Path], typer.Option(
        help="A projector GGUF to ship with the quants (e.g. with a GGUF source); checked against the model.")] = None,
    no_mmproj: Annotated[bool, typer.Option("--no-mmproj", help="Leave a multimodal source's projector out.")] = False,
    split_max_size: Annotated[Optional[str], typer.Option(
        help="Split each quant into parts of at most this size (500M, 4G) that llama.cpp loads as one.")] = None,
    split_max_tensors: Annotated[Optional[int], typer.Option(help="Split each quant into parts of at most N tensors.")] = None,
    reference_dir: Annotated[Optional[Path], typer.Option(
        help="Keep the 16-bit reference GGUF here instead of the cache (e.g. on a bigger disk).")] = None,
    keep_reference: Annotated[bool, typer.Option(
        "--keep-reference/--drop-reference", help="Keep the 16-bit reference cached after the build, or delete it.")] = True,
    fleet: FleetOption = None,
    devices: DevicesOption = None,
    rpc: RpcOption = None,
    as_json: JsonFlag = False,
    verbose: VerboseFlag = False,
):
    """Convert SOURCE to a 16-bit GGUF, quantize it, and write a bundle for Ollama and llama.cpp."""
    from edgepack.bundle.companions import CompanionRequest
    from edgepack.pipeline import BuildPlan, run_build
    from edgepack.source.split import SplitSettings
    from edgepack.quantize.engine import QuantOptions, parse_keep, parse_prune_layers, parse_tensor_type

    setup(verbose)
    keep_output, keep_embd, keep_patterns = parse_keep(keep or [])
    options = QuantOptions(
        nthread=one_thread_count(threads) or 0, pure=pure, leave_output_tensor=leave_output_tensor,
        output_tensor_type=keep_output or output_tensor_type, token_embedding_type=keep_embd or token_embedding_type,
        tensor_types=tuple(keep_patterns + [parse_tensor_type(t) for t in tensor_type or []]),
        prune_layers=parse_prune_layers(prune_layers),
    )
    eval_plan = None
    if evaluate:
        from edgepack.measure.evaluate import EvalPlan, EvalSettings

        eval_plan = EvalPlan(settings=EvalSettings(n_chunks=eval_chunks, n_threads=one_thread_count(threads)),
                             tasks=tuple(str(t) for t in eval_tasks or []))
    plan = BuildPlan(
        source, tuple(quant or ()), ladder=ladder, output_dir=output, outtype=outtype, revision=revision,
        options=options, calibration=tuple(calibration or ()), imatrix=imatrix, imatrix_chunks=imatrix_chunks,
        target=target, ctx=ctx, replace=replace, dry_run=dry_run, evaluate=eval_plan, ollama_name=ollama,
        trust_remote_code=trust_remote_code, reference_dir=reference_dir, keep_reference=keep_reference,
        companions=CompanionRequest(
            adapter=str(adapter) if adapter else None, merge_adapter=merge_adapter, check_adapter=adapter_check,
            mmproj_type=mmproj_type, projector=str(mmproj) if mmproj else None, no_projector=no_mmproj,
            split=SplitSettings(split_max_size, split_max_tensors)))
    fleet_result = fleet_build_command(plan, fleet=fleet, devices=devices) if fleet else None
    result = fleet_result.build if fleet_result else run_build(plan)
    if rpc and not dry_run:
        write_rpc_settings(result.bundle_dir, rpc, ctx)
    if as_json:
        print_json(fleet_result or result)
        return
    if dry_run:
        table = Table(title=f"{result.model}: sizes (dry run, nothing written)")
        for col in ("quant", "MiB", "bpw"):
            table.add_column(col, justify="left" if col == "quant" else "right")
        for size in result.sizes:
            table.add_row(size.quant, f"{size.size_bytes / 2**20:.1f}" if size.size_bytes else "?",
                          f"{size.bits_per_weight:.2f}" if size.bits_per_weight else "?")
        out.print(table)
        return
    m = result.manifest
    table = Table(title=f"{m.model['name']} → {result.bundle_dir}")
    for col in ("file", "quant", "MiB", "bpw", "seconds"):
        table.add_column(col, justify="right" if col in ("MiB", "bpw", "seconds") else "left")
    for f in m.files:
        table.add_row(f.file, f.quant, f"{f.size_bytes / 2**20:.1f}", f"{f.bits_per_weight:.2f}",
                      f"{f.seconds['quantize']:.1f}")
    out.print(table)
    ref = "cached" if m.timings["reference_cached"] else f"converted in {m.timings['convert']:.1f} s"
    out.print(f"16-bit reference: {m.reference['outtype']} ({ref}); total {m.timings['total']:.1f} s")
    if result.reused:
        out.print("not remade: " + ", ".join(f"{q} (from the {how})" for q, how in result.reused.items()))
    if m.imatrix:
        out.print(f"importance matrix: {m.imatrix['dataset']}, {m.imatrix['chunks']} chunks")
    if result.evaluation is not None:
        from edgepack.cli.eval_cmd import _show

        _show(result.evaluation, [result.bundle_dir / "report.md"])
    created = result.ollama
    if created is None:
        modelfile = shlex.quote(str(result.bundle_dir / (m.default_modelfile or "Modelfile")))  # a command to paste
        out.print(f"Ollama: ollama create <name> -f {modelfile}", markup=False, soft_wrap=True)
    elif created.ran:
        out.print(f"Ollama: created {created.name}; it answered: {(created.smoke_reply or '').strip()[:80]!r}")
    else:
        out.print(f"Ollama is not installed here; run: {created.command_line}")


@app.command()
@handle_errors
def inspect(
    path: Annotated[Path, typer.Argument(help="A .gguf file, or a bundle directory written by `edgepack build`.")],
    as_json: JsonFlag = False,
    layers: Annotated[bool, typer.Option("--layers", help="Also show tensor types per layer.")] = False,
    chat: Annotated[bool, typer.Option("--chat", help=(
        "Also prove how each runtime renders the chat template (llama.cpp Jinja, Ollama Go TEMPLATE, "
        "Ollama RENDERER/PARSER); uses llama-server when built. A bundle shows what its build proved "
        "without it."))] = False,
):
    """Show what is inside a GGUF (architecture, parameters, context, chat template, types, bits per
    weight) or a bundle (its quants, and per runtime how chat is rendered and how that was proven)."""
    from edgepack.gguf_file import read_gguf

    if path.is_dir():
        _inspect_bundle(path, as_json=as_json, prove=chat)
        return
    info = read_gguf(path, with_tokens=chat)
    report = None
    if chat:
        from edgepack.chat.modelfile import chat_report_for_gguf

        report = chat_report_for_gguf(info)
    if as_json:
        data = info.to_dict()
        if not layers:
            data.pop("layer_types")
        if report is not None:
            data["chat"] = report.to_dict()
        print_json(data)
        return
    out.print(f"[bold]{path}[/bold]")
    rows = [
        ("architecture", info.architecture),
        ("name", info.name or "-"),
        ("parameters", f"{info.n_params:,} ({info.n_params / 1e6:.1f} M)"),
        ("layers", info.n_layers),
        ("context length", info.context_length),
        ("embedding length", info.embedding_length),
        ("vocabulary", info.vocab_size),
        ("chat template", "present" if info.has_chat_template else "absent"),
        ("file type", info.file_type),
        ("bits per weight", f"{info.bits_per_weight:.2f}"),
        ("size", f"{info.size_bytes / 2**20:.1f} MiB ({info.size_bytes:,} bytes)"),
    ]
    for key, value in rows:
        out.print(f"  {key:<17} {value}")
    if report is not None:
        for line in report.summary_lines():
            out.print(f"  chat: {line}", markup=False, highlight=False, soft_wrap=True)
        for warning in report.warnings:
            out.print(f"  chat warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    table = Table(title="tensor types")
    for col in ("type", "tensors", "parameters", "MiB"):
        table.add_column(col, justify="left" if col == "type" else "right")
    for name, t in info.tensor_types.items():
        table.add_row(name, str(t.tensors), f"{t.params:,}", f"{t.bytes / 2**20:.2f}")
    out.print(table)
    if layers:
        lt = Table(title="tensor types per layer")
        lt.add_column("layer")
        lt.add_column("types")
        for group, counts in info.layer_types.items():
            lt.add_row(group, ", ".join(f"{k}×{v}" for k, v in counts.items()))
        out.print(lt)


def _inspect_bundle(bundle: Path, *, as_json: bool, prove: bool) -> None:
    """A bundle as its manifest records it; `prove` proves the chat again on its default GGUF."""
    from edgepack.bundle import MANIFEST, load_manifest
    from edgepack.chat.report import ChatReport
    from edgepack.errors import GGUFError

    if not (bundle / MANIFEST).exists():
        raise GGUFError(f"{bundle} is a directory without {MANIFEST}; give a .gguf file, or a bundle written by "
                        "`edgepack build`")
    manifest = load_manifest(bundle)
    report = ChatReport.from_dict(manifest.chat) if manifest.chat else None
    if prove and manifest.files:
        from edgepack.bundle.writer import PREFERRED_QUANT
        from edgepack.chat.modelfile import chat_report_for_gguf
        from edgepack.gguf_file import read_gguf

        default = manifest.file(PREFERRED_QUANT) or manifest.files[0]  # the GGUF `Modelfile` points at
        report = chat_report_for_gguf(read_gguf(bundle / default.file, with_tokens=True))
    files = [{"file": f.file, "quant": f.quant, "size_bytes": f.size_bytes, "bits_per_weight": f.bits_per_weight,
              "modelfile": f.modelfile} for f in manifest.files]
    if as_json:
        print_json({"bundle": str(bundle), "source": dict(manifest.source), "files": files,
                    "default_modelfile": manifest.default_modelfile,
                    "chat": report.to_dict() if report else None, "warnings": list(manifest.warnings)})
        return
    out.print(f"[bold]{bundle}[/bold]  (edgepack {manifest.edgepack_version}, {manifest.created})")
    out.print(f"  source            {manifest.source.get('spec')} ({manifest.source.get('kind')})", markup=False,
              highlight=False, soft_wrap=True)
    for f in files:  # lines, not a table: a file name is never cut
        modelfile = f" ({f['modelfile']})" if f["modelfile"] else ""
        out.print(f"  {f['quant']:<17} {f['size_bytes'] / 2**20:8.1f} MiB {f['bits_per_weight']:6.2f} bits/weight  "
                  f"{f['file']}{modelfile}", markup=False, highlight=False, soft_wrap=True)
    if report is None:
        out.print("  chat: not recorded (a bundle written before edgepack proved chat); run "
                  f"`edgepack inspect {bundle} --chat` to prove it now", markup=False, highlight=False, soft_wrap=True)
    else:
        for line in report.summary_lines():
            out.print(f"  chat: {line}", markup=False, highlight=False, soft_wrap=True)
        for warning in report.warnings:
            out.print(f"  chat warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    for warning in manifest.warnings:
        out.print(f"  warning: {warning}", markup=False, highlight=False, soft_wrap=True)


@app.command()
@handle_errors
def verify(
    bundle: Annotated[Path, typer.Argument(help="A bundle directory written by `edgepack build`.")],
    no_load: Annotated[bool, typer.Option("--no-load", help="Only check sha256, do not load the GGUFs.")] = False,
    as_json: JsonFlag = False,
    verbose: VerboseFlag = False,
):
    """Check the manifest, every GGUF's sha256 (every byte) and that it loads, every Modelfile's FROM, and unlisted files."""
    from edgepack.bundle import require_verified, verify_bundle

    setup(verbose)
    result = verify_bundle(bundle, load=not no_load)
    if as_json:
        print_json(result)
    else:
        for c in result.files:
            mark = "[green]ok[/green]" if c.sha256_ok and c.loads else f"[red]FAIL[/red] {c.error}"
            out.print(f"  {c.file}: {mark}")
        for m in result.modelfiles:
            mark = "[green]ok[/green]" if m.ok else f"[red]FAIL[/red] {m.error}"
            out.print(f"  {m.file}: {mark}")
        for name in result.unlisted:
            out.print(f"  {name}: [yellow]not listed in the manifest[/yellow]")
    if not result.ok:
        require_verified(result)
    elif not as_json:
        out.print(f"[green]{len(result.files)} GGUFs and {len(result.modelfiles)} Modelfiles verified[/green]")


@app.command()
@handle_errors
def doctor(as_json: JsonFlag = False):
    """What is installed: Python packages, the llama.cpp build and its backends, the toolchain, native tools."""
    from edgepack.runtime.doctor import diagnose

    report = diagnose()
    if as_json:
        print_json(report)
        return
    for section, values in report.to_dict().items():
        out.print(f"[bold]{section}[/bold]")
        if isinstance(values, dict):
            for k, v in values.items():
                out.print(f"  {k:<22} {v}")
        else:
            out.print(f"  {values}")


@app.command("imatrix")
@handle_errors
def imatrix_command(
    source: Annotated[Optional[str], typer.Argument(help="HF model directory, hub id or GGUF (default: the embedded model).")] = None,
    calibration: Annotated[Optional[list[str]], typer.Option(
        "--calibration", help="Calibration text file(s); default: the built-in text (Python stdlib docstrings).")] = None,
    chunks: Annotated[Optional[int], typer.Option(help="Chunks of text to process (default: 32; 16 above 1B, 8 above 10B parameters).")] = None,
    chunk_tokens: ChunkTokens = 512,
    threads: Threads = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Where to write the imatrix GGUF.")] = None,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="Allow a model whose conversion runs Python code shipped with it.")] = False,
    as_json: JsonFlag = False,
    verbose: VerboseFlag = False,
):
    """Compute llama.cpp's importance matrix from calibration text (cached, reusable with --imatrix)."""
    from edgepack.quantize.imatrix import compute_imatrix, load_calibration
    from edgepack.source import make_reference, resolve_source

    setup(verbose)
    text = load_calibration(calibration or ["default"])
    reference = make_reference(resolve_source(source, trust_remote_code=trust_remote_code),
                               trust_remote_code=trust_remote_code)
    result = compute_imatrix(reference.path, text, chunks=chunks, ctx=chunk_tokens, threads=one_thread_count(threads),
                             output=output)
    if as_json:
        print_json(result)
        return
    state = "cached" if result.cached else f"computed in {result.seconds:.1f} s"
    out.print(f"{result.path}: {result.entries} tensors, {result.chunks} chunks of {result.chunk_size} tokens "
              f"from {result.dataset!r} ({state})")


native_app = typer.Typer(help="llama.cpp command-line tools compiled from the pinned tree.", no_args_is_help=True)
app.add_typer(native_app, name="native")


@native_app.command("build")
@handle_errors
def native_build(
    tool: Annotated[Optional[list[str]], typer.Option("--tool", help="Tool to build (repeatable); default: quantize, imatrix, perplexity, bench, server.")] = None,
    backend: Annotated[Optional[str], typer.Option(help="cpu, cuda or metal (default: detected).")] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", help="Parallel compile jobs (default: all cores).")] = None,
    as_json: JsonFlag = False,
):
    """Build llama-quantize, llama-imatrix, llama-perplexity, llama-bench and llama-server, once per version and backend."""
    from edgepack.runtime.native import DEFAULT_TOOLS, build_native

    result = build_native(tuple(tool) if tool else DEFAULT_TOOLS, backend=backend, jobs=jobs)
    if as_json:
        print_json(result)
        return
    out.print(f"llama.cpp tools ({result.backend}) in {result.build_dir}:")
    for name, path in sorted(result.tools.items()):
        out.print(f"  {name:<18} {path}")
