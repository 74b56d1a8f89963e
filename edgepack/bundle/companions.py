"""What travels with the quants of a bundle: a projector, a LoRA adapter, split parts.

The build calls this module at four points (before the reference, after it, after each quant,
before the manifest) so that the pipeline itself stays a sequence of stage calls. Each quant's
Modelfile gets the further FROM lines (its other split parts, the projector) and the ADAPTER
line; `llama-server.ini` gives llama-server the same pairing (`--models-preset`, one section
per quant with model, mmproj and lora); the manifest records every file with its sha256.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from edgepack import paths
from edgepack.atomic import write_text_atomic
from edgepack.errors import AdapterError, ProjectorError
from edgepack.hashing import sha256_file, sha256_text
from edgepack.source.split import SplitSettings, split_gguf
from edgepack.source.adapter import (AdapterEffect, AdapterGGUF, AdapterInfo, adapter_effect, check_adapter_fits,
                                     convert_adapter, merge_adapter, read_adapter)
from edgepack.source.model import Reference, Source
from edgepack.source.projector import Projector, check_projector_fits, has_projector, make_projector, read_projector

if TYPE_CHECKING:
    from edgepack.bundle.manifest import BundleFile

SERVER_PRESETS = "llama-server.ini"


@dataclass(frozen=True)
class CompanionRequest:
    """What the user asked for (the build's options)."""

    adapter: str | None = None  # a PEFT adapter directory
    merge_adapter: bool = False
    check_adapter: bool = True  # the probe-text comparison loads the base in transformers (float32)
    mmproj_type: str = "f16"
    projector: str | None = None  # an existing projector GGUF (for GGUF sources)
    no_projector: bool = False
    split: SplitSettings = SplitSettings()


@dataclass
class Companions:
    request: CompanionRequest
    adapter_info: AdapterInfo | None = None
    adapter_gguf: AdapterGGUF | None = None
    effect: AdapterEffect | None = None
    projector: Projector | None = None
    parts: dict[str, list[dict]] = field(default_factory=dict)  # quant -> [{file, size_bytes, sha256}]
    warnings: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.adapter_gguf or self.projector or self.parts)

    def projector_name(self, slug: str) -> str:
        return f"mmproj-{slug}-{self.projector.outtype}.gguf"

    def adapter_name(self, slug: str) -> str:
        return f"{slug}-lora-{self.adapter_info.name}-{self.adapter_gguf.outtype}.gguf"


def check_request(request: CompanionRequest, src: Source) -> CompanionRequest:
    """Refuse what cannot work before any slow step."""
    from edgepack.source.projector import PROJECTOR_TYPES

    if request.mmproj_type.lower() not in PROJECTOR_TYPES:
        raise ProjectorError(f"unknown --mmproj-type {request.mmproj_type!r}; choose one of {', '.join(PROJECTOR_TYPES)}")
    if request.adapter is not None:
        if not src.path.is_dir():
            raise AdapterError("--adapter needs the base model as a Hugging Face directory (the adapter is converted "
                               "against its config and checked against its weights), not a GGUF")
        check_adapter_fits(Path(request.adapter), src.path)
    elif request.merge_adapter:
        raise AdapterError("--merge-adapter needs --adapter DIR")
    if request.projector is not None and not Path(request.projector).is_file():
        raise ProjectorError(f"projector file {request.projector} does not exist")
    return request


def source_with_adapter(src: Source, request: CompanionRequest, cache_dir: Path | None = None) -> Source:
    """With --merge-adapter, the source becomes the merged checkpoint (the adapter folded in)."""
    if request.adapter is None or not request.merge_adapter:
        return src
    adapter = read_adapter(request.adapter)
    merged = merge_adapter(adapter.path, src.path, (cache_dir or paths.cache_root()) / "merged")
    return replace(src, path=merged, name=f"{src.name}-{adapter.name}")


def prepare(request: CompanionRequest, src: Source, base_src: Source, reference: Reference,
            embedding_length: int | None, cache_dir: Path | None = None) -> Companions:
    """Projector and adapter GGUFs for this reference, with their checks; `base_src` is the source
    before any merge (the adapter's base)."""
    cache_dir = cache_dir or paths.reference_cache_dir()
    comp = Companions(request)
    key = reference.cache_key or reference.sha256
    if request.projector is not None:
        comp.projector = read_projector(Path(request.projector))
    elif not request.no_projector and has_projector(src):
        comp.projector = make_projector(src, request.mmproj_type, cache_dir=cache_dir, cache_key=key)
    if comp.projector is not None:
        check_projector_fits(comp.projector, embedding_length, src.name)
    if request.adapter is not None:
        comp.adapter_info = read_adapter(request.adapter)
        adapter_dir = comp.adapter_info.path
        if request.merge_adapter:
            if request.check_adapter:
                comp.effect = adapter_effect(reference.path, base_src.path, adapter_dir)
        else:
            akey = sha256_text(key, "lora", *(sha256_file(p) for p in sorted(adapter_dir.glob("*")) if p.is_file()))
            dest = cache_dir / akey[:16] / "adapter-F16.gguf"
            comp.adapter_gguf = (AdapterGGUF(dest, "F16", sha256_file(dest), dest.stat().st_size, 0.0) if dest.is_file()
                                 else convert_adapter(adapter_dir, base_src.path, dest))
            if request.check_adapter:
                comp.effect = adapter_effect(reference.path, base_src.path, adapter_dir, adapter_gguf=dest)
        if comp.effect is not None:
            comp.warnings += [f"adapter {comp.adapter_info.name}: {n}" for n in comp.effect.notes[1:]]
    return comp


def extra_bytes(comp: Companions) -> int:
    """What the companions add to the bundle's size."""
    return (comp.projector.size_bytes if comp.projector else 0) + (comp.adapter_gguf.size_bytes if comp.adapter_gguf else 0)


def finish_quant(comp: Companions, entry: BundleFile, path: Path, slug: str) -> dict:
    """Split the quant if asked (entry then names the first part); the Modelfile's FROM/ADAPTER arguments."""
    from_paths = [f"./{path.name}"]
    if comp.request.split.enabled:
        parts = split_gguf(path, comp.request.split)
        if len(parts) > 1:
            comp.parts[entry.quant] = [{"file": p.name, "size_bytes": p.stat().st_size, "sha256": sha256_file(p)}
                                       for p in parts]
            entry.file, entry.sha256 = parts[0].name, comp.parts[entry.quant][0]["sha256"]
            entry.size_bytes = sum(p["size_bytes"] for p in comp.parts[entry.quant])
            from_paths = [f"./{p.name}" for p in parts]
    if comp.projector is not None:
        from_paths.append(f"./{comp.projector_name(slug)}")
    return {"from_path": from_paths[0], "extra_from": from_paths[1:],
            "adapter": f"./{comp.adapter_name(slug)}" if comp.adapter_gguf else None}


def _presets(comp: Companions, files: list[BundleFile], slug: str) -> str:
    lines = ["version = 1", "; llama-server presets written by edgepack; from this directory run:",
             f"; llama-server --models-preset {SERVER_PRESETS}   (or pass the same keys as --model/--mmproj/--lora)", ""]
    for f in files:
        lines += [f"[{slug}-{f.quant}]", f"model = ./{f.file}"]
        if comp.projector is not None:
            lines.append(f"mmproj = ./{comp.projector_name(slug)}")
        if comp.adapter_gguf is not None:
            lines.append(f"lora = ./{comp.adapter_name(slug)}")
        lines.append("")
    return "\n".join(lines)


def write_into(comp: Companions, staging: Path, files: list[BundleFile], slug: str) -> dict:
    """Copy the projector and adapter into the bundle, write the llama-server presets; the manifest's
    sections (keyword arguments of Manifest)."""
    from edgepack.bundle.manifest import AdapterRecord, PartRecord, ProjectorRecord, SplitRecord

    fields: dict = {}
    if comp.projector is not None:
        p = comp.projector
        name = comp.projector_name(slug)
        shutil.copyfile(p.path, staging / name)
        fields["projector"] = ProjectorRecord(name, p.sha256, p.size_bytes, p.outtype, p.projector_type,
                                              p.projection_dim, p.modalities)
    if comp.adapter_info is not None:
        info, gguf = comp.adapter_info, comp.adapter_gguf
        record = AdapterRecord(info.name, info.rank, float(info.alpha) if info.alpha is not None else None,
                               info.target_modules, comp.request.merge_adapter,
                               comp.effect.to_dict() if comp.effect else None)
        if gguf is not None:
            record.file = comp.adapter_name(slug)
            shutil.copyfile(gguf.path, staging / record.file)
            record.sha256, record.size_bytes, record.outtype = gguf.sha256, gguf.size_bytes, gguf.outtype
        fields["adapter"] = record
    if comp.parts:
        fields["split"] = SplitRecord(comp.request.split.max_size, comp.request.split.max_tensors,
                                      {q: [PartRecord(**p) for p in parts] for q, parts in comp.parts.items()})
    if comp.any:
        write_text_atomic(staging / SERVER_PRESETS, _presets(comp, files, slug))
        fields["llama_server"] = SERVER_PRESETS
    return fields


def modelfile_args(manifest, entry: BundleFile) -> dict:
    """FROM/ADAPTER arguments of modelfile_for_gguf for a quant of a written bundle (re-rendering)."""
    parts = [p.file for p in manifest.split.parts.get(entry.quant, [])] if manifest.split else []
    froms = [f"./{n}" for n in (parts or [entry.file])]
    if manifest.projector is not None:
        froms.append(f"./{manifest.projector.file}")
    adapter = manifest.adapter.file if manifest.adapter and manifest.adapter.file else None
    return {"from_path": froms[0], "extra_from": froms[1:], "adapter": f"./{adapter}" if adapter else None}
