"""Peak memory of loading a GGUF with a context and decoding a batch, in a fresh process.

`measure_peak_memory` runs this module as `python -m edgepack.measure.peak_memory PATH N_CTX
N_GPU_LAYERS` so the peak is the model's and the context's, not the caller's. The child samples
its own resident set through psutil (every platform psutil supports; Windows also reports the
kernel's peak working set) while it loads and decodes, and counts GPU memory for its own process
id through NVML (nvidia-ml-py) when that is installed. Where NVML cannot list per-process memory
(some containers and drivers), the device's used memory before and after is reported instead,
and `vram_source` says which of the two it is.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import threading
from pathlib import Path

SAMPLE_SECONDS = 0.002


class _RssSampler:
    """The highest resident set size seen: a background thread polling psutil."""

    def __init__(self):
        import psutil

        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sample()

    def sample(self) -> int:
        info = self.process.memory_info()
        self.peak = max(self.peak, info.rss, getattr(info, "peak_wset", 0))
        return info.rss

    def __enter__(self) -> "_RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def _nvml_handles():
    try:
        import pynvml
    except ImportError:
        return None, []
    try:
        pynvml.nvmlInit()
        return pynvml, [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception:  # NVML raises its own error types when there is no driver or GPU
        return None, []


def _device_used(nvml, handles) -> int:
    return sum(int(nvml.nvmlDeviceGetMemoryInfo(h).used) for h in handles)


def process_vram(nvml, handles, pid: int) -> int | None:
    """GPU memory NVML attributes to `pid` on every device, or None when it lists no such process."""
    total, found = 0, False
    for h in handles:
        try:
            procs = nvml.nvmlDeviceGetComputeRunningProcesses(h) + nvml.nvmlDeviceGetGraphicsRunningProcesses(h)
        except Exception:
            return None
        for p in procs:
            if p.pid == pid and p.usedGpuMemory is not None:
                total += int(p.usedGpuMemory)
                found = True
    return total if found else None


def _child(path: str, n_ctx: int, n_gpu_layers: int, hold: bool) -> dict:
    from edgepack.runtime.llama import llama_module

    llama_cpp = llama_module()

    quiet = llama_cpp.llama_log_callback(lambda *a: None)  # keep a reference: llama.cpp holds the pointer
    llama_cpp.llama_log_set(quiet, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()
    nvml, handles = _nvml_handles() if n_gpu_layers > 0 else (None, [])
    device_before = _device_used(nvml, handles) if handles else None
    with _RssSampler() as rss:
        base = rss.sample()
        mp = llama_cpp.llama_model_default_params()
        mp.n_gpu_layers = n_gpu_layers
        model = llama_cpp.llama_model_load_from_file(path.encode(), mp)
        if not model:
            raise SystemExit(f"{path}: llama.cpp could not load the model")
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.flash_attn_type = n_ctx, 512, 512, 1
        ctx = llama_cpp.llama_init_from_model(model, cp)
        vocab = llama_cpp.llama_model_get_vocab(model)
        n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        n = min(512, n_ctx - 8)
        tokens = (ctypes.c_int32 * n)(*[(i * 7919) % n_vocab for i in range(n)])
        if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(tokens, n)) != 0:
            raise SystemExit("llama_decode failed (out of memory?)")
        one = (ctypes.c_int32 * 1)(1)
        for _ in range(4):
            if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(one, 1)) != 0:
                raise SystemExit("llama_decode failed (out of memory?)")
    vram, source = None, None
    if handles:
        vram = process_vram(nvml, handles, os.getpid())
        source = "nvml per-process"
        if vram is None:
            vram, source = _device_used(nvml, handles) - device_before, "nvml device used, before and after"
    result = {"base": base, "peak": rss.peak, "vram_used": vram, "vram_source": source}
    if hold:  # a caller that checks the numbers from outside reads them while this process lives
        print(json.dumps(result), flush=True)
        sys.stdin.readline()
    return result


def measure_peak_memory(path: str | Path, n_ctx: int, n_gpu_layers: int = 0) -> dict:
    """Peak RSS (and this process's VRAM with NVML) of a fresh process that loads `path` with
    `n_ctx` and decodes a batch of 512 tokens.

    Returns {"base": RSS before the model, "peak": peak RSS, "vram_used": bytes or None,
    "vram_source": how the VRAM was counted or None}.
    """
    from edgepack import procs

    done = procs.run([sys.executable, "-m", "edgepack.measure.peak_memory", str(path), str(n_ctx),
                      str(n_gpu_layers)], capture_output=True, text=True)
    if done.returncode != 0:
        from edgepack.errors import BenchError

        raise BenchError(f"measuring the memory of {Path(path).name} failed: "
                         f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    hold = "--hold" in argv
    args = [a for a in argv if a != "--hold"]
    if len(args) != 3:
        raise SystemExit("usage: python -m edgepack.measure.peak_memory MODEL.gguf N_CTX N_GPU_LAYERS [--hold]")
    result = _child(args[0], int(args[1]), int(args[2]), hold)
    if not hold:
        print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
