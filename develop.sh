#!/usr/bin/env bash
# One-time setup: build deep_gemm._C against the installed torch and install deep_gemm in editable mode.
# Needs a CUDA build of torch (>= 2.4) already installed; the JIT needs a CUDA toolkit >= 12.8 at run time
# (nvcc, or NVRTC with DG_JIT_USE_NVRTC=1). Set CUDA_HOME if nvcc is not at /usr/local/cuda.
set -euo pipefail
cd "$(dirname "$0")"
python3 -c "import torch" 2>/dev/null || { echo "develop.sh: install a CUDA build of torch first (e.g. pip install torch)"; exit 1; }
# Build tools, and what the tests use: pytest, and cuobjdump for the compile-only SASS checks
python3 -m pip install -q ninja pybind11 pytest nvidia-cuda-cuobjdump
python3 -m pip install -q --no-build-isolation --no-deps -e .
python3 -c "import deep_gemm; print('deep_gemm', deep_gemm.__version__, 'extension:', 'ok' if deep_gemm._C else deep_gemm._C_IMPORT_ERROR)"
