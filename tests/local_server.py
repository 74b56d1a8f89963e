"""llama-server from the native build, started on a free local port for a test and stopped after it."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


@contextmanager
def started_llama_server(binary: Path, model: Path, *args: str,
                         while_waiting: Callable[[subprocess.Popen], None] = lambda proc: None,
                         ) -> Iterator[tuple[subprocess.Popen, str]]:
    """The server process and its base URL, once /health answers (60 s at most); `while_waiting`
    is called on each poll before that (to follow its memory, say)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            while_waiting(proc)
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
