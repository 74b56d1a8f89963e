"""Ollama Modelfiles rendered from the jinja2 templates in modelfiles/.

This module knows the Modelfile format (instructions, quoting, parameter names, which names
may be written into it); which TEMPLATE, RENDERER/PARSER, SYSTEM and stops a model needs comes
from the chat stage (edgepack.chat.report.ChatReport), which proves them by rendering.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import jinja2

from edgepack import __version__
from edgepack.chat.conversations import Message
from edgepack.chat.report import ChatReport, analyze_chat
from edgepack.chat.sandbox import SpecialTokens
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
    chat: ChatReport | None = None


# --------------------------------------------------------------------------- quoting

def _check_printable(value: str, what: str) -> None:
    # Ollama's parser silently drops non-printable characters other than spaces and newlines.
    for ch in value:
        if ch not in "\n\t" and not ch.isprintable():
            raise ModelfileError(f"the {what} contains the control character {ch!r}, which Ollama's Modelfile parser drops")


def plain_text(text: str) -> str:
    """License text as Ollama keeps it: page breaks (form feeds) and CRLF become newlines, other
    control characters go (standard GPL/LGPL texts carry form feeds between sections)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n").replace("\v", "\n")
    return "".join(ch for ch in text if ch in "\n\t" or ch.isprintable())


def ollama_quote(value: str, what: str = "value") -> str:
    """Quote a value the way Ollama's parser reads it back unchanged.

    One line: "value" (the parser strips the first and last quote, nothing is escaped).
    Several lines, a value starting with two quotes, or a lone quote: \"\"\"value\"\"\", which cannot hold \"\"\".
    """
    _check_printable(value, what)
    if "\n" not in value and not f'"{value}"'.startswith('"""'):  # "" or a lone " would open a block
        return f'"{value}"'
    return ollama_block(value, what)


def ollama_block(value: str, what: str = "value") -> str:
    """A \"\"\"-quoted value (TEMPLATE, SYSTEM, LICENSE, MESSAGE)."""
    _check_printable(value, what)
    if '"""' in value:
        raise ModelfileError(f'the {what} contains """, which an Ollama Modelfile cannot quote')
    return f'"""{value}"""'


def check_name(value: str, what: str) -> str:
    """A file or model name written into a Modelfile: one printable line, or ModelfileError.

    A newline in a GGUF or output name would otherwise start a second instruction (FROM ...).
    """
    if not value or any(not ch.isprintable() for ch in value) or value != value.strip():
        raise ModelfileError(f"the {what} {value!r} cannot be written into a Modelfile: use a name of printable "
                             "characters without line breaks or leading/trailing spaces")
    return value


def ollama_from(path: str) -> str:
    """FROM's value: as is when it is a plain path, else quoted (Ollama's parser unquotes it)."""
    check_name(path, "model file name")
    if any(ch in path for ch in ' "#\t') or path.startswith('"'):
        return ollama_quote(path, "model file name")
    return path


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
    add_bos_token: bool | None = None


def read_source_chat_info(source_dir: Path | None) -> SourceChatInfo:
    """Chat template and special tokens of the HF source, read as the converter reads them (SpecialVocab)."""
    if source_dir is None:
        return SourceChatInfo()
    from edgepack.source.special import hf_chat_info

    found = hf_chat_info(source_dir)
    return SourceChatInfo(found.chat_template, found.bos_token, found.eos_token, found.add_bos_token)


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
    env.filters["ollama_from"] = ollama_from
    return env


def suggested_ollama_name(model_name: str, quant: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", model_name.lower()).strip("-._") or "model"
    tag = re.sub(r"[^a-z0-9._-]+", "-", quant.lower()).strip("-._") or "latest"
    return f"{slug}:{tag}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def chat_inputs(info: GGUFInfo, source_dir: Path | None, source: SourceChatInfo | None = None,
                ) -> tuple[str | None, SpecialTokens, bool, str, list[str]]:
    """(chat template, special tokens, tokenizer adds BOS, where the template came from, warnings).

    `source`: read_source_chat_info(source_dir), when the caller has read it already."""
    warnings: list[str] = []
    source = source if source is not None else read_source_chat_info(source_dir)
    chat_template = info.chat_template or source.chat_template
    origin = "gguf" if info.chat_template else ("source" if source.chat_template else "none")
    if origin == "source":
        warnings.append("the GGUF carries no chat template; the source's tokenizer_config.json one was used")
    tokens = SpecialTokens(
        bos=source.bos_token or info.token(info.bos_token_id),
        eos=source.eos_token or info.token(info.eos_token_id),
    )
    return chat_template, tokens, _tokenizer_adds_bos(info), origin, warnings


def chat_report_for_gguf(info: GGUFInfo, source_dir: Path | None = None, *, prove_llama_cpp: bool = True) -> ChatReport:
    """The chat stage for one GGUF (the same for every quant of a model): see edgepack.chat.report."""
    chat_template, tokens, adds_bos, origin, warnings = chat_inputs(info, source_dir)
    report = analyze_chat(chat_template, tokens, tokenizer_adds_bos=adds_bos, template_source=origin,
                          prove_llama_cpp_path=prove_llama_cpp)
    report.warnings[:0] = warnings
    return report


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
    chat: ChatReport | None = None,
    extra_from: Iterable[str] = (),
    adapter: str | None = None,
) -> Modelfile:
    """A Modelfile for one GGUF.

    TEMPLATE, RENDERER/PARSER, a default SYSTEM and stops come from `chat` (the chat stage's
    report; computed here, without the llama-server proof, when not given). A template that
    cannot be translated exactly leaves TEMPLATE out with a warning, or raises ModelfileError
    when `require_template`. Sampling defaults come from the source's generation_config.json,
    then num_ctx/num_gpu/num_thread, then `parameters`. `extra_from` are further FROM lines (the
    other parts of a split GGUF, a projector GGUF): Ollama's create joins split parts into one model
    layer and makes a projector GGUF the projector layer. `adapter` is a LoRA GGUF for an ADAPTER line.
    """
    check_name(modelfile_name, "Modelfile name")
    if chat is None:
        chat = chat_report_for_gguf(info, source_dir, prove_llama_cpp=False)
    warnings: list[str] = list(chat.warnings)
    go_template = chat.go_template
    if go_template is not None:
        try:
            ollama_block(go_template, "translated template")
        except ModelfileError as err:
            go_template = None
            warnings.append(f"{err}: TEMPLATE left out")
    if go_template is None and require_template:
        go = chat.paths.get("ollama_go_template")
        why = go.how if go is not None and go.status != "exact" and not go.differences else (
            go.differences[0] if go is not None and go.differences else "no exact Go template")
        raise ModelfileError(f"no Ollama TEMPLATE can be written: {why}")
    if go_template is None and not any("TEMPLATE left out" in w for w in warnings):
        warnings.append("TEMPLATE left out: Ollama will use the GGUF's own chat template")

    stops: list[str] = list(chat.stops) if go_template is not None else []
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
        if go_template is not None and "drops system" in (chat.system_handling or ""):
            warnings.append("the chat template ignores system prompts, so SYSTEM has no effect")
    elif chat.default_system is not None:
        try:
            ollama_block(chat.default_system, "default system prompt")
            system = chat.default_system
        except ModelfileError as err:
            warnings.append(f"{err}: the default system prompt is not written as SYSTEM")
    messages = list(messages)
    for m in messages:
        if m.role not in MESSAGE_ROLES:
            raise ModelfileError(f"MESSAGE role must be one of {', '.join(MESSAGE_ROLES)}, got {m.role!r}")
        ollama_block(m.content, f"{m.role} message")
    license_value = license_text if license_text is not None else (read_source_license(source_dir) or _license_from_gguf(info))
    if license_value is not None:
        license_value = plain_text(license_value)
        ollama_block(license_value, "license")

    translation = None
    if go_template is not None:
        translation = {"family": chat.family, "variant": chat.variant, "system_handling": chat.system_handling,
                       "go_template": go_template}
    text = _environment().get_template("Modelfile.j2").render(
        model_name=_one_line(model_name),
        quant=_one_line(quant),
        edgepack_version=__version__,
        suggested_name=suggested_ollama_name(model_name, quant),
        modelfile_name=modelfile_name,
        from_path=from_path,
        extra_from=list(extra_from),
        adapter=adapter,
        translation=translation,
        chat_lines=[_one_line(line) for line in chat.summary_lines()],
        renderer=chat.renderer,
        parser=chat.parser,
        warnings=[_one_line(w) for w in warnings],
        stops=stops,
        parameters=params,
        system=system,
        messages=messages,
        license=license_value,
    )
    return Modelfile(
        text=text,
        template_family=chat.family if go_template is not None else None,
        stops=stops,
        warnings=warnings,
        template_variant=chat.variant if go_template is not None else None,
        system_handling=chat.system_handling if go_template is not None else None,
        parameters=params,
        chat=chat,
    )
