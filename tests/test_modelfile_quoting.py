"""Property tests: every value edgepack quotes into a Modelfile reads back unchanged through a parser
written from Ollama's rules; a value it refuses is one Ollama could not carry."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edgepack.chat.modelfile import ollama_block, ollama_quote
from edgepack.errors import ModelfileError
from ollama_parser import parse

QUOTE_HEAVY = st.text(alphabet=st.sampled_from(['"', "a", " ", "\n", "\t", "#", "\\", "é"]), max_size=30)
ANY_TEXT = st.one_of(st.text(max_size=60), QUOTE_HEAVY)
BOUND = settings(max_examples=400, deadline=None)


def _unrepresentable(value: str) -> bool:
    return '"""' in value or any(ch not in "\n\t" and not ch.isprintable() for ch in value)


def _written(write, value: str) -> str | None:
    """`write(value)` (ollama_quote or ollama_block); None where it refuses, which it may only for what
    a Modelfile cannot hold."""
    try:
        return write(value, "test value")
    except ModelfileError:
        assert _unrepresentable(value)
        return None


def test_parser_reads_ollamas_own_examples():
    text = 'FROM ./m.gguf\n# a comment\nPARAMETER stop "<|im_end|>"\nSYSTEM """two\nlines"""\nMESSAGE user hi there\n'
    assert parse(text) == [("model", "./m.gguf"), ("stop", "<|im_end|>"), ("system", "two\nlines"),
                           ("message", "user: hi there")]


@BOUND
@given(ANY_TEXT)
def test_quoted_values_read_back_unchanged(value):
    quoted = _written(ollama_quote, value)
    if quoted is None:
        return
    assert parse(f"FROM ./m.gguf\nPARAMETER stop {quoted}\nSYSTEM {quoted}\n") == [
        ("model", "./m.gguf"), ("stop", value), ("system", value)]


@BOUND
@given(ANY_TEXT, st.sampled_from(["TEMPLATE", "LICENSE", "SYSTEM"]))
def test_blocks_read_back_unchanged(value, command):
    block = _written(ollama_block, value)
    if block is None:
        return
    assert parse(f"{command} {block}\nMESSAGE assistant {block}\n") == [
        (command.lower(), value), ("message", f"assistant: {value}")]
