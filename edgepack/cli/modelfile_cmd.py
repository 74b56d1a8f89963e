"""`edgepack modelfile`: write an Ollama Modelfile for a GGUF, optionally `ollama create` it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from edgepack.cli._app import JsonFlag, app, handle_errors, print_json
from edgepack.cli.options import Ctx

@app.command()
@handle_errors
def modelfile(
    gguf: Annotated[Path, typer.Argument(help="The .gguf file the Modelfile points at.")],
    system: Annotated[Optional[str], typer.Option(help="SYSTEM prompt.")] = None,
    ctx: Ctx = None,
    temperature: Annotated[Optional[float], typer.Option(help="PARAMETER temperature.")] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", help="PARAMETER top_p.")] = None,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="PARAMETER top_k.")] = None,
    param: Annotated[Optional[list[str]], typer.Option(
        "--param", help="Any Ollama PARAMETER as NAME=VALUE (repeatable), e.g. num_gpu=99.")] = None,
    message: Annotated[Optional[list[str]], typer.Option(
        "--message", help="A MESSAGE as ROLE:TEXT (repeatable), ROLE one of system, user, assistant.")] = None,
    license_file: Annotated[Optional[Path], typer.Option("--license", help="File whose text becomes LICENSE.")] = None,
    source: Annotated[Optional[Path], typer.Option(
        help="The HF model directory: generation_config.json defaults, tokenizer_config.json, LICENSE.")] = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Modelfile to write (default: Modelfile beside the GGUF).")] = None,
    ollama_name: Annotated[Optional[str], typer.Option(
        "--ollama", help="Also run `ollama create NAME` and a one-prompt smoke test (or print the command).")] = None,
    allow_missing_template: Annotated[bool, typer.Option(
        help="Write the Modelfile without TEMPLATE when the chat template cannot be translated.")] = False,
    as_json: JsonFlag = False,
):
    """Write an Ollama Modelfile whose TEMPLATE and stops are proven against the model's chat template."""
    from edgepack.bundle.record import write_beside_gguf
    from edgepack.gguf_file import read_gguf
    from edgepack.chat.modelfile import (
        ModelfileError, chat_report_for_gguf, modelfile_for_gguf, parse_message, parse_parameter,
    )
    from edgepack.chat.ollama import create, parse_model_name

    if ollama_name is not None:
        parse_model_name(ollama_name)  # refuse a bad name before anything is written
    parameters = dict(parse_parameter(p) for p in param or [])
    for name, value in (("temperature", temperature), ("top_p", top_p), ("top_k", top_k)):
        if value is not None:
            parameters[name] = value
    license_text = None
    if license_file is not None:
        if not license_file.is_file():
            raise ModelfileError(f"{license_file}: no such license file")
        license_text = license_file.read_text(encoding="utf-8", errors="replace").strip()

    info = read_gguf(gguf)
    chat = chat_report_for_gguf(info, source)
    target = output or gguf.parent / "Modelfile"
    from_path = os.path.relpath(gguf.resolve(), target.resolve().parent)
    result = modelfile_for_gguf(
        info,
        from_path if from_path.startswith((".", "/")) else f"./{from_path}",
        model_name=info.name or gguf.stem,
        quant=info.file_type,
        modelfile_name=target.name,
        system=system,
        parameters=parameters,
        source_dir=source,
        license_text=license_text,
        messages=[parse_message(m) for m in message or []],
        num_ctx=ctx,
        require_template=not allow_missing_template,
        chat=chat,
    )
    write_beside_gguf(target, result.text)  # into a bundle: under its lock; read-only: one line
    created = create(ollama_name, target) if ollama_name is not None else None

    if as_json:
        print_json({
            "modelfile": str(target),
            "template_family": result.template_family,
            "template_variant": result.template_variant,
            "system_handling": result.system_handling,
            "stops": result.stops,
            "parameters": result.parameters,
            "warnings": result.warnings,
            "chat": chat.to_dict(),
            "ollama": None if created is None else {
                "command": created.command_line, "ran": created.ran, "smoke_reply": created.smoke_reply,
            },
        })
        return
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    family = f"{result.template_family} ({result.template_variant})" if result.template_family else "none (TEMPLATE left out)"
    typer.echo(f"Wrote {target}: chat template {family}, stops {', '.join(result.stops) or '-'}")
    for line in chat.summary_lines():
        typer.echo(f"chat: {line}")
    if created is not None:
        if created.ran:
            typer.echo(f"Created {created.name}; it answered {created.smoke_reply!r}")
        else:
            typer.echo(f"ollama is not installed here; run: {created.command_line}")
