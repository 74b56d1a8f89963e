"""How fast a GGUF should run on a target, from its bytes and the target's bandwidth and compute.

Generation reads every weight once per token, so its speed is bandwidth-bound; prompt
processing is matrix multiplication, so compute-bound. Both use an achievable share of the
nominal peak, the figures below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from edgepack.machine.geometry import ModelGeometry, WeightTensor
from edgepack.machine.memory import MemoryEstimate

if TYPE_CHECKING:
    from edgepack.machine.profile import MachineProfile

# Achievable share of nominal peaks in llama.cpp's kernels (token generation streams the weights;
# prompt processing is matrix multiplication).
BANDWIDTH_EFFICIENCY = {"cpu": 0.75, "gpu": 0.7}
COMPUTE_EFFICIENCY = {"cpu": 0.6, "gpu": 0.35}


@dataclass
class SpeedPrediction:
    tg_tps: float | None
    pp_tps: float | None
    bytes_per_token: int
    basis: str

    def to_dict(self) -> dict:
        return asdict(self)


def predict_speed(g: ModelGeometry, target: MachineProfile, est: MemoryEstimate, *, n_threads: int | None = None,
                  depth: int = 0) -> SpeedPrediction:
    """Generation reads every offloaded and resident weight once per token (plus the KV cache so
    far): time = bytes / achievable bandwidth on each side. Prompt speed: 2 FLOPs per weight per
    token over the achievable compute of the side holding most layers."""
    n_gpu = min(est.n_gpu_layers, g.n_layers)
    lb = g.layer_bytes
    gpu_bytes = sum(lb[g.n_layers - n_gpu:]) + (g.output_bytes if est.n_gpu_layers > g.n_layers else 0)
    cpu_bytes = sum(lb[:g.n_layers - n_gpu]) + (0 if est.n_gpu_layers > g.n_layers else g.output_bytes)
    kv_per_cell = (est.kv_total / est.n_ctx) if est.n_ctx else 0
    cpu_bytes += int(kv_per_cell * depth * (g.n_layers - n_gpu) / max(g.n_layers, 1))
    gpu_bytes += int(kv_per_cell * depth * n_gpu / max(g.n_layers, 1))
    gpu = target.gpu
    cpu_bw = target.memory.bandwidth_gbps
    gpu_bw = (gpu.bandwidth_gbps if gpu and gpu.bandwidth_gbps else cpu_bw if gpu and gpu.unified_memory else None)
    seconds = 0.0
    basis = []
    tg = None
    if cpu_bytes and cpu_bw:
        seconds += cpu_bytes / (cpu_bw * 1e9 * BANDWIDTH_EFFICIENCY["cpu"])
        basis.append(f"CPU {cpu_bw:g} GB/s")
    if gpu_bytes and gpu_bw:
        seconds += gpu_bytes / (gpu_bw * 1e9 * BANDWIDTH_EFFICIENCY["gpu"])
        basis.append(f"GPU {gpu_bw:g} GB/s")
    if seconds and ((cpu_bytes == 0 or cpu_bw) and (gpu_bytes == 0 or gpu_bw)):
        tg = round(1 / seconds, 1)
    matmul_params = g.n_params - (_tensor_params(g, g.token_embd) if g.output else 0)
    flops = 2 * matmul_params
    pp = None
    gpu_share = n_gpu / g.n_layers if g.n_layers else 0
    cpu_gflops = target.cpu_fp32_gflops
    if n_threads and cpu_gflops and target.cpu.threads_for_inference():
        cpu_gflops *= min(n_threads, target.cpu.threads_for_inference()) / target.cpu.threads_for_inference()
    if gpu_share >= 0.5 and gpu and gpu.fp16_tflops:
        pp = gpu.fp16_tflops * 1e12 * COMPUTE_EFFICIENCY["gpu"] / flops
        basis.append(f"GPU {gpu.fp16_tflops:g} TFLOPS")
    elif cpu_gflops:
        pp = cpu_gflops * 1e9 * COMPUTE_EFFICIENCY["cpu"] / flops
        basis.append(f"CPU {cpu_gflops:g} GFLOPS")
    return SpeedPrediction(tg_tps=tg, pp_tps=round(pp, 1) if pp else None, bytes_per_token=cpu_bytes + gpu_bytes,
                           basis=", ".join(basis) or "no bandwidth or compute figure for this target")


def _tensor_params(g: ModelGeometry, tensor: WeightTensor | None) -> int:
    if tensor is None or not g.weight_bytes:
        return 0
    return int(g.n_params * tensor.n_bytes / g.weight_bytes)

