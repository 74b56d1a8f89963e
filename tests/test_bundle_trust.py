"""Nothing outside the bundle, nothing unverified: verify, the checks before eval and bench --tune,
eval's resume, read-only bundles, and report.json of the wrong shape."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgepack.bundle import load_manifest, verify_bundle, write_manifest
from edgepack.cli import app
from edgepack.errors import EdgepackError, VerifyError
from edgepack.hashing import sha256_file
from edgepack.measure.evaluate import EvalPlan, evaluate
from edgepack.measure.scoring import EvalSettings

REPO = Path(__file__).resolve().parents[1]
QUICK = EvalPlan(settings=EvalSettings(n_ctx=128, n_chunks=2, n_threads=2), speed=False, memory_contexts=())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bundle_copy(tiny_bundle, tmp_path, name="b") -> Path:
    out = tmp_path / name
    shutil.copytree(tiny_bundle, out)
    return out


def flip_a_byte_keeping_size_and_mtime(path: Path) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def one_line_error(result, *fragments):
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert result.exit_code != 0 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ------------------------------------------------------------------ verify

def test_a_file_named_like_a_hub_blob_is_hashed(tmp_path):
    """0.1 took any file resolving to .../blobs/<64 hex> for that hash without reading it."""
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    claimed = hashlib.sha256(b"the real weights").hexdigest()
    (blobs / claimed).write_bytes(b"something else")
    link = tmp_path / "model.gguf"
    link.symlink_to(blobs / claimed)
    assert sha256_file(link, memo=False) == hashlib.sha256(b"something else").hexdigest() != claimed
    assert sha256_file(link) == hashlib.sha256(b"something else").hexdigest()


def test_verify_is_not_fooled_by_a_blob_named_link(tiny_bundle, tmp_path):
    bundle = bundle_copy(tiny_bundle, tmp_path)
    q8 = load_manifest(bundle).file("Q8_0")
    blobs = bundle / "blobs"  # inside the bundle, named by the sha256 the manifest lists
    blobs.mkdir()
    fake = blobs / q8.sha256
    shutil.copyfile(bundle / q8.file, fake)
    flip_a_byte_keeping_size_and_mtime(fake)
    (bundle / q8.file).unlink()
    (bundle / q8.file).symlink_to(fake)
    try:
        result = verify_bundle(bundle, load=False)
    except EdgepackError as err:  # refused outright is fine too: the link leaves the bundle's top level
        assert q8.file in str(err)
    else:
        assert not result.ok


def test_verify_reports_unlisted_files_and_fails_on_unlisted_ggufs(tiny_bundle, tmp_path):
    bundle = bundle_copy(tiny_bundle, tmp_path)
    (bundle / "notes.txt").write_text("mine\n")
    result = verify_bundle(bundle, load=False)
    assert result.ok and result.unlisted == ["notes.txt"]
    shutil.copyfile(bundle / "tiny-llama-Q8_0.gguf", bundle / "extra.gguf")
    result = verify_bundle(bundle, load=False)
    assert not result.ok and result.unlisted == ["extra.gguf", "notes.txt"]
    assert result.problems == ["extra.gguf: a GGUF not listed in manifest.json"]
    res = CliRunner().invoke(app, ["verify", str(bundle), "--no-load"])
    one_line_error(res, "failed verification", "extra.gguf")


def test_verify_checks_unlisted_modelfiles_too(tiny_bundle, tmp_path):
    bundle = bundle_copy(tiny_bundle, tmp_path)
    (bundle / "Modelfile.mine").write_text("FROM ./tiny-llama-Q8_0.gguf\nPARAMETER num_ctx 64\n")
    assert verify_bundle(bundle, load=False).ok  # a Modelfile of the user's, on a listed GGUF
    (bundle / "Modelfile.mine").write_text("FROM ../elsewhere.gguf\n")
    result = verify_bundle(bundle, load=False)
    assert not result.ok and result.problems == ["Modelfile.mine: FROM ../elsewhere.gguf is not a GGUF the manifest lists"]
    (bundle / "Modelfile.mine").unlink()
    (bundle / "Modelfile.link").symlink_to(tmp_path / "elsewhere")
    assert verify_bundle(bundle, load=False).problems == ["Modelfile.link: a link or not a regular file"]


@pytest.mark.parametrize("edit, fragment", [
    (lambda t: t.replace("FROM ./tiny-llama-Q8_0.gguf", "FROM /etc/passwd"), "FROM /etc/passwd is not a GGUF"),
    (lambda t: t.replace("FROM ./tiny-llama-Q8_0.gguf", "FROM ./tiny-llama-Q8_0.gguf\nfrom ./other.gguf"),
     "has 2 FROM lines"),
    (lambda t: t.replace("FROM ./tiny-llama-Q8_0.gguf", "# FROM gone"), "has 0 FROM lines"),
    (lambda t: t + "ADAPTER ../lora.gguf\n", "ADAPTER"),
])
def test_verify_checks_every_modelfiles_from(tiny_bundle, tmp_path, edit, fragment):
    bundle = bundle_copy(tiny_bundle, tmp_path)
    path = bundle / "Modelfile.Q8_0"
    path.write_text(edit(path.read_text()))
    result = verify_bundle(bundle, load=False)
    assert not result.ok
    assert [m.file for m in result.modelfiles if not m.ok] == ["Modelfile.Q8_0"]
    assert fragment in result.problems[0], result.problems


def test_verify_passes_a_clean_bundle_with_a_from_inside_a_template(tiny_bundle, tmp_path):
    bundle = bundle_copy(tiny_bundle, tmp_path)
    result = verify_bundle(bundle, load=False)
    assert result.ok and result.unlisted == [] and result.schema == 2
    assert {m.file: m.from_ for m in result.modelfiles} == {
        "Modelfile.Q8_0": ["./tiny-llama-Q8_0.gguf"], "Modelfile.Q4_K_M": ["./tiny-llama-Q4_K_M.gguf"],
        "Modelfile": ["./tiny-llama-Q4_K_M.gguf"]}
    path = bundle / "Modelfile.Q8_0"  # a FROM line inside a triple-quoted value is text, not an instruction
    path.write_text(path.read_text() + 'SYSTEM """Answer briefly.\nFROM here on, be kind."""\n')
    assert verify_bundle(bundle, load=False).ok


# ------------------------------------------------------------------ eval and bench --tune check what they measure

def test_eval_and_tune_refuse_a_tampered_gguf(tiny_bundle, tmp_path):
    from edgepack.measure.bench import tune_bundle

    bundle = bundle_copy(tiny_bundle, tmp_path)
    before = (bundle / "manifest.json").read_text()
    flip_a_byte_keeping_size_and_mtime(bundle / "tiny-llama-Q4_K_M.gguf")
    with pytest.raises(VerifyError, match="tiny-llama-Q4_K_M.gguf is not the file the manifest lists"):
        evaluate([bundle], plan=QUICK)
    with pytest.raises(VerifyError, match="tiny-llama-Q4_K_M.gguf is not the file the manifest lists"):
        tune_bundle(bundle, threads=[1], n_prompt=8, n_gen=2, repetitions=1)
    assert (bundle / "manifest.json").read_text() == before
    assert not (bundle / "report.json").exists() and not (bundle / "eval-rows.jsonl").exists()
    res = CliRunner().invoke(app, ["eval", str(bundle), "--no-speed", "--memory-ctx", ""])
    one_line_error(res, "not the file the manifest lists")


def test_the_fast_path_is_the_files_identity(tiny_bundle, tmp_path):
    """verify remembers (device, inode, size, mtime, ctime); a file changed in place is hashed again."""
    from edgepack.bundle.integrity import check_listed_file

    bundle = bundle_copy(tiny_bundle, tmp_path)
    assert verify_bundle(bundle, load=False).ok
    entry = load_manifest(bundle).file("Q8_0")
    assert check_listed_file(bundle, entry) == bundle / entry.file
    flip_a_byte_keeping_size_and_mtime(bundle / entry.file)  # same size and mtime: only the ctime moved
    with pytest.raises(VerifyError):
        check_listed_file(bundle, entry)


def test_an_eval_racing_a_rebuild_records_only_what_is_still_there(tiny_bundle, tmp_path, monkeypatch):
    """The Q8_0 GGUF is removed (as a rebuild with only Q4_K_M would) while Q4_K_M is being measured."""
    evaluate_module = sys.modules["edgepack.measure.evaluate"]  # the package exports a function of that name
    bundle = bundle_copy(tiny_bundle, tmp_path)
    real = evaluate_module.divergence

    def divergence_during_a_rebuild(path, base, settings):
        if Path(path).name == "tiny-llama-Q4_K_M.gguf":
            manifest = load_manifest(bundle)
            gone = manifest.file("Q8_0")
            manifest.files = [f for f in manifest.files if f.quant != "Q8_0"]
            (bundle / gone.file).unlink()
            (bundle / gone.modelfile).unlink()
            write_manifest(bundle, manifest)
        return real(path, base, settings)

    monkeypatch.setattr(evaluate_module, "divergence", divergence_during_a_rebuild)
    report, _ = evaluate([bundle], plan=QUICK)
    assert [r.quant for r in report.rows] == ["F16", "Q4_K_M"]
    assert any("Q8_0" in n for n in report.notes)
    m = load_manifest(bundle)
    assert [r.quant for r in m.evaluation.results] == ["F16", "Q4_K_M"]
    assert m.evaluation.results[1].sha256 == m.file("Q4_K_M").sha256
    assert [r["quant"] for r in json.loads((bundle / "report.json").read_text())["rows"]] == ["F16", "Q4_K_M"]
    assert "| Q8_0 |" not in (bundle / "README.md").read_text()


# ------------------------------------------------------------------ eval resume

def test_resume_is_keyed_by_content_not_by_file_name(tiny_bundle, tiny_reference, tmp_path):
    gguf = tmp_path / "m.gguf"
    shutil.copyfile(tiny_bundle / "tiny-llama-Q8_0.gguf", gguf)
    out = tmp_path / "report"
    first, _ = evaluate([gguf], reference=tiny_reference.path, plan=QUICK, output_dir=out)
    again, _ = evaluate([gguf], reference=tiny_reference.path, plan=QUICK, output_dir=out)
    assert again.rows[1].seconds == first.rows[1].seconds  # the same bytes: reused
    shutil.copyfile(tiny_bundle / "tiny-llama-Q4_K_M.gguf", gguf)  # another quant under the same name
    other, _ = evaluate([gguf], reference=tiny_reference.path, plan=QUICK, output_dir=out)
    assert other.rows[1].quant == "Q4_K_M" and other.rows[1].kld > first.rows[1].kld
    assert other.rows[1].size_bytes == gguf.stat().st_size


def test_a_cut_off_rows_file_resumes_with_a_note(tiny_bundle, tmp_path, capsys):
    bundle = bundle_copy(tiny_bundle, tmp_path)
    first, _ = evaluate([bundle], plan=QUICK)
    rows = bundle / "eval-rows.jsonl"
    lines = rows.read_text().splitlines()
    assert len(lines) == 3
    rows.write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])  # as a kill leaves it
    capsys.readouterr()
    again, _ = evaluate([bundle], plan=QUICK)
    err = capsys.readouterr().err
    assert "eval-rows.jsonl line 3 is cut off" in err and "Traceback" not in err
    assert [r.seconds for r in again.rows[:2]] == [r.seconds for r in first.rows[:2]]  # kept
    assert again.rows[2].quant == "Q4_K_M" and again.rows[2].kld == pytest.approx(first.rows[2].kld)
    saved = [json.loads(line) for line in rows.read_text().splitlines()]  # whole lines again
    assert [r["row"]["quant"] for r in saved] == ["F16", "Q8_0", "Q4_K_M"]


# ------------------------------------------------------------------ read-only bundles, bad report.json

def _read_only_runner():
    """A way to run a command with a directory read-only for it: a read-only bind mount in a private
    mount namespace (root ignores file modes), or plain file modes for other users; None if neither."""
    if os.geteuid() != 0:
        return "chmod"
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"edgepack-ro-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        done = subprocess.run(["unshare", "-m", "sh", "-c", _RO_SCRIPT, str(probe), "true"], capture_output=True)
        return "unshare" if done.returncode == 0 else None
    except OSError:
        return None
    finally:
        probe.rmdir()


_RO_SCRIPT = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'


def run_on_read_only(bundle: Path, *args) -> subprocess.CompletedProcess:
    how = _read_only_runner()
    if how is None:
        pytest.skip("no way to make a directory read-only here (root without mount namespaces)")
    cli = [sys.executable, "-m", "edgepack.cli", *map(str, args)]
    env = os.environ | {"PYTHONPATH": str(REPO), "EDGEPACK_NO_PROGRESS": "1"}
    if how == "unshare":
        return subprocess.run(["unshare", "-m", "sh", "-c", _RO_SCRIPT, str(bundle), *cli], capture_output=True,
                              text=True, env=env)
    modes = {p: p.stat().st_mode for p in [bundle, *bundle.iterdir()]}
    for p in modes:
        p.chmod(modes[p] & ~0o222)
    try:
        return subprocess.run(cli, capture_output=True, text=True, env=env)
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def snapshot(directory: Path) -> dict:
    return {p.name: sha256(p) for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("args, fragment", [
    (["eval", "{b}", "--no-speed", "--memory-ctx", "", "--chunks", "2", "--chunk-tokens", "128"], "eval cannot record"),
    (["bench", "{b}", "--tune", "-t", "1", "-p", "8", "-n", "2", "-r", "1"], "bench --tune cannot record"),
    (["modelfile", "{b}/tiny-llama-Q8_0.gguf"], "modelfile cannot record"),
    (["report", "{b}"], "report cannot record"),
])
def test_writing_commands_on_a_read_only_bundle(tiny_bundle, tiny_reference, tmp_path, args, fragment):
    bundle = bundle_copy(tiny_bundle, tmp_path)
    if args[0] == "report":
        report = REPORT_CACHE.setdefault("dir", _one_report(tiny_bundle, tiny_reference, tmp_path))
        shutil.copyfile(report / "report.json", bundle / "report.json")
    before = snapshot(bundle)
    done = run_on_read_only(bundle, *[a.format(b=bundle) for a in args])
    lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
    assert done.returncode != 0 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0] and "nothing was written" in lines[0], lines[0]
    assert snapshot(bundle) == before


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d.update(rows="x"), "rows"),
    (lambda d: d["rows"][0].update(quant=5), "rows.0.quant"),
    (lambda d: d["rows"][1].update(kld="small"), "rows.1.kld"),
    (lambda d: d.update(settings=[]), "settings"),
    (lambda d: d.pop("machine"), "machine"),
])
def test_report_json_of_the_wrong_shape_is_one_line(tiny_bundle, tiny_reference, tmp_path, change, fragment):
    out = tmp_path / "report"
    shutil.copytree(REPORT_CACHE.setdefault("dir", _one_report(tiny_bundle, tiny_reference, tmp_path)), out)
    data = json.loads((out / "report.json").read_text())
    change(data)
    (out / "report.json").write_text(json.dumps(data))
    one_line_error(CliRunner().invoke(app, ["report", str(out)]), "report.json", fragment)


REPORT_CACHE: dict = {}


def _one_report(tiny_bundle, tiny_reference, tmp_path) -> Path:
    out = tmp_path.parent / "one-report"
    if not (out / "report.json").is_file():
        evaluate([tiny_bundle / "tiny-llama-Q8_0.gguf"], reference=tiny_reference.path, plan=QUICK, output_dir=out)
    return out
