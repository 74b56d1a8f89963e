"""Peak memory from a real `python -m edgepack.measure.peak_memory` child, read through psutil,
against the kernel's own high-water mark of that process (Linux's VmHWM, read from outside)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgepack.measure.peak_memory import measure_peak_memory


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM is Linux's")
def test_psutil_peak_matches_the_kernels_high_water_mark(tiny_reference):
    child = subprocess.Popen([sys.executable, "-m", "edgepack.measure.peak_memory", str(tiny_reference.path), "1024",
                              "0", "--hold"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        result = json.loads(child.stdout.readline())
        status = Path(f"/proc/{child.pid}/status").read_text()
        hwm = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) * 1024
    finally:
        child.communicate("\n", timeout=30)
    assert result["peak"] == pytest.approx(hwm, rel=0.03)
    assert result["base"] < result["peak"] and result["vram_used"] is None and result["vram_source"] is None


def test_measure_peak_memory_grows_with_context(tiny_reference):
    small, large = (measure_peak_memory(tiny_reference.path, n) for n in (256, 1024))
    # KV cache: 2 layers x 2 KV heads x (64 + 64) x 2 bytes = 1 KiB a cell: 768 KiB more at 1024
    assert large["peak"] - small["peak"] > 700 * 1024


def test_a_bad_model_is_one_line(tmp_path):
    from edgepack.errors import BenchError

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 32)
    with pytest.raises(BenchError, match="measuring the memory of bad.gguf failed"):
        measure_peak_memory(bad, 256)
