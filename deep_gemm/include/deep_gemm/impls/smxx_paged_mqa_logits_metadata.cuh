#pragma once

// The schedule of the paged MQA logits kernel (CONTRACT.md §2.3), computed on the GPU by one CTA.
//
// Work unit = one page of one request (a row `b` of `context_lens`). Request b has
//     pages(b) = ceil(max(max_t ctx[b, t], 0) / block_kv)
// units (1-D `context_lens`: max_t ctx[b, t] = L_b). All units, flattened in (b, page) order, number W; SM s owns
// units [floor(s * W / num_sms), floor((s + 1) * W / num_sms)), and
//     meta[s] = (b, page) of its first unit         (or (B, 0) when it owns none at the end)
//     meta[num_sms] = (B, 0)
// The logits kernel walks (b, page) from meta[s] to meta[s + 1] with the same `pages(b)`.

#include "../common/types.cuh"

namespace deep_gemm {

// ceil(max(len, 0) / block_kv) without int32 overflow
DG_DEVICE int paged_num_pages(const int len, const int block_kv) {
    return len <= 0 ? 0 : len / block_kv + (len % block_kv != 0 ? 1 : 0);
}

// Pages of request b: `is_2d` reads [B, next_n] with strides, else [B]
DG_DEVICE int paged_request_pages(const int* context_lens, const int b, const int64_t stride_b,
                                  const int64_t stride_t, const int next_n, const bool is_2d, const int block_kv) {
    int len = __ldg(context_lens + b * stride_b);
    if (is_2d)
        for (int t = 1; t < next_n; ++t)
            len = max_of(len, __ldg(context_lens + b * stride_b + t * stride_t));
    return paged_num_pages(len, block_kv);
}

// Block-wide inclusive scan of int64 values (any kNumThreads multiple of 32, up to 1024)
template <int kNumThreads>
DG_DEVICE int64_t block_inclusive_scan(int64_t v, int64_t* warp_sums) {
    constexpr int kNumWarps = kNumThreads / 32;
    const int lane = static_cast<int>(threadIdx.x & 31), warp = static_cast<int>(threadIdx.x >> 5);
    #pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const int64_t other = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o)
            v += other;
    }
    if (lane == 31)
        warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        int64_t s = lane < kNumWarps ? warp_sums[lane] : 0;
        #pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const int64_t other = __shfl_up_sync(0xffffffffu, s, o);
            if (lane >= o)
                s += other;
        }
        if (lane < kNumWarps)
            warp_sums[lane] = s;
    }
    __syncthreads();
    const int64_t result = v + (warp > 0 ? warp_sums[warp - 1] : 0);
    __syncthreads();  // `warp_sums` is reused by the next call
    return result;
}

template <int kNumThreads>
DG_DEVICE void smxx_paged_mqa_logits_metadata_impl(const int* context_lens, const int num_requests,
                                                    const int64_t stride_b, const int64_t stride_t, const int next_n,
                                                    const bool is_2d, const int block_kv, const int num_sms,
                                                    int* meta) {
    __shared__ int64_t warp_sums[32];
    __shared__ int64_t incl[kNumThreads];
    const int tid = static_cast<int>(threadIdx.x);

    // Pass 1: the total W (a scan whose last element is the sum; deterministic)
    int64_t partial = 0;
    for (int b = tid; b < num_requests; b += kNumThreads)
        partial += paged_request_pages(context_lens, b, stride_b, stride_t, next_n, is_2d, block_kv);
    const int64_t scanned = block_inclusive_scan<kNumThreads>(partial, warp_sums);
    if (tid == kNumThreads - 1)
        incl[0] = scanned;
    __syncthreads();
    const int64_t total = incl[0];
    __syncthreads();

    // SMs whose first unit is past the end (all of them when W = 0), and the sentinel
    for (int s = tid; s <= num_sms; s += kNumThreads) {
        const int64_t target = static_cast<int64_t>(s) * total / num_sms;
        if (s == num_sms or target >= total)
            meta[2 * s] = num_requests, meta[2 * s + 1] = 0;
    }

    // Pass 2: chunks of `kNumThreads` requests; each SM finds its first unit in the chunk that contains it
    int64_t carry = 0;
    for (int base = 0; base < num_requests; base += kNumThreads) {
        const int b = base + tid;
        const int pages = b < num_requests ? paged_request_pages(context_lens, b, stride_b, stride_t, next_n, is_2d,
                                                                 block_kv) : 0;
        incl[tid] = carry + block_inclusive_scan<kNumThreads>(pages, warp_sums);
        __syncthreads();
        const int64_t chunk_end = incl[kNumThreads - 1];
        for (int s = tid; s < num_sms; s += kNumThreads) {
            const int64_t target = static_cast<int64_t>(s) * total / num_sms;
            if (target < carry or target >= chunk_end)
                continue;
            // The first i with incl[i] > target
            int lo = 0, hi = kNumThreads - 1;
            while (lo < hi) {
                const int mid = (lo + hi) >> 1;
                if (incl[mid] > target) hi = mid; else lo = mid + 1;
            }
            const int64_t excl = lo > 0 ? incl[lo - 1] : carry;
            meta[2 * s] = base + lo, meta[2 * s + 1] = static_cast<int>(target - excl);
        }
        carry = chunk_end;
        __syncthreads();
    }
}

} // namespace deep_gemm
