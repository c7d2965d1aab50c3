#pragma once

// Writes -inf into every logit column outside a row's valid range, and nothing else (CONTRACT.md §2.4).
// One block per row group; the interior of each masked span is written with 16-byte stores.

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

// Fill [lo, hi) of one row with the -inf pattern; `row_ptr` is 16-byte aligned (the row stride guarantees it)
template <typename T, int kNumThreads>
DG_DEVICE void fill_neg_inf(T* row_ptr, int lo, int hi) {
    if (lo >= hi)
        return;
    constexpr int kPerVec = 16 / sizeof(T);
    const uint32_t word = neg_inf_word<T>();
    const T value = *reinterpret_cast<const T*>(&word);
    const int vec_lo = min_of(align_up(lo, kPerVec), hi), vec_hi = max_of(hi / kPerVec * kPerVec, vec_lo);
    // Unaligned head and tail, at most `kPerVec - 1` elements each
    for (int i = lo + static_cast<int>(threadIdx.x); i < vec_lo; i += kNumThreads)
        row_ptr[i] = value;
    for (int i = vec_hi + static_cast<int>(threadIdx.x); i < hi; i += kNumThreads)
        row_ptr[i] = value;
    const uint4 pattern = make_uint4(word, word, word, word);
    uint4* vec_ptr = reinterpret_cast<uint4*>(row_ptr);
    for (int i = vec_lo / kPerVec + static_cast<int>(threadIdx.x); i < vec_hi / kPerVec; i += kNumThreads)
        vec_ptr[i] = pattern;
}

template <typename T, CleanMode kMode, int kNumThreads>
DG_DEVICE void smxx_clean_logits_impl(T* logits, const int64_t row_stride, const int num_rows, const int num_cols,
                                      const int* ks, const int* ends, const int64_t ends_stride_b,
                                      const int64_t ends_stride_t, const int next_n) {
    for (int row = blockIdx.x; row < num_rows; row += gridDim.x) {
        int begin, end;
        get_valid_range<kMode>(row, num_cols, ks, ends, ends_stride_b, ends_stride_t, next_n, begin, end);
        T* row_ptr = logits + row * row_stride;
        fill_neg_inf<T, kNumThreads>(row_ptr, 0, begin);
        fill_neg_inf<T, kNumThreads>(row_ptr, end, num_cols);
    }
}

} // namespace deep_gemm
