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

// NOTES: one pass over `context_lens`: thread i owns the contiguous requests [i * k, (i + 1) * k) with
// k = ceil(B / kNumThreads), sums their pages, and one block scan gives every thread the global offset of its
// segment. Each SM s's first unit floor(s * W / num_sms) lies in exactly one segment; its owner walks its own
// requests again (L1 hits) to find (b, page). No shared-memory copy of the lengths, any B.
template <int kNumThreads>
DG_DEVICE void smxx_paged_mqa_logits_metadata_impl(const int* context_lens, const int num_requests,
                                                    const int64_t stride_b, const int64_t stride_t, const int next_n,
                                                    const bool is_2d, const int block_kv, const int num_sms,
                                                    int* meta) {
    __shared__ int64_t warp_sums[32];
    __shared__ int64_t total_smem;
    const int tid = static_cast<int>(threadIdx.x);
    const auto pages_of = [&](const int b) {
        return paged_request_pages(context_lens, b, stride_b, stride_t, next_n, is_2d, block_kv);
    };

    const int64_t per_thread = (static_cast<int64_t>(num_requests) + kNumThreads - 1) / kNumThreads;
    const int begin = static_cast<int>(min_of<int64_t>(tid * per_thread, num_requests));
    const int end = static_cast<int>(min_of<int64_t>(begin + per_thread, num_requests));
    int64_t local = 0;
    #pragma unroll 4
    for (int b = begin; b < end; ++b)
        local += pages_of(b);
    const int64_t incl = block_inclusive_scan<kNumThreads>(local, warp_sums);
    if (tid == kNumThreads - 1)
        total_smem = incl;
    __syncthreads();
    const int64_t total = total_smem, excl = incl - local;

    // SMs whose first unit is past the end (all of them when W = 0), and the sentinel
    for (int s = tid; s <= num_sms; s += kNumThreads) {
        if (s == num_sms or static_cast<int64_t>(s) * total / num_sms >= total)
            meta[2 * s] = num_requests, meta[2 * s + 1] = 0;
    }

    // SMs whose first unit lies in this thread's segment [excl, excl + local): s >= ceil(excl * num_sms / total)
    if (local > 0) {
        int b = begin;
        int64_t pref = excl;
        int pages_b = pages_of(b);
        for (int64_t s = (excl * num_sms + total - 1) / total; s < num_sms; ++s) {
            const int64_t target = s * total / num_sms;
            if (target >= excl + local)
                break;
            while (target >= pref + pages_b)
                pref += pages_b, pages_b = pages_of(++b);
            meta[2 * s] = b, meta[2 * s + 1] = static_cast<int>(target - pref);
        }
    }
}

} // namespace deep_gemm
