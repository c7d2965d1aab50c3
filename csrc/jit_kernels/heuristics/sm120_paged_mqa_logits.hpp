#pragma once

// Config choice of the paged MQA logits kernel (`impls/sm120_fp8_paged_mqa_logits.cuh`): everything follows from
// (dtype, H, D, block_kv), the ArchSpec and one A/B knob; next_n, dtypes of weights / logits and page alignment
// are runtime arguments of one kernel.

#include <algorithm>
#include <string>
#include <vector>

#include "common.hpp"
#include "../../utils/exception.hpp"
#include "../../utils/system.hpp"

namespace deep_gemm {

// The warp layout of the consumers: m-tiles (16 keys) per warp and consumer warps (plus one producer warp)
struct PagedWarpLayout {
    int m_per_warp = 2;
    int consumer_warps = 4;

    int num_threads() const { return (consumer_warps + 1) * 32; }
    const char* name() const { return consumer_warps == 4 ? (m_per_warp == 2 ? "w4m2" : "w4m1")
                                                          : (m_per_warp == 2 ? "w8m2" : "w8m1"); }
};

struct PagedMQALogitsHeuristics {
    static constexpr int kMaxNextN = 16;

    // One stage holds a page: block_kv key rows of `row_bytes` (D for FP8, D / 2 for FP4), then block_kv 4-byte
    // scales (128-byte aligned)
    static int stage_bytes(int row_bytes, int block_kv) {
        return (block_kv * row_bytes + block_kv * 4 + 127) / 128 * 128;
    }

    // Shared memory of the kernel's q regions (portable FP4 with q in shared memory): per consumer warp, H rows of
    // D bf16
    static int q_smem_bytes(int num_heads, int head_dim, int consumer_warps) {
        return consumer_warps * num_heads * head_dim * 2;
    }

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

    // The default layout: 2 m-tiles per warp (16 independent accumulator chains for H = 64, each q fragment feeding
    // two MMAs) on 4 consumer warps (5 warps in all, so up to 255 registers: 9 warps would cap them at 168)
    static PagedWarpLayout default_layout() { return {2, 4}; }

    // The A/B knob `DG_PAGED_MQA_VARIANT` = w4m2 (default) | w8m1 (the previous layout: 1 m-tile on 8 consumer
    // warps) | w8m2. NOTES: it applies to the H = 64, D = 128 configs only (the production shape), and those
    // are the ones enumerated for compile-only CI.
    static bool variant_applies(int num_heads, int head_dim) { return num_heads == 64 and head_dim == 128; }

    static PagedWarpLayout layout(int num_heads, int head_dim) {
        const auto v = get_env("DG_PAGED_MQA_VARIANT");
        if (v.empty() or not variant_applies(num_heads, head_dim))
            return default_layout();
        if (v == "w4m2") return {2, 4};
        if (v == "w8m1") return {1, 8};
        if (v == "w8m2") return {2, 8};
        DG_CHECK(false, "environment variable DG_PAGED_MQA_VARIANT must be unset, 'w4m2', 'w8m1' or 'w8m2'; got '",
                 v, "'");
        return default_layout();
    }

    static std::vector<PagedWarpLayout> ab_layouts() { return {{1, 8}, {2, 8}}; }

    // Portable FP4: q dequantized once per row into shared memory, B fragments by ldmatrix (default; H = 64,
    // D = 128 only, enumerated for CI), or per m-group from raw registers (`DG_PAGED_FP4_VARIANT=regs`).
    // Measured on the H100 (2026-11-25, B=64 ctx=64K n=1): smem 460.6 us, regs 1132.4 us.
    static bool fp4_q_smem(int num_heads, int head_dim, bool native) {
        const auto v = get_env("DG_PAGED_FP4_VARIANT");
        DG_CHECK(v.empty() or v == "regs" or v == "smem",
                 "environment variable DG_PAGED_FP4_VARIANT must be unset, 'regs' or 'smem'; got '", v, "'");
        return v != "regs" and not native and variant_applies(num_heads, head_dim);
    }

    // FP4: the default layout (the native form needs no more registers than FP8; the portable form dequantizes
    // q per m-group, so two m-tiles share that work)
    static PagedWarpLayout fp4_layout(int num_heads, int head_dim, bool native) {
        (void) num_heads, (void) head_dim, (void) native;
        return default_layout();
    }

    // The FP4 MMA form: native m16n8k64 where the target has it, unless `DG_SM120_FP4_MMA=portable`
    static bool want_native_fp4(const ArchSpec& arch) {
        const auto form = get_env("DG_SM120_FP4_MMA");
        DG_CHECK(form.empty() or form == "portable" or form == "native",
                 "environment variable DG_SM120_FP4_MMA must be 'portable' or 'native'; got '", form, "'");
        return arch.block_scaled_mma and form != "portable";
    }
};

} // namespace deep_gemm
