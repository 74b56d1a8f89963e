"""The speed engine: prompt and generation tokens/s and time to first token for one GGUF and setting.

It follows llama-bench's method so the two agree: random tokens (BOS first), one
warm-up run, then `repetitions` timed runs with the KV cache cleared before each; prompt
processing (pp) decodes n_prompt tokens in n_batch chunks, generation (tg) decodes n_gen
single tokens from an empty cache. Python stays out of the per-token loop's work: llama_decode
on prepared batches through llama.cpp's C API, no logits read or copied.
"""

from __future__ import annotations

import ctypes
import random
import statistics
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack.errors import BenchError
from edgepack.runtime.llama import loaded_model, new_context

@dataclass
class SpeedResult:
    model: str
    model_type: str
    model_size: int
    model_n_params: int
    n_prompt: int
    n_gen: int
    repetitions: int
    n_threads: int
    n_gpu_layers: int
    n_batch: int
    n_ubatch: int
    n_parallel: int
    flash_attn: bool | None
    pp_tps: float | None          # prompt tokens per second (mean over repetitions)
    pp_tps_sd: float | None
    tg_tps: float | None          # generated tokens per second, all sequences together
    tg_tps_sd: float | None
    ttft_ms: float | None         # prompt of n_prompt tokens + the first generated token
    ttft_ms_sd: float | None
    pp_samples_ns: list[int] = field(default_factory=list)
    tg_samples_ns: list[int] = field(default_factory=list)
    ttft_samples_ns: list[int] = field(default_factory=list)
    pp_joules: list[float] = field(default_factory=list)   # with an energy meter: joules of each timed run
    tg_joules: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


# ---------------------------------------------------------------- the engine (llama.cpp C API)

def _model_facts(model) -> tuple[str, int, int, int]:
    from edgepack.runtime.llama import llama_module

    llama_cpp = llama_module()

    buf = ctypes.create_string_buffer(256)
    llama_cpp.llama_model_desc(model, buf, len(buf))
    return (buf.value.decode(errors="replace"), int(llama_cpp.llama_model_size(model)),
            int(llama_cpp.llama_model_n_params(model)), int(llama_cpp.llama_model_n_layer(model)))


class _Runner:
    """Prepared token arrays and batches for one context; each method times one run."""

    def __init__(self, model, ctx, *, n_batch: int, n_parallel: int, seed: int = 1234):
        from edgepack.runtime.llama import llama_module

        llama_cpp = llama_module()

        self.lib = llama_cpp
        self.ctx = ctx
        self.mem = llama_cpp.llama_get_memory(ctx)
        vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        self.bos = llama_cpp.llama_vocab_bos(vocab) if llama_cpp.llama_vocab_get_add_bos(vocab) else None
        self.rng = random.Random(seed)
        self.n_batch = n_batch
        self.n_parallel = n_parallel
        self.batch = llama_cpp.llama_batch_init(max(n_parallel, 1), 0, max(n_parallel, 1))
        for i in range(n_parallel):
            self.batch.n_seq_id[i] = 1
            self.batch.seq_id[i][0] = i
            self.batch.logits[i] = 1

    def close(self) -> None:
        self.lib.llama_batch_free(self.batch)

    def clear(self) -> None:
        self.lib.llama_memory_clear(self.mem, False)

    def _decode(self, batch) -> None:
        if self.lib.llama_decode(self.ctx, batch) != 0:
            raise BenchError("llama_decode failed (context full or out of memory)")

    def prompt(self, n_prompt: int) -> int:
        """Decode n_prompt random tokens in n_batch chunks; nanoseconds."""
        tokens = [self.rng.randrange(self.n_vocab) for _ in range(n_prompt)]
        if self.bos is not None and tokens:
            tokens[0] = self.bos
        array = (ctypes.c_int32 * max(n_prompt, 1))(*tokens)
        chunks = [(i, min(self.n_batch, n_prompt - i)) for i in range(0, n_prompt, self.n_batch)]
        batches = [self.lib.llama_batch_get_one(ctypes.cast(ctypes.byref(array, 4 * i), ctypes.POINTER(ctypes.c_int32)), n)
                   for i, n in chunks]
        start = time.perf_counter_ns()
        for b in batches:
            self._decode(b)
        self.lib.llama_synchronize(self.ctx)
        return time.perf_counter_ns() - start

    def generate(self, n_gen: int) -> int:
        """n_gen decode steps of one token per sequence, continuing each sequence; nanoseconds."""
        lib, ctx, batch, n_par = self.lib, self.ctx, self.batch, self.n_parallel
        pos = [lib.llama_memory_seq_pos_max(self.mem, s) + 1 for s in range(n_par)]
        draws = [[self.rng.randrange(self.n_vocab) for _ in range(n_par)] for _ in range(n_gen)]
        if self.bos is not None and n_gen:
            draws[0] = [self.bos] * n_par
        batch.n_tokens = n_par
        start = time.perf_counter_ns()
        for step in draws:
            for s in range(n_par):
                batch.token[s] = step[s]
                batch.pos[s] = pos[s]
                pos[s] += 1
            if lib.llama_decode(ctx, batch) != 0:
                raise BenchError("llama_decode failed (context full or out of memory)")
            lib.llama_synchronize(ctx)
        return time.perf_counter_ns() - start


def _check_gpu_layers(model_path: Path, n_gpu_layers: int) -> int:
    from edgepack.gguf_file import read_gguf

    n_layers = read_gguf(model_path).n_layers or 0
    if n_gpu_layers < 0 or n_gpu_layers > n_layers + 1:
        raise BenchError(f"n_gpu_layers {n_gpu_layers} is more than {model_path.name} has: {n_layers} layers "
                         f"(use 0 to {n_layers}, or 'all')")
    return n_layers


def _measure(model, model_path: Path, facts, *, n_prompt: int, n_gen: int, repetitions: int, n_threads: int,
             n_gpu_layers: int, n_batch: int, n_parallel: int, flash_attn: bool | None,
             warmup: bool = True, meter=None) -> SpeedResult:
    """One setting on a loaded model. With `meter` (energy.EnergyMeter) the joules of every timed
    run are kept too, read right before and after it."""
    if n_prompt < 0 or n_gen < 0 or repetitions < 1 or n_batch < 1 or n_parallel < 1 or n_threads < 1:
        raise BenchError("n_prompt and n_gen must be >= 0; repetitions, n_batch, n_parallel and threads >= 1")
    n_ctx = max(n_prompt + n_parallel * max(n_gen, 1) + n_parallel, 64)
    pp, tg, ttft, pp_j, tg_j = [], [], [], [], []

    def timed(run, n, joules):
        if meter is None:
            return run(n)
        before = meter.joules()
        ns = run(n)
        joules.append(meter.joules() - before)
        return ns

    with open_runner(model, n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads, n_parallel=n_parallel,
                     flash_attn=flash_attn) as runner:
        if warmup:
            if n_prompt:
                runner.prompt(n_prompt)
                runner.clear()
            if n_gen:
                runner.generate(1)
                runner.clear()
        for _ in range(repetitions):
            if n_prompt:
                runner.clear()
                t_pp = timed(runner.prompt, n_prompt, pp_j)
                pp.append(t_pp)
                if n_gen and n_parallel == 1:
                    ttft.append(t_pp + runner.generate(1))
            if n_gen:
                runner.clear()
                tg.append(timed(runner.generate, n_gen, tg_j))
    pp_tps = [n_prompt * 1e9 / t for t in pp]
    tg_tps = [n_gen * n_parallel * 1e9 / t for t in tg]
    pp_m, pp_sd = _mean_sd(pp_tps)
    tg_m, tg_sd = _mean_sd(tg_tps)
    tt_m, tt_sd = _mean_sd([t / 1e6 for t in ttft])
    desc, size, n_params, _ = facts
    return SpeedResult(
        model=str(model_path), model_type=desc, model_size=size, model_n_params=n_params, n_prompt=n_prompt,
        n_gen=n_gen, repetitions=repetitions, n_threads=n_threads, n_gpu_layers=n_gpu_layers, n_batch=n_batch,
        n_ubatch=min(n_batch, 512), n_parallel=n_parallel, flash_attn=flash_attn,
        pp_tps=_r(pp_m), pp_tps_sd=_r(pp_sd), tg_tps=_r(tg_m), tg_tps_sd=_r(tg_sd), ttft_ms=_r(tt_m, 3),
        ttft_ms_sd=_r(tt_sd, 3), pp_samples_ns=pp, tg_samples_ns=tg, ttft_samples_ns=ttft, pp_joules=pp_j,
        tg_joules=tg_j)


@contextmanager
def open_runner(model, *, n_ctx: int, n_batch: int, n_threads: int, n_parallel: int = 1,
                flash_attn: bool | None = None):
    """A context for `model` and the runner that times prompt and generation runs on it."""
    with new_context(model, n_ctx=n_ctx, n_batch=max(n_batch, n_parallel), n_threads=n_threads, n_parallel=n_parallel,
                     flash_attn=flash_attn) as ctx:
        runner = _Runner(model, ctx, n_batch=n_batch, n_parallel=n_parallel)
        try:
            yield runner
        finally:
            runner.close()


def _r(value: float | None, digits: int = 2) -> float | None:
    return round(value, digits) if value is not None else None


def default_threads() -> int:
    from edgepack.machine.profile import this_machine

    return this_machine(measure_bandwidth=False).cpu.threads_for_inference()


def measure_speed(model_path: str | Path, *, n_prompt: int = 512, n_gen: int = 128, repetitions: int = 3,
                  n_threads: int | None = None, n_gpu_layers: int = 0, n_batch: int = 512, n_parallel: int = 1,
                  flash_attn: bool | None = None) -> SpeedResult:
    """Prompt (pp) and generation (tg) tokens/s with mean and sd over repetitions, and time to
    first token, for one GGUF and one setting. n_parallel > 1 generates that many sequences at
    once (tg_tps is their sum)."""
    from edgepack.gguf_file import check_gguf_header
    from edgepack.runtime.llama import set_llama_verbose, is_verbose

    model_path = Path(model_path)
    check_gguf_header(model_path)
    _check_gpu_layers(model_path, n_gpu_layers)
    set_llama_verbose(is_verbose())
    with loaded_model(model_path, n_gpu_layers) as model:
        return _measure(model, model_path, _model_facts(model), n_prompt=n_prompt, n_gen=n_gen,
                        repetitions=repetitions, n_threads=n_threads or default_threads(), n_gpu_layers=n_gpu_layers,
                        n_batch=n_batch, n_parallel=n_parallel, flash_attn=flash_attn)


def parse_list(value: str | None, *, n_layers: int | None = None, name: str = "value") -> list[int] | None:
    """"1,2,4" -> [1, 2, 4]; for n_gpu_layers "all" is n_layers + 1 (the output layer too)."""
    if value is None:
        return None
    out = []
    for part in str(value).split(","):
        part = part.strip().lower()
        if part in ("all", "max") and n_layers is not None:
            out.append(n_layers + 1)
        elif part.isdigit():
            out.append(int(part))
        else:
            raise BenchError(f"{name} {part!r} is not a number" + (" or 'all'" if n_layers is not None else ""))
    return out
