"""Warm host overhead (CPU time from call to return, no sync in the loop) of the public calls on tiny inputs,
repeated to show the spread. Usage: python3 benchmarks/host_overhead.py"""
import torch

import deep_gemm
from deep_gemm.bench.paged import _host_overhead_us, _inputs


q, kv, w, ctx, bt = _inputs(2, 256, 1)
num_sms = deep_gemm.get_num_sms()
meta = deep_gemm.get_paged_mqa_logits_metadata(ctx, 64, num_sms)
logits = torch.empty(2, 1024, device='cuda')[:, :256]
ks = torch.zeros(2, dtype=torch.int32, device='cuda')
calls = {
    'clean_logits (internal)': lambda: deep_gemm._C.clean_logits_ragged(logits, ks, ks),
    'get_paged_mqa_logits_metadata': lambda: deep_gemm.get_paged_mqa_logits_metadata(ctx, 64, num_sms),
    'fp8_paged_mqa_logits': lambda: deep_gemm.fp8_paged_mqa_logits(q, kv, w, ctx, bt, meta, 256, False),
    'fp8_fp4_paged_mqa_logits': lambda: deep_gemm.fp8_fp4_paged_mqa_logits((q, None), kv, w, ctx, bt, meta, 256),
    'torch.empty (reference)': lambda: torch.empty(2, 1024, device='cuda'),
}
for name, fn in calls.items():
    print(f'{name:<32}', ' '.join(f'{_host_overhead_us(fn, 500):6.1f}' for _ in range(5)), 'us per call')
