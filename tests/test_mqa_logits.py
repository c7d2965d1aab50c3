"""Ragged (prefill) MQA logits: fp8_mqa_logits and the FP8 form of fp8_fp4_mqa_logits (CONTRACT.md §2.1, §2.4, §5).

GPU tests compare against a float64 PyTorch reference on the dequantized inputs (and on the bf16 originals), check
the -inf mask exactly, poison the output memory, and check determinism, CUDA graphs and the MMA-form cross-check.
CPU tests cover argument validation that needs no GPU and the compile-only enumeration.
"""
import os

import pytest
import torch

import deep_gemm
from deep_gemm.testing import calc_diff, assert_bitwise_equal
from deep_gemm.utils import per_custom_dims_cast_to_fp8

import mqa_logits_common as common
from mqa_logits_common import (causal_ranges, check_layout, clamp_ranges, poisoned_outputs, random_ranges, reference,
                               valid_mask)

gpu = pytest.mark.gpu
needs_ext = pytest.mark.skipif(deep_gemm._C is None, reason='deep_gemm._C is not built')


# ---------------------------------------------------------------------------------------------------------------------
# Inputs, call and check (the shared ranges, reference and test bodies: tests/mqa_logits_common.py)

def make_inputs(s, n, h, d, seed, w_dtype=torch.float32):
    g = torch.Generator(device='cuda').manual_seed(seed)
    q = torch.randn(s, h, d, device='cuda', generator=g).bfloat16()
    kv = torch.randn(n, d, device='cuda', generator=g).bfloat16()
    w = torch.randn(s, h, device='cuda', generator=g).to(w_dtype)
    q_fp8 = q.to(torch.float8_e4m3fn)
    kv_fp8, kv_scale = per_custom_dims_cast_to_fp8(kv, (0, ), False)
    assert kv_scale.shape == (n, ) and kv_scale.dtype == torch.float32
    return dict(q=q, kv=kv, w=w, q_fp8=q_fp8, kv_fp8=kv_fp8.contiguous(), kv_scale=kv_scale.contiguous())


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


def call(inp, ks, ke, clean=True, max_seqlen_k=0, logits_dtype=torch.float32, legacy=False, w=None):
    """`legacy`: through `fp8_mqa_logits` (float32 logits only), else through `fp8_fp4_mqa_logits`."""
    w = inp['w'] if w is None else w
    kv = (inp['kv_fp8'], inp['kv_scale'])
    if legacy:
        assert logits_dtype == torch.float32
        return deep_gemm.fp8_mqa_logits(inp['q_fp8'], kv, w, ks, ke, clean_logits=clean, max_seqlen_k=max_seqlen_k)
    return deep_gemm.fp8_fp4_mqa_logits((inp['q_fp8'], None), kv, w, ks, ke, clean_logits=clean,
                                        max_seqlen_k=max_seqlen_k, logits_dtype=logits_dtype)


FP8 = common.Family(make_inputs, call, check_logits, graph_keys=('q_fp8', 'kv_fp8', 'kv_scale', 'w'))


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
    common.causal_with_prefix(FP8, prefix_start, legacy=True)


@gpu
@pytest.mark.parametrize('h,d', [(64, 128), (32, 64), (8, 128)])
def test_zigzag_context_parallel(h, d):
    common.zigzag_context_parallel(FP8, h, d)


@gpu
def test_all_rows_empty_and_tiny():
    common.all_rows_empty_and_tiny(FP8)


@gpu
def test_few_queries_split_keys():
    common.few_queries_split_keys(FP8)




@gpu
@pytest.mark.parametrize('logits_dtype', [torch.float32, torch.bfloat16], ids=['f32', 'bf16'])
@pytest.mark.parametrize('s,n,h,d,kind', common.FUSED_CLEAN_CASES, ids=common.case_ids(common.FUSED_CLEAN_CASES))
def test_fused_clean(s, n, h, d, kind, logits_dtype):
    common.fused_clean(FP8, s, n, h, d, kind, logits_dtype)


@gpu
@pytest.mark.parametrize('logits_dtype', [torch.float32, torch.bfloat16])
def test_compressed_matches_uncompressed(logits_dtype):
    s, n, h, d = 160, 900, 32, 128
    inp, ks, ke = common.new_case(FP8, s, n, h, d, seed=6, ranges_seed=7)
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
    common.poisoned(FP8, clean)


@gpu
@pytest.mark.parametrize('logits_dtype', [torch.float32, torch.bfloat16])
def test_deterministic(logits_dtype):
    common.deterministic(FP8, logits_dtype)


@gpu
@pytest.mark.parametrize('clean', [True, False])
def test_cuda_graph(clean):
    common.cuda_graph(FP8, clean)


@gpu
def test_mma_form_cross_check(monkeypatch):
    """The one-time check of the candidate FP8 MMA form against the plain twin (docs/HARDWARE.md §4),
    forced on any GPU."""
    inp, ks, ke, log = common.mma_form_cross_check(FP8, monkeypatch, 'fp8_mqa_logits', 'H=16 D=64')
    assert len(log) == 1 and log[0][1] is False, log
    common.mma_form_env(FP8, monkeypatch, inp, ks, ke, 'DG_SM120_FP8_MMA', 'plain')


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

def _fused_clean_split_model(n, ks, ke, num_splits):
    """The column ranges each key split writes -inf to, as `clean_split_rows` (sm120_fp8_mqa_logits.cuh) computes them
    for one row: the masked columns [0, lo) + [hi, n), numbered in order, cut into `num_splits` parts at boundaries
    rounded down to 8 (32-bit arithmetic: s * quot + s * rem // num_splits)."""
    lo = min(max(ks, 0), n)
    hi = min(max(ke, lo), n)
    if hi <= lo:
        lo = hi = 0
    length, masked = hi - lo, n - (hi - lo)
    quot, rem = divmod(masked, num_splits)

    def boundary(s):
        return masked if s >= num_splits else (s * quot + s * rem // num_splits) & ~7

    parts = []
    for split in range(num_splits):
        t0, t1 = boundary(split), boundary(split + 1)
        parts.append([(min(t0, lo), min(t1, lo)), (max(t0, lo) + length, max(t1, lo) + length)])
    return lo, hi, parts


def test_fused_clean_split_model_covers_masked_columns_once():
    import random
    rng = random.Random(0)
    # (N, ks, ke, num_splits): empty, clamped, reversed, causal-like, short interior, full
    cases = [(1, 0, 0, 1), (4001, -5, 5000, 64), (4001, 7, 3, 63), (20000, 0, 19981, 64), (9000, 4000, 4030, 64),
             (5, 0, 5, 1)]
    for _ in range(400):
        n = rng.randint(1, 5000)
        cases.append((n, rng.randint(-50, n + 50), rng.randint(-50, n + 60), rng.randint(1, 64)))
    for n, ks, ke, ns in cases:
        lo, hi, parts = _fused_clean_split_model(n, ks, ke, ns)
        count = [0] * n
        for spans in parts:
            for a, b in spans:
                for j in range(a, b):
                    count[j] += 1
        assert count == [0 if lo <= j < hi else 1 for j in range(n)], (n, ks, ke, ns)
        # Balanced: no split gets more than its share plus one 8-element rounding step
        sizes = [sum(b - a for a, b in spans if b > a) for spans in parts]
        assert max(sizes) <= (n - (hi - lo)) // ns + 16, (n, ks, ke, ns, sizes)


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
