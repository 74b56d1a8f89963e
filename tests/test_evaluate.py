"""Perplexity and KL divergence checked against independent computations; errors; the report."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgepack.errors import EvalError
from edgepack.measure.evaluate import EvalPlan, evaluate
from edgepack.measure.refcache import divergence, reference_log_probs
from edgepack.measure.scoring import ChunkScorer, EvalSettings, compress_log_probs, perplexity
from edgepack.measure.texts import default_eval_text

SETTINGS = EvalSettings(n_ctx=128, n_chunks=3, n_threads=2)


@pytest.fixture(scope="module")
def text() -> str:
    return default_eval_text().text[:20_000]


def test_perplexity_matches_transformers_on_the_same_tokens(tiny_hf_dir, tiny_reference, text):
    """The tiny model's logits computed by transformers (float32) give the same perplexity."""
    import torch
    from transformers import AutoModelForCausalLM

    ours = perplexity(tiny_reference.path, text, SETTINGS)
    with ChunkScorer(tiny_reference.path, SETTINGS) as scorer:
        tokens = scorer.tokenize(text)
        bos = scorer.bos
    model = AutoModelForCausalLM.from_pretrained(tiny_hf_dir, dtype=torch.float32).eval()
    n, first, nll = SETTINGS.n_ctx, SETTINGS.n_ctx // 2, []
    for i in range(SETTINGS.n_chunks):
        chunk = torch.tensor(tokens[i * n:(i + 1) * n], dtype=torch.long)
        chunk[0] = bos
        with torch.no_grad():
            logits = model(chunk[None]).logits[0].double()
        logp = torch.log_softmax(logits[first:n - 1], dim=-1)
        nll.append(-logp[torch.arange(n - 1 - first), chunk[first + 1:]])
    expected = float(torch.exp(torch.cat(nll).mean()))
    assert ours.n_tokens == SETTINGS.n_chunks * (n - 1 - first)
    assert ours.ppl == pytest.approx(expected, rel=2e-3)  # F16 weights against float32


def test_kld_of_the_reference_against_itself_is_zero(tiny_reference, text):
    base = reference_log_probs(tiny_reference.path, text, SETTINGS)
    d = divergence(tiny_reference.path, base, SETTINGS)
    assert d.mean_kld == pytest.approx(0, abs=1e-5)
    assert d.ppl == pytest.approx(d.ppl_base, rel=1e-4) == pytest.approx(base.ppl, rel=1e-4)
    assert d.same_top > 0.99 and d.rms_dp < 1e-3


def test_kld_matches_transformers_as_the_reference(tiny_hf_dir, tiny_reference, tiny_bundle, text):
    """The reference distribution computed independently (transformers, float32, from the HF
    weights) against the quant's logits gives the same mean KLD and top-token agreement."""
    import torch
    from transformers import AutoModelForCausalLM

    quant = tiny_bundle / "tiny-llama-Q4_K_M.gguf"
    base = reference_log_probs(tiny_reference.path, text, SETTINGS)
    d = divergence(quant, base, SETTINGS)
    tokens = np.asarray(base.tokens)
    model = AutoModelForCausalLM.from_pretrained(tiny_hf_dir, dtype=torch.float32).eval()
    n, first = SETTINGS.n_ctx, SETTINGS.n_ctx // 2
    exact, same = [], []
    with ChunkScorer(quant, SETTINGS) as s:
        for i in range(SETTINGS.n_chunks):
            chunk = tokens[i * n:(i + 1) * n].copy()
            chunk[0] = s.bos
            q = s.second_half_logits(chunk).astype(np.float64)
            with torch.no_grad():
                p = model(torch.tensor(chunk[None], dtype=torch.long)).logits[0, first:n - 1].double().numpy()
            lp = p - p.max(1, keepdims=True)
            lp -= np.log(np.exp(lp).sum(1, keepdims=True))
            lq = q - q.max(1, keepdims=True)
            lq -= np.log(np.exp(lq).sum(1, keepdims=True))
            exact.append((np.exp(lp) * (lp - lq)).sum(1))
            same.append(p.argmax(1) == q.argmax(1))
    assert d.mean_kld == pytest.approx(float(np.concatenate(exact).mean()), rel=0.05)
    assert d.same_top == pytest.approx(float(np.concatenate(same).mean()), abs=0.03)
    assert 0 < d.mean_kld and d.p99_kld >= d.median_kld


def test_compressed_log_probs_round_trip():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 1000)).astype(np.float32) * 3
    header, values = compress_log_probs(logits)
    restored = values.astype(np.float32) * header[:, :1] + header[:, 1:]
    exact = logits - logits.max(1, keepdims=True) - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
    keep = exact > -16
    assert np.abs(restored[keep] - exact[keep]).max() < 2e-3


def test_bad_texts(tiny_reference, tmp_path):
    with pytest.raises(EvalError, match="empty"):
        perplexity(tiny_reference.path, "   ", SETTINGS)
    with pytest.raises(EvalError, match="at least 256 are needed"):
        perplexity(tiny_reference.path, "A short sentence that is far from enough.", SETTINGS)


def test_evaluate_a_bundle_writes_the_report_and_resumes(tiny_bundle, tmp_path):
    from edgepack.bundle import load_manifest
    from edgepack.measure.tasks import sample_task_files

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    plan = EvalPlan(settings=SETTINGS, tasks=tuple(str(p) for p in sample_task_files()), repetitions=1,
                    n_prompt=64, n_gen=16, memory_contexts=(256,), max_kld=10.0, budget="1GB")
    report, written = evaluate([bundle], plan=plan)
    names = sorted(p.name for p in written)
    assert names == ["quality.png", "report.csv", "report.json", "report.md", "speed.png"]
    for png in ("quality.png", "speed.png"):
        assert (bundle / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [r.quant for r in report.rows] == ["F16", "Q8_0", "Q4_K_M"]
    base, q8, q4 = report.rows
    assert base.is_reference and base.kld == 0 and q8.kld < q4.kld
    assert set(q4.tasks) == {"sample_mc", "sample_math"} and q4.speed["1"]["tg_tps"] > 0
    assert q4.peak_rss["256"] > 0
    csv_lines = (bundle / "report.csv").read_text().splitlines()
    assert csv_lines[0].startswith("quant,size MiB,bpw,saving,PPL,ΔPPL %,KLD") and len(csv_lines) == 4
    md = (bundle / "report.md").read_text()
    assert "| Q4_K_M |" in md and "pydoc" in md and "quality.png" in md
    assert any("Smallest quant with KLD" in line for line in report.recommendation)
    assert json.loads((bundle / "report.json").read_text())["rows"][2]["quant"] == "Q4_K_M"
    manifest = load_manifest(bundle)
    assert manifest.evaluation.results[1].quant == "Q8_0"
    card = (bundle / "README.md").read_text()
    assert "What each quant costs" in card and "![size against quality](quality.png)" in card

    again, _ = evaluate([bundle], plan=plan)  # finished rows are reused, not measured again
    assert [r.seconds for r in again.rows] == [r.seconds for r in report.rows]


def test_gguf_files_need_a_reference(tiny_bundle):
    with pytest.raises(EvalError, match="--reference"):
        evaluate([tiny_bundle / "tiny-llama-Q8_0.gguf"])
