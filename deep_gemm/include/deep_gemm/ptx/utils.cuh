#pragma once

// Warp-level helpers (lane / warp ids, shuffles) and the raw instruction wrappers of `ld_st.cuh`,
// `cp_async.cuh` and `mbarrier.cuh`. Everything here exists on sm_89, sm_90 and sm_120 alike.

#include "../common/types.cuh"
#include "cp_async.cuh"
#include "ld_st.cuh"
#include "mbarrier.cuh"

namespace deep_gemm::ptx {

DG_DEVICE uint32_t lane_id() { return threadIdx.x & 31; }
DG_DEVICE uint32_t warp_id() { return threadIdx.x >> 5; }

template <typename T>
DG_DEVICE T shfl_xor(T v, int mask) { return __shfl_xor_sync(0xffffffffu, v, mask); }

// One round of a reduce-scatter between lanes `lane` and `lane ^ kMask`: of each pair (in[2o], in[2o + 1]) this
// lane keeps element `bit` (its lane's bit of kMask) and adds the partner's copy of it; the partner keeps the other.
// Both lanes add in the same order, so the halves stay bitwise consistent.
template <int kMask, int kN>
DG_DEVICE void reduce_scatter_round(float (&out)[kN / 2], const float (&in)[kN], const int bit) {
    static_assert(kN % 2 == 0, "pairs");
    #pragma unroll
    for (int o = 0; o < kN / 2; ++o) {
        const float send = bit ? in[2 * o] : in[2 * o + 1];
        const float keep = bit ? in[2 * o + 1] : in[2 * o];
        out[o] = keep + shfl_xor(send, kMask);
    }
}

} // namespace deep_gemm::ptx
