"""Paged (decode) FP8 / FP4 MQA logits on DeepSeek-V4 shapes (H = 64, D = 128, block_kv = 64), the schedule metadata
kernel, and the warm host overhead of the calls (one row of its own)."""
import os
import time

import torch

from .common import Row, gpu_time

H, D, BKV = 64, 128, 64


def _inputs(B, ctx_len, next_n, seed=0):
    g = torch.Generator(device='cuda').manual_seed(seed)
    pages_per_req = (ctx_len + BKV - 1) // BKV
    num_pages = B * pages_per_req
    kv = torch.empty(num_pages, BKV * (D + 4), dtype=torch.uint8, device='cuda')
    kv[:, :BKV * D] = torch.randn(num_pages, BKV * D, device='cuda', generator=g).to(torch.float8_e4m3fn) \
        .view(torch.uint8)
    kv[:, BKV * D:] = (torch.rand(num_pages, BKV, device='cuda', generator=g) * 0.1 + 0.01).view(torch.uint8)
    block_table = torch.randperm(num_pages, device='cuda', generator=g).int().view(B, pages_per_req)
    ctx = torch.full((B, next_n), ctx_len, dtype=torch.int32, device='cuda')
    ctx -= torch.arange(next_n - 1, -1, -1, device='cuda', dtype=torch.int32)[None]
    q = torch.randn(B, next_n, H, D, device='cuda', generator=g).to(torch.float8_e4m3fn)
    w = torch.randn(B * next_n, H, device='cuda', generator=g)
    return q, kv.view(num_pages, BKV, 1, D + 4), w, ctx, block_table


def _check(out, q, kv, w, ctx, block_table, num_reqs=3):
    from ..testing import calc_diff
    B, n = ctx.shape
    got, ref = [], []
    for b in torch.linspace(0, B - 1, num_reqs).long().tolist():
        L = int(ctx[b].max())
        pages = block_table[b, :(L + BKV - 1) // BKV].long()
        raw = kv.view(kv.shape[0], -1)[pages]
        k = raw[:, :BKV * D].contiguous().view(torch.float8_e4m3fn).double().view(-1, D)[:L]
        s = raw[:, BKV * D:].contiguous().view(torch.float32).double().view(-1)[:L]
        for t in range(n):
            lt = int(ctx[b, t])
            score = (q[b, t].double() @ k[:lt].T).relu()
            ref.append((score * w[b * n + t].double()[:, None]).sum(0) * s[:lt])
            got.append(out[b * n + t, :lt].double())
    diff = calc_diff(torch.cat(got), torch.cat(ref))
    return f'{"ok" if diff < 1e-5 else "FAIL"} diff {diff:.1e}'


def _fp4_inputs(B, ctx_len, next_n, seed=0):
    """FP4 paged decode inputs: random e2m1 bytes with UE8M0 scales in [2^-4, 2^3] (page layout of
    deep_gemm.utils.fp4_cache); returns (q, q_sf, kv_cache, w, ctx, block_table)."""
    g = torch.Generator(device='cuda').manual_seed(seed)
    pages_per_req = (ctx_len + BKV - 1) // BKV
    num_pages = B * pages_per_req
    row = D // 2
    kv = torch.randint(0, 256, (num_pages, BKV * (row + 4)), dtype=torch.uint8, device='cuda', generator=g)
    kv[:, BKV * row:] = torch.randint(123, 131, (num_pages, BKV * 4), dtype=torch.uint8, device='cuda', generator=g)
    q = torch.randint(-128, 128, (B, next_n, H, row), dtype=torch.int8, device='cuda', generator=g)
    q_sf = torch.randint(123, 131, (B, next_n, H, 4), dtype=torch.uint8, device='cuda', generator=g) \
        .view(torch.int32).view(B, next_n, H)
    block_table = torch.randperm(num_pages, device='cuda', generator=g).int().view(B, pages_per_req)
    ctx = torch.full((B, next_n), ctx_len, dtype=torch.int32, device='cuda')
    ctx -= torch.arange(next_n - 1, -1, -1, device='cuda', dtype=torch.int32)[None]
    w = torch.randn(B * next_n, H, device='cuda', generator=g)
    return q, q_sf, kv.view(num_pages, BKV, 1, row + 4), w, ctx, block_table


def _fp4_check(out, q, q_sf, kv, w, ctx, block_table, num_reqs=3):
    from ..testing import calc_diff
    from ..utils.fp4_cache import dequantize_fp4, unpack_fp4_pages
    B, n = ctx.shape
    packed, sf = unpack_fp4_pages(kv)
    got, ref = [], []
    for b in torch.linspace(0, B - 1, num_reqs).long().tolist():
        L = int(ctx[b].max())
        pages = block_table[b, :(L + BKV - 1) // BKV].long()
        k = dequantize_fp4(packed[pages].reshape(-1, D // 2), sf[pages].reshape(-1)).double()[:L]
        qd = dequantize_fp4(q[b], q_sf[b]).double()
        for t in range(n):
            lt = int(ctx[b, t])
            score = (qd[t] @ k[:lt].T).relu()
            ref.append((score * w[b * n + t].double()[:, None]).sum(0))
            got.append(out[b * n + t, :lt].double())
    diff = calc_diff(torch.cat(got), torch.cat(ref))
    return f'{"ok" if diff < 1e-5 else "FAIL"} diff {diff:.1e}'


def _fp4_rows(num_sms):
    import deep_gemm
    rows = []
    B, ctx_len, next_n = 64, 65536, 1
    q, q_sf, kv, w, ctx, bt = _fp4_inputs(B, ctx_len, next_n)
    meta = deep_gemm.get_paged_mqa_logits_metadata(ctx, BKV, num_sms)

    def call():
        return deep_gemm.fp8_fp4_paged_mqa_logits((q, q_sf), kv, w, ctx, bt, meta, ctx_len, False)

    tokens, valid = B * ctx_len, int(ctx.sum().item())
    check = _fp4_check(call(), q, q_sf, kv, w, ctx, bt)
    t = gpu_time(call, 'sm120_fp4_paged_mqa_logits')
    rows.append(Row(name=f'fp4_paged_mqa_logits B={B} ctx={ctx_len // 1024}K n={next_n}', seconds=t,
                    bytes_read=tokens * (D // 2 + 4) + q.numel() + q_sf.numel() * 4 + w.numel() * 4 + bt.numel() * 4,
                    bytes_written=valid * 4, flops=2 * H * D * valid, mma='fp4_mma', check=check,
                    notes=['the portable FP4 form (every GPU but sm_120a/121a) runs dequantized bf16 mma.sync '
                           'm16n8k16, measured against the BF16 mma.sync ceiling; the SM120 columns use the cards\' '
                           'FP4 peak']))
    del q, q_sf, kv, w, ctx, bt
    torch.cuda.empty_cache()
    return rows


def _host_overhead_us(fn, num_calls=200):
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(num_calls):
        fn()
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize()
    return elapsed / num_calls * 1e6


def run(ceilings) -> list:
    import deep_gemm
    rows = []
    num_sms = deep_gemm.get_num_sms()

    # Warm host overhead on tiny inputs (no sync in the loop; the value check is cached after the first call)
    q, kv, w, ctx, bt = _inputs(2, 256, 1)
    meta = deep_gemm.get_paged_mqa_logits_metadata(ctx, BKV, num_sms)
    host_meta = _host_overhead_us(lambda: deep_gemm.get_paged_mqa_logits_metadata(ctx, BKV, num_sms))
    host_logits = _host_overhead_us(lambda: deep_gemm.fp8_paged_mqa_logits(q, kv, w, ctx, bt, meta, 256, False))
    host_fp4 = _host_overhead_us(lambda: deep_gemm.fp8_fp4_paged_mqa_logits((q, None), kv, w, ctx, bt, meta, 256))
    rows.append(Row(name='host overhead (tiny inputs)', seconds=host_logits * 1e-6, check='CPU time',
                    notes=[f'warm CPU time per call, no sync: fp8_paged_mqa_logits {host_logits:.1f} us (the time '
                           f'column), get_paged_mqa_logits_metadata {host_meta:.1f} us, fp8_fp4_paged_mqa_logits '
                           f'{host_fp4:.1f} us']))

    for B, ctx_len, next_n in ((64, 65536, 1), (64, 8192, 1), (4096, 2048, 1), (64, 32768, 2)):
        q, kv, w, ctx, bt = _inputs(B, ctx_len, next_n)
        meta = deep_gemm.get_paged_mqa_logits_metadata(ctx, BKV, num_sms)

        def call():
            return deep_gemm.fp8_paged_mqa_logits(q, kv, w, ctx, bt, meta, ctx_len, False)

        tokens = B * ctx_len
        valid = int(ctx.sum().item())
        check = _check(call(), q, kv, w, ctx, bt)
        t = gpu_time(call, 'sm120_fp8_paged_mqa_logits')
        rows.append(Row(name=f'paged_mqa_logits B={B} ctx={ctx_len // 1024}K n={next_n}', seconds=t,
                        bytes_read=tokens * (D + 4) + q.numel() + w.numel() * 4 + bt.numel() * 4,
                        bytes_written=valid * 4, flops=2 * H * D * valid, check=check))
        if torch.cuda.get_device_capability()[0] == 12 and B == 64 and next_n == 1:
            # sm_120 only (elsewhere the plain form is the only one): the plain FP8 mma.sync instead of the
            # block-scaled full-rate form, the fallback should the form's cross-check fail
            previous = os.environ.get('DG_SM120_FP8_MMA')
            os.environ['DG_SM120_FP8_MMA'] = 'plain'
            try:
                check = _check(call(), q, kv, w, ctx, bt)
                t = gpu_time(call, 'sm120_fp8_paged_mqa_logits')
            finally:
                if previous is None:
                    os.environ.pop('DG_SM120_FP8_MMA')
                else:
                    os.environ['DG_SM120_FP8_MMA'] = previous
            main = rows[-1]
            rows.append(Row(name='  same, DG_SM120_FP8_MMA=plain', seconds=t, bytes_read=main.bytes_read,
                            bytes_written=main.bytes_written, flops=main.flops, check=check,
                            notes=['sm_120 only: the plain FP8 mma.sync (half rate with FP32 accumulation on '
                                   'GeForce cards) instead of the block-scaled form']))
        del q, kv, w, ctx, bt
        torch.cuda.empty_cache()

    rows.extend(_fp4_rows(num_sms))

    # The metadata kernel: B = 4096 (every request's pages in registers) and B = 16384 (its segment-walk path)
    rows.extend(_metadata_row(num_sms, B) for B in (4096, 16384))
    return rows


def _metadata_row(num_sms, B):
    """The schedule metadata kernel for B requests of random lengths, checked against a searchsorted model."""
    import deep_gemm
    ctx = torch.randint(1, 65536, (B, 1), dtype=torch.int32, device='cuda')
    meta = deep_gemm.get_paged_mqa_logits_metadata(ctx, BKV, num_sms)
    pages = (ctx.view(-1).long() + BKV - 1) // BKV
    total = int(pages.sum())
    s = torch.arange(num_sms, device='cuda', dtype=torch.long) * total // num_sms
    incl = pages.cumsum(0)
    b = torch.searchsorted(incl, s, right=True)
    expect = torch.stack([b, s - (incl[b] - pages[b])], 1).int()
    ok = torch.equal(meta[:num_sms], expect) and meta[num_sms].tolist() == [B, 0]
    t = gpu_time(lambda: deep_gemm.get_paged_mqa_logits_metadata(ctx, BKV, num_sms), 'paged_mqa_logits_metadata')
    return Row(name=f'paged_mqa_logits_metadata B={B}', seconds=t, bytes_read=ctx.numel() * 4 * 2,
               bytes_written=meta.numel() * 4, flops=0, check='ok' if ok else 'FAIL schedule mismatch')
