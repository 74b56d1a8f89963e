"""Vision models: the projector GGUF beside the text quants, in the Modelfile, the llama-server
presets, the manifest and the plan, and a real image prompt through llama.cpp's mtmd."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
import json

import pytest
from typer.testing import CliRunner

from edgepack.bundle.companions import CompanionRequest
from edgepack.pipeline import build
import ollama_parser
from tiny_models import make_tiny_llama
from tiny_multimodal import make_tiny_gemma3_vision

runner = CliRunner()


@pytest.fixture(scope="module")
def gemma3_dir(tmp_path_factory):
    return make_tiny_gemma3_vision(tmp_path_factory.mktemp("models") / "tiny-gemma3-vision")


@pytest.fixture(scope="module")
def vision_bundle(gemma3_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "vision"
    build(str(gemma3_dir), ["Q4_K_M", "Q8_0"], output_dir=out)
    return out


@pytest.fixture(scope="module")
def mtmd_tools():
    from edgepack.runtime.native import build_native

    return build_native(("llama-mtmd-cli",))


def _fields(path):
    from gguf import GGUFReader

    reader = GGUFReader(path)
    return {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}, reader.tensors


def test_projector_is_in_the_bundle_and_the_manifest(vision_bundle):
    manifest = json.loads((vision_bundle / "manifest.json").read_text())
    proj = manifest["projector"]
    path = vision_bundle / proj["file"]
    assert proj["file"] == "mmproj-tiny-gemma3-vision-F16.gguf"
    assert proj["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and proj["size_bytes"] == path.stat().st_size
    fields, tensors = _fields(path)
    assert fields["general.architecture"] == "clip" and fields["clip.projector_type"] == "gemma3"
    assert fields["clip.vision.projection_dim"] == manifest["model"]["embedding_length"] == 256
    assert fields["general.file_type"] == 1  # MOSTLY_F16 (the converter keeps embeddings F32)
    assert "F16" in {t.tensor_type.name for t in tensors} and "Q8_0" not in {t.tensor_type.name for t in tensors}
    for f in manifest["files"]:  # the text quants carry no vision tensors
        _, text_tensors = _fields(vision_bundle / f["file"])
        assert not any(t.name.startswith("v.") or t.name.startswith("mm.") for t in text_tensors)
        assert f["sha256"] == hashlib.sha256((vision_bundle / f["file"]).read_bytes()).hexdigest()


def test_modelfile_and_server_presets_pair_each_quant_with_the_projector(vision_bundle):
    for quant in ("Q4_K_M", "Q8_0"):
        froms = [ln for ln in (vision_bundle / f"Modelfile.{quant}").read_text().splitlines() if ln.startswith("FROM ")]
        # Ollama's create: the model GGUF, then a projector GGUF as a further FROM (its projector layer)
        assert froms == [f"FROM ./tiny-gemma3-vision-{quant}.gguf", "FROM ./mmproj-tiny-gemma3-vision-F16.gguf"]
        parsed = ollama_parser.parse((vision_bundle / f"Modelfile.{quant}").read_text())  # as Ollama reads it
        assert [v for c, v in parsed if c == "model"] == [f"./tiny-gemma3-vision-{quant}.gguf",
                                                         "./mmproj-tiny-gemma3-vision-F16.gguf"]
    ini = (vision_bundle / "llama-server.ini").read_text()
    section = ini.split("[tiny-gemma3-vision-Q4_K_M]")[1].split("[")[0]
    assert "model = ./tiny-gemma3-vision-Q4_K_M.gguf" in section and "mmproj = ./mmproj-tiny-gemma3-vision-F16.gguf" in section


def test_q8_0_projector_on_request(gemma3_dir, tmp_path):
    out = tmp_path / "q8"
    result = build(str(gemma3_dir), ["Q8_0"], output_dir=out, companions=CompanionRequest(mmproj_type="q8_0"))
    proj = asdict(result.manifest.projector)
    assert proj["file"] == "mmproj-tiny-gemma3-vision-Q8_0.gguf" and proj["outtype"] == "Q8_0"
    _, tensors = _fields(out / proj["file"])
    assert "Q8_0" in {t.tensor_type.name for t in tensors}


def test_an_image_prompt_runs_and_produces_tokens(vision_bundle, mtmd_tools):
    from edgepack.measure.image import bundle_image_prompts

    results = bundle_image_prompts(vision_bundle, n_predict=8, n_threads=2)
    assert sorted(r.model.rsplit("/", 1)[1] for r in results) == ["tiny-gemma3-vision-Q4_K_M.gguf", "tiny-gemma3-vision-Q8_0.gguf"]
    for r in results:
        assert r.n_generated >= 2 and r.text  # tokens came out
        assert r.image_encode_ms >= 0 and r.ttft_ms >= r.prompt_eval_ms > 0
        assert r.n_prompt_tokens >= 4  # the projector's 2x2 image tokens plus the text


def test_bench_image_cli(vision_bundle, mtmd_tools):
    from edgepack.cli import app

    result = runner.invoke(app, ["bench", str(vision_bundle), "--image", "generated", "-n", "4", "--json"])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 2 and all(r["ttft_ms"] > 0 for r in rows)


def test_plan_counts_the_projector(vision_bundle):
    from edgepack.machine.plan import plan_bundle

    size = json.loads((vision_bundle / "manifest.json").read_text())["projector"]["size_bytes"]
    with_proj = plan_bundle(vision_bundle, "raspberry-pi-5-8gb", ctx=256).choices[0].plan.memory
    without = plan_bundle(vision_bundle, "raspberry-pi-5-8gb", ctx=256, projector_bytes=0).choices[0].plan.memory
    assert with_proj.projector_ram == size
    assert with_proj.ram_total - without.ram_total == size


def test_a_projector_for_another_model_is_refused(vision_bundle, tmp_path):
    from edgepack.cli import app
    from edgepack.source import make_reference, resolve_source

    wide = make_reference(resolve_source(str(make_tiny_llama(tmp_path / "wide", hidden=512))), "f16")
    projector = vision_bundle / "mmproj-tiny-gemma3-vision-F16.gguf"
    out = tmp_path / "out"
    result = runner.invoke(app, ["build", str(wide.path), "-q", "Q8_0", "--mmproj", str(projector), "-o", str(out)])
    assert result.exit_code != 0
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "another model" in lines[0] and "256" in lines[0] and "512" in lines[0], result.stderr
    assert not out.exists()
    result = runner.invoke(app, ["build", str(wide.path), "--mmproj", str(wide.path), "-o", str(out)])
    assert result.exit_code != 0 and "not a projector" in result.stderr and not out.exists()


def test_llama_server_presets_answer_an_image(vision_bundle, native_tools, tmp_path):
    """`llama-server --models-preset llama-server.ini` from the bundle: each quant with its projector."""
    import base64

    from edgepack.measure.image import generated_image
    from tiny_multimodal import post_json, serve_presets, stop_server

    image = base64.b64encode(generated_image(tmp_path / "p.png").read_bytes()).decode()
    proc, url = serve_presets(native_tools.tool("llama-server"), vision_bundle)
    try:
        reply = post_json(url + "/v1/chat/completions", {
            "model": "tiny-gemma3-vision-Q4_K_M", "max_tokens": 4,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}}]}]})
    finally:
        stop_server(proc)
    assert reply["usage"]["completion_tokens"] > 0
    assert reply["usage"]["prompt_tokens"] >= 4 + 3  # the image's 2x2 tokens and the text


def test_eval_measures_an_image_prompt_per_quant(vision_bundle, mtmd_tools, tmp_path):
    from edgepack.bundle import load_manifest
    from edgepack.cli import app

    args = ["--chunks", "2", "--chunk-tokens", "64", "--no-speed", "--memory-ctx", "", "--threads", "2", "--json"]
    result = runner.invoke(app, ["eval", str(vision_bundle), *args])
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    assert sorted(r["quant"] for r in rows if not r["is_reference"]) == ["Q4_K_M", "Q8_0"]
    assert all(r["image_ttft_ms"] > 0 for r in rows)
    results = load_manifest(vision_bundle).evaluation.results  # and the manifest keeps it, typed
    assert all(r.image_ttft_ms > 0 for r in results) and len(results) == 3
    header = next(ln for ln in (vision_bundle / "report.md").read_text().splitlines() if ln.startswith("| quant"))
    assert "image TTFT ms" in header
    assert "image TTFT ms" in (vision_bundle / "report.csv").read_text().splitlines()[0]
    result = runner.invoke(app, ["eval", str(vision_bundle), *args, "--no-image", "-o", str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    assert all(r["image_ttft_ms"] is None for r in json.loads(result.stdout)["rows"])
    assert "image TTFT ms" not in (tmp_path / "r" / "report.md").read_text()


def test_eval_of_a_text_only_bundle_has_no_image_column(tiny_bundle, tmp_path):
    import shutil

    from edgepack.cli import app

    tiny_bundle = shutil.copytree(tiny_bundle, tmp_path / "text-only")  # the session's bundle stays as it is
    args = ["--chunks", "2", "--chunk-tokens", "64", "--no-speed", "--memory-ctx", "", "--threads", "2", "--json"]
    result = runner.invoke(app, ["eval", str(tiny_bundle), *args, "-o", str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    assert all(r["image_ttft_ms"] is None for r in json.loads(result.stdout)["rows"])
    assert "image TTFT ms" not in (tmp_path / "r" / "report.md").read_text()
    result = runner.invoke(app, ["eval", str(tiny_bundle), *args, "--image", "x.png", "-o", str(tmp_path / "r2")])
    assert result.exit_code != 0 and "needs a bundle with a projector" in result.stderr


def test_plan_counts_the_image_encoders_compute_buffer(vision_bundle, mtmd_tools, private_cache, tmp_path):
    """The figure clip.cpp logs when llama-mtmd-cli loads the projector, read here from a run of our own."""
    import subprocess

    from edgepack.machine.plan import plan_bundle
    from edgepack.measure.image import generated_image

    proc = subprocess.run([str(mtmd_tools.tool("llama-mtmd-cli")), "-m", str(vision_bundle / "tiny-gemma3-vision-Q8_0.gguf"),
                           "--mmproj", str(vision_bundle / "mmproj-tiny-gemma3-vision-F16.gguf"), "--image",
                           str(generated_image(tmp_path / "p.png")), "-p", "hi", "-n", "1", "-lv", "4"],
                          capture_output=True, text=True, errors="replace", check=True)
    lines = (proc.stderr + proc.stdout).splitlines()
    after_clip = lines[next(i for i, ln in enumerate(lines) if "clip_ctx: CLIP using CPU backend" in ln):]
    mib = float(next(ln for ln in after_clip if "CPU compute buffer size" in ln).split("=")[1].split()[0])
    logged = round(mib * 2**20)
    assert logged > 0
    assert not (private_cache / "projector-compute.json").exists()
    size = json.loads((vision_bundle / "manifest.json").read_text())["projector"]["size_bytes"]
    plan = plan_bundle(vision_bundle, "raspberry-pi-5-8gb", ctx=256).choices[0].plan  # measures it once
    assert (private_cache / "projector-compute.json").exists()
    m = plan.memory
    assert m.projector_compute_ram == logged and m.projector_compute_vram == 0  # CPU-only target: in RAM
    assert m.projector_ram == size
    no_proj = plan_bundle(vision_bundle, "raspberry-pi-5-8gb", ctx=256, projector_bytes=0,
                          projector_compute_bytes=None).choices[0].plan.memory
    assert m.ram_total - no_proj.ram_total == size + logged
    assert any("image-encoder compute buffer" in n and f"{mib:.2f} MiB" in n for n in plan.notes), plan.notes
