"""What is inside a GGUF file, summarised from its header (no llama.cpp, no model load, no tensor data)."""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from edgepack.errors import GGUFError
from edgepack.gguf_header import GGUF_MAGIC, ArrayRef, GGUFHeader, TensorEntry, parse_header
from edgepack.quantize.types import quant_for_ftype


@dataclass
class TensorTypeCount:
    tensors: int
    params: int
    bytes: int


@dataclass
class GGUFInfo:
    path: str
    size_bytes: int
    architecture: str
    name: str | None
    n_params: int
    tensor_bytes: int
    bits_per_weight: float
    file_type: str  # e.g. "Q4_K_M", or "ftype 99" when unknown
    file_type_id: int | None
    context_length: int | None
    n_layers: int | None
    embedding_length: int | None
    vocab_size: int | None
    has_chat_template: bool
    chat_template: str | None = field(repr=False, default=None)
    tensor_types: dict[str, TensorTypeCount] = field(default_factory=dict)
    layer_types: dict[str, dict[str, int]] = field(default_factory=dict)  # "blk.0" -> {type: tensors}
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    eot_token_id: int | None = None
    tokens: list[str] | None = field(repr=False, default=None)
    metadata: dict[str, object] = field(repr=False, default_factory=dict)
    tensors: list[TensorEntry] = field(repr=False, default_factory=list)
    header: GGUFHeader | None = field(repr=False, default=None, compare=False)

    @property
    def is_float(self) -> bool:
        return self.file_type in ("F32", "F16", "BF16")

    def token(self, token_id: int | None) -> str | None:
        """One token's text; read from the file alone when the vocabulary was not decoded."""
        if token_id is None:
            return None
        if self.tokens is None:
            return self.header.string_at("tokenizer.ggml.tokens", token_id) if self.header is not None else None
        return self.tokens[token_id] if 0 <= token_id < len(self.tokens) else None

    def to_dict(self, *, full: bool = False) -> dict:
        d = asdict(replace(self, tokens=None, tensors=[], header=None))
        for key in ("tokens", "tensors", "header"):
            d.pop(key)
        if not full:
            d.pop("metadata")
            d.pop("chat_template")
        return d


def check_gguf_header(path: Path) -> None:
    """Fail fast with a clear message when a path is not a GGUF file at all."""
    if not path.exists():
        raise GGUFError(f"{path}: no such file")
    if not path.is_file():
        raise GGUFError(f"{path} is not a file")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise GGUFError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)")


_CACHE: OrderedDict[tuple, GGUFInfo] = OrderedDict()
_CACHE_SIZE = 16
# Arrays a summary never shows; the vocabulary is decoded only for `with_tokens`.
_VOCAB_ARRAYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
                 "tokenizer.ggml.merges")


def read_gguf(path: str | Path, *, with_tokens: bool = False) -> GGUFInfo:
    """Header, metadata and tensor table of a GGUF; checks the file is complete.

    Each file is parsed once: results are kept by (path, size, mtime), so the stages of a build
    share one read. Token strings are decoded only when `with_tokens` asks for them.
    """
    path = Path(path)
    check_gguf_header(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    info = _CACHE.pop(key, None) or _summarise(path, parse_header(path), st.st_size)
    _CACHE[key] = info  # most recently used last
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    if with_tokens and info.tokens is None and info.vocab_size and info.header is not None:
        info.tokens = info.header.array("tokenizer.ggml.tokens")
    if info.path != str(path):
        info = replace(info, path=str(path))
    return info


def _summarise(path: Path, header: GGUFHeader, size: int) -> GGUFInfo:
    data_end = max((t.offset + t.n_bytes for t in header.tensors), default=header.data_offset)
    if data_end > size or not header.tensors:
        raise GGUFError(f"{path} is truncated: its tensors need {data_end} bytes but the file has {size}")

    meta: dict[str, object] = {k: v for k, v in header.fields.items()
                               if k not in _VOCAB_ARRAYS and not isinstance(v, ArrayRef)}
    arch = str(meta.get("general.architecture") or "unknown")

    def arch_key(name: str):
        return meta.get(f"{arch}.{name}")

    hist: dict[str, TensorTypeCount] = {}
    layers: dict[str, Counter] = {}
    for t in header.tensors:
        entry = hist.setdefault(t.type_name, TensorTypeCount(0, 0, 0))
        entry.tensors += 1
        entry.params += t.n_elements
        entry.bytes += t.n_bytes
        group = ".".join(t.name.split(".")[:2]) if t.name.startswith("blk.") else t.name.rsplit(".", 1)[0]
        layers.setdefault(group, Counter())[t.type_name] += 1
    n_params = sum(t.n_elements for t in header.tensors)
    n_bytes = sum(t.n_bytes for t in header.tensors)

    ftype_id = _as_int(meta.get("general.file_type"))
    quant = quant_for_ftype(ftype_id) if ftype_id is not None else None
    file_type = quant.name if quant else (f"ftype {ftype_id}" if ftype_id is not None else "unknown")
    tokens_field = header.fields.get("tokenizer.ggml.tokens")
    vocab = len(tokens_field) if isinstance(tokens_field, (list, ArrayRef)) else None
    template = meta.get("tokenizer.chat_template")
    template = template if isinstance(template, str) and template else None
    name = meta.get("general.name")

    return GGUFInfo(
        path=str(path),
        size_bytes=size,
        architecture=arch,
        name=name if isinstance(name, str) else None,
        n_params=n_params,
        tensor_bytes=n_bytes,
        bits_per_weight=round(n_bytes * 8 / n_params, 4) if n_params else 0.0,
        file_type=file_type,
        file_type_id=ftype_id,
        context_length=_as_int(arch_key("context_length")),
        n_layers=_as_int(arch_key("block_count")),
        embedding_length=_as_int(arch_key("embedding_length")),
        vocab_size=vocab or _as_int(arch_key("vocab_size")),
        has_chat_template=bool(template),
        chat_template=template,
        tensor_types=dict(sorted(hist.items(), key=lambda kv: -kv[1].params)),
        layer_types={k: dict(v) for k, v in layers.items()},
        bos_token_id=_as_int(meta.get("tokenizer.ggml.bos_token_id")),
        eos_token_id=_as_int(meta.get("tokenizer.ggml.eos_token_id")),
        eot_token_id=_as_int(meta.get("tokenizer.ggml.eot_token_id")),
        metadata=meta,
        tensors=header.tensors,
        header=header,
    )


def _as_int(value) -> int | None:
    """An integer metadata value, or None for a missing or wrongly typed one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)
