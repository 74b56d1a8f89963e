"""Task scores comparable with published tables: EleutherAI's lm-evaluation-harness (lm-eval)
against a quant served by the pinned llama-server.

lm-eval's own llama.cpp clients (`gguf`, `local-completions`) need the prompt's log-probabilities
echoed back (`echo: true`), which the pinned llama-server refuses. So the model class here,
registered with lm-eval as "edgepack-llama-server", asks the server for one continuation token at
a time: the context's tokens as the prompt (the server reuses its KV cache for the shared prefix),
that token forced by a logit bias, and `n_probs` so the server reports the token's log-probability
from the raw logits (llama-server computes `n_probs` before its samplers, so the bias does not
change it). Greedy generation (`generate_until`) is a plain completion. Tasks come from lm-eval's
registry or from the user's own YAML files (`include`), with their datasets cached or local;
nothing is downloaded here (HF_DATASETS_OFFLINE unless the caller set it).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edgepack import procs
from edgepack.errors import EvalError


@contextmanager
def llama_server(model: str | Path, *, n_ctx: int = 2048, n_threads: int | None = None, n_gpu_layers: int = 0):
    """The pinned llama-server on a free local port; yields its base URL."""
    from edgepack.runtime.native import build_native

    server = build_native().tool("llama-server")
    if server is None:
        raise EvalError("llama-server was not built; run `edgepack native build`")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [str(server), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "-c", str(n_ctx),
            "-ngl", str(n_gpu_layers), "-np", "1"] + (["-t", str(n_threads)] if n_threads else [])
    log = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a full pipe would stall the server
    proc = procs.popen(args, stdout=subprocess.DEVNULL, stderr=log, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                log.seek(0)
                tail = log.read().strip().splitlines()[-1:] or ["no output"]
                raise EvalError(f"llama-server could not serve {Path(model).name}: {tail[0]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.time() > deadline:
                    raise EvalError(f"llama-server did not start serving {Path(model).name} within 120 s") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=600) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        raise EvalError(f"llama-server refused a request: {exc.read()[:200]!r}") from None


class ServerScorer:
    """Log-likelihoods and greedy completions from a running llama-server."""

    def __init__(self, url: str):
        self.url = url

    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        return _post(f"{self.url}/tokenize", {"content": text, "add_special": add_bos})["tokens"]

    def token_logprob(self, prefix: list[int], token: int) -> tuple[float, bool]:
        """log p(token | prefix) from the raw logits, and whether it is the most likely token."""
        reply = _post(f"{self.url}/completion", {"prompt": prefix, "n_predict": 1, "n_probs": 1, "temperature": 0.0,
                                                 "logit_bias": [[token, 1000.0]], "cache_prompt": True,
                                                 "post_sampling_probs": False})
        probs = reply["completion_probabilities"][0]
        if probs["id"] != token:
            raise EvalError("llama-server did not take the forced token; cannot score the continuation")
        top = probs["top_logprobs"][0]["id"] if probs.get("top_logprobs") else token
        return float(probs["logprob"]), top == token

    def loglikelihood(self, context: str, continuation: str) -> tuple[float, bool]:
        whole = self.tokenize(context + continuation, add_bos=True)
        ctx = self.tokenize(context, add_bos=True)
        cut = 0
        while cut < min(len(ctx), len(whole)) and ctx[cut] == whole[cut]:
            cut += 1
        cut = max(cut, 1)  # tokens merged across the boundary: score from the first that differs
        total, greedy = 0.0, True
        for i in range(cut, len(whole)):
            lp, top = self.token_logprob(whole[:i], whole[i])
            total += lp
            greedy = greedy and top
        return total, greedy

    def generate(self, context: str, until: list[str], max_tokens: int) -> str:
        reply = _post(f"{self.url}/completion", {"prompt": context, "n_predict": max_tokens, "temperature": 0.0,
                                                 "stop": until, "cache_prompt": True})
        return reply["content"]


def _lm_class():
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model

    class EdgepackLlamaServer(LM):
        """lm-eval model "edgepack-llama-server": a running llama-server, scored token by token."""

        def __init__(self, base_url: str, max_gen_toks: int = 256, **kwargs):
            super().__init__()
            self.scorer = ServerScorer(base_url)
            self.max_gen_toks = max_gen_toks

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            return [self.scorer.loglikelihood(*req.args) for req in requests]

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            raise EvalError("perplexity-style lm-eval tasks are not supported here; `edgepack eval` measures "
                            "perplexity itself (llama-perplexity's method)")

        def generate_until(self, requests, disable_tqdm: bool = False):
            out = []
            for req in requests:
                context, gen = req.args
                until = gen.get("until") or []
                out.append(self.scorer.generate(context, [until] if isinstance(until, str) else list(until),
                                                int(gen.get("max_gen_toks", self.max_gen_toks))))
            return out

    try:
        register_model("edgepack-llama-server")(EdgepackLlamaServer)
    except (AssertionError, ValueError):  # registered already in this process
        pass
    return EdgepackLlamaServer


@dataclass
class LmEvalScore:
    task: str
    metric: str                # acc_norm where the task has it (length-normalised), else acc / exact_match...
    value: float
    stderr: float | None
    n: int | None
    engine: str                # what produced it, said in the report

    def as_task_entry(self) -> dict:
        return {"accuracy": self.value, "stderr": self.stderr, "n": self.n, "kind": "lm-eval",
                "metric": self.metric, "engine": self.engine}


PREFERRED_METRICS = ("acc_norm", "acc", "exact_match", "f1", "mcc")
_MANAGERS: dict = {}


def task_manager(tasks: list[str], include: str | Path | None = None):
    """lm-eval's task registry plus the user's YAML files; every task named must be in it (checked
    before any measuring)."""
    try:
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise EvalError("--lm-eval needs lm-evaluation-harness: pip install 'edgepack[lm-eval]' (or lm-eval)") from None
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if include is not None and not Path(include).is_dir():
        raise EvalError(f"--lm-eval-include {include}: not a directory of lm-eval task YAML files")
    key = str(Path(include).resolve()) if include else None
    if key not in _MANAGERS:  # lm-eval indexes its thousands of task files each time: 20 s on 2 cores
        _MANAGERS[key] = TaskManager(include_path=key)
    manager = _MANAGERS[key]
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise EvalError(f"lm-eval does not know task {unknown[0]!r}; give its YAML with --lm-eval-include DIR")
    return manager


def run_lm_eval(model: str | Path, tasks: list[str], *, limit: int | float | None = None,
                include: str | Path | None = None, n_ctx: int = 2048, n_threads: int | None = None,
                n_gpu_layers: int = 0, num_fewshot: int | None = None) -> list[LmEvalScore]:
    """Run lm-eval `tasks` on one GGUF served by the pinned llama-server."""
    import lm_eval

    manager = task_manager(tasks, include)
    lm_class = _lm_class()
    version = getattr(lm_eval, "__version__", "?")
    with llama_server(model, n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=n_gpu_layers) as url:
        try:
            results = lm_eval.simple_evaluate(model=lm_class(url), tasks=list(tasks), limit=limit,
                                              task_manager=manager, num_fewshot=num_fewshot)
        except EvalError:
            raise
        except (FileNotFoundError, ConnectionError, OSError, ValueError) as exc:
            raise EvalError(f"lm-eval could not run {', '.join(tasks)}: {str(exc).splitlines()[0][:200]} "
                            "(datasets must be local or already cached; nothing is downloaded)") from None
    engine = (f"lm-eval {version}, {{shots}}-shot, limit {limit}, llama-server (pinned) n_ctx {n_ctx}, "
              f"token log-probabilities from the raw logits")
    scores = []
    for task in tasks:
        metrics = results["results"].get(task, {})
        shots = (results.get("n-shot") or {}).get(task, num_fewshot or 0)
        n = (results.get("n-samples") or {}).get(task, {}).get("effective")
        for metric in PREFERRED_METRICS:
            key = f"{metric},none"
            if isinstance(metrics.get(key), (int, float)):
                stderr = metrics.get(f"{metric}_stderr,none")
                scores.append(LmEvalScore(task, metric, float(metrics[key]),
                                          float(stderr) if isinstance(stderr, (int, float)) else None, n,
                                          engine.format(shots=shots)))
                break
    return scores
