#pragma once

// NOTES: the mHC pre-norm GEMM is a stream over `a` (M x K bf16) with a small `b` (N <= 32 rows) re-read from L2
// by every M tile. One tiling serves every shape: 128-row tiles keep `b`'s L2 traffic at 4N / 256 of `a`'s
// (0.375x for N = 24); 32-wide K slices in a 4-stage cp.async pipeline take <= 48 KB of shared memory, and the
// kernel is built for <= 128 registers at 256 threads, so two CTAs share an SM on sm_120 (2 x 49 KB of 100 KB) and
// on Hopper/Ada alike: while one CTA waits at its barrier the other keeps loads in flight.
// (The first design, 64-wide slices in 90 KB with 208 registers, ran one CTA per SM: 69-76% of the H100's read
// bandwidth at M >= 4096.) The per-call choice (a runtime argument, no extra kernels): how many internal K splits
// fill the GPU's CTA slots, and whether their in-kernel sum is one- or two-level (see get_hc_prenorm_plan).

#include <algorithm>
#include <cmath>

#include "common.hpp"

namespace deep_gemm {

struct HcPrenormTiling {
    static constexpr int kBlockM = 128;
    static constexpr int kBlockK = 32;
    static constexpr int kNumStages = 4;
    static constexpr int kNumThreads = 256;
    static constexpr int kMinBlocksPerSm = 2;   // __launch_bounds__ minimum: caps registers at 128
    static constexpr int kMaxN = 32;
    static constexpr int kKAlign = 64;          // K (and K / num_splits) must be a multiple of this (the API's rule)

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
    int group_size = 1;         // splits per level-1 group of the in-kernel sum (== num_int_splits: one level)
    int smem_bytes = 0;

    int num_groups() const { return (num_int_splits + group_size - 1) / group_size; }
};

// Level-1 group size for `s` splits: one level, or about sqrt(s) groups of about sqrt(s) when the model says a
// two-level tree is faster. Rough constants (about H100 / RTX 5090 class); only the shape of the curve matters.
constexpr double kHcLatencyUs = 1.0, kHcSyncUs = 0.8, kHcDramBytesPerUs = 2.5e6, kHcL2BytesPerUsPerSm = 1.0e5;

inline int hc_prenorm_group_size(int s, double partial_bytes, double* t_sum = nullptr) {
    if (s <= 1) {
        if (t_sum)
            *t_sum = 0;
        return 1;
    }
    const double flat = kHcSyncUs + s * partial_bytes / kHcL2BytesPerUsPerSm;
    const int g = std::max(2, static_cast<int>(std::ceil(std::sqrt(static_cast<double>(s)))));
    const double tree = 2 * kHcSyncUs + (g + (s + g - 1) / g) * partial_bytes / kHcL2BytesPerUsPerSm;
    const bool use_tree = g < s and tree < flat;
    if (t_sum)
        *t_sum = use_tree ? tree : flat;
    return use_tree ? g : s;
}

// `num_user_splits`: the caller's `num_splits` (1 when None); K / num_user_splits is a multiple of kKAlign.
// `forced_splits` > 0 forces the internal split count (clamped to one K slice per split): DG_HC_SPLITS, for
// benchmarks comparing split counts.
inline HcPrenormPlan get_hc_prenorm_plan(const ArchSpec& arch, int m, int n, int k, int num_user_splits,
                                         int forced_splits = 0) {
    using T = HcPrenormTiling;
    HcPrenormPlan plan;
    plan.num_n_tiles = T::num_n_tiles(n);
    plan.num_m_tiles = (m + T::kBlockM - 1) / T::kBlockM;
    plan.smem_bytes = T::smem_bytes(plan.num_n_tiles);
    DG_HOST_ASSERT(plan.smem_bytes <= arch.smem_capacity);

    const int kb_per_user = k / T::kBlockK / num_user_splits;
    const int ctas = plan.num_m_tiles * num_user_splits;
    const int rows = std::min(m, T::kBlockM);
    const double partial_bytes = rows * (plan.num_n_tiles * 8 + 1) * 4.0;
    if (forced_splits > 0) {
        plan.num_int_splits = std::min({forced_splits, kb_per_user, 65535});
        plan.group_size = hc_prenorm_group_size(plan.num_int_splits, partial_bytes);
        return plan;
    }

    // Cost model (microseconds) of one split count s, over the GPU's CTA slots (kMinBlocksPerSm per SM):
    //   main: first-byte latency + this CTA's bytes at its share of DRAM bandwidth, capped by what its pipeline
    //         keeps in flight (kNumStages - 1 slices per latency);
    //   sum:  per level, a fence/counter/first-load latency + the partials its closer reads from L2.
    // s is at most the number of splits that fills every slot once (more would run a second wave) and leaves
    // every split at least kNumStages slices. Ties (within 1%) go to more splits: more CTAs hide more latency
    // than the model knows.
    const int slots = arch.num_sms * T::kMinBlocksPerSm;
    const int by_slots = std::max(1, slots / std::max(1, ctas));
    const int max_splits = std::max(1, std::min(by_slots, kb_per_user / T::kNumStages));
    const double active_rows = std::min(T::kBlockM, (rows + 15) / 16 * 16);
    const double stage_bytes = std::min<double>(rows, active_rows) * T::kBlockK * 2.0 + n * T::kBlockK * 4.0;
    double best = 0;
    for (int s = 1; s <= max_splits; ++s) {
        const int stages = (kb_per_user + s - 1) / s;
        const double rate = std::min(kHcDramBytesPerUs / (static_cast<double>(ctas) * s),
                                     (T::kNumStages - 1) * stage_bytes / kHcLatencyUs);
        const double t_main = kHcLatencyUs + stages * stage_bytes / rate;
        double t_sum = 0;
        const int group = hc_prenorm_group_size(s, partial_bytes, &t_sum);
        const double t = t_main + t_sum;
        if (s == 1 or t <= best * 1.01) {
            best = std::min(best == 0 ? t : best, t);
            plan.num_int_splits = s, plan.group_size = group;
        }
    }
    return plan;
}

} // namespace deep_gemm
