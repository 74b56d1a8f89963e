"""`edgepack eval` against llama.cpp's own llama-perplexity on the same model and text.

Perplexity and every KL-divergence statistic must agree to about 1e-4 relative (or to the last
digit llama-perplexity prints), at --ctx 128 and at --ctx 1024. At 1024, llama-perplexity
decodes each chunk in two micro-batches of 512 (its default -ub) while edgepack decodes a chunk
in one; the test holds that this changes nothing. The reference's compressed log-probabilities
are also compared with the file llama-perplexity saves for --kl-divergence-base.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile

import numpy as np
import pytest
from typer.testing import CliRunner

from edgepack.cli import app
from edgepack.measure.texts import default_eval_text

CHUNKS = {128: 3, 1024: 2}


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("parity") / "text.txt"
    path.write_text(default_eval_text().text[:30_000])
    return path


@pytest.fixture(scope="module")
def q2k(tiny_reference, native_tools, tmp_path_factory):
    """A Q2_K quant made by llama-quantize: its KLD is large enough that llama-perplexity's six
    printed decimals still carry four significant digits."""
    out = tmp_path_factory.mktemp("parity") / "tiny-Q2_K.gguf"
    subprocess.run([str(native_tools.tool("llama-quantize")), str(tiny_reference.path), str(out), "Q2_K"],
                   check=True, capture_output=True)
    return out


def llama_perplexity(tool, *args, last: str | None = None) -> str:
    """Its output, stdout and stderr into one file; run again when the line `last` is missing (its
    closing summary went missing now and then on this busy 2-core machine, exit status 0)."""
    for _ in range(5):
        with tempfile.TemporaryFile("w+") as out:
            done = subprocess.run([str(tool), *map(str, args), "-t", "2"], stdout=out, stderr=subprocess.STDOUT)
            out.seek(0)
            output = out.read()
        assert done.returncode == 0, output[-2000:]
        if last is None or last in output:
            break
    return output


def number(pattern: str, output: str) -> tuple[float, int]:
    """The value after `pattern` and how many decimals llama-perplexity printed."""
    m = re.search(pattern + r"\s*:\s*(-?[\d.]+)", output)
    assert m, f"{pattern!r} not in llama-perplexity's output: {output[-1500:]}"
    return float(m.group(1)), len(m.group(1).split(".")[1]) if "." in m.group(1) else 0


def same(ours: float, printed: tuple[float, int], rel: float = 1e-4) -> bool:
    value, decimals = printed
    return abs(ours - value) <= max(rel * abs(value), 0.5 * 10 ** -decimals * 1.0001)


@pytest.fixture(scope="module", params=[128, 1024])
def runs(request, tiny_reference, q2k, native_tools, text_file, tmp_path_factory):
    ctx = request.param
    tool = native_tools.tool("llama-perplexity")
    base = tmp_path_factory.mktemp(f"ctx{ctx}") / "base.dat"
    ref_out = llama_perplexity(tool, "-m", tiny_reference.path, "-f", text_file, "-c", ctx, "--chunks", CHUNKS[ctx],
                               last="Final estimate: PPL")
    # (while it saves the base file llama-perplexity prints no final estimate: a separate run)
    llama_perplexity(tool, "-m", tiny_reference.path, "-f", text_file, "-c", ctx, "--chunks", CHUNKS[ctx],
                     "--kl-divergence-base", base)
    kld_out = llama_perplexity(tool, "-m", q2k, "-f", text_file, "-c", ctx, "--chunks", CHUNKS[ctx],
                               "--kl-divergence-base", base, "--kl-divergence", last="Same top p:")
    res = CliRunner().invoke(app, ["eval", str(q2k), "--reference", str(tiny_reference.path), "--text", str(text_file),
                                   "--chunk-tokens", str(ctx), "--chunks", str(CHUNKS[ctx]), "--no-speed", "--memory-ctx", "",
                                   "-t", "2", "-o", str(base.parent / "report"), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["rows"]
    return ctx, base, ref_out, kld_out, rows[0], rows[1]


def test_perplexity_of_the_reference(runs):
    ctx, _, ref_out, _, ref_row, _ = runs
    m = re.search(r"Final estimate: PPL = ([\d.]+) \+/- ([\d.]+)", ref_out)
    assert m, ref_out[-2000:]
    assert same(ref_row["ppl"], (float(m.group(1)), 4)) and same(ref_row["ppl_err"], (float(m.group(2)), 5), 1e-3)


def test_kl_divergence_statistics(runs):
    ctx, _, _, out, _, row = runs
    assert row["kld"] > 0.01  # a Q2_K: large enough for the printed digits to matter
    checks = {"ppl": r"Mean PPL\(Q\)", "kld": r"Mean    KLD", "kld_max": r"Maximum KLD", "kld_p99": r"99\.0%   KLD",
              "kld_median": r"Median  KLD"}
    for field, pattern in checks.items():
        assert same(row[field], number(pattern, out)), (ctx, field, row[field], number(pattern, out))
    top, decimals = number(r"Same top p", out)
    assert same(row["same_top"] * 100, (top, decimals))
    rms, decimals = number(r"RMS Δp", out)
    assert same(row["rms_dp"] * 100, (rms, decimals))


def test_reference_log_probs_equal_llama_perplexity_base_file(runs, tiny_reference, text_file):
    """The uint16 log-probabilities edgepack caches are the ones llama-perplexity writes."""
    from edgepack.measure.scoring import ChunkScorer, EvalSettings, compress_log_probs

    ctx, base, *_ = runs
    raw = base.read_bytes()
    assert raw[:8] == b"_logits_"
    n_ctx, n_vocab, n_chunk = np.frombuffer(raw, np.int32, 3, 8)
    tokens = np.frombuffer(raw, np.int32, n_chunk * n_ctx, 20)
    nv = 2 * ((n_vocab + 1) // 2) + 4
    rows = n_ctx - 1 - n_ctx // 2
    data = np.frombuffer(raw, np.uint16, offset=20 + 4 * tokens.size).reshape(n_chunk, rows, nv)
    header = data[:, :, :4].copy().view(np.float32)      # scale, min log-prob
    values = data[:, :, 4:4 + n_vocab]
    # computed afresh (the reference cache could hold what an earlier version of the code wrote)
    with ChunkScorer(tiny_reference.path, EvalSettings(n_ctx=ctx, n_threads=2)) as scorer:
        ours = scorer.tokenize(text_file.read_text())
        assert np.array_equal(ours[:n_chunk * n_ctx], tokens)
        for i in range(n_chunk):
            our_header, our_values = compress_log_probs(scorer.second_half_logits(tokens[i * n_ctx:(i + 1) * n_ctx]))
            np.testing.assert_allclose(our_header, header[i], rtol=1e-6)
            assert np.abs(our_values.astype(np.int32) - values[i]).max() <= 1  # float32 rounding at most
