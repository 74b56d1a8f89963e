"""Stage 2: quantize a 16-bit GGUF with llama.cpp's own quantizer.

Plain quantization calls `llama_model_quantize` in-process with the parameters
`llama-quantize` would pass, so the file is byte-identical to `llama-quantize IN OUT TYPE`.
With an importance matrix, per-tensor type patterns or pruned layers, edgepack runs the
`llama-quantize` built from the same tree (`edgepack native build`): it loads the imatrix and
records its provenance in the GGUF exactly as llama.cpp users expect.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack import procs, progress
from edgepack.atomic import atomic_output
from edgepack.errors import BuildInterrupted, OutputError, QuantError
from edgepack.quantize.types import QuantType


@dataclass(frozen=True)
class QuantOptions:
    """The llama-quantize options edgepack exposes (names follow llama-quantize's flags)."""

    nthread: int = 0  # 0: all hardware threads, as llama-quantize does
    allow_requantize: bool = False
    leave_output_tensor: bool = False
    pure: bool = False
    output_tensor_type: str | None = None  # a ggml type name, e.g. "Q8_0"
    token_embedding_type: str | None = None
    tensor_types: tuple[str, ...] = ()  # "REGEX=TYPE", as --tensor-type
    prune_layers: tuple[int, ...] = ()
    imatrix: str | None = None  # path of an imatrix GGUF

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "nthread"}
        d["tensor_types"] = list(self.tensor_types)
        d["prune_layers"] = list(self.prune_layers)
        return d

    @property
    def needs_native_tool(self) -> bool:
        return bool(self.imatrix or self.tensor_types or self.prune_layers)

    def llama_quantize_args(self) -> list[str]:
        """The equivalent llama-quantize command-line flags (for the manifest and the native path)."""
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
        for spec in self.tensor_types:
            args += ["--tensor-type", spec]
        if self.prune_layers:
            args += ["--prune-layers", ",".join(str(i) for i in sorted(set(self.prune_layers)))]
        if self.imatrix:
            args += ["--imatrix", str(self.imatrix)]
        return args


@dataclass
class QuantResult:
    quant: str
    path: Path | None  # None for a dry run
    seconds: float
    size_bytes: int | None = None  # tensor data size llama.cpp reports
    bits_per_weight: float | None = None
    log: list[str] = field(default_factory=list, repr=False)


def ggml_type_name(name: str) -> str:
    """Validate a ggml tensor type name (e.g. q8_0, Q6_K, f16) and return its canonical spelling."""
    from gguf import GGMLQuantizationType

    try:
        return GGMLQuantizationType[name.strip().upper()].name
    except KeyError:
        valid = ", ".join(t.name for t in GGMLQuantizationType)
        raise QuantError(f"unknown tensor type {name!r}; valid types: {valid}") from None


def parse_tensor_type(spec: str) -> str:
    """`PATTERN=TYPE` with a valid regex and type, normalised as llama-quantize reads it."""
    pattern, sep, type_name = spec.rpartition("=")
    if not sep or not pattern:
        raise QuantError(f"--tensor-type {spec!r} must look like PATTERN=TYPE, e.g. 'blk\\.0\\.ffn_down=Q6_K'")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise QuantError(f"--tensor-type pattern {pattern!r} is not a valid regular expression ({exc})") from None
    return f"{pattern}={ggml_type_name(type_name).lower()}"


def parse_keep(specs: list[str]) -> tuple[str | None, str | None, list[str]]:
    """`--keep output=Q8_0 --keep token_embd=Q8_0 --keep NAME=TYPE` → output type, embedding type, patterns."""
    output = embedding = None
    patterns: list[str] = []
    for spec in specs:
        name, sep, type_name = spec.partition("=")
        if not sep or not name or not type_name:
            raise QuantError(f"--keep {spec!r} must look like NAME=TYPE, e.g. output=Q8_0")
        type_name = ggml_type_name(type_name)
        if name in ("output", "output.weight"):
            output = type_name
        elif name in ("token_embd", "token_embd.weight"):
            embedding = type_name
        else:
            patterns.append(parse_tensor_type(f"{re.escape(name)}={type_name}"))
    return output, embedding, patterns


def parse_prune_layers(spec: str | None) -> tuple[int, ...]:
    if not spec:
        return ()
    try:
        return tuple(sorted({int(part) for part in spec.split(",") if part.strip()}))
    except ValueError:
        raise QuantError(f"--prune-layers {spec!r} must be comma-separated layer numbers, e.g. 20,21") from None


def _params(quant: QuantType, options: QuantOptions, dry_run: bool):
    from gguf import GGMLQuantizationType

    from edgepack.runtime.llama import llama_module

    llama_cpp = llama_module()

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = quant.ftype
    params.nthread = options.nthread
    params.allow_requantize = options.allow_requantize
    params.quantize_output_tensor = not options.leave_output_tensor
    params.pure = options.pure
    params.dry_run = dry_run
    if options.output_tensor_type:
        params.output_tensor_type = GGMLQuantizationType[ggml_type_name(options.output_tensor_type)].value
    if options.token_embedding_type:
        params.token_embedding_type = GGMLQuantizationType[ggml_type_name(options.token_embedding_type)].value
    return params


_SIZE_LINE = re.compile(r"quant size\s*=\s*([\d.]+) MiB \(([\d.]+) BPW\)")


def _reported_size(log: list[str] | str) -> tuple[int | None, float | None]:
    text = "".join(log) if isinstance(log, list) else log
    match = _SIZE_LINE.search(text)
    if not match:
        return None, None
    return int(float(match.group(1)) * 2**20), float(match.group(2))


def quantize_gguf(
    source: str | Path,
    dest: str | Path | None,
    quant: QuantType,
    options: QuantOptions = QuantOptions(),
    *,
    expected_bytes: int | None = None,
    dry_run: bool = False,
) -> QuantResult:
    """Write `dest` as `quant` of the GGUF `source`; `dest` appears only when complete.

    With `dry_run`, nothing is written and the result carries the size llama.cpp computes.
    """
    source = Path(source)
    if quant.needs_imatrix and not options.imatrix and not dry_run:
        raise QuantError(f"{quant.name} needs an importance matrix: add --calibration FILE (or --calibration default) "
                         "or --imatrix FILE")
    start = time.perf_counter()
    if dry_run:
        log = _run_native(source, None, quant, options) if options.needs_native_tool else \
            _run_in_process(source, None, quant, options, expected_bytes)
        size, bpw = _reported_size(log)
        return QuantResult(quant.name, None, progress.elapsed(start), size, bpw, log)
    dest = Path(dest)
    with atomic_output(dest) as tmp:
        if options.needs_native_tool:
            log = _run_native(source, tmp, quant, options, expected_bytes)
        else:
            log = _run_in_process(source, tmp, quant, options, expected_bytes)
    size, bpw = _reported_size(log)
    return QuantResult(quant.name, dest, progress.elapsed(start), size, bpw, log)


def _run_in_process(source: Path, tmp: Path | None, quant: QuantType, options: QuantOptions,
                    expected_bytes: int | None) -> list[str]:
    import ctypes

    from edgepack.runtime.llama import capture_log, llama_module

    llama_cpp = llama_module()

    params = _params(quant, options, dry_run=tmp is None)
    outcome: dict[str, object] = {}

    def work() -> None:
        try:
            outcome["rc"] = llama_cpp.llama_model_quantize(
                os.fsencode(source), os.fsencode(tmp if tmp is not None else os.devnull), ctypes.byref(params))
        except BaseException as exc:  # pragma: no cover - ctypes errors
            outcome["error"] = exc

    # A worker thread keeps the main thread responsive to Ctrl-C during a long C call.
    worker = threading.Thread(target=work, name="llama-quantize", daemon=True)
    label = f"{'Sizing' if tmp is None else 'Quantizing'} {quant.name}"
    with capture_log() as log, progress.file_growth(label, tmp or os.devnull, expected_bytes):
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.1)
        except KeyboardInterrupt:
            raise BuildInterrupted(f"interrupted while quantizing {quant.name}; no partial file was kept") from None
    if "error" in outcome:
        raise QuantError(f"llama.cpp failed to quantize to {quant.name}: {outcome['error']}")
    if outcome.get("rc") != 0:
        reason = _llama_reason(log)
        _check_disk_full(tmp, reason, quant)
        raise QuantError(f"llama.cpp failed to quantize {source.name} to {quant.name}" +
                         (f": {reason}" if reason else " (rerun with -v for llama.cpp's log)"))
    return list(log)


def _check_disk_full(tmp: Path | None, reason: str | None, quant: QuantType) -> None:
    """llama.cpp reports a full disk as `basic_ios::clear: iostream error`: say what it means."""
    if tmp is None:
        return
    try:
        free = shutil.disk_usage(tmp.parent).free
    except OSError:
        return
    if free < (1 << 20) or "No space left" in (reason or ""):
        raise OutputError(f"disk full while writing the {quant.name} GGUF in {tmp.parent} "
                          f"({free / 2**20:.1f} MiB free); free some space or choose another -o")
    if "iostream error" in (reason or ""):
        raise OutputError(f"writing the {quant.name} GGUF in {tmp.parent} failed (llama.cpp: iostream error); "
                          f"the disk may be full ({free / 2**20:.0f} MiB free) or unwritable")


def _llama_reason(log: list[str] | str) -> str | None:
    lines = ("".join(log) if isinstance(log, list) else log).splitlines()
    for line in reversed(lines):
        if "error" in line.lower() or "failed" in line.lower():
            return line.strip()[:240]
    return None


def _run_native(source: Path, tmp: Path | None, quant: QuantType, options: QuantOptions,
                expected_bytes: int | None = None) -> str:
    from edgepack.runtime.llama import is_verbose
    from edgepack.runtime.native import build_native

    tool = build_native(("llama-quantize",)).tool("llama-quantize")
    cmd = [str(tool), *options.llama_quantize_args()]
    if tmp is None:
        cmd += ["--dry-run", str(source), quant.name]
    else:
        cmd += [str(source), str(tmp), quant.name]
    if options.nthread > 0:
        cmd.append(str(options.nthread))
    label = f"{'Sizing' if tmp is None else 'Quantizing'} {quant.name}"
    with progress.file_growth(label, tmp or os.devnull, expected_bytes):
        proc = procs.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            output, _ = proc.communicate()
        except KeyboardInterrupt:
            proc.kill()
            proc.wait()
            raise BuildInterrupted(f"interrupted while quantizing {quant.name}; no partial file was kept") from None
    if is_verbose():
        print(output)
    if proc.returncode != 0:
        reason = _llama_reason(output) or f"exit {proc.returncode}"
        _check_disk_full(tmp, reason, quant)
        raise QuantError(f"llama-quantize failed on {source.name} → {quant.name}: {reason}")
    return output
