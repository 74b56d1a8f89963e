"""What a GGUF needs in memory for one setting: pure arithmetic over its geometry.

Exact bytes of every layer's weights, of the embedding and of the output matrix; the KV cache
(n_ctx x layers x KV heads x (key + value length) x bytes of the cache type); llama.cpp's compute
buffer (the larger of the logits tensor and, without flash attention, the KQ matrix); weights
the CPU backend repacks into a second copy (AMX, or the AVX2/NEON repack kernels); and the
overhead of the runtime process that holds it (runtimes.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgepack.errors import PlanError
from edgepack.machine.geometry import ModelGeometry
from edgepack.machine.runtimes import get_runtime

if TYPE_CHECKING:
    from edgepack.machine.profile import MachineProfile

MIB = 2**20
KV_TYPES = ("f16", "q8_0", "q4_0")
KV_BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
CTX_PAD = 256                       # llama.cpp pads the KV cache to a multiple of 256 cells
DEFAULT_UBATCH = 512
# Types the CPU backend copies into its own layout (ggml-cpu amx/ and repack.cpp), and the
# size of that copy relative to the file's bytes.
AMX_TYPES = {"Q4_0": 1.0, "Q4_1": 1.0, "Q8_0": 38 / 34, "Q4_K": 1.0, "Q5_K": 1.0, "Q6_K": 1.0, "IQ4_XS": 1.0}
REPACK_X86 = ("Q4_0", "Q4_K", "IQ4_NL")
REPACK_X86_AVX512 = REPACK_X86 + ("Q2_K",)
REPACK_ARM = ("Q4_0", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL")

# ---------------------------------------------------------------- pure estimates

def padded_ctx(n_ctx: int) -> int:
    return -(-n_ctx // CTX_PAD) * CTX_PAD


def kv_cache_bytes(g: ModelGeometry, n_ctx: int, kv_type: str = "f16", layers: range | None = None) -> int:
    """n_ctx x KV heads x (key + value length) x bytes per element, summed over the layers."""
    if kv_type not in KV_BYTES_PER_ELEMENT:
        raise PlanError(f"unknown KV cache type {kv_type!r}; choose one of {', '.join(KV_TYPES)}")
    layers = range(g.n_layers) if layers is None else layers
    cells = padded_ctx(n_ctx)
    per = KV_BYTES_PER_ELEMENT[kv_type]
    return int(sum(cells * g.n_head_kv[i] * (g.key_length + g.value_length) * per for i in layers))


def compute_buffer_bytes(g: ModelGeometry, n_ctx: int, n_ubatch: int = DEFAULT_UBATCH, *,
                         flash_attn: bool = True, with_output: bool = True, with_layers: bool = True,
                         touched_only: bool = False) -> int:
    """llama.cpp's graph allocator reserves the largest live set: the f32 logits of a whole
    micro-batch, or (without flash attention) the f32 KQ scores of every head plus the f16 mask.

    `touched_only`: what a CPU buffer really occupies. Pages are committed only when written,
    and in use logits are computed for the last token of each sequence only, so RAM holds the
    activations of one micro-batch, one row of logits and the attention over a full context."""
    cells = padded_ctx(n_ctx)
    attn_per_cell = 2 if flash_attn else 4 * g.n_head + 2
    if touched_only:
        activations = n_ubatch * 4 * (3 * g.n_ff + 4 * g.n_embd) if with_layers else n_ubatch * 4 * 2 * g.n_embd
        return activations + (cells * n_ubatch * attn_per_cell if with_layers else 0) + (4 * g.n_vocab if with_output else 0)
    hidden = n_ubatch * 4 * (2 * g.n_ff + g.n_embd)
    logits = n_ubatch * 4 * (g.n_vocab + 2 * g.n_embd) if with_output else n_ubatch * 4 * 2 * g.n_embd
    attn = cells * n_ubatch * attn_per_cell + hidden if with_layers else 0
    return max(logits, attn)


def model_runtime_bytes(g: ModelGeometry) -> int:
    """RAM the loaded model needs besides its tensors: the GGUF's metadata pages (tokenizer
    arrays) and llama.cpp's vocabulary tables (strings and maps, about 256 bytes a token)."""
    return max(g.size_bytes - g.weight_bytes, 0) + 256 * g.n_vocab


def repack_types(target: MachineProfile) -> tuple[dict[str, float], bool]:
    """Which weight types the target's CPU backend copies into its own layout, and whether the
    embedding is included (the AMX buffer takes every matrix of its types)."""
    isa, used = set(target.cpu.isa), set(target.cpu.llama_isa)
    if "AMX_INT8" in isa and "AMX_INT8" in used:
        return dict(AMX_TYPES), True
    if "REPACK" not in used:
        return {}, False
    if "AVX2" in isa:
        return {t: 1.0 for t in (REPACK_X86_AVX512 if "AVX512_F" in isa else REPACK_X86)}, False
    if "DOTPROD" in isa or "MATMUL_INT8" in isa:
        return {t: 1.0 for t in REPACK_ARM}, False
    return {}, False


def repacked_bytes(g: ModelGeometry, types: dict[str, float], include_embedding: bool, cpu_layers: range) -> int:
    total = 0.0
    for i in cpu_layers:
        for t in g.layers[i]:
            if t.n_dims == 2 and t.type in types and t.rows % 8 == 0:
                total += t.n_bytes * types[t.type]
    if include_embedding and g.token_embd and g.token_embd.type in types:
        total += g.token_embd.n_bytes * types[g.token_embd.type]
    return int(total)


@dataclass
class MemoryEstimate:
    """Bytes on each side for one setting; `ram_total`/`vram_total` are what must fit."""

    n_ctx: int
    n_gpu_layers: int
    runtime: str
    kv_type: str
    flash_attn: bool
    n_ubatch: int
    unified_memory: bool
    weights_ram: int
    weights_vram: int
    repack_ram: int
    model_runtime_ram: int
    kv_ram: int
    kv_vram: int
    compute_ram: int
    compute_vram: int
    reserve_ram: int
    reserve_vram: int
    # a multimodal model's projector GGUF (mtmd offloads it to the GPU whenever layers go there):
    # its weights, and the image encoder's compute buffer as clip.cpp reserved it (measure/image.py)
    projector_ram: int = 0
    projector_vram: int = 0
    projector_compute_ram: int = 0
    projector_compute_vram: int = 0

    @property
    def ram_total(self) -> int:
        return (self.weights_ram + self.repack_ram + self.model_runtime_ram + self.kv_ram + self.compute_ram
                + self.reserve_ram + self.projector_ram + self.projector_compute_ram)

    @property
    def vram_total(self) -> int:
        return (self.weights_vram + self.kv_vram + self.compute_vram + self.reserve_vram + self.projector_vram
                + self.projector_compute_vram)

    @property
    def total(self) -> int:
        return self.ram_total + self.vram_total

    @property
    def kv_total(self) -> int:
        return self.kv_ram + self.kv_vram

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(ram_total=self.ram_total, vram_total=self.vram_total, total=self.total)
        return d


def check_settings(g: ModelGeometry, n_ctx: int, n_gpu_layers: int) -> None:
    if n_ctx < 1:
        raise PlanError(f"context {n_ctx} is not a positive number of tokens")
    if g.n_ctx_train and n_ctx > g.n_ctx_train:
        raise PlanError(f"context {n_ctx} is longer than {Path(g.path).name} supports ({g.n_ctx_train} tokens)")
    if n_gpu_layers < 0 or n_gpu_layers > g.n_layers + 1:
        raise PlanError(f"n_gpu_layers {n_gpu_layers} is more than {Path(g.path).name} has: {g.n_layers} layers "
                        f"(use 0 to {g.n_layers}, or {g.n_layers + 1} / 'all' to offload the output layer too)")


def estimate_memory(g: ModelGeometry, *, n_ctx: int, n_gpu_layers: int = 0, kv_type: str = "f16",
                    n_batch: int = 512, flash_attn: bool = True, unified_memory: bool = False,
                    repack: tuple[dict[str, float], bool] = ({}, False),
                    runtime: str | None = None, reserve_ram: int | None = None,
                    reserve_vram: int | None = None, projector_bytes: int = 0,
                    projector_compute_bytes: int = 0) -> MemoryEstimate:
    """Memory for one setting in `runtime` (llama-server unless named; see runtimes.py), whose
    process overhead is the reserve unless `reserve_ram`/`reserve_vram` override it. llama.cpp
    offloads the last `n_gpu_layers` layers, and the output matrix too when n_gpu_layers >
    n_layers; the embedding always stays in RAM."""
    check_settings(g, n_ctx, n_gpu_layers)
    rt = get_runtime(runtime)
    reserve_ram = rt.reserve_ram if reserve_ram is None else reserve_ram
    reserve_vram = rt.reserve_vram if reserve_vram is None else reserve_vram
    n_ubatch = min(n_batch, DEFAULT_UBATCH, padded_ctx(n_ctx))  # llama.cpp caps the batch at the context
    n_gpu = min(n_gpu_layers, g.n_layers)
    cpu_layers, gpu_layers = range(0, g.n_layers - n_gpu), range(g.n_layers - n_gpu, g.n_layers)
    output_on_gpu = n_gpu_layers > g.n_layers
    layer_bytes = g.layer_bytes
    weights_vram = sum(layer_bytes[i] for i in gpu_layers) + (g.output_bytes if output_on_gpu else 0)
    weights_ram = (sum(layer_bytes[i] for i in cpu_layers) + (g.token_embd.n_bytes if g.token_embd else 0)
                   + g.other_bytes + (g.output.n_bytes if g.output and not output_on_gpu else 0))
    types, with_embd = repack
    uses_gpu = n_gpu_layers > 0
    return MemoryEstimate(
        n_ctx=padded_ctx(n_ctx), n_gpu_layers=n_gpu_layers, runtime=rt.name, kv_type=kv_type, flash_attn=flash_attn, n_ubatch=n_ubatch,
        unified_memory=unified_memory,
        weights_ram=weights_ram, weights_vram=weights_vram,
        repack_ram=repacked_bytes(g, types, with_embd and not output_on_gpu, cpu_layers),
        model_runtime_ram=model_runtime_bytes(g),
        kv_ram=kv_cache_bytes(g, n_ctx, kv_type, cpu_layers), kv_vram=kv_cache_bytes(g, n_ctx, kv_type, gpu_layers),
        compute_ram=compute_buffer_bytes(g, n_ctx, n_ubatch, flash_attn=flash_attn, with_output=not output_on_gpu,
                                         with_layers=len(cpu_layers) > 0, touched_only=True),
        compute_vram=compute_buffer_bytes(g, n_ctx, n_ubatch, flash_attn=flash_attn, with_output=output_on_gpu,
                                          with_layers=True) if uses_gpu else 0,
        reserve_ram=reserve_ram, reserve_vram=reserve_vram if uses_gpu else 0,
        projector_ram=0 if uses_gpu else projector_bytes, projector_vram=projector_bytes if uses_gpu else 0,
        projector_compute_ram=0 if uses_gpu else projector_compute_bytes,
        projector_compute_vram=projector_compute_bytes if uses_gpu else 0,
    )

