"""Former home of the chat-template code, kept so that old imports keep working.

The code now lives in: conversations (probes), sandbox (bounded Jinja rendering), gotemplate
(the Go text/template model), formats (the family table), translate (Jinja -> Go), proof.
"""

from edgepack.chat.conversations import PROBES, Message, has_system, ollama_template_data
from edgepack.chat.formats import FAMILIES, FORMATS, ChatFormat
from edgepack.chat.gotemplate import GoTemplate
from edgepack.chat.sandbox import SpecialTokens, render_hf
from edgepack.chat.translate import (
    Translation,
    candidate_formats,
    go_template_for,
    render_ollama,
    template_emits_bos,
    translate,
)
from edgepack.errors import ChatTemplateError, GoTemplateError

__all__ = [
    "FAMILIES", "FORMATS", "PROBES", "ChatFormat", "ChatTemplateError", "GoTemplate", "GoTemplateError", "Message",
    "SpecialTokens", "Translation", "candidate_formats", "go_template_for", "has_system", "ollama_template_data",
    "render_hf", "render_ollama", "template_emits_bos", "translate",
]
