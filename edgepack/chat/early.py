"""The chat stage started before conversion, in a forked child, on what the source says.

The chat report is a function of four inputs only: the chat template, the BOS/EOS strings,
whether the tokenizer adds BOS and where the template came from. The Hugging Face source tells
all four before the converter has written the GGUF, and the stage (transformers renders in a
bounded child, the llama-server proof) mostly waits on child processes, so it runs beside the
converter instead of after it. Once the GGUF exists, its own four inputs are read and
compared: the early report is used only when they are identical, otherwise the stage runs
again on the GGUF's. The result is the same report either way; only the wall time differs.

A forked child rather than a thread: the stage imports transformers and more, and two threads
importing the same package at once can meet it half-initialised (this happened with gguf). The
child is forked before the build starts any thread, dies with the build (PR_SET_PDEATHSIG via
edgepack.procs) and is killed by `cancel()` when the build stops early. Linux only; elsewhere
the stage simply runs after conversion.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgepack.chat.modelfile import SourceChatInfo
    from edgepack.chat.report import ChatReport
    from edgepack.gguf_file import GGUFInfo
# The stage's own modules are imported in the child (after the fork) and by `report_for`: the
# build forks this child before it starts its converter and has imported none of them yet.


def _predicted_inputs(source: SourceChatInfo) -> tuple | None:
    """(template, tokens, adds_bos, origin) as the converter will write them, or None when unsure."""
    from edgepack.chat.sandbox import SpecialTokens

    if not source.chat_template or source.bos_token is None and source.eos_token is None:
        return None
    return (source.chat_template, SpecialTokens(bos=source.bos_token, eos=source.eos_token),
            bool(source.add_bos_token), "gguf")


def _work(source_dir: Path) -> tuple:
    from edgepack.chat.modelfile import read_source_chat_info
    from edgepack.chat.report import analyze_chat

    source = read_source_chat_info(source_dir)
    inputs = _predicted_inputs(source)
    report = None
    if inputs is not None:
        template, tokens, adds_bos, origin = inputs
        report = analyze_chat(template, tokens, tokenizer_adds_bos=adds_bos, template_source=origin)
    return source, inputs, report


class EarlyChat:
    """Created before converting (forks the child); `report_for(gguf_info)` after; `cancel()` always."""

    def __init__(self, source_dir: Path | None):
        self.source_dir = source_dir
        self._pid: int | None = None
        self._read_fd: int | None = None
        if source_dir is not None and sys.platform.startswith("linux"):
            self._start()

    def _start(self) -> None:
        from edgepack.procs import BESIDE_NICE, die_with_parent

        read_fd, write_fd = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the build
            code = 0
            try:
                os.close(read_fd)
                die_with_parent(parent)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the build handles Ctrl-C and kills us
                os.nice(BESIDE_NICE)  # the converter beside it (and the build's own work) come first
                try:
                    payload = pickle.dumps(("ok", _work(self.source_dir)))
                except BaseException as exc:  # noqa: BLE001  handed to the build, which raises it
                    try:
                        payload = pickle.dumps(("error", exc))
                    except Exception:  # noqa: BLE001  an exception that does not pickle
                        payload = pickle.dumps(("error", RuntimeError("".join(traceback.format_exception(exc))[-2000:])))
                with os.fdopen(write_fd, "wb") as out:
                    out.write(payload)
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        os.close(write_fd)
        self._pid, self._read_fd = pid, read_fd

    def _collect(self) -> tuple | None:
        """The child's (source, inputs, report), or None when it could not give them."""
        if self._pid is None:
            return None
        chunks = []
        try:
            while True:
                ready, _, _ = select.select([self._read_fd], [], [], 0.2)  # short waits: Ctrl-C is taken at once
                if not ready:
                    continue
                chunk = os.read(self._read_fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            self.cancel()
        if not chunks:
            return None  # the child died (killed, out of memory): the stage runs here instead
        status, value = pickle.loads(b"".join(chunks))
        if status == "error":
            raise value
        return value

    def report_for(self, info: GGUFInfo) -> ChatReport:
        """The chat report for the converted GGUF: the early one when its inputs were right."""
        from edgepack.chat.modelfile import chat_inputs
        from edgepack.chat.report import analyze_chat

        early = self._collect()
        source, inputs, report = early if early is not None else (None, None, None)
        template, tokens, adds_bos, origin, warnings = chat_inputs(info, self.source_dir, source)
        if report is None or inputs != (template, tokens, adds_bos, origin):
            report = analyze_chat(template, tokens, tokenizer_adds_bos=adds_bos, template_source=origin)
        report.warnings[:0] = warnings  # as chat_report_for_gguf does
        return report

    def cancel(self) -> None:
        """Kill and reap the child if it still runs (idempotent)."""
        if self._pid is not None:
            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(self._pid, 0)
            except ChildProcessError:
                pass
            self._pid = None
        if self._read_fd is not None:
            os.close(self._read_fd)
            self._read_fd = None
