"""Evaluation texts: the built-in default (present offline everywhere) or the user's own file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgepack.hashing import sha256_text
from edgepack.userfiles import read_text_file

DEFAULT_TEXT_CHARS = 60_000
DEFAULT_TEXT_NAME = "CPython pydoc topics (pydoc_data.topics), first 60,000 characters"


@dataclass
class EvalText:
    name: str  # said in every report
    text: str

    @property
    def sha256(self) -> str:
        return sha256_text(self.text)


def default_eval_text() -> EvalText:
    """The Python language reference's topic texts, shipped with every CPython (real English prose).

    Not the default calibration text (stdlib docstrings): calibrating on it would flatter quants.
    """
    from pydoc_data.topics import topics

    return EvalText(DEFAULT_TEXT_NAME, "\n".join(topics.values())[:DEFAULT_TEXT_CHARS])


def load_eval_text(path: str | Path | None) -> EvalText:
    from edgepack.errors import EvalError

    if path is None:
        return default_eval_text()
    return EvalText(Path(path).name, read_text_file(path, "evaluation text", EvalError))
