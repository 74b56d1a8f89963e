"""The chat stage started before conversion, in a thread, on what the source says.

The chat report is a function of four inputs only: the chat template, the BOS/EOS strings,
whether the tokenizer adds BOS and where the template came from. The Hugging Face source tells
all four before the converter has written the GGUF, and the stage (transformers renders in a
bounded child, the llama-server proof) waits on child processes almost all the time, so it runs
beside the converter instead of after it. Once the GGUF exists, its own four inputs are read
and compared: the early report is used only when they are identical, otherwise the stage runs
again on the GGUF's. The result is the same report either way; only the wall time differs.
"""

from __future__ import annotations

import copy
import importlib
import json
import threading
from pathlib import Path

from edgepack.chat.modelfile import SourceChatInfo, chat_inputs, chat_report_for_gguf, read_source_chat_info
from edgepack.chat.report import ChatReport, analyze_chat
from edgepack.chat.sandbox import SpecialTokens
from edgepack.gguf_file import GGUFInfo

# Imported in the thread as well, while the converter runs: the build needs them after it.
_WARM_MODULES = ("edgepack.bundle.card", "llama_cpp")


def _predicted_inputs(source_dir: Path, source: SourceChatInfo) -> tuple | None:
    """(template, tokens, adds_bos, origin) as the converter will write them, or None when unsure."""
    if not source.chat_template or source.bos_token is None and source.eos_token is None:
        return None
    try:
        config = json.loads((source_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    adds_bos = config.get("add_bos_token") if isinstance(config, dict) else None
    return (source.chat_template, SpecialTokens(bos=source.bos_token, eos=source.eos_token),
            adds_bos if isinstance(adds_bos, bool) else False, "gguf")


class EarlyChat:
    """Created before converting (starts the thread); `report_for(gguf_info)` after."""

    def __init__(self, source_dir: Path | None):
        self.source_dir = source_dir
        self._source: SourceChatInfo | None = None
        self._inputs: tuple | None = None
        self._report: ChatReport | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if source_dir is not None:
            # A daemon thread: an interrupted build does not wait for it; its children (the render
            # child, llama-server) end with the process.
            self._thread = threading.Thread(target=self._run, name="edgepack-chat", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._source = read_source_chat_info(self.source_dir)
            self._inputs = _predicted_inputs(self.source_dir, self._source)
            if self._inputs is not None:
                template, tokens, adds_bos, origin = self._inputs
                self._report = analyze_chat(template, tokens, tokenizer_adds_bos=adds_bos, template_source=origin)
            for name in _WARM_MODULES:
                try:
                    importlib.import_module(name)
                except ImportError:
                    pass  # the main thread imports it where it is needed and reports the problem there
        except BaseException as exc:  # handed to the caller's thread in report_for
            self._error = exc

    def report_for(self, info: GGUFInfo) -> ChatReport:
        """The chat report for the converted GGUF: the early one when its inputs were right."""
        if self._thread is None:
            return chat_report_for_gguf(info, None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        template, tokens, adds_bos, origin, warnings = chat_inputs(info, self.source_dir, self._source)
        if self._report is None or self._inputs != (template, tokens, adds_bos, origin):
            self._report = analyze_chat(template, tokens, tokenizer_adds_bos=adds_bos, template_source=origin)
        report = copy.deepcopy(self._report)
        report.warnings[:0] = warnings
        return report
