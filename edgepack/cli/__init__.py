"""The `edgepack` command line: a thin layer over the Python API (see _app.py)."""

from __future__ import annotations

import gc
import os
import sys

from edgepack.cli._app import app

# Each module registers its commands on `app` when imported.
from edgepack.cli import build_cmd  # noqa: E402,F401  build, inspect, verify, doctor, native
from edgepack.cli import eval_cmd  # noqa: E402,F401  eval, report
from edgepack.cli import profile_cmd  # noqa: E402,F401  profile, plan, bench
from edgepack.cli import modelfile_cmd  # noqa: E402,F401  modelfile
from edgepack.cli import merge_cmd  # noqa: E402,F401  merge
from edgepack.cli import cache_cmd  # noqa: E402,F401  cache ls, cache prune
from edgepack.cli import fleet_cmd  # noqa: E402,F401  worker, fleet head/ls (and the --fleet/--rpc branches)


def main() -> None:
    try:
        app()
    except SystemExit as done:
        # The command is done and the process exits (typer always ends with SystemExit): every
        # object alive now dies with it, so the collector need not walk them all once more at
        # interpreter exit (about 0.1 s with pydantic, numpy and llama_cpp loaded). atexit
        # handlers and the module teardown still run; only that last cycle collection skips them.
        gc.freeze()
        if done.code == 130:
            # Ctrl-C: the build has unwound and removed its partial files. Leave at once: a C call
            # may still run in a worker thread (llama.cpp quantizing), and interpreter teardown
            # frees state under it or under callbacks into Python (a segfault, exit -11, seen in
            # loaded test runs, instead of 130). No edgepack atexit work is lost; children started
            # through edgepack.procs die with this process, multiprocessing's are ended here.
            _leave_now(130)
        raise


def _leave_now(code: int) -> None:
    import multiprocessing

    for child in multiprocessing.active_children():
        child.terminate()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
