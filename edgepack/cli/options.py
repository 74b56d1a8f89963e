"""Options shared by several commands, defined once so that a name means one thing everywhere:

- `--ctx` is always the deployment context: the context length the model will run with
  (plan, build --target, modelfile's num_ctx, bench). Chunks of evaluation or calibration text
  have their own name, `--chunk-tokens` (llama-perplexity's and llama-imatrix's -c).
- `--threads` is always a comma list of CPU thread counts parsed by `thread_counts`; commands
  that run once take one value (`one_thread_count`), `bench` sweeps the list.
- `-o/--output` is always where the command writes; `--json` prints the result on stdout.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from edgepack.errors import EdgepackError

Ctx = Annotated[Optional[int], typer.Option(
    "--ctx", "-c", help="Deployment context length in tokens: what the model will run with.")]
ChunkTokens = Annotated[int, typer.Option(
    "--chunk-tokens", help="Tokens per chunk of text (llama-perplexity's and llama-imatrix's -c).")]
Threads = Annotated[Optional[str], typer.Option(
    "--threads", "-t", help="CPU threads (default: llama.cpp's choice); bench sweeps a comma list, e.g. 1,2,4.")]


def thread_counts(value: str | None) -> list[int] | None:
    """`--threads 1,2,4` -> [1, 2, 4]; None when not given."""
    if value is None or not str(value).strip():
        return None
    counts = []
    for part in str(value).split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise EdgepackError(f"--threads {value}: give positive whole numbers, e.g. 4 or 1,2,4")
        counts.append(int(part))
    return counts


def one_thread_count(value: str | None) -> int | None:
    """`--threads 4` -> 4, for commands that run once; a list is refused in one line."""
    counts = thread_counts(value)
    if counts is None:
        return None
    if len(counts) > 1:
        raise EdgepackError(f"--threads {value}: this command runs once; give one number (bench sweeps lists)")
    return counts[0]
