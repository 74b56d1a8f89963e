"""The planner on the tiny model: exact weight/KV bytes, GPU split, choices, errors, bundle advice."""

from __future__ import annotations

import shutil

import pytest

from edgepack.bundle import Evaluation, EvaluationResult, load_manifest, write_manifest
from edgepack.machine.devices import resolve_target
from edgepack.gguf_file import read_gguf
from edgepack.machine.plan import (
    PlanError, compute_buffer_bytes, estimate_memory, kv_cache_bytes, load_geometry, measured_quality,
    plan_bundle, plan_deployment, predict_speed,
)
from edgepack.machine.profile import CpuInfo, GpuInfo, LlamaBuild, MachineProfile, MemoryInfo

MIB = 2**20


def machine(ram_mib: float, vram_mib: float | None = None, *, unified: bool = False, bw: float = 50.0) -> MachineProfile:
    gpus = [GpuInfo(name="test GPU", vendor="nvidia", memory_total_bytes=int(vram_mib * MIB),
                    memory_free_bytes=int(vram_mib * MIB), unified_memory=unified, bandwidth_gbps=4 * bw,
                    fp16_tflops=10.0, source="preset")] if vram_mib else []
    return MachineProfile(name="test", source="preset",
                          cpu=CpuInfo(model="test cpu", isa=["AVX2"], llama_isa=[], physical_cores=4, logical_cores=8),
                          memory=MemoryInfo(total_bytes=int(ram_mib * MIB), available_bytes=int(ram_mib * MIB),
                                            bandwidth_gbps=bw),
                          gpus=gpus, llama=LlamaBuild(gpu_offload=bool(gpus)), cpu_fp32_gflops=100.0)


@pytest.fixture(scope="module")
def geo(tiny_reference):
    return load_geometry(tiny_reference.path)


def test_weight_bytes_are_the_files_tensors(geo, tiny_reference):
    info = read_gguf(tiny_reference.path)
    assert geo.n_layers == info.n_layers == len(geo.layers)
    assert geo.weight_bytes == info.tensor_bytes
    assert all(b > 0 for b in geo.layer_bytes) and geo.token_embd is not None


def llama_cpp_kv_mib(path, n_ctx: int, kv_type: str) -> float:
    """The KV cache size llama.cpp itself reports when it makes a context ("llama_kv_cache: size = ...")."""
    import re

    import llama_cpp

    from edgepack.runtime.llama import capture_log, loaded_model

    with loaded_model(path, 0) as model, capture_log() as lines:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.flash_attn_type = n_ctx, 1
        params.type_k = params.type_v = {"f16": 1, "q4_0": 2, "q8_0": 8}[kv_type]
        ctx = llama_cpp.llama_init_from_model(model, params)
        llama_cpp.llama_free(ctx)
    sizes = [float(m.group(1)) for m in re.finditer(r"llama_kv_cache: size =\s*([\d.]+) MiB", "".join(lines))]
    assert sizes, "llama.cpp did not report its KV cache"
    return sizes[0]


@pytest.mark.parametrize("kv_type", ["f16", "q8_0", "q4_0"])
@pytest.mark.parametrize("n_ctx", [1024, 300])
def test_kv_cache_matches_llama_cpp(geo, kv_type, n_ctx):
    """llama.cpp prints MiB with two decimals; 300 is padded to 512 cells as it pads."""
    assert kv_cache_bytes(geo, n_ctx, kv_type) / MIB == pytest.approx(llama_cpp_kv_mib(geo.path, n_ctx, kv_type),
                                                                       abs=0.005)


def test_kv_cache_type_is_checked(geo):
    with pytest.raises(PlanError, match="unknown KV cache type"):
        kv_cache_bytes(geo, 512, "q5_1")


def test_compute_buffer_grows_with_context_without_flash_attention(geo):
    short = compute_buffer_bytes(geo, 256, 512, flash_attn=False)
    long = compute_buffer_bytes(geo, 8192, 512, flash_attn=False)
    assert long > short
    assert compute_buffer_bytes(geo, 8192, 512, flash_attn=True) < long
    assert compute_buffer_bytes(geo, 512, 512) >= 512 * 4 * geo.n_vocab  # the logits of one micro-batch


def test_gpu_split(geo):
    cpu = estimate_memory(geo, n_ctx=512)
    assert cpu.weights_vram == cpu.kv_vram == cpu.compute_vram == cpu.reserve_vram == 0
    one = estimate_memory(geo, n_ctx=512, n_gpu_layers=1)
    assert one.weights_vram == geo.layer_bytes[-1]  # llama.cpp offloads the last layers first
    assert one.kv_vram == one.kv_ram == cpu.kv_ram // 2
    full = estimate_memory(geo, n_ctx=512, n_gpu_layers=geo.n_layers + 1)
    assert full.weights_vram == sum(geo.layer_bytes) + geo.output_bytes
    assert full.kv_ram == 0 and full.weights_ram == geo.token_embd.n_bytes + geo.other_bytes


def test_plan_cpu_only_and_modelfile_parameters(geo):
    p = plan_deployment(geo, machine(16 * 1024), ctx=256)
    assert p.fits and p.n_gpu_layers == 0 and p.kv_type == "f16" and p.n_threads == 4
    assert p.modelfile_parameters() == {"num_ctx": 256, "num_gpu": 0, "num_thread": 4}
    assert p.speed.tg_tps and p.speed.pp_tps


def test_plan_offloads_what_fits(geo):
    full = estimate_memory(geo, n_ctx=512, n_gpu_layers=geo.n_layers + 1, reserve_vram=0)
    roomy = plan_deployment(geo, machine(4096, full.vram_total / MIB + 1), ctx=512, reserve_vram=0)
    assert roomy.fits and roomy.n_gpu_layers == geo.n_layers + 1
    one = estimate_memory(geo, n_ctx=512, n_gpu_layers=1, reserve_vram=0)
    tight = plan_deployment(geo, machine(4096, one.vram_total / MIB + 0.01), ctx=512, reserve_vram=0)
    assert tight.fits and tight.n_gpu_layers == 1 and tight.memory.vram_total <= tight.vram_budget


def test_plan_quantizes_the_kv_cache_when_f16_does_not_fit(geo):
    ctx = geo.n_ctx_train
    f16 = estimate_memory(geo, n_ctx=ctx, reserve_ram=0)
    q8 = estimate_memory(geo, n_ctx=ctx, kv_type="q8_0", reserve_ram=0)
    p = plan_deployment(geo, machine((f16.ram_total + q8.ram_total) / 2 / MIB), ctx=ctx, reserve_ram=0)
    assert p.fits and p.kv_type == "q8_0" and p.flash_attn
    assert any("KV cache q8_0" in n for n in p.notes)


def test_plan_without_ctx_takes_the_longest_that_fits(geo):
    p = plan_deployment(geo, machine(16 * 1024))
    assert p.n_ctx == geo.n_ctx_train


def test_nothing_fits_says_what_would(geo):
    p = plan_deployment(geo, machine(geo.weight_bytes / MIB * 0.5), ctx=512)
    assert not p.fits and p.suggestions
    assert any("smaller quant" in s or "no quant" in s for s in p.suggestions)


def test_unified_memory_counts_one_pool(geo):
    big = estimate_memory(geo, n_ctx=512, n_gpu_layers=geo.n_layers + 1, unified_memory=True, reserve_vram=0)
    p = plan_deployment(geo, machine(big.total / MIB + 1, big.total / MIB, unified=True), ctx=512, reserve_vram=0)
    assert p.fits and p.n_gpu_layers == geo.n_layers + 1


def test_speed_from_bandwidth_by_hand():
    """Two 1000-byte layers and a 500-byte output matrix on a 10 GB/s CPU (75 % achievable): a token
    reads 2500 bytes in 2500 / 7.5e9 s, so 3.0 million tokens/s. Prompt: 2 FLOPs per matrix parameter
    (1375 parameters in 2750 bytes, less the embedding's 125: it is a lookup) at 100 GFLOPS x 60 %: 24 million t/s."""
    from edgepack.machine.plan import ModelGeometry, WeightTensor, estimate_memory

    layer = [WeightTensor("blk.0.w", "F16", 10, 2, 1000)]
    g = ModelGeometry(path="hand.gguf", name=None, architecture="llama", file_type="F16", size_bytes=2750,
                      n_params=1375, n_layers=2, n_ctx_train=512, n_embd=8, n_head=1,
                      n_head_kv=[1, 1], key_length=8, value_length=8, n_ff=16, n_vocab=10,
                      layers=[layer, [WeightTensor("blk.1.w", "F16", 10, 2, 1000)]],
                      token_embd=WeightTensor("token_embd.weight", "F16", 10, 2, 250),
                      output=WeightTensor("output.weight", "F16", 10, 2, 500), other_bytes=0)
    est = estimate_memory(g, n_ctx=256)
    s = predict_speed(g, machine(4096, bw=10.0), est)
    assert s.bytes_per_token == 2500
    assert s.tg_tps == 3_000_000.0
    assert s.pp_tps == 24_000_000.0


@pytest.mark.parametrize("kwargs, fragment", [
    ({"ctx": 10**6}, "longer than"),
    ({"ctx": 512, "n_gpu_layers": 99}, "n_gpu_layers 99 is more than"),
    ({"ctx": 512, "kv_type": "q2"}, "unknown KV cache type"),
    ({"ctx": 512, "n_gpu_layers": "lots"}, "not a number"),
])
def test_bad_settings(geo, kwargs, fragment):
    with pytest.raises(PlanError, match=fragment):
        plan_deployment(geo, machine(4096, 4096), **kwargs)


def evaluation(**results) -> Evaluation:
    return Evaluation(text="t", settings={}, machine={},
                      results=[EvaluationResult(quant=q, **fields) for q, fields in results.items()])


def test_measured_quality_from_the_typed_evaluation():
    assert measured_quality(evaluation(Q8_0={"kld": 0.004}, Q4_K_M={"kld": 0.06})) == {
        "Q8_0": ("mean_kld", 0.004), "Q4_K_M": ("mean_kld", 0.06)}
    assert measured_quality(evaluation(Q2_K={"ppl": 17.1})) == {"Q2_K": ("ppl", 17.1)}
    assert measured_quality(None) == {}


def test_bundle_recommendation(tiny_bundle, tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    by_bits = plan_bundle(bundle, machine(16 * 1024), ctx=256)
    assert by_bits.recommended == "Q8_0" and "bits per weight" in by_bits.reason
    manifest = load_manifest(bundle)
    manifest.evaluation = evaluation(**{f.quant: {"kld": {"Q8_0": 0.5, "Q4_K_M": 0.01}[f.quant], "sha256": f.sha256}
                                        for f in manifest.files})
    write_manifest(bundle, manifest)
    measured = plan_bundle(bundle, machine(16 * 1024), ctx=256)
    assert measured.recommended == "Q4_K_M" and "kld" in measured.reason
    q8 = next(c for c in measured.choices if c.quant == "Q8_0")
    tight = plan_bundle(bundle, machine((q8.plan.memory.ram_total - 1) / MIB), ctx=256, kv_type="f16")
    assert all(c.quant != "Q8_0" or not c.fits for c in tight.choices)


def test_preset_targets_plan(geo):
    p = plan_deployment(geo, "jetson-orin-nano-8gb", ctx=512)
    assert p.fits and p.n_gpu_layers == geo.n_layers + 1 and p.n_threads == 6
    laptop = resolve_target("laptop-16gb-cpu")
    assert plan_deployment(geo, laptop, ctx=512).n_gpu_layers == 0
