"""Writing a bundle's own files: Modelfiles, manifest.json and the model card (in staging or in place)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgepack.atomic import link_or_copy, write_text_atomic
from edgepack.bundle.card import render_model_card
from edgepack.bundle.manifest import BundleFile, Manifest, file_entry, now_utc, write_manifest
from edgepack.gguf_file import read_gguf
from edgepack.hashing import file_record, matches_record

DEFAULT_MODELFILE = "Modelfile"
PREFERRED_QUANT = "Q4_K_M"  # the quant `Modelfile` points at when the bundle has it


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
    preferred = manifest.file(PREFERRED_QUANT) or manifest.files[0]  # the build copies its Modelfile to `Modelfile`
    written: list[str] = []
    for f in manifest.files:
        if not f.modelfile:
            continue
        plan = plans.get(f.quant)
        deploy = plan.modelfile_parameters() if plan else {}
        text = modelfile_for_gguf(read_gguf(bundle_dir / f.file), **modelfile_args(manifest, f),
                                  model_name=manifest.model.get("name", f.file), quant=f.quant,
                                  modelfile_name=f.modelfile, source_dir=source_dir, parameters=parameters,
                                  chat=chat, **deploy).text
        write_text_atomic(bundle_dir / f.modelfile, text)
        written.append(f.modelfile)
        if manifest.default_modelfile and f is preferred:
            write_text_atomic(bundle_dir / manifest.default_modelfile, text)
            written.append(manifest.default_modelfile)
    return written


@dataclass
class ModelfileWritten:
    name: str
    chat_template: dict
    warnings: list[str] = field(default_factory=list)


def write_quant_modelfile(staging: Path, entry: BundleFile, info, *, model_name: str, source_dir: Path | None,
                          deploy: dict, parameters: dict | None = None, chat=None,
                          sources: dict | None = None) -> ModelfileWritten:
    """`Modelfile.<QUANT>` beside its GGUF; `deploy` adds the plan's num_ctx/num_gpu/num_thread.

    `info` is the 16-bit reference's GGUFInfo (with tokens): what a Modelfile reads (chat template,
    special tokens, license, name) is metadata llama-quantize copies unchanged into every quant,
    so the reference is read once instead of every quant again. `sources`: its FROM/ADAPTER
    arguments when the quant has companions (bundle/companions.py: split parts, projector, adapter).
    """
    from edgepack.chat.modelfile import modelfile_for_gguf

    name = f"Modelfile.{entry.quant}"
    modelfile = modelfile_for_gguf(info, **(sources or {"from_path": f"./{entry.file}"}),
                                   model_name=model_name, quant=entry.quant, modelfile_name=name,
                                   source_dir=source_dir, parameters=parameters, chat=chat, **deploy)
    write_text_atomic(staging / name, modelfile.text)
    entry.modelfile = name
    return ModelfileWritten(name, {"family": modelfile.template_family, "variant": modelfile.template_variant,
                                   "system_handling": modelfile.system_handling}, list(modelfile.warnings))


def make_quant(reference, quant, options, key, dest: Path, n_params: int) -> tuple[BundleFile, bool]:
    """The quant's GGUF at `dest` (in staging) and its manifest entry; True when the quant cache had it.

    `key` is its QuantCacheEntry: a cached file is linked in once it is checked (size and mtime as
    recorded, else its sha256); a new one is
    made at `dest` and linked into the cache, so a rerun after an interrupt finds it.
    """
    from edgepack.quantize.engine import quantize_gguf
    from edgepack.quantize.prepare import estimate_quant_bytes

    record = key.lookup()
    if record is not None:
        try:
            # Same size and mtime as when it was cached (hashing.matches_record), else every byte rehashed.
            if matches_record(key.gguf, record.get("file")):
                link_or_copy(key.gguf, dest)
                return BundleFile(**(record["entry"] | {"file": dest.name})), True
        except (FileNotFoundError, TypeError, KeyError):  # dropped by another build; an older record
            pass
        key.drop()
    made = quantize_gguf(reference.path, dest, quant, options, expected_bytes=estimate_quant_bytes(n_params, quant))
    entry = file_entry(dest, quant.name, options.to_dict(), options.llama_quantize_args(), made.seconds)
    try:
        link_or_copy(dest, key.gguf)  # kept until the bundle is in place: a rerun after an interrupt reuses it
        key.record(file_record(key.gguf, entry.sha256), made.seconds, asdict(entry))
    except OSError:  # a full or read-only cache costs only the resume
        key.drop()
    return entry, False


def new_manifest(src, reference, ref_info, toolchain, files: list[BundleFile], *, timings: dict, warnings: list[str],
                 imatrix: dict | None, **sections) -> Manifest:
    """The record of a bundle the build just assembled (its default Modelfile is set by `finish_bundle`)."""
    from edgepack import __version__

    notes = []
    if src.kind == "default":
        from edgepack.source.default_model import DEFAULT_MODEL_NOTE

        notes.append(DEFAULT_MODEL_NOTE)
    return Manifest(
        edgepack_version=__version__, created=now_utc(), source=src.to_dict(),
        toolchain=toolchain.to_dict() | {"root": None}, reference=reference.to_dict(),
        model={"name": src.name, "architecture": ref_info.architecture, "n_params": ref_info.n_params,
               "n_layers": ref_info.n_layers, "context_length": ref_info.context_length,
               "embedding_length": ref_info.embedding_length, "vocab_size": ref_info.vocab_size,
               "has_chat_template": ref_info.has_chat_template},
        files=files, timings=timings, warnings=warnings, notes=notes, imatrix=imatrix, **sections)


def _evaluation_table(bundle_dir: Path) -> str | None:
    """The model card's measured comparison, from the report.json an earlier `edgepack eval` left."""
    from edgepack.errors import ReportError
    from edgepack.measure.report import load_report, table_rows

    try:
        header, cells = table_rows(load_report(bundle_dir))
    except ReportError:
        return None
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                     ["| " + " | ".join(row) + " |" for row in cells])


def finish_bundle(staging: Path, manifest: Manifest, *, mode: int) -> None:
    """The default Modelfile, manifest.json and README.md, then the directory mode the old one had."""
    preferred = manifest.file(PREFERRED_QUANT) or manifest.files[0]
    # Written to a new inode: the old name may be a hard link into the previous bundle.
    write_text_atomic(staging / DEFAULT_MODELFILE, (staging / preferred.modelfile).read_text(encoding="utf-8"))
    manifest.default_modelfile = DEFAULT_MODELFILE
    write_manifest(staging, manifest)
    table = _evaluation_table(staging) if manifest.evaluation else None
    write_text_atomic(staging / "README.md", render_model_card(manifest, evaluation_table=table))
    os.chmod(staging, mode)
