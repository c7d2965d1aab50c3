#!/usr/bin/env bash
# One-time setup for development: build deep_gemm._C in place and install the package in editable mode.
# Needs torch (>= 2.4, CUDA build) already installed, and a CUDA toolkit >= 12.8 for the run-time JIT.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install --no-build-isolation --no-deps -e .
