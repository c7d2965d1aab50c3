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
