"""`tf32_hc_prenorm_gemm` (CONTRACT.md §3): d = a @ b.T with TF32 operands and FP32 accumulation, and
sqr_sum = (a.float() ** 2).sum(-1), optionally split over K.

CPU tests: argument validation (CPU tensors), compile checks of every configuration. GPU tests: against torch's
TF32 matmul (upstream's criterion, calc_diff < 1e-8) and against a float64 product of `b` rounded to TF32 the way
the kernel rounds it (a tighter check that does not depend on which cuBLAS kernel torch picks), poisoned and
guarded outputs, bitwise determinism, CUDA-graph replay, and bad inputs that must leave the outputs untouched.
"""
import pytest
import torch

import deep_gemm
from deep_gemm.testing import calc_diff

FN = 'tf32_hc_prenorm_gemm'
GUARD = 1234.5  # written after every output, must survive the call
# The kernel vs a float64 product with the same TF32 rounding of `b`: only FP32 accumulation differs. A simulation of
# a worst case (every m16n8k8 step rounding its sum toward zero, K = 16384) gives calc_diff 3e-10; a wrong rounding
# of `b` gives >= 2e-8 (rna vs none) and 1.3e-7 (truncate vs rna).
EXACT_TOL = 2e-9


def _have_ext():
    return deep_gemm._C is not None and hasattr(deep_gemm._C, 'tf32_hc_prenorm_gemm')


needs_ext = pytest.mark.skipif(not _have_ext(), reason='deep_gemm._C (with tf32_hc_prenorm_gemm) is not built')


# ---------------------------------------------------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------------------------------------------------
def torch_tf32_reference(a, b):
    """Upstream's reference: `a.float() @ b.T` with TF32 enabled. Fewer than 128 rows of `a` (or 8 of `b`) are
    padded with zero rows (each output element depends only on its own row of `a` and of `b`), so torch runs a TF32
    GEMM rather than an FP32 GEMV, which does not use TF32 (seen on the H100: N=1 gave calc_diff 1.9e-8)."""
    m, k = a.shape
    n = b.shape[0]
    af = a.float()
    if m < 128:
        af = torch.cat([af, af.new_zeros(128 - m, k)])
    if n < 8:
        b = torch.cat([b, b.new_zeros(8 - n, k)])
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        d = (af @ b.T)[:m, :n].clone()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    return d, a.float().square().sum(-1)


def round_tf32(x, mode):
    """float32 -> TF32 (as float32): 'truncate' clears the low 13 mantissa bits; 'rna' rounds to nearest, ties away
    from zero (cvt.rna.tf32.f32). Inputs are finite."""
    bits = x.contiguous().view(torch.int32)
    if mode == 'rna':
        bits = bits + 0x1000  # carries into the exponent exactly as the rounding does
    return (bits & -8192).view(torch.float32)  # -8192 == 0xffffe000 as int32


def exact_reference(a, b, mode):
    """float64 product of bf16 `a` (exact in TF32) and `b` rounded to TF32 like the kernel; float64 square sums."""
    ad = a.double()
    return ad @ round_tf32(b, mode).double().T, ad.square().sum(-1)


def default_rounding():
    return deep_gemm._C._tf32_hc_prenorm_gemm_default_rounding()


def split_columns(m, n, k, num_splits):
    """K column range [first, last) of each caller's split, from the host plan (the partition the kernel computes on
    the device: whole 64-wide blocks, counts as even as possible)."""
    blocks = deep_gemm._C._tf32_hc_prenorm_gemm_plan('sm_120a', max(m, 1), n, k, num_splits)['user_split_blocks']
    return [(first * 64, last * 64) for first, last in blocks]


def check_each_split(a, b, d, s, num_splits, what):
    """Every split's d[i] / sqr_sum[i] is the product over its own K columns; a split without columns is exactly 0."""
    m, k = a.shape
    for i, (c0, c1) in enumerate(split_columns(m, b.shape[0], k, num_splits)):
        if c0 == c1:
            assert bool((d[i] == 0).all()) and bool((s[i] == 0).all()), f'{what}: empty split {i} is not zero'
            continue
        sd, ss = exact_reference(a[:, c0:c1], b[:, c0:c1], default_rounding())
        diff_d, diff_s = calc_diff(d[i], sd), calc_diff(s[i], ss)
        assert diff_d < EXACT_TOL, f'{what}: split {i} (K columns [{c0}, {c1})): d diff {diff_d:.3e}'
        assert diff_s < 1e-10, f'{what}: split {i} (K columns [{c0}, {c1})): sqr_sum diff {diff_s:.3e}'


# ---------------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------------
def guarded_outputs(shape_d, shape_s, poison=float('nan')):
    """Contiguous `d` and `sqr_sum` views at the start of larger buffers: filled with `poison`, tails with GUARD."""
    nd, ns = 1, 1
    for x in shape_d:
        nd *= x
    for x in shape_s:
        ns *= x
    buf_d = torch.full((nd + 64,), GUARD, dtype=torch.float32, device='cuda')
    buf_s = torch.full((ns + 64,), GUARD, dtype=torch.float32, device='cuda')
    buf_d[:nd] = poison
    buf_s[:ns] = poison
    return buf_d, buf_s, buf_d[:nd].view(shape_d), buf_s[:ns].view(shape_s)


def check_guards(buf_d, buf_s, nd, ns):
    assert bool((buf_d[nd:] == GUARD).all()), 'tf32_hc_prenorm_gemm wrote past the end of `d`'
    assert bool((buf_s[ns:] == GUARD).all()), 'tf32_hc_prenorm_gemm wrote past the end of `sqr_sum`'


def run(a, b, num_splits=None, rounding=None):
    """Call the kernel on poisoned, guarded outputs; return (d, sqr_sum) after checking the guards."""
    m, n = a.shape[0], b.shape[0]
    shape_d = (m, n) if num_splits is None else (num_splits, m, n)
    shape_s = (m,) if num_splits is None else (num_splits, m)
    buf_d, buf_s, d, s = guarded_outputs(shape_d, shape_s)
    if rounding is None:
        deep_gemm.tf32_hc_prenorm_gemm(a, b, d, s, num_splits)
    else:
        deep_gemm._C._tf32_hc_prenorm_gemm_rounding(a, b, d, s, num_splits, rounding)
    torch.cuda.synchronize()
    check_guards(buf_d, buf_s, d.numel(), s.numel())
    assert not bool(torch.isnan(d).any()), 'some element of `d` was not written (NaN poison left)'
    assert not bool(torch.isnan(s).any()), 'some element of `sqr_sum` was not written (NaN poison left)'
    return d, s


_INPUTS = {}


def inputs(m, n, k, seed=0):
    """Fresh random a [m, k] bf16 and b [n, k] fp32 (cached per shape within the module; one large `a` at a time)."""
    key = (m, n, k, seed)
    if key not in _INPUTS:
        if any(mk[0] * mk[2] > 1 << 26 for mk in _INPUTS):
            _INPUTS.clear()
        g = torch.Generator(device='cuda')
        g.manual_seed(1000 * seed + 7 * m + n + k)
        a = torch.randn(m, k, generator=g, device='cuda').to(torch.bfloat16)
        # b like a hyper-connection projection: small weights, of both signs, full fp32 mantissas
        b = torch.randn(n, k, generator=g, device='cuda') * 0.02
        _INPUTS[key] = (a, b)
    return _INPUTS[key]


# ---------------------------------------------------------------------------------------------------------------------
# GPU: correctness
# ---------------------------------------------------------------------------------------------------------------------
CASES = [(m, n, 16384, s) for m in (1, 7, 128, 4096, 16384) for n in (24, 17, 32) for s in (None, 16)]
CASES += [(m, n, 4096, s) for m in (1, 300, 4096) for n in (24, 17) for s in (None, 4)]
CASES += [(5, 8, 64, None), (129, 1, 128, 2), (2000, 32, 1024, 16)]


@pytest.mark.gpu
@pytest.mark.parametrize('m,n,k,num_splits', CASES)
def test_against_torch_tf32(m, n, k, num_splits):
    a, b = inputs(m, n, k)
    d, s = run(a, b, num_splits)
    ref_d, ref_s = torch_tf32_reference(a, b)
    if num_splits is not None:
        # each split on its own is the product over its K range
        check_each_split(a, b, d, s, num_splits, f'M={m} N={n} K={k} num_splits={num_splits}')
        d, s = d.sum(0), s.sum(0)
    diff_d, diff_s = calc_diff(d, ref_d), calc_diff(s, ref_s)
    assert diff_d < 1e-8, f'd: calc_diff {diff_d:.3e} vs torch TF32 (M={m}, N={n}, K={k}, num_splits={num_splits})'
    assert diff_s < 1e-8, f'sqr_sum: calc_diff {diff_s:.3e} vs torch (M={m}, N={n}, K={k}, num_splits={num_splits})'


# Upstream's test_hyperconnection.py shapes (K = 7680 / 16 = 480 is not a multiple of 64: splits of 7 and 8 blocks),
# a split count that divides nothing (7), and more splits than 64-wide K blocks (some splits are empty)
UPSTREAM_CASES = [(m, 24, k, s) for m in (13, 137, 4096) for k in (7680, 7168, 28672) for s in (None, 16, 7)]
UPSTREAM_CASES += [(13, 24, 7168, 200), (137, 24, 7168, 113), (137, 17, 1024, 40), (4096, 24, 640, 11),
                   (1, 32, 64, 3)]


@pytest.mark.gpu
@pytest.mark.parametrize('m,n,k,num_splits', UPSTREAM_CASES)
def test_any_num_splits(m, n, k, num_splits):
    """Any `num_splits` >= 1 with any K that is a multiple of 64: upstream's criterion on the sums (calc_diff < 1e-8
    against torch TF32), each split exact over its own block range, empty splits zero, and a second call equal bit
    for bit."""
    a, b = inputs(m, n, k)
    what = f'M={m} N={n} K={k} num_splits={num_splits}'
    d, s = run(a, b, num_splits)
    d2, s2 = run(a, b, num_splits)
    deep_gemm.testing.assert_bitwise_equal(d, d2, f'{what}: d, second call')
    deep_gemm.testing.assert_bitwise_equal(s, s2, f'{what}: sqr_sum, second call')
    if num_splits is not None:
        ranges = split_columns(m, n, k, num_splits)
        assert ranges[0][0] == 0 and ranges[-1][1] == k, f'{what}: plan ranges {ranges[:3]}...{ranges[-3:]}'
        check_each_split(a, b, d, s, num_splits, what)
        d, s = d.sum(0), s.sum(0)
    ref_d, ref_s = torch_tf32_reference(a, b)
    diff_d, diff_s = calc_diff(d, ref_d), calc_diff(s, ref_s)
    assert diff_d < 1e-8, f'{what}: d calc_diff {diff_d:.3e} vs torch TF32'
    assert diff_s < 1e-8, f'{what}: sqr_sum calc_diff {diff_s:.3e} vs torch'


@pytest.mark.gpu
@pytest.mark.parametrize('rounding', ['truncate', 'rna'])
@pytest.mark.parametrize('m,n,num_splits', [(7, 24, None), (4096, 24, None), (300, 32, 8), (16384, 17, None)])
def test_against_exact_tf32_emulation(rounding, m, n, num_splits):
    """Each rounding variant equals a float64 product of its own TF32-rounded `b` up to FP32 accumulation error;
    the other rounding (or none) is ~1e-7 away, so this also proves which rounding each variant applies."""
    k = 16384
    a, b = inputs(m, n, k)
    d, s = run(a, b, num_splits, rounding)
    if num_splits is not None:
        d, s = d.sum(0), s.sum(0)
    ref_d, ref_s = exact_reference(a, b, rounding)
    other_d, _ = exact_reference(a, b, 'rna' if rounding == 'truncate' else 'truncate')
    diff, diff_other = calc_diff(d, ref_d), calc_diff(d, other_d)
    assert diff < EXACT_TOL, f'{rounding}: calc_diff {diff:.3e} vs its float64 emulation'
    assert diff_other > 10 * diff, f'{rounding}: indistinguishable from the other rounding ({diff_other:.3e})'
    assert calc_diff(s, ref_s) < 1e-10
    # every row: the squares are exact, summed in FP32 by chains of K / 8 FMAs (worst case (K / 8 + 8) ulp)
    bound = (k / 8 + 8) * 2.0 ** -24
    assert bool(((s.double() - ref_s).abs() <= bound * ref_s).all())


@pytest.mark.gpu
def test_default_rounding_matches_torch():
    """Which TF32 rounding torch's matmul applies to `b` here; the default must be the one that matches.
    If this fails while the other rounding passes, flip `kHcDefaultRoundRNA` in
    csrc/jit_kernels/heuristics/sm120_hc_prenorm_gemm.hpp."""
    m, n, k = 4096, 24, 16384
    a, b = inputs(m, n, k)
    ref_d, _ = torch_tf32_reference(a, b)
    diffs = {r: calc_diff(run(a, b, None, r)[0], ref_d) for r in ('truncate', 'rna')}
    print(f'calc_diff vs torch TF32 on {torch.cuda.get_device_name()}: {diffs}')
    default = default_rounding()
    assert diffs[default] < 1e-8, (f'default rounding {default!r} gives calc_diff {diffs[default]:.3e} vs torch TF32; '
                                   f'all: {diffs}')


@pytest.mark.gpu
def test_special_values():
    """Zeros, large and tiny magnitudes, exact small integers: exact results where FP32 makes them exact."""
    m, n, k = 40, 24, 1024
    a = torch.zeros(m, k, device='cuda', dtype=torch.bfloat16)
    b = torch.zeros(n, k, device='cuda')
    d, s = run(a, b)
    assert bool((d == 0).all()) and bool((s == 0).all())
    # small integers: every product and partial sum is exact in FP32
    a = torch.randint(-3, 4, (m, k), device='cuda').to(torch.bfloat16)
    b = torch.randint(-3, 4, (n, k), device='cuda').float()
    for num_splits in (None, 4):
        d, s = run(a, b, num_splits)
        if num_splits is not None:
            d, s = d.sum(0), s.sum(0)
        assert torch.equal(d, (a.double() @ b.double().T).float())
        assert torch.equal(s, a.double().square().sum(-1).float())


@pytest.mark.gpu
def test_strided_inputs():
    """`a` and `b` with padded rows (last dim contiguous, 16-byte-aligned rows) are read correctly."""
    m, n, k = 300, 24, 4096
    a_big = torch.randn(m, k + 64, device='cuda').to(torch.bfloat16)
    b_big = torch.randn(n, k + 32, device='cuda')
    a, b = a_big[:, :k], b_big[:, :k]
    d, s = run(a, b)
    ref_d, ref_s = exact_reference(a.contiguous(), b.contiguous(), default_rounding())
    assert calc_diff(d, ref_d) < EXACT_TOL and calc_diff(s, ref_s) < 1e-10


@pytest.mark.gpu
def test_m_zero():
    a = torch.empty(0, 1024, device='cuda', dtype=torch.bfloat16)
    b = torch.randn(24, 1024, device='cuda')
    d = torch.empty(0, 24, device='cuda')
    s = torch.empty(0, device='cuda')
    deep_gemm.tf32_hc_prenorm_gemm(a, b, d, s)
    deep_gemm.tf32_hc_prenorm_gemm(a, b, d.view(1, 0, 24), s.view(1, 0), 1)
    torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------------------------------
# GPU: the plan's split counts and sum trees, and the persistent, self-resetting split counters
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize('m,n,k,num_splits', [(1, 24, 16384, None), (64, 24, 16384, None), (128, 17, 16384, None),
                                              (300, 32, 16384, None), (1024, 24, 16384, None),
                                              (2048, 24, 16384, None), (4096, 24, 16384, None), (64, 24, 16384, 16),
                                              (7, 8, 4096, 4), (7, 24, 28672, 7), (300, 24, 7680, 3)])
def test_split_plans(m, n, k, num_splits):
    """The shapes whose plans differ (split count, one- or two-level sum tree, rotated K order with several M tiles)
    are correct and deterministic."""
    a, b = inputs(m, n, k)
    d, s = run(a, b, num_splits)
    d2, s2 = run(a, b, num_splits)
    deep_gemm.testing.assert_bitwise_equal(d, d2, 'd, second call')
    deep_gemm.testing.assert_bitwise_equal(s, s2, 'sqr_sum, second call')
    if num_splits is not None:
        d, s = d.sum(0), s.sum(0)
    ref_d, ref_s = exact_reference(a, b, default_rounding())
    assert calc_diff(d, ref_d) < EXACT_TOL, f'd diff {calc_diff(d, ref_d):.3e}'
    assert calc_diff(s, ref_s) < 1e-10, f'sqr_sum diff {calc_diff(s, ref_s):.3e}'


@pytest.mark.gpu
def test_counters_reset_across_shapes_and_streams():
    """The split counters persist per stream and must be zero after every call: interleave shapes whose plans use
    different counter slots and tree shapes, on two streams, and check every result."""
    shapes = [(64, 24, 16384, None), (1, 24, 16384, None), (128, 32, 16384, None), (300, 17, 4096, 4),
              (64, 24, 16384, None), (1, 24, 16384, None)]
    refs = {}
    for m, n, k, ns in shapes:
        a, b = inputs(m, n, k)
        rd, rs = exact_reference(a, b, default_rounding())
        refs[(m, n, k, ns)] = (a, b, rd, rs)
    side = torch.cuda.Stream()
    for rep in range(3):
        for i, key in enumerate(shapes):
            a, b, rd, rs = refs[key]
            stream = side if (i + rep) % 2 else torch.cuda.current_stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                d, s = run(a, b, key[3])
            torch.cuda.current_stream().wait_stream(stream)
            if key[3] is not None:
                d, s = d.sum(0), s.sum(0)
            assert calc_diff(d, rd) < EXACT_TOL, f'{key} rep {rep}: d diff {calc_diff(d, rd):.3e}'
            assert calc_diff(s, rs) < 1e-10, f'{key} rep {rep}: sqr_sum diff {calc_diff(s, rs):.3e}'


# ---------------------------------------------------------------------------------------------------------------------
# GPU: determinism and CUDA graphs
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize('m,num_splits', [(7, None), (4096, None), (64, 16), (16384, None)])
def test_bitwise_deterministic(m, num_splits):
    a, b = inputs(m, 24, 16384)
    d0, s0 = run(a, b, num_splits)
    d0, s0 = d0.clone(), s0.clone()
    d, s = torch.empty_like(d0), torch.empty_like(s0)
    for i in range(20):
        d.fill_(float('nan'))
        s.fill_(float('nan'))
        deep_gemm.tf32_hc_prenorm_gemm(a, b, d, s, num_splits)
        deep_gemm.testing.assert_bitwise_equal(d, d0, f'd, call {i}')
        deep_gemm.testing.assert_bitwise_equal(s, s0, f'sqr_sum, call {i}')


@pytest.mark.gpu
@pytest.mark.parametrize('m,num_splits', [(7, None), (64, 16), (4096, None)])
def test_cuda_graph(m, num_splits):
    n, k = 24, 16384
    a, b = inputs(m, n, k)
    a, b = a.clone(), b.clone()
    shape_d = (m, n) if num_splits is None else (num_splits, m, n)
    shape_s = (m,) if num_splits is None else (num_splits, m)
    d = torch.full(shape_d, float('nan'), device='cuda')
    s = torch.full(shape_s, float('nan'), device='cuda')
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        deep_gemm.tf32_hc_prenorm_gemm(a, b, d, s, num_splits)  # compile and load outside the capture
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        deep_gemm.tf32_hc_prenorm_gemm(a, b, d, s, num_splits)
    for seed in (1, 2):
        new_a, new_b = inputs(m, n, k, seed=seed)
        a.copy_(new_a)
        b.copy_(new_b)
        d.fill_(float('nan'))
        s.fill_(float('nan'))
        graph.replay()
        torch.cuda.synchronize()
        rd, rs = (d.sum(0), s.sum(0)) if num_splits is not None else (d, s)
        ref_d, ref_s = exact_reference(a, b, default_rounding())
        assert calc_diff(rd, ref_d) < EXACT_TOL, f'replay {seed}: d diff {calc_diff(rd, ref_d):.3e}'
        assert calc_diff(rs, ref_s) < 1e-10, f'replay {seed}: sqr_sum diff {calc_diff(rs, ref_s):.3e}'
        # a replay equals an eager call bitwise
        d2, s2 = torch.empty_like(d), torch.empty_like(s)
        deep_gemm.tf32_hc_prenorm_gemm(a, b, d2, s2, num_splits)
        deep_gemm.testing.assert_bitwise_equal(d, d2, 'graph replay vs eager d')
        deep_gemm.testing.assert_bitwise_equal(s, s2, 'graph replay vs eager sqr_sum')


# ---------------------------------------------------------------------------------------------------------------------
# Bad inputs: CPU (validation runs before any device work) and GPU (nothing written)
# ---------------------------------------------------------------------------------------------------------------------
def _good(device, m=8, n=24, k=1024, num_splits=None):
    a = torch.zeros(m, k, dtype=torch.bfloat16, device=device)
    b = torch.zeros(n, k, dtype=torch.float32, device=device)
    shape_d = (m, n) if num_splits is None else (num_splits, m, n)
    shape_s = (m,) if num_splits is None else (num_splits, m)
    return dict(a=a, b=b, d=torch.full(shape_d, float('nan'), device=device),
                sqr_sum=torch.full(shape_s, float('nan'), device=device), num_splits=num_splits)


def _bad_cases(device):
    """(description, kwargs, exception type, message regex)."""
    cases = []

    def add(desc, exc, pattern, **changes):
        kw = _good(device, **{k: changes.pop(k) for k in ('m', 'n', 'k', 'num_splits') if k in changes})
        kw.update(changes)
        cases.append((desc, kw, exc, pattern))

    add('a fp32', TypeError, r'`a` must have dtype torch\.bfloat16', a=torch.zeros(8, 1024, device=device))
    add('b bf16', TypeError, r'`b` must have dtype torch\.float32',
        b=torch.zeros(24, 1024, dtype=torch.bfloat16, device=device))
    add('d bf16', TypeError, r'`d` must have dtype torch\.float32',
        d=torch.zeros(8, 24, dtype=torch.bfloat16, device=device))
    add('sqr_sum fp64', TypeError, r'`sqr_sum` must have dtype torch\.float32',
        sqr_sum=torch.zeros(8, dtype=torch.float64, device=device))
    add('a 3-D', ValueError, r'`a` must be 2-D \[M, K\]',
        a=torch.zeros(1, 8, 1024, dtype=torch.bfloat16, device=device))
    add('K mismatch', ValueError, r'`b`\.shape\[1\] must be 1024', b=torch.zeros(24, 512, device=device))
    add('N = 33', ValueError, r'`b`\.shape\[0\] \(N\) must be in \[1, 32\]', n=33)
    add('K = 96', ValueError,
        r'K \(`a`\.shape\[1\]\) must be a positive multiple of 64 \(any `num_splits` then works\)', k=96)
    add('K = 480 with splits', ValueError, r'K \(`a`\.shape\[1\]\) must be a positive multiple of 64', k=480,
        num_splits=16)
    add('d wrong N', ValueError, r'`d`\.shape\[1\] must be 24', d=torch.zeros(8, 23, device=device))
    add('d wrong M', ValueError, r'`d`\.shape\[0\] must be 8', d=torch.zeros(9, 24, device=device))
    add('sqr_sum wrong M', ValueError, r'`sqr_sum`\.shape\[0\] must be 8', sqr_sum=torch.zeros(7, device=device))
    add('d 3-D without num_splits', ValueError, r'`d` must be 2-D \[M, N\] \(num_splits is None\)',
        d=torch.zeros(1, 8, 24, device=device))
    add('d 2-D with num_splits', ValueError, r'`d` must be 3-D \[num_splits, M, N\]', num_splits=2,
        d=torch.zeros(8, 24, device=device))
    add('d wrong splits', ValueError, r'`d`\.shape\[0\] must be 2 \(num_splits\)', num_splits=2,
        d=torch.zeros(3, 8, 24, device=device))
    add('sqr_sum 1-D with num_splits', ValueError, r'`sqr_sum` must be 2-D \[num_splits, M\]', num_splits=2,
        sqr_sum=torch.zeros(8, device=device))
    add('num_splits = 0', ValueError, r'`num_splits` must be in \[1, 65535\]', num_splits=0,
        d=torch.zeros(1, 8, 24, device=device), sqr_sum=torch.zeros(1, 8, device=device))
    for bad in (65536, -1):
        add(f'num_splits = {bad}', ValueError, rf'`num_splits` must be in \[1, 65535\] or None; got {bad}',
            num_splits=1)
        cases[-1][1]['num_splits'] = bad
    add('a transposed', ValueError, r'`a` must have a contiguous last dimension',
        a=torch.zeros(1024, 8, dtype=torch.bfloat16, device=device).T)
    add('a misaligned rows', ValueError, r'`a` rows must be 16-byte aligned',
        a=torch.zeros(8, 1028, dtype=torch.bfloat16, device=device)[:, :1024])
    add('a misaligned start', ValueError, r'`a` must start at a 16-byte-aligned address',
        a=torch.zeros(8, 1032, dtype=torch.bfloat16, device=device)[:, 1:1025])
    add('b misaligned rows', ValueError, r'`b` rows must be 16-byte aligned',
        b=torch.zeros(24, 1026, device=device)[:, :1024])
    add('d non-contiguous', ValueError, r'`d` must be contiguous', d=torch.zeros(24, 8, device=device).T)
    add('sqr_sum non-contiguous', ValueError, r'`sqr_sum` must be contiguous',
        sqr_sum=torch.zeros(16, device=device)[::2])
    return cases


_CPU_CASES = _bad_cases('cpu')


@needs_ext
@pytest.mark.parametrize('desc,kwargs,exc,pattern', _CPU_CASES, ids=[c[0] for c in _CPU_CASES])
def test_bad_inputs_cpu(desc, kwargs, exc, pattern):
    with pytest.raises(exc, match=FN + r': .*' + pattern):
        deep_gemm.tf32_hc_prenorm_gemm(**kwargs)


@needs_ext
def test_cpu_tensors_rejected():
    with pytest.raises(ValueError, match=FN + r': `a` must be a CUDA tensor; got a cpu tensor'):
        deep_gemm.tf32_hc_prenorm_gemm(**_good('cpu'))


@needs_ext
def test_bad_rounding_name():
    with pytest.raises(ValueError, match=r"`b_rounding` must be 'truncate' or 'rna'"):
        deep_gemm._C._tf32_hc_prenorm_gemm_rounding(*_good('cpu').values(), 'nearest')


# ---------------------------------------------------------------------------------------------------------------------
# CPU: the host plan (split count and sum tree) for each compile target
# ---------------------------------------------------------------------------------------------------------------------
PLAN_MS = (1, 2, 7, 64, 100, 128, 300, 512, 1000, 1024, 2048, 3000, 4096, 8192, 16384)


@needs_ext
@pytest.mark.parametrize('target,num_sms', [('sm_120a', None), ('sm_120a', 170), ('sm_121a', None), ('sm_90a', None)])
def test_split_plan_invariants(target, num_sms):
    """A plan that splits K is at most one wave of CTAs (one CTA per SM: a second wave would run after the first),
    its sum tree is well formed, each split keeps at least two K blocks, and its shared memory fits sm_120."""
    plan = deep_gemm._C._tf32_hc_prenorm_gemm_plan
    for m in PLAN_MS:
        for n in (8, 24, 32):
            for k, num_splits in [(16384, None), (16384, 2), (16384, 16), (7680, 16), (7168, 7), (28672, 16),
                                  (7168, 200), (1024, 40)]:
                p = plan(target, m, n, k, num_splits, num_sms)
                what = f'{target} sms={p["num_sms"]} M={m} N={n} K={k} num_splits={num_splits}: {p}'
                ctas = p['num_m_tiles'] * (num_splits or 1)
                s, g = p['num_int_splits'], p['group_size']
                assert p['num_m_tiles'] == (m + 127) // 128, what
                assert 1 <= g <= s, what
                assert s == 1 or ctas * s <= p['num_sms'], what
                # every internal split of the smallest caller's split keeps two blocks
                assert s == 1 or 2 * s <= k // 64 // (num_splits or 1), what
                assert p['smem_bytes'] <= 101376, what


@needs_ext
@pytest.mark.parametrize('k,num_splits', [(7680, 16), (7168, 16), (28672, 16), (7680, 7), (64, 1), (64, 5),
                                          (7168, 200), (1024, 40), (640, 11), (16384, None), (16384, 16),
                                          (64 * 65535, 65535), (64, 65535)])
def test_split_partition(k, num_splits):
    """Caller's split i owns the 64-wide K blocks [floor(i * nb / S), floor((i + 1) * nb / S)): contiguous, covering
    [0, nb) once, counts differing by at most one (some zero when S > nb)."""
    blocks = deep_gemm._C._tf32_hc_prenorm_gemm_plan('sm_120a', 1, 24, k, num_splits)['user_split_blocks']
    nb, splits = k // 64, num_splits or 1
    assert len(blocks) == splits
    assert blocks == [(i * nb // splits, (i + 1) * nb // splits) for i in range(splits)]
    assert blocks[0][0] == 0 and blocks[-1][1] == nb
    assert all(blocks[i][1] == blocks[i + 1][0] for i in range(splits - 1))
    sizes = {last - first for first, last in blocks}
    assert sizes <= {nb // splits, -(-nb // splits)}, sizes
    assert sum(last - first for first, last in blocks) == nb


@needs_ext
def test_split_plan_fills_h100_where_the_stream_dominates():
    """Measured on the H100 (docs/PERF.md, hc section, item 3): from M = 512 up, a plan that left half the SMs idle
    (the old constants: 64 CTAs at M = 1024 and 2048) was 1.4-1.6x slower than one wave of ~128 CTAs. Guard it."""
    for m in (512, 1000, 1024, 2048, 3000, 4096, 8192, 16384):
        p = deep_gemm._C._tf32_hc_prenorm_gemm_plan('sm_90a', m, 24, 16384)
        assert p['num_m_tiles'] * p['num_int_splits'] >= 0.75 * p['num_sms'], (m, p)


@needs_ext
def test_split_plan_bad_arguments():
    plan = deep_gemm._C._tf32_hc_prenorm_gemm_plan
    with pytest.raises(ValueError, match=r'_tf32_hc_prenorm_gemm_plan: `m` must be in \[1, 2\^24\]; got 0'):
        plan('sm_120a', 0, 24, 16384)
    with pytest.raises(ValueError, match=r'`n` must be in \[1, 32\]; got 33'):
        plan('sm_120a', 1, 33, 16384)
    with pytest.raises(ValueError, match=r'`k` must be a positive multiple of 64, at most 2\^24; got 480'):
        plan('sm_120a', 4, 24, 480, 16)
    with pytest.raises(ValueError, match=r'`num_splits` must be in \[1, 65535\]; got 65536'):
        plan('sm_120a', 4, 24, 16384, 65536)
    with pytest.raises(ValueError, match=r'`num_splits` must be in \[1, 65535\]; got 0'):
        plan('sm_120a', 4, 24, 16384, 0)
    with pytest.raises(ValueError, match=r'`num_sms` must be in \[1, 1024\]; got 0'):
        plan('sm_120a', 4, 24, 16384, None, 0)
    with pytest.raises(ValueError, match=r"unsupported compile target 'sm_70'"):
        plan('sm_70', 4, 24, 16384)


@pytest.mark.gpu
def test_bad_inputs_gpu_write_nothing():
    for desc, kwargs, exc, pattern in _bad_cases('cuda'):
        with pytest.raises(exc, match=FN + r': .*' + pattern):
            deep_gemm.tf32_hc_prenorm_gemm(**kwargs)
        torch.cuda.synchronize()
        for name in ('d', 'sqr_sum'):
            t = kwargs[name]
            if t.dtype.is_floating_point and t.dtype != torch.float64 and t.numel():
                # untouched: NaN poison (from _good) or the zeros the case passed in
                assert bool(torch.isnan(t).all()) or bool((t == 0).all()), f'{desc}: `{name}` was written'
    # mixed devices: `b` on the CPU
    kw = _good('cuda')
    kw['b'] = kw['b'].cpu()
    with pytest.raises(ValueError, match=FN + r': `b` must be on cuda:0'):
        deep_gemm.tf32_hc_prenorm_gemm(**kw)
    assert bool(torch.isnan(kw['d']).all())


# ---------------------------------------------------------------------------------------------------------------------
# Compile-only: every configuration for sm_120a / sm_121a
# ---------------------------------------------------------------------------------------------------------------------
def _hc_configs(target):
    return [(i, s) for i, s in enumerate(deep_gemm._C.list_kernel_configs(target)) if s['family'] == 'hc_prenorm_gemm']


@needs_ext
def test_config_enumeration():
    configs = _hc_configs('sm_120a')
    assert len(configs) == 8
    descs = sorted(s['description'] for _, s in configs)
    assert descs == sorted(f'n_tiles={nt} b_rounding={r}' for nt in (1, 2, 3, 4) for r in ('truncate', 'rna'))
    for _, s in configs:
        assert 'hc_prenorm_gemm' in s['symbol']
        assert s['dynamic_smem'] <= 101376
        assert s['num_threads'] == 256


@pytest.mark.compile
@needs_ext
@pytest.mark.parametrize('target', ['sm_120a', 'sm_121a'])
def test_compile_configs(target):
    import shutil
    import subprocess
    for i, spec in _hc_configs(target):
        r = deep_gemm._C.compile_kernel_config(target, i)
        assert r['resources_found'], r['log']
        assert r['total_smem'] <= 101376, (spec['description'], r['total_smem'])
        assert r['spill_stores'] == 0 and r['spill_loads'] == 0 and r['stack_frame'] == 0, (spec['description'], r)
        cuobjdump = shutil.which('cuobjdump')
        if cuobjdump:
            sass = subprocess.run([cuobjdump, '-sass', r['cubin_path']], capture_output=True, text=True).stdout
            for pattern in spec['expected_sass']:
                assert pattern in sass, (spec['description'], pattern)
