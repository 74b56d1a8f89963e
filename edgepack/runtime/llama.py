"""Thin adapter around llama-cpp-python: logging, loading, backend facts."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from edgepack.errors import LlamaRuntimeError

_verbose = {"on": False}


# ggml's log levels (ggml.h). llama-cpp-python's own callback maps an older numbering, under
# which WARN reads as ERROR, so edgepack installs its own.
_GGML_LOG_ERROR = 4
_GGML_LOG_CONT = 5
_log_state = {"last": 0, "callback": None, "capture": None}


@contextmanager
def capture_log() -> Iterator[list[str]]:
    """Collect everything llama.cpp logs (any level) while the block runs."""
    lines: list[str] = []
    _log_state["capture"] = lines
    try:
        yield lines
    finally:
        _log_state["capture"] = None


def set_llama_verbose(verbose: bool) -> None:
    """llama.cpp prints every load step to stderr; keep it for -v, errors only otherwise.

    Only recorded until llama_cpp is imported (through llama_module), so that commands which never
    load llama.cpp in-process do not pay for importing it."""
    _verbose["on"] = verbose
    if "llama_cpp" in sys.modules:
        _install_log_callback()


def llama_module():
    """The llama_cpp module, with edgepack's log callback in place (use instead of `import llama_cpp`)."""
    import llama_cpp

    _install_log_callback()
    return llama_cpp


def _install_log_callback() -> None:
    verbose = _verbose["on"]
    try:
        import llama_cpp
        import llama_cpp._logger as llama_logger  # noqa: F401  (installs its callback; ours replaces it)
    except ImportError:  # llama-cpp-python missing: doctor reports it
        return
    logging.getLogger("llama-cpp-python").setLevel(logging.DEBUG if verbose else logging.ERROR)
    if _log_state["callback"] is None:
        @llama_cpp.llama_log_callback
        def _log(level: int, text: bytes, user_data) -> None:
            if level == _GGML_LOG_CONT:
                level = _log_state["last"]
            else:
                _log_state["last"] = level
            capture = _log_state["capture"]
            if capture is not None:
                capture.append(text.decode("utf-8", errors="replace"))
            # While captured, errors reach the user through edgepack's own one-line message.
            if _verbose["on"] or (level == _GGML_LOG_ERROR and capture is None):
                sys.stderr.write(text.decode("utf-8", errors="replace"))
                sys.stderr.flush()

        _log_state["callback"] = _log  # keep a reference: llama.cpp holds only the pointer
        llama_cpp.llama_log_set(_log, ctypes.c_void_p(0))


def is_verbose() -> bool:
    return _verbose["on"]


def system_info() -> str:
    llama_cpp = llama_module()

    return llama_cpp.llama_print_system_info().decode(errors="replace").strip()


def backends() -> list[str]:
    """Names of the ggml backends this llama.cpp build registered (CPU, CUDA, Metal, ...)."""
    import ctypes

    llama_cpp = llama_module()

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
    llm = llama_module().Llama(model_path=os.fspath(path), verbose=is_verbose(), **kwargs)
    try:
        yield llm
    finally:
        llm.close()


# ---------------------------------------------------------------- the llama.cpp C API, for engines
# that keep Python out of the per-token loop (bench, evaluate)

FLASH_ATTN = {None: -1, True: 1, False: 0}  # llama_flash_attn_type: auto, enabled, disabled


@contextmanager
def loaded_model(model_path: str | Path, n_gpu_layers: int = 0) -> Iterator[object]:
    llama_cpp = llama_module()

    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = n_gpu_layers
    model = llama_cpp.llama_model_load_from_file(os.fsencode(model_path), params)
    if not model:
        raise LlamaRuntimeError(f"llama.cpp could not load {model_path}")
    try:
        yield model
    finally:
        llama_cpp.llama_model_free(model)


@contextmanager
def new_context(model, *, n_ctx: int, n_batch: int, n_threads: int, n_parallel: int = 1,
                flash_attn: bool | None = None, n_ubatch: int | None = None) -> Iterator[object]:
    llama_cpp = llama_module()

    params = llama_cpp.llama_context_default_params()
    params.n_ctx = n_ctx
    params.n_batch = n_batch
    params.n_ubatch = n_ubatch or min(n_batch, 512)
    params.n_seq_max = n_parallel
    params.kv_unified = True
    params.n_threads = params.n_threads_batch = n_threads
    params.flash_attn_type = FLASH_ATTN[flash_attn]
    params.no_perf = True
    ctx = llama_cpp.llama_init_from_model(model, params)
    if not ctx:
        raise LlamaRuntimeError(f"llama.cpp could not create a context of {n_ctx} tokens (out of memory?)")
    try:
        yield ctx
    finally:
        llama_cpp.llama_free(ctx)
