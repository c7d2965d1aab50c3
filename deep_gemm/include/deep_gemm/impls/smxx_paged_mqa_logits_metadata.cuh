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

// ------------------------------------------------------------------------------------------------ the kernel
// pages(len) with a shift when `block_kv` is a power of two (`shift` >= 0), else a division; never overflows
struct PagedPagesFn {
    int block_kv, shift;

    DG_DEVICE int operator()(const int len) const {
        if (len <= 0)
            return 0;
        if (shift >= 0)  // len + block_kv - 1 < 2^32
            return static_cast<int>((static_cast<uint32_t>(len) + static_cast<uint32_t>(block_kv - 1)) >>
                                    static_cast<uint32_t>(shift));
        return len / block_kv + (len % block_kv != 0 ? 1 : 0);
    }
};

// max_t ctx[b, t] (2-D) or ctx[b] (1-D)
DG_DEVICE int paged_request_len(const int* context_lens, const int b, const int64_t stride_b, const int64_t stride_t,
                                const int next_n, const bool is_2d) {
    const int* row = context_lens + b * stride_b;
    int len = __ldg(row);
    if (is_2d) {
        #pragma unroll 1
        for (int t = 1; t < next_n; ++t)
            len = max_of(len, __ldg(row + t * stride_t));
    }
    return len;
}

// Four consecutive ints, one 16-byte read-only load (`ptr` 16-byte aligned)
DG_DEVICE void paged_ld4(const int* ptr, int& a, int& b, int& c, int& d) {
    asm("ld.global.nc.v4.s32 {%0, %1, %2, %3}, [%4];" : "=r"(a), "=r"(b), "=r"(c), "=r"(d) : "l"(ptr));
}

// Exclusive block-wide scan of int64 values with one barrier: warps scan with shuffles, publish their sums, and
// every warp re-scans the (at most 32) warp sums itself; `total` is the block's sum
template <int kNumThreads>
DG_DEVICE int64_t block_exclusive_scan_1sync(const int64_t v, int64_t* warp_sums, int64_t& total) {
    constexpr int kNumWarps = kNumThreads / 32;
    static_assert(kNumThreads % 32 == 0 and kNumWarps <= 32, "1 to 32 warps");
    const int lane = static_cast<int>(threadIdx.x & 31), warp = static_cast<int>(threadIdx.x >> 5);
    int64_t incl = v;
    #pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const int64_t other = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o)
            incl += other;
    }
    if (lane == 31)
        warp_sums[warp] = incl;
    __syncthreads();
    int64_t ws = lane < kNumWarps ? warp_sums[lane] : 0;
    #pragma unroll
    for (int o = 1; o < kNumWarps; o <<= 1) {
        const int64_t other = __shfl_up_sync(0xffffffffu, ws, o);
        if (lane >= o)
            ws += other;
    }
    const int64_t before = __shfl_sync(0xffffffffu, ws, (warp + 31) & 31);
    total = __shfl_sync(0xffffffffu, ws, kNumWarps - 1);
    return (warp > 0 ? before : 0) + incl - v;
}

// Writes meta[s] for every SM s whose first unit floor(s * W / N) lies in [excl, excl + local) (local > 0), through
// `locate(s, rel)` with rel = that unit - excl. With W * (N + 1) < 2^32 (the common case) everything is 32-bit:
// s_first = ceil(excl * N / W) and floor(s * W / N) directly; else 64-bit with floor(s * W / N) = s * q +
// floor(s * r / N) (W = q * N + r, no overflow) and s_first by bisection.
template <typename Locate>
DG_DEVICE void paged_emit_splits(const int64_t excl, const int64_t local, const int64_t total, const int num_sms,
                                 Locate&& locate) {
    const uint64_t W = static_cast<uint64_t>(total), N = static_cast<uint64_t>(num_sms);
    if (W < (1ull << 32) and W * (N + 1) < (1ull << 32)) {
        const uint32_t w = static_cast<uint32_t>(W), n = static_cast<uint32_t>(N);
        const uint32_t e = static_cast<uint32_t>(excl), e_end = static_cast<uint32_t>(excl + local);
        for (uint32_t s = (e * n + w - 1) / w; s < n; ++s) {
            const uint32_t target = s * w / n;
            if (target >= e_end)
                break;
            locate(static_cast<int>(s), target - e);
        }
        return;
    }
    const uint64_t q = W / N, r = W % N;
    const auto target_of = [&](const uint64_t s) { return s * q + s * r / N; };   // s <= N
    const uint64_t e = static_cast<uint64_t>(excl), e_end = static_cast<uint64_t>(excl + local);
    uint64_t lo = 0, hi = N;   // the smallest s in [0, N] with target(s) >= e (target(N) = W >= e)
    while (lo < hi) {
        const uint64_t mid = (lo + hi) / 2;
        if (target_of(mid) >= e)
            hi = mid;
        else
            lo = mid + 1;
    }
    for (uint64_t s = lo; s < N; ++s) {
        const uint64_t target = target_of(s);
        if (target >= e_end)
            break;
        locate(static_cast<int>(s), static_cast<int64_t>(target - e));
    }
}

// NOTES: thread i owns the contiguous requests [i * k, (i + 1) * k), k = ceil(B / kNumThreads) rounded up to a
// multiple of 4 (so a segment starts 16-byte aligned). With k <= kRegs (B <= 4096 for 512 threads) the page counts
// stay in registers: one or two 16-byte loads per thread where `context_lens` is a contiguous [B] or [B, 1] (scalar
// loads otherwise), one block scan (one barrier), and each owner finds its SMs' (b, page) by an unrolled pass over
// its registers with 32-bit split arithmetic. Larger B loops over the segment and walks it again (L1 hits). The only
// barrier is the scan's; every output element is written by exactly one thread, with no atomics.
template <int kNumThreads, int kRegs>
DG_DEVICE void smxx_paged_mqa_logits_metadata_impl(const int* context_lens, const int num_requests,
                                                    const int64_t stride_b, const int64_t stride_t, const int next_n,
                                                    const bool is_2d, const int block_kv, const int num_sms,
                                                    int* meta) {
    static_assert(kRegs % 4 == 0 and kRegs > 0, "whole 16-byte groups");
    __shared__ int64_t warp_sums[32];
    const int tid = static_cast<int>(threadIdx.x);
    const PagedPagesFn pages_fn{block_kv, (block_kv & (block_kv - 1)) == 0 ? __popc(block_kv - 1) : -1};
    const auto len_of = [&](const int b) {
        return paged_request_len(context_lens, b, stride_b, stride_t, next_n, is_2d);
    };

    const int64_t k = align_up<int64_t>(ceil_div<int64_t>(num_requests, kNumThreads), 4);
    const int begin = static_cast<int>(min_of<int64_t>(tid * k, num_requests));
    const int end = static_cast<int>(min_of<int64_t>(begin + k, num_requests));
    const int cnt = end - begin;

    // Sentinels first (independent of the scan): meta[N] always; every SM when there is no work (below)
    if (tid == 0)
        meta[2 * num_sms] = num_requests, meta[2 * num_sms + 1] = 0;

    int64_t total;
    if (k <= kRegs) {
        // Contiguous lengths: 16-byte loads (the segment starts at a multiple of 4 requests)
        const bool vec = (next_n == 1 or not is_2d) and stride_b == 1 and
                         (reinterpret_cast<uint64_t>(context_lens) & 15) == 0;
        int pages[kRegs];
        #pragma unroll
        for (int g = 0; g < kRegs; g += 4) {
            int l[4];
            if (vec and g + 4 <= cnt) {
                paged_ld4(context_lens + begin + g, l[0], l[1], l[2], l[3]);
            } else {
                #pragma unroll
                for (int i = 0; i < 4; ++i)
                    l[i] = g + i < cnt ? len_of(begin + g + i) : 0;
            }
            #pragma unroll
            for (int i = 0; i < 4; ++i)
                pages[g + i] = pages_fn(l[i]);
        }
        int64_t local = 0;
        #pragma unroll
        for (int j = 0; j < kRegs; ++j)
            local += pages[j];
        const int64_t excl = block_exclusive_scan_1sync<kNumThreads>(local, warp_sums, total);
        if (local > 0) {
            paged_emit_splits(excl, local, total, num_sms, [&](const int s, const auto rel) {
                // b = begin + (the number of inclusive prefixes <= rel); rel < local, so b < end
                decltype(rel + 0) acc = 0, base = 0;
                int j_found = 0;
                #pragma unroll
                for (int j = 0; j < kRegs; ++j) {
                    acc += pages[j];
                    if (acc <= rel)
                        j_found = j + 1, base = acc;
                }
                meta[2 * s] = begin + j_found, meta[2 * s + 1] = static_cast<int>(rel - base);
            });
        }
    } else {
        int64_t local = 0;
        #pragma unroll 4
        for (int b = begin; b < end; ++b)
            local += pages_fn(len_of(b));
        const int64_t excl = block_exclusive_scan_1sync<kNumThreads>(local, warp_sums, total);
        if (local > 0) {
            int b = begin, pages_b = pages_fn(len_of(begin));
            int64_t pref = 0;  // relative to `excl`
            paged_emit_splits(excl, local, total, num_sms, [&](const int s, const auto rel) {
                // rel < local, so the walk stays inside [begin, end)
                while (static_cast<int64_t>(rel) >= pref + pages_b)
                    pref += pages_b, pages_b = pages_fn(len_of(++b));
                meta[2 * s] = b, meta[2 * s + 1] = static_cast<int>(static_cast<int64_t>(rel) - pref);
            });
        }
    }
    // No work at all: every SM gets (B, 0) (`total` is the same in every thread)
    if (total == 0)
        for (int s = tid; s < num_sms; s += kNumThreads)
            meta[2 * s] = num_requests, meta[2 * s + 1] = 0;
}

} // namespace deep_gemm
