"""The `edgepack` command line: a thin layer over the Python API (see _app.py)."""

from __future__ import annotations

import gc
import os
import sys
import threading

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
        if done.code == 130 and _native_call_running():
            # Ctrl-C while llama.cpp quantizes in its worker thread: the build has unwound and
            # removed its partial files, but the C call goes on, and interpreter teardown would
            # free the library's state under it (a segfault, seen under load, instead of exit 130)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        raise


def _native_call_running() -> bool:
    """A llama.cpp call in edgepack's worker thread (quantize.engine) has not returned."""
    return any(t.name == "llama-quantize" and t.is_alive() for t in threading.enumerate())
