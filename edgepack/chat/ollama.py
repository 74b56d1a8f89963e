"""A thin adapter around the `ollama` command: check a model name, create a model, smoke-test it.

When `ollama` is not on PATH nothing is run; the result carries the exact command to run instead.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from edgepack import procs
from edgepack.errors import OllamaError

SMOKE_PROMPT = "Say hi"
SMOKE_TIMEOUT_S = 120
CREATE_TIMEOUT_S = 1800


@dataclass(frozen=True)
class OllamaName:
    host: str | None
    namespace: str | None
    model: str
    tag: str | None

    def __str__(self) -> str:
        prefix = "".join(f"{p}/" for p in (self.host, self.namespace) if p)
        return f"{prefix}{self.model}" + (f":{self.tag}" if self.tag else "")


def _valid_part(kind: str, part: str) -> bool:
    # As Ollama's name parser: first character alphanumeric or "_", then also "-" and "_",
    # "." except in a namespace, ":" only in a host (a port); 1-80 characters (host: 350).
    if not 1 <= len(part) <= (350 if kind == "host" else 80):
        return False
    if not (part[0].isascii() and (part[0].isalnum() or part[0] == "_")):
        return False
    for ch in part[1:]:
        if ch in "_-":
            continue
        if ch == "." and kind != "namespace":
            continue
        if ch == ":" and kind == "host":
            continue
        if not (ch.isascii() and (ch.isalnum() or ch == "_")):
            return False
    return True


def parse_model_name(name: str) -> OllamaName:
    """[host/][namespace/]model[:tag], validated the way `ollama create` validates it."""
    rest, tag = name, None
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        rest, tag = name[:colon], name[colon + 1:]
    parts = rest.split("/")
    if len(parts) > 3:
        raise OllamaError(f"{name!r} is not a valid Ollama model name: at most host/namespace/model:tag")
    model = parts[-1]
    namespace = parts[-2] if len(parts) >= 2 else None
    host = parts[-3] if len(parts) == 3 else None
    for kind, part in (("model", model), ("tag", tag), ("namespace", namespace), ("host", host)):
        if part is not None and not _valid_part(kind, part):
            raise OllamaError(
                f"{name!r} is not a valid Ollama model name: the {kind} {part!r} must be 1-80 characters of "
                "letters, digits, '_', '-' and '.', starting with a letter, digit or '_'"
            )
    return OllamaName(host, namespace, model, tag)


@dataclass
class CreateResult:
    name: str
    modelfile: str
    command: list[str]  # the `ollama create` command, run or to run
    ran: bool = False
    smoke_command: list[str] = field(default_factory=list)
    smoke_reply: str | None = None

    @property
    def command_line(self) -> str:
        return shlex.join(self.command)


def create_command(name: str, modelfile: Path) -> list[str]:
    return ["ollama", "create", str(parse_model_name(name)), "-f", str(modelfile)]


def create(name: str, modelfile: Path, *, run_smoke_test: bool = True) -> CreateResult:
    """`ollama create NAME -f MODELFILE` and a one-prompt smoke test when ollama is installed.

    Without ollama on PATH nothing runs and the result holds the command to run.
    """
    modelfile = Path(modelfile)
    command = create_command(name, modelfile)
    smoke = ["ollama", "run", command[2], SMOKE_PROMPT]
    result = CreateResult(name=command[2], modelfile=str(modelfile), command=command, smoke_command=smoke)
    executable = shutil.which("ollama")
    if executable is None:
        return result
    _run([executable, *command[1:]], CREATE_TIMEOUT_S, "ollama create", cwd=modelfile.parent)
    result.ran = True
    if run_smoke_test:
        reply = _run([executable, *smoke[1:]], SMOKE_TIMEOUT_S, "the smoke test (ollama run)")
        if not reply.strip():
            raise OllamaError(f"{result.name} was created but answered nothing to {SMOKE_PROMPT!r}")
        result.smoke_reply = reply.strip()
    return result


def _run(argv: list[str], timeout: int, what: str, cwd: Path | None = None) -> str:
    try:
        proc = procs.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise OllamaError(f"{what} did not finish within {timeout} s") from None
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()
        raise OllamaError(f"{what} failed: {last[-1] if last else f'exit status {proc.returncode}'}")
    return proc.stdout
