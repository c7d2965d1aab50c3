#pragma once

// Warp-level `mma.sync` wrappers. Fragment layouts follow the PTX ISA ("Matrix fragments for mma.m16n8k32" etc.):
// for an m16n8 accumulator, lane l holds rows l/4 and l/4 + 8, columns 2*(l%4) and 2*(l%4) + 1.
//
// FP8 (e4m3 x e4m3 -> f32, m16n8k32) comes in two forms with bit-identical results:
//   - plain `mma.sync ... .e4m3.e4m3.f32`: native on sm_89/sm_120, emulated by ptxas on sm_90 (F16 conversions of
//     both operands, 2 HMMA), and half rate with FP32 accumulation on GeForce sm_120;
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
