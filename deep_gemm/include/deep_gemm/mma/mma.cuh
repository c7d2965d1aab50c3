#pragma once

// Warp-level `mma.sync` wrappers. Fragment layouts follow the PTX ISA ("Matrix fragments for mma.m16n8k32" etc.):
// for an m16n8 accumulator, lane l holds rows l/4 and l/4 + 8, columns 2*(l%4) and 2*(l%4) + 1.
//
// FP8 (e4m3 x e4m3 -> f32, m16n8k32) comes in three forms (the plain and block-scaled ones bit-identical):
//   - plain `mma.sync ... .e4m3.e4m3.f32`: native on sm_89/sm_120, emulated on sm_90 (F16 convert + 2 HMMA), and
//     half rate with FP32 accumulation on GeForce sm_120;
//   - through F16 (`split_fp8_a/b` + 2 `f16_m16n8k16`): sm_90's best mma.sync route (the plain form's emulation
//     converts both operands per MMA and adds each partial with FADDs); same products, FP32 accumulation, so
//     results agree with the other forms to rounding, not bitwise;
//   - block-scaled `kind::mxf8f6f4 ... scale_vec::1X ... .ue8m0` with every scale 2^0: full rate on sm_120a/121a,
//     and only there (docs/HARDWARE.md §1).

#include "../common/types.cuh"

#if defined(__CUDA_ARCH_FEAT_SM120_ALL) or defined(__CUDA_ARCH_FEAT_SM121_ALL)
#define DG_HAS_BLOCK_SCALED_MMA 1
#else
#define DG_HAS_BLOCK_SCALED_MMA 0
#endif

namespace deep_gemm::mma {

// d += a * b, a: 16x32 e4m3 (4 regs), b: 32x8 e4m3 (2 regs), d: 16x8 f32 (4 regs)
DG_DEVICE void fp8_m16n8k32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// The same product through the block-scaled instruction with unit (2^0 = 127) scales
DG_DEVICE void fp8_m16n8k32_block_scaled(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if DG_HAS_BLOCK_SCALED_MMA
    constexpr uint32_t kUnitScales = 0x7f7f7f7fu;
    asm volatile("mma.sync.aligned.m16n8k32.row.col.kind::mxf8f6f4.block_scale.scale_vec::1X.f32.e4m3.e4m3.f32.ue8m0 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3}, %10, {0, 0}, %10, {0, 0};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(kUnitScales));
#else
    // Never reached: the host only selects the block-scaled form for sm_120a/sm_121a
    asm volatile("trap;");
#endif
}

template <bool kBlockScaled>
DG_DEVICE void fp8_mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    if constexpr (kBlockScaled)
        fp8_m16n8k32_block_scaled(d, a, b);
    else
        fp8_m16n8k32(d, a, b);
}

// d += a * b, bf16 m16n8k16: a 4 regs, b 2 regs
DG_DEVICE void bf16_m16n8k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// d += a * b, f16 m16n8k16: a 4 regs, b 2 regs (f16x2)
DG_DEVICE void f16_m16n8k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Two e4m3 bytes (byte `kHalf * 2` and `kHalf * 2 + 1` of `x`) -> f16x2 (exact: f16 holds every e4m3 value), the
// lower byte in the lower half (sm_89+)
template <int kHalf>
DG_DEVICE uint32_t e4m3x2_to_f16x2(const uint32_t x) {
    uint32_t r;
    if constexpr (kHalf == 0)
        asm("{ .reg .b16 lo, hi;\n mov.b32 {lo, hi}, %1;\n cvt.rn.f16x2.e4m3x2 %0, lo; }" : "=r"(r) : "r"(x));
    else
        asm("{ .reg .b16 lo, hi;\n mov.b32 {lo, hi}, %1;\n cvt.rn.f16x2.e4m3x2 %0, hi; }" : "=r"(r) : "r"(x));
    return r;
}

// FP8 m16n8k32 through F16 (the sm_90 form): the fragment bytes of one m16n8k32 step split into two f16 m16n8k16
// steps. Fragment register i of A (row g or g + 8, bytes 4t..4t+3 or 16+4t..) and of B hold the same k positions,
// so the low byte pairs of every register form one k16 step and the high pairs the other (the order of k inside a
// dot product is free). `split_a` / `split_b` convert once; callers share the results across MMAs.
DG_DEVICE void split_fp8_a(uint32_t (&lo)[4], uint32_t (&hi)[4], const uint32_t (&a)[4]) {
    #pragma unroll
    for (int i = 0; i < 4; ++i)
        lo[i] = e4m3x2_to_f16x2<0>(a[i]), hi[i] = e4m3x2_to_f16x2<1>(a[i]);
}

DG_DEVICE void split_fp8_b(uint32_t (&lo)[2], uint32_t (&hi)[2], const uint32_t (&b)[2]) {
    #pragma unroll
    for (int i = 0; i < 2; ++i)
        lo[i] = e4m3x2_to_f16x2<0>(b[i]), hi[i] = e4m3x2_to_f16x2<1>(b[i]);
}

// d += a * b, tf32 m16n8k8: a 4 regs (tf32 bit patterns), b 2 regs
DG_DEVICE void tf32_m16n8k8(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// f32 -> tf32 with round-to-nearest (ties away), as cuBLAS/torch's TF32 mode does
DG_DEVICE uint32_t to_tf32(float x) {
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

} // namespace deep_gemm::mma
