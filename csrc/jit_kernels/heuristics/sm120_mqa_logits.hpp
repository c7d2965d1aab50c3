#pragma once

// Config choice for the ragged (prefill) FP8 MQA logits kernel (`impls/sm120_fp8_mqa_logits.cuh`), and the
// choice between the two FP8 `mma.sync` forms (SM120.md §1, §4).

#include <algorithm>
#include <string>

#include "../../utils/system.hpp"
#include "common.hpp"

namespace deep_gemm {

// Which FP8 MMA form a kernel uses. `DG_SM120_FP8_MMA=plain` forces the plain form everywhere; otherwise the
// block-scaled (full-rate) form is chosen wherever the target has it.
// NOTES: shared by every indexer family; the block-scaled form has not yet been validated on real SM120
// hardware, so the runtime cross-checks it against its plain twin once per configuration (see
// `kFp8BlockScaledValidatedOnHardware`).
inline bool choose_block_scaled_fp8_mma(const ArchSpec& arch) {
    const auto form = get_env("DG_SM120_FP8_MMA");
    DG_CHECK(form.empty() or form == "plain" or form == "block_scaled",
             "environment variable DG_SM120_FP8_MMA must be 'plain' or 'block_scaled'; got '", form, "'");
    return arch.block_scaled_mma and form != "plain";
}

struct RaggedMqaLogitsPlan {
    int num_heads = 0, head_dim = 0;
    bool block_scaled = false;
    int num_warps = 8;
    int block_k = 64;           // keys per pipeline stage
    int num_stages = 4;

    int queries_per_warp() const { return 64 / num_heads; }
    int block_q() const { return num_warps * queries_per_warp(); }
    int num_threads() const { return num_warps * 32; }
    int smem_bytes() const { return num_stages * (block_k * head_dim + block_k * 4) + 2 * block_q() * 4; }

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

inline RaggedMqaLogitsPlan plan_ragged_mqa_logits(const ArchSpec& arch, int num_heads, int head_dim,
                                                  bool block_scaled) {
    RaggedMqaLogitsPlan plan;
    plan.num_heads = num_heads, plan.head_dim = head_dim, plan.block_scaled = block_scaled;
    DG_HOST_ASSERT(plan.smem_bytes() <= arch.smem_capacity);
    return plan;
}

} // namespace deep_gemm
