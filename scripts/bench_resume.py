#!/usr/bin/env python
"""Does an interrupted build resume instead of starting over? A clean `--ladder` build side by side
with one killed during its 5th quant and run again.

Both run `edgepack build SOURCE --ladder -o DIR` as a user would (the 16-bit reference is made
once beforehand, so neither pays for conversion). The second is killed (SIGKILL by default) while
its 5th quant (Q4_0) is being written, then rerun into the same directory. Target: the rerun costs
only what the killed build had not finished + 10 %, measured as a clean build of quants 5-7 alone
(`-q Q4_0 -q Q3_K_M -q Q2_K`, same start-up and checks) run beside it.

    python scripts/bench_resume.py [--source DIR|GGUF] [--tiny] [--signal KILL|TERM|INT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LADDER = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K"]


def edgepack(*args: str) -> subprocess.Popen:
    env = os.environ | {"EDGEPACK_NO_PROGRESS": "1"}
    return subprocess.Popen([sys.executable, "-m", "edgepack.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen) -> dict:
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"build failed: {stderr.strip()[-500:]}")
    return json.loads(stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="HF directory or GGUF (default: the embedded default model)")
    parser.add_argument("--tiny", action="store_true", help="a small random Llama made here (tests/tiny_models.py)")
    parser.add_argument("--signal", default="KILL", choices=["KILL", "TERM", "INT"])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    source = args.source
    if args.tiny:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from tiny_models import make_tiny_llama

        source = str(make_tiny_llama(work / "tiny", hidden=1024, layers=8, vocab_size=2048))

    from edgepack.source import make_reference, resolve_source

    src = resolve_source(source)
    make_reference(src)  # both builds start from the cached 16-bit reference
    spec = [source] if source else []

    start = time.perf_counter()
    clean = finish(edgepack("build", *spec, "--ladder", "-o", str(work / "clean"), "--json"))
    clean_s = time.perf_counter() - start
    seconds = {f["quant"]: f["seconds"]["quantize"] for f in clean["manifest"]["files"]}
    fixed_s = clean_s - sum(seconds.values())
    unfinished_s = sum(seconds[q] for q in LADDER[4:]) + fixed_s

    start = time.perf_counter()
    finish(edgepack("build", *spec, *[a for q in LADDER[4:] for a in ("-q", q)], "-o", str(work / "rest"), "--json"))
    rest_s = time.perf_counter() - start

    out = work / "resumed"
    fifth = LADDER[4]
    start = time.perf_counter()
    proc = edgepack("build", *spec, "--ladder", "-o", str(out), "--json")
    while proc.poll() is None:
        staging = list(work.glob(".resumed.*.partial"))
        if staging and any(staging[0].glob(f".*-{fifth}.gguf.*.partial")):
            break
        time.sleep(0.01)
    else:
        sys.exit("the build ended before its 5th quant; nothing to interrupt")
    proc.send_signal(getattr(signal, f"SIG{args.signal}"))
    proc.communicate()
    killed_s = time.perf_counter() - start
    start = time.perf_counter()
    resumed = finish(edgepack("build", *spec, "--ladder", "-o", str(out), "--json"))
    resumed_s = time.perf_counter() - start

    print(f"model: {src.name}; ladder {' '.join(LADDER)}; interrupted with SIG{args.signal} during {fifth}")
    print(f"clean build:                        {clean_s:7.2f} s  (quantize {sum(seconds.values()):.2f} s, "
          f"fixed {fixed_s:.2f} s)")
    print(f"killed build (until the kill):      {killed_s:7.2f} s")
    print(f"resumed build:                      {resumed_s:7.2f} s  reused: {resumed['reused']}")
    print(f"clean build of quants 5-7 alone:    {rest_s:7.2f} s")
    print(f"resumed / quants 5-7 alone:         {resumed_s / rest_s:7.2f}  (target <= 1.10)")
    print(f"resumed / (clean's quants 5-7 + its total minus all quantize time): {resumed_s / unfinished_s:.2f}")
    print(f"(killed + resumed) / clean:         {(killed_s + resumed_s) / clean_s:7.2f}")
    print(f"resumed / clean:                    {resumed_s / clean_s:7.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
