"""Reading text files users hand us (calibration and evaluation texts, task files): one reader,
one set of messages."""

from __future__ import annotations

from pathlib import Path


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
