"""What the planner needs to know about a GGUF, read once: every tensor's bytes by layer,
the attention and vocabulary sizes (`load_geometry`, the only file I/O of the planner).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

@dataclass
class WeightTensor:
    name: str
    type: str
    rows: int          # ne[1]: output features of a matrix (1 for vectors)
    n_dims: int
    n_bytes: int


@dataclass
class ModelGeometry:
    """What the planner needs from a GGUF, read once."""

    path: str
    name: str | None
    architecture: str
    file_type: str
    size_bytes: int
    n_params: int
    n_layers: int
    n_ctx_train: int | None
    n_embd: int
    n_head: int
    n_head_kv: list[int]        # per layer (some models vary it)
    key_length: int
    value_length: int
    n_ff: int
    n_vocab: int
    layers: list[list[WeightTensor]]
    token_embd: WeightTensor | None
    output: WeightTensor | None  # None when the output matrix is the tied embedding
    other_bytes: int             # norms and anything outside the layers

    @property
    def layer_bytes(self) -> list[int]:
        return [sum(t.n_bytes for t in layer) for layer in self.layers]

    @property
    def output_bytes(self) -> int:
        """The matrix read for the logits of every token: output.weight, or the tied embedding."""
        tensor = self.output or self.token_embd
        return tensor.n_bytes if tensor else 0

    @property
    def weight_bytes(self) -> int:
        return (sum(self.layer_bytes) + (self.token_embd.n_bytes if self.token_embd else 0)
                + (self.output.n_bytes if self.output else 0) + self.other_bytes)


def load_geometry(model) -> ModelGeometry:
    """Read a GGUF (path, GGUFInfo with .path, or an existing ModelGeometry)."""
    if isinstance(model, ModelGeometry):
        return model
    from edgepack.gguf_file import read_gguf

    path = Path(getattr(model, "path", model))
    info = model if hasattr(model, "metadata") else read_gguf(path)
    meta, arch = info.metadata, info.architecture

    def key(name, default=None):
        value = meta.get(f"{arch}.{name}")
        return default if value is None else value

    n_layers = int(info.n_layers or 0)
    n_embd = int(info.embedding_length or 0)
    n_head = key("attention.head_count", 1)
    n_head = int(n_head[0] if isinstance(n_head, list) else n_head)
    kv = key("attention.head_count_kv", n_head)
    n_head_kv = [int(x) for x in kv] if isinstance(kv, list) else [int(kv)] * n_layers
    head_dim = n_embd // n_head if n_head else 0
    ff = key("feed_forward_length", 4 * n_embd)
    layers: list[list[WeightTensor]] = [[] for _ in range(n_layers)]
    token_embd = output = None
    other = 0
    for t in info.tensors or read_gguf(path).tensors:
        shape = t.shape
        tensor = WeightTensor(t.name, t.type_name, shape[1] if len(shape) > 1 else 1, len(shape), t.n_bytes)
        if t.name.startswith("blk."):
            index = int(t.name.split(".")[1])
            if index < n_layers:
                layers[index].append(tensor)
                continue
        if t.name == "token_embd.weight":
            token_embd = tensor
        elif t.name == "output.weight":
            output = tensor
        else:
            other += tensor.n_bytes
    return ModelGeometry(
        path=str(path), name=info.name, architecture=arch, file_type=info.file_type, size_bytes=info.size_bytes,
        n_params=info.n_params, n_layers=n_layers, n_ctx_train=info.context_length, n_embd=n_embd, n_head=n_head,
        n_head_kv=n_head_kv, key_length=int(key("attention.key_length", head_dim)),
        value_length=int(key("attention.value_length", head_dim)),
        n_ff=int(ff[0] if isinstance(ff, list) else ff), n_vocab=int(info.vocab_size or 0), layers=layers,
        token_embd=token_embd, output=output, other_bytes=other)

