#pragma once

// Scale-factor layout kernels (host side: csrc/jit_kernels/impls/smxx_layout.hpp; Python API and the exact layouts:
// deep_gemm/utils/layout.py). Arch-agnostic: plain loads, 16-byte stores, no tensor cores.
//
// 1. `smxx_sf_mn_major_impl`: `in [(G,) rows, k]` (any strides) -> `out [(G,) mn, out_k]` stored MN-major, i.e. element
//    (g, m, c) at `g * out_stride_g + c * aligned_mn + m`, with `aligned_mn` a multiple of 16 bytes. Output row m reads
//    input row `m / gran_mn` (1 = plain copy; 128 = a 128-row block scale broadcast to its rows).
//    - transpose mode (`kPack = false`): out_k = k, elements copied bit for bit (1, 2, 4 or 8 bytes).
//    - pack mode (`kPack = true`): float32 in, int32 out, out_k = ceil(k / 4); output int c of row m holds, little-endian,
//      the UE8M0 bytes of input columns 4c .. 4c + 3, byte = the float's biased exponent field `(bits >> 23) & 0xff`
//      (2^e -> e + 127; other values round down to a power of two; the sign is ignored; 0 / subnormals -> 0; inf and
//      NaN -> 255). Columns past k give byte 0, so an int never mixes in anything but its own four scales.
//    Rows m in [mn, aligned_mn) (the TMA padding) are written with 0; so are rows outside every group of an m-grouped
//    psum layout (`psum_ends` non-null), which are never read.
//    Work split: a CTA of kNumThreads threads owns a tile of kTileMN output rows x tile_k input columns (tile_k a power of
//    two <= kMaxTileK, 1 << tile_k_log2) of one group. Load phase: every thread loads up to kTileMN * kMaxTileK /
//    kNumThreads elements (all loads issued before any shared-memory store) and stores them, converted to exponent bytes
//    in pack mode, into a shared tile [tile_k][kTileMN]; the lanes of a warp read consecutive mn (`kReadAlongMN`, for an
//    input whose mn stride is 1) or consecutive k (tile_k lanes per row, 32 / tile_k rows per warp) so every global read
//    is coalesced. Store phase: each thread writes 16 bytes, i.e. 16 / sizeof(out) consecutive rows of one output
//    column, read from one shared row (transpose) or assembled from four shared rows with byte permutes (pack).
// 2. `smxx_k_grouped_sf_pack_impl`: k-grouped scales `in [sum_g r_g, mn]` (group g owns r_g = ceil(k_g / gran_k)
//    consecutive rows) -> int32 `out [num_out_rows, mn]`, row stride aligned_mn: output row `P_g + q` packs input rows
//    `R_g + 4q .. R_g + 4q + 3` of group g (bytes past the group's r_g rows are 0), where R_g / P_g are the exclusive
//    prefix sums of r_g / ceil(r_g / 4). k_g comes from the device `layout`: per-group K, or with `kPsum` the cumulative
//    ends of a psum layout (group g spans [align(end[g-1], k_alignment), end[g])). Output rows past the last group are 0.
//    Work split: each CTA first computes r_g, R_g and P_g of every group into shared memory (one chunk of groups per thread,
//    a block-wide scan), then owns `rows_per_block` output rows x kNumThreads * 4 columns: each thread reads the four
//    input rows of its 4 consecutive columns (16-byte loads where aligned) and writes one 16-byte int4.

#include "../common/types.cuh"
#include "smxx_paged_mqa_logits_metadata.cuh"   // block_exclusive_scan_1sync

namespace deep_gemm {

template <int kBytes> struct layout_word;
template <> struct layout_word<1> { using type = uint8_t; };
template <> struct layout_word<2> { using type = uint16_t; };
template <> struct layout_word<4> { using type = uint32_t; };
template <> struct layout_word<8> { using type = uint64_t; };

// The UE8M0 byte of a float32's bits: its biased exponent field
DG_DEVICE uint32_t ue8m0_byte_of(const uint32_t bits) { return (bits >> 23) & 0xffu; }

// Whether row `row` of an m-grouped psum layout belongs to a group: with `ends` the cumulative group ends (non-decreasing),
// the row's group is the first g with ends[g] > row, which starts at align(ends[g - 1], alignment) (0 for g = 0)
DG_DEVICE bool psum_row_in_group(const int row, const int* ends, const int num_groups, const int alignment) {
    int lo = 0, hi = num_groups;
    while (lo < hi) {
        const int mid = (lo + hi) >> 1;
        if (__ldg(ends + mid) > row)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo == num_groups)
        return false;
    const int start = lo == 0 ? 0 : align_up(max_of(__ldg(ends + lo - 1), 0), alignment);
    return row >= start;
}

template <int kElemBytes, bool kPack, bool kReadAlongMN, int kNumThreads, int kTileMN, int kMaxTileK>
DG_DEVICE void smxx_sf_mn_major_impl(const void* __restrict__ in_ptr, const int64_t in_stride_g,
                                     const int64_t in_stride_mn, const int64_t in_stride_k, void* __restrict__ out_ptr,
                                     const int64_t out_stride_g, const int mn, const int aligned_mn, const int in_k,
                                     const int gran_mn, const int tile_k_log2, const int* psum_ends,
                                     const int num_psum_groups, const int psum_alignment) {
    static_assert(not kPack or kElemBytes == 4, "pack mode reads float32");
    using in_t = typename layout_word<kElemBytes>::type;
    using out_t = typename layout_word<kPack ? 4 : kElemBytes>::type;
    using smem_t = typename layout_word<kPack ? 1 : kElemBytes>::type;
    // Shared rows padded by 16 bytes: 16-byte aligned rows, and fewer bank conflicts on the column-wise stores
    constexpr int kPitch = kTileMN + 16 / static_cast<int>(sizeof(smem_t));
    constexpr int kOutPerStore = 16 / static_cast<int>(sizeof(out_t));
    constexpr int kChunksPerCol = kTileMN / kOutPerStore;
    constexpr int kLoadsPerThread = kTileMN * kMaxTileK / kNumThreads;
    static_assert(kTileMN % 32 == 0 and kTileMN % kOutPerStore == 0 and kLoadsPerThread * kNumThreads ==
                  kTileMN * kMaxTileK, "tile shape");
    __shared__ alignas(16) smem_t tile[kMaxTileK][kPitch];
    __shared__ bool row_in_group[kTileMN];

    const int tid = static_cast<int>(threadIdx.x);
    const int tile_k = 1 << tile_k_log2;
    const int mn0 = static_cast<int>(blockIdx.x) * kTileMN;
    const int k0 = static_cast<int>(blockIdx.y) * tile_k;
    const int g = static_cast<int>(blockIdx.z);
    const in_t* in = static_cast<const in_t*>(in_ptr) + g * in_stride_g;
    out_t* out = static_cast<out_t*>(out_ptr) + g * out_stride_g;

    if (psum_ends != nullptr) {
        for (int r = tid; r < kTileMN; r += kNumThreads)
            row_in_group[r] = psum_row_in_group(mn0 + r, psum_ends, num_psum_groups, psum_alignment);
        __syncthreads();
    }

    // Load phase: element (r, c) of the tile; out-of-range and out-of-group elements are 0 and never read
    in_t values[kLoadsPerThread];
    #pragma unroll
    for (int i = 0; i < kLoadsPerThread; ++ i) {
        const int idx = tid + i * kNumThreads;
        const int r = kReadAlongMN ? idx % kTileMN : idx >> tile_k_log2;
        const int c = kReadAlongMN ? idx / kTileMN : idx & (tile_k - 1);
        const bool ok = r < kTileMN and c < tile_k and mn0 + r < mn and k0 + c < in_k and
                        (psum_ends == nullptr or row_in_group[r]);
        values[i] = ok ? __ldg(in + ((mn0 + r) / gran_mn) * in_stride_mn + (k0 + c) * in_stride_k) : in_t(0);
    }
    #pragma unroll
    for (int i = 0; i < kLoadsPerThread; ++ i) {
        const int idx = tid + i * kNumThreads;
        const int r = kReadAlongMN ? idx % kTileMN : idx >> tile_k_log2;
        const int c = kReadAlongMN ? idx / kTileMN : idx & (tile_k - 1);
        if (r < kTileMN and c < tile_k) {
            if constexpr (kPack)
                tile[c][r] = static_cast<smem_t>(ue8m0_byte_of(values[i]));
            else
                tile[c][r] = values[i];
        }
    }
    __syncthreads();

    // Store phase: one 16-byte store of kOutPerStore consecutive rows of one output column per item
    const int out_k = kPack ? (in_k + 3) / 4 : in_k;
    const int out_c0 = kPack ? k0 / 4 : k0;
    const int tile_out_cols = kPack ? tile_k / 4 : tile_k;
    for (int item = tid; item < kChunksPerCol * tile_out_cols; item += kNumThreads) {
        const int oc = item / kChunksPerCol;
        const int r = (item % kChunksPerCol) * kOutPerStore;
        if (mn0 + r >= aligned_mn or out_c0 + oc >= out_k)
            continue;
        uint4 v;
        if constexpr (kPack) {
            // Word j holds the exponent bytes of rows r .. r + 3 for column 4 oc + j; row r + i's int gathers byte i
            // of the four words, column 4 oc in its lowest byte
            const uint32_t w0 = *reinterpret_cast<const uint32_t*>(&tile[4 * oc + 0][r]);
            const uint32_t w1 = *reinterpret_cast<const uint32_t*>(&tile[4 * oc + 1][r]);
            const uint32_t w2 = *reinterpret_cast<const uint32_t*>(&tile[4 * oc + 2][r]);
            const uint32_t w3 = *reinterpret_cast<const uint32_t*>(&tile[4 * oc + 3][r]);
            const uint32_t lo01 = __byte_perm(w0, w1, 0x5140), hi01 = __byte_perm(w0, w1, 0x7362);
            const uint32_t lo23 = __byte_perm(w2, w3, 0x5140), hi23 = __byte_perm(w2, w3, 0x7362);
            v = make_uint4(__byte_perm(lo01, lo23, 0x5410), __byte_perm(lo01, lo23, 0x7632),
                           __byte_perm(hi01, hi23, 0x5410), __byte_perm(hi01, hi23, 0x7632));
        } else {
            v = *reinterpret_cast<const uint4*>(&tile[oc][r]);
        }
        *reinterpret_cast<uint4*>(out + static_cast<int64_t>(out_c0 + oc) * aligned_mn + mn0 + r) = v;
    }
}

// k_g of group g from the device layout (clamped to >= 0)
template <bool kPsum>
DG_DEVICE int k_grouped_group_k(const int* layout, const int g, const int k_alignment) {
    if constexpr (kPsum) {
        const int start = g == 0 ? 0 : align_up(max_of(__ldg(layout + g - 1), 0), k_alignment);
        return max_of(__ldg(layout + g) - start, 0);
    } else {
        return max_of(__ldg(layout + g), 0);
    }
}

template <bool kPsum, bool kVecLoad, int kNumThreads>
DG_DEVICE void smxx_k_grouped_sf_pack_impl(const float* __restrict__ in, const int64_t in_stride_row,
                                           const int64_t in_stride_mn, const int num_in_rows, int* __restrict__ out,
                                           const int mn, const int aligned_mn, const int num_out_rows,
                                           const int* layout, const int num_groups, const int gran_k,
                                           const int k_alignment, const int rows_per_block) {
    // Dynamic shared memory: two scan scratch arrays, then num_rows_of[num_groups] (r_g), in_off[num_groups + 1] and
    // out_off[num_groups + 1] (exclusive prefix sums, clamped to the tensors' row counts: rows past them are never
    // read / written)
    constexpr int kNumWarps = kNumThreads / 32;
    extern __shared__ int64_t smem_k_grouped[];
    int* num_rows_of = reinterpret_cast<int*>(smem_k_grouped + 2 * kNumWarps);
    int* in_off = num_rows_of + num_groups;
    int* out_off = in_off + num_groups + 1;
    const int tid = static_cast<int>(threadIdx.x);

    // Prefix sums: thread t owns groups [t * per, (t + 1) * per); rows and packed rows summed in one int64 each
    const int per = (num_groups + kNumThreads - 1) / kNumThreads;
    const int g_lo = min_of(tid * per, num_groups), g_hi = min_of(g_lo + per, num_groups);
    int64_t rows = 0, packed = 0;
    for (int g = g_lo; g < g_hi; ++ g) {
        const int r = (k_grouped_group_k<kPsum>(layout, g, k_alignment) + gran_k - 1) / gran_k;
        num_rows_of[g] = r;
        rows += r, packed += (r + 3) / 4;
    }
    int64_t rows_total, packed_total;
    int64_t row_acc = block_exclusive_scan_1sync<kNumThreads>(rows, smem_k_grouped, rows_total);
    int64_t packed_acc = block_exclusive_scan_1sync<kNumThreads>(packed, smem_k_grouped + kNumWarps, packed_total);
    for (int g = g_lo; g < g_hi; ++ g) {
        in_off[g] = static_cast<int>(min_of<int64_t>(row_acc, num_in_rows));
        out_off[g] = static_cast<int>(min_of<int64_t>(packed_acc, num_out_rows));
        row_acc += num_rows_of[g], packed_acc += (num_rows_of[g] + 3) / 4;
    }
    if (tid == 0) {
        in_off[num_groups] = static_cast<int>(min_of<int64_t>(rows_total, num_in_rows));
        out_off[num_groups] = static_cast<int>(min_of<int64_t>(packed_total, num_out_rows));
    }
    __syncthreads();

    const int m = (static_cast<int>(blockIdx.x) * kNumThreads + tid) * 4;
    if (m >= aligned_mn)
        return;
    const int p_begin = static_cast<int>(blockIdx.y) * rows_per_block;
    const int p_end = min_of(p_begin + rows_per_block, num_out_rows);
    for (int p = p_begin; p < p_end; ++ p) {
        uint32_t bytes[4] = {0, 0, 0, 0};   // bytes[i]: the int of column m + i
        if (p < out_off[num_groups]) {
            // The last group starting at or before p (empty groups share their start with the next one)
            int lo = 0, hi = num_groups - 1;
            while (lo < hi) {
                const int mid = (lo + hi + 1) >> 1;
                if (out_off[mid] <= p)
                    lo = mid;
                else
                    hi = mid - 1;
            }
            const int q = p - out_off[lo];
            const int r_g = num_rows_of[lo];
            #pragma unroll
            for (int j = 0; j < 4; ++ j) {
                const int row = in_off[lo] + 4 * q + j;
                if (4 * q + j >= r_g or row >= num_in_rows)
                    continue;
                const float* src = in + row * in_stride_row;
                float v[4] = {0.f, 0.f, 0.f, 0.f};
                if (kVecLoad and m + 3 < mn) {
                    const float4 f = __ldg(reinterpret_cast<const float4*>(src + m));
                    v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
                } else {
                    #pragma unroll
                    for (int i = 0; i < 4; ++ i)
                        if (m + i < mn)
                            v[i] = __ldg(src + (m + i) * in_stride_mn);
                }
                #pragma unroll
                for (int i = 0; i < 4; ++ i)
                    bytes[i] |= ue8m0_byte_of(__float_as_uint(v[i])) << (8 * j);
            }
        }
        *reinterpret_cast<uint4*>(out + static_cast<int64_t>(p) * aligned_mn + m) =
            make_uint4(bytes[0], bytes[1], bytes[2], bytes[3]);
    }
}

} // namespace deep_gemm
