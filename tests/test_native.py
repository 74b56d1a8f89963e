"""llama.cpp's tools built from the pinned tree: present, versioned, and usable."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request

from edgepack.runtime.native import DEFAULT_TOOLS, extra_compile_flags, find_native


def test_default_tools_are_built_from_the_pinned_tree(native_tools):
    assert set(DEFAULT_TOOLS) <= set(native_tools.tools)
    assert native_tools.llama_cpp_commit.startswith("0c1e570")
    assert native_tools.compile_flags == extra_compile_flags()
    assert find_native().build_dir == native_tools.build_dir  # a second call reuses the build


def test_llama_server_answers_a_chat(native_tools, tiny_bundle):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(native_tools.tool("llama-server")), "-m", str(tiny_bundle / "tiny-llama-Q8_0.gguf"),
                               "--host", "127.0.0.1", "--port", str(port), "-c", "256", "-t", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions", method="POST",
            data=json.dumps({"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            reply = json.loads(r.read())
        assert reply["usage"]["completion_tokens"] > 0
    finally:
        server.terminate()
        server.wait(timeout=30)
