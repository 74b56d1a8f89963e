"""PEFT LoRA adapters: convert beside the base, or merge into it, and prove the adapter matters.

Two ways to ship an adapter. Beside the base: the pinned tree's `convert_lora_to_gguf.py`
writes a LoRA GGUF against the same base config; Ollama takes it as ADAPTER and llama-server
as `--lora`. Merged: transformers + peft fold it into the weights (`merge_and_unload`) and the
merged checkpoint is converted and quantized like any source.

An adapter for another base usually converts without complaint and only fails (or silently
does nothing) at load time, so the shapes are checked first from the safetensors headers
alone. `adapter_effect` then runs a probe text through llama.cpp (base, base + adapter) and
through transformers + peft, on the same token ids, and reports how far each pair is apart.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack import progress
from edgepack.atomic import atomic_output
from edgepack.errors import AdapterError
from edgepack.hashing import sha256_file, sha256_text
from edgepack.paths import PathRecord
from edgepack.runtime.toolchain import Toolchain, ensure_toolchain

ADAPTER_CONFIG = "adapter_config.json"
PROBE_TEXT = ("The quick brown fox jumps over the lazy dog. In Python, a list comprehension builds a new list "
              "from an iterable, and a generator expression yields the items one at a time.")
# Tokenizer and config files a merged checkpoint needs besides its weights.
_BASE_EXTRA = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
               "added_tokens.json", "generation_config.json", "chat_template.jinja", "vocab.json", "merges.txt")


@dataclass
class AdapterInfo(PathRecord):
    path: Path  # the PEFT directory
    name: str
    rank: int | None
    alpha: float | None
    target_modules: list[str]
    n_tensors: int


@dataclass
class AdapterGGUF(PathRecord):
    path: Path
    outtype: str
    sha256: str
    size_bytes: int
    seconds: float


@dataclass
class AdapterEffect:
    """How the adapter moves the model on a probe text (mean over positions)."""

    n_tokens: int
    kld_base_vs_adapter: float  # llama.cpp base vs llama.cpp base+adapter: must be clearly > 0
    top1_base_vs_adapter: float
    kld_llama_vs_peft: float  # llama.cpp base+adapter vs transformers+peft: must be near 0
    top1_llama_vs_peft: float
    matters: bool
    matches_peft: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def read_adapter(adapter_dir: str | Path) -> AdapterInfo:
    path = Path(adapter_dir)
    config_path = path / ADAPTER_CONFIG
    if not config_path.is_file():
        raise AdapterError(f"{path} is not a PEFT adapter (no {ADAPTER_CONFIG}); give the directory "
                           "PeftModel.save_pretrained wrote")
    try:
        config = json.loads(config_path.read_text())
    except ValueError as exc:
        raise AdapterError(f"{config_path} is not valid JSON ({exc})") from None
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise AdapterError(f"{path.name} is a {config.get('peft_type')} adapter; only LoRA adapters can be converted")
    shapes = _adapter_shapes(path)
    targets = config.get("target_modules") or []
    return AdapterInfo(path, path.name, config.get("r"), config.get("lora_alpha"),
                       sorted(targets) if isinstance(targets, list) else [str(targets)], len(shapes))


def _safetensors_shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for f in files:
        with safe_open(f, "pt") as st:
            for name in st.keys():
                shapes[name] = tuple(st.get_slice(name).get_shape())
    return shapes


def _adapter_shapes(adapter_dir: Path) -> dict[str, tuple[int, ...]]:
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        raise AdapterError(f"{adapter_dir} has no adapter_model.safetensors (save the adapter with safetensors)")
    return _safetensors_shapes([weights])


def check_adapter_fits(adapter_dir: str | Path, base_dir: str | Path) -> None:
    """Every LoRA pair must multiply out to the shape of the base weight it adapts."""
    adapter_dir, base_dir = Path(adapter_dir), Path(base_dir)
    base = _safetensors_shapes(sorted(base_dir.glob("*.safetensors")))
    if not base:
        raise AdapterError(f"{base_dir} has no .safetensors weights to check the adapter against")
    adapter = _adapter_shapes(adapter_dir)
    for name, a_shape in sorted(adapter.items()):
        if ".lora_A." not in name:
            continue
        b_shape = adapter.get(name.replace(".lora_A.", ".lora_B."))
        module = name.split(".lora_A.")[0].removeprefix("base_model.model.")
        target = next((k for k in (f"{module}.weight", f"model.{module}.weight") if k in base), None)
        if target is None:
            suffix = module.split("model.", 1)[-1] + ".weight"
            target = next((k for k in base if k.endswith(suffix)), None)
        if target is None:
            raise AdapterError(f"{adapter_dir.name} adapts {module}, which {base_dir.name} does not have: "
                               "it was trained on another base model")
        want = (b_shape[0] if b_shape else None, a_shape[-1])
        if tuple(base[target][:2]) != want:
            raise AdapterError(
                f"{adapter_dir.name} does not fit {base_dir.name}: {module} is {list(base[target])} in the base but "
                f"{list(want)} in the adapter; it was trained on another base model")


def convert_adapter(adapter_dir: Path, base_dir: Path, dest: Path, *, outtype: str = "f16",
                    toolchain: Toolchain | None = None) -> AdapterGGUF:
    """The adapter as a LoRA GGUF, written by the pinned tree's convert_lora_to_gguf.py."""
    from edgepack.source.convert import run_converter_script

    start = time.perf_counter()
    toolchain = toolchain or ensure_toolchain()
    with atomic_output(dest) as tmp:
        run_converter_script(
            [str(toolchain.root / "convert_lora_to_gguf.py"), "--base", str(base_dir), "--outfile", str(tmp),
             "--outtype", outtype, str(adapter_dir)], toolchain,
            progress.step(f"Converting adapter {adapter_dir.name}"),
            AdapterError, f"llama.cpp's convert_lora_to_gguf.py failed on {adapter_dir}")
    return AdapterGGUF(dest, outtype.upper(), sha256_file(dest), dest.stat().st_size, progress.elapsed(start))


def merge_adapter(adapter_dir: Path, base_dir: Path, cache_dir: Path) -> Path:
    """Fold the adapter into the base weights with transformers + peft; cached by both contents."""
    key = sha256_text("merged-lora", *(sha256_file(p) for p in sorted(adapter_dir.glob("*")) if p.is_file()),
                      *(sha256_file(p) for p in sorted(base_dir.glob("*")) if p.is_file()))
    dest = cache_dir / f"{base_dir.name}+{adapter_dir.name}-{key[:12]}"
    if (dest / "config.json").is_file():
        return dest
    try:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM
    except ImportError as exc:
        raise AdapterError(f"--merge-adapter needs transformers and peft ({exc.name} is missing): pip install peft") from None
    staging = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    with progress.step(f"Merging adapter {adapter_dir.name} into {base_dir.name} (transformers + peft)"):
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype="auto")
        dtype = base.dtype
        merged = PeftModel.from_pretrained(base.to(torch.float32), adapter_dir).merge_and_unload()
        merged.to(dtype).save_pretrained(staging)
    for name in _BASE_EXTRA:
        if (base_dir / name).is_file():
            shutil.copyfile(base_dir / name, staging / name)
    staging.rename(dest)
    return dest


def _kld_and_top1(p_logits, q_logits) -> tuple[float, float]:
    """Mean KL(P||Q) over positions and the share of positions with the same top token."""
    import numpy as np

    def log_softmax(x):
        x = x - x.max(axis=-1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))

    lp, lq = log_softmax(p_logits.astype(np.float64)), log_softmax(q_logits.astype(np.float64))
    kld = (np.exp(lp) * (lp - lq)).sum(axis=-1)
    top1 = (p_logits.argmax(-1) == q_logits.argmax(-1)).mean()
    return float(kld.mean()), float(top1)


def _llama_logits(gguf_path: Path, tokens: list[int], lora: Path | None):
    import numpy as np

    from edgepack.runtime.llama import load_model

    kwargs = {"lora_path": str(lora)} if lora else {}
    with load_model(gguf_path, n_ctx=max(64, len(tokens)), logits_all=True, n_threads=2, **kwargs) as llm:
        llm.reset()
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)], dtype=np.float32)


def _peft_logits(base_dir: Path, adapter_dir: Path, tokens: list[int]):
    """transformers + peft logits with the adapter, and with it disabled (the base), in float32."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    ids = torch.tensor([tokens])
    with torch.no_grad():
        adapted = model(ids).logits[0].float().numpy()
        with model.disable_adapter():
            plain = model(ids).logits[0].float().numpy()
    return adapted, plain


def adapter_effect(reference: Path, base_dir: Path, adapter_dir: Path, *, adapter_gguf: Path | None = None,
                   text: str = PROBE_TEXT) -> AdapterEffect:
    """Logits on a probe text, on the same token ids: llama.cpp with the adapter (the base reference
    plus `adapter_gguf`, or the merged reference when it is None) against transformers + peft, and
    against the base without the adapter (llama.cpp's when the base GGUF is at hand, else transformers')."""
    from edgepack.runtime.llama import load_model

    with load_model(reference, n_ctx=256, vocab_only=True) as llm:
        tokens = llm.tokenize(text.encode(), add_bos=True)[:128]
    adapted = _llama_logits(reference, tokens, adapter_gguf)
    with progress.step("Checking the adapter against transformers + peft"):
        peft, peft_base = _peft_logits(base_dir, adapter_dir, tokens)
    base = _llama_logits(reference, tokens, None) if adapter_gguf is not None else peft_base
    kld_ba, top1_ba = _kld_and_top1(base, adapted)
    kld_lp, top1_lp = _kld_and_top1(peft, adapted)
    # The adapter matters when it moves the distributions much further than the conversion
    # error does; llama.cpp matches peft when that error is small in absolute terms.
    matters = kld_ba > max(10 * kld_lp, 1e-4)
    matches = kld_lp < 0.01 and top1_lp >= 0.9
    notes = [f"base logits from {'llama.cpp' if adapter_gguf is not None else 'transformers'}"]
    if not matters:
        notes.append("the adapter barely changes the model's output on the probe text (is it trained? lora_B all zero?)")
    if not matches:
        notes.append("llama.cpp with the adapter disagrees with transformers + peft on the probe text")
    return AdapterEffect(len(tokens), float(f"{kld_ba:.4g}"), round(top1_ba, 4), float(f"{kld_lp:.4g}"),
                         round(top1_lp, 4), matters, matches, notes)
