#pragma once

// Config choice of the paged MQA logits kernel (`impls/sm120_fp8_paged_mqa_logits.cuh`): everything follows from
// (H, D, block_kv) and the ArchSpec; next_n, dtypes and page alignment are runtime arguments of one kernel.

#include <algorithm>

#include "common.hpp"
#include "../../utils/system.hpp"

namespace deep_gemm {

struct PagedMQALogitsHeuristics {
    static constexpr int kNumConsumerWarps = 8;
    static constexpr int kNumThreads = (kNumConsumerWarps + 1) * 32;    // + 1 producer warp
    static constexpr int kMaxNextN = 16;

    // One stage holds a page: block_kv * D key bytes, then block_kv float32 scales (128-byte aligned)
    static int stage_bytes(int head_dim, int block_kv) {
        return (block_kv * head_dim + block_kv * 4 + 127) / 128 * 128;
    }

    // Per stage: the page, a 16-byte header and two 8-byte mbarriers
    static int smem_bytes(int head_dim, int block_kv, int num_stages) {
        return num_stages * (stage_bytes(head_dim, block_kv) + 16 + 16);
    }

    // NOTES: about 64 KB of pages in flight covers DRAM latency on every target; never fewer than 2 stages
    static int num_stages(const ArchSpec& arch, int head_dim, int block_kv) {
        const int per_stage = stage_bytes(head_dim, block_kv) + 32;
        const int by_smem = (arch.smem_capacity - 1024) / per_stage;
        const int by_target = std::max(2, 96 * 1024 / per_stage);
        return std::max(2, std::min({16, by_smem, by_target}));
    }

    // The full-rate block-scaled FP8 form where it exists, unless `DG_SM120_FP8_MMA=plain`
    static bool want_block_scaled(const ArchSpec& arch) {
        return arch.block_scaled_mma and get_env("DG_SM120_FP8_MMA") != "plain";
    }
};

} // namespace deep_gemm
