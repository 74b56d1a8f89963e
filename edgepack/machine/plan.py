"""Stage: plan a deployment. What a GGUF needs in memory, where it goes, and how fast it should run.

The estimate is read from the file itself (`load_geometry`, the only I/O here): exact bytes of
every layer's weights, of the embedding and of the output matrix; the KV cache
(n_ctx x layers x KV heads x (key + value length) x bytes of the cache type); llama.cpp's compute
buffer (the larger of the logits tensor and, without flash attention, the KQ matrix); weights
the CPU backend repacks into a second copy (AMX, or the AVX2/NEON repack kernels); and a
reserve for the runtime. Everything after `load_geometry` is pure and tested directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack.errors import PlanError
from edgepack.machine.profile import MachineProfile

MIB = 2**20
KV_TYPES = ("f16", "q8_0", "q4_0")
KV_BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
CTX_PAD = 256                       # llama.cpp pads the KV cache to a multiple of 256 cells
DEFAULT_UBATCH = 512
RUNTIME_RESERVE_RAM = 64 * MIB      # the runtime process itself: code, libraries, threads, allocator slack
RUNTIME_RESERVE_VRAM = 400 * MIB    # CUDA context and cuBLAS workspace on a discrete GPU
# Achievable share of nominal peaks in llama.cpp's kernels (token generation streams the weights;
# prompt processing is matrix multiplication).
BANDWIDTH_EFFICIENCY = {"cpu": 0.75, "gpu": 0.7}
COMPUTE_EFFICIENCY = {"cpu": 0.6, "gpu": 0.35}
# Types the CPU backend copies into its own layout (ggml-cpu amx/ and repack.cpp), and the
# size of that copy relative to the file's bytes.
AMX_TYPES = {"Q4_0": 1.0, "Q4_1": 1.0, "Q8_0": 38 / 34, "Q4_K": 1.0, "Q5_K": 1.0, "Q6_K": 1.0, "IQ4_XS": 1.0}
REPACK_X86 = ("Q4_0", "Q4_K", "IQ4_NL")
REPACK_X86_AVX512 = REPACK_X86 + ("Q2_K",)
REPACK_ARM = ("Q4_0", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL")


@dataclass
class WeightTensor:
    name: str
    type: str
    rows: int          # ne[1]: output features of a matrix (1 for vectors)
    n_dims: int
    n_bytes: int


@dataclass
class ModelGeometry:
    """What the planner needs from a GGUF, read once."""

    path: str
    name: str | None
    architecture: str
    file_type: str
    size_bytes: int
    n_params: int
    n_layers: int
    n_ctx_train: int | None
    n_embd: int
    n_head: int
    n_head_kv: list[int]        # per layer (some models vary it)
    key_length: int
    value_length: int
    n_ff: int
    n_vocab: int
    layers: list[list[WeightTensor]]
    token_embd: WeightTensor | None
    output: WeightTensor | None  # None when the output matrix is the tied embedding
    other_bytes: int             # norms and anything outside the layers

    @property
    def layer_bytes(self) -> list[int]:
        return [sum(t.n_bytes for t in layer) for layer in self.layers]

    @property
    def output_bytes(self) -> int:
        """The matrix read for the logits of every token: output.weight, or the tied embedding."""
        tensor = self.output or self.token_embd
        return tensor.n_bytes if tensor else 0

    @property
    def weight_bytes(self) -> int:
        return (sum(self.layer_bytes) + (self.token_embd.n_bytes if self.token_embd else 0)
                + (self.output.n_bytes if self.output else 0) + self.other_bytes)


def load_geometry(model) -> ModelGeometry:
    """Read a GGUF (path, GGUFInfo with .path, or an existing ModelGeometry)."""
    if isinstance(model, ModelGeometry):
        return model
    from edgepack.gguf_file import read_gguf

    path = Path(getattr(model, "path", model))
    info = model if hasattr(model, "metadata") else read_gguf(path)
    meta, arch = info.metadata, info.architecture

    def key(name, default=None):
        value = meta.get(f"{arch}.{name}")
        return default if value is None else value

    n_layers = int(info.n_layers or 0)
    n_embd = int(info.embedding_length or 0)
    n_head = key("attention.head_count", 1)
    n_head = int(n_head[0] if isinstance(n_head, list) else n_head)
    kv = key("attention.head_count_kv", n_head)
    n_head_kv = [int(x) for x in kv] if isinstance(kv, list) else [int(kv)] * n_layers
    head_dim = n_embd // n_head if n_head else 0
    ff = key("feed_forward_length", 4 * n_embd)
    layers: list[list[WeightTensor]] = [[] for _ in range(n_layers)]
    token_embd = output = None
    other = 0
    for t in info.tensors or read_gguf(path).tensors:
        shape = t.shape
        tensor = WeightTensor(t.name, t.type_name, shape[1] if len(shape) > 1 else 1, len(shape), t.n_bytes)
        if t.name.startswith("blk."):
            index = int(t.name.split(".")[1])
            if index < n_layers:
                layers[index].append(tensor)
                continue
        if t.name == "token_embd.weight":
            token_embd = tensor
        elif t.name == "output.weight":
            output = tensor
        else:
            other += tensor.n_bytes
    return ModelGeometry(
        path=str(path), name=info.name, architecture=arch, file_type=info.file_type, size_bytes=info.size_bytes,
        n_params=info.n_params, n_layers=n_layers, n_ctx_train=info.context_length, n_embd=n_embd, n_head=n_head,
        n_head_kv=n_head_kv, key_length=int(key("attention.key_length", head_dim)),
        value_length=int(key("attention.value_length", head_dim)),
        n_ff=int(ff[0] if isinstance(ff, list) else ff), n_vocab=int(info.vocab_size or 0), layers=layers,
        token_embd=token_embd, output=output, other_bytes=other)


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
    # a multimodal model's projector GGUF (mtmd offloads it to the GPU whenever layers go there);
    # its weights only: the image encoder's compute buffer is not counted
    projector_ram: int = 0
    projector_vram: int = 0

    @property
    def ram_total(self) -> int:
        return (self.weights_ram + self.repack_ram + self.model_runtime_ram + self.kv_ram + self.compute_ram
                + self.reserve_ram + self.projector_ram)

    @property
    def vram_total(self) -> int:
        return self.weights_vram + self.kv_vram + self.compute_vram + self.reserve_vram + self.projector_vram

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
                    reserve_ram: int = RUNTIME_RESERVE_RAM, reserve_vram: int = RUNTIME_RESERVE_VRAM,
                    projector_bytes: int = 0) -> MemoryEstimate:
    """Memory for one setting. llama.cpp offloads the last `n_gpu_layers` layers, and the output
    matrix too when n_gpu_layers > n_layers; the embedding always stays in RAM."""
    check_settings(g, n_ctx, n_gpu_layers)
    n_ubatch = min(n_batch, DEFAULT_UBATCH)
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
        n_ctx=padded_ctx(n_ctx), n_gpu_layers=n_gpu_layers, kv_type=kv_type, flash_attn=flash_attn, n_ubatch=n_ubatch,
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
    )


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


# ---------------------------------------------------------------- the plan

@dataclass
class DeploymentPlan:
    model: str
    model_name: str | None
    quant: str
    target: str
    fits: bool
    n_ctx: int
    n_gpu_layers: int
    n_layers: int
    kv_type: str
    flash_attn: bool
    n_threads: int
    n_batch: int
    ram_budget: int | None
    vram_budget: int | None
    memory: MemoryEstimate
    speed: SpeedPrediction
    notes: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)

    def modelfile_parameters(self) -> dict:
        """Ollama PARAMETERs that carry this plan: num_ctx, num_gpu (layers), num_thread."""
        return {"num_ctx": self.n_ctx, "num_gpu": self.n_gpu_layers, "num_thread": self.n_threads}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["memory"] = self.memory.to_dict()
        d["modelfile_parameters"] = self.modelfile_parameters()
        return d


def _budgets(target: MachineProfile, reserve_vram: int) -> tuple[int | None, int | None, bool]:
    """RAM and VRAM the model may use, and whether GPU offload is possible at all."""
    ram = target.memory.available_bytes or target.memory.total_bytes
    gpu = target.gpu
    offload = bool(gpu) and (target.llama.gpu_offload or target.source != "this machine")
    if not offload:
        return ram, None, False
    vram = gpu.memory_free_bytes if gpu.memory_free_bytes is not None else gpu.memory_total_bytes
    return ram, vram, True


def _fits(est: MemoryEstimate, ram: int | None, vram: int | None) -> bool:
    if est.unified_memory:
        # One pool: the GPU share bounds what the GPU side may hold, RAM bounds the sum.
        return (vram is None or est.vram_total <= vram) and (ram is None or est.total <= ram)
    return (ram is None or est.ram_total <= ram) and (vram is None or est.vram_total <= vram)


def plan_deployment(model, target: MachineProfile | str | None = None, ctx: int | None = None, *,
                    n_gpu_layers: int | str | None = None, kv_type: str | None = None, n_threads: int | None = None,
                    n_batch: int = 512, flash_attn: bool | None = None,
                    reserve_ram: int = RUNTIME_RESERVE_RAM, reserve_vram: int = RUNTIME_RESERVE_VRAM,
                    projector_bytes: int = 0) -> DeploymentPlan:
    """Choose n_gpu_layers, threads, context and KV-cache type for `model` on `target`.

    Most layers on the GPU that fit its free memory (all of them on unified memory when it
    allows), f16 KV cache unless a quantized one is what makes it fit, the requested context (or,
    without one, the longest up to the model's own that fits), threads = physical performance
    cores. When nothing fits it says so and what would (a shorter context, a smaller quant)."""
    from edgepack.machine.devices import resolve_target

    from edgepack.runtime.toolchain import check_loadable_architecture

    g = load_geometry(model)
    check_loadable_architecture(g.architecture, Path(g.path).name)  # "fits" means nothing if it cannot load
    target = resolve_target(target)
    n_layers = g.n_layers
    if isinstance(n_gpu_layers, str):
        n_gpu_layers = parse_gpu_layers(n_gpu_layers, n_layers)
    if kv_type is not None and kv_type not in KV_TYPES:
        raise PlanError(f"unknown KV cache type {kv_type!r}; choose one of {', '.join(KV_TYPES)}")
    ram, vram, offload = _budgets(target, reserve_vram)
    notes: list[str] = list(target.notes)
    if n_gpu_layers and not offload:
        raise PlanError(f"target {target.name} has no GPU that llama.cpp can use here; use n_gpu_layers 0")
    requested_ctx = ctx
    if ctx is not None:
        check_settings(g, ctx, n_gpu_layers or 0)
    unified = bool(target.gpu and target.gpu.unified_memory and offload)
    repack = repack_types(target)
    threads = n_threads or target.cpu.threads_for_inference()

    def estimate(c: int, ngl: int, kv: str) -> MemoryEstimate:
        fa = True if kv != "f16" else (flash_attn if flash_attn is not None else True)
        return estimate_memory(g, n_ctx=c, n_gpu_layers=ngl, kv_type=kv, n_batch=n_batch, flash_attn=fa,
                               unified_memory=unified, repack=repack if ngl <= n_layers else ({}, False),
                               reserve_ram=reserve_ram, reserve_vram=reserve_vram, projector_bytes=projector_bytes)

    def best_for(c: int) -> MemoryEstimate | None:
        kvs = [kv_type] if kv_type else list(KV_TYPES)
        max_ngl = n_layers + 1 if offload else 0
        ngls = [n_gpu_layers] if n_gpu_layers is not None else list(range(max_ngl, -1, -1))
        best = None
        for kv in kvs:
            for ngl in ngls:
                est = estimate(c, ngl, kv)
                if _fits(est, ram, vram):
                    if best is None or ngl > best.n_gpu_layers:
                        best = est
                    break
            if best is not None and best.n_gpu_layers == ngls[0]:
                return best  # the first (least lossy) KV type that reaches the most offload wins
        return best

    candidates = [ctx] if ctx else _ctx_ladder(g.n_ctx_train or 4096)
    chosen = None
    for c in candidates:
        chosen = best_for(c)
        if chosen:
            break
    suggestions: list[str] = []
    fits = chosen is not None
    if not fits:
        c = ctx or candidates[-1]
        chosen = estimate(c, n_gpu_layers if n_gpu_layers is not None else (n_layers + 1 if offload else 0),
                          kv_type or "f16")
        suggestions = _what_would_fit(g, target, c, ram, vram, estimate, offload, n_gpu_layers, kv_type)
    if fits and chosen.kv_type != "f16":
        notes.append(f"KV cache {chosen.kv_type}: an f16 cache does not fit with {chosen.n_gpu_layers} GPU layers "
                     "(quantized KV needs flash attention, which the plan turns on)")
    if fits and offload and chosen.n_gpu_layers <= n_layers and n_gpu_layers is None:
        notes.append(f"{chosen.n_gpu_layers} of {n_layers} layers fit in GPU memory; the rest run on the CPU")
    if fits and requested_ctx is None and g.n_ctx_train and chosen.n_ctx < g.n_ctx_train:
        notes.append(f"context {chosen.n_ctx} is the longest that fits (the model supports {g.n_ctx_train})")
    return DeploymentPlan(
        model=g.path, model_name=g.name, quant=g.file_type, target=target.name, fits=fits,
        n_ctx=chosen.n_ctx if requested_ctx is None else requested_ctx, n_gpu_layers=chosen.n_gpu_layers,
        n_layers=n_layers, kv_type=chosen.kv_type, flash_attn=chosen.flash_attn, n_threads=threads, n_batch=n_batch,
        ram_budget=ram, vram_budget=vram, memory=chosen,
        speed=predict_speed(g, target, chosen, n_threads=threads), notes=notes, suggestions=suggestions)


def parse_gpu_layers(value: str | int, n_layers: int) -> int:
    if isinstance(value, int):
        return value
    value = value.strip().lower()
    if value in ("all", "max"):
        return n_layers + 1
    if not value.lstrip("-").isdigit():
        raise PlanError(f"n_gpu_layers {value!r} is not a number or 'all'")
    return int(value)


def _ctx_ladder(n_ctx_train: int) -> list[int]:
    """The model's own context, then halvings down to 512, for 'the longest context that fits'."""
    ladder = [n_ctx_train]
    c = 1 << (n_ctx_train.bit_length() - 1)
    c = c // 2 if c == n_ctx_train else c
    while c >= 512:
        ladder.append(c)
        c //= 2
    return ladder


def _what_would_fit(g, target, ctx, ram, vram, estimate, offload, n_gpu_layers, kv_type) -> list[str]:
    from edgepack.quantize.types import QUANT_TYPES

    out = []
    for c in _ctx_ladder(ctx)[1:]:
        for kv in ([kv_type] if kv_type else list(KV_TYPES)):
            est = estimate(c, n_gpu_layers if n_gpu_layers is not None else 0, kv)
            if _fits(est, ram, vram):
                out.append(f"a shorter context: {c} tokens with a {kv} KV cache fits")
                break
        if out:
            break
    base = estimate(ctx, 0, kv_type or "q8_0")
    budget = ram if not offload or vram is None else (max(ram or 0, vram) if not target.unified_memory else ram)
    if budget:
        spare = budget - (base.total - base.weights_ram - base.repack_ram)
        bits_that_fit = spare * 8 / g.n_params if g.n_params else 0
        smaller = [q.name for q in QUANT_TYPES if not q.is_float and not q.needs_imatrix and q.bits + 0.3 <= bits_that_fit]
        if smaller:
            out.append(f"a smaller quant: about {bits_that_fit:.1f} bits per weight would fit at context {ctx} "
                       f"(e.g. {smaller[0]})")
        else:
            out.append(f"no quant of this model fits at context {ctx}: it needs more memory than {budget / 2**30:.1f} GiB")
    return out


# ---------------------------------------------------------------- a bundle: which quant

@dataclass
class QuantChoice:
    quant: str
    file: str
    size_bytes: int
    fits: bool
    quality: float | None        # lower is better (mean KLD, or PPL ratio) when measured
    quality_metric: str
    plan: DeploymentPlan


@dataclass
class BundlePlan:
    bundle: str
    target: str
    recommended: str | None
    reason: str
    choices: list[QuantChoice]

    @property
    def plan(self) -> DeploymentPlan | None:
        return next((c.plan for c in self.choices if c.quant == self.recommended), None)

    def to_dict(self) -> dict:
        return {"bundle": self.bundle, "target": self.target, "recommended": self.recommended, "reason": self.reason,
                "choices": [{**{k: v for k, v in asdict(c).items() if k != "plan"}, "plan": c.plan.to_dict()}
                            for c in self.choices]}


# (EvaluationResult field, name shown); lower is better; the first one measured is used for every quant
QUALITY_METRICS = (("kld", "mean_kld"), ("ppl", "ppl"))


def measured_quality(evaluation, files=None) -> dict[str, tuple[str, float]]:
    """{quant: (metric, value)} from the manifest's typed evaluation section, lower is better.

    With `files` (the manifest's BundleFiles), a result counts only when it measured the very GGUF
    listed now (same sha256): an evaluation of a quant the bundle has since rebuilt is not used.
    Results migrated from 0.1 carry no sha256 and count by quant."""
    if evaluation is None:
        return {}
    current = {f.quant: f.sha256 for f in files} if files is not None else None
    rows = [r for r in evaluation.results if not r.is_reference
            and (current is None or (r.quant in current and r.sha256 in (None, current[r.quant])))]
    for field_name, metric in QUALITY_METRICS:
        found = {r.quant: (metric, float(getattr(r, field_name))) for r in rows
                 if getattr(r, field_name) is not None}
        if found:
            return found
    return {}


def plan_bundle(bundle_dir: str | Path, target: MachineProfile | str | None = None, ctx: int | None = None,
                **kwargs) -> BundlePlan:
    """Plan every quant of a bundle and recommend the best-measured one that fits."""
    from edgepack.bundle import load_manifest
    from edgepack.machine.devices import resolve_target

    bundle_dir = Path(bundle_dir)
    manifest = load_manifest(bundle_dir)
    target = resolve_target(target)
    quality = measured_quality(manifest.evaluation, manifest.files)
    kwargs.setdefault("projector_bytes", manifest.projector.size_bytes if manifest.projector else 0)
    choices = []
    for f in manifest.files:
        p = plan_deployment(bundle_dir / f.file, target, ctx, **kwargs)
        metric, value = quality.get(f.quant, ("bits_per_weight", None))
        choices.append(QuantChoice(f.quant, f.file, f.size_bytes, p.fits, value, metric if value is not None
                                   else "bits_per_weight", p))
    fitting = [c for c in choices if c.fits]
    by_bits = {f.quant: f.bits_per_weight for f in manifest.files}
    if not fitting:
        return BundlePlan(str(bundle_dir), target.name, None,
                          f"no quant in the bundle fits {target.name}" + (f" at context {ctx}" if ctx else ""), choices)
    measured = [c for c in fitting if c.quality is not None]
    if measured:
        best = min(measured, key=lambda c: (c.quality, c.size_bytes))
        reason = f"lowest measured {best.quality_metric} ({best.quality:.4g}) among the quants that fit"
    else:
        best = max(fitting, key=lambda c: (by_bits.get(c.quant, 0), -c.size_bytes))
        reason = "most bits per weight among the quants that fit (no measured quality in the manifest)"
    return BundlePlan(str(bundle_dir), target.name, best.quant, reason, choices)
