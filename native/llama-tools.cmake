# Initial CMake cache for building llama.cpp's command-line tools from the pinned tree
# (used as `cmake -C native/llama-tools.cmake`; the backend flags are added by edgepack).
set(CMAKE_BUILD_TYPE Release CACHE STRING "")
# Static libraries: each tool is one self-contained binary in the cache.
set(BUILD_SHARED_LIBS OFF CACHE BOOL "")
set(LLAMA_BUILD_TESTS OFF CACHE BOOL "")
set(LLAMA_BUILD_EXAMPLES OFF CACHE BOOL "")
set(LLAMA_BUILD_TOOLS ON CACHE BOOL "")
set(LLAMA_BUILD_SERVER ON CACHE BOOL "")
set(LLAMA_BUILD_UI OFF CACHE BOOL "")
set(LLAMA_USE_PREBUILT_UI OFF CACHE BOOL "")
# No network access from the tools: edgepack fetches models itself.
set(LLAMA_OPENSSL OFF CACHE BOOL "")
set(LLAMA_CURL OFF CACHE BOOL "")
# Tune for the CPU we build on, as llama-cpp-python's own build does.
set(GGML_NATIVE ON CACHE BOOL "")
