"""The single table of quantization types: the CLI, quantizer, planner and report read it.

`ftype` is llama.cpp's `llama_ftype` (what `llama-quantize TYPE` selects and what
`general.file_type` records) and `bits` the exact storage cost per weight of `base_type`, the
ggml tensor type most weights get: both come from gguf-py's `LlamaFileType` and
`GGML_QUANT_SIZES` (the gguf-py of the pinned llama.cpp tree), never retyped here. What gguf-py
does not say is kept in the table below: the base type of the K-quant "mixes" (_S/_M/_L put some
tensors in a larger type, so a file's real bits per weight is measured from the file itself),
which types need an importance matrix (llama-quantize's rule), aliases and a short description.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgepack.errors import QuantError
from edgepack.gguf_header import gguf_constants

# gguf-py's constants module on its own (importing the gguf package loads numpy: ~0.25 s per command).
GGML_QUANT_SIZES = gguf_constants().GGML_QUANT_SIZES
GGMLQuantizationType = gguf_constants().GGMLQuantizationType
LlamaFileType = gguf_constants().LlamaFileType


@dataclass(frozen=True)
class QuantType:
    name: str
    ftype: int
    base_type: str
    bits: float
    family: str  # "float", "legacy", "k", "iq", "ternary"
    needs_imatrix: bool = False
    aliases: tuple[str, ...] = ()
    description: str = ""

    @property
    def is_float(self) -> bool:
        return self.family == "float"


def _quant(name: str, base_type: str, family: str, *, needs_imatrix: bool = False, aliases: tuple[str, ...] = (),
           description: str = "") -> QuantType:
    ftype = LlamaFileType.ALL_F32 if name == "F32" else LlamaFileType[f"MOSTLY_{name}"]
    block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType[base_type]]
    return QuantType(name, int(ftype), base_type, type_size * 8 / block_size, family, needs_imatrix, aliases,
                     description)


# Ordered from largest to smallest, as people read a ladder.
QUANT_TYPES: tuple[QuantType, ...] = (
    _quant("F32", "F32", "float", description="full precision, unquantized"),
    _quant("F16", "F16", "float", description="16-bit float reference"),
    _quant("BF16", "BF16", "float", description="16-bit bfloat reference"),
    _quant("Q8_0", "Q8_0", "legacy", description="near-lossless"),
    _quant("Q6_K", "Q6_K", "k", description="very close to 16-bit"),
    _quant("Q5_K_M", "Q5_K", "k", aliases=("Q5_K",), description="high quality"),
    _quant("Q5_K_S", "Q5_K", "k"),
    _quant("Q5_1", "Q5_1", "legacy"),
    _quant("Q5_0", "Q5_0", "legacy"),
    _quant("Q4_K_M", "Q4_K", "k", aliases=("Q4_K",), description="the usual default"),
    _quant("Q4_K_S", "Q4_K", "k"),
    _quant("Q4_1", "Q4_1", "legacy"),
    _quant("Q4_0", "Q4_0", "legacy", description="fast on CPUs with repacking"),
    _quant("IQ4_NL", "IQ4_NL", "iq"),
    _quant("IQ4_XS", "IQ4_XS", "iq"),
    _quant("Q3_K_L", "Q3_K", "k"),
    _quant("Q3_K_M", "Q3_K", "k", aliases=("Q3_K",)),
    _quant("Q3_K_S", "Q3_K", "k"),
    _quant("IQ3_M", "IQ3_S", "iq"),
    _quant("IQ3_S", "IQ3_S", "iq"),
    _quant("IQ3_XS", "IQ3_XXS", "iq", needs_imatrix=True),
    _quant("IQ3_XXS", "IQ3_XXS", "iq", needs_imatrix=True),
    _quant("Q2_K", "Q2_K", "k", description="smallest K-quant; large quality loss"),
    _quant("Q2_K_S", "Q2_K", "k", needs_imatrix=True),
    _quant("IQ2_M", "IQ2_S", "iq", needs_imatrix=True),
    _quant("IQ2_S", "IQ2_S", "iq", needs_imatrix=True),
    _quant("IQ2_XS", "IQ2_XS", "iq", needs_imatrix=True),
    _quant("IQ2_XXS", "IQ2_XXS", "iq", needs_imatrix=True),
    _quant("TQ2_0", "TQ2_0", "ternary"),
    _quant("IQ1_M", "IQ1_M", "iq", needs_imatrix=True),
    _quant("TQ1_0", "TQ1_0", "ternary"),
    _quant("IQ1_S", "IQ1_S", "iq", needs_imatrix=True),
)

# The K and legacy types (and 16-bit) that need no calibration data.
BUILD_QUANTS: tuple[str, ...] = (
    "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0",
    "Q4_K_M", "Q4_K_S", "Q4_1", "Q4_0", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K",
)

# A ladder that spans the useful range: near-lossless down to the smallest K-quant.
DEFAULT_LADDER: tuple[str, ...] = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K")

# Every type llama-quantize makes; IQ1_*, IQ2_*, IQ3_XXS/IQ3_XS and Q2_K_S also need an importance matrix.
ALL_QUANTS: tuple[str, ...] = tuple(q.name for q in QUANT_TYPES)

_BY_NAME: dict[str, QuantType] = {}
for _q in QUANT_TYPES:
    _BY_NAME[_q.name] = _q
    for _alias in _q.aliases:
        _BY_NAME[_alias] = _q
_BY_FTYPE: dict[int, QuantType] = {q.ftype: q for q in QUANT_TYPES}


def valid_names(available: tuple[str, ...] = ALL_QUANTS) -> str:
    return ", ".join(available)


def get_quant(name: str, available: tuple[str, ...] = ALL_QUANTS) -> QuantType:
    """Look a quant up by name or alias, case-insensitively, among `available` types."""
    key = name.strip().upper().replace("-", "_")
    quant = _BY_NAME.get(key)
    if quant is None or quant.name not in available:
        raise QuantError(f"unknown quant type {name!r}; valid types: {valid_names(available)}")
    return quant


def resolve_quants(names: list[str], ladder: bool = False) -> list[QuantType]:
    """Names (and/or the default ladder) to unique quant types, in ladder order."""
    wanted = [get_quant(n) for n in names]
    if ladder:
        wanted += [get_quant(n) for n in DEFAULT_LADDER]
    unique = {q.name: q for q in wanted}
    order = [q.name for q in QUANT_TYPES]
    return sorted(unique.values(), key=lambda q: order.index(q.name))


def quant_for_ftype(ftype: int) -> QuantType | None:
    """The quant type a file's `general.file_type` says it is (None if unknown)."""
    return _BY_FTYPE.get(ftype & ~1024)  # 1024 = LLAMA_FTYPE_GUESSED flag
