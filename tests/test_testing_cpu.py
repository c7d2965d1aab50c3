"""CPU tests of the upstream-compatible helpers: `deep_gemm.utils.math.ceil_div` / `align` (ints and integer
tensors), `per_token_cast_to_fp8(use_packed_ue8m0=True)`, `deep_gemm.testing.get_arch_major` in SM120 mode, and
`bench_kineto`'s reading of a profile (the GPU half is tests/test_bench_kineto_gpu.py)."""
import importlib

import numpy as np
import pytest
import torch

from deep_gemm import testing as dgt
from deep_gemm import utils as dgu

bench_mod = importlib.import_module('deep_gemm.testing.bench')  # `deep_gemm.testing.bench` is also the function


# ---------------------------------------------------------------------------------------------------------------------
# ceil_div / align
# ---------------------------------------------------------------------------------------------------------------------
def test_ceil_div_align_ints():
    for x in range(-9, 40):
        for y in (1, 2, 3, 7, 16, 64):
            want = -(-x // y)
            assert dgu.ceil_div(x, y) == want and type(dgu.ceil_div(x, y)) is int
            assert dgu.align(x, y) == want * y
    assert dgu.ceil_div(np.int64(129), 64) == 3 and dgu.align(np.int32(5), 4) == 8
    assert dgu.math.ceil_div(7, 2) == 4  # the same function under upstream's other path


@pytest.mark.parametrize('dtype', [torch.int32, torch.int64, torch.int16])
def test_ceil_div_align_tensors(dtype):
    x = torch.tensor([0, 1, 63, 64, 65, 127, 128], dtype=dtype)
    assert torch.equal(dgu.ceil_div(x, 64), torch.tensor([0, 1, 1, 1, 2, 2, 2], dtype=dtype))
    assert torch.equal(dgu.align(x, 64), torch.tensor([0, 64, 64, 64, 128, 128, 128], dtype=dtype))
    # tensor divisor, elementwise; a 0-dim tensor as upstream's `align(psum_m[i], alignment)` passes
    y = torch.tensor([1, 2, 4, 8, 16, 32, 64], dtype=dtype)
    assert torch.equal(dgu.ceil_div(x, y), torch.tensor([0, 1, 16, 8, 5, 4, 2], dtype=dtype))
    assert dgu.align(torch.tensor(130, dtype=dtype), 128).item() == 256
    assert dgu.ceil_div(200, torch.tensor(64, dtype=dtype)).item() == 4


@pytest.mark.parametrize('x,y,exc,pattern', [
    (3.0, 2, TypeError, r'ceil_div: `x` must be an int or an integer tensor, got float'),
    (3, 2.5, TypeError, r'ceil_div: `y` must be an int or an integer tensor, got float'),
    (True, 2, TypeError, r'`x` must be .* got bool'),
    ('8', 2, TypeError, r'`x` must be .* got str'),
    (None, 2, TypeError, r'`x` must be .* got NoneType'),
    (torch.ones(3), 2, TypeError, r'`x` must be an int or an integer tensor, got a torch.float32 tensor'),
    (torch.ones(3, dtype=torch.bool), 2, TypeError, r'got a torch.bool tensor'),
    (3, 0, ValueError, r'ceil_div: `y` must be positive, got 0'),
    (torch.tensor([3]), -4, ValueError, r'`y` must be positive, got -4'),
])
def test_ceil_div_align_errors(x, y, exc, pattern):
    with pytest.raises(exc, match=pattern):
        dgu.ceil_div(x, y)
    with pytest.raises(exc, match=pattern.replace('ceil_div', 'align')):
        dgu.align(x, y)


# ---------------------------------------------------------------------------------------------------------------------
# per_token_cast_to_fp8 with packed UE8M0 scales
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('k,gran_k', [(128, 32), (96, 32), (7168, 128), (160, 32)])
def test_per_token_cast_to_fp8_packed(k, gran_k):
    x = torch.randn(5, k) * torch.logspace(-3, 3, 5).unsqueeze(1)
    ref_q, ref_sf = dgu.per_token_cast_to_fp8(x, use_ue8m0=True, gran_k=gran_k)
    q, sf = dgu.per_token_cast_to_fp8(x, use_ue8m0=True, gran_k=gran_k, use_packed_ue8m0=True)
    nb = -(-k // gran_k)
    assert torch.equal(q.view(torch.uint8), ref_q.view(torch.uint8))
    assert sf.dtype == torch.int32 and tuple(sf.shape) == (5, -(-nb // 4))
    unpacked = dgu.unpack_ue8m0_from_int(sf)
    assert torch.equal(unpacked[:, :nb], ref_sf)
    assert bool((unpacked[:, nb:] == 1.0).all())  # missing blocks are 2^0 (byte 127)
    with pytest.raises(ValueError, match=r'per_token_cast_to_fp8: `use_packed_ue8m0=True` requires `use_ue8m0=True`'):
        dgu.per_token_cast_to_fp8(x, use_ue8m0=False, gran_k=gran_k, use_packed_ue8m0=True)


# ---------------------------------------------------------------------------------------------------------------------
# get_arch_major
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('value', ['1', 'true', 'on', 'yes'])
def test_get_arch_major_sm120_mode(monkeypatch, value):
    monkeypatch.setenv('DG_SM120_MODE', value)
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda *a: pytest.fail('must not query the device'))
    assert dgt.get_arch_major() == 12


@pytest.mark.parametrize('value', [None, '', '0', 'false', 'False', 'off'])
def test_get_arch_major_device(monkeypatch, value):
    if value is None:
        monkeypatch.delenv('DG_SM120_MODE', raising=False)
    else:
        monkeypatch.setenv('DG_SM120_MODE', value)
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda *a: (9, 0))
    assert dgt.get_arch_major() == 9


# ---------------------------------------------------------------------------------------------------------------------
# bench_kineto: reading a profile (synthetic kernel lists), arguments, and DG_USE_NVIDIA_TOOLS
# ---------------------------------------------------------------------------------------------------------------------
LONG = 'void deep_gemm::some_very_long_templated_kernel_name<128, 64, 4, true, false, 0, 1, 2, 3, 4, 5, 6, 7>(int)'


@pytest.mark.parametrize('names,multi,want', [
    (('paged_mqa_logits',), False, [2.0e-6]),                     # mean of the 3 launches of one kernel
    (('paged_mqa_logits', 'clean_logits'), False, [2.0e-6, 0.0]),  # a name no kernel has gives 0
    (('mqa_logits',), False, [2.0e-6]),                           # substring of one distinct name
    # several kernels (LONG has deep_gemm::): the mean per launch
    (('gemm',), True, [(1e-6 + 2e-6 + 3e-6 + 10e-6 + 20e-6 + 5e-6) / 6]),
    (('7>(int)',), False, [0.0]),                                 # past the 97 visible characters
    (('some_very_long',), False, [5e-6]),
])
def test_mean_launch_times(names, multi, want):
    kernels = [('sm120_fp8_paged_mqa_logits', 1e-6), ('sm120_fp8_paged_mqa_logits', 2e-6),
               ('sm120_fp8_paged_mqa_logits', 3e-6), ('bf16_gemm_kernel', 10e-6), ('cublas_gemm_splitk', 20e-6),
               (LONG, 5e-6)]
    if 'gemm' in names:
        kernels = [(k.replace('paged_mqa_logits', 'gemm_x'), t) for k, t in kernels]
    got = bench_mod._mean_launch_times(kernels, names, multi)
    assert got == pytest.approx(want, rel=1e-12, abs=0)


def test_mean_launch_times_several_distinct_kernels_assert():
    kernels = [('bf16_gemm_a', 1e-6), ('bf16_gemm_b', 2e-6), ('bf16_gemm_a', 1e-6)]
    with pytest.raises(AssertionError, match=r"bench_kineto: 2 different kernels contain 'gemm'"):
        bench_mod._mean_launch_times(kernels, ('gemm',), False)
    # one distinct kernel launched several times per call is fine
    assert bench_mod._mean_launch_times(kernels, ('gemm_a',), False) == [1e-6]


def test_bench_kineto_under_nvidia_tools(monkeypatch):
    """Upstream's test_sanitizer.py sets DG_USE_NVIDIA_TOOLS=1: no profiling (it conflicts with the tools), every
    time is 1, and `fn` is not run."""
    monkeypatch.setenv('DG_USE_NVIDIA_TOOLS', '1')
    boom = lambda: pytest.fail('fn must not run under DG_USE_NVIDIA_TOOLS')  # noqa: E731
    assert dgt.bench_kineto(boom, 'gemm') == 1.0
    assert dgt.bench_kineto(boom, ('nvjet', 'reduce')) == (1.0, 1.0)
    assert dgt.bench_kineto(boom, ['a', 'b', 'c']) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize('kwargs,exc,pattern', [
    (dict(fn=1, kernel_names='x'), TypeError, r'bench_kineto: `fn` must be callable, got int'),
    (dict(kernel_names=3), TypeError, r'bench_kineto: `kernel_names` must be a non-empty str or a tuple/list'),
    (dict(kernel_names=()), TypeError, r'`kernel_names` must be a non-empty str'),
    (dict(kernel_names=('a', '')), TypeError, r'`kernel_names` must be a non-empty str'),
    (dict(kernel_names='a', num_tests=0), ValueError, r'bench_kineto: `num_tests` must be a positive int, got 0'),
    (dict(kernel_names='a', barrier=5), TypeError, r'bench_kineto: `barrier` must be callable or None, got int'),
])
def test_bench_kineto_bad_arguments(kwargs, exc, pattern):
    kwargs.setdefault('fn', lambda: None)
    with pytest.raises(exc, match=pattern):
        dgt.bench_kineto(**kwargs)


def test_bench_kineto_signature_is_upstreams():
    import inspect
    params = list(inspect.signature(dgt.bench_kineto).parameters.values())
    assert [(p.name, p.default) for p in params] == [
        ('fn', inspect.Parameter.empty), ('kernel_names', inspect.Parameter.empty), ('num_tests', 30),
        ('suppress_kineto_output', False), ('trace_path', None), ('flush_l2', True), ('with_multiple_kernels', False),
        ('barrier', None)]
