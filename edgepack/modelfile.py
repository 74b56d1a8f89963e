"""Ollama Modelfiles rendered from the jinja2 templates in modelfiles/.

This module knows the Modelfile format (instructions, quoting); which TEMPLATE and stop
tokens a model needs comes from its chat template.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from . import __version__
from .errors import EdgepackError
from .gguf_file import GGUFInfo
from .paths import package_data_dir


class ModelfileError(EdgepackError):
    """A value Ollama's parser would misread, or an unusable template."""


# Ollama's Go template for a plain ChatML chat template (Qwen, SmolLM, Yi, ...).
CHATML_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)
CHATML_STOPS = ("<|im_start|>", "<|im_end|>")


@dataclass
class Modelfile:
    text: str
    template_family: str | None
    stops: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def is_plain_chatml(chat_template: str | None) -> bool:
    return bool(chat_template) and "<|im_start|>" in chat_template and "<|im_end|>" in chat_template


def ollama_quote(value: str) -> str:
    """Quote a one-line value the way Ollama's parser reads it."""
    if '"""' in value:
        raise ModelfileError(f"value {value!r} contains \"\"\", which an Ollama Modelfile cannot quote")
    if "\n" in value:
        return f'"""{value}"""'
    return json.dumps(value, ensure_ascii=False)


def _ollama_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return ollama_quote(str(value))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(package_data_dir("modelfiles")),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    env.filters["ollama_quote"] = ollama_quote
    env.filters["ollama_value"] = _ollama_value
    return env


def suggested_ollama_name(model_name: str, quant: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", model_name.lower()).strip("-.") or "model"
    return f"{slug}:{quant.lower()}"


def modelfile_for_gguf(
    info: GGUFInfo,
    from_path: str,
    *,
    model_name: str,
    quant: str,
    modelfile_name: str = "Modelfile",
    system: str | None = None,
    parameters: dict | None = None,
) -> Modelfile:
    """A Modelfile for one GGUF: FROM, and TEMPLATE/stop when the chat template is plain ChatML."""
    warnings: list[str] = []
    template = None
    stops: list[str] = []
    family = None
    if is_plain_chatml(info.chat_template):
        template, stops, family = CHATML_TEMPLATE, list(CHATML_STOPS), "chatml"
    elif info.has_chat_template:
        warnings.append("chat template is not plain ChatML: TEMPLATE left out, Ollama will use the GGUF's own")
    else:
        warnings.append("the GGUF has no chat template: TEMPLATE left out")
    for value in (system or "",):
        if '"""' in value:
            raise ModelfileError('the system prompt contains """, which an Ollama Modelfile cannot quote')
    text = _environment().get_template("Modelfile.j2").render(
        model_name=model_name,
        quant=quant,
        edgepack_version=__version__,
        suggested_name=suggested_ollama_name(model_name, quant),
        modelfile_name=modelfile_name,
        from_path=from_path,
        template=template,
        stops=stops,
        parameters=parameters or {},
        system=system,
    )
    return Modelfile(text=text, template_family=family, stops=stops, warnings=warnings)
