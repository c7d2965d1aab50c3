"""GPU tests of the runtime itself, through the first kernel (clean_logits): JIT compile → launch → correct,
CUDA-graph capture, warm-call host overhead, disk-cache reuse by a second process, and two processes compiling
the same kernel at once."""
import os
import subprocess
import sys
import tempfile
import time

import pytest
import torch

import deep_gemm

pytestmark = pytest.mark.gpu
REPO = os.path.join(os.path.dirname(__file__), '..')


def _ragged_ref(logits, ks, ke):
    n = logits.shape[1]
    cols = torch.arange(n, device=logits.device)[None, :]
    lo = ks.clamp(0, n)[:, None].long()
    hi = torch.maximum(ke.clamp(0, n)[:, None].long(), lo)
    return torch.where((cols >= lo) & (cols < hi), logits, torch.full_like(logits, float('-inf')))


def _strided_logits(rows, cols, dtype):
    stride = deep_gemm.align(cols + 256, 1024 // torch.tensor([], dtype=dtype).element_size())
    buf = torch.randn(rows, stride, device='cuda').to(dtype)
    return buf[:, :cols]


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('rows,cols', [(1, 1), (7, 33), (129, 1000), (64, 4099)])
def test_clean_logits_ragged(dtype, rows, cols):
    logits = _strided_logits(rows, cols, dtype)
    ks = torch.randint(-5, cols + 5, (rows,), device='cuda', dtype=torch.int32)
    ke = ks + torch.randint(-3, cols + 3, (rows,), device='cuda', dtype=torch.int32)
    guard = logits.as_strided((rows, logits.stride(0)), (logits.stride(0), 1)).clone()
    expected = _ragged_ref(logits.clone(), ks, ke)
    deep_gemm._C._clean_logits_ragged(logits, ks, ke)
    assert torch.equal(logits, expected)
    # Nothing past the N columns of a row was touched
    after = logits.as_strided((rows, logits.stride(0)), (logits.stride(0), 1))
    assert torch.equal(after[:, cols:], guard[:, cols:])


@pytest.mark.parametrize('next_n', [1, 3])
@pytest.mark.parametrize('two_d', [True, False])
def test_clean_logits_paged(next_n, two_d):
    b, width = 9, 777
    logits = _strided_logits(b * next_n, width, torch.float32)
    if two_d:
        lens = torch.randint(0, width + 1, (b, next_n), device='cuda', dtype=torch.int32)
        row_lens = lens.flatten().long()
    else:
        lens = torch.randint(next_n, width + 1, (b,), device='cuda', dtype=torch.int32)
        row_lens = (lens[:, None] - next_n + 1 + torch.arange(next_n, device='cuda')[None, :]).flatten().long()
    cols = torch.arange(width, device='cuda')[None, :]
    expected = torch.where(cols < row_lens[:, None], logits, torch.full_like(logits, float('-inf')))
    deep_gemm._C._clean_logits_paged(logits, lens, next_n)
    assert torch.equal(logits, expected)


def test_clean_logits_bad_inputs():
    logits = _strided_logits(4, 100, torch.float32)
    ks = torch.zeros(4, dtype=torch.int32, device='cuda')
    with pytest.raises(TypeError, match='_clean_logits_ragged: `ks` must have dtype torch.int32'):
        deep_gemm._C._clean_logits_ragged(logits, ks.long(), ks)
    with pytest.raises(ValueError, match=r'_clean_logits_ragged: `ke`.shape\[0\] must be 4'):
        deep_gemm._C._clean_logits_ragged(logits, ks, ks[:3])
    with pytest.raises(ValueError, match='_clean_logits_ragged: `ks` must be on cuda'):
        deep_gemm._C._clean_logits_ragged(logits, ks.cpu(), ks)


def test_clean_logits_cuda_graph():
    rows, cols = 33, 500
    logits = _strided_logits(rows, cols, torch.float32)
    ks = torch.zeros(rows, dtype=torch.int32, device='cuda')
    ke = torch.zeros(rows, dtype=torch.int32, device='cuda')
    deep_gemm._C._clean_logits_ragged(logits, ks, ke)  # compile outside capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        deep_gemm._C._clean_logits_ragged(logits, ks, ke)
    for _ in range(3):
        logits.copy_(torch.randn_like(logits))
        ks.copy_(torch.randint(0, cols, (rows,), device='cuda', dtype=torch.int32))
        ke.copy_(ks + torch.randint(0, cols, (rows,), device='cuda', dtype=torch.int32))
        expected = _ragged_ref(logits.clone(), ks, ke)
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(logits, expected)


def test_warm_call_host_overhead():
    logits = _strided_logits(1, 16, torch.float32)
    ks = torch.zeros(1, dtype=torch.int32, device='cuda')
    ke = torch.ones(1, dtype=torch.int32, device='cuda')
    for _ in range(10):
        deep_gemm._C._clean_logits_ragged(logits, ks, ke)
    torch.cuda.synchronize()
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        deep_gemm._C._clean_logits_ragged(logits, ks, ke)
    per_call_us = (time.perf_counter() - start) / n * 1e6
    torch.cuda.synchronize()
    print(f'\n[host overhead] warm clean_logits call: {per_call_us:.2f} us per call (CPU time, call to return)')
    assert per_call_us < 20, f'warm call costs {per_call_us:.1f} us: the in-process cache is not being hit'


_CHILD = r'''
import os, sys, torch
sys.path.insert(0, {repo!r})
import deep_gemm
logits = torch.randn(3, 1024, device='cuda')[:, :700]
ks = torch.tensor([0, 5, 800], dtype=torch.int32, device='cuda'); ke = torch.tensor([10, 700, 900], dtype=torch.int32, device='cuda')
deep_gemm._C._clean_logits_ragged(logits, ks, ke)
torch.cuda.synchronize()
assert torch.isinf(logits[0, 10:]).all() and torch.isfinite(logits[0, :10]).all() and torch.isinf(logits[2]).all()
print('child ok')
'''


def _child(cache_dir, extra_env=None):
    env = dict(os.environ, DG_JIT_CACHE_DIR=cache_dir, DG_JIT_DEBUG='1', **(extra_env or {}))
    return subprocess.Popen([sys.executable, '-c', _CHILD.format(repo=os.path.abspath(REPO))], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_disk_cache_reused_by_second_process():
    with tempfile.TemporaryDirectory() as d:
        out1, err1 = _child(d).communicate(timeout=300)
        assert 'child ok' in out1 and 'compiled smxx_clean_logits' in err1, err1
        out2, err2 = _child(d).communicate(timeout=300)
        assert 'child ok' in out2, err2
        assert 'disk cache hit' in err2 and 'compiled smxx_clean_logits' not in err2, err2


@pytest.mark.parametrize('nvrtc', ['0', '1'])
def test_two_processes_compile_same_kernel_at_once(nvrtc):
    with tempfile.TemporaryDirectory() as d:
        procs = [_child(d, {'DG_JIT_USE_NVRTC': nvrtc}) for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        for (out, err), p in zip(outs, procs):
            assert p.returncode == 0 and 'child ok' in out, err
        # No temporary files left behind, exactly one complete cubin per kernel entry
        leftovers = [f for _, _, fs in os.walk(d) for f in fs if '.tmp.' in f]
        assert not leftovers, leftovers
