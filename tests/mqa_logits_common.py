"""Helpers shared by the ragged (prefill) MQA logits tests: tests/test_mqa_logits.py (FP8) and
tests/test_fp4_mqa_logits.py (FP4).

Range generators, masks, the float64 reference, the layout check, the NaN-poison context, and the bodies of the GPU
tests that are the same for both forms. A form is described by a `Family`: its input builder, its call and its check.
"""
import contextlib
import os
import warnings
from typing import Callable, NamedTuple

import pytest
import torch

import deep_gemm
from deep_gemm.testing import assert_bitwise_equal


# ---------------------------------------------------------------------------------------------------------------------
# Inputs, ranges and reference

def _align(x, a):
    return (x + a - 1) // a * a


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


def reference(q, k, w, scale=None, chunk=64):
    """float64 sum_h relu(q[i,h,:] . k[j,:]) * w[i,h] * scale[j] (scale may be None), over all (i, j)."""
    q, k, w = q.double(), k.double(), w.double()
    out = torch.empty(q.shape[0], k.shape[0], dtype=torch.float64, device=q.device)
    for i in range(0, q.shape[0], chunk):
        score = torch.einsum('shd,nd->shn', q[i:i + chunk], k)
        out[i:i + chunk] = (score.relu() * w[i:i + chunk, :, None]).sum(1)
    if scale is not None:
        out *= scale.double()[None, :]
    return out


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


def short_ranges(s, n, seed, max_len=60):
    """Short ranges at random (unaligned) places in a long row: nearly every column of every row is -inf."""
    g = torch.Generator(device='cuda').manual_seed(seed)
    ks = torch.randint(0, max(1, n - max_len), (s, ), device='cuda', generator=g)
    ke = ks + torch.randint(0, max_len + 1, (s, ), device='cuda', generator=g)
    return ks.int(), ke.int()


def fused_clean_ranges(kind, s, n):
    """The ranges of one `fused_clean` case."""
    if kind == 'random':
        return random_ranges(s, n, seed=s + n)
    if kind == 'causal':
        return causal_ranges(s, n)
    if kind == 'zigzag':
        return zigzag_ranges(s, n)
    if kind == 'short':
        return short_ranges(s, n, seed=s * 3 + n)
    if kind == 'empty':
        return (torch.full((s, ), n, dtype=torch.int32, device='cuda'),
                torch.zeros(s, dtype=torch.int32, device='cuda'))
    if kind == 'clamped':                   # every range reaches past both ends: clamped to the whole row
        return (torch.full((s, ), -17, dtype=torch.int32, device='cuda'),
                torch.full((s, ), n + 33, dtype=torch.int32, device='cuda'))
    if kind == 'mixed':                     # full, empty, prefix, suffix and interior ranges, row after row
        i = torch.arange(s, device='cuda')
        ks = torch.where(i % 5 == 0, -3, torch.where(i % 5 == 1, n, torch.where(i % 5 == 2, 0, (i * 37) % n)))
        ke = torch.where(i % 5 == 0, n + 5, torch.where(i % 5 == 1, 0, torch.where(i % 5 == 2, (i * 53) % n + 1,
                         torch.where(i % 5 == 3, n, ks + 7))))
        return ks.int(), ke.int()
    raise ValueError(kind)


# (S, N, H, D, ranges): few query tiles with long rows (each row's -inf columns shared by many key splits), every
# kind of range (clamped, empty, reversed, causal, zig-zag, short, full), N not a multiple of 4 or 8 (scalar tails)
FUSED_CLEAN_CASES = [
    (5, 4001, 64, 128, 'random'),
    (7, 9000, 16, 64, 'short'),
    (3, 5000, 64, 32, 'empty'),
    (20, 20000, 8, 64, 'causal'),
    (40, 3001, 32, 128, 'clamped'),
    (300, 1000, 64, 128, 'random'),
    (250, 1203, 16, 32, 'zigzag'),
    (101, 2999, 8, 128, 'mixed'),
]


def case_ids(cases):
    return [f'S{s}-N{n}-H{h}-D{d}-{kind}' for s, n, h, d, kind in cases]


def fused_clean(fam, s, n, h, d, kind, logits_dtype):
    """clean_logits=True writes the -inf columns inside the logits kernel (one launch, key splits sharing each row's
    -inf columns). Into NaN-poisoned buffers: every valid logit finite and right and every other column of [0, N)
    exactly -inf (check_logits), nothing past N written, the valid logits bitwise those of clean_logits=False, and the
    whole tensor bitwise what the standalone clean pass makes of the clean_logits=False output."""
    inp = fam.make_inputs(s, n, h, d, seed=s * 7 + n + h + d)
    ks, ke = fused_clean_ranges(kind, s, n)
    with poisoned_outputs():
        fused = fam.call(inp, ks, ke, clean=True, logits_dtype=logits_dtype)
        unclean = fam.call(inp, ks, ke, clean=False, logits_dtype=logits_dtype)
    assert fused.dtype == logits_dtype
    mask = fam.check_logits(fused, inp, ks, ke, clean=True)
    assert torch.isnan(storage_rows(fused, s)[:, n:]).all(), 'padding columns past N were written'
    assert_bitwise_equal(fused[mask], unclean[mask], 'valid logits with and without clean_logits')
    assert torch.isnan(unclean[~mask]).all(), 'clean_logits=False wrote outside the valid ranges'
    deep_gemm._C._clean_logits_ragged(unclean, ks, ke)
    assert_bitwise_equal(fused, unclean, 'fused clean against the standalone clean pass')


def check_layout(out, s, width, compressed, logits_dtype):
    elem = out.element_size()
    stride = _align(_align(width, 256), 1024 // elem) if compressed else _align(width + 256, 1024 // elem)
    assert out.shape == (s, width) and out.dtype == logits_dtype
    assert out.stride() == (stride, 1), (out.stride(), stride)


def storage_rows(out, s):
    """The whole [S, row_stride] buffer behind a logits view."""
    stride = out.stride(0)
    return torch.empty(0, dtype=out.dtype, device='cuda').set_(out.untyped_storage())[:s * stride].view(s, stride)


# ---------------------------------------------------------------------------------------------------------------------
# GPU test bodies shared by the FP8 and the FP4 form

class Family(NamedTuple):
    """One input form: `make_inputs(s, n, h, d, seed)` -> dict, `call(inp, ks, ke, clean=..., ...)` -> logits,
    `check_logits(out, inp, ks, ke, clean=...)`, and `graph_keys`, the inputs a CUDA-graph replay refills."""
    make_inputs: Callable
    call: Callable
    check_logits: Callable
    graph_keys: tuple


def new_case(fam, s, n, h, d, seed, ranges_seed):
    """Inputs from `seed` and random ranges from `ranges_seed`."""
    return fam.make_inputs(s, n, h, d, seed=seed), *random_ranges(s, n, seed=ranges_seed)


def causal_with_prefix(fam, prefix_start, **call_kw):
    s, n, h, d = 300, 1000, 64, 128
    inp = fam.make_inputs(s, n, h, d, seed=1)
    ks, ke = causal_ranges(s, n, prefix_start)
    out = fam.call(inp, ks, ke, clean=True, **call_kw)
    fam.check_logits(out, inp, ks, ke, clean=True)


def zigzag_context_parallel(fam, h, d, **call_kw):
    s, n = 250, 1200
    inp = fam.make_inputs(s, n, h, d, seed=2)
    ks, ke = zigzag_ranges(s, n)
    out = fam.call(inp, ks, ke, clean=True, **call_kw)
    fam.check_logits(out, inp, ks, ke, clean=True)


def all_rows_empty_and_tiny(fam):
    h, d = 64, 128
    for s, n in ((1, 1), (3, 40), (70, 5)):
        inp = fam.make_inputs(s, n, h, d, seed=s * n)
        ks = torch.full((s, ), n, dtype=torch.int32, device='cuda')
        ke = torch.zeros(s, dtype=torch.int32, device='cuda')
        out = fam.call(inp, ks, ke, clean=True)
        assert torch.isneginf(out).all()
        ks, ke = random_ranges(s, n, seed=3)
        out = fam.call(inp, ks, ke, clean=True)
        fam.check_logits(out, inp, ks, ke, clean=True)


def few_queries_split_keys(fam):
    # Few query tiles: each tile's key range is split across CTAs
    s, n = 5, 4000
    inp, ks, ke = new_case(fam, s, n, 64, 128, seed=4, ranges_seed=5)
    ks[0], ke[0] = 0, n
    out = fam.call(inp, ks, ke, clean=True)
    fam.check_logits(out, inp, ks, ke, clean=True)


def poisoned(fam, clean):
    """Every logits buffer starts as NaN: each valid column is written (`check_logits`), no padding column past N is,
    and with clean_logits=False no column outside a row's range is either."""
    s, n = 200, 700
    inp, ks, ke = new_case(fam, s, n, 16, 64, seed=8, ranges_seed=9)
    with poisoned_outputs():
        out = fam.call(inp, ks, ke, clean=clean)
    fam.check_logits(out, inp, ks, ke, clean=clean)
    assert torch.isnan(storage_rows(out, s)[:, n:]).all(), 'padding columns past N were written'
    if not clean:
        assert torch.isnan(out[~valid_mask(ks, ke, n)]).all(), 'a masked column was written with clean_logits=False'


def deterministic(fam, logits_dtype):
    s, n, h, d = 257, 1500, 64, 128
    inp = fam.make_inputs(s, n, h, d, seed=10)
    ks, ke = causal_ranges(s, n)
    first = fam.call(inp, ks, ke, clean=True, logits_dtype=logits_dtype)
    for it in range(20):
        assert_bitwise_equal(fam.call(inp, ks, ke, clean=True, logits_dtype=logits_dtype), first, f'call {it}')


def cuda_graph(fam, clean):
    s, n, h, d = 190, 800, 64, 128
    inp, ks, ke = new_case(fam, s, n, h, d, seed=11, ranges_seed=12)
    # Warm up (JIT, MMA-form check) outside the capture, on a side stream as torch recommends
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fam.call(inp, ks, ke, clean=clean)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fam.call(inp, ks, ke, clean=clean)
    # New values in the same input buffers, then replay
    new = fam.make_inputs(s, n, h, d, seed=13)
    for key in fam.graph_keys:
        inp[key].copy_(new[key])
    ks2, ke2 = random_ranges(s, n, seed=14)
    ks.copy_(ks2)
    ke.copy_(ke2)
    out.fill_(float('nan'))
    graph.replay()
    torch.cuda.synchronize()
    eager = fam.call(inp, ks, ke, clean=clean)
    mask = valid_mask(ks, ke, n)
    if clean:
        assert_bitwise_equal(out, eager, 'graph replay')
    else:
        assert_bitwise_equal(out[mask], eager[mask], 'graph replay')
    inp.update({k: new[k] for k in ('q', 'kv')})
    fam.check_logits(out, inp, ks, ke, clean=clean)


def mma_form_cross_check(fam, monkeypatch, kernel, config):
    """The one-time check of the candidate MMA form against its twin, forced (`DG_SM120_MMA_CHECK=force`): one passing
    record naming `kernel` and `config`, once per config; then `force-fail`: one warning, the twin's (correct) results.
    Returns (inputs, ks, ke, the records of the failing check)."""
    s, n = 70, 300
    log0 = len(deep_gemm._C._mma_cross_check_log())
    monkeypatch.setenv('DG_SM120_MMA_CHECK', 'force')
    inp, ks, ke = new_case(fam, s, n, 16, 64, seed=15, ranges_seed=16)
    out = fam.call(inp, ks, ke, clean=True)
    fam.check_logits(out, inp, ks, ke, clean=True)
    log = deep_gemm._C._mma_cross_check_log()[log0:]
    assert len(log) == 1 and log[0][1] is True and kernel in log[0][0] and config in log[0][0], log
    fam.call(inp, ks, ke, clean=True)                               # once per config and process
    assert len(deep_gemm._C._mma_cross_check_log()) == log0 + 1

    # A disagreeing candidate: one warning, then the twin (results still correct)
    monkeypatch.setenv('DG_SM120_MMA_CHECK', 'force-fail')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out = fam.call(inp, ks, ke, clean=True)
        fam.call(inp, ks, ke, clean=True)
    assert len([w for w in caught if 'using the portable form' in str(w.message)]) == 1
    fam.check_logits(out, inp, ks, ke, clean=True)
    return inp, ks, ke, deep_gemm._C._mma_cross_check_log()[log0 + 1:]


def mma_form_env(fam, monkeypatch, inp, ks, ke, env, fallback):
    """`env=fallback` forces the twin (results still correct); an unknown value is a ValueError naming `env`."""
    monkeypatch.setenv(env, fallback)
    fam.check_logits(fam.call(inp, ks, ke, clean=True), inp, ks, ke, clean=True)
    monkeypatch.setenv(env, 'bogus')
    with pytest.raises(ValueError, match=env):
        fam.call(inp, ks, ke)
