#pragma once

// SM120 GEMMs (GEMM.md): D = A · Bᵀ (+ C) with FP8 / FP4 operands and block scales, or BF16 operands, for every
// GEMM family (normal, batched, m-grouped contiguous / psum / masked, k-grouped: scheduler/gemm.cuh).
//
// A CTA of kWarpsM x kWarpsN warps owns a kBlockM x kBlockN output tile; each warp a (kBlockM / kWarpsM) x
// (kBlockN / kWarpsN) part of it, as kTM m16 x kTN n8 mma.sync fragments. The grid is persistent: a CTA walks its work
// units (tile x k range) as one flat sequence of k blocks, and a kNumStages-deep cp.async ring runs over that sequence
// across unit boundaries, so the next tile's first blocks load while the current one finishes.
//
// Per k block (128 K for FP8/FP4, 64 K for BF16; 128 bytes per K-major row, 64 for packed FP4) every thread copies a
// fixed set of 16-byte chunks of A and B into swizzled tiles (common/smem_tile.cuh), and thread r < rows copies row
// r's scale words (4-byte copies, any strides; the source pointer is set once per unit). Then four k steps of 32
// bytes: fragments by ldmatrix, kTM x kTN MMAs.
//
// Scale modes (GEMM.md §2):
//   - Promote (every target; float32 scales, the host unpacks UE8M0 ones for it): each scale slice (kPromoteK = the
//     smaller K granularity, 128 or 32) accumulates into `tmp` with unit scales (the plain FP8 MMA, or on sm_120a/121a
//     the block-scaled one with scales 2^0 at full rate; the slice's first MMA starts from zero), then acc += tmp ·
//     sfa[row] · sfb[col] in FP32: exact for any float scale.
//   - HW (sm_120a/121a; packed UE8M0 scales on both sides): the block-scaled MMA fed each 32-wide k slice's real scale
//     bytes (a 128-block's byte for all four of its slices); one accumulator, no promotion.
//   - BF16: no scales; one accumulator.
// FP4 operands are widened to e4m3 in registers (exact) and use the FP8 MMAs in the paired k order (smem_tile.cuh).
//
// Epilogue per unit: with K splits, the deterministic split-K sum (epilogue/split_reduce.cuh); then D (+ C) from
// registers (epilogue/sm120_store.cuh), never writing rows the unit does not own (rows past `masked_m`, psum gaps
// without zero padding); padding rows (-1) of the m-grouped contiguous layout are written as zeros.
//
// NOTES: nothing depends on timing (fixed summation orders; the split-K counter only elects the closer), so results
// are bitwise deterministic.

#include "../common/gemm_params.cuh"
#include "../common/math.cuh"
#include "../common/smem_tile.cuh"
#include "../common/types.cuh"
#include "../epilogue/sm120_store.cuh"
#include "../epilogue/split_reduce.cuh"
#include "../mma/sm120.cuh"
#include "../ptx/utils.cuh"
#include "../scheduler/gemm.cuh"

namespace deep_gemm {

enum GemmDtype : int { kGemmFp8 = 0, kGemmFp4 = 1, kGemmBf16 = 2 };

// What follows from the operand types, the scale mode and the scale granularity along K
template <int kTypeA, int kTypeB, int kSfGranKA, int kSfGranKB, bool kHWScales>
struct GemmOperandTraits {
    static constexpr bool kBf16 = kTypeA == kGemmBf16;
    static_assert(kBf16 == (kTypeB == kGemmBf16), "BF16 pairs with BF16 only");
    static constexpr int kBlockK = kBf16 ? 64 : 128;
    static constexpr int kRowBytesA = kTypeA == kGemmFp4 ? 64 : 128;
    static constexpr int kRowBytesB = kTypeB == kGemmFp4 ? 64 : 128;
    static constexpr bool kPaired = kTypeA == kGemmFp4 or kTypeB == kGemmFp4;
    // Staged 32-bit scale words per row and k block: HW one packed int (four granules), Promote one float per granule
    static constexpr int kSfWordsA = kBf16 ? 0 : (kHWScales ? 1 : 128 / kSfGranKA);
    static constexpr int kSfWordsB = kBf16 ? 0 : (kHWScales ? 1 : 128 / kSfGranKB);
    static constexpr int kPromoteK = kSfGranKA < kSfGranKB ? kSfGranKA : kSfGranKB;
    static_assert(kBf16 or ((kSfGranKA == 128 or kSfGranKA == 32) and (kSfGranKB == 128 or kSfGranKB == 32)),
                  "scale granularity along K: 128 or 32");

    // The index along the scale tensor's K dimension of word `w` of k block `kb` (`kb` counted from the unit's first
    // scale row): floats one per granule, packed ints four consecutive granules each
    template <int kGranK>
    DG_DEVICE static int sf_index(const int kb, const int w) {
        if constexpr (kHWScales)
            return kGranK == 128 ? kb / 4 : kb;
        return kb * (128 / kGranK) + w;
    }
};

template <int kBlockM, int kBlockN, int kWarpsM, int kWarpsN, int kNumStages, int kKind, int kTypeA, int kTypeB,
          int kSfGranKA, int kSfGranKB, bool kHWScales, bool kFastMma>
DG_DEVICE void sm120_gemm_impl(const GemmParams& p) {
    using Ops = GemmOperandTraits<kTypeA, kTypeB, kSfGranKA, kSfGranKB, kHWScales>;
    constexpr int kNumThreads = kWarpsM * kWarpsN * 32;
    constexpr int kWarpM = kBlockM / kWarpsM, kWarpN = kBlockN / kWarpsN;
    constexpr int kTM = kWarpM / 16, kTN = kWarpN / 8;
    constexpr int kBlockK = Ops::kBlockK;
    static_assert(kWarpM % 16 == 0 and kWarpN % 16 == 0, "warp tiles of whole m16 tiles and n8 tile pairs");
    static_assert(not kHWScales or not kFastMma, "the HW mode is its own MMA form (packed UE8M0 scales on both sides)");
    static_assert(not kHWScales or not Ops::kBf16, "BF16 has no scales");
    static_assert(kBlockM <= kNumThreads and kBlockN <= kNumThreads, "one thread per staged scale row");

    // Stage layout: A tile, B tile, A scales [kSfWordsA][kBlockM], B scales [kSfWordsB][kBlockN] (16-byte aligned;
    // B scales per 128 rows use row 0)
    constexpr int kTileBytesA = kBlockM * Ops::kRowBytesA, kTileBytesB = kBlockN * Ops::kRowBytesB;
    constexpr int kSfBytesA = align_up(Ops::kSfWordsA * kBlockM * 4, 16);
    constexpr int kSfBytesB = align_up(Ops::kSfWordsB * kBlockN * 4, 16);
    constexpr int kStageBytes = kTileBytesA + kTileBytesB + kSfBytesA + kSfBytesB;
    static_assert(kNumStages >= 2, "a pipeline");
    const bool sf_block_b = (p.flags & kGemmSfBlockB) != 0;

    extern __shared__ __align__(1024) uint8_t smem_buf[];
    const uint32_t smem = ptx::smem_addr(smem_buf);
    const int tid = static_cast<int>(threadIdx.x), lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int wm0 = (warp / kWarpsN) * kWarpM, wn0 = (warp % kWarpsN) * kWarpN;

    using Sched = GemmScheduler<kKind, kBlockM, kBlockN, kBlockK, kSfGranKA, kHWScales>;

    // ------------------------------------------------------------------------------------------------ producer
    // Its own cursor over the units (it runs kNumStages - 1 blocks ahead of the consumer), the tiles' copy plans and
    // this thread's scale rows (A row `tid`, B row `tid` or the B block), fixed per unit
    TileCopyPlan<kBlockM, Ops::kRowBytesA, kNumThreads> plan_a;
    TileCopyPlan<kBlockN, Ops::kRowBytesB, kNumThreads> plan_b;
    const uint32_t* sfa_src = nullptr;
    const uint32_t* sfb_src = nullptr;
    bool sfa_valid = false, sfb_valid = false;
    Sched load_sched(p);
    GemmUnit lu;
    int lw = static_cast<int>(blockIdx.x), lkb = 0;
    bool l_ok = false;
    const auto a_bytes = [](const long long elems) {
        return kTypeA == kGemmFp4 ? elems / 2 : elems * (kTypeA == kGemmBf16 ? 2 : 1);
    };
    const auto b_bytes = [](const long long elems) {
        return kTypeB == kGemmFp4 ? elems / 2 : elems * (kTypeB == kGemmBf16 ? 2 : 1);
    };
    const auto load_unit = [&](bool advance) {
        // From unit `lw` (the next one when `advance`) to the first with at least one k block: k-grouped groups of
        // K = 0 have nothing to load
        while (true) {
            if (advance)
                lw += static_cast<int>(gridDim.x);
            advance = true;
            if (not (l_ok = load_sched.get(lw, lu)))
                return;
            lkb = lu.kb_begin;
            if (lkb < lu.kb_end)
                break;
        }
        plan_a.init(static_cast<const uint8_t*>(p.a) + lu.g * p.a_stride_g + lu.m0 * p.a_stride_m, p.a_stride_m,
                    lu.rows, tid);
        plan_b.init(static_cast<const uint8_t*>(p.b) + lu.g * p.b_stride_g + lu.n0 * p.b_stride_n, p.b_stride_n,
                    min_of(kBlockN, p.n - lu.n0), tid);
        if constexpr (Ops::kSfWordsA > 0) {
            sfa_valid = tid < lu.rows;
            sfa_src = static_cast<const uint32_t*>(p.sfa) + lu.g * p.sfa_stride_g + lu.sf_k_base * p.sfa_stride_k +
                      (sfa_valid ? (lu.m0 + tid) * p.sfa_stride_mn : 0);
            const int row_b = sf_block_b ? lu.n0 / 128 : lu.n0 + tid;
            sfb_valid = sf_block_b ? tid == 0 : (tid < kBlockN and row_b < p.n);
            sfb_src = static_cast<const uint32_t*>(p.sfb) + lu.g * p.sfb_stride_g + lu.sf_k_base * p.sfb_stride_k +
                      (sfb_valid ? row_b * p.sfb_stride_mn : 0);
        }
    };
    const auto issue_stage = [&](const int stage) {
        if (l_ok) {
            const uint32_t base = smem + stage * kStageBytes;
            const int k0 = lkb * kBlockK, k_valid = min_of(kBlockK, lu.k_len - k0);
            long long a_off = a_bytes(lu.k_base + k0), b_off = b_bytes(lu.k_base + k0);
            if (p.k_batch > 0) {
                const int batch = k0 / p.k_batch, k_in = k0 - batch * p.k_batch;
                a_off = batch * p.a_stride_g + a_bytes(k_in), b_off = batch * p.b_stride_g + b_bytes(k_in);
            }
            plan_a.issue(base, a_off, static_cast<int>(a_bytes(k_valid)));
            plan_b.issue(base + kTileBytesA, b_off, static_cast<int>(b_bytes(k_valid)));
            if constexpr (Ops::kSfWordsA > 0) {
                const uint32_t dst_a = base + kTileBytesA + kTileBytesB, dst_b = dst_a + kSfBytesA;
                // Promote words of granules past the unit's K (a partial last block) are zeros, never read: the
                // scale tensor has no row for them (k-grouped: the next group's, or none past the last group)
                const auto granule_ok = [&](const int w, const int gran) { return kHWScales or w * gran < k_valid; };
                if (tid < kBlockM) {
                    #pragma unroll
                    for (int w = 0; w < Ops::kSfWordsA; ++ w) {
                        const bool ok = sfa_valid and granule_ok(w, kSfGranKA);
                        const auto* src = sfa_src + Ops::template sf_index<kSfGranKA>(lkb, w) * p.sfa_stride_k;
                        ptx::cp_async_4_zfill(dst_a + (w * kBlockM + tid) * 4, ok ? src : sfa_src, ok);
                    }
                }
                if (tid < kBlockN) {
                    #pragma unroll
                    for (int w = 0; w < Ops::kSfWordsB; ++ w) {
                        const bool ok = sfb_valid and granule_ok(w, kSfGranKB);
                        const auto* src = sfb_src + Ops::template sf_index<kSfGranKB>(lkb, w) * p.sfb_stride_k;
                        ptx::cp_async_4_zfill(dst_b + (w * kBlockN + tid) * 4, ok ? src : sfb_src, ok);
                    }
                }
            }
            if (++ lkb == lu.kb_end)
                load_unit(true);
        }
        // An empty group where there is nothing to load keeps the wait counts uniform
        ptx::cp_async_commit();
    };

    // ------------------------------------------------------------------------------------------------ consumer
    float acc[kTM][kTN][4], tmp[kTM][kTN][4];
    const auto zero = [](float (&x)[kTM][kTN][4]) {
        #pragma unroll
        for (int i = 0; i < kTM; ++ i)
            #pragma unroll
            for (int j = 0; j < kTN; ++ j)
                x[i][j][0] = x[i][j][1] = x[i][j][2] = x[i][j][3] = 0.0f;
    };
    zero(acc), zero(tmp);

    // acc += tmp · sfa · sfb with scale words `wa` / `wb` of the staged block (Promote). B scales per 128 rows are one
    // value: then one product per row instead of per element
    const auto promote = [&](const float* sfa_words, const float* sfb_words, const int wa, const int wb) {
        float sa[kTM][2];
        #pragma unroll
        for (int i = 0; i < kTM; ++ i)
            #pragma unroll
            for (int h = 0; h < 2; ++ h)
                sa[i][h] = sfa_words[wa * kBlockM + wm0 + i * 16 + h * 8 + g];
        if (sf_block_b) {
            const float sb = sfb_words[wb * kBlockN];
            #pragma unroll
            for (int i = 0; i < kTM; ++ i)
                #pragma unroll
                for (int h = 0; h < 2; ++ h) {
                    const float s = sa[i][h] * sb;
                    #pragma unroll
                    for (int j = 0; j < kTN; ++ j)
                        #pragma unroll
                        for (int e = 0; e < 2; ++ e)
                            acc[i][j][h * 2 + e] = __fmaf_rn(tmp[i][j][h * 2 + e], s, acc[i][j][h * 2 + e]);
                }
        } else {
            float sb[kTN][2];
            #pragma unroll
            for (int j = 0; j < kTN; ++ j) {
                const float2 v = *reinterpret_cast<const float2*>(sfb_words + wb * kBlockN + wn0 + j * 8 + 2 * t);
                sb[j][0] = v.x, sb[j][1] = v.y;
            }
            #pragma unroll
            for (int i = 0; i < kTM; ++ i)
                #pragma unroll
                for (int j = 0; j < kTN; ++ j)
                    #pragma unroll
                    for (int r = 0; r < 4; ++ r)
                        acc[i][j][r] = __fmaf_rn(tmp[i][j][r], sa[i][r >> 1] * sb[j][r & 1], acc[i][j][r]);
        }
    };

    // The MMAs of one staged k block (four 32-byte k steps)
    const auto compute_stage = [&](const int stage, const int kb) {
        const uint32_t tile_a = smem + stage * kStageBytes, tile_b = tile_a + kTileBytesA;
        const auto* sf_words = smem_buf + stage * kStageBytes + kTileBytesA + kTileBytesB;
        const auto* sfa_words = reinterpret_cast<const float*>(sf_words);
        const auto* sfb_words = reinterpret_cast<const float*>(sf_words + kSfBytesA);
        // HW: this lane's scale words for the block: lane 4g row g's, lane 4g + 1 row g + 8's (A), lane 4g column g's
        // (B); a 128-granule int holds four k blocks (byte kb % 4, moved to byte 0 here), a 32-granule one the four
        // slices of this block (byte q, selected by the MMA)
        uint32_t hw_a[kTM], hw_b[kTN];
        if constexpr (kHWScales) {
            const auto* wa = reinterpret_cast<const uint32_t*>(sf_words);
            const auto* wb = reinterpret_cast<const uint32_t*>(sf_words + kSfBytesA);
            #pragma unroll
            for (int i = 0; i < kTM; ++ i)
                hw_a[i] = wa[wm0 + i * 16 + (t & 1) * 8 + g] >> (kSfGranKA == 128 ? 8 * (kb & 3) : 0);
            #pragma unroll
            for (int j = 0; j < kTN; ++ j)
                hw_b[j] = wb[sf_block_b ? 0 : wn0 + j * 8 + g] >> (kSfGranKB == 128 ? 8 * (kb & 3) : 0);
        }
        uint32_t a4[kTM][2][4];             // packed FP4 A: two k steps per load
        uint32_t b4[kTN / 2][2][2][2];      // packed FP4 B: two k steps x two n-tiles per load
        #pragma unroll
        for (int q = 0; q < 4; ++ q) {
            uint32_t af[kTM][4], bf[kTN][2];
            #pragma unroll
            for (int i = 0; i < kTM; ++ i) {
                if constexpr (kTypeA == kGemmFp4) {
                    if (q % 2 == 0)
                        load_a16x64_fp4<Ops::kRowBytesA>(a4[i], tile_a, wm0 + i * 16, q / 2, lane);
                    #pragma unroll
                    for (int r = 0; r < 4; ++ r)
                        af[i][r] = a4[i][q % 2][r];
                } else if constexpr (Ops::kPaired) {
                    load_a16x32_paired<Ops::kRowBytesA>(af[i], tile_a, wm0 + i * 16, q, lane);
                } else {
                    load_a16x32<Ops::kRowBytesA>(af[i], tile_a, wm0 + i * 16, q, lane);
                }
            }
            #pragma unroll
            for (int jj = 0; jj < kTN / 2; ++ jj) {
                if constexpr (kTypeB == kGemmFp4) {
                    if (q % 2 == 0)
                        load_b16x64_fp4<Ops::kRowBytesB>(b4[jj], tile_b, wn0 + jj * 16, q / 2, lane);
                    #pragma unroll
                    for (int e = 0; e < 2; ++ e)
                        bf[2 * jj][e] = b4[jj][q % 2][0][e], bf[2 * jj + 1][e] = b4[jj][q % 2][1][e];
                } else if constexpr (Ops::kPaired) {
                    load_b8x32_paired<Ops::kRowBytesB>(bf[2 * jj], tile_b, wn0 + jj * 16, q, lane);
                    load_b8x32_paired<Ops::kRowBytesB>(bf[2 * jj + 1], tile_b, wn0 + jj * 16 + 8, q, lane);
                } else {
                    uint32_t r4[4];
                    load_b16x32<Ops::kRowBytesB>(r4, tile_b, wn0 + jj * 16, q, lane);
                    bf[2 * jj][0] = r4[0], bf[2 * jj][1] = r4[1], bf[2 * jj + 1][0] = r4[2], bf[2 * jj + 1][1] = r4[3];
                }
            }

            #pragma unroll
            for (int i = 0; i < kTM; ++ i) {
                #pragma unroll
                for (int j = 0; j < kTN; ++ j) {
                    if constexpr (Ops::kBf16) {
                        mma::bf16_m16n8k16(acc[i][j], af[i], bf[j]);
                    } else if constexpr (kHWScales) {
                        if (q == 0)
                            mma::fp8_m16n8k32_scaled<0, 0>(acc[i][j], af[i], bf[j], hw_a[i], hw_b[j]);
                        else if (q == 1)
                            mma::fp8_m16n8k32_scaled<kSfGranKA == 32 ? 1 : 0, kSfGranKB == 32 ? 1 : 0>(
                                acc[i][j], af[i], bf[j], hw_a[i], hw_b[j]);
                        else if (q == 2)
                            mma::fp8_m16n8k32_scaled<kSfGranKA == 32 ? 2 : 0, kSfGranKB == 32 ? 2 : 0>(
                                acc[i][j], af[i], bf[j], hw_a[i], hw_b[j]);
                        else
                            mma::fp8_m16n8k32_scaled<kSfGranKA == 32 ? 3 : 0, kSfGranKB == 32 ? 3 : 0>(
                                acc[i][j], af[i], bf[j], hw_a[i], hw_b[j]);
                    } else {
                        // A promotion slice's first k step starts its accumulator from zero
                        if ((q * 32) % Ops::kPromoteK == 0)
                            mma::fp8_mma_fresh<kFastMma>(tmp[i][j], af[i], bf[j]);
                        else
                            mma::fp8_mma<kFastMma>(tmp[i][j], af[i], bf[j]);
                    }
                }
            }
            if constexpr (not Ops::kBf16 and not kHWScales) {
                if ((q + 1) * 32 % Ops::kPromoteK == 0)
                    promote(sfa_words, sfb_words, kSfGranKA == 32 ? q : 0, kSfGranKB == 32 ? q : 0);
            }
        }
    };

    // The end of a unit: split-K sum where the unit is one of several K splits, then D (+ C)
    using Reduce = SplitKReduce<kNumThreads, kTM * kTN * 4>;
    const auto finish_unit = [&](const GemmUnit& u) {
        auto& flat = reinterpret_cast<float (&)[kTM * kTN * 4]>(acc);
        if (kKind == kGemmNormal and p.num_splits > 1) {
            float* slots = p.workspace + static_cast<int64_t>(u.tile) * p.num_splits * Reduce::kSlotFloats;
            if (not Reduce::publish(slots + static_cast<int64_t>(u.split) * Reduce::kSlotFloats, flat,
                                    p.counters + u.tile, p.num_splits, tid))
                return;
            Reduce::sum(flat, slots, p.num_splits, u.split, tid);
        }
        // Rows past the unit's `rows` and up to `zero_rows` (psum gaps with zero padding, tiles of contiguous padding)
        // get zeros: their A rows were zero-filled, never read, so their accumulators are exactly 0
        const auto row_ok = [&](const int row) { return row - u.m0 < max_of(u.rows, u.zero_rows); };
        if constexpr (kKind == kGemmMGroupedContiguous) {
            // Padding rows (-1) inside a computed tile: zeros as well, whatever the caller left in those rows of A
            // (upstream's tests take them as 0 · B; callers ignore them)
            #pragma unroll
            for (int i = 0; i < kTM; ++ i)
                #pragma unroll
                for (int h = 0; h < 2; ++ h) {
                    const int row = u.m0 + wm0 + i * 16 + h * 8 + g;
                    if (u.rows > 0 and row < p.m and __ldg(p.grouped_layout + row) < 0)
                        #pragma unroll
                        for (int j = 0; j < kTN; ++ j)
                            acc[i][j][h * 2] = acc[i][j][h * 2 + 1] = 0.0f;
                }
        }
        // This lane's column pair in each n8 tile, as a column of D (-1 past N); skip_head_mid maps logical column
        // `col` past its heads' gaps (one division per column, once per tile)
        const bool skip_head = (p.flags & kGemmSkipHeadMid) != 0;
        int cols[kTN];
        #pragma unroll
        for (int j = 0; j < kTN; ++ j) {
            const int col = u.n0 + wn0 + j * 8 + 2 * t;
            cols[j] = col < p.n ? col : -1;
            if (skip_head and col < p.n) {
                const int width = p.skip_head_left + p.skip_head_right, head = col / width, w = col % width;
                cols[j] = head * (width + p.skip_head_mid) + (w < p.skip_head_left ? w : w + p.skip_head_mid);
            }
        }
        const bool with_c = (p.flags & kGemmWithC) != 0;
        if (p.flags & kGemmOutBF16) {
            auto* d = static_cast<bf16_t*>(p.d) + u.g * p.d_stride_g;
            const auto* c = static_cast<const bf16_t*>(p.c) + (with_c ? u.g * p.c_stride_g : 0);
            store_fragments<kTM, kTN>(acc, d, p.d_stride_m, with_c ? c : nullptr, p.c_stride_m, u.m0 + wm0, cols,
                                      row_ok, lane);
        } else {
            auto* d = static_cast<float*>(p.d) + u.g * p.d_stride_g;
            const auto* c = static_cast<const float*>(p.c) + (with_c ? u.g * p.c_stride_g : 0);
            store_fragments<kTM, kTN>(acc, d, p.d_stride_m, with_c ? c : nullptr, p.c_stride_m, u.m0 + wm0, cols,
                                      row_ok, lane);
        }
    };

    // ------------------------------------------------------------------------------------------------ main loop
    Sched sched(p);
    GemmUnit cu;
    int cw = static_cast<int>(blockIdx.x);
    bool c_ok = sched.get(cw, cu);
    int ckb = c_ok ? cu.kb_begin : 0;

    load_unit(false);
    #pragma unroll
    for (int s = 0; s < kNumStages - 1; ++ s)
        issue_stage(s);

    int stage = 0, load_stage = kNumStages - 1;
    while (c_ok) {
        if (ckb < cu.kb_end) {
            ptx::cp_async_wait<kNumStages - 2>();
            __syncthreads();
            // Every thread is past the reads of the stage this overwrites (the one computed last iteration)
            issue_stage(load_stage);
            load_stage = load_stage + 1 == kNumStages ? 0 : load_stage + 1;
            compute_stage(stage, ckb);
            stage = stage + 1 == kNumStages ? 0 : stage + 1;
            ++ ckb;
        }
        if (ckb >= cu.kb_end) {
            finish_unit(cu);
            zero(acc);
            cw += static_cast<int>(gridDim.x);
            if ((c_ok = sched.get(cw, cu)))
                ckb = cu.kb_begin;
        }
    }
    ptx::cp_async_wait<0>();
}

} // namespace deep_gemm
