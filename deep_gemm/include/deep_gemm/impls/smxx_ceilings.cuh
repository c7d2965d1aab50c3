#pragma once

// Micro-kernels that measure this GPU's ceilings in the same run as the real kernels (docs/HARDWARE.md §3):
// a streaming read, a streaming write, and FP8 / TF32 / BF16 `mma.sync` loops with independent accumulators.

#include "../common/types.cuh"
#include "../mma/mma.cuh"

namespace deep_gemm {

// Reads `num_vec` 16-byte vectors once; the xor-sum is stored only if it hits an impossible value, so the loads stay
template <int kNumThreads>
DG_DEVICE void smxx_ceiling_read_impl(const uint4* data, const int64_t num_vec, uint32_t* sink) {
    uint32_t acc = 0;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * kNumThreads;
    int64_t i = static_cast<int64_t>(blockIdx.x) * kNumThreads + threadIdx.x;
    #pragma unroll 4
    for (; i < num_vec; i += stride) {
        uint4 v;
        asm volatile("ld.global.cs.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(data + i));
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x9e3779b9u)
        sink[0] = acc;
}

template <int kNumThreads>
DG_DEVICE void smxx_ceiling_write_impl(uint4* data, const int64_t num_vec, const uint32_t value) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * kNumThreads;
    const uint4 v = make_uint4(value, value, value, value);
    #pragma unroll 4
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * kNumThreads + threadIdx.x; i < num_vec; i += stride)
        asm volatile("st.global.cs.v4.u32 [%0], {%1, %2, %3, %4};" :: "l"(data + i), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w));
}

// kKind: 0 = FP8 m16n8k32 plain, 1 = FP8 block-scaled (sm_120a/121a only), 2 = TF32 m16n8k8, 3 = BF16 m16n8k16
// (the portable FP4 form's MMA).
// NOTES: every accumulator gets its own A operand and A changes every iteration (as keys do in the indexer), so
// ptxas can neither merge the products nor hoist sm_90's FP8 -> F16 conversions out of the loop; B stays fixed
// (as the queries do). The xor costs one logic op per register, small beside an MMA.
template <int kKind, int kNumAccum>
DG_DEVICE void smxx_ceiling_mma_impl(const int num_iters, const uint32_t seed, float* sink) {
    // Operands differ per thread and are unknown to the compiler; small magnitudes keep the sums finite
    const uint32_t x = (seed ^ (threadIdx.x * 0x9e3779b9u)) & 0x3b3b3b3bu;
    const uint32_t mask = kKind == 2 ? 0x00006000u : 0x01010101u;
    uint32_t b[2] = {x ^ 0x04040404u, x ^ 0x05050505u};
    if constexpr (kKind == 2) {
        #pragma unroll
        for (int i = 0; i < 2; ++ i) b[i] = (b[i] & 0x007fe000u) | 0x3c000000u;
    }
    uint32_t a[kNumAccum][4];
    #pragma unroll
    for (int j = 0; j < kNumAccum; ++ j) {
        #pragma unroll
        for (int i = 0; i < 4; ++ i) {
            a[j][i] = x ^ (0x01020304u * (j * 4 + i + 1));
            if constexpr (kKind == 2) a[j][i] = (a[j][i] & 0x007fe000u) | 0x3c000000u;
            else a[j][i] &= 0x3b3b3b3bu;   // FP8: small e4m3 bytes; BF16: two values near 2^-9
        }
    }
    float acc[kNumAccum][4] = {};
    for (int it = 0; it < num_iters; ++ it) {
        const uint32_t flip = (it & 1) ? mask : 0u;
        #pragma unroll
        for (int j = 0; j < kNumAccum; ++ j) {
            #pragma unroll
            for (int i = 0; i < 4; ++ i) a[j][i] ^= flip;
            if constexpr (kKind == 0) mma::fp8_m16n8k32(acc[j], a[j], b);
            if constexpr (kKind == 1) mma::fp8_m16n8k32_block_scaled(acc[j], a[j], b);
            if constexpr (kKind == 2) mma::tf32_m16n8k8(acc[j], a[j], b);
            if constexpr (kKind == 3) mma::bf16_m16n8k16(acc[j], a[j], b);
        }
    }
    float total = 0;
    #pragma unroll
    for (int j = 0; j < kNumAccum; ++ j)
        total += acc[j][0] + acc[j][1] + acc[j][2] + acc[j][3];
    if (total == 1.2345f)
        sink[0] = total;
}

} // namespace deep_gemm
