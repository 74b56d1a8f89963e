"""The pinned llama.cpp: its source tree (toolchain), its native tools, and the in-process runtime."""

from edgepack.runtime.native import build_native, find_native, find_tool
from edgepack.runtime.toolchain import LLAMA_CPP_PYTHON_VERSION, Toolchain, ensure_toolchain, find_toolchain

__all__ = ["LLAMA_CPP_PYTHON_VERSION", "Toolchain", "build_native", "ensure_toolchain", "find_native", "find_tool",
           "find_toolchain"]
