"""Parse a GGUF header (metadata and tensor table) without materialising its big arrays.

Hand-written on purpose: gguf-py's `GGUFReader` builds a numpy object for every element of
every array, so a 128k-token vocabulary (or a hostile file of 2M short strings) costs seconds
and gigabytes before anyone asks for a token. This reader walks the same format (gguf-py's
constants give the value types and quant block sizes) and keeps large arrays as `ArrayRef`s:
their type, length and file offset, decoded only when a caller asks. Every length is checked
against the bytes that remain, so a corrupt or crafted file ends in `GGUFError`, never in a
huge allocation or another exception.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

from edgepack.errors import GGUFError

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
INLINE_ARRAY_LIMIT = 4096  # arrays up to this length are decoded; longer ones stay ArrayRefs
_MAX_DEPTH = 4  # arrays of arrays nest at most this deep

# GGUF value types (gguf-py's GGUFValueType): code -> struct format ("" for string/array).
_STRING, _ARRAY = 8, 9
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


@dataclass(frozen=True)
class ArrayRef:
    """A metadata array left in the file: decode it with `GGUFHeader.array(key)`."""

    item_type: int
    count: int
    offset: int  # file offset of the first item

    def __len__(self) -> int:
        return self.count


@dataclass(frozen=True)
class TensorEntry:
    name: str
    type_id: int
    type_name: str
    shape: tuple[int, ...]  # ggml order: shape[0] is the row length
    n_elements: int
    n_bytes: int
    offset: int  # absolute file offset of the data


@dataclass
class GGUFHeader:
    path: Path
    version: int
    fields: dict[str, object]  # scalars, strings, short arrays as lists, long ones as ArrayRef
    tensors: list[TensorEntry] = field(default_factory=list)
    data_offset: int = 0
    byte_order: str = "<"

    def array(self, key: str) -> list:
        """Decode one metadata array in full (e.g. the vocabulary, only when it is needed)."""
        value = self.fields.get(key)
        if not isinstance(value, ArrayRef):
            return list(value) if isinstance(value, list) else []
        with _open(self.path) as buf:
            return _Cursor(buf, value.offset, self.byte_order).items(value.item_type, value.count, 0, decode=True)


    def string_at(self, key: str, index: int) -> str | None:
        """Item `index` of a string array (e.g. one token), walking past the ones before it
        without decoding them; None when the array is not a string array or is shorter."""
        value = self.fields.get(key)
        if isinstance(value, list):
            item = value[index] if 0 <= index < len(value) else None
            return item if isinstance(item, str) else None
        if not isinstance(value, ArrayRef) or value.item_type != _STRING or not 0 <= index < value.count:
            return None
        with _open(self.path) as buf:
            cursor = _Cursor(buf, value.offset, self.byte_order)
            cursor.skip_strings(index)
            return cursor.string()


class _open:
    """mmap of the file (empty files cannot be mapped, so those are read as bytes)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.fh = self.path.open("rb")
        size = self.path.stat().st_size
        self.map = mmap.mmap(self.fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        return self.map if self.map is not None else b""

    def __exit__(self, *exc):
        if self.map is not None:
            self.map.close()
        self.fh.close()


class _Cursor:
    def __init__(self, buf, offset: int, order: str):
        self.buf, self.pos, self.order, self.size = buf, offset, order, len(buf)
        self.u64 = struct.Struct(order + "Q")

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise GGUFError(f"truncated or corrupt: {what} at byte {self.pos} runs past the end of the file")

    def scalar(self, fmt: str):
        s = struct.Struct(self.order + fmt)
        self.need(s.size, "a value")
        (value,) = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return value

    def string(self, decode: bool = True):
        n = self.scalar("Q")
        self.need(n, "a string")
        raw = bytes(self.buf[self.pos:self.pos + n]) if decode else None
        self.pos += n
        return raw.decode("utf-8", errors="replace") if decode else None

    def skip_strings(self, count: int) -> None:
        """Walk `count` length-prefixed strings without making any of them (the hot loop of a
        vocabulary: no bounds test per string, struct raises past the end)."""
        pos, buf, unpack = self.pos, self.buf, self.u64.unpack_from
        try:
            for _ in range(count):
                pos += 8 + unpack(buf, pos)[0]
        except struct.error:
            pos = self.size + 1
        if pos > self.size:
            raise GGUFError(f"truncated or corrupt: a string array at byte {self.pos} runs past the end of the file")
        self.pos = pos

    def value(self, vtype: int, depth: int = 0):
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            if depth >= _MAX_DEPTH:
                raise GGUFError("corrupt: arrays nested too deeply")
            item_type, count = self.scalar("I"), self.scalar("Q")
            if count <= INLINE_ARRAY_LIMIT:
                return self.items(item_type, count, depth + 1, decode=True)
            ref = ArrayRef(item_type, count, self.pos)
            self.items(item_type, count, depth + 1, decode=False)
            return ref
        raise GGUFError(f"corrupt: unknown metadata value type {vtype}")

    def items(self, item_type: int, count: int, depth: int, *, decode: bool):
        if item_type in _SCALARS:
            fmt = _SCALARS[item_type]
            n = struct.calcsize(fmt) * count
            self.need(n, "an array")
            start = self.pos
            self.pos += n
            if not decode:
                return None
            return list(struct.unpack_from(f"{self.order}{count}{fmt}", self.buf, start))
        if item_type == _STRING:
            self.need(8 * count, "a string array")  # every string has at least its length
            if not decode:
                self.skip_strings(count)
                return None
            return [self.string() for _ in range(count)]
        if item_type == _ARRAY:
            out = [self.value(_ARRAY, depth) for _ in range(count)] if count <= INLINE_ARRAY_LIMIT or decode else None
            if out is None:
                for _ in range(count):
                    self.value(_ARRAY, depth)
            return out
        raise GGUFError(f"corrupt: unknown array item type {item_type}")


def parse_header(path: Path) -> GGUFHeader:
    """Metadata and tensor table of a GGUF; raises GGUFError for anything that is not a sound GGUF."""
    with _open(path) as buf:
        if bytes(buf[:4]) != GGUF_MAGIC:
            raise GGUFError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)")
        try:
            return _parse(path, buf)
        except GGUFError as exc:
            raise GGUFError(f"{path} is {exc}") from None


def _parse(path: Path, buf) -> GGUFHeader:
    order = "<"
    cur = _Cursor(buf, 4, order)
    version = cur.scalar("I")
    if version & 0xFFFF == 0 and version != 0:  # written big-endian
        order = ">"
        cur = _Cursor(buf, 4, order)
        version = cur.scalar("I")
    if version not in (2, 3):
        raise GGUFError(f"truncated or corrupt: GGUF version {version} is not supported (2 or 3 is)")
    n_tensors, n_kv = cur.scalar("Q"), cur.scalar("Q")
    # The smallest key/value is 8+0+4+1 bytes and the smallest tensor entry 8+4+4+8 bytes.
    if n_kv * 13 > cur.size or n_tensors * 24 > cur.size:
        raise GGUFError(f"truncated or corrupt: it claims {n_kv} metadata keys and {n_tensors} tensors")
    fields: dict[str, object] = {}
    for _ in range(n_kv):
        key = cur.string()
        fields[key] = cur.value(cur.scalar("I"))
    alignment = fields.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 or alignment & (alignment - 1):
        raise GGUFError(f"truncated or corrupt: general.alignment {alignment!r} is not a power of two")
    raw = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.scalar("I")
        if n_dims > 8:
            raise GGUFError(f"truncated or corrupt: tensor {name!r} has {n_dims} dimensions")
        dims = tuple(cur.scalar("Q") for _ in range(n_dims))
        raw.append((name, dims, cur.scalar("I"), cur.scalar("Q")))
    data_offset = -(-cur.pos // alignment) * alignment
    tensors = [_tensor(name, dims, type_id, data_offset + rel) for name, dims, type_id, rel in raw]
    return GGUFHeader(path, version, fields, tensors, data_offset, order)


def gguf_constants():
    """gguf-py's table of constants (quant types, block sizes, architectures).

    `import gguf.constants` first runs gguf/__init__, which loads numpy, the reader and the writer
    (most of a short command's time); constants.py itself needs only the standard library, so it
    is loaded on its own unless gguf is imported already."""
    import importlib.util
    import sys

    if "gguf.constants" in sys.modules:
        return sys.modules["gguf.constants"]
    if "edgepack._gguf_constants" not in sys.modules:
        spec = importlib.util.find_spec("gguf")
        path = Path(spec.origin).with_name("constants.py")
        module_spec = importlib.util.spec_from_file_location("edgepack._gguf_constants", path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module
        module_spec.loader.exec_module(module)
    return sys.modules["edgepack._gguf_constants"]


def _tensor(name: str, dims: tuple[int, ...], type_id: int, offset: int) -> TensorEntry:
    constants = gguf_constants()
    GGML_QUANT_SIZES, GGMLQuantizationType = constants.GGML_QUANT_SIZES, constants.GGMLQuantizationType
    try:
        qtype = GGMLQuantizationType(type_id)
        block, type_size = GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
        raise GGUFError(f"truncated or corrupt: tensor {name!r} has unknown type {type_id}") from None
    n = 1
    for d in dims:
        n *= d
    if dims and dims[0] % block:
        raise GGUFError(f"truncated or corrupt: tensor {name!r} rows of {dims[0]} do not fill {qtype.name} blocks")
    return TensorEntry(name, type_id, qtype.name, dims, n, n // block * type_size, offset)
