"""The output directory of a build: what is there now, and what of it the new bundle keeps.

A directory is a bundle only when its manifest.json is a valid edgepack manifest and everything in
it is a regular file the manifest lists or one of edgepack's own reports; anything else is refused
before any work, and nothing in it is touched. A rebuild of the same reference with the same
llama.cpp keeps every file it does not remake (each re-checked against its sha256); `replace`
starts over. Kept files are hard links into the staging directory, so keeping costs no copy and
the old bundle stays whole until the swap.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgepack.atomic import link_or_copy
from edgepack.bundle.names import MANIFEST
from edgepack.errors import EdgepackError, OutputError
from edgepack.hashing import sha256_file

if TYPE_CHECKING:  # the manifest's models are loaded only where a bundle's manifest is read
    from edgepack.bundle.manifest import BundleFile, Evaluation, Manifest, PlanRecord, Tuning

# What edgepack itself writes into a bundle besides the files a manifest names (eval, report, card).
OWN_FILES = re.compile(r"(report\.(md|json|csv)|[^/]+\.png|eval-rows\.jsonl|Modelfile[^/]*|README\.md)\Z")


@dataclass
class OutputState:
    """The output directory before the build: its mode and the bundle it holds (None: absent or empty)."""

    path: Path
    mode: int
    manifest: Manifest | None = None
    files: list[str] = field(default_factory=list)  # every name in it


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def check_output_dir(output_dir: Path, *, replace: bool = False) -> OutputState:
    """Refuse, with one line and before any work, a directory that is not (only) an edgepack bundle."""
    output_dir = Path(output_dir)
    if output_dir.is_symlink():
        raise OutputError(f"{output_dir} is a symbolic link; give the directory it points to, or another -o")
    if not output_dir.exists():
        return OutputState(output_dir, _default_mode())
    if not output_dir.is_dir():
        raise OutputError(f"{output_dir} exists and is not a directory; choose another -o")
    state = OutputState(output_dir, stat.S_IMODE(output_dir.stat().st_mode), None,
                        sorted(p.name for p in output_dir.iterdir()))
    if not state.files:
        return state
    if MANIFEST not in state.files:
        raise OutputError(f"{output_dir} is not empty and is not an edgepack bundle; choose another -o or empty it")
    from edgepack.bundle.manifest import load_manifest

    try:
        manifest = load_manifest(output_dir)
    except EdgepackError as exc:
        raise OutputError(f"{output_dir} is not an edgepack bundle (its {MANIFEST} is not valid: {exc}); nothing in it "
                          "was touched; choose another -o") from None
    listed = manifest.known_names()
    foreign = [name for name in state.files
               if not (output_dir / name).is_file() or (output_dir / name).is_symlink()
               or not (name in listed or OWN_FILES.match(name))]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputError(f"{output_dir} holds files its {MANIFEST} does not list ({shown}); nothing in it was "
                          "touched; move them away or choose another -o")
    state.manifest = None if replace else manifest
    return state


def check_writable(path: Path) -> None:
    """Probe with a real temporary file: permission bits alone lie for root and read-only mounts."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot create {path}: {parent} is not a directory; choose another -o")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write to {parent} ({exc.strerror or exc}); choose another -o") from None


def check_inside(source_path: Path, state: OutputState, replace: bool) -> None:
    """A source inside the output directory must never be deleted by the swap."""
    try:
        Path(source_path).resolve().relative_to(state.path.resolve())
    except ValueError:
        return
    if replace or state.manifest is None:
        raise OutputError(f"the source {source_path} lies inside {state.path}, which this build would replace; "
                          "move it out first or choose another -o")


def check_source_kept(source_path: Path, state: OutputState, staging: Path) -> None:
    """Last check before the swap: a source inside the old bundle is also in the new one."""
    try:
        inside = Path(source_path).resolve().relative_to(state.path.resolve())
    except ValueError:
        return
    if not (staging / inside).exists():
        raise OutputError(f"the source {source_path} lies inside {state.path} and this build would not keep it; "
                          "nothing was touched; move it out first or choose another -o")


def check_same_build(state: OutputState, reference: dict, toolchain: dict) -> None:
    """A rebuild adds to a bundle only of the same 16-bit reference made by the same llama.cpp."""
    old = state.manifest
    if old is None:
        return
    if old.reference.get("sha256") != reference["sha256"]:
        raise OutputError(f"{state.path} holds a bundle of another source ({old.source.get('spec') or old.model.get('name')}"
                          f", reference {old.reference.get('outtype')} {str(old.reference.get('sha256'))[:12]}); "
                          "use --replace to start it over, or another -o")
    mine = (toolchain["llama_cpp_python"], toolchain["llama_cpp_commit"])
    theirs = (old.toolchain.get("llama_cpp_python"), old.toolchain.get("llama_cpp_commit"))
    if mine != theirs:
        raise OutputError(f"{state.path} was built with llama-cpp-python {theirs[0]} (llama.cpp {str(theirs[1])[:7]}), "
                          f"this is {mine[0]} ({mine[1][:7]}); use --replace to start it over, or another -o")


@dataclass
class CarryOver:
    """What the new bundle takes from the old one (already linked into the staging directory)."""

    kept: list[BundleFile] = field(default_factory=list)  # in the old order; includes `reused`
    reused: set[str] = field(default_factory=set)  # requested quants whose old file is kept as is
    replaced: set[str] = field(default_factory=set)  # quants whose file changes or is gone
    evaluation: Evaluation | None = None  # the old one, when every GGUF it measured is kept as it was
    tuning: Tuning | None = None  # likewise
    plans: dict[str, PlanRecord] = field(default_factory=dict)  # the old deployment plans of kept quants
    imatrix: dict | None = None  # the old importance matrix, when a kept file was made with it
    warnings: list[str] = field(default_factory=list)


def carry_over(state: OutputState, staging: Path, wanted: dict[str, dict], imatrix_sha256: str | None) -> CarryOver:
    """Link the old bundle's files into `staging` and decide what stays.

    `wanted` maps each quant to make to the options (a dict with the imatrix's sha256) it is made
    with: an old file of that quant made with the same options is reused, any other is remade.
    """
    result = CarryOver()
    old = state.manifest
    if old is None:
        return result
    for name in state.files:
        if name != MANIFEST:
            link_or_copy(state.path / name, staging / name)
    old_imatrix = (old.imatrix or {}).get("sha256")
    for entry in old.files:
        if not (staging / entry.file).is_file():
            result.warnings.append(f"{entry.file} (listed in the old manifest) was missing; it is left out")
            result.replaced.add(entry.quant)
            continue
        if sha256_file(staging / entry.file, memo=False) != entry.sha256:
            raise OutputError(f"{state.path / entry.file} no longer matches the sha256 in its manifest (changed since "
                              "it was built); nothing was touched; move it away or use --replace")
        same = wanted.get(entry.quant) == (entry.options | {"imatrix": old_imatrix if entry.options.get("imatrix")
                                                            else None})
        if entry.quant in wanted and not same:
            result.replaced.add(entry.quant)
            for name in (entry.file, entry.modelfile):
                if name:
                    (staging / name).unlink(missing_ok=True)
            continue
        if entry.quant in wanted:
            result.reused.add(entry.quant)
        elif entry.options.get("imatrix") and imatrix_sha256 not in (None, old_imatrix):
            raise OutputError(f"{entry.file} in {state.path} was made with another importance matrix than this "
                              "build's; use --replace to start the bundle over, or another -o")
        result.kept.append(entry)
    if any(e.options.get("imatrix") for e in result.kept):
        result.imatrix = old.imatrix
    kept = {e.quant: e.sha256 for e in result.kept}
    result.plans = {q: p for q, p in old.plans.items() if q in kept}
    if old.tuning and kept.get(old.tuning.quant) and old.tuning.sha256 in (None, kept[old.tuning.quant]):
        result.tuning = old.tuning
    evaluation = old.evaluation
    if evaluation and all(kept.get(r.quant) and r.sha256 in (None, kept[r.quant])
                          for r in evaluation.results if not r.is_reference):
        result.evaluation = evaluation
    elif evaluation:
        gone = [n for n in set(evaluation.files) | {evaluation.report} if n in state.files]
        for name in gone:
            (staging / name).unlink(missing_ok=True)
        result.warnings.append("the evaluation report measured files this build remade; it was removed "
                               "(run `edgepack eval` again)")
    return result
