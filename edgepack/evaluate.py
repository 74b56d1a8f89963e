"""Stage 3: what each quant costs in quality against the 16-bit reference.

Perplexity and KL divergence follow `llama-perplexity` exactly: the text (tokenized with BOS
where the model adds one) is cut into chunks of n_ctx tokens, each chunk starts with BOS, and
only its second half is scored. The reference's token distributions are computed once per
(reference, text, n_ctx, chunks) and stored as llama.cpp stores them for
`--kl-divergence-base` (per position: a scale, a minimum and one uint16 per vocabulary entry),
in a memory-mapped cache file, so long texts never sit in memory and every quant reuses them.

Decoding goes through llama.cpp's C API in one batch per chunk; the arithmetic on the logits
is numpy, a few vectorised passes per chunk.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import paths, progress
from .errors import EdgepackError
from .hashing import sha256_file


class EvalError(EdgepackError):
    """Unusable evaluation text or settings."""


@dataclass
class EvalSettings:
    n_ctx: int = 512
    n_chunks: int | None = None  # None: every whole chunk of the text
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
        from .bench import default_threads
        from .llama_runtime import loaded_model, new_context

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
        import llama_cpp

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


def _chunks_of(tokens: np.ndarray, settings: EvalSettings) -> int:
    n_ctx = settings.n_ctx
    if len(tokens) < 2 * n_ctx:
        raise EvalError(f"the evaluation text has {len(tokens)} tokens; at least {2 * n_ctx} are needed for "
                        f"--ctx {n_ctx} (give a longer text or a smaller --ctx)")
    available = len(tokens) // n_ctx
    return available if settings.n_chunks is None else min(settings.n_chunks, available)


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


# ---------------------------------------------------------------- the reference's distributions

@dataclass
class ReferenceLogProbs:
    """The reference's compressed log-probabilities for one text and setting, on disk."""

    directory: Path
    n_ctx: int
    n_chunks: int
    n_vocab: int
    ppl: float
    ppl_err: float

    @property
    def tokens(self) -> np.ndarray:
        return np.load(self.directory / "tokens.npy", mmap_mode="r")

    def chunk(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        header = np.load(self.directory / "header.npy", mmap_mode="r")
        values = np.load(self.directory / "values.npy", mmap_mode="r")
        return np.asarray(header[i]), np.asarray(values[i])


def _reference_key(reference: Path, text: str, settings: EvalSettings) -> str:
    digest = hashlib.sha256()
    for part in (sha256_file(reference), hashlib.sha256(text.encode()).hexdigest(), str(settings.n_ctx),
                 str(settings.n_chunks)):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:24]


def reference_log_probs(reference: str | Path, text: str, settings: EvalSettings = EvalSettings()) -> ReferenceLogProbs:
    """Compute (once) and cache the reference's compressed log-probabilities for `text`."""
    reference = Path(reference)
    if not text.strip():
        raise EvalError("the evaluation text is empty")
    directory = paths.cache_root() / "eval-reference" / _reference_key(reference, text, settings)
    meta_path = directory / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        return ReferenceLogProbs(directory, **meta)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.with_name(directory.name + f".{os.getpid()}.partial")
    staging.mkdir(exist_ok=True)
    try:
        with ChunkScorer(reference, settings) as scorer:
            tokens = scorer.tokenize(text)
            n_chunks = _chunks_of(tokens, settings)
            n_ctx, first = settings.n_ctx, settings.n_ctx // 2
            n_pos = n_ctx - 1 - first
            np.save(staging / "tokens.npy", tokens[: n_chunks * n_ctx])
            header = np.lib.format.open_memmap(staging / "header.npy", mode="w+", dtype=np.float32,
                                               shape=(n_chunks, n_pos, 2))
            values = np.lib.format.open_memmap(staging / "values.npy", mode="w+", dtype=np.uint16,
                                               shape=(n_chunks, n_pos, scorer.n_vocab))
            nll = nll2 = 0.0
            with progress.step(f"Reference distributions ({reference.name})", total=n_chunks) as bar:
                for i in range(n_chunks):
                    chunk = tokens[i * n_ctx:(i + 1) * n_ctx]
                    logits = scorer.second_half_logits(chunk)
                    header[i], values[i] = compress_log_probs(logits)
                    token_values = token_nll(logits, chunk[first + 1:])
                    nll += float(token_values.sum())
                    nll2 += float((token_values ** 2).sum())
                    bar.advance()
            header.flush()
            values.flush()
            del header, values
            count = n_chunks * n_pos
            mean, err = mean_and_uncertainty(nll, nll2, count)
            meta = {"n_ctx": n_ctx, "n_chunks": n_chunks, "n_vocab": scorer.n_vocab,
                    "ppl": float(np.exp(mean)), "ppl_err": float(np.exp(mean)) * err}
        (staging / "meta.json").write_text(json.dumps(meta))
        os.replace(staging, directory)
    finally:
        if staging.exists():
            import shutil

            shutil.rmtree(staging, ignore_errors=True)
    return ReferenceLogProbs(directory, **meta)


def divergence(model_path: str | Path, base: ReferenceLogProbs, settings: EvalSettings = EvalSettings()) -> Divergence:
    """KL divergence, same-top-token share, RMS Δp and perplexities against the reference."""
    start = time.perf_counter()
    if settings.n_ctx != base.n_ctx:
        raise EvalError(f"the reference was scored with n_ctx {base.n_ctx}, not {settings.n_ctx}")
    tokens = np.asarray(base.tokens)
    first = base.n_ctx // 2
    sums = _KldSums()
    with ChunkScorer(model_path, settings) as scorer:
        if scorer.n_vocab != base.n_vocab:
            raise EvalError(f"{Path(model_path).name} has a vocabulary of {scorer.n_vocab} tokens but the reference "
                            f"has {base.n_vocab}: they are not the same model")
        with progress.step(f"KL divergence of {Path(model_path).name}", total=base.n_chunks) as bar:
            for i in range(base.n_chunks):
                chunk = tokens[i * base.n_ctx:(i + 1) * base.n_ctx]
                header, values = base.chunk(i)
                _accumulate_kld(sums, scorer.second_half_logits(chunk), chunk[first + 1:], header, values)
                bar.advance()
    return _divergence(sums, base.n_chunks, progress.elapsed(start))


__all__ = ["EvalSettings", "Perplexity", "Divergence", "EvalError", "perplexity", "reference_log_probs", "divergence",
           "ChunkScorer", "compress_log_probs", "mean_and_uncertainty", "percentile", "token_nll"]


# ---------------------------------------------------------------- a whole bundle (or a list of GGUFs)

DEFAULT_MEMORY_CONTEXTS = (512, 1024, 2048)


@dataclass
class EvalPlan:
    """What to measure; the same plan gives the same rows, so an interrupted run resumes."""

    text: str | None = None  # a file; None: the default text
    settings: EvalSettings = field(default_factory=EvalSettings)
    tasks: tuple[str, ...] = ()
    speed: bool = True
    parallel: tuple[int, ...] = (1,)
    n_prompt: int = 512
    n_gen: int = 128
    repetitions: int = 3
    memory_contexts: tuple[int, ...] = DEFAULT_MEMORY_CONTEXTS
    budget: str | None = None
    max_kld: float | None = None


def _models_to_evaluate(targets: list[str | Path], reference: str | Path | None):
    """(model name, reference path, [(quant, file path, size, bpw)], bundle dir or None)."""
    from .bundle import MANIFEST, load_manifest
    from .gguf_file import read_gguf

    missing = [t for t in targets if not Path(t).exists()]
    if missing:
        raise EvalError(f"{missing[0]}: no such file or directory (give a bundle directory or GGUF files)")
    if len(targets) == 1 and Path(targets[0]).is_dir():
        bundle = Path(targets[0])
        manifest = load_manifest(bundle)
        ref = Path(reference) if reference else Path(manifest.reference["path"])
        if not ref.is_file():
            raise EvalError(f"the bundle's 16-bit reference {ref} is gone (cache cleared?); pass --reference "
                            "F16.gguf or rebuild")
        files = [(f.quant, bundle / f.file, f.size_bytes, f.bits_per_weight) for f in manifest.files]
        return manifest.model.get("name", bundle.name), ref, files, bundle
    if any(Path(t).is_dir() for t in targets):
        raise EvalError(f"give one bundle directory, or GGUF files with --reference (see {MANIFEST})")
    if reference is None:
        raise EvalError("GGUF files need --reference F16.gguf (the 16-bit model they were made from)")
    files = []
    for t in targets:
        info = read_gguf(t)
        files.append((info.file_type, Path(t), info.size_bytes, info.bits_per_weight))
    return read_gguf(reference).name or Path(reference).stem, Path(reference), files, None


def _plan_key(plan: EvalPlan, reference: Path, text_sha: str) -> str:
    data = json.dumps({"plan": asdict(plan), "reference": sha256_file(reference), "text": text_sha}, sort_keys=True,
                      default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def evaluate(targets: list[str | Path], *, reference: str | Path | None = None, plan: EvalPlan = EvalPlan(),
             output_dir: str | Path | None = None):
    """Measure every GGUF against the 16-bit reference and write the report.

    A bundle gets report.{md,json,csv}, charts, `manifest.extra["evaluation"]` and a model card
    that shows them. Each finished row is saved at once (eval-rows.jsonl), so an interrupted run
    loses nothing finished and the next run with the same plan resumes.
    """
    from .bench import default_threads, measure_peak_memory, measure_speed
    from .report import Report, Row, parse_size, recommend, write_report
    from .tasks import load_task, run_task
    from .texts import load_eval_text

    name, ref_path, files, bundle = _models_to_evaluate(list(targets), reference)
    text = load_eval_text(plan.text)
    tasks = [load_task(t) for t in plan.tasks]  # bad task files fail before any measuring
    budget = parse_size(plan.budget) if plan.budget else None
    settings = plan.settings
    if settings.n_threads is None:
        settings = EvalSettings(**(asdict(settings) | {"n_threads": default_threads()}))
    out = Path(output_dir) if output_dir else (bundle if bundle else Path("eval-report"))
    out.mkdir(parents=True, exist_ok=True)
    key = _plan_key(plan, ref_path, text.sha256)
    rows_path = out / "eval-rows.jsonl"
    done: dict[str, Row] = {}
    if rows_path.is_file():
        for line in rows_path.read_text().splitlines():
            record = json.loads(line)
            if record.get("plan") == key:
                done[record["row"]["file"]] = Row(**record["row"])
    else:
        rows_path.write_text("")

    base = reference_log_probs(ref_path, text.text, settings)
    from .gguf_file import read_gguf

    ref_info = read_gguf(ref_path)
    models = [(ref_info.file_type, ref_path, ref_info.size_bytes, ref_info.bits_per_weight, True)]
    models += [(q, p, s, b, False) for q, p, s, b in files]
    rows: list[Row] = []
    for quant, path, size, bpw, is_ref in models:
        if str(path.name) in done:
            rows.append(done[str(path.name)])
            continue
        start = time.perf_counter()
        row = Row(quant=quant, file=path.name, size_bytes=size, bits_per_weight=bpw, is_reference=is_ref)
        if is_ref:
            row.ppl, row.ppl_err = base.ppl, base.ppl_err
            row.kld, row.same_top, row.rms_dp = 0.0, 1.0, 0.0
        else:
            d = divergence(path, base, settings)
            row.ppl, row.ppl_err, row.kld, row.kld_err = d.ppl, d.ppl_err, d.mean_kld, d.mean_kld_err
            row.kld_median, row.kld_p99, row.kld_max = d.median_kld, d.p99_kld, d.max_kld
            row.same_top, row.rms_dp = d.same_top, d.rms_dp
        for task in tasks:
            r = run_task(path, task, n_threads=settings.n_threads, n_gpu_layers=settings.n_gpu_layers)
            row.tasks[task.name] = {"accuracy": r.accuracy, "stderr": r.stderr, "n": r.n, "kind": r.kind}
        if plan.speed:
            for n_parallel in plan.parallel:
                s = measure_speed(path, n_prompt=plan.n_prompt, n_gen=plan.n_gen, repetitions=plan.repetitions,
                                  n_threads=settings.n_threads, n_gpu_layers=settings.n_gpu_layers,
                                  n_parallel=n_parallel, flash_attn=settings.flash_attn)
                row.speed[str(n_parallel)] = {"pp_tps": s.pp_tps, "pp_tps_sd": s.pp_tps_sd, "tg_tps": s.tg_tps,
                                              "tg_tps_sd": s.tg_tps_sd, "ttft_ms": s.ttft_ms}
        for n_ctx in plan.memory_contexts:
            memory = measure_peak_memory(path, n_ctx, settings.n_gpu_layers)
            row.peak_rss[str(n_ctx)] = memory["peak"]
            if memory.get("vram_used") is not None:
                row.peak_vram[str(n_ctx)] = memory["vram_used"]
        row.seconds = progress.elapsed(start)
        with rows_path.open("a") as fh:  # saved as soon as it is finished
            fh.write(json.dumps({"plan": key, "row": asdict(row)}) + "\n")
        rows.append(row)

    from .profile import this_machine

    machine = this_machine(measure_bandwidth=False)
    summary = machine.summary()
    notes = []
    if bundle is not None:
        from .bundle import load_manifest

        manifest = load_manifest(bundle)
        if manifest.source.get("kind") == "default":
            from .default_model import DEFAULT_MODEL_NOTE

            notes.append(DEFAULT_MODEL_NOTE)
        if manifest.imatrix:
            notes.append(f"Quants use an importance matrix from {manifest.imatrix.get('dataset')!r}.")
    report = Report(
        model=name, reference=ref_path.name, text=text.name,
        settings={"n_ctx": settings.n_ctx, "n_chunks": base.n_chunks, "n_threads": settings.n_threads,
                  "n_gpu_layers": settings.n_gpu_layers, "flash_attn": settings.flash_attn,
                  "tasks": [t.name for t in tasks],
                  "speed": ({"n_prompt": plan.n_prompt, "n_gen": plan.n_gen, "repetitions": plan.repetitions,
                             "n_threads": settings.n_threads, "n_gpu_layers": settings.n_gpu_layers,
                             "parallel": list(plan.parallel)} if plan.speed else None),
                  "memory_contexts": list(plan.memory_contexts)},
        machine={"cpu": summary.get("cpu_info"), "cores": machine.cpu.logical_cores if machine.cpu else None,
                 "threads_used": settings.n_threads, "gpu": summary.get("gpu_info"), "os": summary.get("os"),
                 "memory_bytes": summary.get("memory_total_bytes"), "llama_cpp": _llama_build()},
        rows=rows, notes=notes,
        recommendation=recommend(rows, budget_bytes=budget, max_kld=plan.max_kld),
    )
    written = write_report(report, out)
    if bundle is not None:
        _record_in_bundle(bundle, report)
    return report, written


def _llama_build() -> str:
    from .toolchain import find_toolchain

    toolchain = find_toolchain()
    return toolchain.build if toolchain else "unknown"


def _record_in_bundle(bundle: Path, report) -> None:
    from .atomic import write_text_atomic
    from .bundle import load_manifest, render_model_card, write_manifest
    from .report import table_rows

    manifest = load_manifest(bundle)
    manifest.extra["evaluation"] = {
        "text": report.text, "settings": report.settings, "machine": report.machine,
        "results": [{"quant": r.quant, "kld": r.kld, "ppl": r.ppl, "same_top": r.same_top,
                     "tg_tps": r.speed.get("1", {}).get("tg_tps")} for r in report.rows],
        "report": "report.md", "recommendation": report.recommendation,
    }
    write_manifest(bundle, manifest)
    header, cells = table_rows(report)
    table = "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                      ["| " + " | ".join(row) + " |" for row in cells])
    write_text_atomic(bundle / "README.md", render_model_card(manifest, evaluation_table=table))
