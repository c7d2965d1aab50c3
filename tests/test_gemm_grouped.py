"""Grouped GEMMs for MoE on the GPU, in SM120 mode: m-grouped contiguous (group ids with -1 padding, and the psum
layout with uninitialised gaps), masked, and k-grouped (with empty groups), FP8 x FP8 and FP8 x FP4, BF16. Every valid
row against a float64 reference from the dequantized operands; padding rows of the -1 layout are zeros (as upstream's
tests expect); rows a call must not write are poisoned and checked untouched; CUDA graphs with `masked_m` changing between replays; determinism."""
import pytest
import torch

import deep_gemm
from deep_gemm.testing import assert_bitwise_equal
from deep_gemm.utils import transpose_packed_fp4
from gemm_common import ceil_div, check_close, pack_ue8m0, quant_fp4, quant_fp8, rows_of_block

gpu = pytest.mark.gpu


def _align(x, a):
    return ceil_div(x, a) * a


def expert_weights(groups, n, k, fp4=False, packed=False, seed=0):
    """[G, N, K] weights: FP8 with 128x128 block scales, or FP4 with (1, 32) scales; plus float64 dequantized."""
    vals, sfs, refs = [], [], []
    for g in range(groups):
        if fp4:
            q, s, r = quant_fp4(n, k, 32, seed=seed + g)
        else:
            q, s, r = quant_fp8(n, k, 128, 128, seed=seed + g)
            if packed:
                s = rows_of_block(s, n)
        vals.append(q), sfs.append(s), refs.append(r)
    sf = torch.stack(sfs)
    if packed:
        sf = pack_ue8m0(sf)
    return torch.stack(vals), sf, torch.stack(refs)


@gpu
@pytest.mark.parametrize('groups,n,k', [(4, 512, 1024), (8, 1024, 512)])
@pytest.mark.parametrize('packed', [False, True])
@pytest.mark.parametrize('psum', [False, True])
def test_m_grouped_contiguous(groups, n, k, packed, psum):
    align = deep_gemm.get_mk_alignment_for_contiguous_layout()
    sizes = [0 if g == 1 else 37 + 61 * g for g in range(groups)]    # one empty group
    starts, ends, m = [], [], 0
    for s in sizes:
        starts.append(m), ends.append(m + s)
        m = _align(m + s, align)
    a, sfa, a_ref = quant_fp8(m, k, 1, 128, seed=1)
    # Gap rows of A and of its scales: garbage that must never be read (NaN FP8 and NaN scales)
    gap = torch.ones(m, dtype=torch.bool, device='cuda')
    for s, e in zip(starts, ends):
        gap[s:e] = False
    a[gap] = torch.tensor(float('nan')).to(torch.float8_e4m3fn).cuda()
    sfa[gap] = float('nan')
    b, sfb, b_ref = expert_weights(groups, n, k, packed=packed, seed=100)
    if packed:
        sfa_in = pack_ue8m0(sfa.nan_to_num(1.0)) if not psum else pack_ue8m0(sfa.nan_to_num(1.0))
    else:
        sfa_in = sfa
    if psum:
        layout = torch.tensor(ends, dtype=torch.int32, device='cuda')
    else:
        layout = torch.full((m,), -1, dtype=torch.int32, device='cuda')
        for g, (s, e) in enumerate(zip(starts, ends)):
            layout[s:e] = g
    for zero_padding in ((False, True) if psum else (False,)):
        d = torch.full((m, n), float('nan'), device='cuda', dtype=torch.bfloat16)
        deep_gemm.m_grouped_fp8_fp4_gemm_nt_contiguous((a, sfa_in), (b, sfb), d, layout, use_psum_layout=psum,
                                                       ensure_zero_padding=zero_padding)
        for g, (s, e) in enumerate(zip(starts, ends)):
            if e > s:
                check_close(d[s:e], a_ref[s:e] @ b_ref[g].T, f'group {g} rows [{s}, {e})')
        untouched = d[gap]
        if zero_padding or not psum:
            # psum with ensure_zero_padding: gap rows up to the next group's aligned start are zeros; the -1 layout:
            # padding rows are zeros (upstream's tests take them as 0 · B), though their A rows hold NaN here
            assert (untouched == 0).all(), f'{int((untouched != 0).sum())} padding / gap elements are not zero'
        else:
            assert untouched.isnan().all(), f'{int((~untouched.isnan()).sum())} psum gap elements were written'


@gpu
def test_m_grouped_contiguous_padding_tiles():
    """Groups far smaller than the alignment: the plan's M tile (16) is below it, so whole tiles are padding (-1);
    every padding row of D is zero, every group row right."""
    align = deep_gemm.get_mk_alignment_for_contiguous_layout()
    groups, n, k = 8, 256, 512
    sizes = [5, 0, 0, 3, 0, 0, 0, 0]
    starts, m = [], 0
    for s in sizes:
        starts.append(m)
        m = _align(m + s, align)
    a, sfa, a_ref = quant_fp8(m, k, 1, 128, seed=3)
    b, sfb, b_ref = expert_weights(groups, n, k, seed=300)
    layout = torch.full((m,), -1, dtype=torch.int32, device='cuda')
    for g, (st, sz) in enumerate(zip(starts, sizes)):
        layout[st:st + sz] = g
    d = torch.full((m, n), float('nan'), device='cuda', dtype=torch.bfloat16)
    deep_gemm.m_grouped_fp8_gemm_nt_contiguous((a, sfa), (b, sfb), d, layout)
    for g, (st, sz) in enumerate(zip(starts, sizes)):
        if sz:
            check_close(d[st:st + sz], a_ref[st:st + sz] @ b_ref[g].T, f'group {g}')
    pad = d[layout < 0]
    assert (pad == 0).all(), f'{int((pad != 0).sum())} padding elements are not zero (NaN: never written)'


@gpu
@pytest.mark.parametrize('groups,max_m,expected_m,n,k', [(6, 256, 20, 512, 1024), (32, 64, 5, 256, 512),
                                                         (4, 1024, 300, 768, 512)])
@pytest.mark.parametrize('fp4', [False, True])
def test_m_grouped_masked(groups, max_m, expected_m, n, k, fp4):
    torch.manual_seed(groups)
    masked = torch.randint(0, max(2 * expected_m, 2), (groups,), dtype=torch.int32).clamp(max=max_m)
    masked[0] = 0
    a_list = [quant_fp8(max_m, k, 1, 128, seed=g) for g in range(groups)]
    a = torch.stack([x[0] for x in a_list]), torch.stack([x[1] for x in a_list])
    b, sfb, b_ref = expert_weights(groups, n, k, fp4=fp4, seed=200)
    recipe = dict(recipe_a=(1, 128), recipe_b=(1, 32)) if fp4 else {}
    d = torch.full((groups, max_m, n), float('nan'), device='cuda', dtype=torch.bfloat16)
    masked_dev = masked.cuda()
    deep_gemm.m_grouped_fp8_fp4_gemm_nt_masked(a, (b, sfb), d, masked_dev, expected_m, **recipe)
    for g in range(groups):
        rows = int(masked[g])
        if rows:
            check_close(d[g, :rows], a_list[g][2][:rows] @ b_ref[g].T, f'group {g} ({rows} rows)')
        assert d[g, rows:].isnan().all(), f'group {g}: rows past masked_m were written'
    # CUDA graph with masked_m changed between replays
    graph = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s), torch.cuda.graph(graph, stream=s):
        deep_gemm.m_grouped_fp8_fp4_gemm_nt_masked(a, (b, sfb), d, masked_dev, expected_m, **recipe)
    new_masked = masked.flip(0)
    masked_dev.copy_(new_masked)
    d.fill_(float('nan'))
    graph.replay()
    torch.cuda.synchronize()
    for g in range(groups):
        rows = int(new_masked[g])
        if rows:
            check_close(d[g, :rows], a_list[g][2][:rows] @ b_ref[g].T, f'replay group {g}')
        assert d[g, rows:].isnan().all()
    first = d.clone()
    for _ in range(5):
        graph.replay()
    torch.cuda.synchronize()
    assert_bitwise_equal(d, first, 'masked determinism')


def _operand(kind, mn, k, seed):
    """('fp8' with per-row (1, 128) scales, or 'fp4' with (1, 32) scales): values, scales, float64 dequantized."""
    return quant_fp4(mn, k, 32, seed=seed) if kind == 'fp4' else quant_fp8(mn, k, 1, 128, seed=seed)


def _mn_major(kind, x):
    """[G, MN, K(/2)] K-major values as the MN-major tensor upstream's tests pass: FP8 [G, K, MN] transposed back,
    packed FP4 [G, K, MN / 2] (`transpose_packed_fp4` per group); returned as (nt view, the nn form's tensor)."""
    t = torch.stack([transpose_packed_fp4(v) for v in x]) if kind == 'fp4' else x.mT.contiguous()
    return t.mT, t


@gpu
@pytest.mark.parametrize('kinds', [('fp4', 'fp8'), ('fp4', 'fp4'), ('fp8', 'fp4')])
@pytest.mark.parametrize('b_mn_major', [False, True])
def test_m_grouped_contiguous_fp4(kinds, b_mn_major):
    """NVIDIA's SM120 quant configs: FP4 activations (1, 32) x FP8 weights with per-row (1, 128) scales, FP4 x FP4,
    FP8 x FP4; the weights K-major or MN-major (the nt form's views and the nn form's [G, K, N(/2)] tensors)."""
    kind_a, kind_b = kinds
    align = deep_gemm.get_mk_alignment_for_contiguous_layout()
    groups, n, k = 3, 256, 512
    sizes = [70, 0, 150]
    starts, m = [], 0
    for sz in sizes:
        starts.append(m)
        m = _align(m + sz, align)
    a, sfa, a_ref = _operand(kind_a, m, k, seed=400)
    ws = [_operand(kind_b, n, k, seed=410 + g) for g in range(groups)]
    b, sfb, b_ref = (torch.stack([w[i] for w in ws]) for i in range(3))
    layout = torch.full((m,), -1, dtype=torch.int32, device='cuda')
    for g, (st, sz) in enumerate(zip(starts, sizes)):
        layout[st:st + sz] = g
    recipe = dict(recipe_a=(1, 32 if kind_a == 'fp4' else 128), recipe_b=(1, 32 if kind_b == 'fp4' else 128))
    calls = [('m_grouped_fp8_fp4_gemm_nt_contiguous', b, sfb)]
    if b_mn_major:
        view, nn_tensor = _mn_major(kind_b, b)
        calls = [('m_grouped_fp8_fp4_gemm_nt_contiguous', view, sfb),
                 ('m_grouped_fp8_fp4_gemm_nn_contiguous', nn_tensor, sfb.mT)]
    for fn, b_arg, sfb_arg in calls:
        d = torch.full((m, n), float('nan'), device='cuda', dtype=torch.bfloat16)
        getattr(deep_gemm, fn)((a, sfa), (b_arg, sfb_arg), d, layout, **recipe)
        for g, (st, sz) in enumerate(zip(starts, sizes)):
            if sz:
                check_close(d[st:st + sz], a_ref[st:st + sz] @ b_ref[g].T, f'{fn} {kinds} group {g}')
        assert (d[layout < 0] == 0).all(), 'padding rows must be zero'


@gpu
@pytest.mark.parametrize('kinds', [('fp4', 'fp8'), ('fp4', 'fp4')])
def test_m_grouped_masked_fp4_activations(kinds):
    kind_a, kind_b = kinds
    groups, max_m, n, k = 4, 64, 256, 512
    masked = torch.tensor([0, 5, 64, 33], dtype=torch.int32)
    xs = [_operand(kind_a, max_m, k, seed=500 + g) for g in range(groups)]
    ws = [_operand(kind_b, n, k, seed=520 + g) for g in range(groups)]
    a, sfa, a_ref = (torch.stack([x[i] for x in xs]) for i in range(3))
    b, sfb, b_ref = (torch.stack([w[i] for w in ws]) for i in range(3))
    d = torch.full((groups, max_m, n), float('nan'), device='cuda', dtype=torch.bfloat16)
    deep_gemm.m_grouped_fp8_fp4_gemm_nt_masked((a, sfa), (b, sfb), d, masked.cuda(), 32, recipe_a=(1, 32),
                                               recipe_b=(1, 32 if kind_b == 'fp4' else 128))
    for g in range(groups):
        rows = int(masked[g])
        if rows:
            check_close(d[g, :rows], a_ref[g, :rows] @ b_ref[g].T, f'masked {kinds} group {g}')
        assert d[g, rows:].isnan().all(), f'group {g}: rows past masked_m were written'


@gpu
@pytest.mark.parametrize('transposed', [False, True])
def test_k_grouped_nt_form_scale_layouts(transposed):
    """The nt form (each group's K-major [MN, K_g] block flattened, one after another) with the scales as upstream
    2.6 gives them ([sum K blocks, MN]) or as NVIDIA's SM120 tests do (their transpose, `sf.T`)."""
    m, n, ks = 256, 384, [256, 0, 384]
    groups = len(ks)
    c = torch.randn(groups, m, n, device='cuda') * 4
    a_flat, b_flat, sfa_rows, sfb_rows, ref = [], [], [], [], []
    for g, kg in enumerate(ks):
        if kg == 0:
            ref.append(c[g].double())
            continue
        a, sa, ar = quant_fp8(m, kg, 1, 128, seed=600 + g)
        b, sb, br = quant_fp8(n, kg, 1, 128, seed=610 + g)
        a_flat.append(a.flatten()), b_flat.append(b.flatten()), sfa_rows.append(sa.T), sfb_rows.append(sb.T)
        ref.append(c[g].double() + ar @ br.T)
    sfa, sfb = torch.cat(sfa_rows).contiguous(), torch.cat(sfb_rows).contiguous()      # [sum K blocks, MN]
    if transposed:
        sfa, sfb = sfa.T, sfb.T
    d = c.clone()
    ks_t = torch.tensor(ks, dtype=torch.int32, device='cuda')
    deep_gemm.k_grouped_fp8_gemm_nt_contiguous((torch.cat(a_flat), sfa), (torch.cat(b_flat), sfb), d, ks, ks_t, d,
                                               recipe=(1, 1, 128))
    for g in range(groups):
        check_close(d[g], ref[g], f'k-grouped nt group {g} (scales transposed={transposed})')


def _poisoned_tail(t):
    """`t` as the leading rows of a larger buffer whose rows after it are NaN (float) / 0xFF UE8M0 bytes (int): a
    read past `t`'s last row shows in the result."""
    buf = torch.full((t.size(0) + 8, t.size(1)), float('nan') if t.dtype == torch.float else -1, dtype=t.dtype,
                     device=t.device)
    buf[:t.size(0)] = t
    return buf[:t.size(0)]


@gpu
@pytest.mark.parametrize('gran_k', [128, 32])
@pytest.mark.parametrize('packed', [False, True])
@pytest.mark.parametrize('ks_case', ['empty_mid', 'empty_last'])
def test_k_grouped(gran_k, packed, ks_case):
    """'empty_last': the last non-empty group ends in a partial k block (K = 224: 7 granules of 32), followed by an
    empty group, as upstream's k_alignment = 224 case; its missing granules must not be read past the scales."""
    m, n = 256, 384
    ks = [256, 0, 384, 128 if gran_k == 128 else 96, 512] if ks_case == 'empty_mid' else [448, 224, 0]
    groups = len(ks)
    a_parts, b_parts, sfa_parts, sfb_parts, ref = [], [], [], [], []
    c = torch.randn(groups, m, n, device='cuda') * 4
    for g, kg in enumerate(ks):
        if kg == 0:
            ref.append(c[g].double())
            continue
        # per-channel scales along K blocks: a [kg, m] with scales [ceil(kg / gran), m]
        a, sa, ar = quant_fp8(m, kg, 1, gran_k, seed=10 + g)
        b, sb, br = quant_fp8(n, kg, 1, gran_k, seed=30 + g)
        a_parts.append(a.T), b_parts.append(b.T), sfa_parts.append(sa.T), sfb_parts.append(sb.T)
        ref.append(c[g].double() + ar @ br.T)
    a_cat = torch.cat(a_parts).contiguous()     # [sum K, m]
    b_cat = torch.cat(b_parts).contiguous()
    if packed:
        sfa = torch.cat([pack_ue8m0(s.T).T for s in sfa_parts]).contiguous()
        sfb = torch.cat([pack_ue8m0(s.T).T for s in sfb_parts]).contiguous()
    else:
        sfa, sfb = torch.cat(sfa_parts).contiguous(), torch.cat(sfb_parts).contiguous()
    sfa, sfb = _poisoned_tail(sfa), _poisoned_tail(sfb)
    d = c.clone()
    ks_t = torch.tensor(ks, dtype=torch.int32, device='cuda')
    deep_gemm.k_grouped_fp8_gemm_tn_contiguous((a_cat, sfa), (b_cat, sfb), d, ks, ks_t, d, recipe=(1, 1, gran_k))
    for g in range(groups):
        check_close(d[g], ref[g], f'k-grouped group {g} (K = {ks[g]})')


@gpu
def test_bf16_grouped():
    groups, n, k = 3, 256, 512
    align = deep_gemm.get_mk_alignment_for_contiguous_layout()
    sizes = [100, 0, 200]
    m = sum(_align(s, align) for s in sizes)
    a = torch.randn(m, k, device='cuda', dtype=torch.bfloat16)
    b = torch.randn(groups, n, k, device='cuda', dtype=torch.bfloat16)
    layout = torch.full((m,), -1, dtype=torch.int32, device='cuda')
    start = 0
    for g, s in enumerate(sizes):
        layout[start:start + s] = g
        start = _align(start + s, align)
    d = torch.full((m, n), float('nan'), device='cuda', dtype=torch.bfloat16)
    deep_gemm.m_grouped_bf16_gemm_nt_contiguous(a, b, d, layout)
    start = 0
    for g, s in enumerate(sizes):
        if s:
            check_close(d[start:start + s], a[start:start + s].double() @ b[g].double().T, f'bf16 group {g}')
        start = _align(start + s, align)
    assert (d[layout < 0] == 0).all(), 'padding rows of the contiguous layout are zeros'
    # masked
    a3 = torch.randn(groups, 64, k, device='cuda', dtype=torch.bfloat16)
    masked = torch.tensor([3, 0, 64], dtype=torch.int32, device='cuda')
    d3 = torch.full((groups, 64, n), float('nan'), device='cuda', dtype=torch.bfloat16)
    deep_gemm.m_grouped_bf16_gemm_nt_masked(a3, b, d3, masked, 32)
    for g, rows in enumerate([3, 0, 64]):
        if rows:
            check_close(d3[g, :rows], a3[g, :rows].double() @ b[g].double().T, f'bf16 masked {g}')
        assert d3[g, rows:].isnan().all()


@pytest.mark.parametrize('case', ['layout_shape', 'layout_dtype', 'groups_mismatch', 'masked_shape', 'ks_len',
                                  'ks_scale_shape', 'fp4_granule'])
def test_grouped_bad_arguments(case):
    if deep_gemm._C is None:
        pytest.skip('deep_gemm._C is not built')
    if not torch.cuda.is_available():
        pytest.skip('the checks after the CUDA-device check need a GPU to reach')
    m, n, k, g = 256, 256, 512, 2
    a = (torch.zeros(m, k, device='cuda', dtype=torch.float8_e4m3fn), torch.ones(m, k // 128, device='cuda'))
    b = (torch.zeros(g, n, k, device='cuda', dtype=torch.float8_e4m3fn),
         torch.ones(g, n // 128, k // 128, device='cuda'))
    d = torch.empty(m, n, device='cuda', dtype=torch.bfloat16)
    layout = torch.zeros(m, dtype=torch.int32, device='cuda')
    if case == 'layout_shape':
        with pytest.raises(ValueError, match=r'`grouped_layout` must be \[M\] = \[256\]'):
            deep_gemm.m_grouped_fp8_gemm_nt_contiguous(a, b, d, layout[:10])
    elif case == 'layout_dtype':
        with pytest.raises(TypeError, match=r'`grouped_layout` must have dtype torch.int32'):
            deep_gemm.m_grouped_fp8_gemm_nt_contiguous(a, b, d, layout.long())
    elif case == 'groups_mismatch':
        a3 = (torch.zeros(3, 64, k, device='cuda', dtype=torch.float8_e4m3fn), torch.ones(3, 64, 4, device='cuda'))
        with pytest.raises(ValueError, match=r'same number of groups'):
            deep_gemm.m_grouped_fp8_gemm_nt_masked(a3, b, torch.empty(3, 64, n, device='cuda', dtype=torch.bfloat16),
                                                   torch.zeros(3, dtype=torch.int32, device='cuda'), 8)
    elif case == 'masked_shape':
        a2 = (torch.zeros(g, 64, k, device='cuda', dtype=torch.float8_e4m3fn), torch.ones(g, 64, 4, device='cuda'))
        with pytest.raises(ValueError, match=r'`masked_m` must be \[G\] = \[2\]'):
            deep_gemm.m_grouped_fp8_gemm_nt_masked(a2, b, torch.empty(g, 64, n, device='cuda', dtype=torch.bfloat16),
                                                   torch.zeros(3, dtype=torch.int32, device='cuda'), 8)
    elif case == 'ks_len':
        with pytest.raises(ValueError, match=r'`ks` must list K for each of the G = 2'):
            deep_gemm.k_grouped_fp8_gemm_tn_contiguous(
                (torch.zeros(256, 64, device='cuda', dtype=torch.float8_e4m3fn), torch.ones(2, 64, device='cuda')),
                (torch.zeros(256, 64, device='cuda', dtype=torch.float8_e4m3fn), torch.ones(2, 64, device='cuda')),
                torch.zeros(2, 64, 64, device='cuda'), [256], torch.tensor([256, 0], dtype=torch.int32,
                                                                           device='cuda'))
    elif case == 'ks_scale_shape':
        # 2 K blocks for ks = [256, 0]: [2, 64] or its transpose [64, 2]; [3, 64] is neither
        with pytest.raises(ValueError, match=r'`a\[1\]` must be \[sum of the groups\' K blocks, 64\] = \[2, 64\] '
                                             r'\(or its transpose \[64, 2\]\); got'):
            deep_gemm.k_grouped_fp8_gemm_tn_contiguous(
                (torch.zeros(256, 64, device='cuda', dtype=torch.float8_e4m3fn), torch.ones(3, 64, device='cuda')),
                (torch.zeros(256, 64, device='cuda', dtype=torch.float8_e4m3fn), torch.ones(2, 64, device='cuda')),
                torch.zeros(2, 64, 64, device='cuda'), [256, 0], torch.tensor([256, 0], dtype=torch.int32,
                                                                              device='cuda'))
    elif case == 'fp4_granule':
        # FP4 activations x FP8 weights need 32-wide FP4 scale blocks
        a4 = (torch.zeros(m, k // 2, device='cuda', dtype=torch.int8), torch.ones(m, k // 128, device='cuda'))
        with pytest.raises(ValueError, match=r'unsupported operand / scale combination: A FP4 with K blocks of 128, '
                                             r'B FP8 with K blocks of 128; supported: .*FP4 x FP8 \(32/128, 32/32\)'):
            deep_gemm.m_grouped_fp8_fp4_gemm_nt_contiguous(a4, b, d, layout, recipe_a=(1, 128), recipe_b=(128, 128))
