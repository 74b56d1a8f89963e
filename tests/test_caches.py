"""Caches edgepack keeps: checked before use, listed and pruned with `edgepack cache`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import run
from tiny_models import make_tiny_llama


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


@pytest.fixture()
def private_cache(tmp_path, monkeypatch):
    """An empty cache that borrows the shared toolchain and native tools (symlinks, as a user could)."""
    from edgepack import paths

    shared = paths.cache_root()
    cache = tmp_path / "cache"
    cache.mkdir()
    for kind in ("toolchain", "native"):
        if (shared / kind).is_dir():
            (cache / kind).symlink_to(shared / kind)
    monkeypatch.setenv("EDGEPACK_CACHE", str(cache))
    return cache


def test_cache_ls_and_prune(own_model, tiny_hf_dir, tmp_path, private_cache):
    import os
    import time

    for model, out in ((own_model, "a"), (tiny_hf_dir, "b")):
        result = run("build", model, "-q", "Q8_0", "-o", tmp_path / out)
        assert result.exit_code == 0, result.stderr
    listing = json.loads(run("cache", "ls", tmp_path / "a", "--json").stdout)
    refs = [e for e in listing["entries"] if e["kind"] == "reference"]
    assert len(refs) == 2
    on_disk = sum(f.stat().st_size for f in (private_cache / "reference").rglob("*") if f.is_file())
    assert sum(e["size_bytes"] for e in refs) == on_disk
    used = [e for e in refs if e["referenced_by"] == [str(tmp_path / "a")]]
    assert len(used) == 1
    assert any(e["pinned"] for e in listing["entries"] if e["kind"] == "toolchain")

    dry = json.loads(run("cache", "prune", "--unreferenced", tmp_path / "a", "--dry-run", "--json").stdout)
    assert {e["kind"] for e in dry["removed"]} >= {"reference"} and not any(e["pinned"] for e in dry["removed"])
    assert len(list((private_cache / "reference").iterdir())) == 2  # dry run: nothing removed

    pruned = json.loads(run("cache", "prune", "--unreferenced", tmp_path / "a", "--json").stdout)
    assert [e["name"] for e in pruned["removed"] if e["kind"] == "reference"] == \
        [e["name"] for e in refs if e not in used]
    assert [p.name for p in (private_cache / "reference").iterdir()] == [used[0]["name"]]
    assert (private_cache / "toolchain").exists()
    again = run("build", own_model, "-q", "Q8_0", "-o", tmp_path / "a2", "--json")
    assert json.loads(again.stdout)["manifest"]["reference"]["cached"] is True  # what bundle a uses is still there

    old = time.time() - 40 * 86400
    for f in (private_cache / "reference").rglob("*"):
        os.utime(f, (old, old))
    os.utime(private_cache / "reference" / used[0]["name"], (old, old))
    aged = json.loads(run("cache", "prune", "--older-than", "30d", "--json").stdout)
    assert [e["name"] for e in aged["removed"]] == [used[0]["name"]]

    kept = json.loads(run("cache", "prune", "--max-size", "0", "--json").stdout)["kept"]
    assert kept and all(e["pinned"] for e in kept)
    assert [e["name"] for e in json.loads(run("cache", "ls", "--json").stdout)["entries"]] == [e["name"] for e in kept]


def test_cache_prune_needs_a_rule(private_cache):
    result = run("cache", "prune")
    assert result.exit_code != 0 and "--older-than" in result.stderr and len(result.stderr.strip().splitlines()) == 1
