"""CPU tests of argument validation: bad arguments raise clear errors (function, argument, expected, given)
before anything touches a GPU, so these run on a machine without one."""
import pytest
import torch

import deep_gemm

pytestmark = pytest.mark.skipif(deep_gemm._C is None, reason='deep_gemm._C is not built')


def test_clean_logits_rejects_cpu_tensors():
    logits = torch.zeros(4, 256)
    ks = torch.zeros(4, dtype=torch.int32)
    with pytest.raises(ValueError, match=r'_clean_logits_ragged: `logits` must be a CUDA tensor; got a cpu tensor of dtype '
                                         r'torch.float32 and shape \[4, 256\]'):
        deep_gemm._C._clean_logits_ragged(logits, ks, ks)


def test_compile_target_errors():
    with pytest.raises(ValueError, match="unsupported compile target 'sm_75'"):
        deep_gemm._C.list_kernel_configs('sm_75')
    n = len(deep_gemm._C.list_kernel_configs('sm_120a'))
    with pytest.raises(ValueError, match=f'compile_kernel_config: `index` must be < {n}'):
        deep_gemm._C.compile_kernel_config('sm_120a', n)


def test_no_gpu_errors_are_clear():
    if torch.cuda.is_available():
        pytest.skip('this machine has a GPU')
    with pytest.raises(RuntimeError, match='no CUDA device is visible'):
        deep_gemm.get_num_sms()


@pytest.mark.parametrize('fn', ['cublaslt_gemm_nt', 'cublaslt_gemm_nn', 'cublaslt_gemm_tn', 'cublaslt_gemm_tt'])
def test_cublaslt_rejects_cpu_tensors(fn):
    """cublaslt_gemm_* validate like every other entry point: CPU tensors are an error, not a silent torch.matmul."""
    a = torch.zeros(64, 32, dtype=torch.bfloat16)
    b = torch.zeros(64, 32, dtype=torch.bfloat16)
    d = torch.empty(64, 64, dtype=torch.float32)
    with pytest.raises(ValueError, match=rf'{fn}: `a` must be a CUDA tensor; got a cpu tensor of dtype '
                                         r'torch.bfloat16 and shape \[64, 32\]'):
        getattr(deep_gemm, fn)(a, b, d)


@pytest.mark.parametrize('fp32_out', [False, True])
def test_cublaslt_fp8_boxed_scaled_mm(fp32_out):
    """cublaslt_gemm_* run FP8 inputs through torch's `_scaled_mm`, called boxed with its arguments filled by name
    (the schema differs between torch 2.4 and 2.5+). The same call on the CPU, where torch has a kernel for it,
    checks the argument filling and the output taken from the stack on whichever torch is installed."""
    g = torch.Generator().manual_seed(0)
    a = (torch.randn(32, 64, generator=g) * 2).to(torch.float8_e4m3fn)
    b = (torch.randn(48, 64, generator=g) * 2).to(torch.float8_e4m3fn)
    want = torch.float32 if fp32_out else torch.bfloat16
    # Every torch has the meta kernel: the arguments are filled and the output taken right (dtype, shape)
    meta = deep_gemm._C._scaled_mm_unit_scales(a.to('meta'), b.to('meta').t(), fp32_out)
    assert meta.dtype == want and meta.shape == (32, 48), f'meta: {meta.dtype} {tuple(meta.shape)}'
    try:
        out = deep_gemm._C._scaled_mm_unit_scales(a, b.t(), fp32_out)
    except NotImplementedError as e:
        pytest.skip(f'dtype and shape checked on the meta device; this torch ({torch.__version__}) has no CPU kernel '
                    f'for _scaled_mm to check values: {str(e).splitlines()[0][:80]}')
    ref = a.double() @ b.double().t()
    assert out.dtype == (torch.float32 if fp32_out else torch.bfloat16) and out.shape == (32, 48)
    # FP32: the CPU kernel's summation order (1e-6 of max|ref|); BF16: one rounding of the result
    tol = 1e-6 * ref.abs().max() if fp32_out else 2 ** -8 * ref.abs() + 1e-6 * ref.abs().max()
    assert ((out.double() - ref).abs() <= tol).all(), 'unit-scale _scaled_mm differs from the FP8 product'
