#pragma once

// One warp-level FP4 tile product, D[16x8] += (A * SFA)[16x64] * (B * SFB)[64x8], in two variants that compute
// the same function (up to FP32 accumulation order):
//   - native   (`Fp4Mma<true>`, sm_120a/sm_121a only): one
//       mma.sync.aligned.m16n8k64.row.col.kind::mxf4nvf4.block_scale.scale_vec::2X.f32.e2m1.e2m1.f32.ue8m0
//     (SASS `OMMA.SF.16864.F32.E2M1.E2M1.E8`);
//   - portable (`Fp4Mma<false>`, every arch): exact dequantization e2m1 x 2^(s-127) -> bf16, then four
//     bf16 m16n8k16 `mma.sync` with FP32 accumulation.
//
// Data model (CONTRACT.md §2, FP4 columns). A row of D = 64 or 128 e2m1 values is stored as D/2 packed bytes,
// low nibble = even element; its scales are one int32 holding four UE8M0 bytes little-endian, byte b scaling
// elements [32b, 32b+32) (for D = 64 bytes 2 and 3 are padding and never read). A "k step" is a 64-wide slice
// of D: step s covers packed bytes [32s, 32s+32) and scale bytes 2s (first 32 elements), 2s+1 (last 32).
// In the indexer: A = keys (16 keys x 64 d, row-major: key rows of packed bytes), B = query heads
// (64 d x 8 heads, "col"-major: head rows of packed bytes); D rows = keys, D columns = heads.
//
// Fragment layout (PTX ISA 9.7.14.5.11 "Matrix Fragments for mma.m16n8k64", .e2m1; g = lane / 4, t = lane % 4;
// element i of a register sits in nibble i, i.e. the register is 4 consecutive packed bytes read little-endian):
//   A raw[0] = row g,     packed bytes 32s + 4t .. +3        (k = 8t .. 8t+7)
//   A raw[1] = row g + 8, packed bytes 32s + 4t .. +3        (k = 8t .. 8t+7)
//   A raw[2] = row g,     packed bytes 32s + 16 + 4t .. +3   (k = 32 + 8t .. 32 + 8t+7)
//   A raw[3] = row g + 8, packed bytes 32s + 16 + 4t .. +3   (k = 32 + 8t .. 32 + 8t+7)
//   B raw[0] = column (head) g, packed bytes 32s + 4t .. +3       (k = 8t ..)
//   B raw[1] = column (head) g, packed bytes 32s + 16 + 4t .. +3  (k = 32 + 8t ..)
// In bytes this is exactly the FP8 m16n8k32 A/B layout, so the FP8 shared-memory loaders (ldmatrix.x4 for A over a
// 16-row x 32-byte tile, ldmatrix.x2 / 32-bit loads for B) produce these registers unchanged.
//
// Scales (PTX ISA 9.7.14.3 "Block Scaling for mma.sync", scale_vec::2X, Tables 35-37, Figures 43-45): scale_A is
// 16 x 2, scale_B is 2 x 8. With thread-id-a = 0 the lanes with lane % 4 in {0, 1} provide SF_A: lane 4g -> row g,
// lane 4g + 1 -> row g + 8. With thread-id-b = 0 the lanes with lane % 4 == 0 provide SF_B: lane 4g -> column g.
// byte-id selects a byte pair: 0 -> bytes (0, 1), 2 -> bytes (2, 3); the lower byte scales k 0..31 of the step,
// the upper k 32..63. Hence our packed int32 scale is the scale register as is, with byte-id = 2 * step.
//
// Interface (identical for both variants, so a kernel switches with one template bool):
//   using M = Fp4Mma<kNative>;
//   M::FragA a = M::make_a<kStep>(raw_a, sf_row_g, sf_row_g8);  // sf_row_*: packed int32 scales of key rows g, g+8
//   M::FragB b = M::make_b<kStep>(raw_b, sf_col_g);             // sf_col_g: packed int32 scale of head g
//   M::mma(acc, a, b);                                          // acc as mma.cuh: rows g, g+8; cols 2t, 2t+1
// make_* prepares an operand once (portable: dequantizes to bf16 with the scale folded in), so a fragment reused
// across many tiles (the query heads) can be prepared once and kept in registers.
//
// Portable-variant k order: the four bf16 k16 sub-steps j = 0..3 each take nibbles 2j, 2j+1 of every raw register.
// bf16 m16n8k16 logical k = 2t + e maps to physical k = 8t + 2j + e, logical 8 + 2t + e to 32 + 8t + 2j + e, the
// same permutation for A and B, so the sum over k is the same set of products.
//
// Exactness of the portable dequantization: e2m1 x 2^(s-127) is a power of two times {0, 0.5, 1, 1.5, 2, 3, 4, 6},
// exactly representable in bf16 for 1 <= s <= 252. s = 0 (2^-127) gives bf16 subnormals (exact where the bf16
// FMA keeps subnormals); s >= 253 overflows to +-inf for the larger magnitudes (bf16 max is ~2^128); s = 255 is
// the UE8M0 NaN and gives NaN. Quantizers (utils.per_token_cast_to_fp4) produce s in [111, 128 + log2(amax)].

#include "../common/types.cuh"
#include "mma.cuh"

namespace deep_gemm::mma {

namespace fp4_detail {

DG_DEVICE uint32_t prmt(uint32_t a, uint32_t b, uint32_t sel) {
    uint32_t d;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(sel));
    return d;
}

// d = a * b + (-0.0) per bf16 half: an exact product for power-of-two b (no overflow), sign of zero kept
DG_DEVICE uint32_t bf16x2_mul(uint32_t a, uint32_t b) {
    uint32_t d;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(0x80008000u));
    return d;
}

// UE8M0 byte s -> bf16 bits of 2^(s-127), duplicated into both halves
DG_DEVICE uint32_t ue8m0_to_bf16x2(uint32_t s) {
    // s in 1..254: exponent field s; s = 0: subnormal 2^-127 = 0x0040; s = 255: NaN 0x7fc0
    uint32_t bits = s == 0 ? 0x0040u : (s == 255 ? 0x7fc0u : (s << 7));
    return bits | (bits << 16);
}

// bf16 bytes of the e2m1 magnitudes {0, 0.5, 1, 1.5, 2, 3, 4, 6} (bits 0x0000 0x3f00 0x3f80 0x3fc0 0x4000 0x4040
// 0x4080 0x40c0), as two 8-byte prmt tables indexed by the 3 magnitude bits
constexpr uint32_t kLoBytes0 = 0xc0800000u, kLoBytes1 = 0xc0804000u;
constexpr uint32_t kHiBytes0 = 0x3f3f3f00u, kHiBytes1 = 0x40404040u;

// 8 packed e2m1 (one raw register) -> 4 bf16x2: out[j] = (nibble 2j, nibble 2j+1), each times 2^(s-127)
DG_DEVICE void e2m1x8_to_bf16x8(uint32_t (&out)[4], uint32_t w, uint32_t scale_bf16x2) {
    const uint32_t mag = w & 0x77777777u;
    const uint32_t lo0 = prmt(kLoBytes0, kLoBytes1, mag), hi0 = prmt(kHiBytes0, kHiBytes1, mag);
    const uint32_t lo1 = prmt(kLoBytes0, kLoBytes1, mag >> 16), hi1 = prmt(kHiBytes0, kHiBytes1, mag >> 16);
    // interleave low/high bytes: [lo.b0, hi.b0, lo.b1, hi.b1] and [lo.b2, hi.b2, lo.b3, hi.b3]
    uint32_t v[4] = {prmt(lo0, hi0, 0x5140u), prmt(lo0, hi0, 0x7362u), prmt(lo1, hi1, 0x5140u), prmt(lo1, hi1, 0x7362u)};
    #pragma unroll
    for (int j = 0; j < 4; ++ j) {
        // sign of nibble 2j is bit 8j + 3 -> bit 15; sign of nibble 2j + 1 is bit 8j + 7 -> bit 31
        const uint32_t x = w >> (8 * j);
        const uint32_t sign = ((x << 12) & 0x00008000u) | ((x << 24) & 0x80000000u);
        out[j] = bf16x2_mul(v[j] | sign, scale_bf16x2);
    }
}

} // namespace fp4_detail

template <bool kNative>
struct Fp4Mma;

// Native: the raw registers go straight in; the scale register is the packed int32 of the row / column this lane
// provides (lane % 4 == 1 provides row g + 8, the others row g; see the layout note above)
template <>
struct Fp4Mma<true> {
    struct FragA { uint32_t r[4]; uint32_t sf; };
    struct FragB { uint32_t r[2]; uint32_t sf; };

    template <int kStep>
    DG_DEVICE static FragA make_a(const uint32_t (&raw)[4], uint32_t sf_row_g, uint32_t sf_row_g8) {
        static_assert(kStep == 0 or kStep == 1, "a 64-wide k step of D <= 128");
        // byte pair 2 * kStep moved to the low half, so the MMA always uses byte-id 0
        uint32_t lane;
        asm("mov.u32 %0, %%laneid;" : "=r"(lane));
        const uint32_t sf = ((lane & 1) ? sf_row_g8 : sf_row_g) >> (16 * kStep);
        return {{raw[0], raw[1], raw[2], raw[3]}, sf};
    }

    template <int kStep>
    DG_DEVICE static FragB make_b(const uint32_t (&raw)[2], uint32_t sf_col_g) {
        static_assert(kStep == 0 or kStep == 1, "a 64-wide k step of D <= 128");
        return {{raw[0], raw[1]}, sf_col_g >> (16 * kStep)};
    }

    DG_DEVICE static void mma(float (&d)[4], const FragA& a, const FragB& b) {
#if DG_HAS_BLOCK_SCALED_MMA
        asm volatile("mma.sync.aligned.m16n8k64.row.col.kind::mxf4nvf4.block_scale.scale_vec::2X.f32.e2m1.e2m1.f32.ue8m0 "
                     "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3}, %10, {0, 0}, %11, {0, 0};"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a.r[0]), "r"(a.r[1]), "r"(a.r[2]), "r"(a.r[3]), "r"(b.r[0]), "r"(b.r[1]),
                       "r"(a.sf), "r"(b.sf));
#else
        // Never reached: the host only selects the native FP4 form for sm_120a/sm_121a
        asm volatile("trap;");
#endif
    }
};

namespace fp4_detail {

// Byte `kByte` of four packed UE8M0 scales as a bf16x2 multiplier
template <int kByte>
DG_DEVICE uint32_t scale_of(const uint32_t packed) {
    return ue8m0_to_bf16x2((packed >> (8 * kByte)) & 0xffu);
}

// Raw e2m1 registers -> the bf16 registers of four k16 sub-steps: out[j][i] = nibbles 2j, 2j + 1 of raw[i] times
// scale[i] (the portable k order: sub-step j takes nibbles 2j, 2j + 1 of every raw register)
template <int kN>
DG_DEVICE void dequantize_sub_steps(uint32_t (&out)[4][kN], const uint32_t (&raw)[kN], const uint32_t (&scale)[kN]) {
    #pragma unroll
    for (int i = 0; i < kN; ++ i) {
        uint32_t v[4];
        e2m1x8_to_bf16x8(v, raw[i], scale[i]);
        #pragma unroll
        for (int j = 0; j < 4; ++ j)
            out[j][i] = v[j];
    }
}

} // namespace fp4_detail

// Portable: dequantized bf16 operands for four m16n8k16 sub-steps, the block scales folded into the values
template <>
struct Fp4Mma<false> {
    struct FragA { uint32_t r[4][4]; };  // [k16 sub-step j][bf16 m16n8k16 A register]
    struct FragB { uint32_t r[4][2]; };  // [k16 sub-step j][bf16 m16n8k16 B register]

    template <int kStep>
    DG_DEVICE static FragA make_a(const uint32_t (&raw)[4], uint32_t sf_row_g, uint32_t sf_row_g8) {
        static_assert(kStep == 0 or kStep == 1, "a 64-wide k step of D <= 128");
        using namespace fp4_detail;
        // raw[0]: row g, block 2s; raw[1]: row g+8, block 2s; raw[2]: row g, block 2s+1; raw[3]: row g+8, block 2s+1
        const uint32_t scale[4] = {scale_of<2 * kStep>(sf_row_g), scale_of<2 * kStep>(sf_row_g8),
                                   scale_of<2 * kStep + 1>(sf_row_g), scale_of<2 * kStep + 1>(sf_row_g8)};
        FragA a;
        dequantize_sub_steps(a.r, raw, scale);
        return a;
    }

    template <int kStep>
    DG_DEVICE static FragB make_b(const uint32_t (&raw)[2], uint32_t sf_col_g) {
        static_assert(kStep == 0 or kStep == 1, "a 64-wide k step of D <= 128");
        using namespace fp4_detail;
        const uint32_t scale[2] = {scale_of<2 * kStep>(sf_col_g), scale_of<2 * kStep + 1>(sf_col_g)};
        FragB b;
        dequantize_sub_steps(b.r, raw, scale);
        return b;
    }

    DG_DEVICE static void mma(float (&d)[4], const FragA& a, const FragB& b) {
        #pragma unroll
        for (int j = 0; j < 4; ++ j)
            bf16_m16n8k16(d, a.r[j], b.r[j]);
    }
};

} // namespace deep_gemm::mma
