#pragma once

// Config choice of the SM120 GEMMs (`impls/sm120_gemm.cuh`): tile, warps, stages and K splits from the shape and the
// ArchSpec. M, N and K are runtime arguments of one kernel, so a (dtype, scale format, output) combination compiles
// at most one kernel per tile shape: 4 M tiles x 2 N tiles over M = 1 .. 16K and any N, K.

#include <algorithm>

#include "common.hpp"

namespace deep_gemm {

// Operand and scale encodings shared with the device (`GemmDtype`, `GemmSfType` in impls/sm120_gemm.cuh)
enum GemmDtypeHost : int { kGemmDtypeFp8 = 0, kGemmDtypeFp4 = 1, kGemmDtypeBf16 = 2 };
enum GemmSfTypeHost : int { kGemmSfNone = 0, kGemmSfFloat = 1, kGemmSfUE8M0 = 2 };
// `GemmKind` of common/gemm_params.cuh
enum GemmKindHost : int { kGemmKindNormal = 0, kGemmKindMContiguous = 1, kGemmKindMPsum = 2, kGemmKindMMasked = 3,
                          kGemmKindKGrouped = 4 };

struct GemmShape {
    int kind = kGemmKindNormal;
    int m = 0, n = 0, k = 0;        // m: rows per group for planning (masked / psum: expected; contiguous: total)
    int num_groups = 1;
    int total_m = 0;                // m-grouped contiguous: all rows of A
    int type_a = kGemmDtypeFp8, type_b = kGemmDtypeFp8;
    int sf_gran_k_a = 128, sf_gran_k_b = 128;
    int max_block_m = 128;          // m-grouped layouts: tiles must not straddle groups
    bool allow_split_k = true;
};

struct GemmTiling {
    int block_m = 128, block_n = 128, warps_m = 2, warps_n = 4, num_stages = 3;
    int num_splits = 1;
    int grid = 1;
};

struct GemmHeuristics {
    static int block_k(int type_a) { return type_a == kGemmDtypeBf16 ? 64 : 128; }

    static int row_bytes(int type) { return type == kGemmDtypeFp4 ? 64 : 128; }

    // One stage: the A and B tiles and their scale words (each 16-byte aligned), as the kernel lays it out
    static int stage_bytes(int block_m, int block_n, int type_a, int type_b, int sf_words_a, int sf_words_b) {
        const auto align16 = [](int x) { return (x + 15) / 16 * 16; };
        return block_m * row_bytes(type_a) + block_n * row_bytes(type_b) + align16(sf_words_a * block_m * 4) +
               align16(sf_words_b * block_n * 4);
    }

    // The M tiles a shape may use: 16 / 32 / 64 / 128, at most 64 with 32-wide scale granules (the Promote form
    // then keeps per-slice scales beside two accumulators)
    static int max_block_m(int sf_gran_k_a, int sf_gran_k_b) { return sf_gran_k_a == 32 or sf_gran_k_b == 32 ? 64 : 128; }

    // 8 warps (2 x 4) for tiles of 32 rows or more; 4 warps (1 x 4) for 16-row tiles, whose warps hold one m16 tile
    static void warps_for(int block_m, int& warps_m, int& warps_n) {
        warps_m = block_m >= 32 ? 2 : 1;
        warps_n = 4;
    }

    static GemmTiling plan(const ArchSpec& arch, const GemmShape& s) {
        GemmTiling t;
        // M tile: the smallest of 16 / 32 / 64 / 128 that holds the (expected) rows of a group
        t.block_m = s.m <= 16 ? 16 : s.m <= 32 ? 32 : s.m <= 64 ? 64 : 128;
        t.block_m = std::min({t.block_m, s.max_block_m, max_block_m(s.sf_gran_k_a, s.sf_gran_k_b)});
        warps_for(t.block_m, t.warps_m, t.warps_n);
        const int num_sms = std::max(1, arch.num_sms);
        const int kb_total = (s.k + block_k(s.type_a) - 1) / block_k(s.type_a);
        const auto tiles_for = [&](int block_n) {
            const int n_tiles = (s.n + block_n - 1) / block_n;
            const int rows = s.kind == kGemmKindMContiguous ? s.total_m : s.m;
            const int m_tiles = (rows + t.block_m - 1) / t.block_m;
            return static_cast<long long>(m_tiles) * n_tiles * (s.kind == kGemmKindMContiguous ? 1 : s.num_groups);
        };
        // N tile 128 (small-M shapes fill the GPU through K splits instead of narrower tiles)
        t.block_n = 128;
        const long long tiles = tiles_for(t.block_n);
        // K splits (normal GEMMs): fill one wave, keeping at least 4 k blocks per split (at least 2 below 64)
        if (s.allow_split_k and s.kind == kGemmKindNormal and tiles < num_sms and kb_total >= 4) {
            const int min_blocks = kb_total >= 256 ? 4 : 2;
            t.num_splits = static_cast<int>(std::max<long long>(1, std::min<long long>({num_sms / tiles,
                                                                                          kb_total / min_blocks, 128})));
        }
        // Stages: as many as shared memory holds, 2 .. 8
        const bool bf16 = s.type_a == kGemmDtypeBf16;
        const int per_stage = stage_bytes(t.block_m, t.block_n, s.type_a, s.type_b, bf16 ? 0 : 128 / s.sf_gran_k_a,
                                          bf16 ? 0 : 128 / s.sf_gran_k_b);
        t.num_stages = std::max(2, std::min(8, arch.smem_capacity / per_stage));
        // Persistent grid: one CTA per SM at most (each fills shared memory), no more than the units of work
        const long long units = tiles * t.num_splits;
        const bool unknown = s.kind == kGemmKindMPsum or s.kind == kGemmKindMMasked;
        t.grid = static_cast<int>(unknown ? num_sms : std::max<long long>(1, std::min<long long>(units, num_sms)));
        return t;
    }
};

} // namespace deep_gemm
