"""Read what is inside a GGUF file with the `gguf` package (no llama.cpp, no model load)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack.errors import GGUFError
from edgepack.quantize.types import quant_for_ftype

GGUF_MAGIC = b"GGUF"


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

    @property
    def is_float(self) -> bool:
        return self.file_type in ("F32", "F16", "BF16")

    def token(self, token_id: int | None) -> str | None:
        if token_id is None or not self.tokens or not 0 <= token_id < len(self.tokens):
            return None
        return self.tokens[token_id]

    def to_dict(self, *, full: bool = False) -> dict:
        d = asdict(self)
        d.pop("tokens")
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


def _field_value(field_):
    try:
        value = field_.contents()
    except Exception:  # a field type this gguf version cannot decode: leave it out
        return None
    return value


def read_gguf(path: str | Path, *, with_tokens: bool = False) -> GGUFInfo:
    """Parse header, metadata and tensor table; verify the file is complete."""
    from gguf import GGUFReader

    path = Path(path)
    check_gguf_header(path)
    try:
        reader = GGUFReader(path)
    except Exception as exc:
        raise GGUFError(f"{path} is truncated or corrupt ({type(exc).__name__}: {exc})") from None

    size = path.stat().st_size
    data_end = max((t.data_offset + int(t.n_bytes) for t in reader.tensors), default=reader.data_offset)
    if data_end > size or not reader.tensors:
        raise GGUFError(f"{path} is truncated: its tensors need {data_end} bytes but the file has {size}")

    meta: dict[str, object] = {}
    tokens = None
    for key, fld in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        if key == "tokenizer.ggml.tokens":
            if with_tokens:
                tokens = _field_value(fld)
            continue
        if key in ("tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"):
            continue  # large arrays nobody reads in a summary
        meta[key] = _field_value(fld)

    arch = str(meta.get("general.architecture") or "unknown")

    def arch_key(name: str):
        return meta.get(f"{arch}.{name}")

    hist: dict[str, TensorTypeCount] = {}
    layers: dict[str, Counter] = {}
    n_params = 0
    n_bytes = 0
    for t in reader.tensors:
        tname = t.tensor_type.name
        entry = hist.setdefault(tname, TensorTypeCount(0, 0, 0))
        entry.tensors += 1
        entry.params += int(t.n_elements)
        entry.bytes += int(t.n_bytes)
        n_params += int(t.n_elements)
        n_bytes += int(t.n_bytes)
        group = ".".join(t.name.split(".")[:2]) if t.name.startswith("blk.") else t.name.rsplit(".", 1)[0]
        layers.setdefault(group, Counter())[tname] += 1

    ftype_id = meta.get("general.file_type")
    ftype_id = int(ftype_id) if ftype_id is not None else None
    quant = quant_for_ftype(ftype_id) if ftype_id is not None else None
    file_type = quant.name if quant else (f"ftype {ftype_id}" if ftype_id is not None else "unknown")

    vocab = None
    if with_tokens and tokens is not None:
        vocab = len(tokens)
    elif "tokenizer.ggml.tokens" in reader.fields:
        vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    template = meta.get("tokenizer.chat_template")

    def as_int(v):
        return int(v) if v is not None else None

    return GGUFInfo(
        path=str(path),
        size_bytes=size,
        architecture=arch,
        name=meta.get("general.name"),
        n_params=n_params,
        tensor_bytes=n_bytes,
        bits_per_weight=round(n_bytes * 8 / n_params, 4) if n_params else 0.0,
        file_type=file_type,
        file_type_id=ftype_id,
        context_length=as_int(arch_key("context_length")),
        n_layers=as_int(arch_key("block_count")),
        embedding_length=as_int(arch_key("embedding_length")),
        vocab_size=vocab or as_int(arch_key("vocab_size")),
        has_chat_template=bool(template),
        chat_template=template if template else None,
        tensor_types=dict(sorted(hist.items(), key=lambda kv: -kv[1].params)),
        layer_types={k: dict(v) for k, v in layers.items()},
        bos_token_id=as_int(meta.get("tokenizer.ggml.bos_token_id")),
        eos_token_id=as_int(meta.get("tokenizer.ggml.eos_token_id")),
        eot_token_id=as_int(meta.get("tokenizer.ggml.eot_token_id")),
        tokens=tokens,
        metadata=meta,
    )
