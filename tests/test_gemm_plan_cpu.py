"""CPU tests of the GEMM heuristics (`_C._gemm_plan`, no GPU): every plan fits sm_120's shared memory, fills the GPU
for small M through K splits, and a (N, K) compiles only a few distinct kernels over M = 1 .. 16384 (SGLang's
warm-up calls every M)."""
import pytest

import deep_gemm

pytestmark = pytest.mark.skipif(deep_gemm._C is None, reason='deep_gemm._C is not built')

SMEM = 101376
V4_NK = [(1536, 4096), (32768, 1024), (4096, 8192), (4096, 4096), (4096, 2048), (8192, 1024), (2048, 7168),
         (65536, 1536), (7168, 16384), (6144, 7168), (7168, 3072), (8192, 1536), (129280, 7168), (576, 7168)]


def plan(m, n, k, target='sm_120a', **kw):
    return deep_gemm._C._gemm_plan(target, 0, m, n, k, **kw)


@pytest.mark.parametrize('target', ['sm_120a', 'sm_121a'])
def test_few_kernels_per_nk_over_all_m(target):
    for n, k in V4_NK:
        keys = {plan(m, n, k, target)['key'] for m in range(1, 16385)}
        assert len(keys) <= 10, f'N={n} K={k}: {len(keys)} distinct kernels over M = 1..16384'


@pytest.mark.parametrize('combo', [(0, 0, 128, 128), (0, 0, 32, 32), (0, 1, 128, 32), (1, 1, 32, 32), (2, 2, 128, 128)])
def test_plans_fit_shared_memory(combo):
    ta, tb, ga, gb = combo
    for m in (1, 16, 17, 64, 100, 4096):
        for kind in range(5):
            p = deep_gemm._C._gemm_plan('sm_120a', kind, m, 4096, 7168, num_groups=4, type_a=ta, type_b=tb,
                                        gran_k_a=ga, gran_k_b=gb)
            assert p['smem_bytes'] <= SMEM, p
            assert 2 <= p['num_stages'] <= 8, p
            assert p['block_k'] == (64 if ta == 2 else 128), p
            if ga == 32 or gb == 32:
                assert p['block_m'] <= 64, p


def test_small_m_fills_the_gpu_with_k_splits():
    for n, k in V4_NK:
        for m in (1, 8, 32):
            p = plan(m, n, k)
            units = -(-n // p['block_n']) * -(-m // p['block_m']) * p['num_splits']
            kb = -(-k // 128)
            # one wave at most, and at least half the SMs busy unless K is too short to split further
            assert units <= p['num_sms'] or p['num_splits'] == 1, p
            assert units * 2 >= p['num_sms'] or p['num_splits'] * 2 > kb // 2, (n, k, m, p)
            assert p['block_m'] == 16 or m > 16, p


def test_grouped_tiles_respect_alignment():
    for align, expect in ((128, 128), (64, 64), (32, 32), (16, 16)):
        p = deep_gemm._C._gemm_plan('sm_120a', 1, 8192, 4096, 4096, num_groups=8, max_block_m=expect)
        assert p['block_m'] <= expect


def test_contiguous_plan_tiles_all_rows():
    # The host plans a contiguous layout's M tile for its rows per group and deals tiles over all rows (`total_m`):
    # 8 groups of ~4096 rows on 170 SMs fill the grid, where 4096 rows alone would not
    one = deep_gemm._C._gemm_plan('sm_120a', 1, 4096, 4096, 4096, num_groups=8, type_b=1, gran_k_b=32, num_sms=170)
    all_rows = deep_gemm._C._gemm_plan('sm_120a', 1, 4096, 4096, 4096, num_groups=8, type_b=1, gran_k_b=32,
                                       num_sms=170, total_m=8 * 4096)
    assert one['block_m'] == all_rows['block_m']
    assert one['grid'] == min(170, -(-4096 // one['block_m']) * 32)
    assert all_rows['grid'] == 170


def test_contiguous_bench_sizes():
    from deep_gemm.bench.gemm import contiguous_sizes
    sizes, starts, total = contiguous_sizes(8, 4096)
    assert len(sizes) == 8 and all(int(0.7 * 4096) <= s <= int(1.3 * 4096) for s in sizes)
    assert min(sizes) < 3000 and max(sizes) > 5200                  # the spread the issue asks for, not all alike
    assert all(st % 128 == 0 for st in starts) and total % 128 == 0 and total >= sum(sizes)
    assert all(b >= a + s for a, b, s in zip(starts, starts[1:], sizes))
    assert contiguous_sizes(8, 4096) == (sizes, starts, total)       # the bench and the model see the same rows


def test_plan_bad_arguments():
    with pytest.raises(ValueError, match='`total_m` must be in'):
        deep_gemm._C._gemm_plan('sm_120a', 1, 1, 128, 128, total_m=-1)
    with pytest.raises(ValueError, match='`kind` must be in'):
        deep_gemm._C._gemm_plan('sm_120a', 7, 1, 1, 1)
    with pytest.raises(ValueError, match='unsupported operand combination'):
        deep_gemm._C._gemm_plan('sm_120a', 0, 1, 128, 128, type_a=1, type_b=0, gran_k_a=128, gran_k_b=128)
