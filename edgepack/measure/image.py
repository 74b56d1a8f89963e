"""Image prompts: time to first token with one image, through llama.cpp's own llama-mtmd-cli.

llama-cpp-python has no multimodal C API at this version, so the measurement runs the
`llama-mtmd-cli` built from the same tree (`edgepack native build --tool llama-mtmd-cli`) and
reads the timings llama.cpp itself logs: the image encoder's time ("mtmd batch encoding done in"),
the prompt's decode (llama_perf "prompt eval time", which includes the image embeddings) and
the generation speed ("eval time"). Time to first token = encoder + prompt decode.

The image encoder's compute buffer, which clip.cpp reserves when it loads the projector
("reserve_compute_meta: CPU compute buffer size = … MiB"), is read from the same log and kept
per projector sha256 in the cache (projector-compute.json), so the plan can count it.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from edgepack import procs
from edgepack.errors import BenchError

_ENCODED = re.compile(r"(?:slice encoded in|batch encoding done in) (\d+) ms")
_DECODED = re.compile(r"decoded \(batch \d+/\d+\) in (\d+) ms")
_PROMPT = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")
_LOG_PREFIX = re.compile(r"^\d+\.\d+\.\d+\.\d+ [A-Z] ")  # llama.cpp's log timestamp and level
_ERROR = re.compile(r"^\d+\.\d+\.\d+\.\d+ E ")
_CLIP_BUFFER = re.compile(r"reserve_compute_meta:\s+(\S+) compute buffer size =\s+([\d.]+) MiB")
_EVAL = re.compile(r"\beval time =\s*([\d.]+) ms /\s*(\d+) runs")


@dataclass
class ImagePromptResult:
    model: str
    projector: str
    image: str
    n_prompt_tokens: int  # text and image tokens
    n_generated: int
    image_encode_ms: float
    image_decode_ms: float
    prompt_eval_ms: float
    ttft_ms: float
    tg_tps: float | None
    text: str
    projector_compute_bytes: dict[str, int]  # backend (CPU, CUDA0, …) -> the image encoder's compute buffer


    def to_dict(self) -> dict:
        return asdict(self)


def generated_image(dest: Path, size: int = 64) -> Path:
    """A small test picture (colour gradient with a square and a disc), written as PNG."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size))
    img.putdata([(x * 255 // size, y * 255 // size, 128) for y in range(size) for x in range(size)])
    draw = ImageDraw.Draw(img)
    draw.rectangle([size // 8, size // 8, size // 2, size // 2], fill=(255, 255, 255))
    draw.ellipse([size // 2, size // 2, size - 4, size - 4], fill=(20, 20, 200))
    dest.parent.mkdir(parents=True, exist_ok=True)
    img.save(dest)
    return dest


def _mtmd_cli() -> Path:
    from edgepack.runtime.native import build_native

    return build_native(("llama-mtmd-cli",)).tool("llama-mtmd-cli")


def image_prompt(model: Path, projector: Path, image: Path | None = None, *, prompt: str = "Describe this image.",
                 n_predict: int = 16, n_threads: int | None = None, n_ctx: int = 1024) -> ImagePromptResult:
    """Run one image prompt (greedy) and read llama.cpp's timings."""
    model, projector = Path(model), Path(projector)
    for path, what in ((model, "model"), (projector, "projector")):
        if not path.is_file():
            raise BenchError(f"{what} {path} does not exist")
    # llama-mtmd-cli exits before its logger flushes the reason, so check the pair here first
    from edgepack.gguf_file import read_gguf
    from edgepack.source.projector import check_projector_fits, read_projector

    check_projector_fits(read_projector(projector), read_gguf(model).embedding_length, model.name)
    with tempfile.TemporaryDirectory(prefix="edgepack-image-") as tmp:
        image_name = str(image) if image is not None else "generated 64x64 test picture"
        image = Path(image) if image is not None else generated_image(Path(tmp) / "test.png")
        if not image.is_file():
            raise BenchError(f"image {image} does not exist")
        cmd = [str(_mtmd_cli()), "-m", str(model), "--mmproj", str(projector), "--image", str(image),
               "-p", prompt, "-n", str(n_predict), "--temp", "0", "-c", str(n_ctx),
               "--perf", "-lv", "4"]  # llama.cpp's timings are logged at this verbosity only
        if n_threads:
            cmd += ["-t", str(n_threads)]
        # llama.cpp's logger is a thread that the tool does not join at exit, so its last lines (the
        # timings, the generation line last) are sometimes lost (llama.cpp issue 22142): run again when either is missing
        for _attempt in range(3):
            proc = procs.run(cmd, capture_output=True, text=True, errors="replace", timeout=600)
            log = proc.stderr + proc.stdout
            if proc.returncode != 0 or (_PROMPT.search(log) and _EVAL.search(log)):
                break
    if proc.returncode != 0:
        lines = [ln for ln in log.strip().splitlines() if ln.strip()]
        lines = [_LOG_PREFIX.sub("", ln) for ln in ([ln for ln in lines if _ERROR.match(ln)] or lines)]
        raise BenchError(f"llama-mtmd-cli failed on {model.name} + {projector.name}: "
                         f"{lines[-1] if lines else f'exit {proc.returncode}'}")
    encode = sum(float(m) for m in _ENCODED.findall(log))
    decode = sum(float(m) for m in _DECODED.findall(log))
    prompt_m, eval_m = _PROMPT.search(log), _EVAL.search(log)
    if prompt_m is None or _ENCODED.search(log) is None:
        raise BenchError(f"llama-mtmd-cli printed no image timings for {model.name} (was the image used?)")
    prompt_ms, n_prompt = float(prompt_m[1]), int(prompt_m[2])
    eval_ms, n_eval = (float(eval_m[1]), int(eval_m[2])) if eval_m else (0.0, 0)
    return ImagePromptResult(
        model=str(model), projector=str(projector), image=image_name, n_prompt_tokens=n_prompt,
        n_generated=n_eval + 1 if eval_m else 0,  # the first token comes out of the prompt's decode
        image_encode_ms=encode, image_decode_ms=decode, prompt_eval_ms=prompt_ms, ttft_ms=round(encode + prompt_ms, 2),
        tg_tps=round(n_eval / eval_ms * 1000, 2) if eval_ms else None, text=proc.stdout.strip(),
        projector_compute_bytes=_remember_compute(projector, log))


def _compute_cache() -> Path:
    from edgepack.paths import cache_root

    return cache_root() / "projector-compute.json"


def _known_compute() -> dict:
    try:
        return json.loads(_compute_cache().read_text())
    except (OSError, ValueError):  # none yet, or unreadable: measure again
        return {}


def _remember_compute(projector: Path, log: str) -> dict[str, int]:
    """The clip compute buffers in `log` (the last reservation per backend), recorded by projector sha256."""
    from edgepack.atomic import write_text_atomic
    from edgepack.hashing import sha256_file

    buffers = {backend: round(float(mib) * 2**20) for backend, mib in _CLIP_BUFFER.findall(log)}
    if buffers:
        known = _known_compute()
        known[sha256_file(projector)] = buffers
        write_text_atomic(_compute_cache(), json.dumps(known, indent=1, sort_keys=True) + "\n")
    return buffers


def projector_compute_bytes(projector: Path, sha256: str, model: Path) -> int | None:
    """The image encoder's compute buffer of this projector, as clip.cpp reserved it in one real run
    (recorded by sha256); measured now with `model` when llama-mtmd-cli is built; None when it is not."""
    known = _known_compute().get(sha256)
    if known is None:
        from edgepack.runtime.native import find_native

        native = find_native()
        if native is None or native.tool("llama-mtmd-cli") is None:
            return None
        known = image_prompt(model, projector, n_predict=1).projector_compute_bytes
    return sum(known.values()) if known else None


def bundle_image_prompts(bundle_dir: Path, image: Path | None = None, **kwargs) -> list[ImagePromptResult]:
    """Every quant of a bundle with the bundle's projector."""
    from edgepack.bundle import load_manifest

    manifest = load_manifest(bundle_dir)
    projector = manifest.projector.file if manifest.projector else None
    if projector is None:
        raise BenchError(f"{bundle_dir} has no projector (build a multimodal source, or give --mmproj)")
    return [image_prompt(Path(bundle_dir) / f.file, Path(bundle_dir) / projector, image, **kwargs)
            for f in manifest.files]
