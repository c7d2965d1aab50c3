#pragma once

// Who computes which tile of an SM120 GEMM (impls/sm120_gemm.cuh). The grid is persistent: CTA c takes the work
// units w = c, c + gridDim.x, ... in increasing order, so every per-CTA walk below only moves forward.
//
// A unit is one output tile (kBlockM x kBlockN) of one group over a range of k blocks:
//   - normal (and batched, `num_groups` > 1): units = groups x m tiles x n tiles x K splits; the split index varies
//     fastest (a tile's splits run side by side), then tiles in bands of kBand m tiles, n-major inside a band, so the
//     CTAs running at one time share a band of A rows and sweep B once per band;
//   - m-grouped contiguous: the tiles of A's rows in order, n fastest; a tile's group is the id of its first row; a
//     tile of padding rows (-1) only has no k block (its rows of D get zeros, like every padding row);
//   - m-grouped psum / masked: each group's rows [start, end) cut into m tiles, n fastest; groups are found by a
//     warp-wide prefix walk over `grouped_layout` (no shared memory, no barrier: every warp walks the same way);
//   - k-grouped: units = groups x m tiles x n tiles, each over its group's K range (K = 0: a unit with no k block,
//     whose epilogue writes C).

#include "../common/gemm_params.cuh"
#include "../common/types.cuh"

namespace deep_gemm {

struct GemmUnit {
    int g;                  // group: the pointers add g * (group stride) for every operand
    int m0, n0;             // first row of A / D (within the group's rows), first column of D
    int rows;               // rows of the tile that exist (A rows to read, D rows to write)
    int zero_rows;          // rows up to which D is written with zeros past `rows` (psum gaps), else `rows`
    int kb_begin, kb_end;   // k blocks of this unit
    int split;              // its K split (normal GEMMs), else 0
    int tile;               // its output tile (split-K counters and workspace)
    int k_base;             // k-grouped: first K element of the group, else 0
    int k_len;              // K elements of the group (the last k block may be partial)
    int sf_k_base;          // k-grouped: the group's first scale row (in scale-factor K units), else 0
};

// Per-group counts summed forward 32 groups at a time by a whole warp. Lane i holds group base + i's count, its
// auxiliary value and the inclusive prefix of counts inside the chunk; `before` is the sum over groups < base.
struct GroupWalk {
    int base = -32, before = 0, total = 0;
    int count = 0, aux = 0, incl = 0;

    template <typename Load>
    DG_DEVICE void next_chunk(const int num_groups, const Load& load) {
        before += total, base += 32;
        const int lane = static_cast<int>(threadIdx.x & 31), g = base + lane;
        count = 0, aux = 0;
        if (g < num_groups)
            load(g, count, aux);
        incl = count;
        #pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const int v = __shfl_up_sync(0xffffffffu, incl, o);
            if (lane >= o)
                incl += v;
        }
        total = __shfl_sync(0xffffffffu, incl, 31);
    }

    // The group holding item `x` of the flattened counts (x >= the items before the current chunk): false past the
    // last group. `local` is x's index inside its group; `aux_out` the group's auxiliary value.
    template <typename Load>
    DG_DEVICE bool find(const int x, const int num_groups, const Load& load, int& group, int& local, int& aux_out) {
        while (x >= before + total) {
            if (base + 32 >= num_groups)
                return false;
            next_chunk(num_groups, load);
        }
        const unsigned ahead = __ballot_sync(0xffffffffu, incl > x - before);
        const int lane = __ffs(ahead) - 1;
        group = base + lane;
        local = x - before - (__shfl_sync(0xffffffffu, incl, lane) - __shfl_sync(0xffffffffu, count, lane));
        aux_out = __shfl_sync(0xffffffffu, aux, lane);
        return true;
    }

    // Sum of the counts of groups < g and group g's own count and auxiliary value (g at or after the chunk)
    template <typename Load>
    DG_DEVICE void at(const int g, const int num_groups, const Load& load, int& prefix, int& own, int& aux_out) {
        while (g >= base + 32)
            next_chunk(num_groups, load);
        const int lane = g - base;
        const int i = __shfl_sync(0xffffffffu, incl, lane), c = __shfl_sync(0xffffffffu, count, lane);
        prefix = before + i - c, own = c;
        aux_out = __shfl_sync(0xffffffffu, aux, lane);
    }
};

// kSfGranK / kPackedSf: the scale granularity along K and format of k-grouped operands (both alike), for the groups'
// scale rows
template <int kKind, int kBlockM, int kBlockN, int kBlockK, int kSfGranK, bool kPackedSf>
struct GemmScheduler {
    static constexpr int kBand = 16;

    const GemmParams& p;
    int m_tiles, n_tiles, kb_total;
    GroupWalk walk;

    DG_DEVICE explicit GemmScheduler(const GemmParams& params): p(params) {
        m_tiles = ceil_div(p.m, kBlockM), n_tiles = ceil_div(p.n, kBlockN), kb_total = ceil_div(p.k, kBlockK);
    }

    // Scale-factor rows (K direction) of a group of `k` elements: one per kSfGranK (float; padded to a multiple of 4
    // when the host unpacked them from UE8M0 ints), or one per 4 of them (packed)
    DG_DEVICE int sf_rows_of(const int k) const {
        const int blocks = ceil_div(k, kSfGranK);
        if constexpr (kPackedSf)
            return ceil_div(blocks, 4);
        return (p.flags & kGemmSfRowsPadded4) ? align_up(blocks, 4) : blocks;
    }

    // The unit at index `w` of this CTA's sequence (m-grouped contiguous: the first one at or after `w` in steps of
    // gridDim.x that is not padding, `w` advanced to it); false when the CTA has no more work
    DG_DEVICE bool get(int& w, GemmUnit& u) {
        u.split = 0, u.k_base = 0, u.sf_k_base = 0, u.k_len = p.k, u.zero_rows = 0;
        u.kb_begin = 0, u.kb_end = kb_total;
        if constexpr (kKind == kGemmNormal) {
            const int splits = p.num_splits;
            const int per_group = m_tiles * n_tiles * splits;
            if (w >= per_group * p.num_groups)
                return false;
            u.g = w / per_group;
            const int r = w - u.g * per_group;
            u.split = r % splits;
            const int t = r / splits;
            const int band = t / (kBand * n_tiles), band_m = min_of(kBand, m_tiles - band * kBand);
            const int rr = t - band * kBand * n_tiles;
            const int m_tile = band * kBand + rr % band_m, n_tile = rr / band_m;
            u.m0 = m_tile * kBlockM, n_tile_set(u, n_tile);
            u.rows = min_of(kBlockM, p.m - u.m0);
            u.tile = (u.g * m_tiles + m_tile) * n_tiles + n_tile;
            u.kb_begin = static_cast<int>(static_cast<long long>(kb_total) * u.split / splits);
            u.kb_end = static_cast<int>(static_cast<long long>(kb_total) * (u.split + 1) / splits);
            return true;
        } else if constexpr (kKind == kGemmMGroupedContiguous) {
            // A tile's rows all belong to its first row's group (groups are aligned). A tile of padding rows only
            // (first row -1, possible when the M tile is below the alignment) has no k block: its D rows get zeros
            if (w >= m_tiles * n_tiles)
                return false;
            const int m_tile = w / n_tiles;
            const int g = __ldg(p.grouped_layout + m_tile * kBlockM);
            u.g = max_of(g, 0), u.m0 = m_tile * kBlockM, n_tile_set(u, w % n_tiles);
            u.rows = g >= 0 ? min_of(kBlockM, p.m - u.m0) : 0;
            u.zero_rows = min_of(kBlockM, p.m - u.m0);
            if (g < 0)
                u.kb_end = u.kb_begin;
            u.tile = w;
            return true;
        } else if constexpr (kKind == kGemmMGroupedPsum or kKind == kGemmMGroupedMasked) {
            // Group g's rows [start, end): masked, start 0 (in its own slab) and end masked_m[g]; psum, start the
            // aligned end of group g - 1 and end its own cumulative end. With zero padding a psum group's tiles also
            // cover its gap [end, aligned end), which has no k block to compute
            const bool pad = kKind == kGemmMGroupedPsum and (p.flags & kGemmZeroPadding) != 0;
            const auto bounds = [&](const int g, int& start, int& end, int& cover) {
                if constexpr (kKind == kGemmMGroupedMasked) {
                    start = 0, end = min_of(__ldg(p.grouped_layout + g), p.m);
                } else {
                    start = g == 0 ? 0 : align_up(__ldg(p.grouped_layout + g - 1), p.mk_alignment);
                    end = min_of(__ldg(p.grouped_layout + g), p.m);
                }
                cover = pad ? min_of(align_up(max_of(end, start), p.mk_alignment), p.m) : end;
            };
            const auto load = [&](const int g, int& tiles, int& start) {
                int end, cover;
                bounds(g, start, end, cover);
                tiles = cover > start ? ceil_div(cover - start, kBlockM) : 0;
            };
            int g, local, start;
            if (not walk.find(w / n_tiles, p.num_groups, load, g, local, start))
                return false;
            int end, cover;
            bounds(g, start, end, cover);
            u.g = g, u.m0 = start + local * kBlockM, n_tile_set(u, w % n_tiles);
            u.rows = max_of(0, min_of(kBlockM, end - u.m0));
            u.zero_rows = max_of(u.rows, min_of(kBlockM, cover - u.m0));
            if (u.rows == 0)
                u.kb_end = u.kb_begin;
            u.tile = w;
            return true;
        } else {
            static_assert(kKind == kGemmKGrouped, "unknown GEMM kind");
            const int per_group = m_tiles * n_tiles;
            if (w >= per_group * p.num_groups)
                return false;
            u.g = w / per_group;
            const int t = w - u.g * per_group;
            const int m_tile = t / n_tiles;
            u.m0 = m_tile * kBlockM, n_tile_set(u, t % n_tiles);
            u.rows = min_of(kBlockM, p.m - u.m0);
            u.tile = w;
            // K offsets: the prefix of the groups' K; scale rows: the prefix of their scale rows
            const auto load = [&](const int g, int& k, int& sf_rows) {
                k = max_of(__ldg(p.grouped_layout + g), 0);
                sf_rows = sf_rows_of(k);
            };
            int k_before, k, sf_rows_unused;
            walk.at(u.g, p.num_groups, load, k_before, k, sf_rows_unused);
            u.k_base = k_before, u.k_len = k;
            u.kb_begin = 0, u.kb_end = ceil_div(k, kBlockK);
            u.sf_k_base = sf_base_walk(u.g);
            return true;
        }
    }

private:
    GroupWalk sf_walk;

    DG_DEVICE static void n_tile_set(GemmUnit& u, const int n_tile) { u.n0 = n_tile * kBlockN; }

    // k-grouped: the scale rows of the groups before g
    DG_DEVICE int sf_base_walk(const int g) {
        const auto load = [&](const int gg, int& rows, int& unused) {
            rows = sf_rows_of(max_of(__ldg(p.grouped_layout + gg), 0));
            unused = 0;
        };
        int before, own, unused;
        sf_walk.at(g, p.num_groups, load, before, own, unused);
        return before;
    }
};

} // namespace deep_gemm
