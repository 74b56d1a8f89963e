"""Stage 1: resolve a source (local directory, GGUF, hub id, the embedded default) and convert it
to the 16-bit reference GGUF every quant is made from and measured against."""

from edgepack.source.convert import OUTTYPES, ensure_free_space, make_reference
from edgepack.source.model import Reference, Source, slugify
from edgepack.source.resolve import resolve_source

__all__ = ["OUTTYPES", "Reference", "Source", "ensure_free_space", "make_reference", "resolve_source", "slugify"]
