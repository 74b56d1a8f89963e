"""Writing into a bundle directory: checking an output directory and re-rendering Modelfiles."""

from __future__ import annotations

from pathlib import Path

from edgepack.atomic import write_text_atomic
from edgepack.bundle.manifest import MANIFEST, Manifest
from edgepack.errors import OutputError
from edgepack.gguf_file import read_gguf


def rewrite_modelfiles(bundle_dir: str | Path, manifest: Manifest, parameters: dict) -> list[str]:
    """Re-render every Modelfile of a bundle with extra PARAMETERs (e.g. tuned settings).

    Everything the build put there stays: the source's sampling defaults and license (when the
    source directory is still there) and the deployment plan's num_ctx/num_gpu/num_thread;
    `parameters` override them.
    """
    from edgepack.bundle.companions import modelfile_args
    from edgepack.chat.modelfile import modelfile_for_gguf
    from edgepack.chat.report import ChatReport

    bundle_dir = Path(bundle_dir)
    source_dir = Path(manifest.source.get("path") or "")
    source_dir = source_dir if manifest.source.get("path") and source_dir.is_dir() else None
    plans = manifest.plans
    chat = ChatReport.from_dict(manifest.chat) if manifest.chat else None
    preferred = manifest.file("Q4_K_M") or manifest.files[0]  # the build copies its Modelfile to `Modelfile`
    written: list[str] = []
    for f in manifest.files:
        if not f.modelfile:
            continue
        plan = plans.get(f.quant)
        deploy = plan.modelfile_parameters() if plan else {}
        text = modelfile_for_gguf(read_gguf(bundle_dir / f.file, with_tokens=True), **modelfile_args(manifest, f),
                                  model_name=manifest.model.get("name", f.file), quant=f.quant,
                                  modelfile_name=f.modelfile, source_dir=source_dir, parameters=parameters,
                                  chat=chat, **deploy).text
        write_text_atomic(bundle_dir / f.modelfile, text)
        written.append(f.modelfile)
        if manifest.default_modelfile and f is preferred:
            write_text_atomic(bundle_dir / manifest.default_modelfile, text)
            written.append(manifest.default_modelfile)
    return written


def check_output_dir(output_dir: Path) -> None:
    """Refuse to replace a directory that is not an edgepack bundle (it may hold the user's files)."""
    if output_dir.exists():
        if not output_dir.is_dir():
            raise OutputError(f"{output_dir} exists and is not a directory; choose another -o")
        if any(output_dir.iterdir()) and not (output_dir / MANIFEST).is_file():
            raise OutputError(f"{output_dir} is not empty and is not an edgepack bundle; choose another -o or empty it")
