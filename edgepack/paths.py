"""Where edgepack keeps things: one module reads the environment, everyone imports it.

EDGEPACK_CACHE overrides the cache root (default: the platform's user cache dir,
e.g. ~/.cache/edgepack). Hugging Face's own variables (HF_HOME, HF_HUB_OFFLINE, ...)
are honoured by huggingface-hub itself.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import platformdirs


def cache_root() -> Path:
    env = os.environ.get("EDGEPACK_CACHE")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("edgepack"))


def toolchain_dir() -> Path:
    """Unpacked llama.cpp trees, one per pinned llama-cpp-python version."""
    return cache_root() / "toolchain"


def reference_cache_dir() -> Path:
    """16-bit reference GGUFs, keyed by source content and toolchain version."""
    return cache_root() / "reference"


def checkpoints_dir() -> Path:
    """HF checkpoints edgepack reconstructed itself (the embedded default model)."""
    return cache_root() / "checkpoints"


def native_dir() -> Path:
    """llama.cpp command-line tools compiled from the pinned tree."""
    return cache_root() / "native"


def package_data_dir(name: str) -> Path:
    """A top-level data folder of the repo (modelfiles/), in a wheel or a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_data" / name, here.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"edgepack data folder {name!r} is missing from the installation")


class PathRecord:
    """Base of a result dataclass with a `path` field: `to_dict()` is its fields, the path as a string."""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        return d
