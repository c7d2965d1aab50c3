#pragma once

// Accumulator fragments to global memory. A warp's fragments cover kTM m16 tiles x kTN n8 tiles (mma.cuh layout: lane
// (g = lane / 4, t = lane % 4) holds rows g and g + 8, columns 2t and 2t + 1 of each tile). Each lane stores its
// column pairs with one 4-byte (bf16) or 8-byte (fp32) store, adding the matching pair of C first when there is one.

#include "../common/math.cuh"
#include "../common/types.cuh"

namespace deep_gemm {

DG_DEVICE uint32_t pack_bf16x2(const float lo, const float hi) {
    uint32_t r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

template <typename T>
DG_DEVICE float2 load_pair(const T* ptr) {
    if constexpr (is_bf16<T>::value) {
        const uint32_t v = *reinterpret_cast<const uint32_t*>(ptr);
        return make_float2(__uint_as_float(v << 16), __uint_as_float(v & 0xffff0000u));
    } else {
        return *reinterpret_cast<const float2*>(ptr);
    }
}

template <typename T>
DG_DEVICE void store_pair(T* ptr, const float lo, const float hi) {
    if constexpr (is_bf16<T>::value)
        *reinterpret_cast<uint32_t*>(ptr) = pack_bf16x2(lo, hi);
    else
        *reinterpret_cast<float2*>(ptr) = make_float2(lo, hi);
}

// Rows `row0 + ...` for which `row_ok(row)` holds are written, in the columns `cols[j]` of D (this lane's pair in n8
// tile j, already mapped by the caller: identity or skip_head_mid's gaps; -1 for a pair past N). The caller maps the
// kTN columns once per tile: mapped per element inside this fully unrolled loop, the mapping's integer divisions were
// half of the GEMM kernel's code (5000 of 10000 SASS instructions at 128 x 128; docs/PERF.md, the per-launch cost).
// `c` (the type of D, or null) may alias `d`.
template <int kTM, int kTN, typename OutT, typename RowOk>
DG_DEVICE void store_fragments(const float (&acc)[kTM][kTN][4], OutT* d, const int64_t ldd, const OutT* c,
                               const int64_t ldc, const int row0, const int (&cols)[kTN], const RowOk& row_ok,
                               const int lane) {
    const int g = lane >> 2;
    #pragma unroll
    for (int i = 0; i < kTM; ++ i) {
        #pragma unroll
        for (int h = 0; h < 2; ++ h) {
            const int row = row0 + i * 16 + h * 8 + g;
            if (not row_ok(row))
                continue;
            #pragma unroll
            for (int j = 0; j < kTN; ++ j) {
                if (cols[j] < 0)
                    continue;
                float lo = acc[i][j][2 * h], hi = acc[i][j][2 * h + 1];
                if (c != nullptr) {
                    const float2 cv = load_pair(c + row * ldc + cols[j]);
                    lo += cv.x, hi += cv.y;
                }
                store_pair(d + row * ldd + cols[j], lo, hi);
            }
        }
    }
}

} // namespace deep_gemm
