"""Stage 5: the bundle: GGUFs, Modelfiles, manifest.json, model card; checking one, and recording
later stages' results (evaluation, tuning) into it."""

from edgepack.bundle.card import render_model_card
from edgepack.bundle.manifest import (MANIFEST, MANIFEST_SCHEMA, BundleFile, ChatTemplateInfo, Evaluation,
                                      EvaluationResult, Manifest, PlanRecord, TunedSettings, Tuning, file_entry,
                                      load_manifest, now_utc, write_manifest)
from edgepack.bundle.verify import FileCheck, ModelfileCheck, VerifyResult, require_verified, verify_bundle
from edgepack.bundle.output import check_output_dir
from edgepack.bundle.writer import rewrite_modelfiles

__all__ = ["MANIFEST", "MANIFEST_SCHEMA", "BundleFile", "ChatTemplateInfo", "Evaluation", "EvaluationResult",
           "FileCheck", "Manifest", "ModelfileCheck", "PlanRecord", "TunedSettings", "Tuning", "VerifyResult",
           "check_output_dir", "file_entry", "load_manifest", "now_utc", "render_model_card", "require_verified",
           "rewrite_modelfiles", "verify_bundle", "write_manifest"]
