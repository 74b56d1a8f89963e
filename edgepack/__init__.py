"""edgepack: convert, quantize, measure and package LLMs for local and edge deployment."""

__version__ = "0.1.0"
