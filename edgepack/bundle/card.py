"""The bundle's model card (README.md): metadata through huggingface_hub's ModelCardData (the YAML
front matter the Hub reads), the text rendered from the manifest's typed sections with
modelfiles/model_card.md.j2."""

from __future__ import annotations

from dataclasses import asdict

import jinja2

from edgepack.bundle.manifest import Manifest
from edgepack.paths import package_data_dir

CARD_TAGS = ["gguf", "llama.cpp", "ollama", "edgepack"]


def _card_environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(package_data_dir("modelfiles")),
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["mib"] = lambda b: f"{b / 2**20:.1f}"
    env.filters["params"] = lambda n: f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"
    return env


def card_data(manifest: Manifest):
    """The card's metadata (huggingface_hub's ModelCardData): license, tags and, for a hub source, the base model."""
    from huggingface_hub import ModelCardData  # imported here: it loads huggingface_hub's whole hub client

    source = manifest.source
    license_ = source.get("license") if isinstance(source.get("license"), str) else None
    base_model = source.get("spec") if source.get("kind") == "hub" and isinstance(source.get("spec"), str) else None
    return ModelCardData(license=license_ or None, tags=list(CARD_TAGS), base_model=base_model)


def render_model_card(manifest: Manifest, *, evaluation_table: str | None = None) -> str:
    """The bundle's README.md; `evaluation_table` (Markdown) adds the measured comparison and charts."""
    from edgepack.chat.modelfile import suggested_ollama_name

    body = _card_environment().get_template("model_card.md.j2").render(
        edgepack_version=manifest.edgepack_version,
        source=manifest.source,
        toolchain=manifest.toolchain,
        reference=manifest.reference,
        model=manifest.model,
        files=[asdict(f) for f in manifest.files],
        notes=manifest.notes + manifest.warnings,
        chat_template=manifest.chat_template,
        chat=manifest.chat,
        evaluation=manifest.evaluation,
        evaluation_table=evaluation_table,
        imatrix=manifest.imatrix,
        projector=asdict(manifest.projector) if manifest.projector else None,
        adapter=asdict(manifest.adapter) if manifest.adapter else None,
        split=asdict(manifest.split) if manifest.split else None, llama_server=manifest.llama_server,
        default_modelfile=manifest.default_modelfile or "Modelfile",
        ollama_name=suggested_ollama_name(manifest.model["name"], manifest.files[0].quant).split(":")[0],
    )
    from huggingface_hub import ModelCard

    card = ModelCard(f"---\n{card_data(manifest).to_yaml()}\n---\n\n{body.lstrip()}", ignore_metadata_errors=True)
    return str(card)
