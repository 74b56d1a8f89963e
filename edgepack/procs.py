"""Child processes that die with edgepack, and SIGTERM treated like Ctrl-C.

Every long child (the converter, llama.cpp's tools, cmake, ollama, the peak-memory probe) is
started through `popen`/`run` here. On Linux the child asks the kernel for SIGKILL when its
parent dies (prctl PR_SET_PDEATHSIG), so even a SIGKILLed build leaves no orphan working on;
elsewhere it stays in edgepack's process group, so a terminal's Ctrl-C reaches it. Either way
an exception in the parent (Ctrl-C, SIGTERM, an error) kills and reaps the child first.
psutil has no parent-death hook and subprocess none either, hence the few lines of ctypes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

import psutil

_PR_SET_PDEATHSIG = 1


def _load_prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        # The C library the interpreter itself runs on (its symbols are global): no search for it,
        # which ctypes.util.find_library does by running ldconfig.
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # loaded before any fork: the child only makes one call


def _die_with_parent(parent: int) -> None:
    """Runs in the child between fork and exec: SIGKILL when the parent goes, even if it already went."""
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def die_with_parent(parent: int) -> None:
    """In a child forked by edgepack itself (os.fork): the same parent-death rule as `popen`'s."""
    if _PRCTL is not None:
        _die_with_parent(parent)


def _child_kwargs(kwargs: dict) -> dict:
    if _PRCTL is not None and "preexec_fn" not in kwargs:
        parent = os.getpid()
        kwargs["preexec_fn"] = lambda: _die_with_parent(parent)
    return kwargs


def popen(cmd: list[str], **kwargs) -> subprocess.Popen:
    """subprocess.Popen, with a child that dies with this process (see the module's docstring)."""
    return subprocess.Popen(cmd, **_child_kwargs(kwargs))


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def run(cmd: list[str], *, timeout: float | None = None, input: str | bytes | None = None,
        check: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run through `popen`: on any exception here (Ctrl-C, SIGTERM, timeout) the child is killed."""
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    if kwargs.pop("capture_output", False):
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    proc = popen(cmd, **kwargs)
    try:
        stdout, stderr = proc.communicate(input, timeout=timeout)
    except BaseException:
        kill(proc)
        raise
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    if check:
        done.check_returncode()
    return done


def pid_alive(pid: int) -> bool:
    return pid > 0 and psutil.pid_exists(pid)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises KeyboardInterrupt in the main thread, so it is cleaned up like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back (delivered on exit) around a few steps that must not be cut in two."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    wanted = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
