"""Ollama Modelfiles rendered from the jinja2 templates in modelfiles/.

This module knows the Modelfile format (instructions, quoting, parameter names); which TEMPLATE
and stop tokens a model needs comes from edgepack.chat.templates, which proves its translation
of the model's Hugging Face chat template by rendering.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import jinja2

from edgepack import __version__
from edgepack.chat.templates import ChatTemplateError, Message, SpecialTokens, translate
from edgepack.errors import ModelfileError
from edgepack.gguf_file import GGUFInfo
from edgepack.paths import package_data_dir


# Ollama's Go template for a plain ChatML chat template (Qwen, SmolLM, Yi, ...).
CHATML_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)
CHATML_STOPS = ("<|im_start|>", "<|im_end|>")

# Every PARAMETER Ollama accepts (its api.Options and runner options), with the type it parses.
OLLAMA_PARAMETERS: dict[str, type] = {
    "num_ctx": int, "num_batch": int, "num_gpu": int, "main_gpu": int, "num_thread": int,
    "use_mmap": bool, "num_keep": int, "seed": int, "num_predict": int, "top_k": int,
    "top_p": float, "min_p": float, "typical_p": float, "repeat_last_n": int,
    "temperature": float, "repeat_penalty": float, "presence_penalty": float,
    "frequency_penalty": float, "stop": str,
}
MESSAGE_ROLES = ("system", "user", "assistant")
SAMPLING_KEYS = ("temperature", "top_p", "top_k")  # read from generation_config.json
LICENSE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "COPYING")


@dataclass
class Modelfile:
    text: str
    template_family: str | None
    stops: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    template_variant: str | None = None
    system_handling: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- quoting

def _check_printable(value: str, what: str) -> None:
    # Ollama's parser silently drops non-printable characters other than spaces and newlines.
    for ch in value:
        if ch not in "\n\t" and not ch.isprintable():
            raise ModelfileError(f"the {what} contains the control character {ch!r}, which Ollama's Modelfile parser drops")


def ollama_quote(value: str, what: str = "value") -> str:
    """Quote a value the way Ollama's parser reads it back unchanged.

    One line: "value" (the parser strips the first and last quote, nothing is escaped).
    Several lines, or a value starting with two quotes: \"\"\"value\"\"\", which cannot hold \"\"\".
    """
    _check_printable(value, what)
    if "\n" not in value and not value.startswith('""'):
        return f'"{value}"'
    return ollama_block(value, what)


def ollama_block(value: str, what: str = "value") -> str:
    """A \"\"\"-quoted value (TEMPLATE, SYSTEM, LICENSE, MESSAGE)."""
    _check_printable(value, what)
    if '"""' in value:
        raise ModelfileError(f'the {what} contains """, which an Ollama Modelfile cannot quote')
    return f'"""{value}"""'


def _ollama_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return ollama_quote(str(value))


# --------------------------------------------------------------------------- parameters

def coerce_parameter(name: str, value: Any) -> Any:
    """A PARAMETER value of the type Ollama parses for `name`; ModelfileError when it is not one."""
    kind = OLLAMA_PARAMETERS.get(name)
    if kind is None:
        raise ModelfileError(f"unknown Ollama parameter {name!r} (known: {', '.join(sorted(OLLAMA_PARAMETERS))})")
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false"):
                    raise ValueError
                return value.lower() == "true"
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ModelfileError(f"parameter {name} needs a {kind.__name__} value, got {value!r}") from None


def parse_parameter(text: str) -> tuple[str, Any]:
    """`NAME=VALUE` from the command line."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ModelfileError(f"--param takes NAME=VALUE, got {text!r}")
    return name.strip(), coerce_parameter(name.strip(), value)


def parse_message(text: str) -> Message:
    """`role:text` from the command line."""
    role, sep, content = text.partition(":")
    if not sep or role.strip() not in MESSAGE_ROLES:
        raise ModelfileError(f"--message takes ROLE:TEXT with ROLE one of {', '.join(MESSAGE_ROLES)}, got {text!r}")
    return Message(role.strip(), content.strip())


def sampling_defaults(source_dir: Path | None) -> dict[str, Any]:
    """temperature/top_p/top_k from the source's generation_config.json, when it sets them."""
    if source_dir is None or not (Path(source_dir) / "generation_config.json").is_file():
        return {}
    try:
        config = json.loads((Path(source_dir) / "generation_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: coerce_parameter(k, config[k]) for k in SAMPLING_KEYS if config.get(k) is not None}


# --------------------------------------------------------------------------- source files

@dataclass
class SourceChatInfo:
    """What the Hugging Face source directory says about chatting (all optional)."""

    chat_template: str | None = None
    bos_token: str | None = None
    eos_token: str | None = None


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def read_source_chat_info(source_dir: Path | None) -> SourceChatInfo:
    """Chat template and special tokens from tokenizer_config.json / chat_template.jinja."""
    info = SourceChatInfo()
    if source_dir is None:
        return info
    source_dir = Path(source_dir)
    config_path = source_dir / "tokenizer_config.json"
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = {}
        template = config.get("chat_template")
        if isinstance(template, list):  # named templates: the "default" one is the chat template
            template = next((t.get("template") for t in template if t.get("name") == "default"), None)
        info.chat_template = template if isinstance(template, str) else None
        info.bos_token = _token_text(config.get("bos_token"))
        info.eos_token = _token_text(config.get("eos_token"))
    jinja_path = source_dir / "chat_template.jinja"
    if info.chat_template is None and jinja_path.is_file():
        info.chat_template = jinja_path.read_text(encoding="utf-8")
    return info


def read_source_license(source_dir: Path | None) -> str | None:
    """The license text shipped with the source model, when there is one."""
    if source_dir is None:
        return None
    for name in LICENSE_FILES:
        path = Path(source_dir) / name
        if path.is_file():
            return path.read_text(encoding="utf-8", errors="replace").strip() or None
    return None


def _license_from_gguf(info: GGUFInfo) -> str | None:
    license_id = info.metadata.get("general.license")
    if not isinstance(license_id, str) or not license_id:
        return None
    link = info.metadata.get("general.license.link")
    return f"{license_id}\n{link}" if isinstance(link, str) and link else license_id


def _tokenizer_adds_bos(info: GGUFInfo) -> bool:
    value = info.metadata.get("tokenizer.ggml.add_bos_token")
    if isinstance(value, bool):
        return value
    return info.metadata.get("tokenizer.ggml.model") == "llama"  # llama.cpp's default for SentencePiece


# --------------------------------------------------------------------------- rendering

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
    env.filters["ollama_block"] = ollama_block
    env.filters["ollama_value"] = _ollama_value
    return env


def suggested_ollama_name(model_name: str, quant: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", model_name.lower()).strip("-._") or "model"
    return f"{slug}:{quant.lower()}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def modelfile_for_gguf(
    info: GGUFInfo,
    from_path: str,
    *,
    model_name: str,
    quant: str,
    modelfile_name: str = "Modelfile",
    system: str | None = None,
    parameters: dict | None = None,
    source_dir: Path | None = None,
    license_text: str | None = None,
    messages: Iterable[Message] = (),
    num_ctx: int | None = None,
    num_gpu: int | None = None,
    num_thread: int | None = None,
    require_template: bool = False,
    extra_from: Iterable[str] = (),
    adapter: str | None = None,
) -> Modelfile:
    """A Modelfile for one GGUF.

    TEMPLATE and stops come from the chat template (the GGUF's, else the source's), translated
    and proven by edgepack.chat.templates; an untranslatable or missing one leaves TEMPLATE out
    with a warning, or raises ModelfileError when `require_template`. Sampling defaults come from
    the source's generation_config.json, then num_ctx/num_gpu/num_thread, then `parameters`.
    `extra_from` are further FROM lines (the other parts of a split GGUF, a projector GGUF):
    Ollama's create joins split parts into one model layer and makes a projector GGUF the
    projector layer. `adapter` is a LoRA GGUF for an ADAPTER line.
    """
    warnings: list[str] = []
    source = read_source_chat_info(source_dir)
    chat_template = info.chat_template or source.chat_template
    if not info.chat_template and source.chat_template:
        warnings.append("the GGUF carries no chat template; the source's tokenizer_config.json one was used")
    tokens = SpecialTokens(
        bos=source.bos_token or info.token(info.bos_token_id),
        eos=source.eos_token or info.token(info.eos_token_id),
    )

    translation = None
    if not chat_template:
        problem = "the GGUF has no chat template"
    else:
        try:
            translation = translate(chat_template, tokens, tokenizer_adds_bos=_tokenizer_adds_bos(info))
            ollama_block(translation.go_template, "translated template")
            problem = None
        except (ChatTemplateError, ModelfileError) as err:
            translation, problem = None, str(err)
    if problem:
        if require_template:
            raise ModelfileError(f"no Ollama TEMPLATE can be written: {problem}")
        warnings.append(f"{problem}: TEMPLATE left out, Ollama will fall back to the GGUF's own chat template")

    stops: list[str] = list(translation.stops) if translation else []
    for token_id in (info.eos_token_id, info.eot_token_id):
        token = info.token(token_id)
        if token and token not in stops:
            stops.append(token)
    for stop in stops:
        ollama_quote(stop, "stop token")

    params: dict[str, Any] = dict(sampling_defaults(source_dir))
    for name, value in (("num_ctx", num_ctx), ("num_gpu", num_gpu), ("num_thread", num_thread)):
        if value is not None:
            params[name] = coerce_parameter(name, value)
    for name, value in (parameters or {}).items():
        params[name] = coerce_parameter(name, value)
    if "stop" in params:  # an explicit stop joins the derived ones instead of being a second list
        extra = params.pop("stop")
        stops += [s for s in ([extra] if isinstance(extra, str) else extra) if s not in stops]

    if system is not None:
        ollama_block(system, "system prompt")
        if translation and translation.family and "drops system" in (translation.system_handling or ""):
            warnings.append("the chat template ignores system prompts, so SYSTEM has no effect")
    messages = list(messages)
    for m in messages:
        if m.role not in MESSAGE_ROLES:
            raise ModelfileError(f"MESSAGE role must be one of {', '.join(MESSAGE_ROLES)}, got {m.role!r}")
        ollama_block(m.content, f"{m.role} message")
    license_value = license_text if license_text is not None else (read_source_license(source_dir) or _license_from_gguf(info))
    if license_value is not None:
        ollama_block(license_value, "license")

    text = _environment().get_template("Modelfile.j2").render(
        model_name=_one_line(model_name),
        quant=quant,
        edgepack_version=__version__,
        suggested_name=suggested_ollama_name(model_name, quant),
        modelfile_name=modelfile_name,
        from_path=from_path,
        extra_from=list(extra_from),
        adapter=adapter,
        translation=translation,
        notes=[_one_line(n) for n in (translation.notes if translation else [])],
        warnings=[_one_line(w) for w in warnings],
        stops=stops,
        parameters=params,
        system=system,
        messages=messages,
        license=license_value,
    )
    return Modelfile(
        text=text,
        template_family=translation.family if translation else None,
        stops=stops,
        warnings=warnings,
        template_variant=translation.variant if translation else None,
        system_handling=translation.system_handling if translation else None,
        parameters=params,
    )
