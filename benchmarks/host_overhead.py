"""Warm host overhead (CPU time from call to return, no sync in the loop) of the public calls on tiny inputs,
repeated to show the spread, then a breakdown by stage through internal entry points that run the same code and
stop early (stage 0: pybind argument conversion only; the last stage is the whole call).
Usage: python3 benchmarks/host_overhead.py"""
import statistics

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


def breakdown(title, stages, make_call):
    """Median of 7 runs per stage, and the increment over the previous stage."""
    print(f'\n{title} (median of 7 x 500 calls)')
    prev = 0.0
    for stage, what in stages:
        fn = make_call(stage)
        t = statistics.median(_host_overhead_us(fn, 500) for _ in range(7))
        print(f'  stage {stage:>2}  {what:<58} {t:6.2f} us  (+{t - prev:5.2f})')
        prev = t


breakdown('get_paged_mqa_logits_metadata by stage', [
    (0, 'pybind call + argument conversion'),
    (1, '+ argument checks'),
    (2, '+ device guard + output allocation'),
    (3, '+ kernel lookup + launch config (no driver call)'),
    (-1, '+ driver launch + tensor return (the whole call)'),
], lambda stage: (lambda: deep_gemm._C._paged_metadata_probe(ctx, 64, num_sms, stage)))

breakdown('fp8_paged_mqa_logits by stage', [
    (0, 'pybind call + argument conversion'),
    (1, '+ argument checks'),
    (2, '+ device guard + cached context_lens value check'),
    (3, '+ output allocation'),
    (4, '+ config resolution (env, arch spec, MMA form, flags)'),
    (5, '+ kernel lookup + launch config (no driver call)'),
    (-1, '+ driver launch + tensor return (the whole call)'),
], lambda stage: (lambda: deep_gemm._C._fp8_paged_mqa_logits_probe(q, kv, w, ctx, bt, meta, 256, False, None, stage)))

print('\nreferences')
for name, fn in {
    'python no-op lambda call': lambda: None,
    'torch.empty(2, 1024, device=cuda)': lambda: torch.empty(2, 1024, device='cuda'),
    'deep_gemm.get_num_sms()': lambda: deep_gemm.get_num_sms(),
}.items():
    print(f'  {name:<66} {statistics.median(_host_overhead_us(fn, 500) for _ in range(7)):6.2f} us')
# The floor of one launch: a C++ loop of 500 launches of an empty JIT kernel, CPU time per launch (median of 7)
for mode, name in ((0, 'launch floor: cuLaunchKernelEx of the CUkernel (old path)'),
                   (1, 'launch floor: cuLaunchKernel of the cached CUfunction (new path)'),
                   (2, 'launch floor: cudaLaunchKernel (runtime, cudaLibrary kernel)')):
    try:
        t = statistics.median(deep_gemm._C._launch_overhead_probe(mode, 500) for _ in range(7))
        print(f'  {name:<66} {t:6.2f} us')
    except Exception as e:  # noqa: BLE001 (a reference line only: report and go on)
        print(f'  {name:<66} failed: {e}')
