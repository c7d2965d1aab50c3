"""The GEMM families on DeepSeek-V4 shapes (GEMM.md §4-§5): dense FP8 linears (`fp8_gemm_nt`, UE8M0 scales as SGLang
passes them), the four published SM120 comparison shapes, `fp8_einsum` (wo_a), MoE experts (masked decode and
contiguous prefill, FP8 x FP4), and BF16.

Each row is checked against a reference from the dequantized operands and timed by its kernel alone. The floor is
max(bytes / read bandwidth, flops / mma.sync peak), both measured in the same run; bytes count what upstream's tests
count (A, B and D once; for grouped calls only the experts actually used).
"""
from .common import Row, gpu_time

# N x K of DeepSeek-V4 linears (GEMM.md §4)
V4_LINEARS = {
    'flash wqkv_a': (1536, 4096), 'flash wq_b': (32768, 1024), 'flash wo_b': (4096, 8192),
    'flash shared gate_up': (4096, 4096), 'flash shared down': (4096, 2048), 'flash idx wq_b': (8192, 1024),
    'pro wqkv_a': (2048, 7168), 'pro wq_b': (65536, 1536), 'pro wo_b': (7168, 16384),
    'pro shared gate_up': (6144, 7168), 'pro shared down': (7168, 3072), 'pro idx wq_b': (8192, 1536),
}
# M x N x K of GEMM.md §5 (published SM120 numbers exist for these)
PUBLISHED = [(4096, 24576, 1536), (4096, 2112, 7168), (4096, 5120, 8192), (4096, 5120, 25600)]
# At most this many FLOPs per timed row (the H100 runs FP8 mma.sync emulated at ~0.3 PFLOP/s)
MAX_FLOPS = 4e13


def _quant(x, block_rows):
    """bf16 [mn, k] -> (fp8, packed UE8M0 scales [mn, k / 512] MN-major, dequantized float)."""
    import torch
    from ..utils import per_block_cast_to_fp8, per_token_cast_to_fp8
    if block_rows:
        q, sf = per_block_cast_to_fp8(x, use_ue8m0=True)
        sf_rows = sf.repeat_interleave(128, 0)[:x.shape[0]]
    else:
        q, sf = per_token_cast_to_fp8(x, use_ue8m0=True)
        sf_rows = sf
    deq = q.float() * sf_rows.repeat_interleave(128, 1)[:, :x.shape[1]]
    kb = sf_rows.shape[1]
    e = ((torch.nn.functional.pad(sf_rows, (0, (-kb) % 4), value=1.0).contiguous().view(torch.int32) >> 23) & 0xff)
    packed = e.to(torch.uint8).view(torch.int32).T.contiguous().T
    return q, packed, deq


def _check(out, ref):
    from ..testing import calc_diff
    diff = calc_diff(out.float(), ref.float())
    return f'{"ok" if diff < 1e-4 else "FAIL"} diff {diff:.1e}'


def _dense_row(name, m, n, k, num_tests=20):
    import torch
    import deep_gemm
    a, sfa, a_ref = _quant(torch.randn(m, k, device='cuda', dtype=torch.bfloat16), False)
    b, sfb, b_ref = _quant(torch.randn(n, k, device='cuda', dtype=torch.bfloat16), True)
    d = torch.empty(m, n, device='cuda', dtype=torch.bfloat16)

    def fn():
        deep_gemm.fp8_gemm_nt((a, sfa), (b, sfb), d)

    fn()
    check = _check(d, a_ref @ b_ref.T)
    seconds = gpu_time(fn, 'gemm_', num_tests=num_tests)
    return Row(name=name, seconds=seconds, bytes_read=m * k + n * k + (sfa.numel() + sfb.numel()) * 4,
               bytes_written=m * n * 2, flops=2.0 * m * n * k, mma='fp8_mma', check=check)


def _einsum_row(bsz, h=8, r=4096, dd=1024):
    import torch
    import deep_gemm
    from ..utils import per_block_cast_to_fp8, per_token_cast_to_fp8
    x = torch.randn(bsz, h, r, device='cuda', dtype=torch.bfloat16)
    y = torch.randn(h, dd, r, device='cuda', dtype=torch.bfloat16)
    xq, xs = per_token_cast_to_fp8(x.view(-1, r), use_ue8m0=True)
    xq, xs = xq.view(bsz, h, r), xs.view(bsz, h, r // 128)
    ys = [per_block_cast_to_fp8(y[i], use_ue8m0=True) for i in range(h)]
    yq, ysf = torch.stack([t[0] for t in ys]), torch.stack([t[1] for t in ys])
    z = torch.empty(bsz, h, dd, device='cuda', dtype=torch.bfloat16)

    def fn():
        deep_gemm.fp8_einsum('bhr,hdr->bhd', (xq, xs), (yq, ysf), z)

    fn()
    xr = xq.float() * xs.repeat_interleave(128, -1)
    yr = yq.float() * ysf.repeat_interleave(128, 1).repeat_interleave(128, 2)
    check = _check(z, torch.einsum('bhr,hdr->bhd', xr, yr))
    seconds = gpu_time(fn, 'gemm_')
    return Row(name=f'fp8_einsum wo_a b={bsz} h={h} {dd}x{r}', seconds=seconds,
               bytes_read=bsz * h * r + h * dd * r, bytes_written=bsz * h * dd * 2, flops=2.0 * bsz * h * dd * r,
               mma='fp8_mma', check=check)


def _mxfp4_experts(groups, n, k):
    """`groups` identical MXFP4 expert weights [G, N, K/2] with their 1x32 scales (one random matrix, expanded: keeps
    the set-up cheap; the kernel reads every group's copy), and the dequantized matrix for the reference."""
    import torch
    from ..utils import cast_back_from_fp4, per_token_cast_to_fp4
    wq, wsf = per_token_cast_to_fp4(torch.randn(n, k, device='cuda', dtype=torch.bfloat16), use_ue8m0=True, gran_k=32)
    bq, bsf = wq.expand(groups, n, k // 2).contiguous(), wsf.expand(groups, n, k // 32).contiguous()
    return bq, bsf, cast_back_from_fp4(wq, wsf, gran_k=32)


def _masked_row(num_experts, active, tokens, n, k):
    """MoE decode: `active` of `num_experts` experts get `tokens` rows each; FP8 activations x MXFP4 weights. Only the
    active experts' weights are read."""
    import torch
    import deep_gemm
    from ..utils import per_token_cast_to_fp8
    max_m = max(tokens, 16)
    a = torch.randn(num_experts, max_m, k, device='cuda', dtype=torch.bfloat16)
    aq, asf = per_token_cast_to_fp8(a.view(-1, k), use_ue8m0=True)
    aq, asf = aq.view(num_experts, max_m, k), asf.view(num_experts, max_m, -1)
    bq, bsf, w_ref = _mxfp4_experts(num_experts, n, k)
    masked = torch.zeros(num_experts, dtype=torch.int32, device='cuda')
    masked[torch.randperm(num_experts)[:active].cuda()] = tokens
    d = torch.empty(num_experts, max_m, n, device='cuda', dtype=torch.bfloat16)

    def fn():
        deep_gemm.m_grouped_fp8_fp4_gemm_nt_masked((aq, asf), (bq, bsf), d, masked, tokens, recipe_a=(1, 128),
                                                   recipe_b=(1, 32))

    fn()
    g = int(masked.nonzero()[0])
    a_ref = aq[g, :tokens].float() * asf[g, :tokens].repeat_interleave(128, -1)
    check = _check(d[g, :tokens], a_ref @ w_ref.T)
    seconds = gpu_time(fn, 'gemm_')
    weight_bytes = active * (n * k // 2 + n * k // 32)
    return Row(name=f'masked fp8xfp4 E={num_experts} active={active} m={tokens} {n}x{k}', seconds=seconds,
               bytes_read=weight_bytes + active * tokens * k, bytes_written=active * tokens * n * 2,
               flops=2.0 * active * tokens * n * k, mma='fp8_mma', check=check,
               notes=[f'reads {weight_bytes / 1e6:.1f} MB of active expert weights'])


def contiguous_sizes(groups, expected_m, align=128):
    """Rows of each group of a prefill batch: 0.7-1.3x `expected_m` (a fixed pattern, the same on every run and in
    the time model), and each group's start: the rows before it, aligned to `align`."""
    sizes = [int(expected_m * (0.7 + 0.6 * ((g * 5) % groups) / max(1, groups - 1))) for g in range(groups)]
    starts, m = [], 0
    for sz in sizes:
        starts.append(m)
        m += -(-sz // align) * align
    return sizes, starts, m


def _contiguous_row(groups, expected_m, n, k):
    """MoE prefill: `groups` experts with 0.7-1.3x `expected_m` rows each, one contiguous A (padding rows -1 up to the
    layout alignment); FP8 activations x MXFP4 weights."""
    import torch
    import deep_gemm
    from ..utils import per_token_cast_to_fp8
    sizes, starts, m = contiguous_sizes(groups, expected_m, deep_gemm.get_mk_alignment_for_contiguous_layout())
    aq, asf = per_token_cast_to_fp8(torch.randn(m, k, device='cuda', dtype=torch.bfloat16), use_ue8m0=True)
    bq, bsf, w_ref = _mxfp4_experts(groups, n, k)
    layout = torch.full((m,), -1, dtype=torch.int32, device='cuda')
    for g, (st, sz) in enumerate(zip(starts, sizes)):
        layout[st:st + sz] = g
    d = torch.empty(m, n, device='cuda', dtype=torch.bfloat16)

    def fn():
        deep_gemm.m_grouped_fp8_fp4_gemm_nt_contiguous((aq, asf), (bq, bsf), d, layout, recipe_a=(1, 128),
                                                       recipe_b=(1, 32))

    fn()
    rows = sizes[0]
    a_ref = aq[:rows].float() * asf[:rows].repeat_interleave(128, -1)[:, :k]
    check = _check(d[:rows], a_ref @ w_ref.T)
    seconds = gpu_time(fn, 'gemm_')
    total = sum(sizes)
    return Row(name=f'contiguous fp8xfp4 G={groups} expected_m={expected_m} {n}x{k}', seconds=seconds,
               bytes_read=groups * (n * k // 2 + n * k // 32) + total * k, bytes_written=total * n * 2,
               flops=2.0 * total * n * k, mma='fp8_mma', check=check,
               notes=[f'{total} rows in {groups} groups ({min(sizes)}-{max(sizes)} each), {m} with padding'])


def _bf16_row(m, n, k):
    import torch
    import deep_gemm
    a = torch.randn(m, k, device='cuda', dtype=torch.bfloat16)
    b = torch.randn(n, k, device='cuda', dtype=torch.bfloat16)
    d = torch.empty(m, n, device='cuda', dtype=torch.bfloat16)

    def fn():
        deep_gemm.bf16_gemm_nt(a, b, d)

    fn()
    check = _check(d, a.float() @ b.float().T)
    seconds = gpu_time(fn, 'bf16_gemm')
    return Row(name=f'bf16_gemm_nt {m}x{n}x{k}', seconds=seconds, bytes_read=2 * (m * k + n * k),
               bytes_written=2 * m * n, flops=2.0 * m * n * k, mma='bf16_mma', check=check)


def run(ceilings, ms=(1, 16, 64, 128, 512, 4096), shapes=None) -> list:
    rows = []
    shapes = shapes or ('flash wqkv_a', 'flash wo_b', 'flash shared gate_up', 'pro wqkv_a', 'pro wq_b', 'pro wo_b')
    for name in shapes:
        n, k = V4_LINEARS[name]
        for m in ms:
            if 2.0 * m * n * k > MAX_FLOPS:
                continue
            rows.append(_dense_row(f'fp8_gemm_nt {name} M={m} {n}x{k}', m, n, k))
    for m, n, k in PUBLISHED:
        rows.append(_dense_row(f'fp8_gemm_nt published {m}x{n}x{k}', m, n, k, num_tests=5))
    for bsz in (1, 64, 2048):
        rows.append(_einsum_row(bsz))
    # MoE experts (GEMM.md §4): V4-Flash 256 experts (gate_up 4096 x 4096, down 4096 x 2048), V4-Pro 384 (gate_up
    # 6144 x 7168, down 7168 x 3072); decode = masked, 1-32 tokens on 8-32 active experts; prefill = contiguous
    for active, tokens in ((8, 1), (32, 2), (32, 8), (8, 32)):
        rows.append(_masked_row(256, active, tokens, 4096, 4096))
    for experts, (n, k) in ((256, V4_LINEARS['flash shared down']), (384, V4_LINEARS['pro shared gate_up']),
                            (384, V4_LINEARS['pro shared down'])):
        for active, tokens in ((8, 1), (32, 8)):
            rows.append(_masked_row(experts, active, tokens, n, k))
    for expected_m, (n, k) in ((4096, V4_LINEARS['flash shared gate_up']), (8192, V4_LINEARS['flash shared gate_up']),
                               (4096, V4_LINEARS['pro shared gate_up']), (4096, V4_LINEARS['pro shared down'])):
        rows.append(_contiguous_row(8, expected_m, n, k))
    for m, n, k in ((16, 4096, 4096), (4096, 4096, 4096), (4096, 2112, 7168), (4096, 7168, 4096)):
        rows.append(_bf16_row(m, n, k))
    return rows
