"""The `edgepack` command line: a thin layer over the Python API (see _app.py)."""

from __future__ import annotations

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
    app()
