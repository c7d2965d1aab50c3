#!/usr/bin/env bash
# Everything the GPU machine is needed for, in one call (its machine starts bare each time):
#   build the extension -> pre-compile the SM120-mode configs in parallel -> GPU tests -> upstream's own test files
#   -> benchmarks. Logs go under $OUT (or ./device_out); a summary line per stage is printed.
#
# Usage: bash benchmarks/device_check.sh [STAGES] [PYTEST_K] [BENCH_ARGS]
#   STAGES: comma list of build,precompile,tests,upstream,lanes,bench (default: all but lanes); a stage's time limit
#   comes from DG_CHECK_<STAGE>_S (seconds). Upstream's test files come from $DG_UPSTREAM_TESTS (the folder holding main/ and
#   nv_dev/); copy them into an ignored folder of the checkout and point the variable at it (they are never committed).
#   DG_UPSTREAM_SUITES="main nv_dev" runs both folders (default: main; each gets DG_CHECK_UPSTREAM_S), DG_UPSTREAM_ONLY
#   ("file.py::function ..." or bare file names) limits the functions, DG_UPSTREAM_FN_S bounds each function.
#   The `lanes` stage runs several of these at once on the one GPU (a lent machine's time is short): DG_LANES is a
#   '|'-separated list of lanes, each 'pytest <pytest args>' (our GPU tests) or '<suite> <file.py::function> ...'
#   (upstream's files); each lane gets DG_CHECK_LANES_S. Lanes share the GPU, so the timings they print are not
#   measurements (time-slicing between processes inflates them); use them for pass/fail only.
# Optional: NCU=1 adds the paged kernel's DRAM byte count; NCU_GEMM=1 profiles the FP8 GEMM's decode and prefill
# shapes (benchmarks/ncu_gemm.py: time, SM imbalance, stall reasons, DRAM and L2 bytes per launch).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/device_out}"; mkdir -p "$OUT"
export CC=/usr/bin/gcc CXX=/usr/bin/g++          # docs/HARDWARE.md §5: the other g++ there breaks the extension
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export DG_JIT_CACHE_DIR="${DG_JIT_CACHE_DIR:-/tmp/dg_cache}" DG_SM120_MODE=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
STAGES="${1:-build,precompile,tests,upstream,bench}"; K="${2:-}"; BENCH="${3:-}"
has() { [[ ",$STAGES," == *",$1,"* ]]; }
stage_time() { local v="DG_CHECK_${1^^}_S"; echo "${!v:-$2}"; }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,utilization.gpu --format=csv > "$OUT/gpu.txt" 2>&1
TARGET=$(python3 -c "import torch; m, n = torch.cuda.get_device_capability(); print(f'sm_{m}{n}' + ('a' if m >= 9 else ''))")

if has build || [ -z "$(ls deep_gemm/_C*.so 2>/dev/null)" ]; then
    t0=$(date +%s)
    timeout "$(stage_time build 400)" python3 setup.py build_ext --inplace -j 16 > "$OUT/build.log" 2>&1 \
        || { tail -50 "$OUT/build.log"; echo "build: FAILED"; exit 1; }
    echo "build: $(( $(date +%s) - t0 )) s"
fi
if has precompile; then
    t0=$(date +%s)
    timeout "$(stage_time precompile 240)" python3 -m deep_gemm.jit --arch "$TARGET" --sm120-mode --jobs 16 \
        > "$OUT/precompile.log" 2>&1
    echo "precompile ($TARGET, SM120 mode): $(tail -1 "$OUT/precompile.log") [$(( $(date +%s) - t0 )) s]"
    grep -E "problems|spill|stack" "$OUT/precompile.log" | grep -v " ok$" | grep -v "^family" | head -20
fi
if has tests; then
    t0=$(date +%s)
    timeout "$(stage_time tests 300)" python3 -m pytest -m gpu -q -p no:cacheprovider -x --maxfail=30 \
        ${K:+-k "$K"} 2>&1 | tee "$OUT/gpu_tests.log" | grep -E "passed|failed|error|Error|^FAILED" | tail -40
    echo "gpu tests: $(( $(date +%s) - t0 )) s"
fi
if has upstream; then
    if [ -n "${DG_UPSTREAM_TESTS:-}" ] && [ -d "$DG_UPSTREAM_TESTS/main" ]; then
        t0=$(date +%s)
        mkdir -p /tmp/ul
        for suite in ${DG_UPSTREAM_SUITES:-main}; do
            timeout "$(stage_time upstream 300)" python3 benchmarks/upstream_suite.py "$DG_UPSTREAM_TESTS/$suite" \
                --timeout "${DG_UPSTREAM_FN_S:-150}" --mqa-cases "${DG_MQA_NUM_CASES:-8}" --log-dir /tmp/ul \
                $(for x in ${DG_UPSTREAM_ONLY:-}; do printf -- '--only %s ' "$x"; done) 2>&1 | tail -60
            cp /tmp/ul/*__all.log "$OUT/" 2>/dev/null
        done
        echo "upstream suite: $(( $(date +%s) - t0 )) s"
    else
        echo "upstream suite: skipped (DG_UPSTREAM_TESTS is not set to a folder holding main/)"
    fi
fi
if has lanes; then
    t0=$(date +%s)
    IFS='|' read -ra LANES <<< "${DG_LANES:-}"
    i=0
    for lane in "${LANES[@]}"; do
        i=$((i + 1))
        read -ra words <<< "$lane"
        [ "${#words[@]}" -gt 0 ] || continue
        if [ "${words[0]}" = pytest ]; then
            (timeout "$(stage_time lanes 400)" python3 -m pytest -m gpu -q -p no:cacheprovider "${words[@]:1}" \
                > "$OUT/lane$i.log" 2>&1; echo "lane $i rc=$?" >> "$OUT/lane$i.log") &
        else
            (timeout "$(stage_time lanes 400)" python3 benchmarks/upstream_suite.py "$DG_UPSTREAM_TESTS/${words[0]}" \
                --timeout "$(stage_time lanes 400)" --mqa-cases "${DG_MQA_NUM_CASES:-8}" --log-dir "/tmp/ul/lane$i" \
                $(for x in "${words[@]:1}"; do printf -- '--only %s ' "$x"; done) > "$OUT/lane$i.log" 2>&1
             echo "lane $i rc=$?" >> "$OUT/lane$i.log") &
        fi
    done
    wait
    for f in "$OUT"/lane*.log; do echo "== $f"; grep -E "PASS|FAIL|TIMEOUT|passed|failed|rc=" "$f" | tail -40; done
    echo "lanes: $(( $(date +%s) - t0 )) s"
fi
if has bench; then
    t0=$(date +%s)
    timeout "$(stage_time bench 300)" python3 -m deep_gemm.bench $BENCH 2>&1 | tee "$OUT/bench.log"
    echo "bench: $(( $(date +%s) - t0 )) s"
    # With `--json FILE` (and the model on): the time model's calibration against this run, as docs/PERF.md shows it
    json=$(echo "$BENCH" | sed -n 's/.*--json[ =]\([^ ]*\).*/\1/p')
    if [ -n "$json" ] && [ -f "$json" ]; then
        python3 -m deep_gemm.bench.model.markdown "$json" > "$OUT/calibration.md" 2>&1
        # rows whose printed (rounded) error is within 20%
        awk -F'|' -v f="$OUT/calibration.md" '$5 ~ /^ *[+-][0-9]+% *$/ { e = $5; gsub(/[ %+]/, "", e); e += 0; n++;
            if (e <= 20 && e >= -20) k++ } END { printf "calibration: %d of %d rows within 20%% (%s)\n", k, n, f }' \
            "$OUT/calibration.md"
    fi
fi
if [ "${NCU:-0}" = "1" ] && command -v ncu >/dev/null; then
    ncu --clock-control none --metrics dram__bytes_read.sum,dram__bytes_write.sum,gpu__time_duration.sum \
        -k regex:sm120_fp8_paged_mqa_logits python3 benchmarks/ncu_paged.py > "$OUT/ncu_paged.log" 2>&1
    grep -E "ideal|dram__bytes|gpu__time|==ERR" "$OUT/ncu_paged.log" | tail -12
fi
if [ "${NCU_GEMM:-0}" = "1" ] && command -v ncu >/dev/null; then
    stalls=""
    for r in barrier long_scoreboard short_scoreboard math_pipe_throttle wait mio_throttle; do
        stalls+=",smsp__average_warps_issue_stalled_${r}_per_issue_active.ratio"
    done
    DG_PRINT_CONFIGS=1 ncu --clock-control none -k regex:"sm120_(fp8|bf16)_gemm" --metrics "gpu__time_duration.sum,\
launch__grid_size,sm__cycles_active.avg,sm__cycles_active.max,dram__bytes_read.sum,lts__t_bytes.sum,\
lts__throughput.avg.pct_of_peak_sustained_elapsed$stalls" \
        python3 benchmarks/ncu_gemm.py --calls 1 --bf16 > "$OUT/ncu_gemm.log" 2>&1
    grep -E "deep_gemm:|M=|gpu__time|grid_size|cycles_active|dram__bytes|lts__|stalled|==ERR" \
        "$OUT/ncu_gemm.log" | head -300 > "$OUT/ncu_gemm_summary.txt"
    echo "ncu gemm: $(grep -c gpu__time "$OUT/ncu_gemm.log") launches profiled ($OUT/ncu_gemm_summary.txt)"
    # The BF16 4096^3 launch with every section (memory chart: L2 and shared-memory throughput, bank conflicts, pipes)
    ncu --clock-control none --set full -k regex:sm120_bf16_gemm --launch-count 1 \
        python3 benchmarks/ncu_gemm.py --calls 1 --bf16 --shape wqkv_a --m 1 > "$OUT/ncu_bf16_full.log" 2>&1
    echo "ncu bf16 (full set): $(grep -c "Section:" "$OUT/ncu_bf16_full.log") sections ($OUT/ncu_bf16_full.log)"
fi
