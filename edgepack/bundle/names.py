"""Which file names a manifest may hold: plain, printable names of regular files inside the bundle.

A manifest is input like any other (a bundle can be handed over, or edited): `file`, `modelfile`,
`default_modelfile` and the evaluation's report names are followed by verify, eval, report, plan and
bench --tune, and written by eval and bench --tune. So each must be one path component (no `/`,
`\\`, `..`, absolute path), printable (no control character or newline, which would inject a second
FROM line into a Modelfile), and on disk a regular file, or a link that stays inside the bundle.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from edgepack.errors import ManifestError

MANIFEST = "manifest.json"  # the bundle's record, at its top

if TYPE_CHECKING:
    from edgepack.bundle.manifest import Manifest

MAX_NAME = 255


def name_problem(name: str) -> str | None:
    """Why `name` is not a plain file name inside a bundle, or None."""
    if not name:
        return "is empty"
    if len(name) > MAX_NAME:
        return f"is longer than {MAX_NAME} characters"
    if not name.isprintable():
        return "holds a control character or newline"
    if "/" in name or "\\" in name:
        return "is a path, not a plain file name"
    if name in (".", "..") or name.strip() != name:
        return "is not a file name"
    if name.startswith("-"):
        return "starts with '-'"
    return None


def manifest_names(manifest: "Manifest") -> Iterator[tuple[str, str]]:
    """(field, name) for every file name the manifest holds."""
    for i, f in enumerate(manifest.files):
        yield f"files.{i}.file", f.file
        if f.modelfile is not None:
            yield f"files.{i}.modelfile", f.modelfile
    if manifest.default_modelfile is not None:
        yield "default_modelfile", manifest.default_modelfile
    if manifest.evaluation is not None:
        yield "evaluation.report", manifest.evaluation.report
        for i, name in enumerate(manifest.evaluation.files):
            yield f"evaluation.files.{i}", name
    for name, _ in manifest.companion_files():  # projector, adapter, split parts
        yield "companion file", name
    if manifest.llama_server is not None:
        yield "llama_server", manifest.llama_server


def check_manifest_names(manifest: "Manifest", where: str) -> None:
    for place, name in manifest_names(manifest):
        problem = name_problem(name)
        if problem:
            raise ManifestError(f"{where}: field {place} ({name!r}) {problem}; a bundle's files are plain names "
                                "inside it; rebuild the bundle")
    seen: set[str] = set()
    for f in manifest.files:
        if f.file in seen:
            raise ManifestError(f"{where}: {f.file!r} is listed twice; rebuild the bundle")
        seen.add(f.file)


def path_problem(bundle_dir: Path, name: str) -> str | None:
    """Why bundle_dir/name may not be read or written (None when fine, or when it does not exist)."""
    path = bundle_dir / name
    if not os.path.lexists(path):
        return None
    if path.is_symlink():
        real = Path(os.path.realpath(path))
        if real.parent != Path(os.path.realpath(bundle_dir)):
            return "is a link that leaves the bundle"
    if not path.is_file():
        return "is not a regular file"
    return None


def check_bundle_paths(bundle_dir: Path, manifest: "Manifest") -> None:
    """Refuse, before anything reads or writes, a name whose file is a link out of the bundle or not a file."""
    for place, name in manifest_names(manifest):
        problem = path_problem(bundle_dir, name)
        if problem:
            raise ManifestError(f"{bundle_dir / name} ({place}) {problem}; a bundle holds only its own regular "
                                "files; remove it or rebuild the bundle")


def bundle_path(bundle_dir: str | Path, name: str) -> Path:
    """bundle_dir/name after both checks (for callers holding a name from elsewhere)."""
    bundle_dir = Path(bundle_dir)
    problem = name_problem(name) or path_problem(bundle_dir, name)
    if problem:
        raise ManifestError(f"{name!r} in {bundle_dir} {problem}")
    return bundle_dir / name
