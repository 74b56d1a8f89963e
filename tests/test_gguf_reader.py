"""The GGUF header reader: same answers as gguf-py's GGUFReader, bounded cost, only GGUFError on bad input."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tiny_models import write_gguf_file

from edgepack.errors import GGUFError
from edgepack.gguf_file import read_gguf
from edgepack.gguf_header import ArrayRef, parse_header

REPO = Path(__file__).resolve().parents[1]


def _write_gguf(path: Path, *, n_tokens: int = 300, extra=None) -> Path:
    def describe(w) -> None:
        w.add_name("fixture")
        w.add_block_count(2)
        w.add_context_length(4096)
        w.add_embedding_length(64)
        w.add_head_count(4)
        w.add_head_count_kv([4, 2])
        w.add_file_type(1)
        w.add_float32("llama.rope.freq_base", 10000.0)
        w.add_bool("test.flag", True)
        w.add_int64("test.neg", -5)
        w.add_array("test.nested", [[1, 2], [3]])
        w.add_tokenizer_model("llama")
        w.add_token_list([f"tok{i}" for i in range(n_tokens)])
        w.add_token_scores([float(i) for i in range(n_tokens)])
        w.add_token_merges([f"a{i} b{i}" for i in range(n_tokens * 2)])
        w.add_bos_token_id(1)
        w.add_chat_template("{{ messages }}")
        for key, value in (extra or {}).items():
            w.add_uint32(key, value)

    return write_gguf_file(path, "llama", describe, {
        "token_embd.weight": np.ones((n_tokens, 64), dtype=np.float16),
        "blk.0.attn_q.weight": np.ones((64, 64), dtype=np.float32),
        "blk.1.attn_q.weight": np.ones((64, 64), dtype=np.float16)})


def test_matches_gguf_py(tmp_path):
    from gguf import GGUFReader

    path = _write_gguf(tmp_path / "m.gguf", n_tokens=5000)  # longer than INLINE_ARRAY_LIMIT: left in the file
    header = parse_header(path)
    assert isinstance(header.fields["tokenizer.ggml.tokens"], ArrayRef)
    reader = GGUFReader(path)
    for key, fld in reader.fields.items():
        if key.startswith("GGUF.") or key == "test.nested":  # gguf-py flattens nested arrays
            continue
        ours = header.fields[key]
        theirs = fld.contents()
        if isinstance(ours, ArrayRef):  # left in the file: its length and, decoded on request, its items
            assert ours.count == len(theirs)
            assert header.array(key) == pytest.approx(theirs) if isinstance(theirs[0], float) else header.array(key) == theirs
        else:
            assert ours == pytest.approx(theirs) if isinstance(theirs, float) else ours == theirs, key
    assert [(t.name, t.type_name, list(t.shape), t.n_elements, t.n_bytes, t.offset) for t in header.tensors] == [
        (t.name, t.tensor_type.name, [int(x) for x in t.shape], int(t.n_elements), int(t.n_bytes), int(t.data_offset))
        for t in reader.tensors]
    assert header.fields["test.nested"] == [[1, 2], [3]]
    info = read_gguf(path, with_tokens=True)
    assert info.vocab_size == 5000 and info.tokens[4999] == "tok4999" and info.token(1) == "tok1"
    assert info.n_layers == 2 and info.context_length == 4096 and info.chat_template == "{{ messages }}"
    assert info.metadata["llama.attention.head_count_kv"] == [4, 2]
    assert "tokenizer.ggml.merges" not in info.metadata


def test_one_token_without_decoding_the_vocabulary(tmp_path):
    from gguf import GGUFReader

    path = _write_gguf(tmp_path / "m.gguf", n_tokens=5000)
    info = read_gguf(path)
    assert info.tokens is None  # the vocabulary was not decoded
    theirs = GGUFReader(path).fields["tokenizer.ggml.tokens"].contents()
    for token_id in (0, 1, 2, 2500, 4998, 4999):
        assert info.token(token_id) == theirs[token_id]
    assert info.token(5000) is None and info.token(-1) is None and info.token(None) is None
    assert info.tokens is None


def test_read_once_and_refreshed_when_the_file_changes(tmp_path):
    path = _write_gguf(tmp_path / "m.gguf")
    first = read_gguf(path)
    assert read_gguf(path) is first  # same (path, size, mtime): not parsed again
    _write_gguf(tmp_path / "m.gguf", n_tokens=400)
    os.utime(path, ns=(1, 1))
    assert read_gguf(path).vocab_size == 400


def _crafted_many_strings(path: Path, n: int) -> Path:
    """A GGUF whose vocabulary holds `n` two-byte strings, plus one small F32 tensor."""
    def s(text: bytes) -> bytes:
        return struct.pack("<Q", len(text)) + text

    kv = [s(b"general.architecture") + struct.pack("<I", 8) + s(b"llama"),
          s(b"tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, n) + (struct.pack("<Q", 2) + b"ab") * n]
    tensor = s(b"output.weight") + struct.pack("<IQQIQ", 2, 32, 2, 0, 0)
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kv)) + b"".join(kv) + tensor
    head += b"\0" * (-len(head) % 32)
    path.write_bytes(head + b"\0" * (32 * 2 * 4))
    return path


def _peak_rss_kib(code: str) -> int:
    script = textwrap.dedent(code) + "\nimport resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env=os.environ | {"PYTHONPATH": str(REPO)})
    return int(out.stdout.split()[-1])


def test_two_million_strings_cost_little_memory(tmp_path):
    path = _crafted_many_strings(tmp_path / "many.gguf", 2_000_000)
    baseline = _peak_rss_kib("import gguf, edgepack.gguf_file")
    peak = _peak_rss_kib(f"""
        from edgepack.gguf_file import read_gguf
        info = read_gguf({str(path)!r})
        assert info.vocab_size == 2_000_000, info.vocab_size
        assert info.n_params == 64
    """)
    # The file is 20 MB (mapped, so its pages may count); gguf-py's reader needed ~2.7 GB here.
    assert peak - baseline < 64 * 1024, (peak, baseline)


def test_not_gguf_and_truncated(tmp_path):
    path = _write_gguf(tmp_path / "m.gguf")
    data = path.read_bytes()
    for cut in (3, 10, 40, 200, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.gguf"
        bad.write_bytes(data[:cut])
        with pytest.raises(GGUFError):
            read_gguf(bad)


@pytest.fixture(scope="module")
def sample_gguf(tmp_path_factory) -> bytes:
    return _write_gguf(tmp_path_factory.mktemp("fuzz") / "m.gguf", n_tokens=8).read_bytes()


def _only_gguf_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.gguf"
    path.write_bytes(data)
    try:
        info = read_gguf(path, with_tokens=True)
    except GGUFError as exc:
        assert "\n" not in str(exc)
        return
    info.to_dict(full=True)


_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(cut=st.integers(min_value=0, max_value=4000))
def test_fuzz_truncated(tmp_path, sample_gguf, cut):
    _only_gguf_error(tmp_path, sample_gguf[:cut])


@_FUZZ
@given(edits=st.lists(st.tuples(st.integers(min_value=0, max_value=1200), st.integers(0, 255)),
                      min_size=1, max_size=8))
def test_fuzz_mutated_header(tmp_path, sample_gguf, edits):
    data = bytearray(sample_gguf)
    for pos, value in edits:
        data[pos % len(data)] = value
    _only_gguf_error(tmp_path, bytes(data))


@_FUZZ
@given(body=st.binary(max_size=600), version=st.sampled_from([1, 2, 3, 0x03000000, 7]),
       counts=st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)))
def test_fuzz_random_header(tmp_path, body, version, counts):
    _only_gguf_error(tmp_path, b"GGUF" + struct.pack("<IQQ", version, *counts) + body)


@_FUZZ
@given(wide=st.integers(min_value=2**32, max_value=2**64 - 1), which=st.integers(0, 400))
def test_fuzz_huge_lengths(tmp_path, sample_gguf, wide, which):
    """Any 8-byte field replaced with a huge number: refused without allocating it."""
    data = bytearray(sample_gguf)
    pos = 24 + 8 * which % (len(data) - 32)
    data[pos:pos + 8] = struct.pack("<Q", wide)
    _only_gguf_error(tmp_path, bytes(data))


def test_a_build_parses_each_gguf_once(tiny_hf_dir, tmp_path, monkeypatch):
    """The reference and each quant are parsed once per build; stages share the result."""
    import collections

    import gguf

    import edgepack.gguf_file as gguf_file
    from edgepack.pipeline import build

    parsed = collections.Counter()
    real_parse = gguf_file.parse_header

    def counting_parse(path):
        parsed[Path(path).name] += 1
        return real_parse(path)

    def no_gguf_reader(*args, **kwargs):
        raise AssertionError("gguf-py's GGUFReader decodes every array; the build must not use it")

    monkeypatch.setattr(gguf_file, "parse_header", counting_parse)
    monkeypatch.setattr(gguf, "GGUFReader", no_gguf_reader)
    gguf_file._CACHE.clear()
    build(str(tiny_hf_dir), ["Q8_0", "Q4_K_M"], output_dir=tmp_path / "out")
    assert parsed and all(n == 1 for n in parsed.values()), parsed
    assert {name for name in parsed if name.endswith(("Q8_0.gguf", "Q4_K_M.gguf"))}
