"""Stage 2: quant types, quantization (in-process or llama-quantize) and the importance matrix."""

from edgepack.quantize.engine import QuantOptions, QuantResult, quantize_gguf
from edgepack.quantize.imatrix import check_imatrix_fits, compute_imatrix, load_calibration
from edgepack.quantize.types import QuantType, get_quant, resolve_quants

__all__ = ["QuantOptions", "QuantResult", "QuantType", "check_imatrix_fits", "compute_imatrix", "get_quant",
           "load_calibration", "quantize_gguf", "resolve_quants"]
