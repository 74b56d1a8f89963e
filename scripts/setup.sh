#!/usr/bin/env bash
# Set up edgepack on a fresh machine and build the embedded default model:
#   a virtual environment (.venv), the CPU build of torch FIRST (so nothing pulls a CUDA torch),
#   llama-cpp-python built from source at the pinned version, edgepack itself,
#   llama.cpp's tools from the same tree, then `edgepack build` on SmolLM2-135M-Instruct.
# Environment: PYTHON (default python3), EDGEPACK_SKIP_BUILD=1 to stop after installing.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_PYTHON_VERSION=0.3.36   # keep in step with pyproject.toml and edgepack/toolchain.py
TORCH_VERSION=2.13.0

"${PYTHON:-python3}" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install --quiet --upgrade pip

echo "==> torch ${TORCH_VERSION} (CPU)"
python -m pip install --quiet "torch==${TORCH_VERSION}"

echo "==> llama-cpp-python ${LLAMA_CPP_PYTHON_VERSION}, built from source (a few minutes)"
pip_cache=()
if [ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] && grep -qw amx_int8 /proc/cpuinfo; then
    # llama.cpp's AMX kernels at this version crash on quantized batches; build without them
    # (edgepack/native.py does the same for the command-line tools). A cached wheel may have them.
    export CFLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" CXXFLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    pip_cache=(--no-cache-dir)
fi
python -m pip install --quiet "${pip_cache[@]}" --no-binary llama-cpp-python "llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}"
unset CFLAGS CXXFLAGS

echo "==> edgepack"
python -m pip install --quiet -e '.[test]'
# zeus pulls in AMD's amdsmi, whose import raises on machines without ROCm and takes `import ray`
# down with it; zeus works without it, so drop it unless this machine has ROCm.
if [ ! -e /opt/rocm ]; then python -m pip uninstall --quiet -y amdsmi || true; fi

echo "==> llama.cpp tools from the same tree"
edgepack native build
# Also the tools for image prompts and split GGUFs, and the RPC backend (its own build directory).
edgepack native build --tool llama-mtmd-cli --tool llama-gguf-split
edgepack native build --tool rpc-server --tool llama-server --tool llama-bench

edgepack doctor
if [ "${EDGEPACK_SKIP_BUILD:-0}" != 1 ]; then
    echo "==> edgepack build (embedded default: SmolLM2-135M-Instruct)"
    edgepack build --ladder -o out/SmolLM2-135M-Instruct
    edgepack verify out/SmolLM2-135M-Instruct
fi
