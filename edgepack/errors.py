"""One family of errors whose message is the single line a user sees.

The CLI catches `EdgepackError` once, prints `error: <message>` and exits non-zero.
Messages say what is wrong and what to do about it.
"""

from __future__ import annotations


class EdgepackError(Exception):
    """Base class: `str(err)` is a complete, one-line, user-facing message."""

    exit_code = 1

    def __init__(self, message: str):
        # Keep it one line whatever the caller passed in.
        super().__init__(" ".join(str(message).split()))


class SourceError(EdgepackError):
    """The model source is missing, unreadable or not a model."""


class HubError(SourceError):
    """A hub id could not be resolved (offline, unknown repo, gated...)."""


class UnsupportedArchitectureError(SourceError):
    """The pinned llama.cpp converter does not know this architecture."""


class RemoteCodeError(SourceError):
    """Converting the source would run Python code shipped with it, and that was not allowed."""


class QuantError(EdgepackError):
    """Unknown quant name, or a quant that cannot be made here."""


class GGUFError(EdgepackError):
    """A file that is not GGUF, or is truncated or corrupt."""


class OutputError(EdgepackError):
    """The output directory is unwritable, full, or would be damaged."""


class ToolchainError(EdgepackError):
    """The pinned llama.cpp toolchain could not be fetched, built or run."""


class VerifyError(EdgepackError):
    """A bundle failed verification (checksum mismatch, unloadable GGUF)."""


class ManifestError(EdgepackError):
    """A manifest.json of the wrong shape or schema, or naming a file outside its bundle."""


class BuildInterrupted(EdgepackError):
    """Ctrl-C during a build; nothing half-written was left behind."""

    exit_code = 130


class LlamaRuntimeError(EdgepackError):
    """llama.cpp could not load a model or make a context."""


class CalibrationError(EdgepackError):
    """Unusable calibration text or an importance matrix that does not fit the model."""


class PlanError(EdgepackError):
    """A plan that cannot be made: bad context, too many GPU layers, unknown KV type."""


class ProfileError(EdgepackError):
    """A machine profile JSON of the wrong shape, or an unknown target."""


class ModelfileError(EdgepackError):
    """A value Ollama's parser would misread, or an unusable template."""


class ChatTemplateError(EdgepackError):
    """A chat template that cannot be rendered or translated for Ollama."""


class GoTemplateError(ChatTemplateError):
    pass


class OllamaError(EdgepackError):
    """A model name Ollama would refuse, or an `ollama` command that failed."""


class ReportError(EdgepackError):
    """A report that cannot be read or made."""


class BenchError(EdgepackError):
    """A benchmark that cannot run: bad settings, a model llama.cpp cannot load."""


class EvalError(EdgepackError):
    """Unusable evaluation text or settings."""


class TaskError(EdgepackError):
    """A task file that cannot be read; the message names the file and line."""


class ProjectorError(SourceError):
    """A vision/audio projector that cannot be made, or one made for another model."""


class AdapterError(SourceError):
    """A LoRA adapter that cannot be read, converted or merged, or one made for another base."""


class SplitError(EdgepackError):
    """A split GGUF with a missing or foreign part, or split settings that make no sense."""


class CacheError(EdgepackError):
    """A cache listing or prune request that cannot be carried out as asked."""


class FleetError(EdgepackError):
    """A Ray fleet that cannot be reached, joined or used: no Ray, a bad address, no such device."""


class RpcError(EdgepackError):
    """A llama.cpp RPC pool that cannot be planned or run: a server that does not answer, no RPC build."""
