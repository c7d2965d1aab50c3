"""Ragged (prefill) MQA logits: causal prefill of S = 4096 queries over N keys, H = 64, D = 128, in FP8 and FP4,
plus the clean pass (-inf outside each row's range) alone, against write bandwidth."""
import torch

from .common import Row, gpu_time

H, D, S = 64, 128, 4096


def _inputs(n, seed=0):
    from ..utils import per_custom_dims_cast_to_fp8
    g = torch.Generator(device='cuda').manual_seed(seed)
    q = torch.randn(S, H, D, device='cuda', generator=g).bfloat16()
    kv = torch.randn(n, D, device='cuda', generator=g).bfloat16()
    w = torch.randn(S, H, device='cuda', generator=g)
    q_fp8 = q.to(torch.float8_e4m3fn)
    kv_fp8, kv_scale = per_custom_dims_cast_to_fp8(kv, (0, ), False)
    # Causal: query i sits at position n - S + i and sees keys [0, n - S + i + 1)
    ke = torch.arange(n - S + 1, n + 1, device='cuda', dtype=torch.int32)
    ks = torch.zeros_like(ke)
    return q_fp8, kv_fp8.contiguous(), kv_scale.contiguous(), w, ks, ke


def _check(out, q_fp8, kv_fp8, kv_scale, w, ks, ke, clean, num_rows=16):
    """calc_diff of a sample of rows against a float64 reference; with `clean`, the -inf mask exactly."""
    from ..testing import calc_diff
    n = kv_fp8.shape[0]
    rows = torch.linspace(0, S - 1, num_rows, device='cuda').long()
    k = kv_fp8.double()
    got, ref = [], []
    mask_ok = True
    for r in rows.tolist():
        lo, hi = int(ks[r]), int(ke[r])
        score = q_fp8[r].double() @ k[lo:hi].T                           # [H, hi - lo]
        scale = 1.0 if kv_scale is None else kv_scale[lo:hi].double()
        ref.append((score.relu() * w[r].double()[:, None]).sum(0) * scale)
        got.append(out[r, lo:hi].double())
        if clean:
            j = torch.arange(n, device='cuda')
            mask_ok &= bool(torch.equal(torch.isneginf(out[r]), (j < lo) | (j >= hi)))
    diff = calc_diff(torch.cat(got), torch.cat(ref))
    ok = diff < 1e-5 and mask_ok
    return f'{"ok" if ok else "FAIL"} diff {diff:.1e}' + ('' if mask_ok else ' mask mismatch')


def run(ceilings) -> list:
    import deep_gemm
    rows = []
    for n in (16384, 65536):
        q_fp8, kv_fp8, kv_scale, w, ks, ke = _inputs(n)
        pairs = int((ke - ks).sum().item())
        masked = S * n - pairs

        def kernel_only():
            return deep_gemm.fp8_mqa_logits(q_fp8, (kv_fp8, kv_scale), w, ks, ke, clean_logits=False)

        def with_clean():
            return deep_gemm.fp8_mqa_logits(q_fp8, (kv_fp8, kv_scale), w, ks, ke, clean_logits=True)

        check = _check(kernel_only(), q_fp8, kv_fp8, kv_scale, w, ks, ke, clean=False)
        t = gpu_time(kernel_only, 'mqa_logits')
        bytes_read = (q_fp8.numel() + kv_fp8.numel() + kv_scale.numel() * 4 + w.numel() * 4 + 2 * S * 4)
        rows.append(Row(name=f'mqa_logits S={S} N={n // 1024}K H={H} D={D} causal', seconds=t,
                        bytes_read=bytes_read, bytes_written=pairs * 4, flops=2 * H * D * pairs, check=check))

        # The clean pass alone (the `clean_logits` kernel of a call with clean_logits=True)
        check = _check(with_clean(), q_fp8, kv_fp8, kv_scale, w, ks, ke, clean=True)
        t = gpu_time(with_clean, 'clean_logits')
        rows.append(Row(name=f'clean_logits (ragged) S={S} N={n // 1024}K', seconds=t,
                        bytes_read=2 * S * 4, bytes_written=masked * 4, flops=0, check=check))
        del q_fp8, kv_fp8, kv_scale, w, ks, ke
        torch.cuda.empty_cache()

    # FP4 q and keys (packed e2m1 + UE8M0 scales per 32 elements), N = 16K
    from ..utils.fp4_cache import dequantize_fp4, quantize_fp4
    n = 16384
    g = torch.Generator(device='cuda').manual_seed(1)
    q_fp4, q_sf = quantize_fp4(torch.randn(S, H, D, device='cuda', generator=g).bfloat16())
    k_fp4, k_sf = quantize_fp4(torch.randn(n, D, device='cuda', generator=g).bfloat16())
    w = torch.randn(S, H, device='cuda', generator=g)
    ke = torch.arange(n - S + 1, n + 1, device='cuda', dtype=torch.int32)
    ks = torch.zeros_like(ke)
    pairs = int((ke - ks).sum().item())

    def fp4_kernel():
        return deep_gemm.fp8_fp4_mqa_logits((q_fp4, q_sf), (k_fp4, k_sf), w, ks, ke, clean_logits=False)

    check = _check(fp4_kernel(), dequantize_fp4(q_fp4, q_sf), dequantize_fp4(k_fp4, k_sf), None, w, ks, ke,
                   clean=False)
    t = gpu_time(fp4_kernel, 'mqa_logits')
    bytes_read = q_fp4.numel() + q_sf.numel() * 4 + k_fp4.numel() + k_sf.numel() * 4 + w.numel() * 4 + 2 * S * 4
    arch = torch.cuda.get_device_capability()
    form = ('native block-scaled FP4 (OMMA m16n8k64), unless DG_SM120_FP4_MMA=portable or its cross-check failed'
            if arch[0] == 12 else 'the portable form (FP4 dequantized to bf16 + bf16 m16n8k16 mma.sync)')
    rows.append(Row(name=f'fp4 mqa_logits S={S} N={n // 1024}K H={H} D={D} causal', seconds=t,
                    bytes_read=bytes_read, bytes_written=pairs * 4, flops=2 * H * D * pairs, mma='fp4_mma',
                    check=check,
                    notes=[f'this GPU (sm_{arch[0]}{arch[1]}) runs {form}; the floor here uses the FP8 mma.sync '
                           f'ceiling, the SM120 columns the cards\' FP4 peaks (SM120.md §1)']))
    return rows
