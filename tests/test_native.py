"""llama.cpp's tools built from the pinned tree: present, versioned, and usable."""

from __future__ import annotations

import json
import urllib.request

from local_server import started_llama_server

from edgepack.runtime.native import DEFAULT_TOOLS, extra_compile_flags, find_native


def test_default_tools_are_built_from_the_pinned_tree(native_tools):
    assert set(DEFAULT_TOOLS) <= set(native_tools.tools)
    assert native_tools.llama_cpp_commit.startswith("0c1e570")
    assert native_tools.compile_flags == extra_compile_flags()
    assert find_native().build_dir == native_tools.build_dir  # a second call reuses the build


def test_llama_server_answers_a_chat(native_tools, tiny_bundle):
    with started_llama_server(native_tools.tool("llama-server"), tiny_bundle / "tiny-llama-Q8_0.gguf",
                              "-c", "256", "-t", "1") as (_, url):
        request = urllib.request.Request(
            f"{url}/v1/chat/completions", method="POST",
            data=json.dumps({"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            reply = json.loads(r.read())
        assert reply["usage"]["completion_tokens"] > 0
