"""Ragged (prefill) MQA logits: fp8_mqa_logits and the FP8 form of fp8_fp4_mqa_logits (CONTRACT.md §2.1, §2.4, §5).

GPU tests compare against a float64 PyTorch reference on the dequantized inputs (and on the bf16 originals), check
the -inf mask exactly, poison the output memory, and check determinism, CUDA graphs and the MMA-form cross-check.
CPU tests cover argument validation that needs no GPU and the compile-only enumeration.
"""
import contextlib
import os
import warnings

import pytest
import torch

import deep_gemm
from deep_gemm.testing import calc_diff, assert_bitwise_equal
from deep_gemm.utils import per_custom_dims_cast_to_fp8

gpu = pytest.mark.gpu
needs_ext = pytest.mark.skipif(deep_gemm._C is None, reason='deep_gemm._C is not built')


# ---------------------------------------------------------------------------------------------------------------------
# Inputs and reference

def _align(x, a):
    return (x + a - 1) // a * a


def make_inputs(s, n, h, d, seed, w_dtype=torch.float32):
    g = torch.Generator(device='cuda').manual_seed(seed)
    q = torch.randn(s, h, d, device='cuda', generator=g).bfloat16()
    kv = torch.randn(n, d, device='cuda', generator=g).bfloat16()
    w = torch.randn(s, h, device='cuda', generator=g).to(w_dtype)
    q_fp8 = q.to(torch.float8_e4m3fn)
    kv_fp8, kv_scale = per_custom_dims_cast_to_fp8(kv, (0, ), False)
    assert kv_scale.shape == (n, ) and kv_scale.dtype == torch.float32
    return dict(q=q, kv=kv, w=w, q_fp8=q_fp8, kv_fp8=kv_fp8.contiguous(), kv_scale=kv_scale.contiguous())


def clamp_ranges(ks, ke, n):
    ks_c = ks.long().clamp(0, n)
    ke_c = torch.maximum(ke.long().clamp(max=n), ks_c)
    return ks_c, ke_c


def valid_mask(ks, ke, n):
    ks_c, ke_c = clamp_ranges(ks, ke, n)
    j = torch.arange(n, device=ks.device)[None, :]
    return (j >= ks_c[:, None]) & (j < ke_c[:, None])


@contextlib.contextmanager
def poisoned_outputs():
    """The library fills each logits buffer it allocates with NaN before the kernel runs (DG_DEBUG_POISON_OUTPUTS)."""
    old = os.environ.get('DG_DEBUG_POISON_OUTPUTS')
    os.environ['DG_DEBUG_POISON_OUTPUTS'] = '1'
    try:
        yield
    finally:
        if old is None:
            del os.environ['DG_DEBUG_POISON_OUTPUTS']
        else:
            os.environ['DG_DEBUG_POISON_OUTPUTS'] = old


def reference(q, k, w, scale, chunk=64):
    """float64 sum_h relu(q[i,h,:] . k[j,:]) * w[i,h] * scale[j] (scale may be None), over all (i, j)."""
    q, k, w = q.double(), k.double(), w.double()
    out = torch.empty(q.shape[0], k.shape[0], dtype=torch.float64, device=q.device)
    for i in range(0, q.shape[0], chunk):
        score = torch.einsum('shd,nd->shn', q[i:i + chunk], k)
        out[i:i + chunk] = (score.relu() * w[i:i + chunk, :, None]).sum(1)
    if scale is not None:
        out *= scale.double()[None, :]
    return out


def check_logits(out, inp, ks, ke, clean, logits_dtype=torch.float32, w_used=None):
    s, n = out.shape
    w = inp['w'] if w_used is None else w_used
    mask = valid_mask(ks, ke, n)
    ref_deq = reference(inp['q_fp8'].float(), inp['kv_fp8'].float(), w.float(), inp['kv_scale'])
    ref_orig = reference(inp['q'].float(), inp['kv'].float(), w.float(), None)
    got = out.double()
    assert torch.isfinite(got[mask]).all(), 'non-finite logits inside the valid range'
    if mask.any():
        assert calc_diff(got[mask], ref_deq[mask]) < 1e-5
    # NOTES: against the unquantized original the difference is FP8 quantization noise, not kernel error; it is a
    # statistic that needs a sample (a 5-logit row once gave 1.2e-3), so it is checked where there are >= 256 logits
    if mask.sum() >= 256:
        assert calc_diff(got[mask], ref_orig[mask]) < 1e-3
    if clean:
        # -inf exactly outside the range, nothing else -inf
        is_neg_inf = torch.isneginf(got)
        assert torch.equal(is_neg_inf, ~mask), 'the -inf mask differs from the reference mask'
    return mask


def causal_ranges(s, n, prefix_start=0):
    """Query i at position n - s + i sees keys [prefix_start, n - s + i + 1)."""
    i = torch.arange(s, device='cuda', dtype=torch.int32)
    ke = (n - s + i + 1).int()
    ks = torch.full_like(ke, prefix_start)
    return ks, ke


def zigzag_ranges(s, n):
    """Context parallelism: two disjoint query chunks (positions [c0, c0 + s/2) and [c1, c1 + s - s/2))."""
    half = s // 2
    c0, c1 = n // 7, n - (s - half)
    pos = torch.cat([torch.arange(c0, c0 + half), torch.arange(c1, c1 + s - half)]).cuda().int()
    return torch.zeros_like(pos), pos + 1


def random_ranges(s, n, seed):
    """Arbitrary ranges, including empty ones (ke <= ks) and ones needing clamping (ks < 0, ke > n)."""
    g = torch.Generator(device='cuda').manual_seed(seed)
    ks = torch.randint(-40, n + 10, (s, ), device='cuda', generator=g)
    ke = ks + torch.randint(-30, n + 50, (s, ), device='cuda', generator=g)
    ks[::7] = -5
    ke[::5] = n + 100
    ke[3::11] = ks[3::11]                   # empty
    ke[4::13] = ks[4::13] - 3               # reversed: empty
    return ks.int(), ke.int()


def call(inp, ks, ke, clean=True, max_seqlen_k=0, logits_dtype=torch.float32, legacy=False, w=None):
    """`legacy`: through `fp8_mqa_logits` (float32 logits only), else through `fp8_fp4_mqa_logits`."""
    w = inp['w'] if w is None else w
    kv = (inp['kv_fp8'], inp['kv_scale'])
    if legacy:
        assert logits_dtype == torch.float32
        return deep_gemm.fp8_mqa_logits(inp['q_fp8'], kv, w, ks, ke, clean_logits=clean, max_seqlen_k=max_seqlen_k)
    return deep_gemm.fp8_fp4_mqa_logits((inp['q_fp8'], None), kv, w, ks, ke, clean_logits=clean,
                                        max_seqlen_k=max_seqlen_k, logits_dtype=logits_dtype)


def check_layout(out, s, width, compressed, logits_dtype):
    elem = out.element_size()
    stride = _align(_align(width, 256), 1024 // elem) if compressed else _align(width + 256, 1024 // elem)
    assert out.shape == (s, width) and out.dtype == logits_dtype
    assert out.stride() == (stride, 1), (out.stride(), stride)


# ---------------------------------------------------------------------------------------------------------------------
# GPU: numerics over every supported shape family

@gpu
@pytest.mark.parametrize('h', [8, 16, 32, 64])
@pytest.mark.parametrize('d', [32, 64, 128])
@pytest.mark.parametrize('dtypes', [(torch.float32, torch.float32), (torch.bfloat16, torch.float32),
                                    (torch.bfloat16, torch.bfloat16)], ids=['f32', 'bf16', 'bf16w'])
def test_sweep(h, d, dtypes):
    logits_dtype, w_dtype = dtypes
    if w_dtype == torch.bfloat16 and (h, d) not in ((8, 32), (64, 128), (32, 64)):
        pytest.skip('bf16 weights: a few shapes suffice')
    s, n = 133, 517                             # neither a multiple of any tile size
    inp = make_inputs(s, n, h, d, seed=h * 1000 + d, w_dtype=w_dtype)
    ks, ke = random_ranges(s, n, seed=h + d)
    out = call(inp, ks, ke, clean=True, logits_dtype=logits_dtype, legacy=logits_dtype == torch.float32)
    check_layout(out, s, n, False, logits_dtype)
    check_logits(out, inp, ks, ke, clean=True, logits_dtype=logits_dtype)


@gpu
@pytest.mark.parametrize('prefix_start', [0, 100])
def test_causal_with_prefix(prefix_start):
    s, n, h, d = 300, 1000, 64, 128
    inp = make_inputs(s, n, h, d, seed=1)
    ks, ke = causal_ranges(s, n, prefix_start)
    out = call(inp, ks, ke, clean=True, legacy=True)
    check_logits(out, inp, ks, ke, clean=True)


@gpu
@pytest.mark.parametrize('h,d', [(64, 128), (32, 64), (8, 128)])
def test_zigzag_context_parallel(h, d):
    s, n = 250, 1200
    inp = make_inputs(s, n, h, d, seed=2)
    ks, ke = zigzag_ranges(s, n)
    out = call(inp, ks, ke, clean=True)
    check_logits(out, inp, ks, ke, clean=True)


@gpu
def test_all_rows_empty_and_tiny():
    h, d = 64, 128
    for s, n in ((1, 1), (3, 40), (70, 5)):
        inp = make_inputs(s, n, h, d, seed=s * n)
        ks = torch.full((s, ), n, dtype=torch.int32, device='cuda')
        ke = torch.zeros(s, dtype=torch.int32, device='cuda')
        out = call(inp, ks, ke, clean=True)
        assert torch.isneginf(out).all()
        ks, ke = random_ranges(s, n, seed=3)
        out = call(inp, ks, ke, clean=True)
        check_logits(out, inp, ks, ke, clean=True)


@gpu
def test_few_queries_split_keys():
    # Few query tiles: each tile's key range is split across CTAs
    s, n, h, d = 5, 4000, 64, 128
    inp = make_inputs(s, n, h, d, seed=4)
    ks, ke = random_ranges(s, n, seed=5)
    ks[0], ke[0] = 0, n
    out = call(inp, ks, ke, clean=True)
    check_logits(out, inp, ks, ke, clean=True)


@gpu
@pytest.mark.parametrize('logits_dtype', [torch.float32, torch.bfloat16])
def test_compressed_matches_uncompressed(logits_dtype):
    s, n, h, d = 160, 900, 32, 128
    inp = make_inputs(s, n, h, d, seed=6)
    ks, ke = random_ranges(s, n, seed=7)
    full = call(inp, ks, ke, clean=False, logits_dtype=logits_dtype)
    ks_c, ke_c = clamp_ranges(ks, ke, n)
    lengths = (ke_c - ks_c)
    for max_seqlen_k in (int(lengths.max().item()), 300):
        comp = call(inp, ks, ke, clean=False, max_seqlen_k=max_seqlen_k, logits_dtype=logits_dtype)
        check_layout(comp, s, max_seqlen_k, True, logits_dtype)
        # Run again into a NaN-poisoned buffer: valid columns must equal the uncompressed result bitwise, and
        # nothing at or past `max_seqlen_k` may be written
        stride = comp.stride(0)
        with poisoned_outputs():
            comp = call(inp, ks, ke, clean=False, max_seqlen_k=max_seqlen_k, logits_dtype=logits_dtype)
        for i in range(s):
            lo, hi = int(ks_c[i]), int(ke_c[i])
            m = min(hi - lo, max_seqlen_k)
            assert_bitwise_equal(comp[i, :m], full[i, lo:lo + m], f'row {i}')
        buf = torch.empty(0, dtype=logits_dtype, device='cuda').set_(comp.untyped_storage())
        buf = buf[:s * stride].view(s, stride)
        assert torch.isnan(buf[:, max_seqlen_k:]).all(), 'a column past max_seqlen_k was written'


@gpu
@pytest.mark.parametrize('clean', [True, False])
def test_poisoned_output(clean):
    s, n, h, d = 200, 700, 16, 64
    inp = make_inputs(s, n, h, d, seed=8)
    ks, ke = random_ranges(s, n, seed=9)
    with poisoned_outputs():
        out = call(inp, ks, ke, clean=clean)
    stride = out.stride(0)
    check_logits(out, inp, ks, ke, clean=clean)
    buf = torch.empty(0, dtype=out.dtype, device='cuda').set_(out.untyped_storage())[:s * stride].view(s, stride)
    assert torch.isnan(buf[:, n:]).all(), 'padding columns past N were written'


@gpu
@pytest.mark.parametrize('logits_dtype', [torch.float32, torch.bfloat16])
def test_deterministic(logits_dtype):
    s, n, h, d = 257, 1500, 64, 128
    inp = make_inputs(s, n, h, d, seed=10)
    ks, ke = causal_ranges(s, n)
    first = call(inp, ks, ke, clean=True, logits_dtype=logits_dtype)
    for it in range(20):
        assert_bitwise_equal(call(inp, ks, ke, clean=True, logits_dtype=logits_dtype), first, f'call {it}')


@gpu
@pytest.mark.parametrize('clean', [True, False])
def test_cuda_graph(clean):
    s, n, h, d = 190, 800, 64, 128
    inp = make_inputs(s, n, h, d, seed=11)
    ks, ke = random_ranges(s, n, seed=12)
    # Warm up (JIT, MMA-form check) outside the capture, on a side stream as torch recommends
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        call(inp, ks, ke, clean=clean)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = call(inp, ks, ke, clean=clean)
    # New values in the same input buffers, then replay
    new = make_inputs(s, n, h, d, seed=13)
    for key in ('q_fp8', 'kv_fp8', 'kv_scale', 'w'):
        inp[key].copy_(new[key])
    ks2, ke2 = random_ranges(s, n, seed=14)
    ks.copy_(ks2)
    ke.copy_(ke2)
    out.fill_(float('nan'))
    graph.replay()
    torch.cuda.synchronize()
    eager = call(inp, ks, ke, clean=clean)
    mask = valid_mask(ks, ke, n)
    if clean:
        assert_bitwise_equal(out, eager, 'graph replay')
    else:
        assert_bitwise_equal(out[mask], eager[mask], 'graph replay')
    inp.update({k: new[k] for k in ('q', 'kv')})
    check_logits(out, inp, ks, ke, clean=clean)


@gpu
def test_mma_form_cross_check(monkeypatch):
    """The one-time check of the candidate FP8 MMA form against the plain twin (SM120.md §4), forced on any GPU."""
    s, n = 70, 300
    log0 = len(deep_gemm._C._mma_cross_check_log())
    monkeypatch.setenv('DG_SM120_MMA_CHECK', 'force')
    inp = make_inputs(s, n, 16, 64, seed=15)
    ks, ke = random_ranges(s, n, seed=16)
    out = call(inp, ks, ke, clean=True)
    check_logits(out, inp, ks, ke, clean=True)
    log = deep_gemm._C._mma_cross_check_log()[log0:]
    assert len(log) == 1 and log[0][1] is True and 'fp8_mqa_logits' in log[0][0] and 'H=16 D=64' in log[0][0], log
    call(inp, ks, ke, clean=True)                                   # once per config and process
    assert len(deep_gemm._C._mma_cross_check_log()) == log0 + 1

    # A disagreeing candidate: one warning, then the plain form (results still correct)
    monkeypatch.setenv('DG_SM120_MMA_CHECK', 'force-fail')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out = call(inp, ks, ke, clean=True)
        call(inp, ks, ke, clean=True)
    assert len([w for w in caught if 'using the portable form' in str(w.message)]) == 1
    check_logits(out, inp, ks, ke, clean=True)
    log = deep_gemm._C._mma_cross_check_log()[log0 + 1:]
    assert len(log) == 1 and log[0][1] is False, log

    monkeypatch.setenv('DG_SM120_FP8_MMA', 'plain')
    check_logits(call(inp, ks, ke, clean=True), inp, ks, ke, clean=True)
    monkeypatch.setenv('DG_SM120_FP8_MMA', 'bogus')
    with pytest.raises(ValueError, match='DG_SM120_FP8_MMA'):
        call(inp, ks, ke)


@gpu
def test_bad_inputs_gpu():
    s, n, h, d = 20, 64, 64, 128
    inp = make_inputs(s, n, h, d, seed=17)
    ks, ke = causal_ranges(s, n)
    q, kv, w = inp['q_fp8'], (inp['kv_fp8'], inp['kv_scale']), inp['w']
    f = deep_gemm.fp8_mqa_logits
    with pytest.raises(ValueError, match=r'fp8_mqa_logits: `weights`.shape\[0\] must be 20'):
        f(q, kv, w[:-1], ks, ke)
    with pytest.raises(ValueError, match=r'`cu_seq_len_k_start`.shape\[0\] must be 20'):
        f(q, kv, w, ks[:-1], ke)
    with pytest.raises(ValueError, match=r'`cu_seq_len_k_end`.shape\[0\] must be 20'):
        f(q, kv, w, ks, ke[1:])
    with pytest.raises(ValueError, match=r'`kv\[1\]`.shape\[0\] must be 64'):
        f(q, (inp['kv_fp8'], inp['kv_scale'][:-1]), w, ks, ke)
    with pytest.raises(ValueError, match=r'`kv\[0\]`.shape\[1\] must be 128'):
        f(q, (inp['kv_fp8'][:, :64].contiguous(), inp['kv_scale']), w, ks, ke)
    with pytest.raises(ValueError, match='clean_logits=True` requires `max_seqlen_k == 0'):
        f(q, kv, w, ks, ke, clean_logits=True, max_seqlen_k=128)
    with pytest.raises(ValueError, match='number of heads'):
        f(torch.zeros(s, 4, d, device='cuda').to(torch.float8_e4m3fn), kv, w[:, :4].contiguous(), ks, ke)
    with pytest.raises(ValueError, match='head dim'):
        f(torch.zeros(s, h, 256, device='cuda').to(torch.float8_e4m3fn), kv, w, ks, ke)
    with pytest.raises(TypeError, match='`q` must have dtype torch.float8_e4m3fn'):
        f(q.float(), kv, w, ks, ke)
    with pytest.raises(TypeError, match='`cu_seq_len_k_start` must have dtype torch.int32'):
        f(q, kv, w, ks.long(), ke)
    with pytest.raises(TypeError, match='`kv\\[1\\]` must have dtype torch.float32'):
        f(q, (inp['kv_fp8'], inp['kv_scale'].double()), w, ks, ke)
    with pytest.raises(TypeError, match='`weights` must have dtype torch.float32'):
        f(q, kv, w.bfloat16(), ks, ke)                          # bf16 weights need bf16 logits
    with pytest.raises(TypeError, match='`logits_dtype`'):
        deep_gemm.fp8_fp4_mqa_logits((q, None), kv, w, ks, ke, logits_dtype=torch.float16)
    with pytest.raises(ValueError, match='must be contiguous'):
        f(q.transpose(0, 1).contiguous().transpose(0, 1), kv, w, ks, ke)
    with pytest.raises(ValueError, match='must be on'):
        f(q, kv, w.cpu(), ks, ke)
    with pytest.raises(ValueError, match='max_seqlen_k` must be >= 0'):
        f(q, kv, w, ks, ke, clean_logits=False, max_seqlen_k=-1)
    # Scales with FP8 q: the FP4 form needs packed e2m1 q (tests/test_fp4_mqa_logits.py covers FP4)
    with pytest.raises(TypeError, match='is the FP4 form'):
        deep_gemm.fp8_fp4_mqa_logits((q, torch.zeros(s, h, dtype=torch.int32, device='cuda')), kv, w, ks, ke)
    with pytest.raises(TypeError, match='FP8 q needs FP8 keys'):
        f(q, (torch.zeros(n, d // 2, dtype=torch.int8, device='cuda'), torch.zeros(n, dtype=torch.int32,
                                                                                   device='cuda')), w, ks, ke)
    # Weights with a padded row stride are fine
    wide = torch.randn(s, h + 8, device='cuda')[:, :h]
    inp['w'] = wide
    out = call(inp, ks, ke, clean=True)
    check_logits(out, inp, ks, ke, clean=True)


# ---------------------------------------------------------------------------------------------------------------------
# CPU: validation without a GPU, and the compile-only enumeration

@needs_ext
def test_bad_inputs_cpu():
    s, n, h, d = 4, 8, 64, 128
    q = torch.zeros(s, h, d).to(torch.float8_e4m3fn)
    kv = (torch.zeros(n, d).to(torch.float8_e4m3fn), torch.ones(n))
    w = torch.zeros(s, h)
    ks = torch.zeros(s, dtype=torch.int32)
    ke = torch.ones(s, dtype=torch.int32)
    with pytest.raises(ValueError, match='fp8_mqa_logits: `q` must be a CUDA tensor'):
        deep_gemm.fp8_mqa_logits(q, kv, w, ks, ke)
    with pytest.raises(ValueError, match='fp8_fp4_mqa_logits: `q` must be a CUDA tensor'):
        deep_gemm.fp8_fp4_mqa_logits((q, None), kv, w, ks, ke)
    with pytest.raises(ValueError, match=r'fp8_fp4_mqa_logits: `q\[0\]` must be a CUDA tensor'):
        deep_gemm.fp8_fp4_mqa_logits((q, torch.zeros(s, h, dtype=torch.int32)), kv, w, ks, ke)


@needs_ext
@pytest.mark.parametrize('target', ['sm_120a', 'sm_121a'])
def test_enumeration(target):
    specs = [c for c in deep_gemm._C.list_kernel_configs(target) if c['family'] == 'mqa_logits'
             and not c['description'].startswith('FP4 ')]
    # Every (H, D) with both MMA forms (FP4 configs: tests/test_fp4_mqa_logits.py)
    assert len(specs) == 4 * 3 * 2
    for c in specs:
        assert 'mqa_logits' in c['symbol'] and 'paged' not in c['symbol']
        assert c['dynamic_smem'] <= 101376
        assert any('QMMA' in e for e in c['expected_sass'])


@needs_ext
@pytest.mark.skipif(not os.path.exists('/usr/local/cuda/bin/nvcc') and not os.environ.get('DG_JIT_USE_NVRTC'),
                    reason='no CUDA compiler')
def test_compile_one_config():
    cfgs = deep_gemm._C.list_kernel_configs('sm_120a')
    index = next(i for i, c in enumerate(cfgs) if c['family'] == 'mqa_logits' and 'H=64 D=128 mma=block_scaled'
                 in c['description'])
    r = deep_gemm._C.compile_kernel_config('sm_120a', index)
    assert r['total_smem'] <= 101376
    assert r['spill_stores'] == 0 and r['stack_frame'] == 0
