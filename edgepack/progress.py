"""One progress helper so every long step looks alike and can be silenced in one place.

Progress goes to stderr (stdout stays clean for `--json`). `set_enabled(False)` or
EDGEPACK_NO_PROGRESS=1 silences it; it is also off when stderr is not a terminal
unless EDGEPACK_PROGRESS=1 forces it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

_state = {"enabled": None}
console = Console(stderr=True)


def set_enabled(enabled: bool | None) -> None:
    _state["enabled"] = enabled


def enabled() -> bool:
    if _state["enabled"] is not None:
        return bool(_state["enabled"])
    if os.environ.get("EDGEPACK_NO_PROGRESS"):
        return False
    if os.environ.get("EDGEPACK_PROGRESS"):
        return True
    return sys.stderr.isatty()


class Step:
    """A handle on one progress task: `advance`, `update(completed=..., total=...)`."""

    def __init__(self, progress: Progress | None, task_id):
        self._progress = progress
        self._task = task_id

    def update(self, **kwargs) -> None:
        if self._progress is not None:
            self._progress.update(self._task, **kwargs)

    def advance(self, amount: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, amount)


@contextmanager
def step(description: str, total: float | None = None, *, transfer: bool = False) -> Iterator[Step]:
    """A bar for work with a known total, a spinner with elapsed time otherwise."""
    if not enabled():
        yield Step(None, None)
        return
    columns = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn()]
    if transfer:
        columns += [DownloadColumn(), TransferSpeedColumn()]
    else:
        columns += [TaskProgressColumn()]
    columns += [TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield Step(progress, task)
        if total is not None:
            progress.update(task, completed=total)


@contextmanager
def file_growth(description: str, path, expected_bytes: int | None) -> Iterator[None]:
    """A bar that follows a file being written by code we cannot instrument (llama.cpp, a subprocess)."""
    from pathlib import Path

    path = Path(path)
    with step(description, total=expected_bytes, transfer=True) as bar:
        done = threading.Event()

        def poll() -> None:
            while not done.wait(0.2):
                try:
                    bar.update(completed=path.stat().st_size)
                except OSError:
                    pass

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        try:
            yield
        finally:
            done.set()
            watcher.join()


def info(message: str) -> None:
    if enabled():
        console.print(message)


def warn(message: str) -> None:
    """Warnings always show (stderr), progress or not."""
    console.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)


def elapsed(start: float) -> float:
    return round(time.perf_counter() - start, 3)


def tqdm_class():
    """A tqdm class that draws with rich, for libraries that take one (huggingface-hub downloads)."""
    import warnings

    from tqdm import TqdmExperimentalWarning
    from tqdm.rich import tqdm_rich

    class RichTqdm(tqdm_rich):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs.pop("bar_format", None)  # a tqdm text format; rich draws its own columns
            kwargs["disable"] = kwargs.get("disable") or not enabled()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TqdmExperimentalWarning)
                super().__init__(*args, **kwargs)

    return RichTqdm
