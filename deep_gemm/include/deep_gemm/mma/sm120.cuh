#pragma once

// The MMA forms the SM120 GEMMs are built from, each behind one call (fragment layouts: mma.cuh):
//   - FP8 e4m3 m16n8k32: plain (`fp8_m16n8k32`, native on sm_89/sm_120, emulated by ptxas on sm_90, half rate with
//     FP32 accumulation on GeForce sm_120), block-scaled with unit scales (`fp8_m16n8k32_block_scaled`: the same
//     products at full rate, sm_120a/121a only), and block-scaled with real UE8M0 scales (`fp8_m16n8k32_scaled`,
//     the GEMMs' HW scale mode, sm_120a/121a only);
//   - BF16 m16n8k16 (`bf16_m16n8k16`), TF32 m16n8k8 (`tf32_m16n8k8`), FP4 (fp4.cuh).
// FP4 (e2m1) GEMM operands are widened to e4m3 in registers (`e2m1x8_to_e4m3x8`: exact, every e2m1 value is an
// e4m3 value) and multiplied with the FP8 forms, so one MMA path serves FP8 x FP8, FP8 x FP4 and FP4 x FP4.

#include "../common/types.cuh"
#include "fp4.cuh"
#include "mma.cuh"

namespace deep_gemm::mma {

// d += (a * 2^(sfa - 127)) * (b * 2^(sfb - 127)) for one 32-wide k slice, a / b / d as `fp8_m16n8k32`.
// Scale registers (PTX ISA "Block Scaling for mma.sync", scale_vec::1X, thread-id 0): byte kByteA of `sfa` in lane 4g
// is row g's UE8M0 scale, in lane 4g + 1 row g + 8's; byte kByteB of `sfb` in lane 4g is column g's. The other lanes'
// registers are ignored. The same lane assignment as the FP4 form of fp4.cuh, which is cross-checked against its
// portable twin before use (host side), like this one.
template <int kByteA = 0, int kByteB = 0>
DG_DEVICE void fp8_m16n8k32_scaled(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const uint32_t sfa,
                                   const uint32_t sfb) {
    static_assert(0 <= kByteA and kByteA < 4 and 0 <= kByteB and kByteB < 4, "a byte of the scale register");
#if DG_HAS_BLOCK_SCALED_MMA
    asm volatile("mma.sync.aligned.m16n8k32.row.col.kind::mxf8f6f4.block_scale.scale_vec::1X.f32.e4m3.e4m3.f32.ue8m0 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3}, %10, {%12, 0}, %11, {%13, 0};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(sfa), "r"(sfb),
                   "n"(kByteA), "n"(kByteB));
#else
    // Never reached: the host selects the HW scale mode only for sm_120a/sm_121a
    asm volatile("trap;");
#endif
}

// d = a * b (a fresh accumulator: C is zero), in the plain or the unit-scale block-scaled FP8 form
template <bool kBlockScaled>
DG_DEVICE void fp8_mma_fresh(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if DG_HAS_BLOCK_SCALED_MMA
    if constexpr (kBlockScaled) {
        constexpr uint32_t kUnitScales = 0x7f7f7f7fu;
        asm volatile("mma.sync.aligned.m16n8k32.row.col.kind::mxf8f6f4.block_scale.scale_vec::1X.f32.e4m3.e4m3.f32.ue8m0 "
                     "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%11, %11, %11, %11}, %10, {0, 0}, %10, {0, 0};"
                     : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(kUnitScales), "f"(0.0f));
        return;
    }
#endif
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %10, %10, %10};"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(0.0f));
}

// Eight packed e2m1 values (nibble i = element i, low nibble first) -> eight e4m3 bytes: `lo` holds elements 0..3,
// `hi` 4..7 (byte i = element i). Magnitudes through a byte table (prmt), signs through prmt's sign-replicate mode:
// the msb of byte j of `w` is the sign of element 2j + 1, that of `w << 4` the sign of element 2j.
DG_DEVICE void e2m1x8_to_e4m3x8(const uint32_t w, uint32_t& lo, uint32_t& hi) {
    // e4m3 bytes of the e2m1 magnitudes {0, 0.5, 1, 1.5, 2, 3, 4, 6}
    constexpr uint32_t kTable0 = 0x3c383000u, kTable1 = 0x4c484440u;
    const uint32_t mag = w & 0x77777777u;
    const uint32_t w4 = w << 4;
    const uint32_t sign_lo = fp4_detail::prmt(w, w4, 0x9d8cu), sign_hi = fp4_detail::prmt(w, w4, 0xbfaeu);
    lo = fp4_detail::prmt(kTable0, kTable1, mag) | (sign_lo & 0x80808080u);
    hi = fp4_detail::prmt(kTable0, kTable1, mag >> 16) | (sign_hi & 0x80808080u);
}

// A UE8M0 byte as the float 2^(s - 127) (s = 0: 2^-127, subnormal; s = 255: NaN)
DG_DEVICE float ue8m0_to_float(const uint32_t s) {
    return __uint_as_float(s == 0 ? 0x00400000u : (s == 255 ? 0x7fc00000u : s << 23));
}

} // namespace deep_gemm::mma
