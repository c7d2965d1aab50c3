#pragma once

// Deterministic split-K sums. The CTAs computing the K splits of one output tile each publish their partial tile to a
// workspace slot and count in on the tile's counter; the CTA that arrives last sums the slots in split order
// (0, 1, ..., S - 1: its own partial from registers, in its place) and finishes the tile. The counter only elects
// that CTA, and the order of the sum depends on the shape alone, so results are bitwise reproducible. The closer
// resets the counter, so counters are zero again when the kernel ends.
//
// Slots are fragment-native: float4 r of thread tid lives at (r * kNumThreads + tid) * 4 (coalesced, and each thread
// reads back exactly the positions it owns).

#include "../common/types.cuh"
#include "../ptx/ld_st.cuh"

namespace deep_gemm {

template <int kNumThreads, int kRegs>
struct SplitKReduce {
    static_assert(kRegs % 4 == 0, "whole float4s per thread");
    static constexpr int kSlotFloats = kNumThreads * kRegs;

    // Publish `acc` to `slot` and count in: true in the CTA that arrived last (the whole CTA agrees)
    DG_DEVICE static bool publish(float* slot, const float (&acc)[kRegs], uint32_t* counter, const int num_splits,
                                  const int tid) {
        #pragma unroll
        for (int r = 0; r < kRegs / 4; ++ r)
            ptx::st_cg_f4(slot + (r * kNumThreads + tid) * 4,
                          make_float4(acc[4 * r], acc[4 * r + 1], acc[4 * r + 2], acc[4 * r + 3]));
        // Every thread's stores are ordered before thread 0's release by the barrier; thread 0's acquire orders the
        // other splits' stores before the closer's loads, which follow the second barrier
        __syncthreads();
        int last = 0;
        if (tid == 0)
            last = ptx::atomic_add_acq_rel(counter, 1) == static_cast<uint32_t>(num_splits - 1);
        last = __syncthreads_or(last);
        if (last and tid == 0)
            *counter = 0;
        return last != 0;
    }

    // acc = the sum of the `num_splits` slots starting at `slots`, in split order (split `own` from `acc` itself)
    DG_DEVICE static void sum(float (&acc)[kRegs], const float* slots, const int num_splits, const int own,
                              const int tid) {
        float total[kRegs];
        #pragma unroll
        for (int i = 0; i < kRegs; ++ i)
            total[i] = 0.0f;
        for (int s = 0; s < num_splits; ++ s) {
            #pragma unroll
            for (int r = 0; r < kRegs / 4; ++ r) {
                float4 v;
                if (s == own)
                    v = make_float4(acc[4 * r], acc[4 * r + 1], acc[4 * r + 2], acc[4 * r + 3]);
                else
                    v = ptx::ld_cg_f4(slots + static_cast<int64_t>(s) * kSlotFloats + (r * kNumThreads + tid) * 4);
                total[4 * r] += v.x, total[4 * r + 1] += v.y, total[4 * r + 2] += v.z, total[4 * r + 3] += v.w;
            }
        }
        #pragma unroll
        for (int i = 0; i < kRegs; ++ i)
            acc[i] = total[i];
    }
};

} // namespace deep_gemm
