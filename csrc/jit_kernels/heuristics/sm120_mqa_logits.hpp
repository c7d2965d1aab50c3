#pragma once

// Config choice for the ragged (prefill) FP8 / FP4 MQA logits kernel (`impls/sm120_fp8_mqa_logits.cuh`), and the
// choice between the two FP8 `mma.sync` forms and the two FP4 forms (docs/HARDWARE.md §1, §4).

#include <algorithm>
#include <string>

#include "../../utils/system.hpp"
#include "common.hpp"

namespace deep_gemm {

struct RaggedMqaLogitsPlan {
    int num_heads = 0, head_dim = 0;
    bool fp4 = false;           // FP4 q and keys (packed e2m1 + UE8M0 scales), else FP8
    bool block_scaled = false;  // the sm_120a-only MMA form: block-scaled FP8, or native FP4
    int num_warps = 8;
    int block_k = 64;           // keys per pipeline stage
    int num_stages = 4;

    int queries_per_warp() const { return 64 / num_heads; }
    int block_q() const { return num_warps * queries_per_warp(); }
    int num_threads() const { return num_warps * 32; }
    int row_bytes() const { return fp4 ? head_dim / 2 : head_dim; }
    // Key tiles and their scales per stage, the query ranges, and (portable FP4) the weights
    int smem_bytes() const {
        return num_stages * (block_k * row_bytes() + block_k * 4) + 2 * block_q() * 4 +
               (fp4 and not block_scaled ? num_warps * 64 * 4 : 0);
    }

    // Split each query tile's key range over this many CTAs when query tiles alone cannot fill the GPU
    int num_splits(const ArchSpec& arch, int num_q, int num_k) const {
        const int num_tiles = std::max(1, (num_q + block_q() - 1) / block_q());
        const int target_ctas = 2 * std::max(1, arch.num_sms);
        const int by_fill = (target_ctas + num_tiles - 1) / num_tiles;
        const int by_keys = std::max(1, (num_k + block_k - 1) / block_k);
        return std::clamp(std::min(by_fill, by_keys), 1, 64);
    }
};

inline constexpr int kRaggedHeads[] = {8, 16, 32, 64};
inline constexpr int kRaggedHeadDims[] = {32, 64, 128};
inline constexpr int kRaggedFp4HeadDims[] = {64, 128};

// NOTES: FP4 tiles hold 128 keys (half the bytes per key, so the same 8 KB per stage as FP8 at D = 128, and half
// as many barriers per key)
inline RaggedMqaLogitsPlan plan_ragged_mqa_logits(const ArchSpec& arch, int num_heads, int head_dim,
                                                  bool block_scaled, bool fp4 = false) {
    RaggedMqaLogitsPlan plan;
    plan.num_heads = num_heads, plan.head_dim = head_dim, plan.block_scaled = block_scaled, plan.fp4 = fp4;
    if (fp4)
        plan.block_k = 128;
    DG_HOST_ASSERT(plan.smem_bytes() <= arch.smem_capacity);
    return plan;
}

} // namespace deep_gemm
