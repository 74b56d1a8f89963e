"""Path 1: render chats with llama.cpp's own Jinja engine, through the pinned tree's llama-server.

llama-server (built by `edgepack native build`) renders a chat without generating anything at
POST /apply-template. Its template is fixed per process (`--chat-template-file`), so one server
renders every probe of one template; the model it loads is a tiny GGUF written here (1 layer,
a byte vocabulary holding the BOS/EOS strings, add_bos off so the prompt comes back as the
template wrote it). The server binds to 127.0.0.1 on a free port and is stopped afterwards.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from edgepack import procs
from edgepack.chat.conversations import Probe
from edgepack.chat.sandbox import RenderError, SpecialTokens
from edgepack.errors import ChatTemplateError

START_TIMEOUT_S = 20.0  # a tiny model starts in about a second; a template that hangs llama.cpp is caught here
REQUEST_TIMEOUT_S = 20.0


def find_llama_server() -> Path | None:
    from edgepack.runtime.native import find_tool

    return find_tool("llama-server")


def write_template_gguf(path: Path, tokens: SpecialTokens, chat_template: str | None = None) -> Path:
    """A smallest-possible llama GGUF whose vocabulary holds the BOS/EOS strings (for llama-server)."""
    import numpy as np
    from gguf import GGUFWriter, TokenType

    bos, eos = tokens.bos or "<s>", tokens.eos or "</s>"
    vocab = ["<unk>", bos, eos] + [f"<0x{i:02X}>" for i in range(256)]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.BYTE] * 256
    n_embd, n_ff = 32, 32
    writer = GGUFWriter(str(path), "llama")
    writer.add_name("edgepack template probe")
    writer.add_context_length(512)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(1)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(1)
    writer.add_head_count_kv(1)
    writer.add_rope_dimension_count(n_embd)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(vocab)
    writer.add_token_scores([0.0] * len(vocab))
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    rng = np.random.default_rng(0)

    def tensor(name: str, *shape: int) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    tensor("token_embd.weight", len(vocab), n_embd)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    tensor("output.weight", len(vocab), n_embd)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
    writer.add_tensor("blk.0.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        tensor(f"blk.0.{name}.weight", n_embd, n_embd)
    tensor("blk.0.ffn_gate.weight", n_ff, n_embd)
    tensor("blk.0.ffn_up.weight", n_ff, n_embd)
    tensor("blk.0.ffn_down.weight", n_embd, n_ff)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TemplateServer:
    """One llama-server process rendering one chat template."""

    def __init__(self, port: int, proc: subprocess.Popen, log: Path):
        self.port, self.proc, self.log = port, proc, log
        self.stuck = False  # a request timed out: the template keeps llama.cpp busy, ask nothing more

    def _post(self, path: str, body: dict) -> tuple[int, dict]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read())
            except ValueError:
                return exc.code, {}

    def render(self, probe: Probe, **template_kwargs) -> str | RenderError:
        """The prompt llama.cpp builds for `probe` (add_generation_prompt on)."""
        kwargs = dict(template_kwargs)
        if probe.think is not None:
            kwargs["enable_thinking"] = probe.think
        body: dict = {"messages": [m.to_openai() for m in probe.messages], "add_generation_prompt": True}
        if probe.tools:
            body["tools"] = [dict(t) for t in probe.tools]
        if kwargs:
            body["chat_template_kwargs"] = kwargs
        if self.stuck:
            return RenderError("bound", "llama-server is still busy with an earlier render of this template")
        try:
            status, data = self._post("/apply-template", body)
        except TimeoutError:
            self.stuck = True
            return RenderError("bound", f"llama-server did not render within {REQUEST_TIMEOUT_S:g} s")
        except (OSError, ValueError) as exc:
            if isinstance(getattr(exc, "reason", None), TimeoutError):
                self.stuck = True
                return RenderError("bound", f"llama-server did not render within {REQUEST_TIMEOUT_S:g} s")
            return RenderError("raised", f"llama-server did not answer ({type(exc).__name__})")
        if status == 200 and isinstance(data.get("prompt"), str):
            return data["prompt"]
        error = data.get("error", {})
        message = error.get("message") if isinstance(error, dict) else str(error)
        return RenderError("raised", " ".join(str(message or f"HTTP {status}").split())[:200])


@contextmanager
def template_server(chat_template: str, tokens: SpecialTokens, *, binary: Path | None = None,
                    workdir: Path | None = None) -> Iterator[TemplateServer]:
    """Start llama-server on a tiny GGUF with `chat_template`; stop it on exit."""
    binary = binary or find_llama_server()
    if binary is None:
        raise ChatTemplateError("llama-server is not built; run: edgepack native build")
    with tempfile.TemporaryDirectory(prefix="edgepack-tmpl-", dir=workdir) as tmp:
        tmp_path = Path(tmp)
        model = write_template_gguf(tmp_path / "probe.gguf", tokens)
        (tmp_path / "template.jinja").write_text(chat_template, encoding="utf-8")
        port = _free_port()
        log = tmp_path / "server.log"
        argv = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
                "--jinja", "--chat-template-file", str(tmp_path / "template.jinja"),
                "-c", "512", "-t", "1", "--no-warmup", "-np", "1", "--no-webui"]
        with open(log, "wb") as log_file:
            proc = procs.popen(argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        server = TemplateServer(port, proc, log)
        try:
            _wait_ready(server)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(server: TemplateServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            tail = server.log.read_text(errors="replace").strip().splitlines()[-3:]
            raise ChatTemplateError("llama-server refused the template: " + " | ".join(tail)[:300])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise ChatTemplateError(f"llama-server did not start within {START_TIMEOUT_S:g} s")
