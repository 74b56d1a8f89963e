"""Commands that measure what each quant costs: eval, report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from edgepack.cli._app import JsonFlag, VerboseFlag, app, handle_errors, print_json, setup
from edgepack.cli.options import ChunkTokens, one_thread_count, Threads

out = Console()


def eval_plan(text, ctx, chunks, tasks, no_speed, parallel, repetitions, memory_ctx, threads, ngl, flash_attn,
              budget, max_kld, lm_eval=None, lm_eval_limit=None, lm_eval_include=None, image=None, no_image=False):
    from edgepack.measure.evaluate import EvalPlan, EvalSettings
    from edgepack.measure.bench import parse_list

    return EvalPlan(
        text=str(text) if text else None,
        settings=EvalSettings(n_ctx=ctx, n_chunks=chunks, n_threads=threads, n_gpu_layers=ngl, flash_attn=flash_attn),
        tasks=tuple(str(t) for t in tasks or []), speed=not no_speed,
        parallel=tuple(parse_list(parallel, name="--parallel") or [1]), repetitions=repetitions,
        memory_contexts=tuple(parse_list(memory_ctx, name="--memory-ctx") if memory_ctx.strip() else []),
        budget=budget, max_kld=max_kld,
        lm_eval=tuple(t.strip() for t in (lm_eval or "").split(",") if t.strip()), lm_eval_limit=lm_eval_limit,
        lm_eval_include=str(lm_eval_include) if lm_eval_include else None,
        image=not no_image, image_file=None if image in (None, "generated") else str(image))


@app.command("eval")
@handle_errors
def eval_command(
    targets: Annotated[list[Path], typer.Argument(help="A bundle directory, or GGUF files (with --reference).")],
    reference: Annotated[Optional[Path], typer.Option(help="The 16-bit GGUF to compare against (a bundle knows its own).")] = None,
    text: Annotated[Optional[Path], typer.Option(help="Evaluation text (default: CPython's pydoc topics, 60k chars).")] = None,
    chunk_tokens: ChunkTokens = 512,
    chunks: Annotated[Optional[int], typer.Option(help="Chunks to score (default: all of the text, at most 100).")] = None,
    tasks: Annotated[Optional[list[Path]], typer.Option("--tasks", help="Task file (JSONL or MMLU CSV), repeatable.")] = None,
    no_speed: Annotated[bool, typer.Option("--no-speed", help="Skip the pp/tg speed measurement.")] = False,
    parallel: Annotated[str, typer.Option(help="Parallel sequences for speed, e.g. 1,4,8.")] = "1",
    repetitions: Annotated[int, typer.Option("-r", "--repetitions", help="Speed repetitions.")] = 3,
    memory_ctx: Annotated[str, typer.Option(help="Context lengths for peak memory, e.g. 512,1024,2048,8192 ('' for none).")] = "512,1024,2048",
    threads: Threads = None,
    ngl: Annotated[int, typer.Option("--ngl", help="Layers on the GPU.")] = 0,
    flash_attn: Annotated[Optional[bool], typer.Option("--fa/--no-fa", help="Flash attention (default: llama.cpp's auto).")] = None,
    budget: Annotated[Optional[str], typer.Option(help="Recommend the best quant within this size/memory, e.g. 4GB.")] = None,
    max_kld: Annotated[Optional[float], typer.Option(help="Recommend the smallest quant with KLD at most this.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Report directory (default: the bundle, or ./eval-report).")] = None,
    lm_eval: Annotated[Optional[str], typer.Option("--lm-eval", help="lm-evaluation-harness tasks, e.g. "
                                                   "hellaswag,arc_easy (datasets local or cached), run on llama-server.")] = None,
    lm_eval_limit: Annotated[Optional[int], typer.Option("--limit", help="With --lm-eval: items per task.")] = None,
    lm_eval_include: Annotated[Optional[Path], typer.Option("--lm-eval-include", help="With --lm-eval: a directory "
                                                            "of your own lm-eval task YAML files.")] = None,
    image: Annotated[Optional[str], typer.Option(help="With a bundle's projector: the picture for the image prompt's "
                                                 "time to first token (default: 'generated', a test picture).")] = None,
    no_image: Annotated[bool, typer.Option("--no-image", help="Skip the image prompt of a bundle with a projector.")] = False,
    as_json: JsonFlag = False,
    verbose: VerboseFlag = False,
):
    """Perplexity, KL divergence, task accuracy, speed and memory of every quant against its 16-bit reference."""
    from edgepack.measure.evaluate import evaluate

    setup(verbose)
    if image is not None and no_image:
        from edgepack.errors import EvalError

        raise EvalError("--image and --no-image exclude each other; give one")
    if (lm_eval_limit is not None or lm_eval_include is not None) and not lm_eval:
        from edgepack.errors import EvalError

        raise EvalError("--limit and --lm-eval-include go with --lm-eval TASKS")
    plan = eval_plan(text, chunk_tokens, chunks, tasks, no_speed, parallel, repetitions, memory_ctx,
                     one_thread_count(threads), ngl, flash_attn,
                     budget, max_kld, lm_eval, lm_eval_limit, lm_eval_include, image, no_image)
    report, written = evaluate(targets, reference=reference, plan=plan, output_dir=output)
    if as_json:
        print_json(report)
        return
    _show(report, written)


def _show(report, written) -> None:
    from rich.table import Table

    from edgepack.measure.report import table_rows

    header, cells = table_rows(report)
    keep = [i for i, h in enumerate(header) if h in ("quant", "size MiB", "bpw", "PPL", "ΔPPL %", "KLD", "same top %",
                                                    "tg t/s", "tg ×", "image TTFT ms") or h.endswith(" acc") or h.startswith("peak")]
    table = Table(title=f"{report.model} ({report.text[:40]}…)")
    for i in keep:
        table.add_column(header[i], justify="left" if i == 0 else "right")
    for row in cells:
        table.add_row(*[row[i] for i in keep])
    out.print(table)
    for line in report.recommendation:
        out.print(line)
    out.print("written: " + ", ".join(str(p) for p in written))


@app.command("report")
@handle_errors
def report_command(
    sources: Annotated[list[Path], typer.Argument(
        help="A bundle or report directory (or its report.json); with --bench, bench results to merge.")],
    bench: Annotated[bool, typer.Option(
        "--bench", help="Merge bench results (edgepack bench --json / llama-bench JSON) from many devices.")] = False,
    budget: Annotated[Optional[str], typer.Option(help="Recommend the best quant within this size/memory, e.g. 4GB.")] = None,
    max_kld: Annotated[Optional[float], typer.Option(help="Recommend the smallest quant with KLD at most this.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="With --bench: the merged table to write (.md, .csv or .json).")] = None,
    as_json: JsonFlag = False,
):
    """Re-render a bundle's evaluation report (Markdown, CSV, charts) from its report.json; or, with
    --bench, merge bench results from many devices (`edgepack report --bench orin.json laptop.json`)."""
    from edgepack.measure.report import REPORT_JSON, ReportError, load_report, parse_size, recommend, write_report

    if bench:
        _merge_bench(sources, output, as_json)
        return
    if len(sources) != 1 or not (sources[0].is_dir() or sources[0].name == REPORT_JSON):
        raise ReportError(f"{sources[0] if len(sources) == 1 else ' '.join(map(str, sources))}: give one bundle or "
                          f"report directory (or its {REPORT_JSON}); to merge bench results add --bench")
    if output is not None:
        raise ReportError("-o is for merged bench tables (with --bench); a bundle's report is written into it")
    source = sources[0]
    report = load_report(source)
    if budget or max_kld is not None:
        report.recommendation = recommend(report.rows, budget_bytes=parse_size(budget) if budget else None,
                                          max_kld=max_kld)
    directory = source if source.is_dir() else source.parent
    from edgepack.bundle.record import writing_into

    with writing_into(directory, "report"):  # a bundle's report: under its lock; read-only: one line
        written = write_report(report, directory)
    if as_json:
        print_json(report)
        return
    _show(report, written)


def _merge_bench(sources: list[Path], output: Optional[Path], as_json: bool) -> None:
    import json

    from edgepack.atomic import write_text_atomic
    from edgepack.measure.bench_report import bench_chart, bench_csv, bench_markdown, bench_notes, merge_bench_results
    from edgepack.measure.report import ReportError

    records = merge_bench_results(sources)
    if output is not None:
        if output.suffix not in (".md", ".csv", ".json"):
            raise ReportError(f"-o {output}: use a .md, .csv or .json file name")
        chart = bench_chart(records, output.with_name(output.stem + "-energy.png")) if output.suffix == ".md" else None
        render = {".md": lambda r: bench_markdown(r, notes=bench_notes(r), chart=chart.name if chart else None),
                  ".csv": bench_csv,
                  ".json": lambda r: json.dumps({"results": r}, indent=2) + "\n"}[output.suffix]
        write_text_atomic(output, render(records))
    if as_json:
        print_json({"results": records})
    else:
        typer.echo(bench_markdown(records), nl=False)
    for note in bench_notes(records):
        typer.echo(f"note: {note}", err=True)
