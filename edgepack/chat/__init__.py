"""Chat: HF chat templates, their translation to Ollama's Go templates, Modelfiles and Ollama."""

from edgepack.chat.modelfile import Modelfile, modelfile_for_gguf
from edgepack.chat.templates import Message, SpecialTokens, translate

__all__ = ["Message", "Modelfile", "SpecialTokens", "modelfile_for_gguf", "translate"]
