"""lm-eval (lm-evaluation-harness) on a quant served by the pinned llama-server, with a task
written for this project (local YAML and JSONL, no hub): its scores against an independent
computation with transformers, and the report saying which engine produced each score."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgepack.cli import app

pytest.importorskip("lm_eval")
DATA = Path(__file__).parent / "data" / "lm_eval"


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("lm_eval_tasks")
    shutil.copy(DATA / "tiny_qa.jsonl", d / "tiny_qa.jsonl")
    (d / "tiny_qa.yaml").write_text((DATA / "tiny_qa.yaml").read_text().replace("DATA_FILE", str(d / "tiny_qa.jsonl")))
    return d


def transformers_scores(hf_dir, gguf) -> tuple[float, float]:
    """acc and acc_norm as lm-eval defines them (log-likelihood of " " + choice; acc_norm divides by
    the choice's length in characters), from transformers' float32 logits on llama.cpp's tokens."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from edgepack.measure.scoring import ChunkScorer, EvalSettings

    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    acc = acc_norm = 0
    docs = [json.loads(line) for line in (DATA / "tiny_qa.jsonl").read_text().splitlines()]
    with ChunkScorer(gguf, EvalSettings(n_ctx=1024)) as scorer:
        for doc in docs:
            context = f"Question: {doc['question']}\nAnswer:"
            ctx = scorer.tokenize_plain(context, add_bos=True)
            lls = []
            for choice in doc["choices"]:
                full = scorer.tokenize_plain(context + " " + choice, add_bos=True)
                cut = max(next(i for i in range(len(full) + 1) if i >= len(ctx) or i >= len(full) or full[i] != ctx[i]), 1)
                with torch.no_grad():
                    logp = torch.log_softmax(model(torch.tensor(full[None], dtype=torch.long)).logits[0].double(), -1)
                lls.append(float(sum(logp[i - 1, full[i]] for i in range(cut, len(full)))))
            acc += int(np.argmax(lls) == doc["answer"])
            acc_norm += int(np.argmax(np.array(lls) / [len(c) for c in doc["choices"]]) == doc["answer"])
    return acc / len(docs), acc_norm / len(docs)


def test_eval_with_a_local_lm_eval_task(tiny_hf_dir, tiny_bundle, task_dir, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    res = CliRunner().invoke(app, ["eval", str(bundle), "--chunk-tokens", "128", "--chunks", "2", "--no-speed", "--memory-ctx",
                                   "", "-t", "2", "--lm-eval", "edgepack_tiny_qa", "--lm-eval-include", str(task_dir),
                                   "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    q8 = next(r for r in report["rows"] if r["quant"] == "Q8_0")
    score = q8["tasks"]["edgepack_tiny_qa"]
    assert score["kind"] == "lm-eval" and score["metric"] == "acc_norm" and score["n"] == 8
    _, expected_norm = transformers_scores(tiny_hf_dir, bundle / "tiny-llama-Q8_0.gguf")
    assert score["accuracy"] == expected_norm
    assert any("edgepack_tiny_qa: acc_norm by lm-eval" in n and "llama-server" in n for n in report["notes"])
    md = (bundle / "report.md").read_text()
    assert "edgepack_tiny_qa" in md and "lm-eval" in md


def test_unknown_lm_eval_task_is_one_line(tiny_bundle, task_dir):
    res = CliRunner().invoke(app, ["eval", str(tiny_bundle), "--lm-eval", "no_such_task", "--no-speed"])
    assert res.exit_code != 0 and "lm-eval does not know task 'no_such_task'" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_server_log_likelihoods_equal_transformers(tiny_hf_dir, tiny_reference):
    """The numbers lm-eval gets: log p(continuation | context) from llama-server, token by token,
    against transformers' float32 on the same tokens (the F16 reference, so within 1e-3 nats a token)."""
    import torch
    from transformers import AutoModelForCausalLM

    from edgepack.measure.lm_eval_runner import ServerScorer, llama_server

    model = AutoModelForCausalLM.from_pretrained(tiny_hf_dir, dtype=torch.float32).eval()
    pairs = [("Question: What do bees make?\nAnswer:", " honey"),
             ("The quick brown fox", " jumps over the lazy dog"), ("def f(x):", "\n    return x")]
    with llama_server(tiny_reference.path, n_ctx=512, n_threads=2) as url:
        scorer = ServerScorer(url)
        for context, continuation in pairs:
            ours, _ = scorer.loglikelihood(context, continuation)
            whole = scorer.tokenize(context + continuation, add_bos=True)
            ctx = scorer.tokenize(context, add_bos=True)
            cut = next(i for i in range(len(whole)) if i >= len(ctx) or whole[i] != ctx[i])
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([whole])).logits[0].double(), -1)
            expected = float(sum(logp[i - 1, whole[i]] for i in range(cut, len(whole))))
            assert ours == pytest.approx(expected, abs=1e-3 * (len(whole) - cut)), (context, continuation)
