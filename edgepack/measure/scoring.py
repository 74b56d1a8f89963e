"""The scoring core shared by perplexity, KL divergence and tasks: llama-perplexity's method.

The text (tokenized with BOS where the model adds one) is cut into chunks of n_ctx tokens, each
chunk starts with BOS, and only its second half is scored. Decoding goes through llama.cpp's C
API in one batch per chunk; the arithmetic on the logits is numpy, a few vectorised passes per chunk.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgepack import progress
from edgepack.errors import EvalError


@dataclass
class EvalSettings:
    n_ctx: int = 512
    n_chunks: int | None = None  # None: every whole chunk of the text, at most DEFAULT_MAX_CHUNKS
    n_threads: int | None = None
    n_gpu_layers: int = 0
    flash_attn: bool | None = None  # None: llama.cpp's "auto", as llama-perplexity's default

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Perplexity:
    ppl: float
    ppl_err: float
    n_tokens: int  # scored predictions
    n_chunks: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Divergence:
    """KL divergence and token-probability statistics against the reference (llama-perplexity's)."""

    mean_kld: float
    mean_kld_err: float
    median_kld: float
    p99_kld: float
    max_kld: float
    same_top: float  # share of positions whose most likely token is the reference's
    same_top_err: float
    rms_dp: float  # RMS of the change in the probability of the right token
    rms_dp_err: float
    ppl: float
    ppl_err: float
    ppl_base: float
    ppl_ratio: float
    ppl_ratio_err: float
    n_tokens: int
    n_chunks: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- statistics (pure)

def mean_and_uncertainty(total: float, total2: float, count: int) -> tuple[float, float]:
    """llama-perplexity's estimate of a mean and its standard error from sums."""
    if count < 1:
        return 0.0, 0.0
    mean = total / count
    var = total2 / count - mean * mean
    return mean, (float(np.sqrt(var / (count - 1))) if var > 0 and count > 10 else 0.0)


def percentile(sorted_values: np.ndarray, fraction: float) -> float:
    """Linear interpolation between order statistics, as llama-perplexity computes them."""
    if fraction <= 0:
        return float(sorted_values[0])
    if fraction >= 1:
        return float(sorted_values[-1])
    p = fraction * (len(sorted_values) - 1)
    i = int(p)
    p -= i
    return float((1 - p) * sorted_values[i] + p * sorted_values[min(i + 1, len(sorted_values) - 1)])


def log_softmax_rows(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the max logit and log(sum(exp(logit - max))) in double precision."""
    top = logits.max(axis=1)
    # expf per element and a double accumulator, as llama.cpp does (float64 exp would be 2x slower).
    shifted = logits - top[:, None]
    np.exp(shifted, out=shifted)
    return top, np.log(shifted.sum(axis=1, dtype=np.float64))


def token_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Negative log-likelihood of `targets[i]` under row i of `logits`."""
    top, lse = log_softmax_rows(logits)
    return top + lse - logits[np.arange(len(targets)), targets]


def compress_log_probs(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """llama.cpp's uint16 form of each row's log-probabilities (--kl-divergence-base).

    Returns (header [rows, 2] = scale, min log-prob; values [rows, vocab] uint16).
    """
    top, lse = log_softmax_rows(logits)
    lse = lse.astype(np.float32)
    low = np.maximum(logits.min(axis=1), top - 16)
    scale = (top - low) / np.float32(65535)
    header = np.stack([scale, low - top - lse], axis=1).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.rint((logits - low[:, None]) * (1 / scale)[:, None])
    q = np.where((logits > low[:, None]) & (scale[:, None] > 0), q, 0)
    return header, q.astype(np.uint16)


@dataclass
class _KldSums:
    nll: float = 0.0
    nll2: float = 0.0
    nll_base: float = 0.0
    nll_base2: float = 0.0
    nll_nll_base: float = 0.0
    kld: float = 0.0
    kld2: float = 0.0
    p_diff2: float = 0.0
    p_diff4: float = 0.0
    same_top: int = 0
    count: int = 0
    kld_values: list = field(default_factory=list)


def _accumulate_kld(sums: _KldSums, logits: np.ndarray, targets: np.ndarray, header: np.ndarray,
                    values: np.ndarray) -> None:
    top, lse = log_softmax_rows(logits)
    rows = np.arange(len(targets))
    nll = (top + lse - logits[rows, targets]).astype(np.float32)
    scale, min_log_prob = header[:, 0], header[:, 1]
    base_log_p = values.astype(np.float32)  # in-place arithmetic from here: one vocabulary-sized buffer each
    base_log_p *= scale[:, None]
    base_log_p += min_log_prob[:, None]
    nll_base = -base_log_p[rows, targets]
    base_top = values.argmax(axis=1)  # log p_base is increasing in the stored value
    # Σ p_base·(log p_base − log p), over entries with log p_base > −16 (llama.cpp's cut-off).
    p_base = np.exp(base_log_p)
    p_base *= base_log_p > -16.0
    base_log_p -= logits
    base_log_p += (top + lse).astype(np.float32)[:, None]
    kld = np.einsum("ij,ij->i", p_base, base_log_p, dtype=np.float64)
    p_diff = np.exp(-nll) - np.exp(-nll_base)
    sums.nll += float(nll.sum(dtype=np.float64))
    sums.nll2 += float((nll.astype(np.float64) ** 2).sum())
    sums.nll_base += float(nll_base.sum(dtype=np.float64))
    sums.nll_base2 += float((nll_base.astype(np.float64) ** 2).sum())
    sums.nll_nll_base += float((nll.astype(np.float64) * nll_base).sum())
    sums.kld += float(kld.sum())
    sums.kld2 += float((kld ** 2).sum())
    p_diff2 = p_diff.astype(np.float64) ** 2
    sums.p_diff2 += float(p_diff2.sum())
    sums.p_diff4 += float((p_diff2 ** 2).sum())
    sums.same_top += int((logits.argmax(axis=1) == base_top).sum())
    sums.count += len(targets)
    sums.kld_values.append(kld.astype(np.float32))


def _divergence(sums: _KldSums, n_chunks: int, seconds: float) -> Divergence:
    log_ppl, log_ppl_err = mean_and_uncertainty(sums.nll, sums.nll2, sums.count)
    log_base, log_base_err = mean_and_uncertainty(sums.nll_base, sums.nll_base2, sums.count)
    cov = 0.0
    if sums.count >= 10:
        cov = (sums.nll_nll_base / sums.count - (sums.nll / sums.count) * (sums.nll_base / sums.count)) / (sums.count - 1)
    ratio_err = float(np.sqrt(max(log_ppl_err ** 2 + log_base_err ** 2 - 2 * cov, 0.0)))
    kld_mean, kld_err = mean_and_uncertainty(sums.kld, sums.kld2, sums.count)
    mse, mse_err = mean_and_uncertainty(sums.p_diff2, sums.p_diff4, sums.count)
    rms = float(np.sqrt(mse))
    same = sums.same_top / sums.count
    values = np.sort(np.concatenate(sums.kld_values))
    median = float(0.5 * (values[len(values) // 2] + values[len(values) // 2 - 1]) if len(values) % 2 == 0
                   else values[len(values) // 2])
    ppl = float(np.exp(log_ppl))
    return Divergence(
        mean_kld=kld_mean, mean_kld_err=kld_err, median_kld=median, p99_kld=percentile(values, 0.99),
        max_kld=float(values[-1]), same_top=same, same_top_err=float(np.sqrt(same * (1 - same) / (sums.count - 1))),
        rms_dp=rms, rms_dp_err=(0.5 / rms * mse_err if rms > 0 else 0.0),
        ppl=ppl, ppl_err=ppl * log_ppl_err, ppl_base=float(np.exp(log_base)),
        ppl_ratio=float(np.exp(log_ppl - log_base)), ppl_ratio_err=float(np.exp(log_ppl - log_base)) * ratio_err,
        n_tokens=sums.count, n_chunks=n_chunks, seconds=seconds)


# ---------------------------------------------------------------- llama.cpp adapter

class ChunkScorer:
    """Runs chunks of n_ctx tokens through a model and yields the logits of their second half."""

    def __init__(self, model_path: str | Path, settings: EvalSettings):
        from edgepack.measure.speed import default_threads
        from edgepack.runtime.llama import loaded_model, new_context

        self._stack = []
        self.settings = settings
        model_cm = loaded_model(model_path, settings.n_gpu_layers)
        self.model = model_cm.__enter__()
        self._stack.append(model_cm)
        n = settings.n_ctx
        ctx_cm = new_context(self.model, n_ctx=n, n_batch=n, n_ubatch=n, n_threads=settings.n_threads or default_threads(),
                             flash_attn=settings.flash_attn)
        self.ctx = ctx_cm.__enter__()
        self._stack.append(ctx_cm)
        from edgepack.runtime.llama import llama_module

        llama_cpp = llama_module()

        self._llama = llama_cpp
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self.bos = int(llama_cpp.llama_vocab_bos(self.vocab))
        self.batch = llama_cpp.llama_batch_init(n, 0, 1)

    def close(self) -> None:
        self._llama.llama_batch_free(self.batch)
        while self._stack:
            self._stack.pop().__exit__(None, None, None)

    def __enter__(self) -> "ChunkScorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def tokenize(self, text: str) -> np.ndarray:
        """Tokens of the whole text, with BOS first where the model adds one (llama-perplexity's way)."""
        data = text.encode("utf-8")
        capacity = len(data) + 16
        buf = (self._llama.llama_token * capacity)()
        n = self._llama.llama_tokenize(self.vocab, data, len(data), buf, capacity, True, False)
        if n < 0:
            capacity = -n
            buf = (self._llama.llama_token * capacity)()
            n = self._llama.llama_tokenize(self.vocab, data, len(data), buf, capacity, True, False)
        return np.frombuffer(buf, dtype=np.int32, count=n).copy()

    def second_half_logits(self, chunk: np.ndarray) -> np.ndarray:
        """Decode one chunk (BOS in place of its first token) and return logits for positions n_ctx/2..n_ctx-2."""
        tokens = chunk.copy()
        if self.add_bos:
            tokens[0] = self.bos
        first = len(tokens) // 2
        return self.decode_logits(tokens, first)[:-1]  # the last position predicts beyond the chunk

    def decode_logits(self, tokens: np.ndarray, first: int) -> np.ndarray:
        """Decode `tokens` from an empty cache; logits of positions first..len-1 (a view, valid until the next call)."""
        llama = self._llama
        n = len(tokens)
        if n > self.settings.n_ctx:
            raise EvalError(f"a sequence of {n} tokens does not fit the context of {self.settings.n_ctx}")
        llama.llama_memory_clear(llama.llama_get_memory(self.ctx), True)
        b = self.batch
        for k in range(n):
            b.token[k] = int(tokens[k])
            b.pos[k] = k
            b.n_seq_id[k] = 1
            b.seq_id[k][0] = 0
            b.logits[k] = k >= first
        b.n_tokens = n
        if llama.llama_decode(self.ctx, b) != 0:
            raise EvalError("llama.cpp failed to decode (out of memory?)")
        return np.ctypeslib.as_array(llama.llama_get_logits(self.ctx), shape=(n - first, self.n_vocab))

    def tokenize_plain(self, text: str, add_bos: bool) -> np.ndarray:
        data = text.encode("utf-8")
        capacity = len(data) + 16
        buf = (self._llama.llama_token * capacity)()
        n = self._llama.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_bos and self.add_bos, False)
        return np.frombuffer(buf, dtype=np.int32, count=max(n, 0)).copy()


DEFAULT_MAX_CHUNKS = 100  # without --chunks, at most this many (a long text would take hours)
_capped_said: set[tuple[int, int]] = set()


def _chunks_of(tokens: np.ndarray, settings: EvalSettings) -> int:
    n_ctx = settings.n_ctx
    if len(tokens) < 2 * n_ctx:
        raise EvalError(f"the evaluation text has {len(tokens)} tokens; at least {2 * n_ctx} are needed for "
                        f"--ctx {n_ctx} (give a longer text or a smaller --ctx)")
    available = len(tokens) // n_ctx
    if settings.n_chunks is not None:
        return min(settings.n_chunks, available)
    note_chunk_cap(available, n_ctx)
    return min(available, DEFAULT_MAX_CHUNKS)


def note_chunk_cap(available: int, n_ctx: int) -> None:
    """Say (once per text and context) that the default cap left chunks out, and how to raise it."""
    if available > DEFAULT_MAX_CHUNKS and (available, n_ctx) not in _capped_said:
        _capped_said.add((available, n_ctx))
        progress.warn(f"the evaluation text has {available} chunks of {n_ctx} tokens; scoring the first "
                      f"{DEFAULT_MAX_CHUNKS} (raise the cap with --chunks N)")


def perplexity(model_path: str | Path, text: str, settings: EvalSettings = EvalSettings()) -> Perplexity:
    """Perplexity of `text` under the model, by llama-perplexity's method and with its error estimate."""
    if not text.strip():
        raise EvalError("the evaluation text is empty")
    start = time.perf_counter()
    with ChunkScorer(model_path, settings) as scorer:
        tokens = scorer.tokenize(text)
        n_chunks = _chunks_of(tokens, settings)
        n_ctx = settings.n_ctx
        first = n_ctx // 2
        nll = nll2 = 0.0
        count = 0
        with progress.step(f"Perplexity of {Path(model_path).name}", total=n_chunks) as bar:
            for i in range(n_chunks):
                chunk = tokens[i * n_ctx:(i + 1) * n_ctx]
                values = token_nll(scorer.second_half_logits(chunk), chunk[first + 1:])
                nll += float(values.sum())
                nll2 += float((values ** 2).sum())
                count += len(values)
                bar.advance()
    mean, err = mean_and_uncertainty(nll, nll2, count)
    ppl = float(np.exp(mean))
    return Perplexity(ppl, ppl * err, count, n_chunks, progress.elapsed(start))
