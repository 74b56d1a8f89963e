"""Work a build starts ahead of time (edgepack.source.early, edgepack.chat.early): used when it
is right, cancelled without a trace otherwise, and never a different result."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import psutil
import pytest

from edgepack.errors import OutputError


def _partials(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.name.endswith(".partial")]


def _converters() -> list[psutil.Process]:
    me = psutil.Process()
    return [c for c in me.children(recursive=True)
            if any("convert_hf_to_gguf" in part for part in (c.cmdline() if c.is_running() else []))]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_early_conversion_gives_the_converters_bytes(tiny_hf_dir, private_cache, tmp_path):
    """The reference an early converter made is byte-identical to a plain converter run."""
    from edgepack.source import make_reference, resolve_source
    from edgepack.source.convert import _run_converter
    from edgepack.source.early import start_early_conversion
    from edgepack.runtime.toolchain import ensure_toolchain

    toolchain = ensure_toolchain()
    src = resolve_source(str(tiny_hf_dir))
    early = start_early_conversion(src, "f16", toolchain, None, trust_remote_code=False)
    assert early is not None
    ref = make_reference(src, "f16", toolchain=toolchain, early=early)
    assert not ref.cached and ref.path.is_file()
    plain = tmp_path / "plain.gguf"
    plain_sha = _run_converter(src, plain, "f16", toolchain, None)  # hashed while the converter wrote it
    assert _sha(ref.path) == _sha(plain) == ref.sha256 == plain_sha
    assert _partials(private_cache) == [] and _converters() == []


def test_a_cached_reference_cancels_the_early_converter(tiny_hf_dir, private_cache):
    from edgepack.source import make_reference, resolve_source
    from edgepack.source.early import start_early_conversion
    from edgepack.runtime.toolchain import ensure_toolchain

    toolchain = ensure_toolchain()
    src = resolve_source(str(tiny_hf_dir))
    first = make_reference(src, "f16", toolchain=toolchain)
    stamp = first.path.stat().st_mtime_ns
    early = start_early_conversion(src, "f16", toolchain, None, trust_remote_code=False)
    assert early is not None
    again = make_reference(src, "f16", toolchain=toolchain, early=early)
    assert again.cached and again.path == first.path and again.path.stat().st_mtime_ns == stamp
    assert early.proc.returncode is not None  # killed (or finished) and reaped
    assert _partials(private_cache) == [] and _converters() == []


def test_a_refused_build_leaves_no_converter_and_no_partial(tiny_hf_dir, private_cache, tmp_path):
    from edgepack.pipeline import build

    foreign = tmp_path / "not-a-bundle"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputError):
        build(str(tiny_hf_dir), ["Q8_0"], output_dir=foreign)
    assert (foreign / "notes.txt").read_text() == "mine" and sorted(os.listdir(foreign)) == ["notes.txt"]
    assert _partials(private_cache) == [] and _converters() == []
    references = private_cache / "references"
    assert not references.exists() or not any(p.suffix == ".gguf" for p in references.rglob("*"))


def test_no_early_converter_for_remote_code(tmp_path, private_cache):
    """The architecture and remote-code checks come before the converter is started at all."""
    import json

    from edgepack.source import resolve_source
    from edgepack.source.early import start_early_conversion
    from edgepack.runtime.toolchain import ensure_toolchain

    model = tmp_path / "custom"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"architectures": ["NoSuchModelForCausalLM"]}))
    (model / "model.safetensors").write_bytes(b"\0" * 64)
    src = resolve_source(str(model))
    assert start_early_conversion(src, "f16", ensure_toolchain(), None, trust_remote_code=False) is None
    assert _converters() == []


def test_the_early_chat_report_equals_the_one_made_after_conversion(tiny_hf_dir, tiny_reference):
    from edgepack.chat.early import EarlyChat
    from edgepack.chat.modelfile import chat_report_for_gguf
    from edgepack.gguf_file import read_gguf

    info = read_gguf(tiny_reference.path)
    early = EarlyChat(Path(tiny_hf_dir)).report_for(info)
    after = chat_report_for_gguf(info, Path(tiny_hf_dir))
    assert early.to_dict() == after.to_dict()


def test_a_wrong_early_guess_is_not_used(tiny_hf_dir, tiny_reference, monkeypatch):
    """When the GGUF's chat inputs differ from the source's, the stage runs again on the GGUF's."""
    from dataclasses import replace

    from edgepack.chat import early as early_mod
    from edgepack.chat.modelfile import chat_report_for_gguf
    from edgepack.gguf_file import read_gguf

    info = read_gguf(tiny_reference.path)
    changed = "{% for m in messages %}<<{{ m['role'] }}>>{{ m['content'] }}{% endfor %}"
    other = replace(info, chat_template=changed)
    report = early_mod.EarlyChat(Path(tiny_hf_dir)).report_for(other)
    assert report.to_dict() == chat_report_for_gguf(other, Path(tiny_hf_dir)).to_dict()
    assert report.template_sha256 == hashlib.sha256(changed.encode()).hexdigest()


def test_cancel_while_writing_removes_the_partial_file(tiny_hf_dir, private_cache):
    import time

    from edgepack.source import resolve_source
    from edgepack.source.early import start_early_conversion
    from edgepack.runtime.toolchain import ensure_toolchain

    early = start_early_conversion(resolve_source(str(tiny_hf_dir)), "f16", ensure_toolchain(), None,
                                   trust_remote_code=False)
    deadline = time.monotonic() + 120
    while not early.tmp.exists() and early.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert early.tmp.exists()  # the converter has started writing (or finished): a file to clean up
    early.cancel()
    assert not early.tmp.exists() and _partials(private_cache) == [] and _converters() == []


def test_the_early_chat_child_is_gone_after_cancel(tiny_hf_dir):
    from edgepack.chat.early import EarlyChat

    early = EarlyChat(Path(tiny_hf_dir))
    pid = early._pid
    assert pid is not None and psutil.pid_exists(pid)
    early.cancel()
    assert not psutil.pid_exists(pid)  # killed and reaped
    early.cancel()  # twice is fine


def test_a_converter_that_fails_is_one_line_with_its_reason_and_leaves_nothing(tiny_hf_dir, private_cache, tmp_path):
    """The early converter fails the way a plain run does: SourceError with the converter's own last
    error line, no partial file, no process, no output directory."""
    import shutil

    from edgepack.errors import SourceError
    from edgepack.pipeline import build

    broken = tmp_path / "broken"
    shutil.copytree(tiny_hf_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # cut in half
    out = tmp_path / "out"
    with pytest.raises(SourceError) as err:
        build(str(broken), ["Q8_0"], output_dir=out)
    message = str(err.value)
    assert message.startswith(f"llama.cpp's converter failed on {broken}") and "\n" not in message
    assert "it wrote no file" not in message and len(message) > len(f"llama.cpp's converter failed on {broken}: ")
    assert not out.exists() and _partials(private_cache) == [] and _converters() == []


def test_work_beside_the_converter_runs_at_lower_priority_and_hands_back_its_result():
    """procs.in_lowered_thread: the work runs in a thread niced below the caller (Linux), which
    keeps its own priority; the result comes back, and so does an exception."""
    import sys
    import threading

    from edgepack import procs

    main_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen = procs.in_lowered_thread(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    if sys.platform.startswith("linux"):
        assert seen == min(19, main_nice + procs.BESIDE_NICE) > main_nice
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_nice

    def fails():
        raise OutputError("no room")

    with pytest.raises(OutputError, match="no room"):
        procs.in_lowered_thread(fails)
