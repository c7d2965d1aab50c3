#pragma once

// Ragged (prefill) MQA logits with FP8 q and keys, or FP4 q and keys (CONTRACT.md §2.1):
//
//     FP8: logits[i, j] = ( sum_h relu(q[i, h, :] . k[j, :]) * w[i, h] ) * kv_scale[j],   ks[i] <= j < ke[i]
//     FP4: logits[i, j] =   sum_h relu( sum_b sq[i, h, b] sk[j, b] (q[i, h, b] . k[j, b]) ) * w[i, h]
//
// One `mma.sync m16n8k32` (e4m3 x e4m3 -> f32) computes 16 keys (M, the A operand: k's rows, row-major, exactly
// its memory layout) against 8 (query, head) pairs (N, the B operand: q's [H, D] rows). Each warp owns 64 such
// pairs (64 / H queries, all their heads) whose B fragments stay in registers for the whole kernel; the CTA's
// warps own disjoint queries and share one stream of key tiles (kBlockK keys x D bytes + kBlockK scales) that a
// kNumStages-deep `cp.async` pipeline brings into shared memory. A warp takes two 16-key m-tiles at a time:
// ldmatrix.x4 per (m-tile, 32-wide k step), 8 MMAs per A fragment. Epilogue per key pair-tile: relu, times the
// head's weight, summed over the warp-thread's heads, then a two-round reduce-scatter over the quad (shfl_xor 1,
// 2) that leaves every lane with whole sums for distinct (query, key) outputs: 32 consecutive keys per store.
//
// FP4 (`kFp4`): a key row is D/2 packed bytes and its scales one int32 (four UE8M0 bytes); the A/B fragment bytes of
// one m16n8k64 FP4 step equal those of one m16n8k32 FP8 step (mma/fp4.cuh), so the same 32-byte k steps, swizzle
// and ldmatrix loads serve both; `Fp4Mma<kBlockScaled>` (native block-scaled FP4 on sm_120a, or the portable
// dequantize-to-bf16 twin) replaces the FP8 MMA, the key scales travel through shared memory like kv_scale does,
// and the epilogue has no per-key scale.
//
// Clean (`clean_logits`, CONTRACT.md §2.4): the same launch also writes -inf into every column j in [0, N) of the
// CTA's rows outside the row's (clamped) range. A row's masked columns [0, lo) + [hi, N), numbered in column order,
// are cut into `num_splits` equal parts (boundaries rounded down to 8 elements) and key split s writes part s, so
// the CTAs of a query tile share the -inf bytes evenly whatever the shape of the ranges, and every element has
// exactly one writer: its logit by the split owning its key tile, or -inf by the split owning its masked index.
// The whole CTA writes these in its prologue (16-byte stores inside, scalar stores at the ends), before the MMA
// loop and before any early exit; its registers are dead by the time the main loop starts.
//
// NOTES: nothing here depends on the order threads run in (no atomics, fixed summation trees), so results are
// bitwise deterministic. Rows of a key tile beyond the CTA's key range are zero-filled, never read from global.

#include "../common/math.cuh"
#include "../common/smem_tile.cuh"
#include "../mma/fp4.cuh"
#include "../mma/mma.cuh"
#include "../ptx/utils.cuh"
#include "smxx_clean_logits.cuh"

namespace deep_gemm {

// -inf into key split `split`'s part of the masked columns of `rows` rows (row r: valid range [lo[r], hi[r]), an
// empty range as [0, 0)), all `kNumThreads` threads cooperating; rows start 16-byte aligned
template <typename T, int kNumThreads>
DG_DEVICE void clean_split_rows(T* logits, const int64_t logits_stride, const int rows, const int* lo_of,
                                const int* hi_of, const int num_k, const int split, const int num_splits,
                                const int thread) {
    for (int r = 0; r < rows; ++ r) {
        const int lo = lo_of[r], hi = hi_of[r], len = hi - lo;
        const int masked = num_k - len;
        // floor(s * masked / num_splits) in 32 bits (s * masked may not fit): s * q + floor(s * rem / num_splits)
        const int quot = masked / num_splits, rem = masked % num_splits;
        const auto boundary = [&](const int s) {
            return s >= num_splits ? masked : (s * quot + s * rem / num_splits) & ~7;
        };
        // Masked index t < lo is column t, t >= lo is column t + len
        const int t0 = boundary(split), t1 = boundary(split + 1);
        T* row_ptr = logits + r * logits_stride;
        fill_neg_inf<T, kNumThreads>(row_ptr, min_of(t0, lo), min_of(t1, lo), thread);
        fill_neg_inf<T, kNumThreads>(row_ptr, max_of(t0, lo) + len, max_of(t1, lo) + len, thread);
    }
}

// `kBlockScaled`: the sm_120a-only MMA form (block-scaled FP8 at full rate; native FP4), else its portable twin.
// `kv_scale`: float32 [N] (FP8) or int32 [N] packed UE8M0 (FP4); `q_sf`: int32 [S, H] (FP4 only, else unused).
template <int kNumHeads, int kHeadDim, bool kFp4, bool kBlockScaled, int kNumWarps, int kBlockK, int kNumStages>
DG_DEVICE void sm120_fp8_mqa_logits_impl(const uint8_t* q, const int* q_sf, const uint8_t* k, const void* kv_scale,
                                         const void* weights, const int64_t weights_stride, const int weights_bf16,
                                         const int* ks, const int* ke, void* logits, const int64_t logits_stride,
                                         const int logits_bf16, const int num_q, const int num_k,
                                         const int max_seqlen_k, const int num_splits, const int clean_logits) {
    static_assert(kNumHeads == 8 or kNumHeads == 16 or kNumHeads == 32 or kNumHeads == 64, "unsupported H");
    static_assert(kHeadDim == 32 or kHeadDim == 64 or kHeadDim == 128, "unsupported D");
    static_assert(not kFp4 or kHeadDim == 64 or kHeadDim == 128, "FP4 needs D in {64, 128}");
    static_assert(kBlockK % 32 == 0, "key tiles are processed 32 keys at a time");

    constexpr int kPairsPerWarp = 64;                           // (query, head) pairs = N extent of a warp
    constexpr int kQueriesPerWarp = kPairsPerWarp / kNumHeads;
    constexpr int kBlockQ = kNumWarps * kQueriesPerWarp;
    constexpr int kNumGroups = kPairsPerWarp / 8;               // n8 groups; each lies within one query
    constexpr int kRowBytes = kFp4 ? kHeadDim / 2 : kHeadDim;   // bytes per key / (query, head) row
    constexpr int kNumKSteps = kRowBytes / 32;                  // 32-byte k steps (FP8: 32 elements, FP4: 64)
    constexpr int kNumThreads = kNumWarps * 32;
    constexpr int kTileBytes = kBlockK * kRowBytes;
    constexpr int kTileChunks = kTileBytes / 16;
    constexpr int kNumOutputs = kQueriesPerWarp * 4;            // per lane and 32-key pair-tile, before reduction

    extern __shared__ __align__(128) uint8_t smem[];
    uint8_t* smem_k = smem;                                                     // [kNumStages][kBlockK][kRowBytes]
    // [kNumStages][kBlockK]: float kv_scale (FP8) or int32 packed UE8M0 scales (FP4)
    uint32_t* smem_scale = reinterpret_cast<uint32_t*>(smem + kNumStages * kTileBytes);
    int* smem_lo = reinterpret_cast<int*>(smem_scale + kNumStages * kBlockK);       // [kBlockQ]
    int* smem_hi = smem_lo + kBlockQ;                                               // [kBlockQ]
    // NOTES: portable FP4 needs the registers (bf16 operands 4x the FP4 bytes), so its weights wait in shared
    // memory, [kNumWarps][kNumGroups][2][4 = tig], read back per pair-tile (broadcast, conflict-free)
    constexpr bool kWeightsInSmem = kFp4 and not kBlockScaled;
    float* smem_w = reinterpret_cast<float*>(smem_hi + kBlockQ);

    const int thread = static_cast<int>(threadIdx.x);
    const int warp = thread / 32, lane = thread % 32;
    const int group = lane / 4, tig = lane % 4;

    // Heavy tiles first: for causal prefill the last queries see the most keys
    const int num_tiles = ceil_div(num_q, kBlockQ);
    const int split = static_cast<int>(blockIdx.x) % num_splits;
    const int q_tile = num_tiles - 1 - static_cast<int>(blockIdx.x) / num_splits;
    const int q_begin = q_tile * kBlockQ;

    // Each query's clamped key range; an empty range is stored as [0, 0)
    for (int i = thread; i < kBlockQ; i += kNumThreads) {
        int lo = 0, hi = 0;
        if (q_begin + i < num_q) {
            lo = min_of(max_of(__ldg(ks + q_begin + i), 0), num_k);
            hi = min_of(max_of(__ldg(ke + q_begin + i), lo), num_k);
            if (max_seqlen_k > 0)
                hi = lo + min_of(hi - lo, max_seqlen_k);
            if (hi <= lo)
                lo = hi = 0;
        }
        smem_lo[i] = lo, smem_hi[i] = hi;
    }
    __syncthreads();

    // Clean: this split's part of the -inf columns of the tile's rows (the caller guarantees max_seqlen_k == 0)
    if (clean_logits) {
        const int rows = min_of(kBlockQ, num_q - q_begin);
        if (logits_bf16)
            clean_split_rows<bf16_t, kNumThreads>(reinterpret_cast<bf16_t*>(logits) + q_begin * logits_stride,
                                                  logits_stride, rows, smem_lo, smem_hi, num_k, split, num_splits,
                                                  thread);
        else
            clean_split_rows<float, kNumThreads>(reinterpret_cast<float*>(logits) + q_begin * logits_stride,
                                                 logits_stride, rows, smem_lo, smem_hi, num_k, split, num_splits,
                                                 thread);
    }

    // The CTA's key range (union of its queries' ranges) and this warp's
    int cta_lo = num_k, cta_hi = 0, warp_lo = num_k, warp_hi = 0;
    for (int i = 0; i < kBlockQ; ++ i) {
        const int lo = smem_lo[i], hi = smem_hi[i];
        if (lo < hi) {
            cta_lo = min_of(cta_lo, lo), cta_hi = max_of(cta_hi, hi);
            if (i / kQueriesPerWarp == warp)
                warp_lo = min_of(warp_lo, lo), warp_hi = max_of(warp_hi, hi);
        }
    }
    if (cta_lo >= cta_hi)
        return;
    const int num_key_tiles = ceil_div(cta_hi - cta_lo, kBlockK);
    const int my_num_tiles = split < num_key_tiles ? ceil_div(num_key_tiles - split, num_splits) : 0;
    if (my_num_tiles == 0)
        return;

    // Pipeline loader: local tile `i` (global key tile `split + i * num_splits`) into stage `i % kNumStages`
    const auto load_tile = [&](const int i) {
        if (i < my_num_tiles) {
            const int stage = i % kNumStages;
            const int key_base = cta_lo + (split + i * num_splits) * kBlockK;
            uint8_t* tile = smem_k + stage * kTileBytes;
            #pragma unroll
            for (int c = thread; c < kTileChunks; c += kNumThreads) {
                const int row = c / (kRowBytes / 16), chunk = c % (kRowBytes / 16);
                const int key = key_base + row;
                uint8_t* dst = tile + SwizzledTile<kRowBytes>::offset(row, chunk);
                if (key < cta_hi)
                    ptx::cp_async_16(dst, k + static_cast<int64_t>(key) * kRowBytes + chunk * 16);
                else
                    *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
            }
            for (int r = thread; r < kBlockK; r += kNumThreads) {
                uint32_t* dst = smem_scale + stage * kBlockK + r;
                if (key_base + r < cta_hi)
                    ptx::cp_async_4(dst, reinterpret_cast<const uint32_t*>(kv_scale) + key_base + r);
                else
                    *dst = 0u;
            }
        }
        // An empty group where there is no tile keeps the wait counts uniform
        ptx::cp_async_commit();
    };

    #pragma unroll
    for (int i = 0; i < kNumStages - 1; ++ i)
        load_tile(i);

    // B fragments (q) and weights of this warp's queries, in registers for the whole kernel. For group `g`
    // (pairs 8g .. 8g + 7): query qi = 8g / H, heads h0 + 0..7 with h0 = 8g % H; lane holds head h0 + group
    // (B operand, k = tig * 4 + 0..3 and + 16) and the weights of accumulator columns h0 + 2 * tig + {0, 1}.
    // FP4: lane also holds the packed scales of head h0 + group (`b_sf`)
    uint32_t b_frag[kNumGroups][kNumKSteps][2];
    uint32_t b_sf[kNumGroups];
    float w[kNumGroups][2];
    #pragma unroll
    for (int g = 0; g < kNumGroups; ++ g) {
        const int qi = g * 8 / kNumHeads, h0 = g * 8 % kNumHeads;
        const int s = q_begin + warp * kQueriesPerWarp + qi;
        const bool valid = s < num_q;
        const int64_t q_row_index = static_cast<int64_t>(valid ? s : 0) * kNumHeads + h0 + group;
        const uint32_t* q_row = reinterpret_cast<const uint32_t*>(q + q_row_index * kRowBytes) + tig;
        b_sf[g] = 0u;
        if constexpr (kFp4)
            b_sf[g] = valid ? static_cast<uint32_t>(__ldg(q_sf + q_row_index)) : 0u;
        #pragma unroll
        for (int kk = 0; kk < kNumKSteps; ++ kk) {
            b_frag[g][kk][0] = valid ? __ldg(q_row + kk * 8) : 0u;
            b_frag[g][kk][1] = valid ? __ldg(q_row + kk * 8 + 4) : 0u;
        }
        #pragma unroll
        for (int e = 0; e < 2; ++ e) {
            const int64_t offset = static_cast<int64_t>(valid ? s : 0) * weights_stride + h0 + 2 * tig + e;
            float value;
            if (weights_bf16)
                value = bf16_bits_to_float(__ldg(reinterpret_cast<const uint16_t*>(weights) + offset));
            else
                value = __ldg(reinterpret_cast<const float*>(weights) + offset);
            if constexpr (kWeightsInSmem) {
                if (group == 0)
                    smem_w[((warp * kNumGroups + g) * 2 + e) * 4 + tig] = valid ? value : 0.0f;
            } else {
                w[g][e] = valid ? value : 0.0f;
            }
        }
    }
    if constexpr (kWeightsInSmem)
        __syncwarp();

    // This lane's ldmatrix row within a 16-key m-tile (matrix `lane / 8` is (rows +0 / +8) x (k 0-15 / 16-31)): the
    // lane map of `load_a16x32` (common/smem_tile.cuh), spelled out here with the terms computed once per thread.
    // NOTES: the helper itself (lane terms per load), or even `lane & 15` here, tipped ptxas' sm_90a allocation of the
    // portable FP4 form into spills (28 -> 188 B stored, the H100 test path); sm_120a SASS is the same either way
    const int ld_row = (lane % 8) + ((lane / 8) % 2) * 8, ld_chunk = lane / 16;

    for (int i = 0; i < my_num_tiles; ++ i) {
        ptx::cp_async_wait<kNumStages - 2>();
        __syncthreads();
        load_tile(i + kNumStages - 1);

        const int stage = i % kNumStages;
        const int key_base = cta_lo + (split + i * num_splits) * kBlockK;
        const uint8_t* tile = smem_k + stage * kTileBytes;
        const uint32_t* scales = smem_scale + stage * kBlockK;

        #pragma unroll 1
        for (int pair = 0; pair < kBlockK / 32; ++ pair) {
            const int pair_base = key_base + pair * 32;
            // Warp-uniform: skip 32 keys none of this warp's queries sees
            if (pair_base >= warp_hi or pair_base + 32 <= warp_lo)
                continue;

            // NOTES: the portable forms (`not kBlockScaled`) may convert operands per use: ptxas' emulation of the
            // plain FP8 mma.sync on sm_90 turns both into F16, portable FP4 dequantizes q to bf16 (4x the
            // registers); hoisting q's conversions out of this loop would spill. An empty asm makes q opaque per
            // pair-tile (no instructions), so they are rebuilt per use instead. Where q feeds the plain MMA raw
            // (sm_120a) the SASS is the same with or without it; the native FP4 form is better without it.
            if constexpr (not kBlockScaled) {
                #pragma unroll
                for (int g = 0; g < kNumGroups; ++ g) {
                    #pragma unroll
                    for (int kk = 0; kk < kNumKSteps; ++ kk)
                        asm volatile("" : "+r"(b_frag[g][kk][0]), "+r"(b_frag[g][kk][1]));
                    if constexpr (kFp4)
                        asm volatile("" : "+r"(b_sf[g]));
                }
            }
            float acc[2][kNumGroups][4];
            #pragma unroll
            for (int m = 0; m < 2; ++ m)
                #pragma unroll
                for (int g = 0; g < kNumGroups; ++ g)
                    acc[m][g][0] = acc[m][g][1] = acc[m][g][2] = acc[m][g][3] = 0.0f;

            // FP4: the packed scales of key rows `group` and `group + 8` of each m-tile
            uint32_t a_sf[2][2];
            if constexpr (kFp4) {
                #pragma unroll
                for (int m = 0; m < 2; ++ m)
                    #pragma unroll
                    for (int r = 0; r < 2; ++ r)
                        a_sf[m][r] = scales[pair * 32 + m * 16 + r * 8 + group];
            }

            #pragma unroll
            for (int kk = 0; kk < kNumKSteps; ++ kk) {
                uint32_t a[2][4];
                #pragma unroll
                for (int m = 0; m < 2; ++ m)
                    ptx::ldmatrix_x4(a[m], tile + SwizzledTile<kRowBytes>::offset(pair * 32 + m * 16 + ld_row,
                                                                                  kk * 2 + ld_chunk));
                if constexpr (kFp4) {
                    using Mma = mma::Fp4Mma<kBlockScaled>;
                    typename Mma::FragA fa[2];
                    #pragma unroll
                    for (int m = 0; m < 2; ++ m)
                        fa[m] = kk == 0 ? Mma::template make_a<0>(a[m], a_sf[m][0], a_sf[m][1])
                                        : Mma::template make_a<1>(a[m], a_sf[m][0], a_sf[m][1]);
                    #pragma unroll
                    for (int g = 0; g < kNumGroups; ++ g) {
                        const typename Mma::FragB fb = kk == 0 ? Mma::template make_b<0>(b_frag[g][kk], b_sf[g])
                                                               : Mma::template make_b<1>(b_frag[g][kk], b_sf[g]);
                        #pragma unroll
                        for (int m = 0; m < 2; ++ m)
                            Mma::mma(acc[m][g], fa[m], fb);
                    }
                } else {
                    #pragma unroll
                    for (int m = 0; m < 2; ++ m)
                        #pragma unroll
                        for (int g = 0; g < kNumGroups; ++ g)
                            mma::fp8_mma<kBlockScaled>(acc[m][g], a[m], b_frag[g][kk]);
                }
            }

            // relu, times w, summed over this lane's heads: v[(qi * 2 + m) * 2 + r] for key row `group + 8r`
            float v[kNumOutputs];
            #pragma unroll
            for (int o = 0; o < kNumOutputs; ++ o)
                v[o] = 0.0f;
            #pragma unroll
            for (int m = 0; m < 2; ++ m) {
                #pragma unroll
                for (int g = 0; g < kNumGroups; ++ g) {
                    const int qi = g * 8 / kNumHeads;
                    #pragma unroll
                    for (int r = 0; r < 2; ++ r) {
                        float& out = v[(qi * 2 + m) * 2 + r];
                        #pragma unroll
                        for (int e = 0; e < 2; ++ e) {
                            const float x = acc[m][g][r * 2 + e];
                            const float weight = kWeightsInSmem ? smem_w[((warp * kNumGroups + g) * 2 + e) * 4 + tig]
                                                                : w[g][e];
                            out = __fmaf_rn(x > 0.0f ? x : 0.0f, weight, out);
                        }
                    }
                }
            }

            // Reduce-scatter over the quad: after round 1 (xor 1) lane keeps the outputs with r = tig & 1, after
            // round 2 (xor 2) those with m = tig >> 1; each keeps its half and adds the partner's copy of it
            const int bit0 = tig & 1, bit1 = tig >> 1;
            float v1[kNumOutputs / 2], v2[kNumOutputs / 4];
            ptx::reduce_scatter_round<1>(v1, v, bit0);
            ptx::reduce_scatter_round<2>(v2, v1, bit1);

            // v2[qi]: query qi, key pair_base + 16 * bit1 + 8 * bit0 + group; a warp stores 32 consecutive keys
            const int key_offset = pair * 32 + bit1 * 16 + bit0 * 8 + group;
            const int key = key_base + key_offset;
            // FP4 has no per-key scale (its block scales are inside the MMA)
            const float scale = kFp4 ? 1.0f : __uint_as_float(scales[key_offset]);
            #pragma unroll
            for (int qi = 0; qi < kQueriesPerWarp; ++ qi) {
                const int local_q = warp * kQueriesPerWarp + qi;
                const int lo = smem_lo[local_q], hi = smem_hi[local_q];
                if (key < lo or key >= hi)
                    continue;
                const int64_t index = static_cast<int64_t>(q_begin + local_q) * logits_stride +
                                      (max_seqlen_k > 0 ? key - lo : key);
                const float value = kFp4 ? v2[qi] : v2[qi] * scale;
                if (logits_bf16)
                    reinterpret_cast<uint16_t*>(logits)[index] = float_to_bf16_bits(value);
                else
                    reinterpret_cast<float*>(logits)[index] = value;
            }
        }
    }
}

} // namespace deep_gemm
