#pragma once

// The mHC pre-norm GEMM (CONTRACT.md §3): d = a · bᵀ with TF32 operands and FP32 accumulation, and
// sqr_sum[m] = Σ_k a[m, k]², both from one pass over `a`.
//
// One CTA computes a kBlockM-row tile of `a` over one K range. Grid: x = M tile, y = internal K split,
// z = caller's split (`num_splits`). A kNumStages-deep cp.async pipeline streams kBlockK-wide slices of `a`
// (bf16) and `b` (fp32, only rows < N) through shared memory. 8 warps; warp w owns rows [16w, 16w + 16) of the tile
// over the whole K range (one m16 tile x kNumNTiles n8 tiles, tf32 `mma.sync m16n8k8`), so a warp's accumulators
// are complete and go straight from registers to `d` (no cross-warp reduction, no epilogue shared memory).
//
// Sized for two CTAs per SM: <= 48 KB of shared memory (sm_120: 2 x 49 KB of its 100 KB) and <= 128 registers at
// 256 threads (__launch_bounds__(256, 2)). Two independent CTAs per SM keep loads in flight while the other one
// waits at its barrier.
//
// NOTES: the order of k inside one m16n8k8 step does not change the product, so each lane takes a contiguous
// run of 8 k (one 16-byte load of `a`, two of `b`) per 32-k slice and step q uses its elements 2q and 2q+1 as
// the fragment's "k = t" and "k = t + 4". A bf16 pair (one 32-bit word) is then the a0/a2 pair of a fragment:
// `w << 16` and `w & 0xffff0000` are exact tf32 values. The same registers feed the squares, which are exact in
// FP32 (8-bit mantissas), so sqr_sum differs from FP32 math only by accumulation order. `b` is rounded to TF32 once
// per CTA, in shared memory, by the thread that copied it (after its own cp.async group completed, before the
// barrier that publishes the slice), so the MMA loop does no conversions.
//
// Shared memory: `a` rows are 64 bytes (32 bf16), so the 8 lanes of one 128-bit access phase (rows g, g + 1 at one
// row pitch apart, 4 chunks each) cover one 128-byte line: conflict-free without a swizzle. `b` rows are 128 bytes;
// chunk c of row n sits at c ^ (n & 1), so a phase (rows g, g + 1, chunks 2t or 2t + 1) is conflict-free.
//
// Determinism: every sum has a fixed order: per lane sequential over k, then a fixed shuffle tree over the 4 lanes
// of a quad, then (with internal splits) a fixed tree over the splits (see below), done by whichever CTA arrives
// last at a counter (the counter only elects it; no float atomics). The tree shape depends only on the shape.

#include "../common/types.cuh"
#include "../mma/mma.cuh"
#include "../ptx/utils.cuh"

namespace deep_gemm {

namespace hc_prenorm {

// 16-byte cp.async with zero fill: `valid == false` copies no byte and writes 16 zeros
DG_DEVICE void cp_async_16_zfill(uint32_t smem_dst, const void* gmem_src, bool valid) {
    const uint32_t src_size = valid ? 16u : 0u;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(smem_dst), "l"(gmem_src), "r"(src_size)
                 : "memory");
}

DG_DEVICE void lds_128(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}

DG_DEVICE void sts_128(uint32_t addr, const uint32_t (&r)[4]) {
    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};" :: "r"(addr), "r"(r[0]), "r"(r[1]), "r"(r[2]), "r"(r[3])
                 : "memory");
}

// L2-coherent loads of partials written by other CTAs of this launch
DG_DEVICE float4 ld_cg_f4(const float* ptr) {
    float4 v;
    asm volatile("ld.global.cg.v4.f32 {%0, %1, %2, %3}, [%4];" : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(ptr)
                 : "memory");
    return v;
}

DG_DEVICE uint32_t atomic_add_u32(uint32_t* ptr, uint32_t v) {
    uint32_t old;
    asm volatile("atom.global.add.u32 %0, [%1], %2;" : "=r"(old) : "l"(ptr), "r"(v) : "memory");
    return old;
}

// fp32 bits -> tf32 operand: round-to-nearest-away (`cvt.rna`, torch's TF32) or truncation (low 13 bits cleared)
DG_DEVICE uint32_t b_to_tf32(uint32_t bits, bool round_rna) {
    return round_rna ? mma::to_tf32(__uint_as_float(bits)) : (bits & 0xffffe000u);
}

} // namespace hc_prenorm

// Workspace (only with internal splits): per (user split, internal split, M tile) a block of kBlockM x kBlockN
// partial products followed by kBlockM partial square sums, then (two-level sums) one such block per
// (user split, group, M tile); `counters` holds (num_groups + 1) zeroed uint32 per (user split, M tile).
template <int kNumNTiles, int kBlockM, int kBlockK, int kNumStages, int kNumThreads>
DG_DEVICE void sm120_tf32_hc_prenorm_gemm_impl(const bf16_t* a, const int64_t lda, const float* b, const int64_t ldb,
                                               float* d, float* sqr_sum, float* workspace, uint32_t* counters,
                                               const int M, const int N, const int K, const int num_user_splits,
                                               const int num_int_splits, const int group_size, const int round_rna) {
    using namespace hc_prenorm;
    constexpr int kBlockN = kNumNTiles * 8;
    constexpr int kWarpM = 16;
    constexpr int kNumWarps = kNumThreads / 32;
    constexpr int kChunksA = kBlockK / 8;                       // 16-byte chunks per `a` row of a stage
    constexpr int kChunksB = kBlockK / 4;                       // 16-byte chunks per `b` row of a stage
    constexpr int kRowBytesA = kBlockK * 2, kRowBytesB = kBlockK * 4;
    constexpr int kStageBytesA = kBlockM * kRowBytesA;
    constexpr int kStageBytesB = kBlockN * kRowBytesB;
    constexpr int kLoadsA = kBlockM * kChunksA / kNumThreads;   // `a` chunks per thread per stage
    constexpr int kWsBlock = kBlockM * kBlockN + kBlockM;
    static_assert(1 <= kNumNTiles and kNumNTiles <= 4, "N must be at most 32");
    static_assert(kBlockK == 32, "one 16-byte `a` chunk and two `b` chunks per lane per stage");
    static_assert(kBlockM == kNumWarps * kWarpM, "one m16 row group per warp");
    static_assert(kBlockM * kChunksA % kNumThreads == 0, "whole `a` chunks per thread");
    static_assert(kBlockN * kChunksB <= kNumThreads, "at most one `b` chunk per thread");
    static_assert(kBlockM % 4 == 0 and kWsBlock % 4 == 0, "float4 workspace blocks");
    static_assert(kNumStages >= 2, "pipeline");

    extern __shared__ __align__(128) uint8_t smem_buf[];
    __shared__ int flag;
    const uint32_t smem_a = ptx::smem_addr(smem_buf);
    const uint32_t smem_b = smem_a + kNumStages * kStageBytesA;

    const int tid = static_cast<int>(threadIdx.x);
    const int warp = tid / 32, lane = tid % 32;
    const int g = lane / 4, t = lane % 4;

    const int tile = static_cast<int>(blockIdx.x), split = static_cast<int>(blockIdx.y);
    const int user_split = static_cast<int>(blockIdx.z);
    const int num_m_tiles = static_cast<int>(gridDim.x);
    const int m_base = tile * kBlockM;
    const int valid_rows = min_of(kBlockM, M - m_base);
    // Rows in smem: the row groups (warps) holding a valid row; the rest of such a group is zero-filled
    const int active_rows = min_of(kBlockM, align_up(valid_rows, kWarpM));
    const bool warp_active = warp * kWarpM < valid_rows;

    const int kb_per_user = K / kBlockK / num_user_splits;
    const int kb_begin = user_split * kb_per_user + split * kb_per_user / num_int_splits;
    const int kb_end = user_split * kb_per_user + (split + 1) * kb_per_user / num_int_splits;
    const int num_kb = kb_end - kb_begin;

    // --- producer mapping (fixed per thread): kLoadsA `a` chunks and at most one `b` chunk per stage ---
    const bf16_t* a_src[kLoadsA];
    uint32_t a_dst[kLoadsA];
    bool a_in[kLoadsA], a_valid[kLoadsA];
    #pragma unroll
    for (int j = 0; j < kLoadsA; ++j) {
        const int i = j * kNumThreads + tid;
        const int r = i / kChunksA, c = i % kChunksA;
        a_in[j] = r < active_rows;
        a_valid[j] = r < valid_rows;
        a_src[j] = a_valid[j] ? a + static_cast<int64_t>(m_base + r) * lda + static_cast<int64_t>(kb_begin) * kBlockK + c * 8
                              : a;
        a_dst[j] = r * kRowBytesA + c * 16;
    }
    const int bn = tid / kChunksB, bc = tid % kChunksB;
    const bool b_in = tid < kBlockN * kChunksB, b_valid = b_in and bn < N;
    const float* b_src = b_valid ? b + static_cast<int64_t>(bn) * ldb + static_cast<int64_t>(kb_begin) * kBlockK + bc * 4
                                 : b;
    const uint32_t b_dst = bn * kRowBytesB + ((bc ^ (bn & 1)) << 4);

    const auto load_stage = [&](const int stage, const int i) {
        const int64_t k_off = static_cast<int64_t>(i) * kBlockK;
        #pragma unroll
        for (int j = 0; j < kLoadsA; ++j) {
            if (a_in[j])
                cp_async_16_zfill(smem_a + stage * kStageBytesA + a_dst[j], a_valid[j] ? a_src[j] + k_off : a, a_valid[j]);
        }
        if (b_in)
            cp_async_16_zfill(smem_b + stage * kStageBytesB + b_dst, b_valid ? b_src + k_off : b, b_valid);
    };
    // This thread's `b` chunk of a landed stage -> TF32 in place (rows >= N are zeros and stay zeros)
    const auto convert_b = [&](const int stage) {
        if (b_valid) {
            const uint32_t addr = smem_b + stage * kStageBytesB + b_dst;
            uint32_t v[4];
            lds_128(v, addr);
            #pragma unroll
            for (int i = 0; i < 4; ++i)
                v[i] = b_to_tf32(v[i], round_rna != 0);
            sts_128(addr, v);
        }
    };

    float acc[kNumNTiles][4];
    float sq[2] = {0.0f, 0.0f};
    #pragma unroll
    for (int nt = 0; nt < kNumNTiles; ++nt)
        acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;

    // --- consumer: this warp's 16 rows x 32 k of one stage ---
    const uint32_t a_frag_off = (warp * kWarpM + g) * kRowBytesA + t * 16;
    const auto compute_stage = [&](const int stage) {
        const uint32_t sa = smem_a + stage * kStageBytesA + a_frag_off;
        const uint32_t sb = smem_b + stage * kStageBytesB;
        uint32_t av[2][4];
        lds_128(av[0], sa);                         // row g
        lds_128(av[1], sa + 8 * kRowBytesA);        // row g + 8
        uint32_t bv[kNumNTiles][8];
        #pragma unroll
        for (int nt = 0; nt < kNumNTiles; ++nt) {
            const int n = nt * 8 + g;
            uint32_t lo[4], hi[4];
            lds_128(lo, sb + n * kRowBytesB + (((2 * t) ^ (n & 1)) << 4));
            lds_128(hi, sb + n * kRowBytesB + (((2 * t + 1) ^ (n & 1)) << 4));
            #pragma unroll
            for (int i = 0; i < 4; ++i)
                bv[nt][i] = lo[i], bv[nt][4 + i] = hi[i];
        }
        #pragma unroll
        for (int q = 0; q < 4; ++q) {
            uint32_t frag[4];
            frag[0] = av[0][q] << 16;                   // row g,     k = t
            frag[1] = av[1][q] << 16;                   // row g + 8, k = t
            frag[2] = av[0][q] & 0xffff0000u;           // row g,     k = t + 4
            frag[3] = av[1][q] & 0xffff0000u;           // row g + 8, k = t + 4
            #pragma unroll
            for (int h = 0; h < 2; ++h) {
                const float x0 = __uint_as_float(frag[h]), x1 = __uint_as_float(frag[2 + h]);
                sq[h] = __fmaf_rn(x0, x0, sq[h]);
                sq[h] = __fmaf_rn(x1, x1, sq[h]);
            }
            #pragma unroll
            for (int nt = 0; nt < kNumNTiles; ++nt) {
                const uint32_t bf[2] = {bv[nt][2 * q], bv[nt][2 * q + 1]};
                mma::tf32_m16n8k8(acc[nt], frag, bf);
            }
        }
    };

    // --- pipeline: kNumStages - 1 slices in flight while one is consumed ---
    #pragma unroll
    for (int s = 0; s < kNumStages - 1; ++s) {
        if (s < num_kb)
            load_stage(s, s);
        ptx::cp_async_commit();
    }
    for (int i = 0; i < num_kb; ++i) {
        ptx::cp_async_wait<kNumStages - 2>();       // this thread's copies of slice i have landed
        const int stage = i % kNumStages;
        convert_b(stage);
        __syncthreads();                            // slice i visible; every warp is done with slice i - 1
        const int next = i + kNumStages - 1;
        if (next < num_kb)
            load_stage(next % kNumStages, next);    // the slot of slice i - 1
        ptx::cp_async_commit();
        if (warp_active)
            compute_stage(stage);
    }
    ptx::cp_async_wait<0>();

    // --- quad sums of the squares (fixed tree: (t0 + t1) + (t2 + t3), the same value in all 4 lanes) ---
    #pragma unroll
    for (int h = 0; h < 2; ++h) {
        sq[h] += ptx::shfl_xor(sq[h], 1);
        sq[h] += ptx::shfl_xor(sq[h], 2);
    }

    const int64_t out_row0 = static_cast<int64_t>(user_split) * M + m_base;
    const int row_lo = warp * kWarpM + g;          // this lane's rows: row_lo and row_lo + 8; cols 2t, 2t + 1
    if (num_int_splits == 1) {
        if (not warp_active)
            return;
        #pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int r = row_lo + h * 8;
            if (r < valid_rows) {
                float* dst = d + (out_row0 + r) * N;
                #pragma unroll
                for (int nt = 0; nt < kNumNTiles; ++nt) {
                    #pragma unroll
                    for (int j = 0; j < 2; ++j) {
                        const int c = nt * 8 + 2 * t + j;
                        if (c < N)
                            dst[c] = acc[nt][2 * h + j];
                    }
                }
                if (t == 0)
                    sqr_sum[out_row0 + r] = sq[h];
            }
        }
        return;
    }

    // --- internal K splits: a tree of at most two levels, each summed in a fixed order ---
    // Level 1: the splits form groups of `group_size`; each CTA publishes its partial, and the last CTA of a group to
    // arrive (elected by a counter) sums the group's partials in split order. With one group that sum is the result;
    // otherwise the group's closer publishes it as a level-2 partial and the last closer sums those in group order.
    // Every closer resets the counter that elected it, so the counters are zero again when the kernel ends (the host
    // keeps them in a persistent per-stream buffer and zeroes them only once).
    constexpr int kVecPerRow = kBlockN / 4;
    constexpr int kBatch = 4;                                                   // loads in flight per element
    constexpr int kElems = 2;                                                   // elements per thread per pass
    const int num_groups = ceil_div(num_int_splits, group_size);
    const int grp = split / group_size;
    const auto ws1 = [&](const int s) {
        return workspace + (static_cast<int64_t>(user_split * num_int_splits + s) * num_m_tiles + tile) * kWsBlock;
    };
    float* ws2_base = workspace + static_cast<int64_t>(num_user_splits) * num_int_splits * num_m_tiles * kWsBlock;
    const auto ws2 = [&](const int g2) {
        return ws2_base + (static_cast<int64_t>(user_split * num_groups + g2) * num_m_tiles + tile) * kWsBlock;
    };
    uint32_t* tile_counters = counters + static_cast<int64_t>(user_split * num_m_tiles + tile) * (num_groups + 1);

    // float4 elements of a block that are read: the valid rows of the products, then the square sums (rounded up to
    // 4 rows; rows of an active warp are always written, zero-filled rows give zeros)
    const int num_vec_d = valid_rows * kVecPerRow;
    const int num_vec = num_vec_d + ceil_div(valid_rows, 4);
    const auto ws_offset = [&](const int e) -> int64_t {
        return e < num_vec_d ? e * 4 : kBlockM * kBlockN + (e - num_vec_d) * 4;
    };
    // count this CTA in (after every thread's writes to the block); true for the last of `expected` arrivals
    const auto arrive = [&](uint32_t* counter, const int expected) {
        __threadfence();
        __syncthreads();
        if (tid == 0)
            flag = atomic_add_u32(counter, 1) == static_cast<uint32_t>(expected - 1);
        __syncthreads();
        const bool last = flag != 0;
        if (last)
            __threadfence();
        return last;
    };
    // out(e, v) for every element e of sum over i < count of block(i), in a fixed order: `group` lanes share an
    // element, lane u sums blocks u, u + group, ... in order, then a fixed xor tree joins the lanes. `group` depends
    // only on the shape. Every lane runs the same passes (the shuffles need the whole warp).
    const auto reduce = [&](auto&& block, const int count, auto&& out) {
        int group = 1;
        while (group < 32 and group < count and group * 2 * num_vec <= kNumThreads)
            group *= 2;
        const int u = lane % group, slots = kNumThreads / group;
        for (int base = 0; base < num_vec; base += slots * kElems) {
            float4 sum[kElems];
            #pragma unroll
            for (int j = 0; j < kElems; ++j)
                sum[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            for (int s0 = u; s0 < count; s0 += group * kBatch) {
                float4 v[kElems][kBatch];
                #pragma unroll
                for (int j = 0; j < kElems; ++j) {
                    const int e = base + j * slots + tid / group;
                    #pragma unroll
                    for (int k = 0; k < kBatch; ++k) {
                        if (e < num_vec and s0 + k * group < count)
                            v[j][k] = ld_cg_f4(block(s0 + k * group) + ws_offset(e));
                    }
                }
                #pragma unroll
                for (int j = 0; j < kElems; ++j) {
                    const int e = base + j * slots + tid / group;
                    #pragma unroll
                    for (int k = 0; k < kBatch; ++k) {
                        if (e < num_vec and s0 + k * group < count)
                            sum[j].x += v[j][k].x, sum[j].y += v[j][k].y, sum[j].z += v[j][k].z, sum[j].w += v[j][k].w;
                    }
                }
            }
            #pragma unroll
            for (int j = 0; j < kElems; ++j) {
                for (int o = group / 2; o > 0; o /= 2) {
                    sum[j].x += ptx::shfl_xor(sum[j].x, o), sum[j].y += ptx::shfl_xor(sum[j].y, o);
                    sum[j].z += ptx::shfl_xor(sum[j].z, o), sum[j].w += ptx::shfl_xor(sum[j].w, o);
                }
                const int e = base + j * slots + tid / group;
                if (e < num_vec and u == 0)
                    out(e, sum[j]);
            }
        }
    };
    const auto to_block = [&](float* ws) {
        return [ws, &ws_offset](const int e, const float4& v) { *reinterpret_cast<float4*>(ws + ws_offset(e)) = v; };
    };
    const auto to_outputs = [&](const int e, const float4& v) {
        const float vals[4] = {v.x, v.y, v.z, v.w};
        if (e < num_vec_d) {
            const int r = e / kVecPerRow, c0 = (e % kVecPerRow) * 4;
            #pragma unroll
            for (int i = 0; i < 4; ++i) {
                if (c0 + i < N)
                    d[(out_row0 + r) * N + c0 + i] = vals[i];
            }
        } else {
            const int r0 = (e - num_vec_d) * 4;
            #pragma unroll
            for (int i = 0; i < 4; ++i) {
                if (r0 + i < valid_rows)
                    sqr_sum[out_row0 + r0 + i] = vals[i];
            }
        }
    };

    // Level 1: registers -> this CTA's block (every row of an active warp; columns 2t, 2t + 1 of each n tile)
    {
        float* ws = ws1(split);
        if (warp_active) {
            #pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int r = row_lo + h * 8;
                #pragma unroll
                for (int nt = 0; nt < kNumNTiles; ++nt)
                    *reinterpret_cast<float2*>(ws + r * kBlockN + nt * 8 + 2 * t) =
                        make_float2(acc[nt][2 * h], acc[nt][2 * h + 1]);
                if (t == 0)
                    ws[kBlockM * kBlockN + r] = sq[h];
            }
        }
    }
    const int first = grp * group_size, in_group = min_of(group_size, num_int_splits - first);
    if (not arrive(tile_counters + grp, in_group))
        return;
    if (tid == 0)
        tile_counters[grp] = 0;
    const auto level1 = [&](const int i) { return ws1(first + i); };
    if (num_groups == 1) {
        reduce(level1, in_group, to_outputs);
        return;
    }
    // Level 2
    reduce(level1, in_group, to_block(ws2(grp)));
    if (not arrive(tile_counters + num_groups, num_groups))
        return;
    if (tid == 0)
        tile_counters[num_groups] = 0;
    reduce([&](const int i) { return ws2(i); }, num_groups, to_outputs);
}

} // namespace deep_gemm
