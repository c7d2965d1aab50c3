#!/usr/bin/env bash
# Everything the lent GPU is needed for, in one call (its machine starts bare each time):
#   build the extension → pre-compile the SM120-mode configs in parallel → GPU tests → benchmarks.
# Logs go under $OUT (or ./device_out). Usage: bash benchmarks/device_check.sh [pytest -k expression] [bench args]
# Optional: HC_TIMELINE=1 adds the hc kernel's per-CTA timeline (benchmarks/hc_timeline.cu), NCU=1 the paged kernel's
# DRAM byte count.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/device_out}"; mkdir -p "$OUT"
export CC=/usr/bin/gcc CXX=/usr/bin/g++          # docs/HARDWARE.md §5: the other g++ there breaks the extension
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export DG_JIT_CACHE_DIR="${DG_JIT_CACHE_DIR:-/tmp/dg_cache}" DG_SM120_MODE=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
K="${1:-}"; BENCH="${2:-}"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,utilization.gpu --format=csv > "$OUT/gpu.txt" 2>&1
t0=$(date +%s)
python3 setup.py build_ext --inplace -j 16 > "$OUT/build.log" 2>&1 || { tail -50 "$OUT/build.log"; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
t0=$(date +%s)
python3 -m deep_gemm.jit --arch sm_90a --sm120-mode --jobs 16 > "$OUT/precompile.log" 2>&1
tail -1 "$OUT/precompile.log"; echo "precompile: $(( $(date +%s) - t0 )) s"
t0=$(date +%s)
python3 -m pytest -m gpu -q -p no:cacheprovider ${K:+-k "$K"} -s 2>&1 | tee "$OUT/gpu_tests.log" | grep -E "passed|failed|error|Error|\[host overhead\]|^FAILED" | tail -40
echo "gpu tests: $(( $(date +%s) - t0 )) s"
if [ "$BENCH" != "none" ]; then
    t0=$(date +%s)
    python3 -m deep_gemm.bench $BENCH 2>&1 | tee "$OUT/bench.log"
    echo "bench: $(( $(date +%s) - t0 )) s"
fi
if [ "${HC_TIMELINE:-0}" = "1" ]; then
    nvcc -std=c++17 -O3 -gencode arch=compute_90a,code=sm_90a -I deep_gemm/include benchmarks/hc_timeline.cu \
        -o /tmp/hc_timeline && /tmp/hc_timeline 2>&1 | tee "$OUT/hc_timeline.log"
fi
if [ "${NCU:-0}" = "1" ] && command -v ncu >/dev/null; then
    ncu --clock-control none --metrics dram__bytes_read.sum,dram__bytes_write.sum,gpu__time_duration.sum \
        -k regex:sm120_fp8_paged_mqa_logits python3 benchmarks/ncu_paged.py > "$OUT/ncu_paged.log" 2>&1
    grep -E "ideal|dram__bytes|gpu__time|==ERR" "$OUT/ncu_paged.log" | tail -12
fi
