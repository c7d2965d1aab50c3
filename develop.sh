#!/usr/bin/env bash
# One-time setup in the Python environment `python3` runs in (activate a venv first to keep it separate):
# installs the build and test tools, builds deep_gemm._C against the installed torch and installs deep_gemm in
# editable mode. Needs a CUDA build of torch (2.4.1 to 2.14.1 tested) already installed; the JIT needs a CUDA
# toolkit >= 12.8 at run time (nvcc, or NVRTC with DG_JIT_USE_NVRTC=1). Set CUDA_HOME if nvcc is not at
# /usr/local/cuda. Prints one line per step.
set -euo pipefail
cd "$(dirname "$0")"
step() { echo "develop.sh: $*"; }

step "checking torch in $(command -v python3)"
python3 -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)" || {
    echo "develop.sh: torch is not installed for $(command -v python3): install a CUDA build of torch first" \
         "(e.g. pip install torch==2.14.1)" >&2
    exit 1
}

# wheel: older setuptools need it for editable installs; numpy: torch warns at every import without it;
# pytest, cuobjdump and nvdisasm (which `cuobjdump -sass` runs): the tests and the compile-only SASS checks
tools="ninja pybind11 wheel numpy pytest nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm"
step "installing build and test tools: ${tools}"
python3 -m pip install -q ${tools}

python3 - <<'EOF'
import torch
print(f'develop.sh: torch {torch.__version__} (CUDA {torch.version.cuda or "none: a CPU-only build"})')
if torch.version.cuda is None:
    raise SystemExit('develop.sh: this torch is a CPU-only build; deep_gemm needs a CUDA build of torch')
EOF

# --use-pep517: an older pip (23.x, as a new venv has) would otherwise run `setup.py develop`, which newer setuptools
# turn into a `pip install -e .` with build isolation, where torch is missing
step "building deep_gemm._C against torch and installing deep_gemm in editable mode (2 to 4 minutes on 2 cores)"
python3 -m pip install -q --no-build-isolation --no-deps --use-pep517 -e .

step "checking the build"
python3 - <<'EOF'
import deep_gemm
if deep_gemm._C is None:
    raise SystemExit(f'develop.sh: the build finished but {deep_gemm._extension_problem()}')
print(f'develop.sh: done: deep_gemm {deep_gemm.__version__} with its extension, from {deep_gemm.__path__[0]}')
EOF
