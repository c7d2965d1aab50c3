#pragma once

// The runtime arguments of the SM120 GEMM kernels (impls/sm120_gemm.cuh), one struct passed by value. Shared by the
// host (csrc/jit_kernels/impls/sm120_gemm.hpp) and the device code, so it uses builtin types only; both sides
// static_assert its size.
//
// Every operand is addressed by (pointer, group stride, row stride) in elements (bytes for FP8, packed bytes for
// FP4). A and B are K-major: row r of A (M rows) and row n of B (N rows) hold K consecutive values. Scale factors
// are addressed by (group stride, stride along MN, stride along the K-block index), in 32-bit elements (float or an
// int32 of four UE8M0 bytes).

namespace deep_gemm {

enum GemmKind : int {
    kGemmNormal = 0,            // one D = A · Bᵀ (+ C); `num_groups` > 1: independent batches (einsum)
    kGemmMGroupedContiguous = 1,// rows of A / D carry a group id in `grouped_layout` (-1: padding, never written)
    kGemmMGroupedPsum = 2,      // `grouped_layout[g]` = cumulative end row of group g; group g starts aligned
    kGemmMGroupedMasked = 3,    // A [G, max_m, K], D [G, max_m, N]; `grouped_layout[g]` = valid rows of group g
    kGemmKGrouped = 4,          // D[g] = C[g] + A[:, K_g] · B[:, K_g]ᵀ; `grouped_layout[g]` = K of group g
};

// Runtime switches of one launch (`GemmParams::flags`)
enum GemmFlags : int {
    kGemmSfRowsPadded4 = 1,     // k-grouped float32 scales unpacked from UE8M0 ints: each group's rows padded to 4
    kGemmSfBlockB = 4,          // B's scales are per 128 rows of B (else per row)
    kGemmOutBF16 = 8,           // D (and C) are bf16 (else float32)
    kGemmWithC = 16,            // D = C + A · Bᵀ
    kGemmSkipHeadMid = 32,      // D's columns: head blocks of left + mid + right, mid left unwritten
    kGemmZeroPadding = 64,      // psum layouts: D's gap rows after each group (up to the aligned start of the next)
                                // are written with zeros
};

struct GemmParams {
    const void* a; long long a_stride_g, a_stride_m;
    const void* b; long long b_stride_g, b_stride_n;
    void* d; long long d_stride_g, d_stride_m;
    const void* c; long long c_stride_g, c_stride_m;    // C: the type of D
    const void* sfa; long long sfa_stride_g, sfa_stride_mn, sfa_stride_k;
    const void* sfb; long long sfb_stride_g, sfb_stride_mn, sfb_stride_k;
    const int* grouped_layout;
    float* workspace;           // split-K partial tiles
    unsigned* counters;         // split-K arrival counters, zero at launch (the kernel leaves them zero)
    int m, n, k;                // rows of A (masked: max_m per group), columns of D, K (k-grouped: total)
    int num_groups;
    int num_splits;             // K splits per output tile (normal GEMMs)
    int mk_alignment;           // psum layouts: group starts aligned to this
    int skip_head_left, skip_head_mid, skip_head_right;     // fp8_gemm_nt_skip_head_mid's output column map
    int flags;                  // GemmFlags
    int k_batch;                // > 0: K is `k / k_batch` batches of k_batch, batch i at i * (group stride) of A and
                                // B (einsum bmk,bnk->mn, one group); k_batch is a multiple of the k block
    int reserved;
};

static_assert(sizeof(GemmParams) == 23 * 8 + 12 * 4, "GemmParams layout (host and device share it)");

} // namespace deep_gemm
