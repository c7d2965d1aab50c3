#pragma once

// Writes -inf into every logit column outside a row's valid range, and nothing else (CONTRACT.md §2.4).
// The paged path launches this kernel after its logits kernel; the ragged logits kernel writes its own -inf columns
// (sm120_fp8_mqa_logits.cuh) with `fill_neg_inf` below, and this kernel's ragged mode remains an internal entry point.
//
// Work split: warps own contiguous runs of work items; an item is a (row, column segment) pair, so a long masked
// span is shared by several warps (a few very long rows, e.g. paged decode, still fill the GPU) while short rows cost
// one item. Every warp loads the valid ranges of all its rows at once (one load latency, before any store), then
// only stores. Rows are visited in zig-zag order (virtual row 2p -> row p, 2p + 1 -> row R - 1 - p), so with causal
// masks (masked length linear in the row) every run of two virtual rows carries the same work: warps, and hence SMs,
// get balanced work without a prefix sum. The interior of each masked span is written with 16-byte stores.

#include "../common/math.cuh"

namespace deep_gemm {

// How a row's valid range [begin, end) is described
enum class CleanMode : int {
    kRagged = 0,        // begin = ks[row], end = ke[row] (clamped to [0, num_cols])
    kPaged2D = 1,       // begin = 0, end = context_lens[b, t] with row = b * next_n + t
    kPaged1D = 2,       // begin = 0, end = context_lens[b] - next_n + 1 + t
};

template <CleanMode kMode>
DG_DEVICE void get_valid_range(const int row, const int num_cols, const int* ks, const int* ends,
                               const int64_t ends_stride_b, const int64_t ends_stride_t, const int next_n,
                               int& begin, int& end) {
    if constexpr (kMode == CleanMode::kRagged) {
        begin = min_of(max_of(__ldg(ks + row), 0), num_cols);
        end = min_of(max_of(__ldg(ends + row), begin), num_cols);
    } else {
        const int b = row / next_n, t = row % next_n;
        int len;
        if constexpr (kMode == CleanMode::kPaged2D)
            len = __ldg(ends + b * ends_stride_b + t * ends_stride_t);
        else
            len = __ldg(ends + b * ends_stride_b) - next_n + 1 + t;
        begin = 0;
        end = min_of(max_of(len, 0), num_cols);
    }
}

// Fill [lo, hi) of one row with the -inf pattern, `kNumThreads` threads with ids `tid` cooperating;
// `row_ptr` is 16-byte aligned (the row stride guarantees it)
template <typename T, int kNumThreads>
DG_DEVICE void fill_neg_inf(T* row_ptr, int lo, int hi, const int tid) {
    if (lo >= hi)
        return;
    constexpr int kPerVec = 16 / sizeof(T);
    const uint32_t word = neg_inf_word<T>();
    const T value = *reinterpret_cast<const T*>(&word);
    const int vec_lo = min_of(align_up(lo, kPerVec), hi), vec_hi = max_of(hi / kPerVec * kPerVec, vec_lo);
    // Unaligned head and tail, at most `kPerVec - 1` elements each
    if (lo + tid < vec_lo)
        row_ptr[lo + tid] = value;
    if (vec_hi + tid < hi)
        row_ptr[vec_hi + tid] = value;
    const uint4 pattern = make_uint4(word, word, word, word);
    uint4* vec_ptr = reinterpret_cast<uint4*>(row_ptr);
    #pragma unroll 4
    for (int i = vec_lo / kPerVec + tid; i < vec_hi / kPerVec; i += kNumThreads)
        vec_ptr[i] = pattern;
}

// Virtual row -> row: 0, R - 1, 1, R - 2, ...
DG_DEVICE int zigzag_row(const int v, const int num_rows) {
    return (v & 1) ? num_rows - 1 - (v >> 1) : (v >> 1);
}

// Items (virtual row v, segment s) in row-major order, `items_per_warp` consecutive items per warp
template <typename T, CleanMode kMode, int kNumThreads>
DG_DEVICE void smxx_clean_logits_impl(T* logits, const int64_t row_stride, const int num_rows, const int num_cols,
                                      const int* ks, const int* ends, const int64_t ends_stride_b,
                                      const int64_t ends_stride_t, const int next_n, const int seg_cols,
                                      const int num_segs, const int items_per_warp) {
    static_assert(kNumThreads % 32 == 0, "whole warps");
    const int lane = static_cast<int>(threadIdx.x) % 32;
    const int64_t warp = static_cast<int64_t>(blockIdx.x) * (kNumThreads / 32) + static_cast<int>(threadIdx.x) / 32;
    const int64_t total = static_cast<int64_t>(num_rows) * num_segs;
    int64_t item = warp * items_per_warp;
    const int64_t item_end = min_of(total, item + items_per_warp);
    while (item < item_end) {
        // The ranges of up to 32 rows at once, one lane each
        const int v0 = static_cast<int>(item / num_segs);
        const int num_v = static_cast<int>(min_of<int64_t>(32, (item_end - 1) / num_segs - v0 + 1));
        int my_begin = 0, my_end = 0;
        if (lane < num_v)
            get_valid_range<kMode>(zigzag_row(v0 + lane, num_rows), num_cols, ks, ends, ends_stride_b, ends_stride_t,
                                   next_n, my_begin, my_end);
        for (int r = 0; r < num_v; ++ r) {
            const int begin = __shfl_sync(0xffffffffu, my_begin, r), end = __shfl_sync(0xffffffffu, my_end, r);
            const int v = v0 + r;
            const int64_t row_first = static_cast<int64_t>(v) * num_segs;
            // This warp's consecutive segments of the row, as one column range
            const int s_lo = static_cast<int>(max_of(item, row_first) - row_first);
            const int s_hi = static_cast<int>(min_of(item_end, row_first + num_segs) - row_first);
            const int c_lo = s_lo * seg_cols;
            const int c_hi = static_cast<int>(min_of<int64_t>(num_cols, static_cast<int64_t>(s_hi) * seg_cols));
            T* row_ptr = logits + zigzag_row(v, num_rows) * row_stride;
            fill_neg_inf<T, 32>(row_ptr, c_lo, min_of(begin, c_hi), lane);
            fill_neg_inf<T, 32>(row_ptr, max_of(end, c_lo), c_hi, lane);
        }
        item = static_cast<int64_t>(v0 + num_v) * num_segs;
    }
}

} // namespace deep_gemm
