"""BF16 GEMMs (bf16_gemm_{nt,nn,tn,tt}), einsum and the cuBLASLt wrappers on the GPU, in SM120 mode, against float64
references; plus their argument checks."""
import pytest
import torch

import deep_gemm
from deep_gemm.testing import assert_bitwise_equal, calc_diff
from gemm_common import check_close

gpu = pytest.mark.gpu


@gpu
@pytest.mark.parametrize('m,n,k', [(1, 256, 512), (33, 576, 7168), (128, 2112, 1536), (4096, 1024, 2048)])
@pytest.mark.parametrize('out', [torch.bfloat16, torch.float])
def test_bf16_gemm_nt(m, n, k, out):
    a = torch.randn(m, k, device='cuda', dtype=torch.bfloat16)
    b = torch.randn(n, k, device='cuda', dtype=torch.bfloat16)
    d = torch.full((m, n), float('nan'), device='cuda', dtype=out)
    deep_gemm.bf16_gemm_nt(a, b, d)
    ref = a.double() @ b.double().T
    check_close(d, ref, f'bf16_gemm_nt m={m} n={n} k={k}')
    c = torch.randn(m, n, device='cuda', dtype=out) * 32
    deep_gemm.bf16_gemm_nt(a, b, d, c=c)
    check_close(d, ref + c.double(), 'with c')


@gpu
@pytest.mark.parametrize('fn', ['bf16_gemm_nn', 'bf16_gemm_tn', 'bf16_gemm_tt'])
def test_bf16_gemm_layouts(fn):
    m, n, k = 200, 384, 640
    a = torch.randn(m, k, device='cuda', dtype=torch.bfloat16)
    b = torch.randn(n, k, device='cuda', dtype=torch.bfloat16)
    ta, tb = fn.endswith(('tn', 'tt')), fn.endswith(('nn', 'tn'))
    d = torch.empty(m, n, device='cuda', dtype=torch.float)
    getattr(deep_gemm, fn)(a.T.contiguous() if ta else a, b.T.contiguous() if tb else b, d)
    check_close(d, a.double() @ b.double().T, fn)


@gpu
def test_bf16_einsum():
    for s, m, n, k in ((129, 128, 384, 128), (64, 256, 256, 256)):
        a = torch.randn(s, m, k, device='cuda', dtype=torch.bfloat16)
        b = torch.randn(s, n, k, device='cuda', dtype=torch.bfloat16)
        d = torch.randn(m, n, device='cuda')
        ref = d.double() + torch.einsum('bmk,bnk->mn', a.double(), b.double())
        deep_gemm.einsum('bmk,bnk->mn', a, b, d, c=d)
        check_close(d, ref, f'bmk,bnk->mn s={s}')
    for h, r, dd, bsz in ((8, 512, 128, 32), (4, 256, 256, 130)):
        x = torch.randn(bsz, h, r, device='cuda', dtype=torch.bfloat16)
        fy = torch.randn(h, dd, r + 128, device='cuda', dtype=torch.bfloat16)
        y = fy[:, :, :r]
        z = torch.empty(bsz, h, dd, device='cuda', dtype=torch.bfloat16)
        deep_gemm.einsum('bhr,hdr->bhd', x, y, z)
        check_close(z, torch.einsum('bhr,hdr->bhd', x.double(), y.double()), 'bhr,hdr->bhd')
        x2 = torch.randn(bsz, h, dd, device='cuda', dtype=torch.bfloat16)
        z2 = torch.empty(bsz, h, r, device='cuda', dtype=torch.bfloat16)
        deep_gemm.einsum('bhd,hdr->bhr', x2, y, z2)
        check_close(z2, torch.einsum('bhd,hdr->bhr', x2.double(), y.double()), 'bhd,hdr->bhr')


@gpu
def test_cublaslt_fp32_precision():
    """bf16 inputs, fp32 d: fp32 math (upstream's test asserts calc_diff < 6e-7)."""
    m, n, k = 256, 512, 7168
    a = torch.randn(m, k, device='cuda', dtype=torch.bfloat16)
    b = torch.randn(n, k, device='cuda', dtype=torch.bfloat16)
    d = torch.empty(m, n, device='cuda')
    deep_gemm.cublaslt_gemm_nt(a, b, d)
    ref = a.double() @ b.double().T
    assert calc_diff(d, ref) < 1e-9
    c = torch.randn(m, n, device='cuda') * 32
    deep_gemm.cublaslt_gemm_nt(a, b, d, c=c)
    assert calc_diff(d, ref + c.double()) < 1e-9


@gpu
@pytest.mark.parametrize('fn', ['cublaslt_gemm_nt', 'cublaslt_gemm_tn'])
@pytest.mark.parametrize('out,with_c', [(torch.bfloat16, False), (torch.float, False), (torch.float, True)])
def test_cublaslt_fp8(fn, out, with_c):
    """FP8 inputs (upstream's test_fp8_fp4 times `cublaslt_gemm_nt(a[0], b[0], d, c=c)`): cuBLASLt's FP8 GEMM, one
    kernel, against float64 math on the FP8 values; K = 100 (not a multiple of 16) takes the widened FP32 route.
    The tolerance is cuBLAS's, not ours: its FP8 tensor-core sums keep fewer bits than FP32 (on the H200, 2026-12-03,
    up to 1.4e-4 of max|ref| with FP32 outputs at K = 7168), so 2e-3 of max|ref|; a wrong layout is off by O(1)."""
    for m, n, k in ((128, 2112, 7168), (7, 256, 100)):
        a = (torch.randn(m, k, device='cuda') * 4).to(torch.float8_e4m3fn)
        b = (torch.randn(n, k, device='cuda') * 4).to(torch.float8_e4m3fn)
        c = torch.randn(m, n, device='cuda') * 32 if with_c else None
        d = torch.full((m, n), float('nan'), device='cuda', dtype=out)
        ref = a.double() @ b.double().T + (c.double() if with_c else 0)
        a_arg, b_arg = (a.T.contiguous(), b.T.contiguous()) if fn.endswith('tn') else (a, b)
        getattr(deep_gemm, fn)(a_arg, b_arg, d, c=c)
        check_close(d, ref, f'{fn} fp8 m={m} k={k} out={out}', rel=2e-3)


@gpu
def test_bf16_gemm_determinism():
    a = torch.randn(16, 4096, device='cuda', dtype=torch.bfloat16)
    b = torch.randn(2048, 4096, device='cuda', dtype=torch.bfloat16)
    d = torch.empty(16, 2048, device='cuda', dtype=torch.float)
    deep_gemm.bf16_gemm_nt(a, b, d)
    first = d.clone()
    for _ in range(20):
        deep_gemm.bf16_gemm_nt(a, b, d)
        assert_bitwise_equal(d, first, 'bf16 determinism')


@pytest.mark.parametrize('case', ['dtype', 'k_mismatch', 'einsum_expr', 'cublaslt_shape'])
def test_bf16_bad_arguments(case):
    if deep_gemm._C is None:
        pytest.skip('deep_gemm._C is not built')
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    a = torch.zeros(64, 128, device=dev, dtype=torch.bfloat16)
    b = torch.zeros(64, 128, device=dev, dtype=torch.bfloat16)
    d = torch.empty(64, 64, device=dev, dtype=torch.float)
    if case == 'dtype':
        with pytest.raises((TypeError, ValueError), match=r'bf16_gemm_nt: `a` must (have dtype torch.bfloat16|be a CUDA)'):
            deep_gemm.bf16_gemm_nt(a.float(), b, d)
    elif case == 'k_mismatch':
        with pytest.raises(ValueError, match=r'bf16_gemm_nt: (`a` and `b` must have the same K|`a` must be a CUDA)'):
            deep_gemm.bf16_gemm_nt(a, b[:, :64], d)
    elif case == 'einsum_expr':
        with pytest.raises(ValueError, match=r"einsum: (`expr` must be|`a` must be a CUDA)"):
            deep_gemm.einsum('ij,jk->ik', a.view(1, 64, 128), b.view(1, 64, 128), d)
    elif case == 'cublaslt_shape':
        with pytest.raises(ValueError, match=r'cublaslt_gemm_nt: (`d` must be \[64, 64\]|`a` must be a CUDA)'):
            deep_gemm.cublaslt_gemm_nt(a, b, torch.empty(3, 3, device=dev))
