"""Helpers shared by the paged MQA logits tests: tests/test_paged_mqa_logits.py (FP8 cache) and
tests/test_fp4_paged_mqa_logits.py (FP4 cache).

Lengths and block tables for a case, the per-page reference loop, the valid-column mask, the call through
`fp8_fp4_paged_mqa_logits`, the layout checks of a logits buffer, the varlen (`indices`) lengths and test body,
the 20-call determinism check, and the MMA-form cross-check test body.
"""
import pytest
import torch

import deep_gemm


def ceil_div(a, b):
    return (a + b - 1) // b


def make_lengths(g, B, next_n, max_len, zero_frac, one_d, block_kv, extra_cols):
    """Random context lengths (request 0 at `max_len`, a `zero_frac` share empty): returns (context_lens as passed,
    per-row lengths [B, next_n], pages per request, block-table width in pages)."""
    lens = torch.randint(0, max_len + 1, (B,), device='cuda', generator=g)
    lens[torch.rand(B, device='cuda', generator=g) < zero_frac] = 0
    if B > 0:
        lens[0] = max_len
    if one_d:
        context_lens = lens.int()
        ctx2d = (lens[:, None] - next_n + 1 + torch.arange(next_n, device='cuda')[None]).clamp(min=0).int()
    else:
        ctx2d = (lens[:, None] - torch.randint(0, 3, (B, next_n), device='cuda', generator=g)).clamp(min=0).int()
        context_lens = ctx2d.contiguous()
    pages_per_req = [ceil_div(int(x), block_kv) for x in ctx2d.max(dim=1).values.tolist()] if B else []
    max_pages = max(1, ceil_div(max_len, block_kv)) + extra_cols
    return context_lens, ctx2d, pages_per_req, max_pages


def fill_block_table(block_table, perm, pages_per_req):
    """Request b's pages: the next `pages_per_req[b]` entries of `perm`; the rest of each row is left as it is."""
    k = 0
    for b, n in enumerate(pages_per_req):
        block_table[b, :n] = perm[k:k + n]
        k += n


def paged_reference(c, q, keys, w, scales=None, dtype=None):
    """Logits [B * n, max_context_len] of `dtype` (None: torch's default) from q [B, n, H, D] and `keys` [P, bkv, D]
    indexed through the block table (times `scales` [P, bkv] where given); NaN where undefined."""
    ctx2d, bt = c['ctx2d'], c['block_table']
    B, n, H, D = q.shape
    bkv, width = c['block_kv'], c['max_context_len']
    out = torch.full((B * n, width), float('nan'), dtype=dtype, device='cuda')
    for b in range(B):
        L = int(ctx2d[b].max())
        if L == 0:
            continue
        pages = bt[b, :ceil_div(L, bkv)].long()
        k = keys[pages].reshape(-1, D)[:L]
        scores = torch.einsum('thd,jd->thj', q[b], k).relu()
        logits = (scores * w[b * n:(b + 1) * n, :, None]).sum(1)
        if scales is not None:
            logits = logits * scales[pages].reshape(-1)[:L][None]
        for t in range(n):
            lt = int(ctx2d[b, t])
            out[b * n + t, :lt] = logits[t, :lt]
    return out


def valid_mask(c):
    cols = torch.arange(c['max_context_len'], device='cuda')[None]
    return cols < c['ctx2d'].reshape(-1, 1)


def run_fp8_fp4(c, q, meta=None, clean_logits=False, logits_dtype=torch.float32, indices=None):
    """`fp8_fp4_paged_mqa_logits(q, ...)` on case `c`, with fresh metadata unless `meta` is given."""
    if meta is None:
        meta = deep_gemm.get_paged_mqa_logits_metadata(c['context_lens'], c['block_kv'], deep_gemm.get_num_sms())
    return deep_gemm.fp8_fp4_paged_mqa_logits(q, c['kv_cache'], c['weights'], c['context_lens'], c['block_table'],
                                              meta, c['max_context_len'], clean_logits=clean_logits,
                                              logits_dtype=logits_dtype, indices=indices)


def check_buffer(c, out, rows, logits_dtype):
    """Shape, dtype, row stride (padded to 256 columns and 1024 bytes) and the whole buffer behind the view."""
    assert out.shape == (rows, c['max_context_len'])
    assert out.dtype == logits_dtype
    elem = out.element_size()
    expect_stride = ceil_div(ceil_div(c['max_context_len'], 256) * 256, 1024 // elem) * (1024 // elem)
    if out.shape[0] > 1:
        assert out.stride(0) == expect_stride
    # The whole [rows, stride] buffer stays allocated behind the returned columns
    assert out.storage_offset() == 0 and out.untyped_storage().nbytes() >= out.shape[0] * expect_stride * elem


def varlen_lengths(c, reps):
    """Varlen decode: request b's tokens (reps[b] of them) share its block-table row and see increasing lengths
    ending at its length. Returns (indices [T] int32, T, context_lens [T, 1] int32)."""
    idx = torch.repeat_interleave(torch.arange(len(reps), device='cuda'), torch.tensor(reps, device='cuda')).int()
    T = int(sum(reps))
    base = c['ctx2d'][:, 0].repeat_interleave(torch.tensor(reps, device='cuda'))
    offs = torch.cat([torch.arange(r, device='cuda') - (r - 1) for r in reps])
    ctx = (base + offs).clamp(min=0).int().view(T, 1)
    return idx, T, ctx


def assert_deterministic(c, run, check, calls=20):
    """`calls` calls with one metadata tensor: the first is correct, the others equal it bitwise on every valid
    element."""
    meta = deep_gemm.get_paged_mqa_logits_metadata(c['context_lens'], c['block_kv'], deep_gemm.get_num_sms())
    mask = valid_mask(c)
    first = run(c, meta)
    check(c, first)
    for _ in range(calls - 1):
        assert torch.equal(run(c, meta)[mask].view(torch.int32), first[mask].view(torch.int32))


def check_written_and_clean(c, run, check, dtype, monkeypatch):
    """Case `c` with every logits buffer starting as NaN (DG_DEBUG_POISON_OUTPUTS): each valid column must be
    written, and with clean_logits=False nothing past a row's length touched; with clean_logits=True the valid values
    are bitwise the same and the rest exact -inf (`check(..., clean=True)`)."""
    monkeypatch.setenv('DG_DEBUG_POISON_OUTPUTS', '1')
    out = run(c, logits_dtype=dtype)
    check(c, out, dtype)
    mask = valid_mask(c)
    assert torch.isnan(out.float()[~mask]).all(), 'a column past a row\'s context length was written'
    out_clean = run(c, clean_logits=True, logits_dtype=dtype)
    check(c, out_clean, dtype, clean=True)
    view = torch.int16 if dtype == torch.bfloat16 else torch.int32
    assert torch.equal(out_clean[mask].view(view), out[mask].view(view))


def check_varlen(c, run, check, reps, make_q, seed=9):
    """The varlen (`indices`) form of case `c`: request b repeated reps[b] times (`varlen_lengths`), q and weights
    drawn fresh (`make_q(T, generator)` returns the entries of q for the case dict); clean_logits off and on."""
    H, bkv = c['weights'].shape[1], c['block_kv']
    idx, T, ctx = varlen_lengths(c, reps)
    g = torch.Generator(device='cuda').manual_seed(seed)
    v = dict(c)
    v.update(make_q(T, g))
    v.update(weights=torch.randn(T, H, device='cuda', generator=g), context_lens=ctx, ctx2d=ctx,
             block_table=c['block_table'][idx.long()].contiguous())
    meta = deep_gemm.get_paged_mqa_logits_metadata(ctx, bkv, deep_gemm.get_num_sms(), indices=idx)
    check(v, run(v, meta, indices=idx))
    check(v, run(v, meta, indices=idx, clean_logits=True), clean=True)


def mma_cross_check_mechanism(c, run, check, monkeypatch, tag, config, once_per_config=False):
    """The shared sm_120 MMA-form cross-check (DG_SM120_MMA_CHECK) on case `c`: `force` checks even the portable
    form and records one pass (for a config containing `config`; records are those naming `tag`), which, with
    `once_per_config`, a second call does not repeat; `force-fail` perturbs the candidate, which must warn, record a
    failure and leave the results correct (the portable twin is used)."""
    def records():
        return [r for r in deep_gemm._C._mma_cross_check_log() if tag in r[0]]

    monkeypatch.setenv('DG_SM120_MMA_CHECK', 'force')
    deep_gemm._C._mma_cross_check_reset()
    check(c, run(c))
    log = records()
    assert len(log) == 1 and log[0][1] is True and config in log[0][0], log
    if once_per_config:
        check(c, run(c))    # decided once per config
        assert len(records()) == 1
    monkeypatch.setenv('DG_SM120_MMA_CHECK', 'force-fail')
    deep_gemm._C._mma_cross_check_reset()
    with pytest.warns(RuntimeWarning, match='disagrees with its portable twin'):
        out = run(c)
    check(c, out)
    log = records()
    assert len(log) == 1 and log[0][1] is False and log[0][2] > 0, log
    deep_gemm._C._mma_cross_check_reset()
