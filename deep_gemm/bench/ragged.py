"""Ragged (prefill) MQA logits: causal prefill of S = 4096 queries over N keys, H = 64, D = 128, in FP8 and FP4.

clean_logits=True writes the -inf columns inside the logits kernel (one launch), so its cost is measured as the
difference between clean_logits=True and clean_logits=False in the same run (alternating rounds, medians), next to
the time the -inf bytes take at the measured write ceiling; a windowed case (64 keys per query: almost all bytes are
-inf) shows the fused writes' bandwidth directly. The standalone clean pass is still what the paged path launches:
it has its own row (paged mode)."""
import torch

from .common import Row, gpu_time

H, D, S = 64, 128, 4096


def _inputs(n, seed=0, window=None):
    from ..utils import per_custom_dims_cast_to_fp8
    g = torch.Generator(device='cuda').manual_seed(seed)
    q = torch.randn(S, H, D, device='cuda', generator=g).bfloat16()
    kv = torch.randn(n, D, device='cuda', generator=g).bfloat16()
    w = torch.randn(S, H, device='cuda', generator=g)
    q_fp8 = q.to(torch.float8_e4m3fn)
    kv_fp8, kv_scale = per_custom_dims_cast_to_fp8(kv, (0, ), False)
    # Causal: query i sits at position n - S + i and sees keys [0, n - S + i + 1) (or only the last `window` of them)
    ke = torch.arange(n - S + 1, n + 1, device='cuda', dtype=torch.int32)
    ks = torch.zeros_like(ke) if window is None else (ke - window).clamp(min=0)
    return q_fp8, kv_fp8.contiguous(), kv_scale.contiguous(), w, ks, ke


class _Case:
    """One causal FP8 case of N keys: its inputs, the call with clean_logits off / on, its valid (query, key) pairs
    and masked elements, and the bytes a call must read."""

    def __init__(self, n, seed=0, window=None):
        import deep_gemm
        self.inputs = q_fp8, kv_fp8, kv_scale, w, ks, ke = _inputs(n, seed, window)
        self.pairs = int((ke - ks).sum().item())
        self.masked = S * n - self.pairs
        self.bytes_read = q_fp8.numel() + kv_fp8.numel() + kv_scale.numel() * 4 + w.numel() * 4 + 2 * S * 4
        self.plain = lambda: deep_gemm.fp8_mqa_logits(q_fp8, (kv_fp8, kv_scale), w, ks, ke, clean_logits=False)
        self.clean = lambda: deep_gemm.fp8_mqa_logits(q_fp8, (kv_fp8, kv_scale), w, ks, ke, clean_logits=True)

    def check(self, out, clean):
        return _check(out, *self.inputs, clean=clean)


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
    if clean:
        # Every row: the number of -inf equals the number of masked columns, and the valid part is finite
        lengths = (ke.long() - ks.long())
        mask_ok &= bool(torch.equal(torch.isneginf(out).sum(1), n - lengths))
        mask_ok &= bool(torch.equal(torch.isfinite(out).sum(1), lengths))
    diff = calc_diff(torch.cat(got), torch.cat(ref))
    ok = diff < 1e-5 and mask_ok
    return f'{"ok" if ok else "FAIL"} diff {diff:.1e}' + ('' if mask_ok else ' mask mismatch')


def _time_pair(fn_a, fn_b, name, rounds=3):
    """Median GPU times of two calls measured in alternating rounds, and each one's spread over the rounds."""
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(gpu_time(fn_a, name))
        tb.append(gpu_time(fn_b, name))
    ta.sort()
    tb.sort()
    return ta[rounds // 2], tb[rounds // 2], ta[-1] - ta[0], tb[-1] - tb[0]


def _us(s):
    return f'{s * 1e6:.1f} us'


def run(ceilings) -> list:
    import deep_gemm
    rows = []
    write_bw = ceilings.write_bw
    for n in (16384, 65536):
        c = _Case(n)
        check_plain, check_clean = c.check(c.plain(), clean=False), c.check(c.clean(), clean=True)
        t_plain, t_clean, spread_plain, spread_clean = _time_pair(c.plain, c.clean, 'mqa_logits')
        rows.append(Row(name=f'mqa_logits S={S} N={n // 1024}K H={H} D={D} causal', seconds=t_plain,
                        bytes_read=c.bytes_read, bytes_written=c.pairs * 4, flops=2 * H * D * c.pairs,
                        check=check_plain))
        rows.append(Row(name='  same, clean_logits=True (fused, 1 kernel)', seconds=t_clean,
                        bytes_read=c.bytes_read, bytes_written=(c.pairs + c.masked) * 4, flops=2 * H * D * c.pairs,
                        check=check_clean))

        # The fused clean's cost: the difference, against the time of its -inf bytes at the write ceiling
        diff = t_clean - t_plain
        noise = max(spread_plain, spread_clean)
        ideal = c.masked * 4 / write_bw
        notes = [f'clean_logits=True {_us(t_clean)} - False {_us(t_plain)} = {_us(diff)} (medians of 3 alternating '
                 f'rounds; spread over the rounds up to {_us(noise)}); {c.masked * 4 / 1e6:.1f} MB of -inf take '
                 f'{_us(ideal)} at the measured write ceiling ({write_bw / 1e9:.0f} GB/s)'
                 + (f', so the fused writes run at >= {min(1.0, ideal / diff) * 100:.0f}% of it' if diff > 0 else
                    ', i.e. the fused writes cost nothing measurable here')]
        rows.append(Row(name=f'  fused clean cost N={n // 1024}K (difference)', seconds=max(diff, 1e-9),
                        bytes_written=c.masked * 4, check=check_clean, notes=notes))
        del c
        torch.cuda.empty_cache()

    # Windowed: 64 keys per query, so nearly all of each row is -inf; the fused call is a write-bandwidth test
    n, window = 16384, 64
    c = _Case(n, seed=2, window=window)
    check = c.check(c.clean(), clean=True)
    t_plain, t_clean, _, _ = _time_pair(c.plain, c.clean, 'mqa_logits')
    rows.append(Row(name=f'mqa_logits+clean N={n // 1024}K window={window}', seconds=t_clean, bytes_read=c.bytes_read,
                    bytes_written=(c.pairs + c.masked) * 4, flops=2 * H * D * c.pairs, check=check,
                    notes=[f'clean_logits=False takes {_us(t_plain)} here; the fused call writes '
                           f'{c.masked * 4 / 1e6:.0f} MB of -inf (ideal {_us(c.masked * 4 / write_bw)})']))
    del c
    torch.cuda.empty_cache()

    # The standalone clean pass (paged mode, as fp8_paged_mqa_logits(clean_logits=True) launches it): 2-D context
    # lengths uniform in [1, 64K], B = 128, next_n = 2
    batch, next_n, width = 128, 2, 65536
    g = torch.Generator(device='cuda').manual_seed(3)
    lens = torch.randint(1, width + 1, (batch, next_n), device='cuda', generator=g, dtype=torch.int32)
    logits = torch.zeros(batch * next_n, width, device='cuda')

    def paged_clean():
        deep_gemm._C._clean_logits_paged(logits, lens, next_n)

    paged_clean()
    j = torch.arange(width, device='cuda')[None, :]
    expect = j >= lens.reshape(-1, 1).long()
    ok = bool(torch.equal(torch.isneginf(logits), expect)) and bool((logits[~expect] == 0).all())
    t = gpu_time(paged_clean, 'clean_logits')
    masked = int((width - lens.long()).sum().item())
    rows.append(Row(name=f'clean_logits (paged) B={batch} next_n={next_n} 64K', seconds=t, bytes_read=lens.numel() * 4,
                    bytes_written=masked * 4, flops=0, check='ok' if ok else 'FAIL mask mismatch'))
    del logits, lens

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
                    notes=[f'this GPU (sm_{arch[0]}{arch[1]}) runs {form}; the floor here uses the BF16 mma.sync '
                           f'ceiling, the SM120 columns the cards\' FP4 peaks (docs/HARDWARE.md §1)']))
    return rows
