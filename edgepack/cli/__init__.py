"""The `edgepack` command line: a thin layer over the Python API (see _app.py)."""

from __future__ import annotations

from ._app import app

# Each module registers its commands on `app` when imported.
from . import build_cmd  # noqa: E402,F401  build, inspect, verify, doctor, native
from . import eval_cmd  # noqa: E402,F401  eval, report
from . import profile_cmd  # noqa: E402,F401  profile, plan, bench
from . import modelfile_cmd  # noqa: E402,F401  modelfile


def main() -> None:
    app()
