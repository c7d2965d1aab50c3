"""Ragged (prefill) MQA logits with FP4 q and keys: the FP4 form of fp8_fp4_mqa_logits (CONTRACT.md §2.1).

q = (packed e2m1 int8 [S, H, D/2], int32 [S, H] packed UE8M0), kv = (packed e2m1 int8 [N, D/2], int32 [N]).
GPU tests (the H100 runs the portable bf16 form; sm_120a the native block-scaled FP4 form, cross-checked once)
compare against a float64 reference on the dequantized FP4 inputs (calc_diff < 1e-5) and on the bf16 originals
(< 0.02, FP4 quantization noise; only on samples large enough for that statistic), check the -inf mask exactly,
poison the output memory, and check determinism, CUDA graphs, the MMA-form cross-check and bad inputs.
CPU tests cover validation that needs no GPU and the compile-only enumeration.
"""
import os

import pytest
import torch

import deep_gemm
from deep_gemm.testing import calc_diff, assert_bitwise_equal
from deep_gemm.utils.fp4_cache import dequantize_fp4, quantize_fp4

import mqa_logits_common as common
from mqa_logits_common import (causal_ranges, check_layout, clamp_ranges, poisoned_outputs, random_ranges, reference,
                               storage_rows, valid_mask)

gpu = pytest.mark.gpu
needs_ext = pytest.mark.skipif(deep_gemm._C is None, reason='deep_gemm._C is not built')


# ---------------------------------------------------------------------------------------------------------------------
# Inputs, call and check (the shared ranges, reference and test bodies: tests/mqa_logits_common.py)

def make_inputs(s, n, h, d, seed, w_dtype=torch.float32):
    g = torch.Generator(device='cuda').manual_seed(seed)
    q = torch.randn(s, h, d, device='cuda', generator=g).bfloat16()
    kv = torch.randn(n, d, device='cuda', generator=g).bfloat16()
    w = torch.randn(s, h, device='cuda', generator=g).to(w_dtype)
    q_fp4, q_sf = quantize_fp4(q)
    k_fp4, k_sf = quantize_fp4(kv)
    assert q_fp4.dtype == torch.int8 and q_fp4.shape == (s, h, d // 2) and q_sf.dtype == torch.int32
    assert q_sf.shape == (s, h) and k_fp4.shape == (n, d // 2) and k_sf.shape == (n, )
    return dict(q=q, kv=kv, w=w, q_fp4=q_fp4.contiguous(), q_sf=q_sf.contiguous(), k_fp4=k_fp4.contiguous(),
                k_sf=k_sf.contiguous())


def check_logits(out, inp, ks, ke, clean):
    s, n = out.shape
    w = inp['w'].float()
    mask = valid_mask(ks, ke, n)
    # sum_b sq sk (q_b . k_b) is exactly the dot product of the dequantized rows
    q_deq = dequantize_fp4(inp['q_fp4'], inp['q_sf'])
    k_deq = dequantize_fp4(inp['k_fp4'], inp['k_sf'])
    ref_deq = reference(q_deq, k_deq, w)
    got = out.double()
    assert torch.isfinite(got[mask]).all(), 'non-finite logits inside the valid range'
    if mask.any():
        diff = calc_diff(got[mask], ref_deq[mask])
        assert diff < 1e-5, f'calc_diff vs the dequantized reference: {diff}'
    # NOTES: against the bf16 originals the difference is FP4 quantization noise (~0.012 on large samples), a
    # statistic: on 256 logits of 2 rows with H = 8 it reached 0.021, on >= 2048 logits of >= 16 rows at most 0.017
    # (30 seeds, CPU model). So it is checked only on samples that large.
    if mask.sum() >= 2048 and (mask.sum(1) > 0).sum() >= 16:
        ref_orig = reference(inp['q'].float(), inp['kv'].float(), w)
        diff = calc_diff(got[mask], ref_orig[mask])
        assert diff < 0.02, f'calc_diff vs the bf16 original: {diff}'
    if clean:
        is_neg_inf = torch.isneginf(got)
        assert torch.equal(is_neg_inf, ~mask), 'the -inf mask differs from the reference mask'
    return mask


def call(inp, ks, ke, clean=True, max_seqlen_k=0, logits_dtype=torch.float32):
    return deep_gemm.fp8_fp4_mqa_logits((inp['q_fp4'], inp['q_sf']), (inp['k_fp4'], inp['k_sf']), inp['w'], ks, ke,
                                        clean_logits=clean, max_seqlen_k=max_seqlen_k, logits_dtype=logits_dtype)


FP4 = common.Family(make_inputs, call, check_logits, graph_keys=('q_fp4', 'q_sf', 'k_fp4', 'k_sf', 'w'))


# ---------------------------------------------------------------------------------------------------------------------
# GPU: numerics over every supported shape family

@gpu
@pytest.mark.parametrize('h', [8, 16, 32, 64])
@pytest.mark.parametrize('d', [64, 128])
@pytest.mark.parametrize('dtypes', [(torch.float32, torch.float32), (torch.bfloat16, torch.float32),
                                    (torch.bfloat16, torch.bfloat16)], ids=['f32', 'bf16', 'bf16w'])
def test_fp4_sweep(h, d, dtypes):
    logits_dtype, w_dtype = dtypes
    if w_dtype == torch.bfloat16 and (h, d) not in ((8, 64), (64, 128), (32, 64)):
        pytest.skip('bf16 weights: a few shapes suffice')
    s, n = 133, 517
    inp = make_inputs(s, n, h, d, seed=h * 1000 + d, w_dtype=w_dtype)
    ks, ke = random_ranges(s, n, seed=h + d)
    with poisoned_outputs():
        out = call(inp, ks, ke, clean=True, logits_dtype=logits_dtype)
    check_layout(out, s, n, False, logits_dtype)
    check_logits(out, inp, ks, ke, clean=True)
    assert torch.isnan(storage_rows(out, s)[:, n:]).all(), 'padding columns past N were written'


@gpu
@pytest.mark.parametrize('prefix_start', [0, 100])
def test_fp4_causal_with_prefix(prefix_start):
    common.causal_with_prefix(FP4, prefix_start)


@gpu
@pytest.mark.parametrize('h,d', [(64, 128), (32, 64), (8, 128), (16, 64)])
def test_fp4_zigzag_context_parallel(h, d):
    common.zigzag_context_parallel(FP4, h, d, logits_dtype=torch.bfloat16 if h == 32 else torch.float32)


@gpu
def test_fp4_all_rows_empty_and_tiny():
    common.all_rows_empty_and_tiny(FP4)


@gpu
def test_fp4_few_queries_split_keys():
    common.few_queries_split_keys(FP4)


# The FP8 cases with D >= 64 (FP4 has no D = 32)
FUSED_CLEAN_CASES = [(s, n, h, max(d, 64), kind) for s, n, h, d, kind in common.FUSED_CLEAN_CASES]


@gpu
@pytest.mark.parametrize('logits_dtype', [torch.float32, torch.bfloat16], ids=['f32', 'bf16'])
@pytest.mark.parametrize('s,n,h,d,kind', FUSED_CLEAN_CASES, ids=common.case_ids(FUSED_CLEAN_CASES))
def test_fp4_fused_clean(s, n, h, d, kind, logits_dtype):
    common.fused_clean(FP4, s, n, h, d, kind, logits_dtype)


@gpu
@pytest.mark.parametrize('logits_dtype', [torch.float32, torch.bfloat16])
def test_fp4_compressed_matches_uncompressed(logits_dtype):
    s, n, h, d = 160, 900, 32, 128
    inp, ks, ke = common.new_case(FP4, s, n, h, d, seed=6, ranges_seed=7)
    full = call(inp, ks, ke, clean=False, logits_dtype=logits_dtype)
    check_logits(full, inp, ks, ke, clean=False)
    ks_c, ke_c = clamp_ranges(ks, ke, n)
    lengths = ke_c - ks_c
    for max_seqlen_k in (int(lengths.max().item()), 300):
        with poisoned_outputs():
            comp = call(inp, ks, ke, clean=False, max_seqlen_k=max_seqlen_k, logits_dtype=logits_dtype)
        check_layout(comp, s, max_seqlen_k, True, logits_dtype)
        for i in range(s):
            lo, hi = int(ks_c[i]), int(ke_c[i])
            m = min(hi - lo, max_seqlen_k)
            assert_bitwise_equal(comp[i, :m], full[i, lo:lo + m], f'row {i}')
        assert torch.isnan(storage_rows(comp, s)[:, max_seqlen_k:]).all(), 'a column past max_seqlen_k was written'


@gpu
@pytest.mark.parametrize('clean', [True, False])
def test_fp4_poisoned_output(clean):
    common.poisoned(FP4, clean)


@gpu
@pytest.mark.parametrize('logits_dtype', [torch.float32, torch.bfloat16])
def test_fp4_deterministic(logits_dtype):
    common.deterministic(FP4, logits_dtype)


@gpu
@pytest.mark.parametrize('clean', [True, False])
def test_fp4_cuda_graph(clean):
    common.cuda_graph(FP4, clean)


@gpu
def test_fp4_mma_form_cross_check(monkeypatch):
    """The one-time check of the candidate FP4 form against the portable twin (docs/HARDWARE.md §4),
    forced on any GPU."""
    inp, ks, ke, log = common.mma_form_cross_check(FP4, monkeypatch, 'fp4_mqa_logits', 'FP4 H=16 D=64')
    assert len(log) == 1 and log[0][1] is False and 'fp4_mqa_logits' in log[0][0], log
    monkeypatch.delenv('DG_SM120_MMA_CHECK')
    common.mma_form_env(FP4, monkeypatch, inp, ks, ke, 'DG_SM120_FP4_MMA', 'portable')


@gpu
def test_fp4_bad_inputs_gpu():
    s, n, h, d = 20, 64, 64, 128
    inp = make_inputs(s, n, h, d, seed=17)
    ks, ke = causal_ranges(s, n)
    q, kv, w = (inp['q_fp4'], inp['q_sf']), (inp['k_fp4'], inp['k_sf']), inp['w']
    f = deep_gemm.fp8_fp4_mqa_logits
    q_fp8 = inp['q'].to(torch.float8_e4m3fn)
    kv_fp8 = (inp['kv'].to(torch.float8_e4m3fn), torch.ones(n, device='cuda'))
    # Mixing FP4 and FP8
    with pytest.raises(TypeError, match='fp8_fp4_mqa_logits: FP4 q needs FP4 keys'):
        f(q, kv_fp8, w, ks, ke)
    with pytest.raises(TypeError, match='fp8_fp4_mqa_logits: FP8 q needs FP8 keys'):
        f((q_fp8, None), kv, w, ks, ke)
    with pytest.raises(TypeError, match='FP8 q needs FP8 keys'):
        deep_gemm.fp8_mqa_logits(q_fp8, kv, w, ks, ke)
    with pytest.raises(TypeError, match='is the FP4 form'):
        f((q_fp8, inp['q_sf']), kv, w, ks, ke)
    # Head dims: D = 32 (16 packed bytes) and odd packed widths are not FP4 head dims
    for half in (16, 33):
        with pytest.raises(ValueError, match=r'D in \{64, 128\}'):
            f((torch.zeros(s, h, half, dtype=torch.int8, device='cuda'), inp['q_sf']), kv, w, ks, ke)
    with pytest.raises(ValueError, match=r'`kv\[0\]`.shape\[1\] must be 64'):
        f(q, (torch.zeros(n, 33, dtype=torch.int8, device='cuda'), inp['k_sf']), w, ks, ke)
    with pytest.raises(ValueError, match=r'`kv\[0\]`.shape\[1\] must be 64'):
        f(q, (inp['k_fp4'][:, :32].contiguous(), inp['k_sf']), w, ks, ke)
    # Scales: dtype and shape
    with pytest.raises(TypeError, match=r'`q\[1\]` must have dtype torch.int32'):
        f((inp['q_fp4'], inp['q_sf'].long()), kv, w, ks, ke)
    with pytest.raises(ValueError, match=r'`q\[1\]`.shape\[1\] must be 64'):
        f((inp['q_fp4'], inp['q_sf'][:, :32].contiguous()), kv, w, ks, ke)
    with pytest.raises(ValueError, match=r'`q\[1\]`.shape\[0\] must be 20'):
        f((inp['q_fp4'], inp['q_sf'][1:]), kv, w, ks, ke)
    with pytest.raises(ValueError, match=r'`q\[1\]` must be 2-D'):
        f((inp['q_fp4'], inp['q_sf'].flatten()), kv, w, ks, ke)
    with pytest.raises(TypeError, match=r'FP4 keys need `kv\[1\]` = int32'):
        f(q, (inp['k_fp4'], inp['k_sf'].float()), w, ks, ke)
    with pytest.raises(ValueError, match=r'`kv\[1\]`.shape\[0\] must be 64'):
        f(q, (inp['k_fp4'], inp['k_sf'][:-1]), w, ks, ke)
    # The shared checks
    with pytest.raises(ValueError, match='number of heads'):
        f((torch.zeros(s, 4, d // 2, dtype=torch.int8, device='cuda'), inp['q_sf'][:, :4].contiguous()), kv,
          w[:, :4].contiguous(), ks, ke)
    with pytest.raises(ValueError, match=r'`weights`.shape\[0\] must be 20'):
        f(q, kv, w[:-1], ks, ke)
    with pytest.raises(TypeError, match='`weights` must have dtype torch.float32'):
        f(q, kv, w.bfloat16(), ks, ke)
    with pytest.raises(ValueError, match='clean_logits=True` requires `max_seqlen_k == 0'):
        f(q, kv, w, ks, ke, clean_logits=True, max_seqlen_k=128)
    with pytest.raises(ValueError, match='must be contiguous'):
        f((inp['q_fp4'].transpose(0, 1).contiguous().transpose(0, 1), inp['q_sf']), kv, w, ks, ke)
    with pytest.raises(ValueError, match='must be on'):
        f(q, (inp['k_fp4'], inp['k_sf'].cpu()), w, ks, ke)
    with pytest.raises(TypeError, match='`cu_seq_len_k_end` must have dtype torch.int32'):
        f(q, kv, w, ks, ke.long())
    # uint8 packing is accepted too, with identical results
    out = call(inp, ks, ke, clean=True)
    out_u8 = f((inp['q_fp4'].view(torch.uint8), inp['q_sf']), (inp['k_fp4'].view(torch.uint8), inp['k_sf']), w, ks,
               ke)
    assert_bitwise_equal(out_u8, out, 'uint8 packing')
    check_logits(out, inp, ks, ke, clean=True)


# ---------------------------------------------------------------------------------------------------------------------
# CPU: validation without a GPU, and the compile-only enumeration

@needs_ext
def test_fp4_bad_inputs_cpu():
    s, n, h, d = 4, 8, 64, 128
    q = (torch.zeros(s, h, d // 2, dtype=torch.int8), torch.zeros(s, h, dtype=torch.int32))
    kv = (torch.zeros(n, d // 2, dtype=torch.int8), torch.zeros(n, dtype=torch.int32))
    w = torch.zeros(s, h)
    ks = torch.zeros(s, dtype=torch.int32)
    ke = torch.ones(s, dtype=torch.int32)
    with pytest.raises(ValueError, match=r'fp8_fp4_mqa_logits: `q\[0\]` must be a CUDA tensor'):
        deep_gemm.fp8_fp4_mqa_logits(q, kv, w, ks, ke)


def _fp4_specs(target):
    return [(i, c) for i, c in enumerate(deep_gemm._C.list_kernel_configs(target))
            if c['family'] == 'mqa_logits' and c['description'].startswith('FP4 ')]


@needs_ext
@pytest.mark.parametrize('target', ['sm_120a', 'sm_121a'])
def test_fp4_enumeration(target):
    specs = _fp4_specs(target)
    # Every (H, D) with the native and the portable form
    assert len(specs) == 4 * 2 * 2
    descs = {c['description'] for _, c in specs}
    for h in (8, 16, 32, 64):
        for d in (64, 128):
            for form in ('native', 'portable'):
                assert any(x.startswith(f'FP4 H={h} D={d} mma={form} ') for x in descs), (h, d, form)
    for _, c in specs:
        assert c['symbol'] == 'sm120_fp4_mqa_logits'
        assert c['dynamic_smem'] <= 101376
        native = 'mma=native' in c['description']
        assert ('OMMA.SF.16864' if native else 'HMMA.16816.F32.BF16') in c['expected_sass']


@needs_ext
def test_fp4_enumeration_without_native():
    # Targets without the block-scaled instructions list only the portable form
    specs = _fp4_specs('sm_89')
    assert len(specs) == 8 and all('mma=portable' in c['description'] for _, c in specs)


@needs_ext
@pytest.mark.skipif(not os.path.exists('/usr/local/cuda/bin/nvcc') and not os.environ.get('DG_JIT_USE_NVRTC'),
                    reason='no CUDA compiler')
@pytest.mark.parametrize('form', ['native', 'portable'])
def test_fp4_compile_one_config(form):
    from deep_gemm import jit
    index = next(i for i, c in _fp4_specs('sm_120a') if f'FP4 H=64 D=128 mma={form} ' in c['description'])
    r = deep_gemm._C.compile_kernel_config('sm_120a', index)
    assert r['total_smem'] <= 101376
    assert r['spill_stores'] == 0 and r['stack_frame'] == 0
    if jit.find_cuobjdump() is not None:
        sass = jit.sass_of(r['cubin_path'])
        assert ('OMMA.SF.16864' if form == 'native' else 'HMMA.16816.F32.BF16') in sass
        assert 'QMMA' not in sass
