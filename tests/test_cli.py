"""The command line as a user drives it: results, --json, and one-line errors that damage nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgepack.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, *fragments):
    assert result.exit_code != 0
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# ------------------------------------------------------------------ happy paths

def test_build_json_inspect_verify(tiny_hf_dir, tmp_path):
    out = tmp_path / "bundle"
    result = run("build", tiny_hf_dir, "--quant", "q4_k", "--quant", "Q8_0", "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["bundle_dir"] == str(out)
    assert [f["quant"] for f in data["manifest"]["files"]] == ["Q8_0", "Q4_K_M"]

    result = run("inspect", out / "tiny-llama-Q4_K_M.gguf", "--json")
    info = json.loads(result.stdout)
    assert info["file_type"] == "Q4_K_M" and info["architecture"] == "llama" and info["has_chat_template"]

    result = run("inspect", out / "tiny-llama-Q4_K_M.gguf", "--layers")
    assert result.exit_code == 0 and "Q4_K_M" in result.stdout and "blk.0" in result.stdout

    result = run("verify", out, "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["ok"] is True

    (out / "tiny-llama-Q8_0.gguf").write_bytes(b"GGUF broken")
    assert_one_line_error(run("verify", out), "failed verification", "tiny-llama-Q8_0.gguf")


def test_doctor_json():
    result = run("doctor", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["packages"]["llama-cpp-python"] == "0.3.36"
    assert "CPU" in data["llama.cpp"]["backends"]
    assert "llama.cpp 0c1e570" in data["toolchain"]["build"]


# ------------------------------------------------------------------ bad input

def test_missing_path(tmp_path):
    assert_one_line_error(run("build", tmp_path / "nope", "-o", tmp_path / "out"), "no such file or directory")
    assert not (tmp_path / "out").exists()


def test_directory_without_config(tmp_path):
    (tmp_path / "model").mkdir()
    assert_one_line_error(run("build", tmp_path / "model", "-o", tmp_path / "out"), "no config.json")
    assert listing(tmp_path) == ["model"]


def test_unsupported_architecture(tiny_hf_dir, tmp_path):
    src = tmp_path / "weird"
    shutil.copytree(tiny_hf_dir, src)
    config = json.loads((src / "config.json").read_text())
    config["architectures"] = ["FrobnicatorForCausalLM"]
    (src / "config.json").write_text(json.dumps(config))
    assert_one_line_error(run("build", src, "-o", tmp_path / "out"), "FrobnicatorForCausalLM", "not supported")
    assert not (tmp_path / "out").exists()


def test_inspect_a_bundle_shows_its_quants_and_how_each_runtime_renders_chat(tiny_bundle, tmp_path):
    result = run("inspect", tiny_bundle, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert [(f["file"], f["quant"]) for f in data["files"]] == [("tiny-llama-Q8_0.gguf", "Q8_0"),
                                                                ("tiny-llama-Q4_K_M.gguf", "Q4_K_M")]
    assert data["chat"] == manifest["chat"]  # what the build proved, not proven again
    # the tiny model's template is plain ChatML: Go renders it exactly and current Ollama takes it
    text = " ".join(run("inspect", tiny_bundle).stdout.split())
    assert "chat: Ollama Go TEMPLATE: exact" in text and "chat: current Ollama uses: the Go TEMPLATE" in text
    assert "tiny-llama-Q4_K_M.gguf (Modelfile.Q4_K_M)" in text
    # plain, what the manifest records; with --chat, proven again on the bundle's GGUF
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundle, copy)
    manifest["chat"]["current_ollama"] = "recorded, not proven again"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert json.loads(run("inspect", copy, "--json").stdout)["chat"]["current_ollama"] == "recorded, not proven again"
    assert json.loads(run("inspect", copy, "--chat", "--json").stdout)["chat"]["current_ollama"] == "the Go TEMPLATE"
    empty = tmp_path / "not-a-bundle"
    empty.mkdir()
    assert_one_line_error(run("inspect", empty), "without manifest.json", "give a .gguf file")


def test_unknown_quant_lists_valid(tiny_hf_dir, tmp_path):
    result = run("build", tiny_hf_dir, "--quant", "Q4_K_XL", "-o", tmp_path / "out")
    assert_one_line_error(result, "Q4_K_XL", "Q4_K_M", "Q8_0", "Q2_K")
    assert not (tmp_path / "out").exists()


def test_not_a_gguf_and_truncated(tiny_bundle, tmp_path):
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    assert_one_line_error(run("inspect", text), "not a GGUF file")
    assert_one_line_error(run("build", text, "-o", tmp_path / "out"), "not a GGUF file")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes((tiny_bundle / "tiny-llama-Q8_0.gguf").read_bytes()[:300_000])
    assert_one_line_error(run("inspect", cut), "truncated")
    assert_one_line_error(run("build", cut, "-o", tmp_path / "out2"), "truncated")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.gguf", "notes.gguf"]


def test_unwritable_output(tiny_hf_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert_one_line_error(run("build", tiny_hf_dir, "-o", blocker / "out"), "not a directory")
    assert_one_line_error(run("build", tiny_hf_dir, "-o", "/proc/edgepack-out"), "cannot write")


def test_output_dir_with_foreign_files_is_refused(tiny_hf_dir, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    assert_one_line_error(run("build", tiny_hf_dir, "-o", out), "not an edgepack bundle")
    assert listing(out) == ["thesis.tex"]


def test_full_disk_is_checked_before_writing(tmp_path):
    from edgepack.source import ensure_free_space
    from edgepack.errors import OutputError

    free = shutil.disk_usage(tmp_path).free
    with pytest.raises(OutputError, match="not enough free space"):
        ensure_free_space(tmp_path, free + 2**40, "a test file")
    ensure_free_space(tmp_path, 1024, "a test file")


def test_hub_id_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    env_run = subprocess.run(
        [sys.executable, "-m", "edgepack.cli", "build", "edgepack-test/not-cached", "-o", str(tmp_path / "out")],
        capture_output=True, text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    assert env_run.returncode != 0
    lines = env_run.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Hugging Face Hub" in lines[0] and "local cache" in lines[0]
    assert not (tmp_path / "out").exists()


def _signal_masks(pid: int) -> str:
    try:
        return " ".join(ln.strip() for ln in open(f"/proc/{pid}/status") if ln.startswith(("SigBlk", "SigIgn", "SigCgt")))
    except OSError:
        return "n/a"


def test_ctrl_c_leaves_no_partial_file_and_keeps_the_old_bundle(tmp_path, private_cache):
    """SIGINT in the middle of quantizing: exit 130, no partial files, the good bundle untouched."""
    from tiny_models import make_tiny_llama

    # Big enough that quantizing the ladder takes a few seconds.
    src = make_tiny_llama(tmp_path / "medium", hidden=1024, layers=6, vocab_size=512)
    out = tmp_path / "bundles" / "medium"
    assert run("build", src, "--quant", "Q8_0", "-o", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    # The child must start with Ctrl-C's default disposition: a process started with SIGINT ignored
    # (as a shell's background job is) rightly keeps ignoring it, and the test process itself may
    # have it ignored while a library in it runs system().
    proc = subprocess.Popen([sys.executable, "-m", "edgepack.cli", "build", str(src), "--ladder", "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    partial = []
    while time.time() < deadline and proc.poll() is None:
        partial = list((tmp_path / "bundles").glob(".medium.*/*.partial"))
        if partial:
            break
        time.sleep(0.02)
    if not partial:
        proc.kill()
        out_, err_ = proc.communicate()
        raise AssertionError(f"the build never reached quantization (exit {proc.returncode}): {err_[-2000:]}")
    masks = _signal_masks(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stderr, partial, masks, _signal_masks(os.getpid()))
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "interrupted" in lines[0]
    assert sorted(p.name for p in (tmp_path / "bundles").iterdir()) == ["medium"]  # no staging dir left
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_imatrix_command_and_build_options(tiny_hf_dir, tmp_path):
    from edgepack.quantize.imatrix import default_calibration_text

    calib = tmp_path / "calib.txt"
    calib.write_text(default_calibration_text().text[:50_000])
    imatrix = tmp_path / "tiny.imatrix.gguf"
    result = run("imatrix", tiny_hf_dir, "--calibration", calib, "--chunks", "2", "--chunk-tokens", "128", "-o", imatrix, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["chunks"] == 2 and data["entries"] == 14 and imatrix.is_file()

    result = run("build", tiny_hf_dir, "--quant", "IQ2_XXS", "--quant", "Q3_K_M", "--imatrix", imatrix,
                 "--keep", "output=Q8_0", "--tensor-type", r"blk\.0\.ffn_down=Q6_K", "-o", tmp_path / "b", "--json")
    assert result.exit_code == 0, result.stderr
    manifest = json.loads(result.stdout)["manifest"]
    assert manifest["imatrix"]["chunks"] == 2 and manifest["imatrix"]["computed"] is False
    assert manifest["files"][0]["options"]["output_tensor_type"] == "Q8_0"

    result = run("build", tiny_hf_dir, "--quant", "Q4_K_M", "--quant", "Q2_K", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    sizes = {s["quant"]: s["size_bytes"] for s in json.loads(result.stdout)["sizes"]}
    assert sizes["Q4_K_M"] > sizes["Q2_K"] > 0

    assert_one_line_error(run("build", tiny_hf_dir, "--quant", "IQ1_S", "-o", tmp_path / "c"), "--calibration")
    assert_one_line_error(run("build", tiny_hf_dir, "--tensor-type", "zzz=Q8_0", "-o", tmp_path / "c"), "matches no tensor")
    assert_one_line_error(run("build", tiny_hf_dir, "--keep", "output=Q9", "-o", tmp_path / "c"), "unknown tensor type")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert_one_line_error(run("imatrix", tiny_hf_dir, "--calibration", empty), "is empty")
    assert not (tmp_path / "c").exists()


def test_unknown_target_fails_before_any_work(tiny_hf_dir, tmp_path):
    result = run("build", tiny_hf_dir, "--target", "jetson-orin-nano-4gb", "-o", tmp_path / "out")
    assert_one_line_error(result, "jetson-orin-nano-4gb", "jetson-orin-nano-8gb")
    assert not (tmp_path / "out").exists()


def test_eval_and_report_commands(tiny_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    result = run("eval", bundle, "--chunk-tokens", "128", "--chunks", "2", "-r", "1", "--memory-ctx", "", "--max-kld", "5",
                 "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["quant"] for r in data["rows"]] == ["F16", "Q8_0", "Q4_K_M"]
    assert data["settings"]["n_chunks"] == 2 and data["rows"][1]["kld"] > 0
    result = run("report", bundle, "--budget", "100KB")
    assert result.exit_code == 0, result.stderr
    assert "No quant fits within" in json.loads((bundle / "report.json").read_text())["recommendation"][0]

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert_one_line_error(run("eval", bundle, "--text", empty), "is empty")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "choices": ["a", "b"], "answer": 0}\n{"question": 3}\n')
    assert_one_line_error(run("eval", bundle, "--tasks", bad), "bad.jsonl:2")
    assert_one_line_error(run("eval", bundle / "tiny-llama-Q8_0.gguf"), "--reference")
    assert_one_line_error(run("report", tmp_path), "does not exist")
    assert_one_line_error(run("eval", tmp_path / "nope"), "no such file or directory")


def test_report_merges_bench_results_from_several_machines(tiny_bundle, native_tools, tmp_path):
    model = tiny_bundle / "tiny-llama-Q8_0.gguf"
    ours = tmp_path / "this-machine.json"
    result = run("bench", model, "-p", "32", "-n", "8", "-r", "1", "-t", "1", "-o", ours)
    assert result.exit_code == 0, result.stderr
    theirs = tmp_path / "llama-bench.json"
    done = subprocess.run([str(native_tools.tool("llama-bench")), "-m", str(model), "-p", "32", "-n", "8", "-r", "1",
                           "-t", "1", "-o", "json"], capture_output=True, text=True, check=True)
    theirs.write_text(done.stdout)
    merged = tmp_path / "all.csv"
    result = run("report", "--bench", ours, theirs, "-o", merged)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("| machine | model |") and len(lines) == 2 + 4  # pp and tg from each file
    assert "pp32" in result.stdout and "tg8" in result.stdout
    assert merged.read_text().splitlines()[0].startswith("machine,model_filename,quant")
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"hello": 1}')
    assert_one_line_error(run("report", "--bench", bogus, ours), "bogus.json")


def test_an_option_means_one_thing(tiny_bundle, tmp_path):
    # --ctx is the deployment context: eval's chunk length has its own name.
    result = run("eval", tiny_bundle, "--ctx", "128")
    assert result.exit_code != 0 and "--ctx" in result.stderr
    # --threads: one number where a command runs once, a list only where bench sweeps.
    assert_one_line_error(run("eval", tiny_bundle, "--threads", "1,2", "--no-speed"), "give one number")
    assert_one_line_error(run("plan", tiny_bundle, "--threads", "two"), "positive whole numbers")
    # report: a bundle, or bench results merged with an explicit --bench.
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text("{}")
    b.write_text("{}")
    assert_one_line_error(run("report", a, b), "--bench")
    assert_one_line_error(run("report", tiny_bundle, "-o", tmp_path / "x.md"), "--bench")


def test_the_ollama_hint_is_a_command_that_pastes_with_spaces_in_the_path(tiny_hf_dir, tmp_path):
    import shlex

    out = tmp_path / "my bundles" / "tiny one"
    result = run("build", tiny_hf_dir, "--quant", "Q8_0", "-o", out)
    assert result.exit_code == 0, result.stderr
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("Ollama: "))
    assert shlex.split(line.removeprefix("Ollama: ")) == ["ollama", "create", "<name>", "-f", str(out / "Modelfile")]
