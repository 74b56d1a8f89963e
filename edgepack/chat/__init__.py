"""Chat: how each runtime renders a model's chat template, proven by rendering, and Modelfiles.

conversations (probe chats) -> sandbox (bounded Jinja, transformers) -> gotemplate (Go's
text/template, modelled) -> formats (the family table) -> dates (today's date in Go) -> translate
(Jinja -> Go) -> proof (per runtime, incl. llama_server for llama.cpp's Jinja) -> capabilities
(what Ollama infers from templates) -> renderers (Ollama's built-in ones) -> report (the chat
stage, ChatReport) -> modelfile (writing) -> ollama (running `ollama`);
ollama_import (what Ollama's own import does, for scripts/bench_templates.py).

The names below are loaded on first use (PEP 562): a build forks its early chat stage
(chat/early.py) before it has imported any of this, and imports it while the converter runs.
"""

from edgepack.lazy import lazy_exports

_EXPORTS = {
    "Message": "conversations",
    **dict.fromkeys(("Modelfile", "chat_report_for_gguf", "modelfile_for_gguf"), "modelfile"),
    **dict.fromkeys(("ChatReport", "analyze_chat"), "report"),
    **dict.fromkeys(("SpecialTokens", "render_hf"), "sandbox"),
}  # the Jinja -> Go translation: edgepack.chat.translate.translate (a submodule of that name)
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
