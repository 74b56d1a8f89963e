"""A build never loses what is in its output directory: foreign directories, rebuilds that keep
what they do not remake, the lock, the atomic swap, kills, and resuming from the quant cache."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from edgepack.bundle import load_manifest, verify_bundle
from edgepack.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def one_line_error(result, *fragments) -> str:
    assert result.exit_code != 0, result.stdout
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    # One error line, last; before it at most the warnings of steps that ran (e.g. a dequantized source).
    assert errors == [lines[-1]] and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def snapshot(path: Path) -> dict:
    """Every file's bytes and the directory's mode: what "nothing was touched" means."""
    return {"mode": stat.S_IMODE(path.stat().st_mode),
            "files": {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}}


def cli(*args, **kwargs) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(REPO), "EDGEPACK_NO_PROGRESS": "1"}
    return subprocess.Popen([sys.executable, "-m", "edgepack.cli", *map(str, args)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 180):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        found = predicate()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"never happened (build exit {proc.poll()}: {proc.stderr.read() if proc.poll() is not None else ''})")


# ------------------------------------------------------------------ foreign directories

def test_a_foreign_directory_is_refused_and_untouched(tiny_hf_dir, tiny_bundle, tmp_path):
    fake = tmp_path / "w"
    fake.mkdir()
    (fake / "manifest.json").write_text("{}")
    (fake / "index.html").write_text("x")
    before = snapshot(fake)
    one_line_error(run("build", tiny_hf_dir, "-q", "Q4_0", "-o", fake), "not an edgepack bundle")
    one_line_error(run("build", tiny_hf_dir, "-q", "Q4_0", "-o", fake, "--replace"), "not an edgepack bundle")
    assert snapshot(fake) == before

    # A real bundle with a file its manifest does not list is not only a bundle.
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_bundle, mixed)
    (mixed / "thesis.tex").write_text("precious")
    (mixed / "sub").mkdir()
    before = snapshot(mixed)
    one_line_error(run("build", tiny_hf_dir, "-q", "Q4_0", "-o", mixed, "--replace"), "does not list", "thesis.tex")
    assert snapshot(mixed) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging, no lock left


# ------------------------------------------------------------------ rebuilds

def test_rebuild_adds_a_quant_and_keeps_files_reports_and_mode(tiny_hf_dir, tmp_path):
    out = tmp_path / "out"
    assert run("build", tiny_hf_dir, "-q", "Q4_K_M", "-o", out).exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    result = run("eval", out, "--chunk-tokens", "128", "--chunks", "1", "-r", "1", "--memory-ctx", "")
    assert result.exit_code == 0, result.stderr
    q4 = out / "tiny-llama-Q4_K_M.gguf"
    q4_bytes, q4_entry = q4.read_bytes(), load_manifest(out).file("Q4_K_M")
    reports = {n: (out / n).read_bytes() for n in ("report.md", "report.json", "report.csv", "eval-rows.jsonl")}
    evaluated_lines = [ln for ln in (out / "README.md").read_text().splitlines() if "report" in ln.lower()
                       or ln.startswith("| F16")]
    os.chmod(out, 0o750)

    result = run("build", tiny_hf_dir, "-q", "Q8_0", "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    m = load_manifest(out)
    assert [f.quant for f in m.files] == ["Q4_K_M", "Q8_0"]
    assert m.file("Q4_K_M") == q4_entry and q4.read_bytes() == q4_bytes
    assert {n: (out / n).read_bytes() for n in reports} == reports
    assert m.evaluation is not None and [r.quant for r in m.evaluation.results if not r.is_reference] == ["Q4_K_M"]
    card = (out / "README.md").read_text()
    assert evaluated_lines and all(line in card for line in evaluated_lines)  # the card still shows the evaluation
    assert "FROM ./tiny-llama-Q4_K_M.gguf" in (out / "Modelfile").read_text()  # Q4_K_M stays the default
    assert (out / "Modelfile.Q8_0").is_file() and (out / "Modelfile.Q4_K_M").is_file()
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert verify_bundle(out).ok

    # Asking again for a quant the bundle has with the same options reuses its file.
    result = run("build", tiny_hf_dir, "-q", "Q4_K_M", "-q", "Q8_0", "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["reused"] == {"Q4_K_M": "bundle", "Q8_0": "bundle"}
    # Other options remake it, and the report that measured the old file goes.
    result = run("build", tiny_hf_dir, "-q", "Q4_K_M", "--pure", "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["reused"] == {}
    m = load_manifest(out)
    assert m.file("Q4_K_M").options["pure"] and q4.read_bytes() != q4_bytes and m.file("Q8_0")
    assert not (out / "report.md").exists() and m.evaluation is None

    result = run("build", tiny_hf_dir, "-q", "Q4_0", "-o", out, "--replace", "--json")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.glob("*.gguf")) == ["tiny-llama-Q4_0.gguf"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_rebuild_refuses_another_source_a_changed_file_and_keeps_a_source_inside(tiny_hf_dir, tmp_path):
    from tiny_models import make_tiny_llama

    out = tmp_path / "out"
    assert run("build", tiny_hf_dir, "-q", "Q8_0", "-o", out).exit_code == 0
    before = snapshot(out)
    other = make_tiny_llama(tmp_path / "other", seed=1)
    one_line_error(run("build", other, "-q", "Q4_0", "-o", out), "another source", "--replace")
    assert snapshot(out) == before

    # A GGUF inside the bundle as the source: never deleted, with or without --replace.
    inner = out / "tiny-llama-Q8_0.gguf"
    one_line_error(run("build", inner, "-q", "Q4_0", "-o", out), "--replace")
    one_line_error(run("build", inner, "-q", "Q4_0", "-o", out, "--replace"), "inside")
    assert snapshot(out) == before

    # A kept file that no longer matches its sha256 is not silently carried into the new bundle.
    data = bytearray(inner.read_bytes())
    data[-5] ^= 0xFF
    inner.write_bytes(bytes(data))
    changed = snapshot(out)
    one_line_error(run("build", tiny_hf_dir, "-q", "Q4_0", "-o", out), "sha256")
    assert snapshot(out) == changed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------ kills, the lock, resume

@pytest.fixture(scope="module")
def medium_model(tmp_path_factory):
    from tiny_models import make_tiny_llama

    # Big enough that each quant of the ladder takes a moment.
    return make_tiny_llama(tmp_path_factory.mktemp("medium") / "medium", hidden=1024, layers=6, vocab_size=512)


def _staging(parent: Path) -> list[Path]:
    return [p for p in parent.glob(".medium.*.partial")]


def test_kill_mid_build_keeps_the_old_bundle_then_a_rerun_resumes(medium_model, tmp_path, private_cache):
    from edgepack.quantize.cache import cache_entry
    from edgepack.quantize.engine import QuantOptions
    from edgepack.quantize.types import get_quant

    parent = tmp_path / "bundles"
    out = parent / "medium"
    assert run("build", medium_model, "-q", "Q8_0", "-o", out).exit_code == 0
    before = snapshot(out)

    proc = cli("build", medium_model, "--ladder", "-o", out)
    # Wait until Q5_K_M (the third quant) is finished: its Modelfile is written after its cache entry.
    wait_for(lambda: [s for s in _staging(parent) if (s / "Modelfile.Q5_K_M").exists()], proc)
    # A second build into the same directory fails at once, with one line.
    second = run("build", medium_model, "-q", "Q4_0", "-o", out)
    one_line_error(second, "another edgepack process is writing")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert snapshot(out) == before and verify_bundle(out, load=False).ok
    assert _staging(parent)  # debris of the killed build

    m = load_manifest(out)
    q6 = cache_entry(m.reference["sha256"], get_quant("Q6_K"), QuantOptions(), None, m.toolchain)
    assert q6.lookup() is not None
    damaged = bytearray(q6.gguf.read_bytes())
    damaged[-3] ^= 0xFF
    os.unlink(q6.gguf)  # a new inode: the killed staging dir's link keeps the good bytes
    q6.gguf.write_bytes(bytes(damaged))

    proc = cli("build", medium_model, "--ladder", "-o", out, "--json")
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    data = json.loads(stdout)
    assert data["reused"] == {"Q8_0": "bundle", "Q5_K_M": "cache"}  # Q6_K's entry was damaged: remade
    assert [f["quant"] for f in data["manifest"]["files"]] == ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0",
                                                              "Q3_K_M", "Q2_K"]
    assert verify_bundle(out).ok
    assert sorted(p.name for p in parent.iterdir()) == ["medium"]  # debris and lock gone
    assert q6.lookup() is None  # the bundle holds the quants now; the cache let them go


def test_sigterm_is_handled_like_ctrl_c(medium_model, tmp_path, private_cache):
    parent = tmp_path / "bundles"
    out = parent / "medium"
    proc = cli("build", medium_model, "--ladder", "-o", out)
    wait_for(lambda: [s for s in _staging(parent) if list(s.glob(".*.partial"))], proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0], stderr
    assert list(parent.iterdir()) == [] and not out.exists()


def test_the_converter_dies_with_a_killed_build(tmp_path):
    """SIGKILL leaves no orphan: the converter child gets the parent-death signal."""
    from tiny_models import make_tiny_llama

    src = make_tiny_llama(tmp_path / "fresh", hidden=1024, layers=6)
    config = json.loads((src / "config.json").read_text())
    config["edgepack_test_nonce"] = os.urandom(8).hex()  # never in the reference cache yet
    (src / "config.json").write_text(json.dumps(config))
    proc = cli("build", src, "-o", tmp_path / "out")
    parent = psutil.Process(proc.pid)

    def converter():
        for c in parent.children(recursive=True):
            try:
                if "convert_hf_to_gguf" in " ".join(c.cmdline()):
                    return c
            except psutil.Error:  # a short-lived child that is already gone
                continue

    child = wait_for(converter, proc)
    child.suspend()  # so it cannot simply finish its work during the check
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    gone, alive = psutil.wait_procs([child], timeout=10)
    for orphan in alive:
        orphan.kill()
    assert not alive, f"converter {child.pid} outlived its parent"


def test_the_swap_never_leaves_the_directory_missing(tmp_path):
    """A reader looking all the time always finds a bundle, old or new (renameat2 RENAME_EXCHANGE)."""
    import threading

    from edgepack.atomic import make_staging_dir
    from edgepack.bundle.swap import remove_tree, swap_in

    out = tmp_path / "b"
    out.mkdir()
    (out / "manifest.json").write_text("0")
    missing, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            if not os.path.exists(out / "manifest.json"):
                missing.append(1)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(1, 400):
            staging = make_staging_dir(out)
            (staging / "manifest.json").write_text(str(i))
            remove_tree(swap_in(staging, out))
    finally:
        stop.set()
        thread.join()
    assert (out / "manifest.json").read_text() == "399" and not missing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_debris_of_dead_builds_is_cleaned_and_a_bundle_left_aside_is_put_back(tiny_hf_dir, tmp_path):
    out = tmp_path / "out"
    assert run("build", tiny_hf_dir, "-q", "Q8_0", "-o", out).exit_code == 0
    before = snapshot(out)
    dead = subprocess.Popen(["true"])
    dead.wait()
    # What a build killed between the fallback swap's two renames leaves, and a killed staging dir.
    os.rename(out, tmp_path / f".out.{dead.pid}.old.partial")
    staging = tmp_path / f".out.{dead.pid}.k3x_9abc.partial"
    staging.mkdir()
    (staging / "tiny-llama-Q4_0.gguf").write_bytes(b"half")
    alive = tmp_path / f".out.{os.getpid()}.zzzzzzzz.partial"  # a live writer's: left alone
    alive.mkdir()
    from edgepack.paths import reference_cache_dir
    from edgepack.quantize.cache import quant_cache_dir

    folders = [quant_cache_dir() / f"test-{os.urandom(6).hex()}", reference_cache_dir() / f"test-{os.urandom(6).hex()}"]
    partials = [folders[0] / f".Q4_0.gguf.{dead.pid}.partial", folders[1] / f".reference.gguf.{dead.pid}.partial"]
    for partial in partials:
        partial.parent.mkdir(parents=True)
        partial.write_bytes(b"cut off")
    result = run("build", tiny_hf_dir, "-q", "Q8_0", "-o", out, "--json")
    for folder in folders:
        shutil.rmtree(folder)
    assert result.exit_code == 0, result.stderr
    assert not any(p.exists() for p in partials)
    assert json.loads(result.stdout)["reused"] == {"Q8_0": "bundle"}
    assert snapshot(out)["files"]["tiny-llama-Q8_0.gguf"] == before["files"]["tiny-llama-Q8_0.gguf"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", alive.name])
