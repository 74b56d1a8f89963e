"""Sources on this machine: a Hugging Face model directory or a GGUF file."""

from __future__ import annotations

import json
import re
from pathlib import Path

from edgepack.errors import SourceError
from edgepack.source.model import Source


def gguf_name(path: Path) -> str:
    stem = path.name[:-5] if path.name.lower().endswith(".gguf") else path.name
    # Drop a trailing type suffix such as -f16 / .Q4_K_M so bundle names do not stack them.
    return re.sub(r"[-_.](f32|f16|bf16|q\d\w*|iq\d\w*)$", "", stem, flags=re.I) or stem


def hf_dir_source(path: Path, spec: str) -> Source:
    config = path / "config.json"
    if not config.is_file():
        raise SourceError(f"{path} has no config.json; is it a Hugging Face model directory?")
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        raise SourceError(f"{config} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SourceError(f"{config} must hold a JSON object, not a {type(data).__name__}; "
                          "is it a Hugging Face model config?")
    name = path.resolve().name
    return Source("hf-dir", spec, path.resolve(), name, license=license_of(path, data))


def license_of(path: Path, config: dict) -> str | None:
    readme = path / "README.md"
    if readme.is_file():
        head = readme.read_text(errors="ignore")[:4000]
        match = re.search(r"^license:\s*(\S+)", head, flags=re.M)
        if match:
            return match.group(1)
    value = config.get("license")
    return value if isinstance(value, str) else None
