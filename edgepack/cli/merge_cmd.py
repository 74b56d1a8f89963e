"""`edgepack merge`: one GGUF from a split set, with llama.cpp's own llama-gguf-split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgepack.cli._app import JsonFlag, app, handle_errors, print_json


@app.command()
@handle_errors
def merge(
    first_part: Annotated[Path, typer.Argument(help="Any part of a split GGUF (name-00001-of-00003.gguf).")],
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="The merged GGUF (default: the parts' name without -0000i-of-0000N).")] = None,
    as_json: JsonFlag = False,
):
    """Merge a split GGUF into one file (for an Ollama or a tool that wants a single file)."""
    from edgepack.hashing import sha256_file
    from edgepack.source.split import merge_split, split_parts

    parts = split_parts(first_part)
    dest = merge_split(first_part, output)
    result = {"output": str(dest), "parts": [str(p) for p in parts], "size_bytes": dest.stat().st_size,
              "sha256": sha256_file(dest)}
    if as_json:
        print_json(result)
    else:
        typer.echo(f"{len(parts)} parts -> {dest} ({dest.stat().st_size / 2**20:.1f} MiB)")
