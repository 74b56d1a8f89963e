"""What the source stage hands on: the resolved source and its 16-bit reference GGUF (no I/O)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from edgepack.paths import PathRecord


@dataclass
class Source(PathRecord):
    kind: str  # "hf-dir", "hub", "gguf", "default"
    spec: str  # what the user typed (or the default's name)
    path: Path  # local directory or GGUF file
    name: str  # model name for file names and the card
    revision: str | None = None  # hub commit, or the default package's version
    license: str | None = None


@dataclass
class Reference(PathRecord):
    """The 16-bit GGUF every quant is made from and measured against."""

    path: Path
    outtype: str  # "F16", "BF16", "F32"
    sha256: str
    size_bytes: int
    cached: bool
    seconds: float
    cache_key: str | None = None
    dequantized_from: str | None = None  # quant type of a quantized GGUF source
    warnings: list[str] = field(default_factory=list)


def slugify(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"
