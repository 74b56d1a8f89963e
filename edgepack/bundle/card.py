"""The bundle's model card (README.md), rendered from the manifest with modelfiles/model_card.md.j2."""

from __future__ import annotations

from dataclasses import asdict

import jinja2

from edgepack.bundle.manifest import Manifest
from edgepack.paths import package_data_dir


def _card_environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(package_data_dir("modelfiles")),
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["mib"] = lambda b: f"{b / 2**20:.1f}"
    env.filters["params"] = lambda n: f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"
    return env


def render_model_card(manifest: Manifest, *, evaluation_table: str | None = None) -> str:
    """The bundle's README.md; `evaluation_table` (Markdown) adds the measured comparison and charts."""
    from edgepack.chat.modelfile import suggested_ollama_name

    return _card_environment().get_template("model_card.md.j2").render(
        edgepack_version=manifest.edgepack_version,
        source=manifest.source,
        toolchain=manifest.toolchain,
        reference=manifest.reference,
        model=manifest.model,
        files=[asdict(f) for f in manifest.files],
        notes=manifest.notes + manifest.warnings,
        chat_template=manifest.extra.get("chat_template"),
        evaluation=manifest.extra.get("evaluation"),
        evaluation_table=evaluation_table,
        imatrix=manifest.imatrix,
        projector=manifest.extra.get("projector"), adapter=manifest.extra.get("adapter"),
        split=manifest.extra.get("split"), llama_server=manifest.extra.get("llama_server"),
        default_modelfile=manifest.default_modelfile or "Modelfile",
        ollama_name=suggested_ollama_name(manifest.model["name"], manifest.files[0].quant).split(":")[0],
    )
