#pragma once

// The mHC pre-norm GEMM (CONTRACT.md §3): d = a · bᵀ with TF32 operands and FP32 accumulation, and
// sqr_sum[m] = Σ_k a[m, k]², both from one pass over `a`.
//
// One CTA computes a kBlockM-row tile of `a` over a share of the K blocks of the caller's split (a contiguous range of
// whole kBlockK blocks; internal split s of S takes its blocks s, s + S, s + 2S, ...). Grid: x = M tile, y = internal
// K split, z = caller's split (`num_splits`).
// A kNumStages-deep cp.async pipeline streams kBlockK-wide slices of `a` (bf16) and `b` (fp32, only rows < N)
// through shared memory. 8 warps = 4 row groups (32 rows each) x 2 K halves; a warp owns 2 m16 tiles x kNumNTiles
// n8 tiles and runs tf32 `mma.sync m16n8k8`.
//
// NOTES: the order of k inside one m16n8k8 step does not change the product, so each lane takes a contiguous
// run of 8 k (one 16-byte load of `a`, two of `b`) per 32-k chunk and step q uses its elements 2q and 2q+1 as
// the fragment's "k = t" and "k = t + 4". A bf16 pair (one 32-bit word) is then the a0/a2 pair of a fragment:
// `w << 16` and `w & 0xffff0000` are exact tf32 values. The same registers feed the squares, which are exact in
// FP32 (8-bit mantissas), so sqr_sum differs from FP32 math only by accumulation order.
//
// Determinism: every sum has a fixed order: per lane sequential over k, then a fixed shuffle tree over the 4
// lanes of a quad, then K half 0 + K half 1, then (with internal splits) a fixed tree over the splits (see the
// epilogue), done by whichever CTA arrives last at a counter (the counter only elects it; no float atomics). The
// K order of a CTA (rotated by M tile) and the tree shape depend only on the shape, never on timing.

#include "../common/types.cuh"
#include "../mma/mma.cuh"
#include "../ptx/utils.cuh"

namespace deep_gemm {

namespace hc_prenorm {

// One thread's rows of a tile copied in kPasses passes (row `row0 + j * per_pass` in pass j): whether pass j copies
// (row < copy_rows) and reads its row (row < valid_rows; otherwise the copy writes zeros), and its source, row
// `first + row` of `base` at column `col` (row 0 where it does not read: a defined address)
template <int kPasses, typename T>
struct PassRows {
    const T* src[kPasses];
    bool copy[kPasses], valid[kPasses];

    DG_DEVICE PassRows(const T* base, const int64_t ld, const int first, const int row0, const int per_pass,
                       const int copy_rows, const int valid_rows, const int col) {
        #pragma unroll
        for (int j = 0; j < kPasses; ++j) {
            const int r = row0 + j * per_pass;
            copy[j] = r < copy_rows, valid[j] = r < valid_rows;
            src[j] = base + (valid[j] ? static_cast<int64_t>(first + r) * ld : 0) + col;
        }
    }

    // The passes' 16-byte copies, `k_off` elements into the rows, pass j to `dst + j * pass_bytes`
    DG_DEVICE void issue(const uint32_t dst, const uint32_t pass_bytes, const int64_t k_off) const {
        #pragma unroll
        for (int j = 0; j < kPasses; ++j) {
            if (copy[j])
                ptx::cp_async_16_zfill(dst + j * pass_bytes, src[j] + k_off, valid[j]);
        }
    }
};

// fp32 bits -> tf32 operand: explicit truncation (the low 13 mantissa bits cleared) or round-to-nearest-away
template <bool kRoundRNA>
DG_DEVICE uint32_t b_to_tf32(uint32_t bits) {
    if constexpr (kRoundRNA)
        return mma::to_tf32(__uint_as_float(bits));
    else
        return bits & 0xffffe000u;
}

} // namespace hc_prenorm

// Workspace (only with internal splits): per (user split, internal split, M tile) a block of
// kBlockM x kBlockN partial products followed by kBlockM partial square sums; `counters` holds one zeroed
// uint32 per (user split, M tile).
template <int kNumNTiles, bool kRoundRNA, int kBlockM, int kBlockK, int kNumStages, int kNumThreads>
DG_DEVICE void sm120_tf32_hc_prenorm_gemm_impl(const bf16_t* a, const int64_t lda, const float* b, const int64_t ldb,
                                               float* d, float* sqr_sum, float* workspace, uint32_t* counters,
                                               const int M, const int N, const int K, const int num_user_splits,
                                               const int num_int_splits, const int group_size) {
    using namespace hc_prenorm;
    constexpr int kBlockN = kNumNTiles * 8;
    constexpr int kWarpM = 32;
    constexpr int kNumMGroups = kBlockM / kWarpM;
    constexpr int kNumWarps = kNumThreads / 32;
    constexpr int kNumKGroups = kNumWarps / kNumMGroups;
    constexpr int kWarpK = kBlockK / kNumKGroups;
    constexpr int kChunksA = kBlockK / 8;                       // 16-byte chunks per `a` row of a stage
    constexpr int kChunksB = kBlockK / 4;                       // 16-byte chunks per `b` row of a stage
    constexpr int kStageBytesA = kBlockM * kBlockK * 2;
    constexpr int kStageBytesB = kBlockN * kBlockK * 4;
    constexpr int kStageBytes = kStageBytesA + kStageBytesB;
    constexpr int kRedPitch = kBlockN + 4;                      // floats; padded against bank conflicts
    constexpr int kWsBlock = kBlockM * kBlockN + kBlockM;
    static_assert(1 <= kNumNTiles and kNumNTiles <= 4, "N must be at most 32");
    static_assert(kBlockK == 64 and kChunksA == 8, "the `a` swizzle assumes 128-byte rows");
    static_assert(kNumKGroups == 2 and kWarpK == 32, "8 warps: 4 row groups x 2 K halves of 32");
    static_assert(kBlockM % kWarpM == 0 and kNumMGroups * kNumKGroups == kNumWarps, "warp layout");
    static_assert(kBlockM * kRedPitch * 4 + kBlockM * 4 + 16 <= kStageBytes * kNumStages, "epilogue smem");
    static_assert(kBlockM % 4 == 0 and kWsBlock % 4 == 0, "float4 workspace blocks");
    static_assert(kNumStages >= 2, "pipeline");

    extern __shared__ __align__(128) uint8_t smem_buf[];
    const uint32_t smem_base = ptx::smem_addr(smem_buf);
    const uint32_t smem_a = smem_base;
    const uint32_t smem_b = smem_base + kNumStages * kStageBytesA;

    const int tid = static_cast<int>(threadIdx.x);
    const int warp = tid / 32, lane = tid % 32;
    const int g = lane / 4, t = lane % 4;
    const int wm = warp % kNumMGroups, kg = warp / kNumMGroups;

    const int tile = static_cast<int>(blockIdx.x), split = static_cast<int>(blockIdx.y);
    const int user_split = static_cast<int>(blockIdx.z);
    const int num_m_tiles = static_cast<int>(gridDim.x);
    const int m_base = tile * kBlockM;
    const int valid_rows = min_of(kBlockM, M - m_base);
    // Rows read by some warp: the row groups holding a valid row (the rest of such a group is zero-filled)
    const int active_rows = min_of(kBlockM, align_up(valid_rows, kWarpM));
    const bool warp_active = wm * kWarpM < valid_rows;

    // This CTA's K blocks: every num_int_splits-th block of the caller's split, starting at block `split`.
    // NOTES: interleaved rather than contiguous K ranges: the CTAs of one tile then read neighbouring 128-byte pieces
    // of the same rows at about the same time, and each CTA's addresses spread over the whole K range. Per-CTA
    // timeline on the H100 (docs/PERF.md, tf32_hc_prenorm_gemm, item 2), M = 4096, 4 splits, both forms in one run:
    // median main-loop end 47.3-48.2 instead of 50.5-51.4 us, the slowest CTA 48.9-50.1 instead of 53.0-54.8 us.
    // With contiguous ranges some tiles were slow in every run (their slowness correlated 0.96 between halves of 66
    // runs; the SM they ran on 0.49): an address effect, not an SM one.
    // The caller's split `user_split` of S owns the contiguous K blocks [kb_user0, kb_user1) of the K / kBlockK
    // blocks: [floor(u * nb / S), floor((u + 1) * nb / S)), so the splits' block counts differ by at most one and any
    // S >= 1 works. With S > nb some splits own no block: their CTAs load nothing and write zeros.
    const int num_k_blocks = K / kBlockK;
    const int kb_user0 = static_cast<int>(static_cast<int64_t>(user_split) * num_k_blocks / num_user_splits);
    const int kb_user1 = static_cast<int>(static_cast<int64_t>(user_split + 1) * num_k_blocks / num_user_splits);
    const int kb_per_user = kb_user1 - kb_user0;
    const int num_kb = (kb_per_user - split + num_int_splits - 1) / num_int_splits;
    // The K order is rotated by M tile: tiles of one split then read different slices of `b` (and different column
    // offsets of `a`) at the same moment instead of all CTAs asking L2 for the same `b` lines. The order depends only
    // on the shape and the tile, so the sums stay deterministic.
    const int rot = num_kb > 0 ? static_cast<int>(static_cast<int64_t>(tile) * num_kb / num_m_tiles % num_kb) : 0;
    const auto kb_of = [&](const int i) {
        const int j = i + rot;
        return kb_user0 + split + num_int_splits * (j >= num_kb ? j - num_kb : j);
    };

    // --- producer: one stage of `a` (rows < valid_rows, the active remainder zero-filled) and `b` (rows < N) ---
    // Each thread's copies are fixed for the whole K loop: chunk tid % kChunksA of `a` rows tid / kChunksA + j *
    // kRowsPerPassA, and chunk tid % kChunksB of `b` rows tid / kChunksB + j * kRowsPerPassB. Only the column k0
    // moves, so a copy costs one pointer add; sources, destinations and predicates are computed once here.
    // NOTES: the same plan as a per-operand struct (one constructor, an issue() method) cost 33 more SASS
    // instructions per stage in the main loop (252 vs 219: ptxas rematerialized thread-index math inside the loop),
    // so the two operands' plans stay spelled out.
    // NOTES: computing them per copy (the first version) made the producer 227 of the main loop's 405 SASS
    // instructions per warp per stage, and the kernel issue-latency bound (ncu: 4.4 cycles per issue, 2 warps
    // per scheduler, DRAM at 66%).
    constexpr int kRowsPerPassA = kNumThreads / kChunksA, kPassesA = kBlockM / kRowsPerPassA;
    constexpr int kRowsPerPassB = kNumThreads / kChunksB, kPassesB = ceil_div(kBlockN, kRowsPerPassB);
    static_assert(kNumThreads % kChunksA == 0 and kBlockM % kRowsPerPassA == 0 and kRowsPerPassA % 2 == 0,
                  "whole passes of `a` rows, the swizzle bit constant per thread");
    static_assert(kNumThreads % kChunksB == 0 and kRowsPerPassB % 2 == 0, "the `b` swizzle bit constant per thread");
    const int a_row0 = tid / kChunksA, a_chunk = tid % kChunksA;
    const int b_row0 = tid / kChunksB, b_chunk = tid % kChunksB;
    const uint32_t a_dst0 = a_row0 * (kChunksA * 16) + ((a_chunk ^ ((a_row0 & 1) << 2)) << 4);
    const uint32_t b_dst0 = b_row0 * (kChunksB * 16) + ((b_chunk ^ (b_row0 & 1)) << 4);
    // Rows past valid_rows (or N) copy nothing and write zeros; their source stays a defined address of row 0
    const PassRows<kPassesA, bf16_t> a_rows(a, lda, m_base, a_row0, kRowsPerPassA, active_rows, valid_rows,
                                            a_chunk * 8);
    const PassRows<kPassesB, float> b_rows(b, ldb, 0, b_row0, kRowsPerPassB, kBlockN, N, b_chunk * 4);
    const auto load_stage = [&](const int stage, const int kb) {
        const int64_t k0 = static_cast<int64_t>(kb) * kBlockK;
        a_rows.issue(smem_a + stage * kStageBytesA + a_dst0, kRowsPerPassA * kChunksA * 16, k0);
        b_rows.issue(smem_b + stage * kStageBytesB + b_dst0, kRowsPerPassB * kChunksB * 16, k0);
    };

    // `b` to TF32 once per stage, in place, each thread on the chunks it copied (complete for it after its
    // cp.async wait; the CTA barrier that follows publishes them) instead of every warp per use: the 4 row-group warps
    // read the same `b` values, so this is a quarter of the conversions (ptxas emulates cvt.rna.tf32 with 2
    // instructions: 48 of a warp's 227 SASS instructions per stage before)
    const auto round_b_stage = [&](const int stage) {
        const uint32_t sb = smem_b + stage * kStageBytesB + b_dst0;
        #pragma unroll
        for (int j = 0; j < kPassesB; ++j) {
            if (b_rows.copy[j]) {
                const uint32_t addr = sb + j * (kRowsPerPassB * kChunksB * 16);
                uint32_t v[4];
                ptx::lds_128(v, addr);
                #pragma unroll
                for (int e = 0; e < 4; ++e)
                    v[e] = b_to_tf32<kRoundRNA>(v[e]);
                ptx::sts_128(addr, v);
            }
        }
    };

    float acc[2][kNumNTiles][4];
    float sq[2][2];
    #pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
        sq[mt][0] = sq[mt][1] = 0.0f;
        #pragma unroll
        for (int nt = 0; nt < kNumNTiles; ++nt)
            acc[mt][nt][0] = acc[mt][nt][1] = acc[mt][nt][2] = acc[mt][nt][3] = 0.0f;
    }

    // --- consumer: this warp's 32 rows x 32 k of one stage ---
    const auto compute_stage = [&](const int stage) {
        const uint32_t sa = smem_a + stage * kStageBytesA;
        const uint32_t sb = smem_b + stage * kStageBytesB;
        const int ca = kg * (kWarpK / 8) + t;          // this lane's 16-byte chunk of an `a` row
        const int cb = kg * (kWarpK / 4) + 2 * t;      // the first of its two 16-byte chunks of a `b` row
        uint32_t av[2][2][4];
        #pragma unroll
        for (int mt = 0; mt < 2; ++mt) {
            #pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int r = wm * kWarpM + mt * 16 + h * 8 + g;
                ptx::lds_128(av[mt][h], sa + r * (kChunksA * 16) + ((ca ^ ((r & 1) << 2)) << 4));
            }
        }
        uint32_t bv[kNumNTiles][8];
        #pragma unroll
        for (int nt = 0; nt < kNumNTiles; ++nt) {
            const int n = nt * 8 + g;
            uint32_t lo[4], hi[4];
            ptx::lds_128(lo, sb + n * (kChunksB * 16) + ((cb ^ (n & 1)) << 4));
            ptx::lds_128(hi, sb + n * (kChunksB * 16) + (((cb + 1) ^ (n & 1)) << 4));
            #pragma unroll
            for (int i = 0; i < 4; ++i) {
                bv[nt][i] = lo[i];          // already TF32 (`round_b_stage`)
                bv[nt][4 + i] = hi[i];
            }
        }
        #pragma unroll
        for (int q = 0; q < 4; ++q) {
            uint32_t frag[2][4];
            #pragma unroll
            for (int mt = 0; mt < 2; ++mt) {
                frag[mt][0] = av[mt][0][q] << 16;               // row g,     k = t
                frag[mt][1] = av[mt][1][q] << 16;               // row g + 8, k = t
                frag[mt][2] = av[mt][0][q] & 0xffff0000u;       // row g,     k = t + 4
                frag[mt][3] = av[mt][1][q] & 0xffff0000u;       // row g + 8, k = t + 4
                #pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const float x0 = __uint_as_float(frag[mt][h]), x1 = __uint_as_float(frag[mt][2 + h]);
                    sq[mt][h] = __fmaf_rn(x0, x0, sq[mt][h]);
                    sq[mt][h] = __fmaf_rn(x1, x1, sq[mt][h]);
                }
            }
            #pragma unroll
            for (int mt = 0; mt < 2; ++mt) {
                #pragma unroll
                for (int nt = 0; nt < kNumNTiles; ++nt) {
                    const uint32_t bf[2] = {bv[nt][2 * q], bv[nt][2 * q + 1]};
                    mma::tf32_m16n8k8(acc[mt][nt], frag[mt], bf);
                }
            }
        }
    };

    // --- pipeline: kNumStages - 1 slices in flight while one is consumed ---
    #pragma unroll
    for (int s = 0; s < kNumStages - 1; ++s) {
        if (s < num_kb)
            load_stage(s, kb_of(s));
        ptx::cp_async_commit();
    }
    for (int i = 0; i < num_kb; ++i) {
        ptx::cp_async_wait<kNumStages - 2>();
        round_b_stage(i % kNumStages);
        __syncthreads();
        const int next = i + kNumStages - 1;
        if (next < num_kb)
            load_stage(next % kNumStages, kb_of(next));
        ptx::cp_async_commit();
        if (warp_active)
            compute_stage(i % kNumStages);
    }
    ptx::cp_async_wait<0>();
    __syncthreads();

    // --- epilogue: reduce the quad, then the two K halves, into smem `red` / `red_sq` (pipeline buffers reused) ---
    float* red = reinterpret_cast<float*>(smem_buf);
    float* red_sq = red + kBlockM * kRedPitch;
    int* flag = reinterpret_cast<int*>(red_sq + kBlockM);
    #pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
        #pragma unroll
        for (int h = 0; h < 2; ++h) {
            sq[mt][h] += ptx::shfl_xor(sq[mt][h], 1);
            sq[mt][h] += ptx::shfl_xor(sq[mt][h], 2);
        }
    }
    const auto visit = [&](auto&& fn) {
        #pragma unroll
        for (int mt = 0; mt < 2; ++mt) {
            #pragma unroll
            for (int nt = 0; nt < kNumNTiles; ++nt) {
                #pragma unroll
                for (int i = 0; i < 4; ++i) {
                    const int r = wm * kWarpM + mt * 16 + (i / 2) * 8 + g, c = nt * 8 + 2 * t + (i % 2);
                    fn(red[r * kRedPitch + c], acc[mt][nt][i]);
                }
            }
            #pragma unroll
            for (int h = 0; h < 2; ++h) {
                if (t == 0)
                    fn(red_sq[wm * kWarpM + mt * 16 + h * 8 + g], sq[mt][h]);
            }
        }
    };
    if (kg == 1)
        visit([](float& s, const float v) { s = v; });
    __syncthreads();
    if (kg == 0)
        visit([](float& s, const float v) { s = v + s; });    // K half 0 + K half 1
    __syncthreads();

    const int64_t out_row0 = static_cast<int64_t>(user_split) * M + m_base;
    const auto store_outputs = [&]() {
        for (int i = tid; i < valid_rows * N; i += kNumThreads) {
            const int r = i / N, c = i - r * N;
            d[out_row0 * N + i] = red[r * kRedPitch + c];
        }
        for (int r = tid; r < valid_rows; r += kNumThreads)
            sqr_sum[out_row0 + r] = red_sq[r];
    };

    if (num_int_splits == 1) {
        store_outputs();
        return;
    }

    // --- internal K splits: a tree of at most two levels, each summed in a fixed order ---
    // Level 1: the splits form groups of `group_size`; each CTA publishes its partial, and the last CTA of a group to
    // arrive (elected by a counter) sums the group's partials in split order. With one group that sum is the result;
    // otherwise the group's closer publishes it as a level-2 partial and the last closer sums those in group order.
    // Every closer resets the counter that elected it, so the counters are zero again when the kernel ends (the host
    // keeps them in a persistent per-stream buffer and zeroes them only once).
    constexpr int kVecPerRow = kBlockN / 4;
    constexpr int kMaxVec = kWsBlock / 4;                                       // float4 elements of a full block
    constexpr int kMaxJ = ceil_div(kMaxVec, kNumThreads);                       // elements per thread (group 1)
    constexpr int kBatch = max_of(2, 24 / kMaxJ);                              // loads per element in flight
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

    // float4 elements of a block: the valid rows of the products, then the square sums (rounded up to 4 rows)
    const int num_vec_d = valid_rows * kVecPerRow;
    const int num_vec = num_vec_d + ceil_div(valid_rows, 4);
    const auto ws_offset = [&](const int e) -> int64_t {
        return e < num_vec_d ? e * 4 : kBlockM * kBlockN + (e - num_vec_d) * 4;
    };
    const auto smem_vec = [&](const int e) -> float* {
        return e < num_vec_d ? red + (e / kVecPerRow) * kRedPitch + (e % kVecPerRow) * 4 : red_sq + (e - num_vec_d) * 4;
    };
    // red/red_sq -> a workspace block; then count this CTA in; true for the last of `expected` arrivals.
    // NOTES: one acq_rel atomic by one thread after the CTA barrier (PTX memory model: the barrier orders the other
    // threads' stores before it, and release is cumulative) instead of a __threadfence (fence.sc) in every thread
    // before and after a relaxed atomic: 1.57 instead of 2.12 us from the end of the main loop to the election
    // (H100, M = 4096, docs/PERF.md, tf32_hc_prenorm_gemm, item 1). The closer's other threads read the partials
    // after the second barrier, which orders them after thread 0's acquire.
    const auto publish_and_arrive = [&](float* ws, uint32_t* counter, const int expected) {
        for (int e = tid; e < num_vec; e += kNumThreads) {
            const float* src = smem_vec(e);
            *reinterpret_cast<float4*>(ws + ws_offset(e)) = make_float4(src[0], src[1], src[2], src[3]);
        }
        __syncthreads();
        if (tid == 0)
            *flag = ptx::atomic_add_acq_rel(counter, 1) == static_cast<uint32_t>(expected - 1);
        __syncthreads();
        return *flag != 0;
    };
    // The final value of float4 element `e` of a block, straight from registers to d / sqr_sum
    const auto store_vec = [&](const int e, const float4 v) {
        const float x[4] = {v.x, v.y, v.z, v.w};
        if (e < num_vec_d) {
            const int r = e / kVecPerRow, c0 = (e % kVecPerRow) * 4;
            #pragma unroll
            for (int i = 0; i < 4; ++i) {
                if (c0 + i < N)
                    d[(out_row0 + r) * N + c0 + i] = x[i];
            }
        } else {
            const int r0 = (e - num_vec_d) * 4;
            #pragma unroll
            for (int i = 0; i < 4; ++i) {
                if (r0 + i < valid_rows)
                    sqr_sum[out_row0 + r0 + i] = x[i];
            }
        }
    };
    // sum over i < count of block(i), in a fixed order: `group` lanes share an element, lane u sums blocks u,
    // u + group, ... in order, then a fixed xor tree joins the lanes. `group` depends only on the shape. All loads of
    // a batch (up to kMaxJ elements x kBatch blocks per thread) are issued before any add. The sum goes to d / sqr_sum
    // (`final`) or to red/red_sq.
    // NOTES: storing the final sums from registers (no pass through shared memory, no CTA barrier, no division by N)
    // took the closer's stores from 0.8 to 0.1 us (H100, M = 4096, docs/PERF.md, tf32_hc_prenorm_gemm, item 1).
    const auto reduce = [&](auto&& block, const int count, const bool final) {
        int group = 1;
        while (group < 32 and group < count and group * 2 * num_vec <= kNumThreads)
            group *= 2;
        const int u = lane % group, slots = kNumThreads / group;
        float4 sum[kMaxJ];
        #pragma unroll
        for (int j = 0; j < kMaxJ; ++j)
            sum[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        for (int s0 = u; s0 < count; s0 += group * kBatch) {
            float4 v[kMaxJ][kBatch];
            #pragma unroll
            for (int j = 0; j < kMaxJ; ++j) {
                const int e = tid / group + j * slots;
                #pragma unroll
                for (int k = 0; k < kBatch; ++k) {
                    if (e < num_vec and s0 + k * group < count)
                        v[j][k] = ptx::ld_cg_f4(block(s0 + k * group) + ws_offset(e));
                }
            }
            #pragma unroll
            for (int j = 0; j < kMaxJ; ++j) {
                const int e = tid / group + j * slots;
                #pragma unroll
                for (int k = 0; k < kBatch; ++k) {
                    if (e < num_vec and s0 + k * group < count)
                        sum[j].x += v[j][k].x, sum[j].y += v[j][k].y, sum[j].z += v[j][k].z, sum[j].w += v[j][k].w;
                }
            }
        }
        #pragma unroll
        for (int j = 0; j < kMaxJ; ++j) {
            for (int o = group / 2; o > 0; o /= 2) {
                sum[j].x += ptx::shfl_xor(sum[j].x, o), sum[j].y += ptx::shfl_xor(sum[j].y, o);
                sum[j].z += ptx::shfl_xor(sum[j].z, o), sum[j].w += ptx::shfl_xor(sum[j].w, o);
            }
        }
        if (final) {
            #pragma unroll
            for (int j = 0; j < kMaxJ; ++j) {
                const int e = tid / group + j * slots;
                if (e < num_vec and u == 0)
                    store_vec(e, sum[j]);
            }
            return;
        }
        __syncthreads();    // every thread is done reading red/red_sq (publish) before they are overwritten
        #pragma unroll
        for (int j = 0; j < kMaxJ; ++j) {
            const int e = tid / group + j * slots;
            if (e < num_vec and u == 0) {
                float* dst = smem_vec(e);
                dst[0] = sum[j].x, dst[1] = sum[j].y, dst[2] = sum[j].z, dst[3] = sum[j].w;
            }
        }
        __syncthreads();
    };

    // Level 1
    const int first = grp * group_size, in_group = min_of(group_size, num_int_splits - first);
    const bool closer = publish_and_arrive(ws1(split), tile_counters + grp, in_group);
    if (not closer)
        return;
    reduce([&](const int i) { return ws1(first + i); }, in_group, num_groups == 1);
    if (tid == 0)
        tile_counters[grp] = 0;
    if (num_groups == 1)
        return;
    // Level 2
    if (not publish_and_arrive(ws2(grp), tile_counters + num_groups, num_groups))
        return;
    reduce([&](const int i) { return ws2(i); }, num_groups, true);
    if (tid == 0)
        tile_counters[num_groups] = 0;
}

} // namespace deep_gemm
