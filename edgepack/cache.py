"""What edgepack keeps in its cache, and pruning it (`edgepack cache ls` / `cache prune`), like `hf cache`.

The cache root (paths.cache_root()) holds one folder per kind: 16-bit references, finished
quants, importance matrices, the reference's token distributions for evaluation, the default
model's checkpoint, the unpacked llama.cpp tree and the native tools. Each child of a kind's
folder is one entry, listed with its size and age. The toolchain and native tools of the pinned
llama.cpp are what every build runs on: they are listed but never pruned.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgepack import paths
from edgepack.errors import CacheError

KINDS = {
    "reference": "16-bit reference GGUFs",
    "quants": "finished quants, reused by rebuilds",
    "imatrix": "importance matrices",
    "eval-reference": "the reference's token distributions for eval",
    "checkpoints": "HF checkpoints edgepack rebuilt (the default model)",
    "toolchain": "unpacked llama.cpp trees",
    "native": "llama.cpp tools compiled from the pinned tree",
}
_PINNED_KINDS = ("toolchain", "native")


@dataclass
class CacheEntry(paths.PathRecord):
    kind: str
    name: str
    path: Path
    size_bytes: int
    modified: float  # newest mtime inside the entry (epoch seconds)
    pinned: bool = False  # the pinned toolchain/native tools: never pruned
    referenced_by: list[str] = field(default_factory=list)  # bundles that name it (only when bundles are given)

    @property
    def age_days(self) -> float:
        return max(0.0, (time.time() - self.modified) / 86400)

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["age_days"] = round(self.age_days, 2)
        return d


@dataclass
class CacheListing:
    root: Path
    entries: list[CacheEntry]

    @property
    def size_bytes(self) -> int:
        return sum(e.size_bytes for e in self.entries)

    def to_dict(self) -> dict:
        return {"root": str(self.root), "size_bytes": self.size_bytes, "entries": [e.to_dict() for e in self.entries]}


@dataclass
class PruneResult:
    root: Path
    dry_run: bool
    removed: list[CacheEntry]
    kept: list[CacheEntry]

    @property
    def freed_bytes(self) -> int:
        return sum(e.size_bytes for e in self.removed)

    def to_dict(self) -> dict:
        return {"root": str(self.root), "dry_run": self.dry_run, "freed_bytes": self.freed_bytes,
                "removed": [e.to_dict() for e in self.removed], "kept": [e.to_dict() for e in self.kept]}


def _walk(path: Path) -> tuple[int, float]:
    if path.is_symlink() or path.is_file():
        st = path.lstat()
        return st.st_size, st.st_mtime
    size, newest = 0, path.lstat().st_mtime
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            size += st.st_size
            newest = max(newest, st.st_mtime)
    return size, newest


def _is_pinned(kind: str, name: str) -> bool:
    from edgepack.runtime.toolchain import LLAMA_CPP_PYTHON_VERSION

    return kind in _PINNED_KINDS and f"llama-cpp-python-{LLAMA_CPP_PYTHON_VERSION}" in name


def list_cache(bundles: list[str | Path] = ()) -> CacheListing:
    """Every entry of the cache with its size and age; with `bundles`, which of them names each entry."""
    root = paths.cache_root()
    names = _bundle_strings(bundles)
    entries = []
    if root.is_dir():
        for kind_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for child in sorted(kind_dir.iterdir()):
                if child.name.startswith(".") or child.name.endswith(".lock"):
                    continue  # staging, partial files and locks belong to a running build
                size, modified = _walk(child)
                entry = CacheEntry(kind_dir.name, child.name, child, size, modified, _is_pinned(kind_dir.name, child.name))
                entry.referenced_by = [b for b, strings in names.items() if _names(entry, strings)]
                entries.append(entry)
    return CacheListing(root, entries)


def _bundle_strings(bundles) -> dict[str, set[str]]:
    """Every string and sha256 a bundle's manifest.json holds, per bundle."""
    found: dict[str, set[str]] = {}
    for bundle in bundles:
        manifest = Path(bundle) / "manifest.json"
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise CacheError(f"{bundle} is not an edgepack bundle (no readable manifest.json)") from None
        strings: set[str] = set()

        def collect(value):
            if isinstance(value, str):
                strings.add(value)
            elif isinstance(value, dict):
                for v in value.values():
                    collect(v)
            elif isinstance(value, list):
                for v in value:
                    collect(v)

        collect(data)
        found[str(bundle)] = strings
    return found


def _names(entry: CacheEntry, strings: set[str]) -> bool:
    """Does a manifest name this entry: its path, its key, or the sha256 its cache record holds?"""
    record = entry.path / "source.json"
    digest = None
    if record.is_file():
        try:
            digest = (json.loads(record.read_text()).get("file") or {}).get("sha256")
        except (OSError, ValueError, AttributeError):
            digest = None
    path = str(entry.path)
    stem = entry.name.split(".")[0]
    return any(path in s or (len(stem) >= 16 and stem in s) or (digest and s == digest) for s in strings)


def parse_age(text: str) -> float:
    """'30d', '12h', '2w', '90m', '45s' → seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    cleaned = text.strip().lower()
    try:
        return float(cleaned[:-1]) * units[cleaned[-1]] if cleaned and cleaned[-1] in units else float(cleaned) * 86400
    except ValueError:
        raise CacheError(f"cannot read the age {text!r}; write it like 30d, 12h or 2w") from None


def prune_cache(*, older_than: str | None = None, max_size: str | None = None, unreferenced: bool = False,
                bundles: list[str | Path] = (), dry_run: bool = False) -> PruneResult:
    """Remove entries older than `older_than`, then the oldest until the cache is at most `max_size`;
    with `unreferenced`, every entry none of `bundles` names. The pinned toolchain stays."""
    from edgepack.measure.report import parse_size

    if older_than is None and max_size is None and not unreferenced:
        raise CacheError("say what to prune: --older-than AGE, --max-size SIZE and/or --unreferenced BUNDLE...")
    if unreferenced and not bundles:
        raise CacheError("--unreferenced needs the bundles to keep; pass their directories")
    listing = list_cache(bundles if unreferenced else ())
    candidates = [e for e in listing.entries if not e.pinned]
    doomed: list[CacheEntry] = []
    if older_than is not None:
        limit = parse_age(older_than) / 86400
        doomed += [e for e in candidates if e.age_days > limit]
    if unreferenced:
        doomed += [e for e in candidates if not e.referenced_by and e not in doomed]
    if max_size is not None:
        budget = parse_size(max_size)
        total = listing.size_bytes - sum(e.size_bytes for e in doomed)
        for e in sorted(candidates, key=lambda e: e.modified):
            if total <= budget:
                break
            if e not in doomed:
                doomed.append(e)
                total -= e.size_bytes
    if not dry_run:
        for e in doomed:
            _remove(e.path)
    kept = [e for e in listing.entries if e not in doomed]
    return PruneResult(listing.root, dry_run, doomed, kept)


def _remove(path: Path) -> None:
    """Rename away first, so a reader sees the entry whole or not at all, then delete."""
    gone = path.with_name(f".{path.name}.pruned-{os.getpid()}")
    try:
        path.rename(gone)
    except FileNotFoundError:
        return
    if gone.is_dir() and not gone.is_symlink():
        shutil.rmtree(gone, ignore_errors=True)
    else:
        gone.unlink(missing_ok=True)
