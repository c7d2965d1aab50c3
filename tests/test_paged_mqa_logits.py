"""Paged MQA logits (CONTRACT.md §2.2-2.4, §5): metadata, FP8 logits, clean_logits, varlen, graphs, bad inputs.

GPU tests compare against a float32 PyTorch reference computed from the dequantized cache; only the columns
j < context_lens[b, t] are compared (exactly -inf past them with clean_logits=True).
"""
import os

import pytest
import torch

import deep_gemm
from deep_gemm.testing import calc_diff

from paged_mqa_logits_common import (assert_deterministic, ceil_div, check_buffer, check_varlen,
                                     check_written_and_clean, fill_block_table, make_lengths, mma_cross_check_mechanism,
                                     paged_reference, run_fp8_fp4, valid_mask)

gpu = pytest.mark.gpu


# ------------------------------------------------------------------------------------------------------ helpers
# (shared with the FP4 tests: tests/paged_mqa_logits_common.py)
def make_pool(num_pages, block_kv, head_dim, pad_bytes=0, misalign=0, seed=0):
    """A paged FP8 cache: returns (kv_cache view, keys float [P, bkv, D], scales float [P, bkv])."""
    g = torch.Generator(device='cuda').manual_seed(seed)
    payload = block_kv * (head_dim + 4)
    stride = payload + pad_bytes
    raw = torch.randint(0, 256, (num_pages * stride + misalign + 64,), dtype=torch.uint8, device='cuda', generator=g)
    pool = raw[misalign:misalign + num_pages * stride].view(num_pages, stride)
    keys = torch.randn(num_pages, block_kv, head_dim, device='cuda', generator=g).to(torch.float8_e4m3fn)
    scales = torch.rand(num_pages, block_kv, device='cuda', generator=g) * 0.1 + 0.01
    pool[:, :block_kv * head_dim] = keys.view(torch.uint8).reshape(num_pages, -1)
    pool[:, block_kv * head_dim:payload] = scales.view(torch.uint8).reshape(num_pages, -1)
    kv_cache = pool[:, :payload].view(num_pages, block_kv, 1, head_dim + 4)
    return kv_cache, keys.float(), scales


def make_case(B, next_n, H, D, block_kv, max_len, *, zero_frac=0.2, one_d=False, pad_bytes=0, misalign=0,
              bf16=False, weights_pad=0, extra_cols=0, seed=0):
    g = torch.Generator(device='cuda').manual_seed(seed + 1)
    context_lens, ctx2d, pages_per_req, max_pages = make_lengths(g, B, next_n, max_len, zero_frac, one_d, block_kv,
                                                                 extra_cols)
    num_pages = sum(pages_per_req) + 7
    kv_cache, keys, scales = make_pool(num_pages, block_kv, D, pad_bytes, misalign, seed)
    perm = torch.randperm(num_pages, device='cuda', generator=g).int()
    # Garbage past each request's last page: huge, negative and out-of-pool values the kernel must never read
    bt_full = torch.randint(num_pages + 1000, 2 ** 31 - 1, (B, max_pages + 5), device='cuda', generator=g).int()
    bt_full[:, 1::3] = -123456
    block_table = bt_full[:, :max_pages]
    fill_block_table(block_table, perm, pages_per_req)
    q = torch.randn(B, next_n, H, D, device='cuda', generator=g).to(torch.float8_e4m3fn)
    w_full = torch.randn(B * next_n, H + weights_pad, device='cuda', generator=g)
    weights = w_full[:, :H]
    if bf16:
        weights = weights.bfloat16()
    max_context_len = max_pages * block_kv if extra_cols else max_len
    return dict(q=q, kv_cache=kv_cache, weights=weights, context_lens=context_lens, block_table=block_table,
                ctx2d=ctx2d, keys=keys, scales=scales, max_context_len=max_context_len, block_kv=block_kv)


def reference(c):
    """float32 logits [B * n, max_context_len]; NaN where undefined."""
    return paged_reference(c, c['q'].float(), c['keys'], c['weights'].float(), scales=c['scales'])


def run(c, meta=None, clean_logits=False, logits_dtype=torch.float32, indices=None, fp4_api=True):
    if fp4_api:
        return run_fp8_fp4(c, (c['q'], None), meta, clean_logits=clean_logits, logits_dtype=logits_dtype,
                           indices=indices)
    if meta is None:
        meta = deep_gemm.get_paged_mqa_logits_metadata(c['context_lens'], c['block_kv'], deep_gemm.get_num_sms())
    return deep_gemm.fp8_paged_mqa_logits(c['q'], c['kv_cache'], c['weights'], c['context_lens'], c['block_table'],
                                          meta, c['max_context_len'], clean_logits, indices=indices)


def check(c, out, logits_dtype=torch.float32, clean=False):
    ref = reference(c)
    mask = valid_mask(c)
    check_buffer(c, out, c['q'].shape[0] * c['q'].shape[1], logits_dtype)
    got = out.float()[mask]
    assert torch.isfinite(got).all(), 'non-finite logits in the valid region'
    if got.numel():
        diff = calc_diff(got, ref[mask])
        assert diff < 1e-5, f'calc_diff {diff}'
    if clean:
        inv = out.float()[~mask]
        assert (inv == float('-inf')).all(), 'clean_logits must write -inf past each row'


# ------------------------------------------------------------------------------------------------------ metadata
def metadata_model(ctx, block_kv, num_sms):
    """The schedule as documented in smxx_paged_mqa_logits_metadata.cuh, in Python."""
    lens = ctx if ctx.dim() == 1 else ctx.max(dim=1).values if ctx.shape[1] else torch.zeros_like(ctx[:, 0])
    pages = [max(0, ceil_div(int(x), block_kv)) if int(x) > 0 else 0 for x in lens.tolist()]
    B = len(pages)
    incl, acc = [], 0
    for p in pages:
        acc += p
        incl.append(acc)
    W = acc
    out = []
    for s in range(num_sms):
        t = s * W // num_sms
        if t >= W:
            out.append((B, 0))
            continue
        lo = next(i for i, v in enumerate(incl) if v > t)
        out.append((lo, t - (incl[lo] - pages[lo])))
    out.append((B, 0))
    return torch.tensor(out, dtype=torch.int32)


@gpu
@pytest.mark.parametrize('B,n,one_d,num_sms,block_kv', [
    (1, 1, False, 132, 64), (7, 2, False, 3, 32), (4096, 1, False, 132, 64), (5000, 3, False, 188, 64),
    (3000, 2, True, 48, 32), (64, 1, False, 1, 64), (0, 1, False, 16, 64), (2500, 1, True, 1100, 64)])
def test_metadata_matches_model(B, n, one_d, num_sms, block_kv):
    g = torch.Generator(device='cuda').manual_seed(B + n)
    ctx = torch.randint(-5, 70000, (B,) if one_d else (B, n), device='cuda', generator=g).int()
    if B:
        ctx.view(-1)[::5] = 0
    meta = deep_gemm.get_paged_mqa_logits_metadata(ctx, block_kv, num_sms)
    assert meta.shape == (num_sms + 1, 2) and meta.dtype == torch.int32 and meta.is_contiguous()
    assert meta.device == ctx.device
    assert torch.equal(meta.cpu(), metadata_model(ctx.cpu(), block_kv, num_sms))


@gpu
def test_metadata_all_zero_and_indices():
    ctx = torch.zeros(10, 1, dtype=torch.int32, device='cuda')
    meta = deep_gemm.get_paged_mqa_logits_metadata(ctx, 64, 8, indices=torch.arange(10, device='cuda').int())
    assert torch.equal(meta.cpu(), torch.tensor([[10, 0]] * 9, dtype=torch.int32))


def _metadata_cases():
    # (B, n, layout, num_sms, block_kv, max_len): register path (B <= 4096) and segment-walk path (B > 4096); 16-byte
    # loads ([B], [B, 1]) and scalar ones (misaligned start, strided rows, n > 1); shift (power-of-two block_kv) and
    # division; 32-bit split math and the 64-bit one (W * (num_sms + 1) >= 2^32: block_kv = 1 or huge lengths)
    return [
        (4096, 1, '2d', 132, 64, 65536), (4096, 1, '1d', 132, 64, 65536), (4095, 1, '1d', 132, 48, 70000),
        (4096, 1, 'misaligned', 132, 64, 65536), (4096, 1, 'strided', 132, 64, 65536), (4096, 2, '2d', 132, 64, 65536),
        (2048, 1, '1d', 132, 64, 65536), (2049, 3, '2d', 77, 32, 9000), (9000, 1, '1d', 132, 64, 65536),
        (9000, 1, 'misaligned', 1100, 7, 50000), (4000, 1, '1d', 132, 1, 70000), (6000, 2, '2d', 188, 1, 70000),
        (3000, 1, '1d', 132, 1, 2 ** 31 - 1), (5000, 1, '1d', 1000, 64, 2 ** 31 - 1), (3, 1, '1d', 5000, 64, 300),
        (4096, 1, 'zeros', 132, 64, 1), (2, 1, '1d', 1, 1, 2 ** 31 - 1), (17, 1, '1d', 2, 64, 65536),
    ]


def _metadata_ctx(B, n, layout, max_len, seed):
    g = torch.Generator(device='cuda').manual_seed(seed)
    rows = torch.randint(-3, max_len, (B, n), device='cuda', generator=g, dtype=torch.int64).int()
    if B:
        rows.view(-1)[::7] = 0
    if layout == '1d':
        return rows[:, 0].contiguous()
    if layout == 'misaligned':   # a [B] view starting 4 bytes into its storage: no 16-byte loads
        buf = torch.empty(B + 1, dtype=torch.int32, device='cuda')
        buf[1:] = rows[:, 0]
        return buf[1:]
    if layout == 'strided':      # [B, 1] rows 8 bytes apart
        buf = torch.zeros(B, 2, dtype=torch.int32, device='cuda')
        buf[:, 0] = rows[:, 0]
        return buf[:, :1]
    if layout == 'zeros':
        return torch.zeros(B, n, dtype=torch.int32, device='cuda')
    return rows.contiguous()


@gpu
@pytest.mark.parametrize('B,n,layout,num_sms,block_kv,max_len', _metadata_cases())
def test_metadata_layouts_match_model(B, n, layout, num_sms, block_kv, max_len):
    ctx = _metadata_ctx(B, n, layout, max_len, seed=B * 31 + n)
    meta = deep_gemm.get_paged_mqa_logits_metadata(ctx, block_kv, num_sms)
    assert meta.shape == (num_sms + 1, 2) and meta.dtype == torch.int32 and meta.is_contiguous()
    expect = metadata_model(ctx.cpu(), block_kv, num_sms)
    # Every element compared (the output is a fresh buffer; poison it and run again to prove each is written)
    assert torch.equal(meta.cpu(), expect)
    meta.fill_(-7)
    del meta
    again = deep_gemm.get_paged_mqa_logits_metadata(ctx, block_kv, num_sms)
    assert torch.equal(again.cpu(), expect)


@gpu
def test_metadata_deterministic_and_graph():
    num_sms = deep_gemm.get_num_sms()
    ctx = _metadata_ctx(4096, 1, '2d', 65536, seed=5)
    first = deep_gemm.get_paged_mqa_logits_metadata(ctx, 64, num_sms)
    for _ in range(20):
        assert torch.equal(deep_gemm.get_paged_mqa_logits_metadata(ctx, 64, num_sms), first)
    assert torch.equal(first.cpu(), metadata_model(ctx.cpu(), 64, num_sms))
    # Captured once, replayed on new lengths written into the same buffer
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        deep_gemm.get_paged_mqa_logits_metadata(ctx, 64, num_sms)
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = deep_gemm.get_paged_mqa_logits_metadata(ctx, 64, num_sms)
    for seed in (6, 7):
        ctx.copy_(_metadata_ctx(4096, 1, '2d', 65536 if seed == 6 else 300, seed=seed))
        out.fill_(-1)
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(out.cpu(), metadata_model(ctx.cpu(), 64, num_sms))


# ------------------------------------------------------------------------------------------------------ logits
SWEEP = [
    # H, D, block_kv, next_n, extra options
    (64, 128, 64, 1, {}),
    (64, 128, 64, 2, dict(one_d=True)),
    (64, 128, 64, 3, dict(bf16=True)),
    (64, 128, 64, 4, dict(pad_bytes=16)),
    (64, 128, 32, 1, dict(pad_bytes=4, misalign=4)),
    (64, 128, 32, 6, {}),
    (32, 64, 64, 2, dict(weights_pad=3)),
    (32, 128, 32, 4, dict(one_d=True, pad_bytes=12)),
    (16, 32, 64, 1, dict(bf16=True, pad_bytes=4)),
    (16, 128, 64, 3, {}),
    (8, 64, 32, 2, dict(misalign=4, pad_bytes=4)),
    (8, 32, 32, 1, dict(one_d=True)),
    (8, 128, 64, 4, dict(bf16=True, one_d=True)),
    (64, 32, 64, 2, dict(extra_cols=2)),
    (16, 64, 32, 16, {}),
]


@gpu
@pytest.mark.parametrize('H,D,block_kv,next_n,opts', SWEEP)
def test_paged_logits_sweep(H, D, block_kv, next_n, opts, monkeypatch):
    bf16 = opts.get('bf16', False)
    c = make_case(5, next_n, H, D, block_kv, 700, seed=H + D + block_kv + next_n, **opts)
    check_written_and_clean(c, run, check, torch.bfloat16 if bf16 else torch.float32, monkeypatch)


@gpu
@pytest.mark.parametrize('H,D,block_kv,next_n', [(64, 128, 64, 1), (64, 128, 32, 3), (8, 32, 32, 2), (32, 64, 64, 5)])
def test_fp8_mma_forms(H, D, block_kv, next_n, monkeypatch):
    # DG_SM120_FP8_MMA: `plain` (the one form off sm_120a/121a, where ptxas may emulate it) and `block_scaled` (the
    # default; the sm_120a/121a form where it exists, else the same plain config) must each match the reference and
    # agree to the cross-check's tolerance (the same products: bit-identical by design); an invalid value is an error
    c = make_case(4, next_n, H, D, block_kv, 900, seed=H + D + next_n)
    monkeypatch.setenv('DG_DEBUG_POISON_OUTPUTS', '1')
    outs = {}
    for form in ('plain', 'block_scaled'):
        monkeypatch.setenv('DG_SM120_FP8_MMA', form)
        outs[form] = run(c)
        check(c, outs[form])
    mask = valid_mask(c)
    plain, scaled = outs['plain'][mask].double(), outs['block_scaled'][mask].double()
    diff, magnitude = (plain - scaled).abs().max().item(), plain.abs().max().item()
    assert diff <= 1e-6 * magnitude, \
        f'H={H} D={D} block_kv={block_kv} next_n={next_n}: the FP8 forms differ by {diff} (max |logit| {magnitude})'
    monkeypatch.setenv('DG_SM120_FP8_MMA', 'fast')
    with pytest.raises(ValueError, match="DG_SM120_FP8_MMA must be 'plain' or 'block_scaled'; got 'fast'"):
        run(c)


@gpu
def test_bf16_logits_with_float_weights_and_legacy_api():
    c = make_case(6, 2, 64, 128, 64, 1000, seed=11)
    check(c, run(c, logits_dtype=torch.bfloat16), torch.bfloat16)
    check(c, run(c, fp4_api=False), torch.float32)


@gpu
def test_determinism_20_calls():
    assert_deterministic(make_case(9, 2, 64, 128, 64, 3000, seed=3), run, check)


@gpu
def test_varlen_indices():
    # Tokens of one request share a block-table row and see increasing context lengths
    c = make_case(3, 1, 64, 128, 64, 900, zero_frac=0.0, seed=5)
    check_varlen(c, run, check, [3, 1, 4],
                 lambda T, g: dict(q=torch.randn(T, 1, 64, 128, device='cuda', generator=g).to(torch.float8_e4m3fn)))


@gpu
def test_caller_patterns():
    # DeepSeek-V4: [T, 1] lengths with zeros, H=64, D=128, block_kv=64, max_context_len = block_table width * 64,
    # positional 8-argument legacy call, metadata reused across "layers"
    c = make_case(12, 1, 64, 128, 64, 2000, zero_frac=0.4, extra_cols=3, seed=21)
    assert c['max_context_len'] == c['block_table'].shape[1] * 64
    meta = deep_gemm.get_paged_mqa_logits_metadata(c['context_lens'], 64, deep_gemm.get_num_sms())
    g = torch.Generator(device='cuda').manual_seed(4)
    for layer in range(3):
        c['q'] = torch.randn(c['q'].shape, device='cuda', generator=g).to(torch.float8_e4m3fn)
        c['weights'] = torch.randn(c['weights'].shape, device='cuda', generator=g)
        out = deep_gemm.fp8_paged_mqa_logits(c['q'], c['kv_cache'], c['weights'], c['context_lens'],
                                             c['block_table'], meta, c['max_context_len'], False)
        check(c, out)
    # V3.2: 1-D lengths with next_n = 2
    c = make_case(8, 2, 64, 128, 64, 1500, one_d=True, seed=22)
    check(c, run(c, fp4_api=False))


@gpu
def test_cuda_graph_replay():
    H, D, bkv, n = 64, 128, 64, 2
    c = make_case(6, n, H, D, bkv, 1200, seed=31)
    c2 = make_case(6, n, H, D, bkv, 1200, seed=32)
    # Same pool and queries, new lengths and block table for the replay
    c2.update(q=c['q'], kv_cache=c['kv_cache'], keys=c['keys'], scales=c['scales'], weights=c['weights'])
    c2['block_table'] = c['block_table'].clone()
    c2['context_lens'] = torch.minimum(c2['context_lens'], c['context_lens'])
    c2['ctx2d'] = c2['context_lens']
    num_sms = deep_gemm.get_num_sms()
    ctx_s = c['context_lens'].clone()
    meta_s = deep_gemm.get_paged_mqa_logits_metadata(ctx_s, bkv, num_sms)
    args = (c['q'], c['kv_cache'], c['weights'])
    run(c)  # compile outside the capture
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            deep_gemm.fp8_paged_mqa_logits(*args, ctx_s, c['block_table'], meta_s, c['max_context_len'])
    torch.cuda.current_stream().wait_stream(s)
    graph_a, graph_b = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph_a):
        out_a = deep_gemm.fp8_paged_mqa_logits(*args, ctx_s, c['block_table'],
                                               deep_gemm.get_paged_mqa_logits_metadata(ctx_s, bkv, num_sms),
                                               c['max_context_len'], True)
    with torch.cuda.graph(graph_b):
        out_b = deep_gemm.fp8_paged_mqa_logits(*args, ctx_s, c['block_table'], meta_s, c['max_context_len'])
    for case in (c, c2, c):
        ctx_s.copy_(case['context_lens'])
        meta_s.copy_(deep_gemm.get_paged_mqa_logits_metadata(case['context_lens'], bkv, num_sms))
        out_a.fill_(float('nan'))
        out_b.fill_(float('nan'))
        graph_a.replay()
        graph_b.replay()
        torch.cuda.synchronize()
        eager = run(case, fp4_api=False)
        mask = valid_mask(case)
        check(case, out_a, clean=True)
        check(case, out_b)
        assert torch.equal(out_a[mask], eager[mask]) and torch.equal(out_b[mask], eager[mask])


@gpu
def test_large_pool_over_4gb():
    H, D, bkv = 64, 128, 64
    num_pages = 33 * 1024 * 1024 // bkv    # 33M tokens x 132 B = 4.4 GB
    payload = bkv * (D + 4)
    raw = torch.empty(num_pages, payload, dtype=torch.uint8, device='cuda')
    used = torch.arange(num_pages - 10, num_pages, device='cuda')
    g = torch.Generator(device='cuda').manual_seed(7)
    keys = torch.randn(10, bkv, D, device='cuda', generator=g).to(torch.float8_e4m3fn)
    scales = torch.rand(10, bkv, device='cuda', generator=g) + 0.1
    raw[used, :bkv * D] = keys.view(torch.uint8).reshape(10, -1)
    raw[used, bkv * D:] = scales.view(torch.uint8).reshape(10, -1)
    # Reference tensors indexed by page id: remap the used pages to 0..9
    bt = torch.tensor([[num_pages - 1, num_pages - 5, num_pages - 3], [num_pages - 10, num_pages - 2, 0]],
                      dtype=torch.int32, device='cuda')
    ctx = torch.tensor([[3 * bkv - 7], [2 * bkv]], dtype=torch.int32, device='cuda')
    q = torch.randn(2, 1, H, D, device='cuda', generator=g).to(torch.float8_e4m3fn)
    w = torch.randn(2, H, device='cuda', generator=g)
    local = bt.clone()
    local[0] -= num_pages - 10
    local[1, :2] -= num_pages - 10
    c = dict(q=q, kv_cache=raw.view(num_pages, bkv, 1, D + 4), weights=w, context_lens=ctx, block_table=bt,
             ctx2d=ctx, keys=keys.float(), scales=scales, max_context_len=3 * bkv, block_kv=bkv)
    out = run(c)
    c_ref = dict(c, block_table=local)
    mask = valid_mask(c)
    diff = calc_diff(out[mask], reference(c_ref)[mask])
    assert diff < 1e-5
    del raw


@gpu
def test_mma_cross_check_mechanism(monkeypatch):
    # The shared sm_120 MMA-form cross-check (DG_SM120_MMA_CHECK): `force` checks even the portable form (so the
    # H100 exercises it) and records a pass; `force-fail` perturbs the candidate, which must warn, record a failure
    # and leave the results correct (the portable twin is used)
    c = make_case(3, 1, 32, 64, 32, 300, seed=41)
    mma_cross_check_mechanism(c, run, check, monkeypatch, 'paged', 'H=32 D=64 block_kv=32', once_per_config=True)


# ------------------------------------------------------------------------------------------------------ bad inputs
@gpu
def test_bad_inputs_gpu():
    c = make_case(4, 1, 64, 128, 64, 500, zero_frac=0.0, seed=51)
    meta = deep_gemm.get_paged_mqa_logits_metadata(c['context_lens'], 64, deep_gemm.get_num_sms())
    args = lambda **kw: [kw.get(k, c[k]) for k in ('q', 'kv_cache', 'weights', 'context_lens', 'block_table')] + \
        [kw.get('meta', meta), kw.get('max_context_len', c['max_context_len'])]
    f = deep_gemm.fp8_paged_mqa_logits
    with pytest.raises(TypeError, match='`q` must have dtype'):
        f(*args(q=c['q'].bfloat16()))
    with pytest.raises(ValueError, match='`q` must be 4-D'):
        f(*args(q=c['q'][:, 0]))
    with pytest.raises(ValueError, match='`q` must be contiguous'):
        f(*args(q=c['q'].transpose(2, 3)))
    with pytest.raises(ValueError, match='get_num_sms'):
        f(*args(meta=torch.zeros(deep_gemm.get_num_sms() + 3, 2, dtype=torch.int32, device='cuda')))
    with pytest.raises(ValueError, match='block_table'):
        f(*args(block_table=c['block_table'][:, :2]))
    with pytest.raises(ValueError, match='max_context_len'):
        f(*args(max_context_len=100))
    with pytest.raises(ValueError, match='weights'):
        f(*args(weights=c['weights'][:, :32]))
    with pytest.raises(ValueError, match='number of heads'):
        f(*args(q=c['q'][:, :, :48].contiguous(), weights=c['weights'][:, :48]))
    # FP8 q with scales is the FP4 form: q must then be packed int8
    with pytest.raises(TypeError, match='FP4 `q`'):
        deep_gemm.fp8_fp4_paged_mqa_logits((c['q'], torch.zeros(1, dtype=torch.int32, device='cuda')),
                                           *args()[1:])
    # FP4 q with this FP8 cache
    q4 = torch.zeros(4, 1, 64, 64, dtype=torch.int8, device='cuda')
    sf4 = torch.zeros(4, 1, 64, dtype=torch.int32, device='cuda')
    with pytest.raises(ValueError, match='FP8 cache'):
        deep_gemm.fp8_fp4_paged_mqa_logits((q4, sf4), *args()[1:])
    # Packed int8 q without scales
    with pytest.raises(TypeError, match='needs its scales'):
        deep_gemm.fp8_fp4_paged_mqa_logits((q4, None), *args()[1:])
    with pytest.raises(ValueError, match='next_n'):
        q = torch.zeros(4, 17, 64, 128, device='cuda').to(torch.float8_e4m3fn)
        f(q, c['kv_cache'], torch.zeros(68, 64, device='cuda'), torch.zeros(4, 17, dtype=torch.int32, device='cuda'),
          c['block_table'], meta, 100)


# ------------------------------------------------------------------------------------------------------ CPU tests
def _have_ext():
    return deep_gemm._C is not None and hasattr(deep_gemm._C, 'fp8_paged_mqa_logits')


@pytest.mark.skipif(not _have_ext(), reason='deep_gemm._C is not built')
def test_cpu_tensors_rejected():
    ctx = torch.ones(2, 1, dtype=torch.int32)
    with pytest.raises(ValueError, match='get_paged_mqa_logits_metadata: `context_lens` must be a CUDA tensor'):
        deep_gemm.get_paged_mqa_logits_metadata(ctx, 64, 4)
    q = torch.zeros(2, 1, 64, 128).to(torch.float8_e4m3fn)
    with pytest.raises(ValueError, match='fp8_paged_mqa_logits: `q` must be a CUDA tensor'):
        deep_gemm.fp8_paged_mqa_logits(q, torch.zeros(4, 64, 1, 132, dtype=torch.uint8), torch.zeros(2, 64), ctx,
                                       torch.zeros(2, 4, dtype=torch.int32), torch.zeros(5, 2, dtype=torch.int32), 256)
    with pytest.raises(ValueError, match='fp8_fp4_paged_mqa_logits: `q` must be a CUDA tensor'):
        deep_gemm.fp8_fp4_paged_mqa_logits((q, None), torch.zeros(4, 64, 1, 132, dtype=torch.uint8),
                                           torch.zeros(2, 64), ctx, torch.zeros(2, 4, dtype=torch.int32),
                                           torch.zeros(5, 2, dtype=torch.int32), 256)


@pytest.mark.skipif(not _have_ext(), reason='deep_gemm._C is not built')
def test_enumerated_configs():
    for target in ('sm_120a', 'sm_121a'):
        cfgs = [c for c in deep_gemm._C.list_kernel_configs(target) if c['family'].startswith('paged_mqa_logits')]
        logits = [c for c in cfgs if c['family'] == 'paged_mqa_logits']
        fp8 = [c for c in logits if c['description'].startswith('FP8')]
        fp4 = [c for c in logits if c['description'].startswith('FP4')]
        # FP8: (H, D, block_kv) x 2 MMA forms
        assert len(fp8) == 4 * 3 * 2 * 2, len(fp8)
        # FP4: (H, D in {64, 128}, block_kv) x {portable, native}; the portable H = 64, D = 128 ones keep q in
        # shared memory
        assert len(fp4) == 4 * 2 * 2 * 2, len(fp4)
        assert len(logits) == len(fp8) + len(fp4)
        assert any(c['family'] == 'paged_mqa_logits_metadata' for c in cfgs)
        assert all(c['dynamic_smem'] <= 101376 for c in logits)
        assert {tuple(c['expected_sass']) for c in fp8} == {('QMMA.SF',), ('QMMA.16832',)}
        assert {tuple(c['expected_sass']) for c in fp4} == {('OMMA.SF.16864',), ('HMMA.16816.F32.BF16',)}
        assert all(('fp4_native' in c['description']) == (c['expected_sass'] == ['OMMA.SF.16864']) for c in fp4)
        # One (H, D, block_kv, MMA form) is one config; 4 consumer warps and a producer warp everywhere
        assert len({c['description'] for c in logits}) == len(logits)
        assert all(c['num_threads'] == 160 for c in logits)
        assert all('paged_mqa_logits' in c['symbol'] for c in logits)


@pytest.mark.skipif(not _have_ext(), reason='deep_gemm._C is not built')
@pytest.mark.parametrize('sm120_mode', [False, True])
def test_enumerated_configs_sm90a(sm120_mode):
    # sm_90a (the H100 test path) runs the sm_120 kernels' portable forms only: FP8 through the plain mma.sync (which
    # ptxas emulates with F16 HMMAs), FP4 through the portable bf16 form; one config per (H, D, block_kv)
    logits = [c for c in deep_gemm._C.list_kernel_configs('sm_90a', sm120_mode) if c['family'] == 'paged_mqa_logits']
    fp8 = [c for c in logits if c['description'].startswith('FP8')]
    fp4 = [c for c in logits if c['description'].startswith('FP4')]
    assert len(fp8) == 4 * 3 * 2 and len(fp4) == 4 * 2 * 2, (len(fp8), len(fp4))
    assert all(c['description'].endswith('mma=plain') and c['expected_sass'] == ['HMMA.16816.F32'] for c in fp8), \
        [c['description'] for c in fp8]
    assert all('mma=fp4_portable' in c['description'] for c in fp4)
    assert all(c['num_threads'] == 160 for c in logits)
    assert len({c['description'] for c in logits}) == len(logits)
    if sm120_mode:
        assert all(c['dynamic_smem'] <= 101376 for c in logits)


@pytest.mark.skipif(not _have_ext() or not os.environ.get('DG_TEST_COMPILE_PAGED'),
                    reason='set DG_TEST_COMPILE_PAGED=1 (test_compile.py compiles every config in CI)')
def test_compile_one_config_sm120a():
    cfgs = deep_gemm._C.list_kernel_configs('sm_120a')
    i = next(i for i, c in enumerate(cfgs) if c['family'] == 'paged_mqa_logits' and 'H=64 D=128 block_kv=64'
             in c['description'] and 'block_scaled' in c['description'])
    r = deep_gemm._C.compile_kernel_config('sm_120a', i)
    assert r['spill_stores'] == 0 and r['stack_frame'] == 0 and r['total_smem'] <= 101376
