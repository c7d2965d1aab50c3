"""Paged MQA logits with FP4 q and an FP4 cache (`fp8_fp4_paged_mqa_logits((q_fp4, q_sf), ...)`, CONTRACT.md §2.2).

    logits[b * n + t, j] = sum_h relu(sum_blk sq[h, blk] * sk[j, blk] * (q[h, blk] . k[j, blk])) * w[b * n + t, h]

GPU tests compare against a float64 reference computed from the dequantized FP4 inputs (calc_diff < 1e-5) and
against the unquantized original (calc_diff < 0.02). On the H100 the portable form (exact dequantization to bf16,
bf16 mma.sync) runs; the native m16n8k64 form is sm_120a/121a only.
"""
import pytest
import torch

import deep_gemm
from deep_gemm.testing import calc_diff
from deep_gemm.utils.fp4_cache import dequantize_fp4, quantize_fp4

from paged_mqa_logits_common import (assert_deterministic, check_buffer, check_varlen, check_written_and_clean,
                                     fill_block_table, make_lengths, mma_cross_check_mechanism, paged_reference,
                                     run_fp8_fp4, valid_mask)

gpu = pytest.mark.gpu


# ------------------------------------------------------------------------------------------------------ helpers
# (shared with the FP8 tests: tests/paged_mqa_logits_common.py)
def make_fp4_pool(num_pages, block_kv, head_dim, pad_bytes=0, misalign=0, seed=0):
    """An FP4 paged cache built by hand (layout of deep_gemm.utils.fp4_cache, with optional page padding and a
    4-byte-misaligned base). Returns (kv_cache, original keys float [P, bkv, D], dequantized keys float [P, bkv, D])."""
    g = torch.Generator(device='cuda').manual_seed(seed)
    row = head_dim // 2
    payload = block_kv * (row + 4)
    stride = payload + pad_bytes
    # Garbage everywhere first: padding bytes must never matter
    raw = torch.randint(0, 256, (num_pages * stride + misalign + 64,), dtype=torch.uint8, device='cuda', generator=g)
    pool = raw[misalign:misalign + num_pages * stride].view(num_pages, stride)
    orig = torch.randn(num_pages * block_kv, head_dim, device='cuda', generator=g).bfloat16().float()
    # A few tokens with a large dynamic range inside one row (different block scales)
    orig[::7, :32] *= 8.0
    packed, sf = quantize_fp4(orig)
    pool[:, :block_kv * row] = packed.view(torch.uint8).reshape(num_pages, block_kv * row)
    pool[:, block_kv * row:payload] = sf.view(num_pages, block_kv).contiguous().view(torch.uint8) \
        .reshape(num_pages, block_kv * 4)
    kv_cache = pool[:, :payload].view(num_pages, block_kv, 1, row + 4)
    deq = dequantize_fp4(packed, sf).view(num_pages, block_kv, head_dim)
    return kv_cache, orig.view(num_pages, block_kv, head_dim), deq


def make_fp4_case(B, next_n, H, D, block_kv, max_len, *, zero_frac=0.2, one_d=False, pad_bytes=0, misalign=0,
                  bf16_weights=False, extra_cols=0, seed=0):
    g = torch.Generator(device='cuda').manual_seed(seed + 1)
    context_lens, ctx2d, pages_per_req, max_pages = make_lengths(g, B, next_n, max_len, zero_frac, one_d, block_kv,
                                                                 extra_cols)
    num_pages = sum(pages_per_req) + 5
    kv_cache, keys_orig, keys = make_fp4_pool(num_pages, block_kv, D, pad_bytes, misalign, seed)
    perm = torch.randperm(num_pages, device='cuda', generator=g).int()
    # Garbage past each request's last page: huge, negative and out-of-pool values the kernel must never read
    block_table = torch.randint(num_pages + 1000, 2 ** 31 - 1, (B, max_pages), device='cuda', generator=g).int()
    block_table[:, 1::3] = -7
    fill_block_table(block_table, perm, pages_per_req)
    q_orig = torch.randn(B, next_n, H, D, device='cuda', generator=g).bfloat16().float()
    q_fp4, q_sf = quantize_fp4(q_orig)
    weights = torch.randn(B * next_n, H, device='cuda', generator=g)
    if bf16_weights:
        weights = weights.bfloat16()
    max_context_len = max_pages * block_kv if extra_cols else max_len
    return dict(q=(q_fp4, q_sf), q_deq=dequantize_fp4(q_fp4, q_sf), q_orig=q_orig, kv_cache=kv_cache, keys=keys,
                keys_orig=keys_orig, weights=weights, context_lens=context_lens, block_table=block_table, ctx2d=ctx2d,
                max_context_len=max_context_len, block_kv=block_kv)


def reference(c, original=False):
    """float64 logits [B * n, max_context_len]; NaN where undefined."""
    q = (c['q_orig'] if original else c['q_deq']).double()
    keys = (c['keys_orig'] if original else c['keys']).double()
    return paged_reference(c, q, keys, c['weights'].double(), dtype=torch.float64)


def run(c, meta=None, clean_logits=False, logits_dtype=torch.float32, indices=None):
    return run_fp8_fp4(c, c['q'], meta, clean_logits=clean_logits, logits_dtype=logits_dtype, indices=indices)


def check(c, out, logits_dtype=torch.float32, clean=False, vs_original=True):
    mask = valid_mask(c)
    B, n = c['q_deq'].shape[:2]
    check_buffer(c, out, B * n, logits_dtype)
    got = out.double()[mask]
    assert torch.isfinite(got).all(), 'non-finite logits in the valid region'
    if got.numel():
        diff = calc_diff(got, reference(c)[mask])
        assert diff < 1e-5, f'calc_diff vs the dequantized FP4 reference {diff}'
        # NOTES: against the unquantized original the difference is FP4 quantization noise, a statistic over rows
        # (~0.013 on large samples; a CPU model of these inputs reached 0.0175 at 20 rows, 0.021 with 2 rows), so
        # it is checked only on samples of >= 2048 logits in >= 16 rows
        if vs_original and got.numel() >= 2048 and int((mask.sum(1) > 0).sum()) >= 16:
            diff = calc_diff(got, reference(c, original=True)[mask])
            assert diff < 0.02, f'calc_diff vs the unquantized original {diff}'
    if clean:
        assert (out.float()[~mask] == float('-inf')).all(), 'clean_logits must write -inf past each row'


# ------------------------------------------------------------------------------------------------------ logits
def _opts(i):
    """Options cycled through the sweep, so every (H, D, block_kv, next_n) sees some of them."""
    return [dict(), dict(one_d=True), dict(bf16_weights=True), dict(pad_bytes=16), dict(pad_bytes=4, misalign=4),
            dict(extra_cols=2)][i % 6]


SWEEP = [(H, D, bkv, n) for H in (8, 16, 32, 64) for D in (64, 128) for bkv in (32, 64) for n in (1, 2, 3)]


@gpu
@pytest.mark.parametrize('H,D,block_kv,next_n', SWEEP)
def test_fp4_paged_logits_sweep(H, D, block_kv, next_n, monkeypatch):
    i = SWEEP.index((H, D, block_kv, next_n))
    opts = _opts(i)
    c = make_fp4_case(4, next_n, H, D, block_kv, 300 + 37 * (i % 5), seed=i, **opts)
    bf16_logits = opts.get('bf16_weights', False) or i % 4 == 3
    check_written_and_clean(c, run, check, torch.bfloat16 if bf16_logits else torch.float32, monkeypatch)


@gpu
@pytest.mark.parametrize('H,D,block_kv', [(64, 128, 64), (8, 64, 32), (32, 128, 32), (16, 64, 64)])
def test_fp4_vs_original(H, D, block_kv):
    # Enough rows and logits for the quantization-noise statistic (DeepSeek-V4 decode shape first)
    c = make_fp4_case(32, 1, H, D, block_kv, 1200, zero_frac=0.0, seed=77 + H + D)
    out = run(c)
    mask = valid_mask(c)
    assert int(mask.sum()) >= 2048 and int((mask.sum(1) > 0).sum()) >= 16
    check(c, out)
    assert calc_diff(out.double()[mask], reference(c, original=True)[mask]) < 0.02


@gpu
def test_fp4_determinism_20_calls():
    assert_deterministic(make_fp4_case(9, 2, 64, 128, 64, 3000, seed=3), run, check)


@gpu
def test_fp4_varlen_indices():
    def make_q(T, g):
        q_orig = torch.randn(T, 1, 32, 128, device='cuda', generator=g).bfloat16().float()
        q_fp4, q_sf = quantize_fp4(q_orig)
        return dict(q=(q_fp4, q_sf), q_deq=dequantize_fp4(q_fp4, q_sf), q_orig=q_orig)

    check_varlen(make_fp4_case(3, 1, 32, 128, 64, 900, zero_frac=0.0, seed=5), run, check, [3, 1, 4], make_q)


@gpu
def test_fp4_cuda_graph_replay():
    H, D, bkv, n = 64, 128, 64, 2
    c = make_fp4_case(6, n, H, D, bkv, 1200, seed=31)
    c2 = make_fp4_case(6, n, H, D, bkv, 1200, seed=32)
    # Same pool and queries, new lengths for the replay
    for k in ('q', 'q_deq', 'q_orig', 'kv_cache', 'keys', 'keys_orig', 'weights', 'block_table'):
        c2[k] = c[k]
    c2['context_lens'] = torch.minimum(c2['context_lens'], c['context_lens'])
    c2['ctx2d'] = c2['context_lens']
    num_sms = deep_gemm.get_num_sms()
    ctx_s = c['context_lens'].clone()
    meta_s = deep_gemm.get_paged_mqa_logits_metadata(ctx_s, bkv, num_sms)
    f = deep_gemm.fp8_fp4_paged_mqa_logits
    args = (c['q'], c['kv_cache'], c['weights'], ctx_s, c['block_table'], meta_s, c['max_context_len'])
    run(c)  # compile outside the capture
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            f(*args)
    torch.cuda.current_stream().wait_stream(s)
    graph_a, graph_b = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph_a):
        out_a = f(*args, clean_logits=True)
    with torch.cuda.graph(graph_b):
        out_b = f(*args, logits_dtype=torch.bfloat16)
    for case in (c, c2, c):
        ctx_s.copy_(case['context_lens'])
        meta_s.copy_(deep_gemm.get_paged_mqa_logits_metadata(case['context_lens'], bkv, num_sms))
        out_a.fill_(float('nan'))
        out_b.fill_(float('nan'))
        graph_a.replay()
        graph_b.replay()
        torch.cuda.synchronize()
        mask = valid_mask(case)
        check(case, out_a, clean=True)
        check(case, out_b, torch.bfloat16)
        assert torch.equal(out_a[mask], run(case)[mask])
        assert torch.equal(out_b[mask].view(torch.int16), run(case, logits_dtype=torch.bfloat16)[mask].view(torch.int16))


@gpu
def test_fp4_mma_cross_check_mechanism(monkeypatch):
    # `force`: the check runs even for the portable form (the H100 exercises it) and passes; `force-fail`: the
    # perturbed candidate must warn, be recorded as failed, and the portable twin's results are returned
    c = make_fp4_case(3, 2, 16, 64, 32, 300, seed=41)
    mma_cross_check_mechanism(c, run, check, monkeypatch, 'FP4', 'H=16 D=64 block_kv=32')


@gpu
@pytest.mark.parametrize('next_n,block_kv', [(1, 64), (3, 32), (2, 64)])
def test_fp4_portable_q_smem(next_n, block_kv, monkeypatch, capfd):
    # The portable form at H = 64, D = 128 (also on sm_120a/121a, forced) keeps q dequantized in shared memory:
    # it must be the config that runs, match the reference and repeat bit for bit
    c = make_fp4_case(6, next_n, 64, 128, block_kv, 1100, seed=91 + next_n)
    meta = deep_gemm.get_paged_mqa_logits_metadata(c['context_lens'], block_kv, deep_gemm.get_num_sms())
    mask = valid_mask(c)
    monkeypatch.setenv('DG_SM120_FP4_MMA', 'portable')
    monkeypatch.setenv('DG_PRINT_CONFIGS', '1')
    capfd.readouterr()
    out = run(c, meta)
    torch.cuda.synchronize()
    printed = capfd.readouterr().err
    assert f'block_kv={block_kv} ' in printed and 'mma=fp4_portable q=smem' in printed, printed
    check(c, out)
    assert torch.equal(run(c, meta)[mask].view(torch.int32), out[mask].view(torch.int32))


@gpu
def test_fp4_mma_form_env(monkeypatch):
    c = make_fp4_case(2, 1, 8, 64, 32, 200, seed=43)
    monkeypatch.setenv('DG_SM120_FP4_MMA', 'portable')
    check(c, run(c))
    monkeypatch.setenv('DG_SM120_FP4_MMA', 'bogus')
    with pytest.raises(ValueError, match='DG_SM120_FP4_MMA'):
        run(c)


# ------------------------------------------------------------------------------------------------------ bad inputs
@gpu
def test_fp4_bad_inputs():
    c = make_fp4_case(4, 1, 64, 128, 64, 500, zero_frac=0.0, seed=51)
    meta = deep_gemm.get_paged_mqa_logits_metadata(c['context_lens'], 64, deep_gemm.get_num_sms())
    q, sf = c['q']
    rest = lambda **kw: [kw.get(k, c[k]) for k in ('kv_cache', 'weights', 'context_lens', 'block_table')] + \
        [kw.get('meta', meta), kw.get('max_context_len', c['max_context_len'])]
    f = deep_gemm.fp8_fp4_paged_mqa_logits
    # Scales: wrong dtype, wrong shape, wrong device
    with pytest.raises(TypeError, match=r'`q\[1\] \(q_sf\)` must have dtype torch.int32'):
        f((q, sf.float()), *rest())
    with pytest.raises(ValueError, match=r'q_sf\) must be \[B, next_n, H\]'):
        f((q, sf[:, :, :32].contiguous()), *rest())
    with pytest.raises(ValueError, match=r'q_sf\) must be \[B, next_n, H\]'):
        f((q, sf[:, 0]), *rest())
    with pytest.raises(ValueError, match='must be on'):
        f((q, sf.cpu()), *rest())
    # Odd / unsupported D
    with pytest.raises(ValueError, match='head dim D one of'):
        f((torch.zeros(4, 1, 64, 33, dtype=torch.int8, device='cuda'), sf), *rest())
    with pytest.raises(ValueError, match='head dim D one of'):
        f((torch.zeros(4, 1, 64, 16, dtype=torch.int8, device='cuda'), sf), *rest())
    # q dtype: FP8 q with scales; packed int8 q without scales
    with pytest.raises(TypeError, match='FP4 `q`'):
        f((torch.zeros(4, 1, 64, 64, device='cuda').to(torch.float8_e4m3fn), sf), *rest())
    with pytest.raises(TypeError, match='needs its scales'):
        f((q, None), *rest())
    # FP4 q with an FP8 cache (D + 4 bytes per token), and FP8 q with this FP4 cache
    fp8_cache = torch.zeros(8, 64, 1, 132, dtype=torch.uint8, device='cuda')
    with pytest.raises(ValueError, match='FP8 cache'):
        f((q, sf), *rest(kv_cache=fp8_cache))
    with pytest.raises(TypeError, match='FP4 cache of dtype torch.uint8'):
        f((q, sf), *rest(kv_cache=fp8_cache.view(torch.float8_e4m3fn)))
    q8 = torch.zeros(4, 1, 64, 128, device='cuda').to(torch.float8_e4m3fn)
    with pytest.raises(ValueError, match='FP4 cache'):
        f((q8, None), *rest())
    with pytest.raises(ValueError, match='FP4 cache'):
        deep_gemm.fp8_paged_mqa_logits(q8, *rest())
    # Weights / lengths / block table / metadata as for FP8
    with pytest.raises(ValueError, match='weights'):
        f((q, sf), *rest(weights=c['weights'][:, :32]))
    with pytest.raises(ValueError, match='max_context_len'):
        f((q, sf), *rest(max_context_len=100))
    with pytest.raises(ValueError, match='get_num_sms'):
        f((q, sf), *rest(meta=torch.zeros(deep_gemm.get_num_sms() + 3, 2, dtype=torch.int32, device='cuda')))
    with pytest.raises(TypeError, match='logits_dtype'):
        f((q, sf), *rest(), logits_dtype=torch.float16)


# ------------------------------------------------------------------------------------------------------ CPU tests
def _have_ext():
    return deep_gemm._C is not None and hasattr(deep_gemm._C, 'fp8_fp4_paged_mqa_logits')


@pytest.mark.skipif(not _have_ext(), reason='deep_gemm._C is not built')
def test_fp4_cpu_tensors_rejected():
    q = torch.zeros(2, 1, 64, 64, dtype=torch.int8)
    sf = torch.zeros(2, 1, 64, dtype=torch.int32)
    with pytest.raises(ValueError, match='fp8_fp4_paged_mqa_logits: `q` must be a CUDA tensor'):
        deep_gemm.fp8_fp4_paged_mqa_logits((q, sf), torch.zeros(4, 64, 1, 68, dtype=torch.uint8), torch.zeros(2, 64),
                                           torch.ones(2, 1, dtype=torch.int32), torch.zeros(2, 4, dtype=torch.int32),
                                           torch.zeros(5, 2, dtype=torch.int32), 256)
    with pytest.raises(TypeError, match='`q` must be a tuple'):
        deep_gemm.fp8_fp4_paged_mqa_logits((q, sf, sf), torch.zeros(4, 64, 1, 68, dtype=torch.uint8),
                                           torch.zeros(2, 64), torch.ones(2, 1, dtype=torch.int32),
                                           torch.zeros(2, 4, dtype=torch.int32), torch.zeros(5, 2, dtype=torch.int32),
                                           256)


@pytest.mark.skipif(not _have_ext(), reason='deep_gemm._C is not built')
def test_fp4_enumerated_configs():
    for target in ('sm_120a', 'sm_121a', 'sm_90a', 'sm_89'):
        cfgs = [c for c in deep_gemm._C.list_kernel_configs(target)
                if c['family'] == 'paged_mqa_logits' and c['description'].startswith('FP4')]
        native = [c for c in cfgs if 'fp4_native' in c['description']]
        portable = [c for c in cfgs if 'fp4_portable' in c['description']]
        assert len(portable) == 16, (target, len(portable))
        # q in shared memory exactly for the portable H = 64, D = 128 configs (one per block_kv)
        q_smem = [c for c in cfgs if c['description'].endswith('q=smem')]
        assert len(q_smem) == 2 and all('H=64 D=128 ' in c['description'] for c in q_smem)
        assert all(c in portable for c in q_smem)
        assert len(native) == (16 if target in ('sm_120a', 'sm_121a') else 0), (target, len(native))
        assert all(c['symbol'] == 'sm120_fp4_paged_mqa_logits' for c in cfgs)
        assert all(c['expected_sass'] == ['OMMA.SF.16864'] for c in native)
        assert all(c['expected_sass'] == ['HMMA.16816.F32.BF16'] for c in portable)
        assert all(c['dynamic_smem'] <= 101376 or target == 'sm_90a' for c in cfgs)
