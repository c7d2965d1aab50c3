#pragma once

// NOTES: the mHC pre-norm GEMM is a stream over `a` (M x K bf16) with a small `b` (N <= 32 rows) re-read from L2
// by every M tile. One tiling serves every shape: 128-row tiles keep `b`'s L2 traffic at 4N / 256 of `a`'s
// (0.375x for N = 24), 64-wide K slices in a 4-stage cp.async pipeline keep 48 KB of `a` in flight per SM, and the
// whole pipeline (<= 96 KB) fits sm_120's 101376 B with one CTA per SM. The per-call choices (runtime arguments,
// no extra kernels): how many internal K splits fill the GPU when M is small, and whether their sum is one- or
// two-level (see get_hc_prenorm_plan). Every M tile's K order is rotated by the kernel itself.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>

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

// The K blocks [first, last) of caller's split `u` of `num_user_splits` over `num_k_blocks` blocks: the kernel's
// partition (sm120_tf32_hc_prenorm_gemm.cuh computes the same on the device), here for the plan and its tests
inline std::pair<int64_t, int64_t> hc_user_split_blocks(int64_t num_k_blocks, int64_t num_user_splits, int64_t u) {
    return {u * num_k_blocks / num_user_splits, (u + 1) * num_k_blocks / num_user_splits};
}

struct HcPrenormPlan {
    int num_n_tiles = 0;
    int num_m_tiles = 0;
    int num_int_splits = 1;     // CTAs per (M tile, caller's split), summed in a fixed order in-kernel
    int group_size = 1;         // splits per level-1 group of the in-kernel sum (== num_int_splits: one level)
    int smem_bytes = 0;

    int num_groups() const { return (num_int_splits + group_size - 1) / group_size; }
};

// The split count comes from a latency/bandwidth cost model, with a two-level sum tree where it pays.
// NOTES: the alternatives it replaced measured slower or tied on the H100 (SM120 mode, N=24 K=16384, this plan /
// the first heuristic (split count = min(SMs / CTAs, sqrt(main / combine bytes)), one-level sum, no K rotation) /
// this plan without the K rotation; docs/PERF.md, "Design measurements"): M=1 8.9 / 9.4 / 8.9 us,
// M=64 14.9 / 19.5 / 14.9 us, M=4096 68.8 / 69.8 / 69.2 us, M=16384 247.2 / 248.5 / 247.5 us.
// The constants were then fitted to a sweep of split counts and sum shapes (docs/PERF.md, tf32_hc_prenorm_gemm,
// item 3; the per-CTA timeline tool it used is retired): a CTA streams at most (kNumStages - 1) stages per ~3 us under load
// (not per 1 us), and a closer reads partials from L2 at ~5e4 bytes/us (not 1e5). Kernel time (first CTA start to
// last CTA end), old plan -> this plan: M=256 17.4 -> 15.5 us (20 -> 64 splits), M=512 24.8 -> 16.1 us (10 -> 32),
// M=1024 29.1 -> 21.1 us (8 -> 16), M=2048 49.7 -> 30.6 us (4 -> 8), M=7 10.4 -> 9.5 us (two-level sum);
// M=1, 64, 128 and >= 4096 unchanged or within 0.1 us.
// `num_user_splits`: the caller's `num_splits` (1 when None), any count >= 1. K is a multiple of kBlockK; caller's
// split u owns K blocks [floor(u * nb / S), floor((u + 1) * nb / S)) of nb = K / kBlockK (hc_user_split_blocks), so
// the splits own kb_min or kb_min + 1 blocks (kb_min = 0 when S > nb: those splits write zeros).
inline HcPrenormPlan get_hc_prenorm_plan(const ArchSpec& arch, int m, int n, int k, int num_user_splits) {
    using T = HcPrenormTiling;
    HcPrenormPlan plan;
    plan.num_n_tiles = T::num_n_tiles(n);
    plan.num_m_tiles = (m + T::kBlockM - 1) / T::kBlockM;
    plan.smem_bytes = T::smem_bytes(plan.num_n_tiles);
    DG_HOST_ASSERT(plan.smem_bytes <= arch.smem_capacity);
    DG_HOST_ASSERT(k % T::kBlockK == 0 and num_user_splits >= 1);

    // The internal split count is one per launch: it must leave every internal split of the smallest caller's split
    // at least two blocks (kb_min), and the time is that of the largest (kb_per_user)
    const int num_k_blocks = k / T::kBlockK;
    const int kb_min = num_k_blocks / num_user_splits;
    const int kb_per_user = (num_k_blocks + num_user_splits - 1) / num_user_splits;
    const int64_t ctas = static_cast<int64_t>(plan.num_m_tiles) * num_user_splits;
    const int by_sms = static_cast<int>(std::max<int64_t>(1, arch.num_sms / std::max<int64_t>(1, ctas)));
    const int rows = std::min(m, T::kBlockM);
    const double partial_bytes = rows * (plan.num_n_tiles * 8 + 1) * 4.0;

    // Cost model (microseconds) of one split count s, one CTA per SM:
    //   main: first-byte latency + this CTA's bytes at its share of DRAM bandwidth, capped by what its pipeline
    //         keeps in flight (kNumStages - 1 stages per loaded round trip);
    //   sum:  per level, an election/first-load latency + the partials its closer reads from L2.
    // Rough constants (about H100 / RTX 5090 class, fitted on the H100: see NOTES); only the shape of the curve
    // matters.
    constexpr double kLatencyUs = 1.0, kRoundTripUs = 3.0, kSyncUs = 0.8, kDramBytesPerUs = 2.5e6,
                     kL2BytesPerUsPerSm = 5.0e4;
    const double active_rows = std::min(T::kBlockM, (rows + 31) / 32 * 32);
    const double stage_bytes = std::min<double>(rows, active_rows) * T::kBlockK * 2.0 + n * T::kBlockK * 4.0;
    const int max_splits = std::max(1, std::min(by_sms, kb_min / 2));
    double best = 0;
    for (int s = 1; s <= max_splits; ++s) {
        const int stages = (kb_per_user + s - 1) / s;
        const double rate = std::min(kDramBytesPerUs / (static_cast<double>(ctas) * s),
                                     (T::kNumStages - 1) * stage_bytes / kRoundTripUs);
        const double t_main = kLatencyUs + stages * stage_bytes / rate;
        double t_sum = 0;
        int group = s;
        if (s > 1) {
            const double flat = kSyncUs + s * partial_bytes / kL2BytesPerUsPerSm;
            const int g = std::max(2, static_cast<int>(std::ceil(std::sqrt(static_cast<double>(s)))));
            const double tree = 2 * kSyncUs + (g + (s + g - 1) / g) * partial_bytes / kL2BytesPerUsPerSm;
            t_sum = flat;
            if (g < s and tree < flat)
                t_sum = tree, group = g;
        }
        const double t = t_main + t_sum;
        // Ties (within 1%) go to more splits: more CTAs hide more latency than the model knows
        if (s == 1 or t <= best * 1.01) {
            best = std::min(best == 0 ? t : best, t);
            plan.num_int_splits = s, plan.group_size = group;
        }
    }
    return plan;
}

} // namespace deep_gemm
