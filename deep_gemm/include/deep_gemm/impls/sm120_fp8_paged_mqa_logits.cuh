#pragma once

// Paged MQA logits (CONTRACT.md §2.2) with FP8 or FP4 q and keys, for sm_89 / sm_90 / sm_120 / sm_121.
//
//   FP8: logits[b * n + t, j] = ( Σ_h relu(q[b, t, h, :] · k[j, :]) · w[b * n + t, h] ) · scale[j]
//   FP4: logits[b * n + t, j] =   Σ_h relu(Σ_blk sq[h, blk] · sk[j, blk] · (q[h, blk] · k[j, blk])) · w[b * n + t, h]
//   for j < ctx[b, t].
//
// Persistent grid: CTA s walks the work units (one page of one request) from meta[s] to meta[s + 1] (see
// `smxx_paged_mqa_logits_metadata.cuh`). The last warp is the producer: it alone walks the schedule, reads the
// block-table entries of the next 32 units with one coalesced load while the current ones are copied, and copies
// each page (keys, then scales) with cp.async into a ring of stages, writing a 16-byte header (b, page, bad) per
// stage. The other warps are consumers: every one of them waits on every stage (so all see the same unit sequence),
// computes the units of its page group, and releases the stage.
//
// MMA mapping: keys are M (A = 16 keys x 32 bytes of a key row, row-major = the page's token-major layout,
// loaded with ldmatrix.x4 from a swizzled stage), heads are N (B = 32 bytes x 8 heads, col-major = q's [H, row]
// layout, held raw in registers per (request, row)). FP8: m16n8k32 e4m3 (plain or block-scaled with unit scales);
// FP4: m16n8k64 e2m1 through `mma::Fp4Mma` (native block-scaled or portable bf16), whose A/B byte layout is the
// FP8 one, so loaders are shared. 32 bytes of a row = one k step either way.
//
// A consumer warp computes 2 m-tiles (16 keys each) of one page at a time: the two m-tiles' MMA chains interleave
// (16 independent accumulators for H = 64) and each B fragment feeds two MMAs.
// Epilogue: relu(acc) * w summed over the lane's heads, a reduce-scatter over the quad (shfl_xor 1, 2) that
// leaves each lane whole sums of distinct keys, times the key's scale (FP8), stored for j < ctx.
//
// Consumer warp w (of C = 4) = (page group g, row slot r, m-group part k): R rows in flight (1, 2 or 4 by next_n),
// P m-group parts, G = C / (R * P) page groups taking units u with u % G == g. For next_n > R a warp loops over
// rows r, r + R, ... and reloads its q fragments per row (a slower path for next_n > 4).
//
// NOTES: results are bitwise deterministic (fixed summation trees, no atomics). Every stage holds a whole page,
// so m-tiles past a row's length read defined shared memory and are never stored.

#include "../common/math.cuh"
#include "../common/smem_tile.cuh"
#include "../mma/fp4.cuh"
#include "../mma/mma.cuh"
#include "../ptx/utils.cuh"
#include "smxx_paged_mqa_logits_metadata.cuh"

namespace deep_gemm {

// Runtime flags of the paged logits kernel
enum PagedLogitsFlags : int {
    kPagedContextLens2D = 1,    // `context_lens` is [B, next_n] (else [B])
    kPagedWeightsBF16 = 2,      // `weights` is bf16 (else float32)
    kPagedLogitsBF16 = 4,       // logits are bf16 (else float32)
    kPagedAligned16 = 8,        // pages are 16-byte aligned: 16-byte cp.async (else 4-byte)
};

// One stage = one page: kBlockKV key rows of kRowBytes (D for FP8, D / 2 for FP4), then kBlockKV 4-byte scales
template <int kRowBytes, int kBlockKV>
struct PagedStageLayout {
    static constexpr int kKeyBytes = kBlockKV * kRowBytes;
    static constexpr int kPageBytes = kKeyBytes + kBlockKV * 4;
    static constexpr int kStageBytes = align_up(kPageBytes, 128);
    static constexpr int kChunksPerRow = kRowBytes / 16;
    // The key rows are a `SwizzledTile` (common/smem_tile.cuh), read with its A-fragment loader
    using Keys = SwizzledTile<kRowBytes>;

    DG_DEVICE static int key_offset(const int row, const int c) { return static_cast<int>(Keys::offset(row, c)); }
};

template <int kNumStages>
struct PagedSmem {
    int4 headers[kNumStages];
    uint64_t full[kNumStages];
    uint64_t empty[kNumStages];
};

// The producer's walk over this CTA's units, in batches of up to 32 pages of one request
struct PagedWalker {
    const int* context_lens;
    int64_t stride_b, stride_t;
    int next_n, block_kv, num_requests;
    bool is_2d;
    int b, p, b_last, p_last, page_limit;
    int cur_pages_b = -1, cur_pages = 0;

    DG_DEVICE bool next(int& out_b, int& out_p, int& out_count) {
        while (b < num_requests and (b < b_last or (b == b_last and p < p_last))) {
            if (cur_pages_b != b) {
                cur_pages = paged_request_pages(context_lens, b, stride_b, stride_t, next_n, is_2d, block_kv);
                cur_pages_b = b;
            }
            int end = min_of(cur_pages, page_limit);
            if (b == b_last)
                end = min_of(end, p_last);
            if (p < end) {
                out_b = b, out_p = p, out_count = min_of(32, end - p);
                p += out_count;
                return true;
            }
            ++b, p = 0;
        }
        return false;
    }
};

// kFp4: FP4 q / keys (else FP8). kFastMma: the sm_120a/121a-only form (FP8: block-scaled with unit scales; FP4:
// native m16n8k64); without it, the portable twin (FP8: the plain `mma.sync`, emulated by ptxas on sm_90; FP4:
// dequantized bf16 MMAs). The block is kNumConsumerWarps = 4 consumer warps plus one producer warp (the host's
// `PagedMQALogitsHeuristics::kNumThreads`). NOTES: 5 warps allow up to 255 registers, which 2 m-tiles per warp with
// q in registers need (9 warps would cap them at 168).
//
// kQSmem (portable FP4 only): each consumer warp dequantizes its row's q once into its own shared-memory region (bf16
// in the k order of `Fp4Mma<false>`; 16-byte chunks XOR-swizzled by head) and loads B fragments with ldmatrix,
// instead of dequantizing raw q registers per m-group.
template <int kNumHeads, int kHeadDim, int kBlockKV, int kNumStages, bool kFp4, bool kFastMma, bool kQSmem>
DG_DEVICE void sm120_fp8_paged_mqa_logits_impl(
        const uint8_t* q, const int* q_sf, const uint8_t* kv_cache, const int64_t page_stride, const int num_pool_pages,
        const void* weights, const int64_t weights_stride, const int* context_lens, const int64_t cl_stride_b,
        const int64_t cl_stride_t, const int* block_table, const int64_t bt_stride, const int max_pages,
        const int* schedule_meta, void* logits, const int64_t logits_stride, const int num_requests, const int next_n,
        const int max_context_len, const int flags) {
    constexpr int kRowBytes = kFp4 ? kHeadDim / 2 : kHeadDim;
    using Layout = PagedStageLayout<kRowBytes, kBlockKV>;
    using Fp4 = mma::Fp4Mma<kFastMma>;
    constexpr int kNumConsumerWarps = 4;
    constexpr int kMPerWarp = 2;
    constexpr int kMTiles = kBlockKV / 16;
    constexpr int kMGroups = kMTiles / kMPerWarp;
    constexpr int kNTiles = kNumHeads / 8;
    constexpr int kKSteps = kRowBytes / 32;
    static_assert(kNumHeads % 8 == 0 and kRowBytes % 32 == 0 and kBlockKV % 16 == 0, "unsupported shape");
    static_assert(Layout::kChunksPerRow <= 8, "key rows up to 128 bytes");
    static_assert(kMTiles % kMPerWarp == 0, "whole m-groups per page");
    static_assert(not kFp4 or kKSteps <= 2, "FP4: D <= 128");
    static_assert(not kQSmem or (kFp4 and not kFastMma), "q in shared memory: portable FP4 only");
    // The q region (kQSmem) after the stages and the barriers: per consumer warp, H rows of D bf16
    constexpr int kQOffset = kNumStages * Layout::kStageBytes + align_up(kNumStages * 32, 128);
    constexpr int kQRowBytes = kHeadDim * 2;
    static_assert(sizeof(PagedSmem<kNumStages>) == kNumStages * 32, "barrier block size (host: smem_bytes)");

    extern __shared__ __align__(1024) uint8_t smem_raw[];
    uint8_t* stages = smem_raw;
    auto& sm = *reinterpret_cast<PagedSmem<kNumStages>*>(smem_raw + kNumStages * Layout::kStageBytes);

    const int warp = static_cast<int>(ptx::warp_id()), lane = static_cast<int>(ptx::lane_id());
    const bool is_2d = (flags & kPagedContextLens2D) != 0;

    if (threadIdx.x == 0) {
        #pragma unroll
        for (int s = 0; s < kNumStages; ++s) {
            ptx::mbarrier_init(&sm.full[s], 33);    // 32 cp.async arrivals + the header write
            ptx::mbarrier_init(&sm.empty[s], kNumConsumerWarps);
        }
    }
    __syncthreads();

    if (warp == kNumConsumerWarps) {
        // ---------------------------------------------------------------------------------------- producer
        const int s = static_cast<int>(blockIdx.x);
        PagedWalker walker{context_lens, cl_stride_b, cl_stride_t, next_n, kBlockKV, num_requests, is_2d};
        walker.b = min_of(max_of(__ldg(schedule_meta + 2 * s), 0), num_requests);
        walker.p = max_of(__ldg(schedule_meta + 2 * s + 1), 0);
        walker.b_last = min_of(max_of(__ldg(schedule_meta + 2 * s + 2), 0), num_requests);
        walker.p_last = max_of(__ldg(schedule_meta + 2 * s + 3), 0);
        walker.page_limit = min_of(max_pages, max_context_len / kBlockKV + (max_context_len % kBlockKV != 0));
        const bool aligned = (flags & kPagedAligned16) != 0;
        // The 16-byte copy plan of a page, fixed per lane: key chunk c = lane + 32 i (i < kKeyIters) is row
        // c / kChunksPerRow, column lane % kChunksPerRow, so its swizzled stage offset is i * 512 plus one of two
        // per-lane constants (the swizzle term depends on i only through its parity); lanes below kScaleChunks also
        // copy one 16-byte chunk of the scales. NOTES: computing the offset per chunk (the first version) made the
        // single producer warp the bottleneck of the kernel (ncu: consumers waiting on full stages while the
        // producer never waited on an empty one).
        constexpr int kKeyChunks = Layout::kKeyBytes / 16, kKeyIters = kKeyChunks / 32;
        constexpr int kScaleChunks = (Layout::kPageBytes - Layout::kKeyBytes) / 16;
        static_assert(kKeyChunks % 32 == 0 and 32 % Layout::kChunksPerRow == 0 and kScaleChunks <= 32,
                      "whole warp passes over a page's keys");
        const auto key_dst = [&](const int i) {
            const int c = lane + 32 * i;
            return Layout::key_offset(c / Layout::kChunksPerRow, c % Layout::kChunksPerRow) - 512 * i;
        };
        const int key_dst_even = key_dst(0), key_dst_odd = key_dst(1);

        int nb = 0, np = 0, ncount = 0;
        bool has_next = walker.next(nb, np, ncount);
        int next_entry = (has_next and lane < ncount) ? __ldg(block_table + nb * bt_stride + np + lane) : 0;
        uint32_t u = 0;
        while (has_next) {
            const int cb = nb, cp = np, ccount = ncount, entry = next_entry;
            has_next = walker.next(nb, np, ncount);
            next_entry = (has_next and lane < ncount) ? __ldg(block_table + nb * bt_stride + np + lane) : 0;
            for (int i = 0; i < ccount; ++i, ++u) {
                const int page_idx = __shfl_sync(0xffffffffu, entry, i);
                const int stage = static_cast<int>(u % kNumStages);
                if (u >= kNumStages)
                    ptx::mbarrier_wait_parity(&sm.empty[stage], ((u / kNumStages) + 1) & 1);
                const bool bad = page_idx < 0 or page_idx >= num_pool_pages;
                if (not bad) {
                    const uint8_t* src = kv_cache + static_cast<int64_t>(page_idx) * page_stride;
                    uint8_t* dst = stages + stage * Layout::kStageBytes;
                    if (aligned) {
                        #pragma unroll
                        for (int i = 0; i < kKeyIters; ++i)
                            ptx::cp_async_16(dst + (i % 2 == 0 ? key_dst_even : key_dst_odd) + 512 * i,
                                             src + (lane + 32 * i) * 16);
                        if (lane < kScaleChunks)
                            ptx::cp_async_16(dst + Layout::kKeyBytes + lane * 16, src + Layout::kKeyBytes + lane * 16);
                    } else {
                        constexpr int kChunks = Layout::kPageBytes / 16;
                        #pragma unroll 4
                        for (int w = lane; w < kChunks * 4; w += 32) {
                            const int c = w >> 2;
                            const int off = c < kKeyChunks ? Layout::key_offset(c / Layout::kChunksPerRow,
                                                                                c % Layout::kChunksPerRow) : c * 16;
                            ptx::cp_async_4(dst + off + (w & 3) * 4, src + w * 4);
                        }
                    }
                }
                ptx::cp_async_mbarrier_arrive(&sm.full[stage]);
                if (lane == 0) {
                    sm.headers[stage] = make_int4(cb, cp + i, bad ? 1 : 0, 0);
                    ptx::mbarrier_arrive(&sm.full[stage]);
                }
            }
        }
        // The end marker
        const int stage = static_cast<int>(u % kNumStages);
        if (u >= kNumStages)
            ptx::mbarrier_wait_parity(&sm.empty[stage], ((u / kNumStages) + 1) & 1);
        ptx::cp_async_mbarrier_arrive(&sm.full[stage]);
        if (lane == 0) {
            sm.headers[stage] = make_int4(-1, 0, 0, 0);
            ptx::mbarrier_arrive(&sm.full[stage]);
        }
        ptx::cp_async_commit();
        ptx::cp_async_wait<0>();
        return;
    }

    // -------------------------------------------------------------------------------------------- consumers
    const int rows_in_flight = next_n == 1 ? 1 : (next_n == 2 ? 2 : 4);
    const int num_parts = min_of(kMGroups, kNumConsumerWarps / rows_in_flight);
    const int num_groups = kNumConsumerWarps / (rows_in_flight * num_parts);
    const int group = warp / (rows_in_flight * num_parts);
    const int row_slot = (warp / num_parts) % rows_in_flight;
    const int part = warp % num_parts;
    const bool weights_bf16 = (flags & kPagedWeightsBF16) != 0, logits_bf16 = (flags & kPagedLogitsBF16) != 0;
    const int g = lane / 4, tig = lane % 4, bit0 = tig & 1, bit1 = tig >> 1;

    uint32_t qf[kNTiles][kKSteps][2];   // raw B fragments (FP8 e4m3 / FP4 e2m1 bytes)
    uint32_t qs[kNTiles];               // FP4: packed UE8M0 scales of head n * 8 + g
    const uint8_t* w_row = nullptr;     // this row's weights (read per m-group: L1 hits, 16 fewer registers)
    uint8_t* q_smem = smem_raw + kQOffset + warp * (kNumHeads * kQRowBytes);   // kQSmem only: this warp's q region
    // Byte offset of 16-byte chunk `c` of head row `h` in q_smem (8 consecutive heads hit 8 distinct bank groups)
    const auto q_chunk = [](const int h, const int c) { return h * kQRowBytes + ((c ^ (h & 7)) << 4); };
    int cur_b = -1, cur_t = -1, row_len = 0;
    // Makes (b, t) the current row: its length (clamped to [0, max_context_len]) and its weights; returns its index
    const auto select_row = [&](const int b, const int t) {
        cur_b = b, cur_t = t;
        const int len = is_2d ? __ldg(context_lens + b * cl_stride_b + t * cl_stride_t)
                              : __ldg(context_lens + b * cl_stride_b) - next_n + 1 + t;
        row_len = min_of(max_of(len, 0), max_context_len);
        const int64_t row = static_cast<int64_t>(b) * next_n + t;
        w_row = static_cast<const uint8_t*>(weights) + row * weights_stride * (weights_bf16 ? 2 : 4);
        return row;
    };

    // Unit u's stage, the parity of its fill and u % num_groups, advanced per unit (no division on the warm path)
    int stage = 0, unit_group = 0;
    uint32_t phase = 0;
    for (;;) {
        ptx::mbarrier_wait_parity(&sm.full[stage], phase);
        const int4 header = sm.headers[stage];
        if (header.x < 0)
            break;
        if (unit_group == group) {
            const int b = header.x, page = header.y;
            const uint8_t* stage_ptr = stages + stage * Layout::kStageBytes;
            const uint8_t* scale_ptr = stage_ptr + Layout::kKeyBytes;
            for (int t = row_slot; t < next_n; t += rows_in_flight) {
                if (b != cur_b or t != cur_t) {
                    // A new (request, row): its length, q fragments and weights
                    const int64_t row = select_row(b, t);
                    const uint8_t* q_row = q + row * (kNumHeads * kRowBytes);
                    if constexpr (kQSmem) {
                        // Raw register r (8 e2m1, packed bytes 4k of head hd's row, k = r % (D / 8)) covers
                        // elements 64 ks + 32 h + 8 t + 0..7 (ks = k / 8, h = k / 4 % 2, t = k % 4); its bf16 pair
                        // j goes to 4-byte slot ((ks * 4 + j) * 2 + h) * 4 + t of the head's row, so that one
                        // ldmatrix matrix (8 heads x 16 bytes) is the B register (j, h) of `Fp4Mma<false>`
                        constexpr int kRegsPerRow = kHeadDim / 8;
                        __syncwarp();   // every lane is done reading the previous row's q
                        #pragma unroll 4
                        for (int r = lane; r < kNumHeads * kRegsPerRow; r += 32) {
                            const int hd = r / kRegsPerRow, k = r % kRegsPerRow;
                            const int ks = k / 8, h = (k / 4) % 2, t4 = k % 4;
                            const uint32_t raw = __ldg(reinterpret_cast<const uint32_t*>(q_row + hd * kRowBytes) + k);
                            const uint32_t sf = static_cast<uint32_t>(__ldg(q_sf + row * kNumHeads + hd));
                            uint32_t v[4];
                            mma::fp4_detail::e2m1x8_to_bf16x8(
                                v, raw, mma::fp4_detail::ue8m0_to_bf16x2((sf >> (8 * (2 * ks + h))) & 0xffu));
                            #pragma unroll
                            for (int j = 0; j < 4; ++j)
                                *reinterpret_cast<uint32_t*>(q_smem + q_chunk(hd, (ks * 4 + j) * 2 + h) + 4 * t4) =
                                    v[j];
                        }
                        __syncwarp();
                    }
                    #pragma unroll
                    for (int n = 0; n < (kQSmem ? 0 : kNTiles); ++n) {
                        #pragma unroll
                        for (int ks = 0; ks < kKSteps; ++ks) {
                            const uint8_t* p = q_row + (n * 8 + g) * kRowBytes + ks * 32 + 4 * tig;
                            qf[n][ks][0] = __ldg(reinterpret_cast<const uint32_t*>(p));
                            qf[n][ks][1] = __ldg(reinterpret_cast<const uint32_t*>(p + 16));
                        }
                        if constexpr (kFp4)
                            qs[n] = static_cast<uint32_t>(__ldg(q_sf + row * kNumHeads + n * 8 + g));
                    }
                }
                const int64_t out_row = (static_cast<int64_t>(b) * next_n + t) * logits_stride;
                for (int mg = part; mg < kMGroups; mg += num_parts) {
                    const int key0 = mg * kMPerWarp * 16;
                    if (page * kBlockKV + key0 >= row_len)
                        break;

                    // NOTES: the portable FP4 form dequantizes q per use; were that hoisted out of the unit loop,
                    // q's registers would quadruple (spills). XOR-ing q with the header's always-zero word, loaded
                    // from shared memory after this unit's barrier wait, makes q unit-variant for ptxas too; the
                    // m-group's m-tiles still share one dequantization. (FP8 on sm_90, emulated through F16, fits
                    // 255 registers without it, and spills with it.)
                    constexpr bool kOpaqueQ = kFp4 and not kFastMma and not kQSmem;
                    uint32_t qv[kNTiles][kKSteps][2];
                    const uint32_t opaque_zero = kOpaqueQ ? static_cast<uint32_t>(header.w) : 0u;
                    #pragma unroll
                    for (int n = 0; n < kNTiles; ++n)
                        #pragma unroll
                        for (int ks = 0; ks < kKSteps; ++ks)
                            qv[n][ks][0] = qf[n][ks][0] ^ opaque_zero, qv[n][ks][1] = qf[n][ks][1] ^ opaque_zero;

                    float acc[kMPerWarp][kNTiles][4];
                    #pragma unroll
                    for (int m = 0; m < kMPerWarp; ++m)
                        #pragma unroll
                        for (int n = 0; n < kNTiles; ++n)
                            acc[m][n][0] = acc[m][n][1] = acc[m][n][2] = acc[m][n][3] = 0.0f;

                    #pragma unroll
                    for (int ks = 0; ks < kKSteps; ++ks) {
                        uint32_t a[kMPerWarp][4];
                        #pragma unroll
                        for (int m = 0; m < kMPerWarp; ++m)
                            load_a16x32<kRowBytes>(a[m], stage_ptr, key0 + m * 16, ks, lane);
                        if constexpr (kFp4) {
                            typename Fp4::FragA fa[kMPerWarp];
                            #pragma unroll
                            for (int m = 0; m < kMPerWarp; ++m) {
                                const int* sk = reinterpret_cast<const int*>(scale_ptr) + key0 + m * 16 + g;
                                const auto sf0 = static_cast<uint32_t>(sk[0]), sf8 = static_cast<uint32_t>(sk[8]);
                                // (ks is a compile-time constant after unrolling; kKSteps <= 2 for FP4)
                                fa[m] = ks == 0 ? Fp4::template make_a<0>(a[m], sf0, sf8)
                                                : Fp4::template make_a<1>(a[m], sf0, sf8);
                            }
                            #pragma unroll
                            for (int n = 0; n < kNTiles; ++n) {
                                typename Fp4::FragB fb;
                                if constexpr (kQSmem) {
                                    // Matrices lane / 8 = (j, h) = (2p, 0), (2p, 1), (2p + 1, 0), (2p + 1, 1):
                                    // chunk ks * 8 + 4p + lane / 8 of heads n * 8 + lane % 8
                                    #pragma unroll
                                    for (int p = 0; p < 2; ++p) {
                                        uint32_t r4[4];
                                        ptx::ldmatrix_x4(r4, q_smem + q_chunk(n * 8 + (lane & 7),
                                                                              ks * 8 + 4 * p + (lane >> 3)));
                                        fb.r[2 * p][0] = r4[0], fb.r[2 * p][1] = r4[1];
                                        fb.r[2 * p + 1][0] = r4[2], fb.r[2 * p + 1][1] = r4[3];
                                    }
                                } else {
                                    fb = ks == 0 ? Fp4::template make_b<0>(qv[n][ks], qs[n])
                                                 : Fp4::template make_b<1>(qv[n][ks], qs[n]);
                                }
                                #pragma unroll
                                for (int m = 0; m < kMPerWarp; ++m)
                                    Fp4::mma(acc[m][n], fa[m], fb);
                            }
                        } else {
                            #pragma unroll
                            for (int n = 0; n < kNTiles; ++n)
                                #pragma unroll
                                for (int m = 0; m < kMPerWarp; ++m)
                                    mma::fp8_mma<kFastMma>(acc[m][n], a[m], qv[n][ks]);
                        }
                    }

                    // relu, times w, summed over this lane's heads: v[m * 2 + r] for key key0 + m * 16 + r * 8 + g
                    float wf[kNTiles][2];
                    #pragma unroll
                    for (int n = 0; n < kNTiles; ++n) {
                        const int h = n * 8 + 2 * tig;
                        // NOTES: scalar loads: a row of `weights` may start at any element (odd strides)
                        if (weights_bf16) {
                            const uint16_t* w = reinterpret_cast<const uint16_t*>(w_row) + h;
                            wf[n][0] = bf16_bits_to_float(__ldg(w)), wf[n][1] = bf16_bits_to_float(__ldg(w + 1));
                        } else {
                            const float* w = reinterpret_cast<const float*>(w_row) + h;
                            wf[n][0] = __ldg(w), wf[n][1] = __ldg(w + 1);
                        }
                    }
                    float v[kMPerWarp * 2];
                    #pragma unroll
                    for (int i = 0; i < kMPerWarp * 2; ++i)
                        v[i] = 0.0f;
                    #pragma unroll
                    for (int m = 0; m < kMPerWarp; ++m)
                        #pragma unroll
                        for (int n = 0; n < kNTiles; ++n)
                            #pragma unroll
                            for (int r = 0; r < 2; ++r)
                                #pragma unroll
                                for (int e = 0; e < 2; ++e)
                                    v[m * 2 + r] = __fmaf_rn(max_of(acc[m][n][r * 2 + e], 0.0f), wf[n][e],
                                                             v[m * 2 + r]);

                    // Reduce-scatter over the quad: round 1 (xor 1) keeps r = bit0; round 2 (xor 2) keeps m = bit1,
                    // leaving each lane the whole sum of key key0 + bit1 * 16 + bit0 * 8 + g
                    static_assert(kMPerWarp == 2, "two rounds leave one sum per lane");
                    float v1[kMPerWarp], v2[1];
                    ptx::reduce_scatter_round<1>(v1, v, bit0);
                    ptx::reduce_scatter_round<2>(v2, v1, bit1);
                    const float sum = v2[0];
                    const int key = key0 + bit1 * 16 + bit0 * 8 + g;
                    const int j = page * kBlockKV + key;
                    if (j < row_len) {
                        float value;
                        if (header.z != 0)
                            value = __int_as_float(0x7fc00000);   // a block-table entry outside the pool
                        else if constexpr (kFp4)
                            value = sum;
                        else
                            value = sum * reinterpret_cast<const float*>(scale_ptr)[key];
                        if (logits_bf16)
                            static_cast<uint16_t*>(logits)[out_row + j] = float_to_bf16_bits(value);
                        else
                            static_cast<float*>(logits)[out_row + j] = value;
                    }
                }
            }
        }
        __syncwarp();
        if (lane == 0)
            ptx::mbarrier_arrive(&sm.empty[stage]);
        if (++stage == kNumStages)
            stage = 0, phase ^= 1;
        if (++unit_group == num_groups)
            unit_group = 0;
    }
}

} // namespace deep_gemm
