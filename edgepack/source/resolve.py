"""Turn what the user typed (a directory, a GGUF, a hub id, nothing) into a local `Source`."""

from __future__ import annotations

import re
from pathlib import Path

from edgepack.errors import SourceError
from edgepack.gguf_file import check_gguf_header
from edgepack.source.default_model import default_source
from edgepack.source.hub import hub_source
from edgepack.source.local import gguf_name, hf_dir_source
from edgepack.source.model import Source

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_source(spec: str | None, revision: str | None = None, *, trust_remote_code: bool = False) -> Source:
    """Turn what the user typed into a local directory or GGUF file (hub downloads skip *.py unless
    `trust_remote_code`)."""
    if spec is None:
        return default_source()
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_dir():
            return hf_dir_source(path, spec)
        check_gguf_header(path)
        return Source("gguf", spec, path.resolve(), gguf_name(path))
    if HUB_ID.match(spec) and not spec.startswith((".", "/", "~")) and not spec.endswith(".gguf"):
        return hub_source(spec, revision, trust_remote_code=trust_remote_code)
    raise SourceError(f"{spec}: no such file or directory (give a Hugging Face model directory, a hub id like org/name, or a .gguf file)")
