"""Heavy libraries are imported where they are used, not when edgepack's modules load."""

from __future__ import annotations

import subprocess
import sys


def test_commands_that_write_no_card_do_not_load_the_hub_client():
    # huggingface_hub.hf_api (via ModelCard) costs about a second; only rendering a card needs it.
    code = ("import sys, edgepack.bundle, edgepack.cli, edgepack.pipeline; "
            "print('huggingface_hub.hf_api' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
