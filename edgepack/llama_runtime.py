"""Thin adapter around llama-cpp-python: logging, loading, backend facts."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_verbose = {"on": False}


def set_llama_verbose(verbose: bool) -> None:
    """llama.cpp prints every load step to stderr; keep it for -v only."""
    _verbose["on"] = verbose
    try:
        import llama_cpp._logger as llama_logger
    except ImportError:  # llama-cpp-python missing: doctor reports it
        return
    llama_logger.logger.setLevel(logging.DEBUG if verbose else logging.ERROR)
    logging.getLogger("llama-cpp-python").setLevel(logging.DEBUG if verbose else logging.ERROR)


def is_verbose() -> bool:
    return _verbose["on"]


def system_info() -> str:
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode(errors="replace").strip()


def backends() -> list[str]:
    """Names of the ggml backends this llama.cpp build registered (CPU, CUDA, Metal, ...)."""
    import ctypes

    import llama_cpp

    lib = llama_cpp.llama_cpp._lib
    names: list[str] = []
    try:
        lib.ggml_backend_reg_count.restype = ctypes.c_size_t
        lib.ggml_backend_reg_get.restype = ctypes.c_void_p
        lib.ggml_backend_reg_get.argtypes = [ctypes.c_size_t]
        lib.ggml_backend_reg_name.restype = ctypes.c_char_p
        lib.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
        for i in range(lib.ggml_backend_reg_count()):
            names.append(lib.ggml_backend_reg_name(lib.ggml_backend_reg_get(i)).decode())
    except AttributeError:
        # The symbols live in libggml, not always re-exported by libllama.
        names = ["CPU"] + (["GPU"] if llama_cpp.llama_supports_gpu_offload() else [])
    return names


@contextmanager
def load_model(path: str | Path, **kwargs) -> Iterator["object"]:
    """Load a GGUF with llama-cpp-python, quietly unless -v, and free it afterwards."""
    from llama_cpp import Llama

    llm = Llama(model_path=os.fspath(path), verbose=is_verbose(), **kwargs)
    try:
        yield llm
    finally:
        llm.close()
