"""edgepack: convert, quantize, measure and package LLMs for local and edge deployment.

The stages, in the order data flows: `source` (resolve and convert to the 16-bit reference),
`quantize`, `measure`, `machine` (profile and plan), `chat` (templates and Modelfiles), `bundle`
(the only writer of a bundle), tied together by `pipeline.build`. See docs/ARCHITECTURE.md.
"""

__version__ = "0.1.0"

# The public API, imported on first use so that `import edgepack` stays cheap.
_API = {
    "build": "edgepack.pipeline",
    "read_gguf": "edgepack.gguf_file",
    "verify_bundle": "edgepack.bundle",
    "load_manifest": "edgepack.bundle",
    "evaluate": "edgepack.measure",
    "plan_deployment": "edgepack.machine",
    "modelfile_for_gguf": "edgepack.chat",
}


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'edgepack' has no attribute {name!r}")


__all__ = ["__version__", *_API]
