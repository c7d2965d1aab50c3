"""GPU tests of `deep_gemm.testing.bench_kineto` (upstream's semantics) and of the strict per-call timer our own
benchmarks use (`_bench_kineto_per_call`), with torch's own kernels: an elementwise add and a float sum."""
import importlib

import pytest
import torch

from deep_gemm.testing import bench_kineto

bench_mod = importlib.import_module('deep_gemm.testing.bench')


def _ops():
    x = torch.randn(1 << 22, device='cuda')
    s = torch.empty((), device='cuda')
    add = lambda: x.add_(1.0)              # noqa: E731
    total = lambda: torch.sum(x, dim=0, out=s)    # noqa: E731
    return add, total


def _visible_names(fn):
    kernels = bench_mod._profile_kernels(fn, 3, True, None, True, None)
    return sorted({bench_mod._visible(k) for k, _ in kernels}), kernels


@pytest.mark.gpu
def test_bench_kineto_upstream_semantics():
    add, total = _ops()
    (add_name,), add_kernels = _visible_names(add)
    (sum_name,), _ = _visible_names(total)
    assert len(add_kernels) == 3, f'one add kernel per call expected: {add_kernels}'
    assert add_name != sum_name and add_name not in sum_name and sum_name not in add_name, (add_name, sum_name)
    both = lambda: (add(), total())        # noqa: E731
    thrice = lambda: (add(), add(), add())  # noqa: E731
    info = f'kernels: add {add_name!r}, sum {sum_name!r}'

    # a str gives a float, a tuple a tuple; a name no kernel has gives 0
    t = bench_kineto(both, add_name, suppress_kineto_output=True)
    assert isinstance(t, float) and 0 < t < 1e-3, (t, info)
    t_add, t_none, t_sum = bench_kineto(both, (add_name, 'no_such_kernel_anywhere', sum_name), num_tests=10)
    assert t_add > 0 and t_none == 0.0 and t_sum > 0, (t_add, t_none, t_sum, info)
    assert bench_kineto(both, ['no_such_kernel_anywhere']) == (0.0,)

    # a substring of two distinct kernels: AssertionError, unless with_multiple_kernels
    common = 'at::native::' if 'at::native::' in add_name and 'at::native::' in sum_name else None
    if common is None:
        common = next(c for c in ('void ', 'native', 'kernel') if c in add_name and c in sum_name)
    with pytest.raises(AssertionError, match='different kernels contain'):
        bench_kineto(both, common, suppress_kineto_output=True)
    t_both = bench_kineto(both, common, with_multiple_kernels=True)
    assert t_both > 0

    # per launch, not per call: three launches per call time like one (same kernel, same size), within noise
    t1 = bench_kineto(add, add_name, num_tests=30)
    t3 = bench_kineto(thrice, add_name, num_tests=30)
    assert 0.4 < t3 / t1 < 2.5, f'per-launch means differ too much: {t1 * 1e6:.2f} vs {t3 * 1e6:.2f} us ({info})'

    # our strict timer: per call, and exactly `launches_per_call` launches per call
    per_call = bench_mod._bench_kineto_per_call(thrice, add_name, launches_per_call=3)
    assert 1.5 < per_call / t3 < 6, f'per call {per_call * 1e6:.2f} us vs per launch {t3 * 1e6:.2f} us'
    with pytest.raises(RuntimeError, match=r'expected 1 launch\(es\) per call .* found 90'):
        bench_mod._bench_kineto_per_call(thrice, add_name)
    with pytest.raises(RuntimeError, match=r'found 0 in all; kernels seen'):
        bench_mod._bench_kineto_per_call(add, 'no_such_kernel_anywhere')


@pytest.mark.gpu
def test_bench_kineto_flush_and_barrier_are_not_timed():
    """The L2 flush's own kernels are never matched (their names are learned and excluded), and a barrier runs
    once before each profiled call."""
    add, _ = _ops()
    buf = bench_mod._l2_flush_buffer()
    flush_names = {k for k, _ in bench_mod._profile_kernels(lambda: bench_mod._flush_l2(buf), 2, True, None, False,
                                                             None)}
    assert flush_names, 'the flush launched no kernel?'
    calls = []
    kernels = bench_mod._profile_kernels(add, 7, True, None, True, lambda: calls.append(1))
    assert len(calls) == 7
    assert not ({k for k, _ in kernels} & flush_names), f'flush kernels were not excluded: {kernels}'
    assert len(kernels) == 7, kernels
