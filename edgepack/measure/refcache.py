"""The reference's token distributions, computed once per (reference, text, n_ctx, chunks) and
cached as llama.cpp stores them for `--kl-divergence-base` (per position: a scale, a minimum and
one uint16 per vocabulary entry) in memory-mapped files, so every quant reuses them; and the KL
divergence of a quant against them.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgepack import paths, progress
from edgepack.errors import EvalError
from edgepack.hashing import sha256_file
from edgepack.measure.scoring import (ChunkScorer, Divergence, EvalSettings, _accumulate_kld, _chunks_of,
                                     _divergence, _KldSums, compress_log_probs, mean_and_uncertainty, note_chunk_cap,
                                     token_nll)

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
        if settings.n_chunks is None:
            note_chunk_cap(meta.get("n_available", 0), meta["n_ctx"])
        meta.pop("n_available", None)
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
            _check_space(staging, n_chunks, n_pos, scorer.n_vocab)
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
            meta = {"n_ctx": n_ctx, "n_chunks": n_chunks, "n_available": len(tokens) // n_ctx, "n_vocab": scorer.n_vocab,
                    "ppl": float(np.exp(mean)), "ppl_err": float(np.exp(mean)) * err}
        (staging / "meta.json").write_text(json.dumps(meta))
        os.replace(staging, directory)
    finally:
        if staging.exists():
            import shutil

            shutil.rmtree(staging, ignore_errors=True)
    meta.pop("n_available", None)
    return ReferenceLogProbs(directory, **meta)


def _check_space(directory: Path, n_chunks: int, n_pos: int, n_vocab: int) -> None:
    """The cached distributions are n_chunks × n_pos × n_vocab uint16s: refuse before planning them."""
    from edgepack.source import ensure_free_space

    needed = n_chunks * n_pos * (2 * n_vocab + 8) + (1 << 20)
    ensure_free_space(directory, needed, f"the reference's token distributions ({n_chunks} chunks; fewer with --chunks N)")


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
