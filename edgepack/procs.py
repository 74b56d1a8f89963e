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
from typing import Callable, Iterator, TypeVar

import psutil

_PR_SET_PDEATHSIG = 1
T = TypeVar("T")


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


BESIDE_NICE = 19  # how much lower (the lowest priority) edgepack's own work runs beside a child it waits for (the converter)


def lower_this_thread() -> None:
    """Run the calling thread at BESIDE_NICE lower priority (Linux: a thread is its own task), so
    that work a build does while its converter runs never takes CPU the converter wants. Only
    threads started for that work call this; the main thread keeps its priority (an unprivileged
    process cannot raise it back). Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + BESIDE_NICE))
    except OSError:
        pass


def in_lowered_thread(work: Callable[[], T]) -> T:
    """`work()` in a thread of lower priority (lower_this_thread), this thread waiting for it in
    short steps so that Ctrl-C is taken at once; its result, or its exception raised here."""
    box: dict = {}

    def run_it() -> None:
        lower_this_thread()
        try:
            box["value"] = work()
        except BaseException as exc:  # noqa: BLE001  re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=run_it, name="edgepack-beside", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    if "error" in box:
        raise box["error"]
    return box["value"]


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
