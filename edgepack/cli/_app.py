"""Shared pieces of the command line: the typer app, common options, output and errors.

Each command module registers its commands on `app`; a command parses options, calls one
API function, and prints its result as text or, with --json, as JSON on stdout.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Callable

import typer

from edgepack.errors import EdgepackError

app = typer.Typer(
    name="edgepack",
    help="Convert, quantize, measure and package LLMs for laptops and edge boards (llama.cpp + Ollama).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout (for scripts).")]
VerboseFlag = Annotated[bool, typer.Option("--verbose", "-v", help="Show llama.cpp's and the converter's logs.")]


def setup(verbose: bool = False) -> None:
    """Quiet llama.cpp unless -v (progress and logs go to stderr, so --json stdout stays clean)."""
    from edgepack.runtime.llama import set_llama_verbose

    set_llama_verbose(verbose)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "to_dict"):
            return _jsonable(value.to_dict())
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(_jsonable(value), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_report(report: Any, output: Path | None, as_json: bool) -> None:
    """A bench report: written to `output` when given, then printed as JSON or markdown."""
    if output:
        report.write(output)
    if as_json:
        print_json(report.to_dict())
    else:
        from rich.console import Console

        Console().print(report.to_markdown(), highlight=False)


def fail(message: str, code: int = 1) -> None:
    """One line on stderr, non-zero exit."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(fn: Callable) -> Callable:
    """Turn edgepack errors and Ctrl-C into one clear line and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgepackError as err:
            fail(str(err), err.exit_code)
        except KeyboardInterrupt:
            fail("interrupted; no partial files were kept", 130)

    return wrapper
