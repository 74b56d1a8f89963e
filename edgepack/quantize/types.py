"""The single table of quantization types: the CLI, quantizer, planner and report read it.

`ftype` is llama.cpp's `llama_ftype` (what `llama-quantize TYPE` selects and what
`general.file_type` records). `base_type` is the ggml tensor type most weights get, and
`bits` its exact storage cost per weight; K-quant "mixes" (_S/_M/_L) put some tensors
in a larger type, so a file's real bits per weight is measured from the file itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgepack.errors import QuantError


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


# Ordered from largest to smallest, as people read a ladder.
QUANT_TYPES: tuple[QuantType, ...] = (
    QuantType("F32", 0, "F32", 32.0, "float", description="full precision, unquantized"),
    QuantType("F16", 1, "F16", 16.0, "float", description="16-bit float reference"),
    QuantType("BF16", 32, "BF16", 16.0, "float", description="16-bit bfloat reference"),
    QuantType("Q8_0", 7, "Q8_0", 8.5, "legacy", description="near-lossless"),
    QuantType("Q6_K", 18, "Q6_K", 6.5625, "k", description="very close to 16-bit"),
    QuantType("Q5_K_M", 17, "Q5_K", 5.5, "k", aliases=("Q5_K",), description="high quality"),
    QuantType("Q5_K_S", 16, "Q5_K", 5.5, "k"),
    QuantType("Q5_1", 9, "Q5_1", 6.0, "legacy"),
    QuantType("Q5_0", 8, "Q5_0", 5.5, "legacy"),
    QuantType("Q4_K_M", 15, "Q4_K", 4.5, "k", aliases=("Q4_K",), description="the usual default"),
    QuantType("Q4_K_S", 14, "Q4_K", 4.5, "k"),
    QuantType("Q4_1", 3, "Q4_1", 5.0, "legacy"),
    QuantType("Q4_0", 2, "Q4_0", 4.5, "legacy", description="fast on CPUs with repacking"),
    QuantType("IQ4_NL", 25, "IQ4_NL", 4.5, "iq"),
    QuantType("IQ4_XS", 30, "IQ4_XS", 4.25, "iq"),
    QuantType("Q3_K_L", 13, "Q3_K", 3.4375, "k"),
    QuantType("Q3_K_M", 12, "Q3_K", 3.4375, "k", aliases=("Q3_K",)),
    QuantType("Q3_K_S", 11, "Q3_K", 3.4375, "k"),
    QuantType("IQ3_M", 27, "IQ3_S", 3.4375, "iq"),
    QuantType("IQ3_S", 26, "IQ3_S", 3.4375, "iq"),
    QuantType("IQ3_XS", 22, "IQ3_XXS", 3.0625, "iq", needs_imatrix=True),
    QuantType("IQ3_XXS", 23, "IQ3_XXS", 3.0625, "iq", needs_imatrix=True),
    QuantType("Q2_K", 10, "Q2_K", 2.625, "k", description="smallest K-quant; large quality loss"),
    QuantType("Q2_K_S", 21, "Q2_K", 2.625, "k", needs_imatrix=True),
    QuantType("IQ2_M", 29, "IQ2_S", 2.5625, "iq", needs_imatrix=True),
    QuantType("IQ2_S", 28, "IQ2_S", 2.5625, "iq", needs_imatrix=True),
    QuantType("IQ2_XS", 20, "IQ2_XS", 2.3125, "iq", needs_imatrix=True),
    QuantType("IQ2_XXS", 19, "IQ2_XXS", 2.0625, "iq", needs_imatrix=True),
    QuantType("TQ2_0", 37, "TQ2_0", 2.0625, "ternary"),
    QuantType("IQ1_M", 31, "IQ1_M", 1.75, "iq", needs_imatrix=True),
    QuantType("TQ1_0", 36, "TQ1_0", 1.6875, "ternary"),
    QuantType("IQ1_S", 24, "IQ1_S", 1.5625, "iq", needs_imatrix=True),
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
