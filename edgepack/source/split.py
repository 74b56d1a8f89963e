"""Split GGUFs: write them, read them whole, merge them, with llama.cpp's own llama-gguf-split.

llama.cpp names the parts `<prefix>-00001-of-0000N.gguf` and loads the set from the first
part; the first part's metadata (`split.count`) says how many there are. Ollama's `create`
takes every part as its own FROM line and joins them into one model layer, so a bundle's
Modelfile lists them all; `edgepack merge` writes one file for tools that need one.
It lives in source/ because the source stage reads split GGUFs (whole); the bundle stage
(bundle/companions.py) splits finished quants with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edgepack import procs
from edgepack import progress
from edgepack.atomic import atomic_output
from edgepack.errors import SplitError
from edgepack.hashing import sha256_text

SPLIT_NAME = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
_SIZE = re.compile(r"^(?P<n>[1-9]\d*)(?P<unit>[MG])$")


@dataclass(frozen=True)
class SplitSettings:
    """At most `max_bytes` per part (llama-gguf-split's decimal M/G), or at most `max_tensors`."""

    max_size: str | None = None  # as the user wrote it: "4G", "500M"
    max_tensors: int | None = None

    def __post_init__(self):
        if self.max_size is not None and self.max_tensors is not None:
            raise SplitError("give either --split-max-size or --split-max-tensors, not both")
        if self.max_size is not None and not _SIZE.match(self.max_size.strip().upper()):
            raise SplitError(f"--split-max-size takes a whole number of megabytes or gigabytes like 500M or 4G, "
                             f"got {self.max_size!r}")
        if self.max_tensors is not None and self.max_tensors < 1:
            raise SplitError(f"--split-max-tensors must be at least 1, got {self.max_tensors}")

    @property
    def enabled(self) -> bool:
        return self.max_size is not None or self.max_tensors is not None

    @property
    def max_bytes(self) -> int | None:
        if self.max_size is None:
            return None
        m = _SIZE.match(self.max_size.strip().upper())
        return int(m["n"]) * (10**9 if m["unit"] == "G" else 10**6)

    def tool_args(self) -> list[str]:
        if self.max_size is not None:
            return ["--split-max-size", self.max_size.strip().upper()]
        return ["--split-max-tensors", str(self.max_tensors)]

    def to_dict(self) -> dict:
        return {"max_size": self.max_size, "max_tensors": self.max_tensors}


def is_split_part(path: Path) -> bool:
    return SPLIT_NAME.match(Path(path).name) is not None


def split_parts(path: Path) -> list[Path]:
    """All parts of the split GGUF `path` belongs to, checked to exist; SplitError names a missing one."""
    path = Path(path)
    m = SPLIT_NAME.match(path.name)
    if m is None:
        return [path]
    count = int(m["count"])
    parts = [path.with_name(f"{m['prefix']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise SplitError(f"{path.name} is part of a {count}-part split GGUF but {missing[0]} is missing "
                         f"({len(missing)} of {count} missing); put every part in {path.parent}")
    from gguf import GGUFReader

    first = GGUFReader(parts[0])
    field = first.fields.get("split.count")
    if field is not None and int(field.contents()) != count:
        raise SplitError(f"{parts[0].name} says the split has {int(field.contents())} parts but its name says {count}")
    return parts


def _gguf_split_tool() -> Path:
    from edgepack.runtime.native import build_native

    return build_native(("llama-gguf-split",)).tool("llama-gguf-split")


def _run(cmd: list[str], what: str) -> None:
    proc = procs.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        if proc.returncode < 0:
            raise KeyboardInterrupt
        lines = [ln for ln in (proc.stderr + proc.stdout).strip().splitlines() if ln.strip()]
        raise SplitError(f"llama-gguf-split could not {what}: {lines[-1] if lines else f'exit {proc.returncode}'}")


def split_gguf(path: Path, settings: SplitSettings) -> list[Path]:
    """Replace `path` by its parts `<stem>-0000i-of-0000N.gguf`; a file that fits in one part stays whole."""
    path = Path(path)
    prefix = path.with_suffix("")
    tool = _gguf_split_tool()
    with progress.step(f"Splitting {path.name} ({' '.join(settings.tool_args())})"):
        _run([str(tool), "--split", *settings.tool_args(), str(path), str(prefix)], f"split {path.name}")
    parts = sorted(path.parent.glob(f"{prefix.name}-?????-of-?????.gguf"))
    if len(parts) == 1:
        parts[0].replace(path)
        return [path]
    path.unlink()
    return split_parts(parts[0])


def merge_split(first_part: Path, dest: Path | None = None) -> Path:
    """One GGUF from a split set (llama-gguf-split --merge); default name: the prefix + .gguf."""
    first_part = Path(first_part)
    if not first_part.is_file():
        raise SplitError(f"{first_part} does not exist")
    m = SPLIT_NAME.match(first_part.name)
    if m is None:
        raise SplitError(f"{first_part.name} is not part of a split GGUF (names look like model-00001-of-00003.gguf)")
    if m["no"] != "00001":
        first_part = first_part.with_name(f"{m['prefix']}-00001-of-{m['count']}.gguf")
    split_parts(first_part)
    dest = Path(dest) if dest is not None else first_part.with_name(f"{m['prefix']}.gguf")
    if dest.exists():
        raise SplitError(f"{dest} already exists; remove it or give another output")
    tool = _gguf_split_tool()
    with atomic_output(dest) as tmp, progress.step(f"Merging {m['count'].lstrip('0')} parts into {dest.name}"):
        _run([str(tool), "--merge", str(first_part), str(tmp)], f"merge {first_part.name}")
    return dest


def merged_source(first_part: Path, cache_dir: Path) -> Path:
    """A split GGUF source read whole: merged once into the cache, keyed by its parts' contents."""
    from edgepack.hashing import sha256_file

    parts = split_parts(first_part)
    key = sha256_text("merged-split", *(sha256_file(p) for p in parts))
    dest = cache_dir / key[:16] / SPLIT_NAME.match(Path(first_part).name)["prefix"].rpartition("/")[2]
    dest = dest.with_name(dest.name + ".gguf")
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        merge_split(parts[0], dest)
    return dest
