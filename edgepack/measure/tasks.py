"""Task accuracy: multiple choice by log-likelihood, and exact-match generation with a final number.

Multiple choice (MMLU/ARC style): JSONL lines {"question", "choices": [...], "answer": index or
letter}, or MMLU's CSV layout (question, A, B, C, D, answer letter; no header). Each choice is
scored by the summed log-probability of its tokens after "Question: …\\nAnswer:"; the best wins.
Generation (GSM8K style): JSONL {"question", "answer": "… #### 42"}; greedy decoding, the last
number in the reply must equal the final number of the answer.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgepack import progress
from edgepack.errors import TaskError

LETTERS = "ABCDEFGHIJ"
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


@dataclass
class MultipleChoice:
    question: str
    choices: list[str]
    answer: int


@dataclass
class Generation:
    question: str
    answer: str  # the final number


@dataclass
class Task:
    name: str
    kind: str  # "multiple_choice" or "generation"
    items: list


@dataclass
class TaskResult:
    name: str
    kind: str
    n: int
    correct: int
    accuracy: float
    stderr: float
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def final_number(text: str) -> str | None:
    """The number an answer ends with (after '####' when present), normalised."""
    if "####" in text:
        text = text.split("####")[-1]
    found = NUMBER.findall(text)
    if not found:
        return None
    value = found[-1].replace(",", "").rstrip(".")
    return value[:-2] if value.endswith(".0") else value


def _answer_index(value, n_choices: int, where: str) -> int:
    if isinstance(value, bool):
        raise TaskError(f"{where}: answer must be a choice index or letter")
    if isinstance(value, int):
        index = value
    elif isinstance(value, str) and value.strip().upper() in LETTERS[:n_choices] and value.strip():
        index = LETTERS.index(value.strip().upper())
    elif isinstance(value, str) and value.strip().isdigit():
        index = int(value.strip())
    else:
        raise TaskError(f"{where}: answer {value!r} is neither a choice index nor a letter")
    if not 0 <= index < n_choices:
        raise TaskError(f"{where}: answer {value!r} is out of range for {n_choices} choices")
    return index


def load_task(path: str | Path) -> Task:
    from edgepack.userfiles import read_text_file

    path = Path(path)
    text = read_text_file(path, "task file", TaskError)  # missing, empty, binary or not UTF-8: one line
    items: list = []
    kind = None
    if path.suffix.lower() == ".csv":
        for number, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            where = f"{path}:{number}"
            if len(row) < 4:
                raise TaskError(f"{where}: expected question, at least two choices and an answer letter")
            choices = row[1:-1]
            items.append(MultipleChoice(row[0], choices, _answer_index(row[-1], len(choices), where)))
        kind = "multiple_choice"
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            where = f"{path}:{number}"
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise TaskError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(data, dict) or not isinstance(data.get("question"), str):
                raise TaskError(f"{where}: each line needs a \"question\" string")
            this_kind = "multiple_choice" if "choices" in data else "generation"
            if kind is not None and this_kind != kind:
                raise TaskError(f"{where}: mixes multiple-choice and generation items")
            kind = this_kind
            if this_kind == "multiple_choice":
                choices = data["choices"]
                if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) for c in choices):
                    raise TaskError(f"{where}: \"choices\" must be a list of at least two strings")
                items.append(MultipleChoice(data["question"], choices, _answer_index(data.get("answer"), len(choices), where)))
            else:
                answer = final_number(str(data.get("answer", "")))
                if answer is None:
                    raise TaskError(f"{where}: \"answer\" must end with a number (e.g. \"… #### 42\")")
                items.append(Generation(data["question"], answer))
    if not items:
        raise TaskError(f"task file {path} has no items")
    return Task(path.stem, kind, items)


def _prompt(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def run_task(model_path: str | Path, task: Task, *, n_threads: int | None = None, n_gpu_layers: int = 0) -> TaskResult:
    start = time.perf_counter()
    if task.kind == "multiple_choice":
        correct = _run_multiple_choice(model_path, task, n_threads, n_gpu_layers)
    else:
        correct = _run_generation(model_path, task, n_threads, n_gpu_layers)
    n = len(task.items)
    accuracy = correct / n
    stderr = float(np.sqrt(accuracy * (1 - accuracy) / (n - 1))) if n > 1 else 0.0
    return TaskResult(task.name, task.kind, n, correct, accuracy, stderr, progress.elapsed(start))


def _run_multiple_choice(model_path, task: Task, n_threads, n_gpu_layers) -> int:
    from edgepack.measure.scoring import ChunkScorer, EvalSettings

    correct = 0
    settings = EvalSettings(n_ctx=1024, n_threads=n_threads, n_gpu_layers=n_gpu_layers)
    with ChunkScorer(model_path, settings) as scorer, \
            progress.step(f"{task.name} on {Path(model_path).name}", total=len(task.items)) as bar:
        for item in task.items:
            context = scorer.tokenize_plain(_prompt(item.question), add_bos=True)
            scores = []
            for choice in item.choices:
                full = scorer.tokenize_plain(_prompt(item.question) + " " + choice, add_bos=True)
                cut = len(context)
                while cut > 0 and (cut > len(full) or not np.array_equal(full[:cut], context[:cut])):
                    cut -= 1  # tokens merged across the boundary: score from the first differing one
                cut = max(cut, 1)
                logits = scorer.decode_logits(full, cut - 1)[: len(full) - cut]
                targets = full[cut:]
                top = logits.max(axis=1)
                lse = np.log(np.exp(logits - top[:, None], dtype=np.float64).sum(axis=1))
                scores.append(float((logits[np.arange(len(targets)), targets] - top - lse).sum()))
            correct += int(int(np.argmax(scores)) == item.answer)
            bar.advance()
    return correct


def _run_generation(model_path, task: Task, n_threads, n_gpu_layers) -> int:
    from edgepack.runtime.llama import load_model

    correct = 0
    kwargs = {"n_threads": n_threads} if n_threads else {}
    with load_model(model_path, n_ctx=1024, n_gpu_layers=n_gpu_layers, seed=0, **kwargs) as llm, \
            progress.step(f"{task.name} on {Path(model_path).name}", total=len(task.items)) as bar:
        for item in task.items:
            reply = llm.create_completion(_prompt(item.question), max_tokens=96, temperature=0.0,
                                          stop=["\nQuestion:", "\n\n"])["choices"][0]["text"]
            correct += int(final_number(reply) == item.answer)
            bar.advance()
    return correct


def sample_task_files() -> list[Path]:
    """The small task files written for this project, so the demo runs offline."""
    here = Path(__file__).resolve().parents[1] / "data"
    return [here / "sample_mc.jsonl", here / "sample_math.jsonl"]
