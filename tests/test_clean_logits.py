"""The clean-logits kernel's work split: warps own runs of (row, 8 KB column segment) items.

CPU: a Python model of the item split (the arithmetic of `smxx_clean_logits_impl` and of the host launch in
`csrc/jit_kernels/impls/smxx_clean_logits.hpp`) covers every masked column exactly once and nothing else, and spreads
a few very long rows over many warps.
GPU: the kernel against a torch reference, with untouched padding columns, for ragged and paged modes, including
very long rows (paged decode: 64 rows of 262K columns).
"""
import pytest
import torch

import deep_gemm


# ---------------------------------------------------------------------------------------------------------------------
# CPU model of the segment split

def _zigzag(v, r):
    return r - 1 - (v >> 1) if v & 1 else v >> 1


def _model_writes(ranges, num_cols, elem_size, num_sms, blocks_per_sm=8, warps_per_block=8):
    """Columns each row gets written by the model, as a list of per-row counters, and the warps that wrote."""
    num_rows = len(ranges)
    seg_cols = 8192 // elem_size
    num_segs = (num_cols + seg_cols - 1) // seg_cols
    total = num_rows * num_segs
    max_warps = num_sms * blocks_per_sm * warps_per_block
    per_warp = (total + max_warps - 1) // max_warps
    grid = (total + per_warp * warps_per_block - 1) // (per_warp * warps_per_block)
    counts = [[0] * num_cols for _ in range(num_rows)]
    writers = set()
    for warp in range(grid * warps_per_block):
        item, item_end = warp * per_warp, min(total, warp * per_warp + per_warp)
        while item < item_end:
            v0 = item // num_segs
            num_v = min(32, (item_end - 1) // num_segs - v0 + 1)
            for r in range(num_v):
                v = v0 + r
                row = _zigzag(v, num_rows)
                begin, end = ranges[row]
                first = v * num_segs
                s_lo, s_hi = max(item, first) - first, min(item_end, first + num_segs) - first
                c_lo, c_hi = s_lo * seg_cols, min(num_cols, s_hi * seg_cols)
                for lo, hi in ((c_lo, min(begin, c_hi)), (max(end, c_lo), c_hi)):
                    for c in range(lo, hi):
                        counts[row][c] += 1
                        writers.add(warp)
            item = (v0 + num_v) * num_segs
    return counts, writers


@pytest.mark.parametrize('rows,cols,elem,sms', [(7, 5000, 4, 2), (33, 3000, 2, 1), (1, 20000, 4, 3),
                                                (64, 700, 4, 1), (5, 9000, 2, 132)])
def test_segment_model_covers_masked_columns_once(rows, cols, elem, sms):
    g = torch.Generator().manual_seed(rows * cols)
    ranges = []
    for i in range(rows):
        a, b = sorted(torch.randint(0, cols + 1, (2, ), generator=g).tolist())
        ranges.append((a, b) if i % 5 else (0, cols if i % 2 else 0))
    assert sorted(_zigzag(v, rows) for v in range(rows)) == list(range(rows))
    counts, _ = _model_writes(ranges, cols, elem, sms)
    for row, (begin, end) in enumerate(ranges):
        expected = [0 if begin <= c < end else 1 for c in range(cols)]
        assert counts[row] == expected, f'row {row} range {(begin, end)}'


def test_segment_model_spreads_long_rows_over_warps():
    """Two fully masked rows of 300K fp32 columns (147 segments each) on 4 SMs (256 resident warps): every masked
    column is written once, by one of 147 different warps, not by one warp (or block) per row."""
    rows, cols = 2, 300000
    counts, writers = _model_writes([(0, 0)] * rows, cols, 4, 4)
    assert all(c == [1] * cols for c in counts)
    assert len(writers) == 147, len(writers)


# ---------------------------------------------------------------------------------------------------------------------
# GPU: the kernel against a reference

def _strided(rows, cols, dtype, seed):
    stride = deep_gemm.align(cols + 256, 1024 // torch.tensor([], dtype=dtype).element_size())
    g = torch.Generator(device='cuda').manual_seed(seed)
    return torch.randn(rows, stride, device='cuda', generator=g).to(dtype)


@pytest.mark.gpu
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('rows,cols', [(1, 1), (3, 9000), (129, 1000), (300, 4099), (4096, 2500), (5, 300001)])
def test_clean_ragged(dtype, rows, cols):
    buf = _strided(rows, cols, dtype, seed=rows + cols)
    before = buf.clone()
    logits = buf[:, :cols]
    g = torch.Generator(device='cuda').manual_seed(rows)
    ks = torch.randint(-5, cols + 5, (rows, ), device='cuda', dtype=torch.int32, generator=g)
    ke = ks + torch.randint(-3, cols + 3, (rows, ), device='cuda', dtype=torch.int32, generator=g)
    if rows > 2:
        ks[1], ke[1] = 0, cols                                      # nothing to clean
        ks[2], ke[2] = 3, 3                                         # everything to clean
    deep_gemm._C._clean_logits_ragged(logits, ks, ke)
    col = torch.arange(cols, device='cuda')[None, :]
    lo = ks.long().clamp(0, cols)[:, None]
    hi = torch.maximum(ke.long().clamp(0, cols)[:, None], lo)
    valid = (col >= lo) & (col < hi)
    expected = torch.where(valid, before[:, :cols], torch.full_like(before[:, :cols], float('-inf')))
    assert torch.equal(buf[:, :cols], expected)
    assert torch.equal(buf[:, cols:], before[:, cols:]), 'padding columns were written'


@pytest.mark.gpu
@pytest.mark.parametrize('two_d', [True, False])
@pytest.mark.parametrize('b,next_n,width', [(6, 2, 70000),         # long rows: many segments per row
                                            (32, 2, 262147)])      # paged decode: 64 rows of 262K columns
def test_clean_paged(two_d, b, next_n, width):
    buf = _strided(b * next_n, width, torch.float32, seed=b + width)
    before = buf.clone()
    if two_d:
        lens = torch.randint(0, width + 1, (b, next_n), device='cuda', dtype=torch.int32)
        lens[0, 0], lens[-1, -1] = 0, width                         # everything / nothing to clean
        row_lens = lens.flatten().long()
    else:
        lens = torch.randint(next_n, width + 1, (b, ), device='cuda', dtype=torch.int32)
        row_lens = (lens[:, None] - next_n + 1 + torch.arange(next_n, device='cuda')[None, :]).flatten().long()
    deep_gemm._C._clean_logits_paged(buf[:, :width], lens, next_n)
    col = torch.arange(width, device='cuda')[None, :]
    expected = torch.where(col < row_lens[:, None], before[:, :width], torch.full_like(before[:, :width],
                                                                                    float('-inf')))
    assert torch.equal(buf[:, :width], expected)
    assert torch.equal(buf[:, width:], before[:, width:])
