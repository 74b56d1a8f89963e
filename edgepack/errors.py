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


class BuildInterrupted(EdgepackError):
    """Ctrl-C during a build; nothing half-written was left behind."""

    exit_code = 130
