"""Caches edgepack keeps: checked before use, listed and pruned with `edgepack cache`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgepack.cli import app
from tiny_models import make_tiny_llama

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def own_model(tmp_path_factory) -> Path:
    """A tiny model of its own (seed 7), so corrupting its cached reference disturbs no other test."""
    return make_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-seed7", seed=7, layers=1)


def _sha(bundle: Path) -> str:
    return json.loads((bundle / "manifest.json").read_text())["files"][0]["sha256"]


def test_bit_flipped_reference_is_rebuilt(own_model, tmp_path):
    first = run("build", own_model, "-q", "Q8_0", "-o", tmp_path / "a", "--json")
    assert first.exit_code == 0, first.stderr
    reference = Path(json.loads(first.stdout)["manifest"]["reference"]["path"])
    data = bytearray(reference.read_bytes())
    data[len(data) - 1000] ^= 0x40  # one bit of a weight
    reference.write_bytes(bytes(data))

    again = run("build", own_model, "-q", "Q8_0", "-o", tmp_path / "b", "--json")
    assert again.exit_code == 0, again.stderr
    notes = [ln for ln in again.stderr.splitlines() if "recorded sha256" in ln]
    assert len(notes) == 1 and "rebuilding" in notes[0]
    assert json.loads(again.stdout)["manifest"]["reference"]["cached"] is False
    assert _sha(tmp_path / "b") == _sha(tmp_path / "a")  # the same quant as from the sound reference

    third = run("build", own_model, "-q", "Q8_0", "-o", tmp_path / "c", "--json")
    assert json.loads(third.stdout)["manifest"]["reference"]["cached"] is True
    assert "recorded sha256" not in third.stderr


def test_touched_but_unchanged_reference_is_kept(own_model, tmp_path):
    import os

    first = run("build", own_model, "-q", "Q8_0", "-o", tmp_path / "a", "--json")
    reference = Path(json.loads(first.stdout)["manifest"]["reference"]["path"])
    os.utime(reference, ns=(1, 1))  # a copy or a restore moves the mtime, not the content
    again = run("build", own_model, "-q", "Q8_0", "-o", tmp_path / "b", "--json")
    assert json.loads(again.stdout)["manifest"]["reference"]["cached"] is True
    assert "recorded sha256" not in again.stderr
