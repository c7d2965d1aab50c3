#pragma once

// NOTES: the mHC pre-norm GEMM is a stream over `a` (M x K bf16) with a small `b` (N <= 32 rows) re-read from L2
// by every M tile. One tiling serves every shape: 128-row tiles keep `b`'s L2 traffic at 4N / 256 of `a`'s
// (0.375x for N = 24), 64-wide K slices in a 4-stage cp.async pipeline keep 48 KB of `a` in flight per SM, and the
// whole pipeline (<= 96 KB) fits sm_120's 101376 B with one CTA per SM. The only per-call choice is how many
// internal K splits fill the GPU when M is small.

#include <algorithm>
#include <cmath>

#include "common.hpp"

namespace deep_gemm {

struct HcPrenormTiling {
    static constexpr int kBlockM = 128;
    static constexpr int kBlockK = 64;
    static constexpr int kNumStages = 4;
    static constexpr int kNumThreads = 256;
    static constexpr int kMaxN = 32;

    static int num_n_tiles(int n) { return (n + 7) / 8; }

    static int smem_bytes(int num_n_tiles) {
        return kNumStages * (kBlockM * kBlockK * 2 + num_n_tiles * 8 * kBlockK * 4);
    }

    // Floats of one workspace block (one CTA's partial): kBlockM x kBlockN products, then kBlockM square sums
    static int workspace_block_floats(int num_n_tiles) { return kBlockM * num_n_tiles * 8 + kBlockM; }
};

// How `b` is rounded to TF32. `a` is bf16, exact in TF32 either way. Measured on the H100 (torch 2.11, 2026-11-25,
// M=4096 N=24 K=16384): against torch's TF32 matmul, round-to-nearest (`cvt.rna.tf32.f32`) gives calc_diff 2.4e-11,
// truncation (low 13 mantissa bits cleared) 1.3e-7. So torch/cuBLAS rounds `b` to nearest: that is our default.
// tests/test_hc_prenorm_gemm.py measures both on the GPU and asserts that this default matches.
constexpr bool kHcDefaultRoundRNA = true;

struct HcPrenormPlan {
    int num_n_tiles = 0;
    int num_m_tiles = 0;
    int num_int_splits = 1;     // CTAs per (M tile, caller's split), summed in a fixed order in-kernel
    int smem_bytes = 0;
};

// `num_user_splits`: the caller's `num_splits` (1 when None). K / num_user_splits is a multiple of kBlockK.
inline HcPrenormPlan get_hc_prenorm_plan(const ArchSpec& arch, int m, int n, int k, int num_user_splits) {
    using T = HcPrenormTiling;
    HcPrenormPlan plan;
    plan.num_n_tiles = T::num_n_tiles(n);
    plan.num_m_tiles = (m + T::kBlockM - 1) / T::kBlockM;
    plan.smem_bytes = T::smem_bytes(plan.num_n_tiles);
    DG_HOST_ASSERT(plan.smem_bytes <= arch.smem_capacity);

    // One CTA per SM (the pipeline takes most of an SM's shared memory). Split K further while the grid is
    // smaller than the GPU, but not beyond the point where the last CTA's combine (reading every split's partial
    // of the tile) costs more than it saves: with main = bytes each split reads and combine = bytes per partial,
    // time ~ main / s + combine * s is smallest at s = sqrt(main / combine).
    const int kb_per_user = k / T::kBlockK / num_user_splits;
    const int ctas = plan.num_m_tiles * num_user_splits;
    const int by_sms = std::max(1, arch.num_sms / std::max(1, ctas));
    const int rows = std::min(m, T::kBlockM);
    const double main_bytes = (rows * 2.0 + n * 4.0) * (static_cast<double>(k) / num_user_splits);
    const double combine_bytes = rows * (plan.num_n_tiles * 8 + 1) * 4.0;
    const int by_cost = std::max(1, static_cast<int>(std::sqrt(main_bytes / combine_bytes)));
    plan.num_int_splits = std::max(1, std::min({by_sms, by_cost, kb_per_user}));
    return plan;
}

} // namespace deep_gemm
