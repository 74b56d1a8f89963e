"""`edgepack verify`: is this bundle exactly what its manifest says, and nothing else?

Checks, in order: the manifest (schema 1 or 2, every field's type, every file name plain and inside
the bundle); every listed GGUF (a regular file, all of its bytes hashed and compared with the
manifest's sha256, then loaded by llama.cpp); every Modelfile (exactly one FROM, naming a GGUF the
manifest lists, in the bundle; no ADAPTER; an unlisted Modelfile too); and files the manifest does not
list (an unlisted GGUF fails, any other unlisted file is reported).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack import progress
from edgepack.bundle.integrity import remember_verified
from edgepack.bundle.manifest import MANIFEST, Manifest, load_manifest
from edgepack.bundle.names import path_problem
from edgepack.errors import GGUFError, VerifyError
from edgepack.gguf_file import read_gguf
from edgepack.hashing import sha256_file


@dataclass
class FileCheck:
    file: str
    sha256_ok: bool
    loads: bool
    error: str | None = None


@dataclass
class ModelfileCheck:
    file: str
    ok: bool
    from_: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class VerifyResult:
    bundle: str
    ok: bool
    files: list[FileCheck]
    modelfiles: list[ModelfileCheck] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)  # files in the bundle the manifest does not list
    problems: list[str] = field(default_factory=list)  # what fails besides the GGUFs
    schema: int = 2  # as written; 1 was read through the migration

    def to_dict(self) -> dict:
        return asdict(self)


def verify_bundle(bundle_dir: str | Path, *, load: bool = True) -> VerifyResult:
    """Check the manifest, hash every byte of every listed GGUF (and load it), the Modelfiles, and unlisted files."""
    bundle_dir = Path(bundle_dir)
    manifest = load_manifest(bundle_dir)  # schema, types and names: a bad manifest is one line here
    checks: list[FileCheck] = []
    with progress.step("Verifying", total=len(manifest.files)) as bar:
        for entry in manifest.files:
            checks.append(_check_gguf(bundle_dir, entry.file, entry.sha256, load))
            bar.advance()
    for name, digest in manifest.companion_files():  # projector, adapter, split parts: they load with their model
        if name not in {c.file for c in checks}:
            checks.append(_check_gguf(bundle_dir, name, digest, load=False))
    unlisted = sorted(n for n in os.listdir(bundle_dir) if n not in manifest.known_names())
    extra_modelfiles = [n for n in unlisted if n.lower().startswith("modelfile")]
    modelfiles = [_check_modelfile(bundle_dir, name, manifest) for name in manifest.modelfiles() + extra_modelfiles]
    problems = [f"{m.file}: {m.error}" for m in modelfiles if not m.ok]
    problems += [f"{n}: a GGUF not listed in {MANIFEST}" for n in unlisted if n.lower().endswith(".gguf")]
    ok = all(c.sha256_ok and c.loads for c in checks) and not problems
    return VerifyResult(str(bundle_dir), ok, checks, modelfiles, unlisted, problems, _written_schema(bundle_dir))


def _check_gguf(bundle_dir: Path, name: str, sha256: str, load: bool) -> FileCheck:
    path = bundle_dir / name
    if not os.path.lexists(path):
        return FileCheck(name, False, False, "missing")
    problem = path_problem(bundle_dir, name)
    if problem:
        return FileCheck(name, False, False, problem)
    digest = sha256_file(path, memo=False)  # every byte, whatever the file is called
    if digest != sha256:
        return FileCheck(name, False, False, "sha256 mismatch")
    remember_verified(path, digest)  # eval and bench --tune's fast path (integrity.py)
    loads, error = _loads(path) if load else (True, None)
    return FileCheck(name, True, loads, error)


_TRIPLE_QUOTED = re.compile(r'"""[\s\S]*?"""')
_INSTRUCTION = re.compile(r"^\s*(FROM|ADAPTER)\s+(.*?)\s*$", re.IGNORECASE | re.MULTILINE)


def modelfile_sources(text: str) -> list[tuple[str, str]]:
    """(instruction, path) for every FROM and ADAPTER line, outside triple-quoted values (Ollama's parser)."""
    text = _TRIPLE_QUOTED.sub('""', text)
    found = []
    for m in _INSTRUCTION.finditer(text):
        value = m.group(2)
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        found.append((m.group(1).upper(), value))
    return found


def _check_modelfile(bundle_dir: Path, name: str, manifest: Manifest) -> ModelfileCheck:
    path = bundle_dir / name
    if path.is_symlink() or (os.path.lexists(path) and not path.is_file()):
        return ModelfileCheck(name, False, error="a link or not a regular file")
    if not path.is_file():
        return ModelfileCheck(name, False, error="missing")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return ModelfileCheck(name, False, error=f"unreadable ({exc})")
    sources = modelfile_sources(text)
    froms = [v for kind, v in sources if kind == "FROM"]
    adapters = [_plain(v) for kind, v in sources if kind == "ADAPTER"]
    adapter = manifest.adapter.file if manifest.adapter and manifest.adapter.file else None
    if adapters and adapters != [adapter]:
        return ModelfileCheck(name, False, froms, f"has an ADAPTER line that is not the bundle's adapter ({adapter})"
                              if adapter else "has an ADAPTER line (the bundle has no adapter)")
    entry = manifest.file_named(_plain(froms[0])) if froms else None
    # a quant's FROM lines: its split parts in order (or its one file), then optionally the projector
    model = [p.file for p in manifest.split.parts.get(entry.quant, [])] if entry and manifest.split else []
    model = model or ([entry.file] if entry else [None])
    allowed = [model] + ([model + [manifest.projector.file]] if manifest.projector else [])
    if len(froms) not in {len(a) for a in allowed}:
        need = "exactly one" if allowed == [[model[0]]] else " or ".join(str(len(a)) for a in allowed)
        return ModelfileCheck(name, False, froms, f"has {len(froms)} FROM lines; it needs {need}")
    if entry is None:
        return ModelfileCheck(name, False, froms, f"FROM {froms[0]} is not a GGUF the manifest lists")
    if [_plain(f) for f in froms] not in allowed:
        return ModelfileCheck(name, False, froms, f"FROM lines {froms} are not {entry.quant}'s files in order")
    return ModelfileCheck(name, True, froms)


def _plain(value: str) -> str:
    return value[2:] if value.startswith("./") else value


def _written_schema(bundle_dir: Path) -> int:
    try:
        schema = json.loads((bundle_dir / MANIFEST).read_text(encoding="utf-8")).get("schema", 1)
    except (OSError, ValueError, AttributeError):
        return 0
    return schema if isinstance(schema, int) else 0


def _loads(path: Path) -> tuple[bool, str | None]:
    from edgepack.runtime.llama import load_model

    try:
        read_gguf(path)
        with load_model(path, n_ctx=64, n_batch=64, n_gpu_layers=0) as llm:
            tokens = llm.tokenize(b"Hello", add_bos=True)
            llm.eval(tokens)
        return True, None
    except GGUFError as exc:
        return False, str(exc)
    except Exception as exc:  # llama.cpp's loader raises ValueError/RuntimeError
        return False, f"llama.cpp could not load it ({exc})"


def require_verified(result: VerifyResult) -> None:
    bad = [f"{c.file}: {c.error}" for c in result.files if not (c.sha256_ok and c.loads)] + result.problems
    if bad:
        raise VerifyError(f"{len(bad)} check(s) failed verification; first: {bad[0]}")
