#pragma once

// Paged MQA logits with FP8 q and FP8 keys (CONTRACT.md §2.2), for sm_89 / sm_90 / sm_120 / sm_121.
//
//   logits[b * n + t, j] = ( Σ_h relu(q[b, t, h, :] · k[j, :]) · w[b * n + t, h] ) · scale[j],   j < ctx[b, t]
//
// Persistent grid: CTA s walks the work units (one page of one request) from meta[s] to meta[s + 1] (see
// `smxx_paged_mqa_logits_metadata.cuh`). Warp 8 is the producer: it alone walks the schedule, reads the
// block-table entries of the next 32 units with one coalesced load while the current ones are copied, and copies
// each page (keys, then scales) with cp.async into a ring of stages, writing a 16-byte header (b, page, bad) per
// stage. Warps 0-7 are consumers: every one of them waits on every stage (so all see the same unit sequence),
// computes the units of its page group, and releases the stage.
//
// MMA mapping (m16n8k32, e4m3): keys are M (A = 16 keys x 32 bytes of d, row-major = the page's token-major
// layout, loaded with ldmatrix.x4 from a swizzled stage), heads are N (B = 32 d x 8 heads, col-major = q's
// [H, D] layout, held in registers per (request, row)). The epilogue sums relu(acc) * w over the thread's heads,
// reduces over the quad with two xor-shuffles, multiplies by the key's scale and stores j < ctx.
//
// Consumer warp w (of 8) = (page group g, row slot r, m-tile part k): R rows in flight (1, 2 or 4 by next_n),
// P m-tile parts, G = 8 / (R * P) page groups taking units u with u % G == g. For next_n > R a warp loops over
// rows r, r + R, ... and reloads its q fragments per row (a slower path for next_n > 4).

#include "../common/math.cuh"
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

template <int kHeadDim, int kBlockKV>
struct PagedStageLayout {
    static constexpr int kKeyBytes = kBlockKV * kHeadDim;
    static constexpr int kPageBytes = kKeyBytes + kBlockKV * 4;
    static constexpr int kStageBytes = align_up(kPageBytes, 128);
    static constexpr int kChunksPerRow = kHeadDim / 16;
    static constexpr int kRowsPerLine = 8 / kChunksPerRow;   // 128-byte bank line

    // NOTES: byte offset of 16-byte chunk `c` of key row `row`: XOR-swizzled so that the 8 rows one ldmatrix
    // matrix reads land in 8 distinct 16-byte bank groups
    DG_DEVICE static int key_offset(const int row, const int c) {
        return row * kHeadDim + ((c ^ ((row / kRowsPerLine) % kChunksPerRow)) << 4);
    }
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

template <int kNumHeads, int kHeadDim, int kBlockKV, int kNumStages, bool kBlockScaled>
DG_DEVICE void sm120_fp8_paged_mqa_logits_impl(
        const uint8_t* q, const uint8_t* kv_cache, const int64_t page_stride, const int num_pool_pages,
        const void* weights, const int64_t weights_stride, const int* context_lens, const int64_t cl_stride_b,
        const int64_t cl_stride_t, const int* block_table, const int64_t bt_stride, const int max_pages,
        const int* schedule_meta, void* logits, const int64_t logits_stride, const int num_requests, const int next_n,
        const int max_context_len, const int flags) {
    using Layout = PagedStageLayout<kHeadDim, kBlockKV>;
    constexpr int kNumConsumerWarps = 8;
    constexpr int kMTiles = kBlockKV / 16;
    constexpr int kNTiles = kNumHeads / 8;
    constexpr int kKSteps = kHeadDim / 32;
    static_assert(kNumHeads % 8 == 0 and kHeadDim % 32 == 0 and kBlockKV % 16 == 0, "unsupported shape");
    static_assert(Layout::kChunksPerRow <= 8, "head dim up to 128");

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
                    constexpr int kKeyChunks = Layout::kKeyBytes / 16, kChunks = Layout::kPageBytes / 16;
                    if (aligned) {
                        #pragma unroll 4
                        for (int c = lane; c < kChunks; c += 32) {
                            const int off = c < kKeyChunks ? Layout::key_offset(c / Layout::kChunksPerRow,
                                                                                c % Layout::kChunksPerRow) : c * 16;
                            ptx::cp_async_16(dst + off, src + c * 16);
                        }
                    } else {
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
    const int num_parts = min_of(kMTiles, kNumConsumerWarps / rows_in_flight);
    const int num_groups = kNumConsumerWarps / (rows_in_flight * num_parts);
    const int group = warp / (rows_in_flight * num_parts);
    const int row_slot = (warp / num_parts) % rows_in_flight;
    const int part = warp % num_parts;
    const bool weights_bf16 = (flags & kPagedWeightsBF16) != 0, logits_bf16 = (flags & kPagedLogitsBF16) != 0;

    uint32_t qf[kNTiles][kKSteps][2];
    float wf[kNTiles][2];
    int cur_b = -1, cur_t = -1, row_len = 0;

    for (uint32_t u = 0;; ++u) {
        const int stage = static_cast<int>(u % kNumStages);
        ptx::mbarrier_wait_parity(&sm.full[stage], (u / kNumStages) & 1);
        const int4 header = sm.headers[stage];
        if (header.x < 0)
            break;
        if (static_cast<int>(u % static_cast<uint32_t>(num_groups)) == group) {
            const int b = header.x, page = header.y;
            const uint8_t* stage_ptr = stages + stage * Layout::kStageBytes;
            const float* scales = reinterpret_cast<const float*>(stage_ptr + Layout::kKeyBytes);
            for (int t = row_slot; t < next_n; t += rows_in_flight) {
                if (b != cur_b or t != cur_t) {
                    // A new (request, row): its length, q fragments and weights
                    cur_b = b, cur_t = t;
                    const int len = is_2d ? __ldg(context_lens + b * cl_stride_b + t * cl_stride_t)
                                          : __ldg(context_lens + b * cl_stride_b) - next_n + 1 + t;
                    row_len = min_of(max_of(len, 0), max_context_len);
                    const int64_t row = static_cast<int64_t>(b) * next_n + t;
                    const uint8_t* q_row = q + row * (kNumHeads * kHeadDim);
                    #pragma unroll
                    for (int n = 0; n < kNTiles; ++n) {
                        #pragma unroll
                        for (int ks = 0; ks < kKSteps; ++ks) {
                            const uint8_t* p = q_row + (n * 8 + lane / 4) * kHeadDim + ks * 32 + 4 * (lane % 4);
                            qf[n][ks][0] = __ldg(reinterpret_cast<const uint32_t*>(p));
                            qf[n][ks][1] = __ldg(reinterpret_cast<const uint32_t*>(p + 16));
                        }
                    }
                    #pragma unroll
                    for (int n = 0; n < kNTiles; ++n) {
                        const int h = n * 8 + 2 * (lane % 4);
                        if (weights_bf16) {
                            const uint16_t* w = static_cast<const uint16_t*>(weights) + row * weights_stride + h;
                            wf[n][0] = bf16_bits_to_float(__ldg(w)), wf[n][1] = bf16_bits_to_float(__ldg(w + 1));
                        } else {
                            const float* w = static_cast<const float*>(weights) + row * weights_stride + h;
                            wf[n][0] = __ldg(w), wf[n][1] = __ldg(w + 1);
                        }
                    }
                }
                const int64_t out_row = (static_cast<int64_t>(b) * next_n + t) * logits_stride;
                for (int m = part; m < kMTiles; m += num_parts) {
                    const int j0 = page * kBlockKV + m * 16;
                    if (j0 >= row_len)
                        break;
                    float s0 = 0.0f, s1 = 0.0f;
                    if (header.z != 0) {
                        // A block-table entry outside the pool: poison instead of reading out of bounds
                        s0 = s1 = __int_as_float(0x7fc00000);
                    } else {
                        float acc[kNTiles][4];
                        #pragma unroll
                        for (int n = 0; n < kNTiles; ++n)
                            acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
                        const int a_row = m * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
                        #pragma unroll
                        for (int ks = 0; ks < kKSteps; ++ks) {
                            uint32_t a[4];
                            ptx::ldmatrix_x4(a, stage_ptr + Layout::key_offset(a_row, ks * 2 + (lane >> 4)));
                            #pragma unroll
                            for (int n = 0; n < kNTiles; ++n)
                                mma::fp8_mma<kBlockScaled>(acc[n], a, qf[n][ks]);
                        }
                        #pragma unroll
                        for (int n = 0; n < kNTiles; ++n) {
                            s0 += max_of(acc[n][0], 0.0f) * wf[n][0] + max_of(acc[n][1], 0.0f) * wf[n][1];
                            s1 += max_of(acc[n][2], 0.0f) * wf[n][0] + max_of(acc[n][3], 0.0f) * wf[n][1];
                        }
                        s0 += ptx::shfl_xor(s0, 1), s1 += ptx::shfl_xor(s1, 1);
                        s0 += ptx::shfl_xor(s0, 2), s1 += ptx::shfl_xor(s1, 2);
                    }
                    // Lane 4i stores key i, lane 4i + 1 stores key i + 8
                    if ((lane & 3) < 2) {
                        const int key = m * 16 + lane / 4 + (lane & 1) * 8;
                        const int j = page * kBlockKV + key;
                        if (j < row_len) {
                            const float v = ((lane & 1) ? s1 : s0) * (header.z != 0 ? 1.0f : scales[key]);
                            if (logits_bf16)
                                static_cast<uint16_t*>(logits)[out_row + j] = float_to_bf16_bits(v);
                            else
                                static_cast<float*>(logits)[out_row + j] = v;
                        }
                    }
                }
            }
        }
        __syncwarp();
        if (lane == 0)
            ptx::mbarrier_arrive(&sm.empty[stage]);
    }
}

} // namespace deep_gemm
