"""Finished quants kept in the user cache, so an interrupted build resumes where it stopped.

An entry is keyed by everything that decides the file's bytes: the 16-bit reference's sha256, the
quant type, every quantize option (`QuantOptions.to_dict()`, with the imatrix given by its sha256
instead of its path) and the llama.cpp version. Quants are written in the build's staging
directory and linked (or copied) here; `entry.json` (sha256, size and mtime, quantize time, the
manifest entry) is written after the file, so an entry without one is ignored. Before reuse the
file is checked (same size and mtime as recorded, else every byte rehashed: hashing.matches_record).
A build drops the entries it used once its bundle is in place: the cache holds only the work of
builds that did not finish.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgepack import paths
from edgepack.atomic import remove_stale_partials, write_text_atomic
from edgepack.hashing import sha256_text
from edgepack.quantize.engine import QuantOptions
from edgepack.quantize.types import QuantType

ENTRY = "entry.json"


def quant_cache_dir() -> Path:
    return paths.cache_root() / "quants"


@dataclass(frozen=True)
class QuantCacheEntry:
    key: str
    quant: str

    @property
    def folder(self) -> Path:
        return quant_cache_dir() / self.key[:32]

    @property
    def gguf(self) -> Path:
        return self.folder / f"{self.quant}.gguf"

    def lookup(self) -> dict | None:
        """The recorded sha256 and seconds of a complete entry, or None."""
        try:
            record = json.loads((self.folder / ENTRY).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("key") != self.key or not self.gguf.is_file():
            return None
        return record

    def record(self, file: dict, seconds: float, entry: dict) -> None:
        """Mark the entry complete. `file` is hashing.file_record of the GGUF (sha256, size, mtime), checked
        before reuse; `entry` is the bundle's record of the file, reused without re-reading it."""
        write_text_atomic(self.folder / ENTRY, json.dumps({"key": self.key, "quant": self.quant, "file": file,
                                                           "seconds": seconds, "entry": entry}) + "\n")

    def drop(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def cache_entry(reference_sha256: str, quant: QuantType, options: QuantOptions, imatrix_sha256: str | None,
                toolchain: dict) -> QuantCacheEntry:
    settings = options.to_dict() | {"imatrix": imatrix_sha256}
    key = sha256_text("quant-v1", reference_sha256, quant.name, json.dumps(settings, sort_keys=True),
                      str(toolchain.get("llama_cpp_python")), str(toolchain.get("llama_cpp_commit")))
    return QuantCacheEntry(key, quant.name)


def remove_stale_cache_partials() -> list[Path]:
    """`.partial` files that killed builds left in the quant cache."""
    return remove_stale_partials(quant_cache_dir(), recursive=True)
