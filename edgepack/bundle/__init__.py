"""Stage 5: the bundle: GGUFs, Modelfiles, manifest.json, model card; and checking one."""

from edgepack.bundle.card import render_model_card
from edgepack.bundle.manifest import MANIFEST, BundleFile, Manifest, file_entry, load_manifest, now_utc, write_manifest
from edgepack.bundle.output import check_output_dir
from edgepack.bundle.verify import FileCheck, VerifyResult, require_verified, verify_bundle
from edgepack.bundle.writer import rewrite_modelfiles

__all__ = ["MANIFEST", "BundleFile", "FileCheck", "Manifest", "VerifyResult", "check_output_dir", "file_entry",
           "load_manifest", "now_utc", "render_model_card", "require_verified", "rewrite_modelfiles",
           "verify_bundle", "write_manifest"]
