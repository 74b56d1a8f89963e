"""Evaluation texts: the built-in default (present offline everywhere) or the user's own file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .hashing import sha256_text

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


def read_text_file(path: str | Path, what: str, error: type[Exception]) -> str:
    """A user's UTF-8 text file, or `error` with one line saying what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    data = path.read_bytes()
    if not data.strip():
        raise error(f"{what} {path} is empty; give a text file with representative text")
    if b"\0" in data[:65536]:
        raise error(f"{what} {path} is binary, not text; give a UTF-8 text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text (byte {exc.start}); convert it to UTF-8") from None


def load_eval_text(path: str | Path | None) -> EvalText:
    from .evaluate import EvalError

    if path is None:
        return default_eval_text()
    return EvalText(Path(path).name, read_text_file(path, "evaluation text", EvalError))
