"""Is a bundle's GGUF still the one its manifest lists? Checked before eval and bench --tune measure it.

Fast path: `edgepack build` and `edgepack verify` remember each file's sha256 against its identity
(device, inode, size, mtime, ctime; see hashing.py). A file with the same identity is taken as
checked; any other (copied, touched, rewritten, replaced) is hashed in full again.
"""

from __future__ import annotations

from pathlib import Path

from edgepack.bundle.manifest import BundleFile
from edgepack.bundle.names import bundle_path
from edgepack.errors import VerifyError
from edgepack.hashing import recall_sha256, remember_sha256, sha256_file


def remember_verified(path: str | Path, digest: str) -> None:
    remember_sha256(path, digest)


def current_sha256(path: Path) -> str:
    """The file's sha256: remembered for this exact file, or hashed now (and remembered)."""
    known = recall_sha256(path)
    if known:
        return known
    digest = sha256_file(path, memo=False)
    remember_sha256(path, digest)
    return digest


def check_listed_file(bundle_dir: str | Path, entry: BundleFile) -> Path:
    """bundle_dir/entry.file if its bytes are the ones the manifest lists; else one line and no measuring."""
    bundle_dir = Path(bundle_dir)
    path = bundle_path(bundle_dir, entry.file)
    if not path.is_file():
        raise VerifyError(f"{path} is missing from the bundle; rebuild it (`edgepack verify {bundle_dir}` lists "
                          "what is wrong)")
    if current_sha256(path) != entry.sha256:
        raise VerifyError(f"{path} is not the file the manifest lists (sha256 differs: changed after the build); "
                          f"nothing was measured; rebuild the bundle or run `edgepack verify {bundle_dir}`")
    return path
