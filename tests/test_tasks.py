"""Task files, scoring and the recommendation arithmetic."""

from __future__ import annotations

import pytest

from edgepack.measure.report import Row, parse_size, pareto_front, recommend
from edgepack.measure.tasks import TaskError, final_number, load_task, run_task, sample_task_files


def test_sample_files_load():
    mc, math = (load_task(p) for p in sample_task_files())
    assert mc.kind == "multiple_choice" and len(mc.items) >= 10
    assert math.kind == "generation" and math.items[0].answer == "7"


def test_mmlu_csv_layout(tmp_path):
    path = tmp_path / "astronomy_test.csv"
    path.write_text('"Which planet is largest?",Mars,Jupiter,Venus,Earth,B\n"2+2?",3,4,5,6,B\n')
    task = load_task(path)
    assert task.name == "astronomy_test" and task.kind == "multiple_choice"
    assert task.items[0].choices == ["Mars", "Jupiter", "Venus", "Earth"] and task.items[0].answer == 1


MC_LINE = '{"question": "fine", "choices": ["a", "b"], "answer": "A"}'
GEN_LINE = '{"question": "fine", "answer": "#### 3"}'


@pytest.mark.parametrize("first, line, message", [
    (MC_LINE, '{"question": "q", "choices": ["a", "b"], "answer": 5}', "out of range"),
    (MC_LINE, '{"question": "q", "choices": ["a"], "answer": 0}', "at least two strings"),
    (MC_LINE, 'not json', "not valid JSON"),
    (GEN_LINE, '{"question": "q", "answer": "no number here"}', "must end with a number"),
    (MC_LINE, GEN_LINE, "mixes multiple-choice and generation"),
])
def test_a_bad_line_is_named(tmp_path, first, line, message):
    path = tmp_path / "task.jsonl"
    path.write_text(first + "\n" + line + "\n")
    with pytest.raises(TaskError, match=rf"task.jsonl:2: .*{message}"):
        load_task(path)


def test_final_number():
    assert final_number("so 3 + 4 = 7\n#### 7") == "7"
    assert final_number("The answer is 1,200.") == "1200"
    assert final_number("It is 12.0") == "12"
    assert final_number("none") is None


def test_multiple_choice_agrees_with_transformers(tiny_hf_dir, tiny_bundle):
    """The choices' log-likelihoods computed by transformers (float32, from the HF weights) pick the
    same answers: the count of correct items matches, item by item where the pick is clear."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from edgepack.measure.scoring import ChunkScorer, EvalSettings

    task = load_task(sample_task_files()[0])
    gguf = tiny_bundle / "tiny-llama-Q8_0.gguf"
    result = run_task(gguf, task)
    model = AutoModelForCausalLM.from_pretrained(tiny_hf_dir, dtype=torch.float32).eval()
    correct, margins = 0, []
    with ChunkScorer(gguf, EvalSettings(n_ctx=1024)) as scorer:  # llama.cpp's tokens, transformers' logits
        for item in task.items:
            prompt = f"Question: {item.question}\nAnswer:"
            context = scorer.tokenize_plain(prompt, add_bos=True)
            scores = []
            for choice in item.choices:
                full = scorer.tokenize_plain(prompt + " " + choice, add_bos=True)
                cut = next(i for i in range(min(len(context), len(full)) + 1)
                           if i == min(len(context), len(full)) or full[i] != context[i])
                with torch.no_grad():
                    logp = torch.log_softmax(model(torch.tensor(full[None], dtype=torch.long)).logits[0].double(), -1)
                scores.append(float(sum(logp[i - 1, full[i]] for i in range(max(cut, 1), len(full)))))
            ranked = sorted(scores, reverse=True)
            margins.append(ranked[0] - ranked[1])
            correct += int(int(np.argmax(scores)) == item.answer)
    assert result.n == 12
    assert min(margins) > 0.02, "an item too close to call between Q8_0 and float32"
    assert result.correct == correct and result.accuracy == correct / 12


def test_pareto_and_recommendation():
    rows = [Row("F16", "f", 1000, 16, is_reference=True, kld=0.0),
            Row("Q8_0", "a", 500, 8, kld=0.004, peak_rss={"512": 600}),
            Row("Q5_K_M", "b", 400, 5.5, kld=0.08, peak_rss={"512": 480}),
            Row("Q4_K_M", "c", 380, 4.8, kld=0.06, peak_rss={"512": 460}),
            Row("Q2_K", "d", 250, 3, kld=0.4, peak_rss={"512": 330})]
    assert pareto_front([(r.size_bytes, r.kld, r.quant) for r in rows[1:]]) == ["Q8_0", "Q4_K_M", "Q2_K"]
    lines = recommend(rows, budget_bytes=470, max_kld=0.07)
    assert lines[0].startswith("Best quality within") and "Q4_K_M" in lines[0]  # peak 460 fits; Q5_K_M's 480 does not
    assert lines[1].startswith("Smallest quant with KLD") and "Q4_K_M" in lines[1]
    assert "No quant fits" in recommend(rows, budget_bytes=100)[0]
    assert parse_size("4GB") == 4 * 10**9 and parse_size("3.5GiB") == int(3.5 * 2**30)
