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


def test_multiple_choice_runs_on_a_model(tiny_bundle):
    result = run_task(tiny_bundle / "tiny-llama-Q8_0.gguf", load_task(sample_task_files()[0]))
    assert result.n == 12 and 0 <= result.correct <= 12
    assert result.stderr == pytest.approx((result.accuracy * (1 - result.accuracy) / 11) ** 0.5)


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
