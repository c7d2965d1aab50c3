"""FP8 / FP4 GEMMs (fp8_fp4_gemm_{nt,nn,tn,tt}, the fp8_gemm_* aliases, fp8_gemm_nt_skip_head_mid, fp8_einsum) on the
GPU, in SM120 mode: every result against a float64 reference from the dequantized operands (gemm_common.check_close),
over shapes from M = 1 to 4096, scale formats (float32 per row / per 128 rows, packed UE8M0 in either layout),
K granules 128 and 32, output dtypes, C accumulation, MN-major operands, K splits, determinism, CUDA graphs, the
sm_120 MMA-form cross-check, and bad arguments."""
import warnings

import pytest
import torch

import deep_gemm
from deep_gemm.testing import assert_bitwise_equal, calc_diff
from deep_gemm.utils import transpose_packed_fp4
from gemm_common import ceil_div, check_close, pack_ue8m0, quant_fp4, quant_fp8, rows_of_block

gpu = pytest.mark.gpu


def make_fp8(m, n, k, b_block=True, packed=False, seed=0, gran_k=128):
    a, sfa, a_ref = quant_fp8(m, k, 1, gran_k, seed)
    b, sfb, b_ref = quant_fp8(n, k, 128 if b_block else 1, gran_k, seed + 10)
    if packed:
        sfa = pack_ue8m0(sfa)
        sfb = pack_ue8m0(rows_of_block(sfb, n) if b_block else sfb)
    return (a, sfa), (b, sfb), a_ref @ b_ref.T


# ------------------------------------------------------------------------------------------------------ shapes
SHAPES = [(1, 256, 512), (7, 192, 640), (16, 2112, 7168), (33, 576, 1536), (64, 4096, 512), (100, 640, 1024),
          (128, 7168, 2048), (257, 384, 656), (1024, 1536, 4096), (4096, 2048, 1536)]


@gpu
@pytest.mark.parametrize('m,n,k', SHAPES)
@pytest.mark.parametrize('form', ['f32_block', 'f32_rows', 'ue8m0'])
def test_fp8_gemm_nt(m, n, k, form):
    a, b, ref = make_fp8(m, n, k, b_block=form != 'f32_rows', packed=form == 'ue8m0', seed=m + n)
    d = torch.full((m, n), float('nan'), device='cuda', dtype=torch.bfloat16)
    deep_gemm.fp8_gemm_nt(a, b, d)
    check_close(d, ref, f'fp8_gemm_nt m={m} n={n} k={k} {form}')


@gpu
@pytest.mark.parametrize('m,n,k', [(5, 512, 1024), (200, 1024, 2048), (4096, 1024, 512)])
def test_fp8_gemm_fp32_out_with_c(m, n, k):
    a, b, ref = make_fp8(m, n, k, b_block=False, seed=3)
    c = torch.randn(m, n, device='cuda') * 32
    d = torch.full((m, n), float('nan'), device='cuda')
    deep_gemm.fp8_gemm_nt(a, b, d, c=c, recipe=(1, 1, 128))
    check_close(d, ref + c.double(), f'with c m={m}')
    # c aliasing d (upstream's wgrad accumulation)
    d2 = c.clone()
    deep_gemm.fp8_gemm_nt(a, b, d2, c=d2, recipe=(1, 1, 128))
    assert_bitwise_equal(d2, d, 'c aliasing d')


@gpu
@pytest.mark.parametrize('major_a,major_b', [('k', 'mn'), ('mn', 'k'), ('mn', 'mn')])
def test_fp8_gemm_mn_major(major_a, major_b):
    m, n, k = 300, 640, 1024
    (a, sfa), (b, sfb), ref = make_fp8(m, n, k, seed=5)
    if major_a == 'mn':
        a = a.T.contiguous().T
    if major_b == 'mn':
        b = b.T.contiguous().T
    d = torch.empty(m, n, device='cuda', dtype=torch.bfloat16)
    deep_gemm.fp8_fp4_gemm_nt((a, sfa), (b, sfb), d)
    check_close(d, ref, f'MN-major {major_a}/{major_b}')


@gpu
@pytest.mark.parametrize('fn', ['fp8_fp4_gemm_nn', 'fp8_fp4_gemm_tn', 'fp8_fp4_gemm_tt', 'fp8_gemm_nn', 'fp8_gemm_tt'])
def test_fp8_gemm_layout_aliases(fn):
    m, n, k = 96, 384, 768
    (a, sfa), (b, sfb), ref = make_fp8(m, n, k, seed=7)
    ta, tb = fn.endswith(('tn', 'tt')), fn.endswith(('nn', 'tn'))
    a_arg = (a.T.contiguous(), sfa.T) if ta else (a, sfa)
    b_arg = (b.T.contiguous(), sfb.T) if tb else (b, sfb)
    d = torch.empty(m, n, device='cuda', dtype=torch.bfloat16)
    getattr(deep_gemm, fn)(a_arg, b_arg, d)
    check_close(d, ref, fn)


@gpu
@pytest.mark.parametrize('m,n,k', [(1, 4096, 7168), (8, 1536, 4096), (32, 7168, 16384), (64, 8192, 1024)])
def test_fp8_gemm_split_k_and_determinism(m, n, k):
    """Small M: the plan splits K (deterministic split-K sum); 20 calls give identical bytes."""
    a, b, ref = make_fp8(m, n, k, seed=11, packed=True)
    d = torch.empty(m, n, device='cuda', dtype=torch.bfloat16)
    deep_gemm.fp8_gemm_nt(a, b, d)
    check_close(d, ref, f'split-K m={m} n={n} k={k}')
    first = d.clone()
    for _ in range(20):
        deep_gemm.fp8_gemm_nt(a, b, d)
        assert_bitwise_equal(d, first, 'determinism')


@gpu
def test_fp8_gemm_cuda_graph():
    m, n, k = 16, 2048, 4096
    a, b, ref = make_fp8(m, n, k, seed=13)
    d = torch.zeros(m, n, device='cuda', dtype=torch.bfloat16)
    deep_gemm.fp8_gemm_nt(a, b, d)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=s):
            deep_gemm.fp8_gemm_nt(a, b, d)
    d.zero_()
    # new inputs copied in place, then replayed
    a2, b2, ref2 = make_fp8(m, n, k, seed=14)
    a[0].copy_(a2[0]), a[1].copy_(a2[1]), b[0].copy_(b2[0]), b[1].copy_(b2[1])
    graph.replay()
    torch.cuda.synchronize()
    check_close(d, ref2, 'graph replay')


@gpu
def test_fp8_gemm_k_granule_32_and_fp4():
    m, n, k = 130, 512, 1024
    # FP8 x FP8 with MXFP8 (1, 32) scales on both sides
    a, sfa, a_ref = quant_fp8(m, k, 1, 32, seed=21)
    b, sfb, b_ref = quant_fp8(n, k, 1, 32, seed=22)
    d = torch.empty(m, n, device='cuda', dtype=torch.bfloat16)
    deep_gemm.fp8_fp4_gemm_nt((a, sfa), (b, sfb), d, recipe_a=(1, 32), recipe_b=(1, 32))
    check_close(d, a_ref @ b_ref.T, 'fp8 x fp8 gran 32')
    # FP8 (1, 128) x FP4 (1, 32), float and packed scales
    a, sfa, a_ref = quant_fp8(m, k, 1, 128, seed=23)
    bq, sfbq, b_ref = quant_fp4(n, k, 32, seed=24)
    for packed in (False, True):
        sb = pack_ue8m0(sfbq) if packed else sfbq
        sa = pack_ue8m0(sfa) if packed else sfa
        deep_gemm.fp8_fp4_gemm_nt((a, sa), (bq, sb), d, recipe_a=(1, 128), recipe_b=(1, 32))
        check_close(d, a_ref @ b_ref.T, f'fp8 x fp4 packed={packed}')
    # FP4 x FP4
    aq, sfaq, a_ref = quant_fp4(m, k, 32, seed=25)
    deep_gemm.fp8_fp4_gemm_nt((aq, sfaq), (bq, sfbq), d, recipe_a=(1, 32), recipe_b=(1, 32))
    check_close(d, a_ref @ b_ref.T, 'fp4 x fp4')


@gpu
@pytest.mark.parametrize('m,n,k', [(1, 512, 1024), (130, 512, 1024), (600, 384, 2048)])
@pytest.mark.parametrize('gran_b', [128, 32])
@pytest.mark.parametrize('packed', [False, True])
def test_fp4_x_fp8(m, n, k, gran_b, packed):
    """FP4 activations x FP8 weights (NVIDIA's SM120 tests: A (1, 32), B per row (1, 128)), float and packed scales."""
    aq, sfa, a_ref = quant_fp4(m, k, 32, seed=m + 51)
    b, sfb, b_ref = quant_fp8(n, k, 1, gran_b, seed=m + 52)
    sa, sb = (pack_ue8m0(sfa), pack_ue8m0(sfb)) if packed else (sfa, sfb)
    d = torch.full((m, n), float('nan'), device='cuda', dtype=torch.bfloat16)
    deep_gemm.fp8_fp4_gemm_nt((aq, sa), (b, sb), d, recipe_a=(1, 32), recipe_b=(1, gran_b))
    check_close(d, a_ref @ b_ref.T, f'fp4 x fp8 m={m} gran_b={gran_b} packed={packed}')


@gpu
@pytest.mark.parametrize('fn', ['fp8_fp4_gemm_nt', 'fp8_fp4_gemm_tn', 'fp8_fp4_gemm_nn', 'fp8_fp4_gemm_tt'])
def test_fp4_mn_major(fn):
    """MN-major packed FP4 (upstream's `transpose_packed_fp4(x).T`: [MN / 2, K], MN pairs per byte) for A and B, in
    the nt form (MN-major views) and the layout aliases (their [K, MN / 2] tensors); FP4 x FP4 and FP8 x FP4."""
    m, n, k = 96, 384, 512
    aq, sfa, a_ref = quant_fp4(m, k, 32, seed=61)
    bq, sfb, b_ref = quant_fp4(n, k, 32, seed=62)
    af, sfaf, af_ref = quant_fp8(m, k, 1, 128, seed=63)
    ta, tb = fn.endswith(('tn', 'tt')), fn.endswith(('nn', 'tn'))
    a_mn, b_mn = transpose_packed_fp4(aq), transpose_packed_fp4(bq)     # [K, M / 2], [K, N / 2]
    a_arg = (a_mn, sfa.T) if ta else ((a_mn.T, sfa) if fn == 'fp8_fp4_gemm_nt' else (aq, sfa))
    b_arg = (b_mn, sfb.T) if tb else ((b_mn.T, sfb) if fn == 'fp8_fp4_gemm_nt' else (bq, sfb))
    d = torch.full((m, n), float('nan'), device='cuda', dtype=torch.bfloat16)
    getattr(deep_gemm, fn)(a_arg, b_arg, d, recipe_a=(1, 32), recipe_b=(1, 32))
    check_close(d, a_ref @ b_ref.T, f'{fn} fp4 x fp4 MN-major')
    # FP8 (K-major or its transpose) x MN-major FP4
    fa_arg = (af.T.contiguous(), sfaf.T) if ta else (af, sfaf)
    getattr(deep_gemm, fn)(fa_arg, b_arg, d, recipe_a=(1, 128), recipe_b=(1, 32))
    check_close(d, af_ref @ b_ref.T, f'{fn} fp8 x fp4 MN-major')


@gpu
def test_fp8_gemm_skip_head_mid():
    m, n, k = 128, 8192, 512
    left, mid, right = 128, 64, 128
    heads = n // (left + right)
    a, b, ref = make_fp8(m, n, k, seed=31)
    d = torch.full((m, heads * (left + mid + right)), 7.0, device='cuda', dtype=torch.bfloat16)
    deep_gemm.fp8_gemm_nt_skip_head_mid(a, b, d, (left, mid, right))
    view = d.view(m, heads, left + mid + right)
    r = ref.view(m, heads, left + right)
    check_close(view[:, :, :left], r[:, :, :left], 'skip_head_mid left')
    check_close(view[:, :, left + mid:], r[:, :, left:], 'skip_head_mid right')
    assert (view[:, :, left:left + mid] == 7.0).all(), 'the mid columns must stay untouched'


@gpu
def test_fp8_gemm_unusual_scales_never_trap():
    """Callers warm up with torch.ones and uninitialised scales: any float value is accepted (no trap)."""
    m, n, k = 64, 256, 512
    a = torch.randn(m, k, device='cuda').to(torch.float8_e4m3fn)
    b = torch.randn(n, k, device='cuda').to(torch.float8_e4m3fn)
    d = torch.empty(m, n, device='cuda', dtype=torch.bfloat16)
    for sfa, sfb in ((torch.ones(m, k // 128, device='cuda'), torch.ones(n // 128, k // 128, device='cuda')),
                     (torch.full((m, k // 128), 0.01004, device='cuda'), torch.full((n // 128, k // 128), 3.0,
                                                                                      device='cuda')),
                     (torch.empty(m, k // 128, device='cuda'), torch.empty(n // 128, k // 128, device='cuda'))):
        deep_gemm.fp8_gemm_nt((a, sfa), (b, sfb), d)
    torch.cuda.synchronize()
    ref = (a.double() * 0.01004) @ (b.double() * 3.0).T
    deep_gemm.fp8_gemm_nt((a, torch.full((m, k // 128), 0.01004, device='cuda')),
                          (b, torch.full((n // 128, k // 128), 3.0, device='cuda')), d)
    check_close(d, ref, 'non-power-of-two float scales (Promote)')


@gpu
def test_fp8_einsum():
    torch.manual_seed(0)
    h, r, dd = 8, 1024, 256
    for bsz in (4, 130):
        x, sx, xr = zip(*[quant_fp8(bsz, r, 1, 128, seed=40 + i) for i in range(h)])
        y, sy, yr = zip(*[quant_fp8(dd, r, 128, 128, seed=60 + i) for i in range(h)])
        xq, xs = torch.stack(x, 1), torch.stack(sx, 1)              # [b, h, r], [b, h, r/128]
        yq, ys = torch.stack(y, 0), torch.stack(sy, 0)              # [h, d, r], [h, d/128, r/128]
        ref = torch.stack([xr[i] @ yr[i].T for i in range(h)], 1)  # [b, h, d]
        z = torch.empty(bsz, h, dd, device='cuda', dtype=torch.bfloat16)
        deep_gemm.fp8_einsum('bhr,hdr->bhd', (xq, xs), (yq, ys), z)
        check_close(z, ref, f'fp8_einsum bhr,hdr->bhd b={bsz}')
    # bhd,bhr->hdr with C accumulation (recipe (1, 1, 128): per-channel scales along b)
    bsz, h, dd, r = 256, 2, 128, 256
    x = (torch.randn(bsz, h, dd, device='cuda') * 2).to(torch.float8_e4m3fn)
    y = (torch.randn(bsz, h, r, device='cuda') * 2).to(torch.float8_e4m3fn)
    sx = torch.pow(2.0, torch.randint(-3, 4, (bsz // 128, h, dd), device='cuda').float())
    sy = torch.pow(2.0, torch.randint(-3, 4, (bsz // 128, h, r), device='cuda').float())
    xd = x.double() * sx.double().repeat_interleave(128, 0)
    yd = y.double() * sy.double().repeat_interleave(128, 0)
    z0 = torch.randn(h, dd, r, device='cuda') * 10
    z = z0.clone()
    deep_gemm.fp8_einsum('bhd,bhr->hdr', (x, sx), (y, sy), z, z, recipe=(1, 1, 128))
    check_close(z, z0.double() + torch.einsum('bhd,bhr->hdr', xd, yd), 'fp8_einsum bhd,bhr->hdr')


@gpu
def test_fp8_gemm_mma_form_cross_check(monkeypatch):
    """The one-time cross-check mechanism (forced on any GPU): a forced fault makes the call warn and fall back."""
    m, n, k = 64, 256, 512
    a, b, ref = make_fp8(m, n, k, seed=51, packed=True)
    d = torch.empty(m, n, device='cuda', dtype=torch.bfloat16)
    deep_gemm._C._mma_cross_check_reset()
    monkeypatch.setenv('DG_SM120_MMA_CHECK', 'force')
    deep_gemm.fp8_gemm_nt(a, b, d)
    log = deep_gemm._C._mma_cross_check_log()
    assert any('sm120_gemm' in key and passed for key, passed, _ in log), log
    deep_gemm._C._mma_cross_check_reset()
    monkeypatch.setenv('DG_SM120_MMA_CHECK', 'force-fail')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        deep_gemm.fp8_gemm_nt(a, b, d)
    assert any('disagrees with its portable twin' in str(w.message) for w in caught), [str(w.message) for w in caught]
    check_close(d, ref, 'after the fallback')
    deep_gemm._C._mma_cross_check_reset()


# ------------------------------------------------------------------------------------------------------ bad inputs
def _cpu_or_cuda():
    return 'cuda' if torch.cuda.is_available() else 'cpu'


@pytest.mark.parametrize('case', ['a_not_tuple', 'b_wrong_dtype', 'k_mismatch', 'sfa_shape', 'recipe_len', 'd_shape',
                                  'd_dtype', 'c_dtype', 'recipe_value', 'fp4_a_fp8_b'])
def test_fp8_gemm_bad_arguments(case):
    """Every bad argument raises a clear error naming it (before anything runs)."""
    if deep_gemm._C is None:
        pytest.skip('deep_gemm._C is not built')
    dev = _cpu_or_cuda()
    m, n, k = 64, 256, 512
    # zeros cast to FP8 (torch 2.4 cannot fill an FP8 tensor on the CPU directly: "fill_cpu" not implemented)
    a = (torch.zeros(m, k, device=dev).to(torch.float8_e4m3fn), torch.ones(m, k // 128, device=dev))
    b = (torch.zeros(n, k, device=dev).to(torch.float8_e4m3fn), torch.ones(n // 128, k // 128, device=dev))
    d = torch.empty(m, n, device=dev, dtype=torch.bfloat16)
    kwargs = {}
    expect = None
    if case == 'a_not_tuple':
        a, expect = a[0], (TypeError, r'fp8_gemm_nt: `a` must be a tuple')
    elif case == 'b_wrong_dtype':
        b, expect = (b[0].float(), b[1]), (TypeError, r'`b\[0\]` must be torch.float8_e4m3fn')
    elif case == 'k_mismatch':
        b, expect = (b[0][:, :256], torch.ones(2, 2, device=dev)), (ValueError, r'same K')
    elif case == 'sfa_shape':
        a, expect = (a[0], torch.ones(m, 3, device=dev)), (ValueError, r'`a\[1\]` must have shape \[64, 4\]')
    elif case == 'recipe_len':
        kwargs, expect = {'recipe': (1, 128)}, (ValueError, r'`recipe` must be a tuple of 3 ints')
    elif case == 'recipe_value':
        kwargs, expect = {'recipe': (1, 1, 64)}, (ValueError, r'entries must be 1, 32 or 128')
    elif case == 'd_shape':
        d, expect = torch.empty(m, n + 2, device=dev, dtype=torch.bfloat16), (ValueError, r'`d` must have shape')
    elif case == 'd_dtype':
        d, expect = torch.empty(m, n, device=dev, dtype=torch.float16), (TypeError, r'`d` must have dtype')
    elif case == 'c_dtype':
        kwargs, expect = {'c': torch.zeros(m, n, device=dev)}, (TypeError, r'`c` must have the dtype of `d`')
    elif case == 'fp4_a_fp8_b':
        a = (torch.zeros(m, k // 2, device=dev, dtype=torch.int8), torch.ones(m, k // 32, device=dev))
        kwargs, expect = {'recipe_a': (1, 32), 'recipe_b': (128, 128)}, (ValueError, r'unsupported operand / scale')
    if dev == 'cpu' and case not in ('a_not_tuple', 'recipe_len', 'recipe_value'):
        expect = (ValueError, r'must be a CUDA tensor')
    with pytest.raises(expect[0], match=expect[1]):
        deep_gemm.fp8_gemm_nt(a, b, d, **kwargs)
