"""Chat: how each runtime renders a model's chat template, proven by rendering, and Modelfiles.

conversations (probe chats) -> sandbox (bounded Jinja, transformers) -> gotemplate (Go's
text/template, modelled) -> formats (the family table) -> dates (today's date in Go) -> translate
(Jinja -> Go) -> proof (per runtime, incl. llama_server for llama.cpp's Jinja) -> capabilities
(what Ollama infers from templates) -> renderers (Ollama's built-in ones) -> report (the chat
stage, ChatReport) -> modelfile (writing) -> ollama (running `ollama`);
ollama_import (what Ollama's own import does, for scripts/bench_templates.py).
"""

from edgepack.chat.conversations import Message
from edgepack.chat.modelfile import Modelfile, chat_report_for_gguf, modelfile_for_gguf
from edgepack.chat.report import ChatReport, analyze_chat
from edgepack.chat.sandbox import SpecialTokens, render_hf
from edgepack.chat.translate import translate

__all__ = ["ChatReport", "Message", "Modelfile", "SpecialTokens", "analyze_chat", "chat_report_for_gguf",
           "modelfile_for_gguf", "render_hf", "translate"]
