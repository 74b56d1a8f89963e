"""The converter started before the reference cache has been consulted.

Deciding whether a reference is cached means hashing the source, and a build also imports,
checks its output directory and takes its lock before converting; the converter (one Python
process, mostly one core) does not need any of that to start. So a build from a Hugging Face
directory starts it first, into a private partial file, and then does its checks beside it:
- the reference turns out to be cached, or the build stops (bad output directory, Ctrl-C, an
  error): the converter is killed and its partial file removed;
- it is not cached: make_reference waits for this converter instead of starting one, then
  renames the file into the cache entry exactly as a converter run there would have.
It starts only after the checks that must come before running the converter at all (the
architecture is supported, no remote code without --trust-remote-code) and only when the
reference surely fits on its disk, so a refused build has nothing half-written to undo but a
partial file named with this pid (removed by the next build if this one is killed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

from edgepack import paths, procs
from edgepack.atomic import temp_name
from edgepack.errors import EdgepackError, SourceError
from edgepack.hashing import GrowingFileHash
from edgepack.runtime.toolchain import Toolchain, converter_env
from edgepack.source.convert import (_check_architecture, _estimated_gguf_bytes, check_converter_exit, choose_outtype,
                                     conversion_failed, conversion_step, reference_converter_args)
from edgepack.source.model import Source


class EarlyConversion:
    """One converter run started ahead; `wait_into(dest)` or `cancel()` ends it."""

    def __init__(self, source: Source, outtype: str, toolchain: Toolchain, cache_dir: Path, expected: int | None):
        from edgepack.runtime.llama import is_verbose

        self.source, self.outtype, self.toolchain, self.cache_dir = source, outtype, toolchain, cache_dir
        self.expected = expected
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.tmp = temp_name(cache_dir / "early-reference.gguf")
        quiet = not is_verbose()
        self.proc = procs.popen(
            [sys.executable, *reference_converter_args(source, self.tmp, outtype, toolchain)],
            env=converter_env(toolchain), text=True,
            stdout=subprocess.PIPE if quiet else None, stderr=subprocess.PIPE if quiet else None)
        self._output: tuple[str | None, str | None] = (None, None)
        self._hash = GrowingFileHash(self.tmp)  # the reference's sha256, ready when the converter is done
        self.sha256: str | None = None  # set by wait_into
        # Work while the build only waits for the converter (e.g. imports it needs afterwards): run
        # once the converter is under way, in a thread of lower priority, errors ignored.
        self.idle_work: list[Callable[[], object]] = []
        # Drain the pipes from the start, so a talkative converter never blocks on a full pipe.
        self._reader = threading.Thread(target=self._communicate, daemon=True)
        self._reader.start()

    def _communicate(self) -> None:
        try:
            self._output = self.proc.communicate()
        except (OSError, ValueError):  # killed and closed by cancel()
            pass

    def _idle_then_wait(self) -> None:
        """The idle work while the converter runs, then the wait for it to end (procs.in_lowered_thread
        runs this at lower priority; the caller keeps taking Ctrl-C)."""
        while self.idle_work and self._reader.is_alive():
            try:
                self.idle_work.pop(0)()
            except Exception:  # noqa: BLE001  only a head start: the build does it again where needed
                pass
        self._reader.join()

    def fits(self, source: Source, outtype: str, cache_dir: Path) -> bool:
        """Whether this run makes the reference that make_reference wants now."""
        return (source.path == self.source.path and outtype == self.outtype
                and Path(cache_dir).resolve() == self.cache_dir.resolve())

    def wait_into(self, dest: Path) -> None:
        """Wait for the converter (with the same progress bar and errors as a plain run) and move
        its file to `dest`; on any failure or interrupt nothing is left behind."""
        try:
            with conversion_step(self.source, self.tmp, self.outtype, self.expected):
                # this thread imports nothing until the idle work's imports are done
                procs.in_lowered_thread(self._idle_then_wait)
            check_converter_exit(self.proc.returncode, self._output[1], SourceError, conversion_failed(self.source))
            if not self.tmp.exists():
                raise SourceError(f"{conversion_failed(self.source)}: it wrote no file")
            self.sha256 = self._hash.finish()
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.tmp, dest)
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Kill the converter if it still runs and remove its partial file (idempotent)."""
        procs.kill(self.proc)
        self._reader.join()
        self._hash.cancel()
        self.tmp.unlink(missing_ok=True)


def start_early_conversion(source: Source, outtype: str, toolchain: Toolchain, cache_dir: Path | None,
                           *, trust_remote_code: bool) -> EarlyConversion | None:
    """Start the converter for a Hugging Face directory source, or None where a build must not
    (not a directory; the architecture or its remote code is refused: the regular path raises
    that error; the disk may not hold the reference: the regular path reports it)."""
    if source.kind == "gguf" or not source.path.is_dir():
        return None
    cache_dir = Path(cache_dir) if cache_dir is not None else paths.reference_cache_dir()
    try:
        outtype = choose_outtype(source, outtype)
        _check_architecture(source, toolchain, trust_remote_code)
        expected = _estimated_gguf_bytes(source.path, outtype)
        cache_dir.mkdir(parents=True, exist_ok=True)
        if expected is None or shutil.disk_usage(cache_dir).free < expected * 1.2:
            return None
    except (EdgepackError, OSError):  # the regular path raises or reports it
        return None
    return EarlyConversion(source, outtype, toolchain, cache_dir, expected)
