"""The plan's memory against a real llama-server: peak RSS (psutil) with the context filled.

The model here has 8 layers and an 8192-token context, so the KV cache (4 MiB at 1024, 32 MiB
at 8192) and the compute buffer, not the server's own code, decide the difference between the
two contexts. Memory, unlike time, is stable enough to assert within a tolerance.
"""

from __future__ import annotations

import json
import urllib.request

import psutil
import pytest

from local_server import started_llama_server
from tiny_models import make_tiny_llama


@pytest.fixture(scope="module")
def long_model(tmp_path_factory):
    from edgepack.source import make_reference, resolve_source

    d = make_tiny_llama(tmp_path_factory.mktemp("long") / "long-llama", layers=8)
    cfg = json.loads((d / "config.json").read_text())
    cfg["max_position_embeddings"] = 8192
    (d / "config.json").write_text(json.dumps(cfg))
    return make_reference(resolve_source(str(d)), "f16").path


def server_peak_rss(server, model, ctx: int) -> int:
    """Start llama-server with -c ctx, fill its context with one request, return its peak RSS."""
    rss: list[int] = []

    def follow(proc) -> None:
        rss.append(psutil.Process(proc.pid).memory_info().rss)

    with started_llama_server(server, model, "-c", str(ctx), "-t", "1", while_waiting=follow) as (proc, url):
        prompt = [10 + i % 400 for i in range(ctx - 16)]  # token ids: exactly this many, whatever the tokenizer
        request = urllib.request.Request(f"{url}/completion", method="POST",
                                         data=json.dumps({"prompt": prompt, "n_predict": 8}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as r:
            assert json.loads(r.read())["tokens_evaluated"] >= ctx - 16
        follow(proc)  # buffers stay resident: the RSS after the request is its peak
        return max(rss)


@pytest.mark.parametrize("ctx", [1024, 8192])
def test_plan_memory_matches_llama_server(long_model, native_tools, ctx):
    from edgepack.machine.plan import plan_deployment
    from edgepack.machine.profile import this_machine

    measured = server_peak_rss(native_tools.tool("llama-server"), long_model, ctx)
    plan = plan_deployment(long_model, this_machine(measure_bandwidth=False), ctx, n_gpu_layers=0,
                           runtime="llama-server", kv_type="f16")
    assert plan.runtime == "llama-server" and any("sized for llama-server" in n for n in plan.notes)
    assert plan.memory.ram_total == pytest.approx(measured, rel=0.10), (
        f"plan {plan.memory.ram_total / 2**20:.1f} MiB, llama-server {measured / 2**20:.1f} MiB")


def test_each_runtime_is_named_and_differs(long_model):
    from edgepack.errors import PlanError
    from edgepack.machine.plan import plan_deployment

    server = plan_deployment(long_model, "laptop-16gb-cpu", 1024, runtime="llama-server")
    python = plan_deployment(long_model, "laptop-16gb-cpu", 1024, runtime="python")
    assert python.memory.ram_total - server.memory.ram_total == python.memory.reserve_ram - server.memory.reserve_ram > 0
    with pytest.raises(PlanError, match="unknown runtime 'vllm'"):
        plan_deployment(long_model, "laptop-16gb-cpu", 1024, runtime="vllm")
