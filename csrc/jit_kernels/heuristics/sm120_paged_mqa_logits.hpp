#pragma once

// Config choice of the paged MQA logits kernel (`impls/sm120_fp8_paged_mqa_logits.cuh`): everything follows from
// (dtype, H, D, block_kv) and the ArchSpec; next_n, dtypes of weights / logits and page alignment are runtime
// arguments of one kernel.

#include <algorithm>
#include <string>

#include "common.hpp"
#include "../../utils/exception.hpp"

namespace deep_gemm {

struct PagedMQALogitsHeuristics {
    static constexpr int kMaxNextN = 16;

    // The warp layout (fixed in the kernel: keep these in step with `sm120_fp8_paged_mqa_logits_impl`): 4 consumer
    // warps of 2 m-tiles (16 keys each) plus one producer warp. 5 warps allow up to 255 registers (9 would cap
    // them at 168); with H = 64 two m-tiles give 16 independent accumulator chains, each q fragment feeding two
    // MMAs. Measured on the H100 (SM120 mode, B=64 ctx=64K n=1, the plain FP8 form; docs/PERF.md, "Design
    // measurements"): 482.7 us; 1 m-tile on 8 warps was slower on every shape (515.2 us), 2 m-tiles on 8 warps
    // (465.8 us) tied it on the other shapes and spills on sm_90a.
    static constexpr int kNumConsumerWarps = 4;
    static constexpr int kNumThreads = (kNumConsumerWarps + 1) * 32;

    // One stage holds a page: block_kv key rows of `row_bytes` (D for FP8, D / 2 for FP4), then block_kv 4-byte
    // scales (128-byte aligned)
    static int stage_bytes(int row_bytes, int block_kv) {
        return (block_kv * row_bytes + block_kv * 4 + 127) / 128 * 128;
    }

    // Portable FP4 keeps q dequantized (bf16) in shared memory, loading B fragments by ldmatrix, for H = 64, D = 128
    // (the production shape; measured on the H100, B=64 ctx=64K n=1: 464.3 us, vs 1136.2 us dequantizing q's
    // registers per m-group). Other shapes and the native form keep q's raw bytes in registers.
    static bool fp4_q_smem(int num_heads, int head_dim, bool native) {
        return not native and num_heads == 64 and head_dim == 128;
    }

    // Shared memory of the portable FP4 form's q regions: one per consumer warp, H rows of D bf16 values
    static int q_smem_bytes(int num_heads, int head_dim) { return kNumConsumerWarps * num_heads * head_dim * 2; }

    // Per stage: the page, a 16-byte header and two 8-byte mbarriers (the barrier block 128-byte aligned when a
    // q region follows it)
    static int smem_bytes(int row_bytes, int block_kv, int num_stages, int q_bytes = 0) {
        if (q_bytes == 0)
            return num_stages * (stage_bytes(row_bytes, block_kv) + 16 + 16);
        return num_stages * stage_bytes(row_bytes, block_kv) + (num_stages * 32 + 127) / 128 * 128 + q_bytes;
    }

    // NOTES: about 96 KB of pages in flight covers DRAM latency on every target; never fewer than 2 stages.
    // `reserved`: other shared memory (the q regions)
    static int num_stages(const ArchSpec& arch, int row_bytes, int block_kv, int reserved = 0) {
        const int per_stage = stage_bytes(row_bytes, block_kv) + 32;
        const int by_smem = (arch.smem_capacity - 1024 - reserved) / per_stage;
        const int by_target = std::max(2, 96 * 1024 / per_stage);
        return std::max(2, std::min({16, by_smem, by_target}));
    }
};

} // namespace deep_gemm
