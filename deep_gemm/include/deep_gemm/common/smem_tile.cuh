#pragma once

// Shared-memory operand tiles of the mma.sync kernels: one swizzle, one copy plan, and the fragment loaders.
//
// A tile holds `kRows` K-major rows of `kRowBytes` bytes (128: a 128-wide FP8 k block or a 64-wide BF16 one; 64: a
// 128-wide k block of packed FP4; 32: the indexers' shortest key rows, D = 32 FP8 or D = 64 packed FP4). Rows are split
// into 16-byte chunks whose column is XOR-swizzled by the row, so the 8 rows one ldmatrix matrix reads (same logical
// chunk, 8 consecutive rows) land in 8 distinct 16-byte bank groups.
//
// Fragment loaders (mma.cuh has the register layouts; g = lane / 4, t = lane % 4):
//   - `load_a16x32` / `load_b16x32`: one ldmatrix.x4 over 32 bytes of k: an m16 A fragment (FP8 m16n8k32 or BF16
//     m16n8k16: the same bytes) or two n8 B fragments;
//   - the "paired k" forms for FP4 operands: an e2m1 register read by ldmatrix holds k 8t..8t+7 of a 32-wide k
//     slice, which widened to e4m3 gives two registers (k 8t..8t+3, 8t+4..8t+7). Both operands of such a product
//     use that k order instead of the standard one (k 4t..4t+3, 16+4t..16+4t+3); the order of k inside one MMA does
//     not change the dot product, and a 32-wide slice stays a slice (its block scale still applies). FP8 operands
//     paired with FP4 ones are read in that order with 8-byte loads (`load_a16x32_paired`, `load_b8x32_paired`).

#include "../common/types.cuh"
#include "../mma/sm120.cuh"
#include "../ptx/cp_async.cuh"
#include "../ptx/ld_st.cuh"

namespace deep_gemm {

template <int kRowBytes>
struct SwizzledTile {
    static_assert(kRowBytes == 128 or kRowBytes == 64 or kRowBytes == 32, "128-, 64- or 32-byte rows");
    static constexpr int kChunks = kRowBytes / 16;

    // Byte offset of logical 16-byte chunk `chunk` of row `row`
    DG_DEVICE static uint32_t offset(const int row, const int chunk) {
        if constexpr (kChunks == 8)
            return row * 128 + ((chunk ^ (row & 7)) << 4);
        else if constexpr (kChunks == 4)   // two 64-byte rows share a 128-byte bank line: swizzle by row pair
            return row * 64 + ((chunk ^ ((row >> 1) & 3)) << 4);
        else                               // four 32-byte rows share a line: swizzle by row quad
            return row * 32 + ((chunk ^ ((row >> 2) & 1)) << 4);
    }
};

// The cp.async copies of one tile, fixed per thread for a whole K loop: thread `tid` copies logical chunk
// tid % kChunks of rows tid / kChunks + i * kRowsPerPass, so only the k offset moves between stages, and the swizzled
// destination of pass i is a constant plus i * kRowsPerPass * kRowBytes. The plan is a base pointer, a pass stride and
// a row count (a few registers: kernels keep two plans live beside their accumulators).
// Rows at or past `valid_rows` and chunks at or past `valid_bytes` (a K tail) are zero-filled without a global read.
template <int kRows, int kRowBytes, int kNumThreads>
struct TileCopyPlan {
    using Tile = SwizzledTile<kRowBytes>;
    static constexpr int kChunks = kRowBytes / 16;
    static constexpr int kRowsPerPass = kNumThreads / kChunks;
    static constexpr int kPasses = (kRows + kRowsPerPass - 1) / kRowsPerPass;
    static_assert(kNumThreads % kChunks == 0 and kRowsPerPass % 8 == 0, "the swizzle term is constant per thread");

    const uint8_t* src;         // this thread's first row and chunk
    long long pass_stride;      // kRowsPerPass rows, in bytes
    int rows_left;              // valid rows from this thread's first row on
    uint32_t dst0;
    int row0, chunk_bytes;

    // `rows`: the first row of the tile in global memory; `ld`: its row stride in bytes
    DG_DEVICE void init(const uint8_t* rows, const long long ld, const int valid_rows, const int tid) {
        const int chunk = tid % kChunks;
        row0 = tid / kChunks, chunk_bytes = chunk * 16;
        dst0 = Tile::offset(row0, chunk);
        rows_left = valid_rows - row0;
        src = rows + (rows_left > 0 ? row0 * ld : 0) + chunk_bytes;
        pass_stride = kRowsPerPass * ld;
    }

    // Copy the k bytes [k_byte, k_byte + kRowBytes) of every row into the tile at `smem`; `valid_bytes` of them exist
    DG_DEVICE void issue(const uint32_t smem, const long long k_byte, const int valid_bytes) const {
        const bool chunk_valid = chunk_bytes < valid_bytes;
        const uint8_t* row_src = src + k_byte;
        #pragma unroll
        for (int i = 0; i < kPasses; ++ i, row_src += pass_stride) {
            // (threads whose pass-i row lies past the tile copy nothing: a tile smaller than one pass)
            if (kPasses * kRowsPerPass == kRows or row0 + i * kRowsPerPass < kRows) {
                const bool valid = i * kRowsPerPass < rows_left and chunk_valid;
                ptx::cp_async_16_zfill(smem + dst0 + i * kRowsPerPass * kRowBytes, valid ? row_src : src, valid);
            }
        }
    }
};

// --- fragment loaders (`tile`: shared address of the tile; rows and 32-byte k steps relative to it) ------------------

// m16 x 32 bytes at (row0, k step s): registers a0..a3 of mma.cuh's A layout
template <int kRowBytes>
DG_DEVICE void load_a16x32(uint32_t (&a)[4], const uint32_t tile, const int row0, const int s, const int lane) {
    ptx::ldmatrix_x4(a, tile + SwizzledTile<kRowBytes>::offset(row0 + (lane & 15), 2 * s + (lane >> 4)));
}

// The same with the tile given by a generic pointer (the address is converted per load).
// NOTES: the paged indexer uses this form: with a 32-bit shared address held across its unit loop instead, ptxas'
// sm_90a allocation of the emulated FP8 MMA (the H100 test path) spilled 72 B where this form spills none
template <int kRowBytes>
DG_DEVICE void load_a16x32(uint32_t (&a)[4], const uint8_t* tile, const int row0, const int s, const int lane) {
    ptx::ldmatrix_x4(a, tile + SwizzledTile<kRowBytes>::offset(row0 + (lane & 15), 2 * s + (lane >> 4)));
}

// Two n8 x 32-byte B fragments at (rows n0 .. n0 + 15, k step s): b[0], b[1] of rows n0.., b[2], b[3] of n0 + 8..
template <int kRowBytes>
DG_DEVICE void load_b16x32(uint32_t (&b)[4], const uint32_t tile, const int n0, const int s, const int lane) {
    ptx::ldmatrix_x4(b, tile + SwizzledTile<kRowBytes>::offset(n0 + (lane & 7) + ((lane >> 4) << 3),
                                                                  2 * s + ((lane >> 3) & 1)));
}

// Paired-k FP8 A fragment (m16 x 32 bytes at k step s): a0/a2 = row g's bytes 8t..8t+3 / 8t+4..8t+7, a1/a3 row g+8's
template <int kRowBytes>
DG_DEVICE void load_a16x32_paired(uint32_t (&a)[4], const uint32_t tile, const int row0, const int s, const int lane) {
    using Tile = SwizzledTile<kRowBytes>;
    const int g = lane >> 2, t = lane & 3;
    const int chunk = 2 * s + (t >> 1), byte = (t & 1) * 8;
    uint32_t lo[2], hi[2];
    ptx::lds_64(lo, tile + Tile::offset(row0 + g, chunk) + byte);
    ptx::lds_64(hi, tile + Tile::offset(row0 + g + 8, chunk) + byte);
    a[0] = lo[0], a[2] = lo[1], a[1] = hi[0], a[3] = hi[1];
}

// Paired-k FP8 B fragment (n8 x 32 bytes at k step s): b0/b1 = column g's bytes 8t..8t+3 / 8t+4..8t+7
template <int kRowBytes>
DG_DEVICE void load_b8x32_paired(uint32_t (&b)[2], const uint32_t tile, const int n0, const int s, const int lane) {
    const int g = lane >> 2, t = lane & 3;
    ptx::lds_64(b, tile + SwizzledTile<kRowBytes>::offset(n0 + g, 2 * s + (t >> 1)) + (t & 1) * 8);
}

// Packed FP4 A, m16 x 64 k (32 packed bytes) at packed step p = k steps 2p, 2p+1, widened to e4m3 in the paired
// order: a[0] is k step 2p's fragment, a[1] step 2p + 1's
template <int kRowBytes>
DG_DEVICE void load_a16x64_fp4(uint32_t (&a)[2][4], const uint32_t tile, const int row0, const int p, const int lane) {
    uint32_t r[4];   // rows g / g+8 of chunk 2p, rows g / g+8 of chunk 2p + 1
    ptx::ldmatrix_x4(r, tile + SwizzledTile<kRowBytes>::offset(row0 + (lane & 15), 2 * p + (lane >> 4)));
    mma::e2m1x8_to_e4m3x8(r[0], a[0][0], a[0][2]);
    mma::e2m1x8_to_e4m3x8(r[1], a[0][1], a[0][3]);
    mma::e2m1x8_to_e4m3x8(r[2], a[1][0], a[1][2]);
    mma::e2m1x8_to_e4m3x8(r[3], a[1][1], a[1][3]);
}

// Packed FP4 B, two n8 tiles x 64 k at packed step p, widened to e4m3 in the paired order: b[s][j] = k step 2p + s of
// n-tile j (rows n0 + 8j ..)
template <int kRowBytes>
DG_DEVICE void load_b16x64_fp4(uint32_t (&b)[2][2][2], const uint32_t tile, const int n0, const int p, const int lane) {
    uint32_t r[4];   // tile 0 / tile 1 of chunk 2p, tile 0 / tile 1 of chunk 2p + 1
    ptx::ldmatrix_x4(r, tile + SwizzledTile<kRowBytes>::offset(n0 + (lane & 15), 2 * p + (lane >> 4)));
    mma::e2m1x8_to_e4m3x8(r[0], b[0][0][0], b[0][0][1]);
    mma::e2m1x8_to_e4m3x8(r[1], b[0][1][0], b[0][1][1]);
    mma::e2m1x8_to_e4m3x8(r[2], b[1][0][0], b[1][0][1]);
    mma::e2m1x8_to_e4m3x8(r[3], b[1][1][0], b[1][1][1]);
}

} // namespace deep_gemm
