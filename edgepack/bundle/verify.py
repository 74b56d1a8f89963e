"""`edgepack verify`: re-hash every file a bundle's manifest lists and load each GGUF."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from edgepack import progress
from edgepack.bundle.manifest import load_manifest
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
class VerifyResult:
    bundle: str
    ok: bool
    files: list[FileCheck]

    def to_dict(self) -> dict:
        return asdict(self)


def verify_bundle(bundle_dir: str | Path, *, load: bool = True) -> VerifyResult:
    """Re-hash every file the manifest lists and load each GGUF with llama.cpp."""
    bundle_dir = Path(bundle_dir)
    manifest = load_manifest(bundle_dir)
    checks: list[FileCheck] = []
    with progress.step("Verifying", total=len(manifest.files)) as bar:
        for entry in manifest.files:
            path = bundle_dir / entry.file
            if not path.is_file():
                checks.append(FileCheck(entry.file, False, False, "missing"))
                bar.advance()
                continue
            ok = sha256_file(path, memo=False) == entry.sha256
            loads, error = (True, None)
            if not ok:
                loads, error = False, "sha256 mismatch"
            elif load:
                loads, error = _loads(path)
            checks.append(FileCheck(entry.file, ok, loads, error))
            bar.advance()
    checks += _companion_checks(bundle_dir, manifest, {c.file for c in checks})
    return VerifyResult(str(bundle_dir), all(c.sha256_ok and c.loads for c in checks), checks)


def _companion_checks(bundle_dir: Path, manifest, checked: set[str]) -> list[FileCheck]:
    """Projector, adapter and split parts: re-hashed (they load only with their model, checked above)."""
    from edgepack.bundle.companions import companion_files

    checks = []
    for name, digest in companion_files(manifest.extra):
        if name in checked:
            continue
        path = bundle_dir / name
        ok = path.is_file() and sha256_file(path, memo=False) == digest
        checks.append(FileCheck(name, ok, ok, None if ok else ("missing" if not path.is_file() else "sha256 mismatch")))
    return checks


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
    bad = [c for c in result.files if not (c.sha256_ok and c.loads)]
    if bad:
        first = bad[0]
        raise VerifyError(f"{len(bad)} of {len(result.files)} files failed verification; first: {first.file}: {first.error}")
