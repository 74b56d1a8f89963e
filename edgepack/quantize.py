"""Quantize a 16-bit GGUF with llama.cpp's own quantizer (llama_model_quantize, in-process).

The call is the one `llama-quantize` makes, with the same parameters, so the output is
byte-identical to `llama-quantize IN OUT TYPE` for the same input, type and options.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import progress
from .atomic import atomic_output
from .errors import BuildInterrupted, QuantError
from .quants import QuantType


@dataclass(frozen=True)
class QuantOptions:
    """The llama-quantize options edgepack exposes (names follow llama-quantize's flags)."""

    nthread: int = 0  # 0: all hardware threads, as llama-quantize does
    allow_requantize: bool = False
    leave_output_tensor: bool = False
    pure: bool = False
    output_tensor_type: str | None = None  # a ggml type name, e.g. "Q8_0"
    token_embedding_type: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "nthread"}

    def llama_quantize_args(self) -> list[str]:
        """The equivalent llama-quantize command-line flags (for the manifest and cross-checks)."""
        args = []
        if self.allow_requantize:
            args.append("--allow-requantize")
        if self.leave_output_tensor:
            args.append("--leave-output-tensor")
        if self.pure:
            args.append("--pure")
        if self.output_tensor_type:
            args += ["--output-tensor-type", self.output_tensor_type.lower()]
        if self.token_embedding_type:
            args += ["--token-embedding-type", self.token_embedding_type.lower()]
        return args


@dataclass
class QuantResult:
    quant: str
    path: Path
    seconds: float


def _ggml_type_id(name: str) -> int:
    from gguf import GGMLQuantizationType

    try:
        return GGMLQuantizationType[name.upper()].value
    except KeyError:
        valid = ", ".join(t.name for t in GGMLQuantizationType)
        raise QuantError(f"unknown tensor type {name!r}; valid types: {valid}") from None


def _params(quant: QuantType, options: QuantOptions):
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = quant.ftype
    params.nthread = options.nthread
    params.allow_requantize = options.allow_requantize
    params.quantize_output_tensor = not options.leave_output_tensor
    params.pure = options.pure
    if options.output_tensor_type:
        params.output_tensor_type = _ggml_type_id(options.output_tensor_type)
    if options.token_embedding_type:
        params.token_embedding_type = _ggml_type_id(options.token_embedding_type)
    return params


def quantize_gguf(
    source: str | Path,
    dest: str | Path,
    quant: QuantType,
    options: QuantOptions = QuantOptions(),
    *,
    expected_bytes: int | None = None,
) -> QuantResult:
    """Write `dest` as `quant` of the GGUF `source`; `dest` appears only when complete."""
    import ctypes

    import llama_cpp

    source, dest = Path(source), Path(dest)
    if quant.needs_imatrix:
        raise QuantError(f"{quant.name} needs an importance matrix; llama.cpp refuses it without one")
    params = _params(quant, options)
    start = time.perf_counter()
    with atomic_output(dest) as tmp:
        outcome: dict[str, int | BaseException] = {}

        def work() -> None:
            try:
                outcome["rc"] = llama_cpp.llama_model_quantize(
                    os.fsencode(source), os.fsencode(tmp), ctypes.byref(params))
            except BaseException as exc:  # pragma: no cover - ctypes errors
                outcome["error"] = exc

        # A worker thread keeps the main thread responsive to Ctrl-C during a long C call.
        worker = threading.Thread(target=work, name="llama-quantize", daemon=True)
        with progress.file_growth(f"Quantizing {quant.name}", tmp, expected_bytes):
            worker.start()
            try:
                while worker.is_alive():
                    worker.join(0.1)
            except KeyboardInterrupt:
                raise BuildInterrupted(f"interrupted while quantizing {quant.name}; no partial file was kept") from None
        if "error" in outcome:
            raise QuantError(f"llama.cpp failed to quantize to {quant.name}: {outcome['error']}")
        if outcome.get("rc") != 0:
            raise QuantError(
                f"llama.cpp failed to quantize {source.name} to {quant.name} (rerun with -v for llama.cpp's log)")
    return QuantResult(quant.name, dest, progress.elapsed(start))
