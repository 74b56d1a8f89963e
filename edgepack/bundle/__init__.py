"""Stage 5: the bundle: GGUFs, Modelfiles, manifest.json, model card; checking one, and recording
later stages' results (evaluation, tuning) into it.

The names below are loaded on first use (PEP 562), so that importing one light submodule (the
lock, the swap) does not load the manifest's pydantic models and the card: a build starts its
converter before it needs them.
"""

from edgepack.lazy import lazy_exports

_EXPORTS = {
    "render_model_card": "card",
    **dict.fromkeys(("MANIFEST", "MANIFEST_SCHEMA", "BundleFile", "ChatTemplateInfo", "Evaluation", "EvaluationResult",
                     "Manifest", "PlanRecord", "TunedSettings", "Tuning", "file_entry", "load_manifest", "now_utc",
                     "write_manifest"), "manifest"),
    **dict.fromkeys(("FileCheck", "ModelfileCheck", "VerifyResult", "require_verified", "verify_bundle"), "verify"),
    "check_output_dir": "output",
    "rewrite_modelfiles": "writer",
}
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
