"""Warm host overhead (CPU time from call to return, no sync in the loop) of the public calls on tiny inputs, beside
the floors a call cannot go below, measured without any hook in the library:

  - an empty launch of the same shape: torch's own kernel launch with no allocation (`torch.cuda._sleep(0)`), and
    the driver alone, `cuLaunchKernel` of an empty kernel (PTX loaded through ctypes, one launch per Python call);
  - the output allocation: `torch.empty` of each call's output;
  - the Python call itself.

"rest" = call - allocation - driver launch floor: what deep_gemm's own host code (pybind conversion, checks, plan,
kernel lookup, argument packing) costs on this host. Medians of `--repeats` runs of `--calls` calls, with the spread.
Usage: python3 benchmarks/host_overhead.py [--calls 500] [--repeats 7]"""
import argparse
import ctypes
import statistics

import torch

import deep_gemm
from deep_gemm.bench.paged import _host_overhead_us, _inputs

_EMPTY_PTX = b""".version 7.0
.target sm_80
.address_size 64
.visible .entry dg_empty(.param .u64 a, .param .u64 b, .param .u64 c, .param .u32 d) { ret; }
"""


class DriverLaunch:
    """`cuLaunchKernel` of an empty kernel with four arguments (the kinds our kernels take) through ctypes, in the
    current context (torch's primary context) on torch's current stream."""

    def __init__(self):
        torch.cuda.init()
        torch.empty(1, device='cuda')          # makes torch's primary context current in this thread
        self.cuda = ctypes.CDLL('libcuda.so.1')
        self.module, self.function = ctypes.c_void_p(), ctypes.c_void_p()
        self._check(self.cuda.cuModuleLoadData(ctypes.byref(self.module), ctypes.c_char_p(_EMPTY_PTX)),
                    'cuModuleLoadData')
        self._check(self.cuda.cuModuleGetFunction(ctypes.byref(self.function), self.module, b'dg_empty'),
                    'cuModuleGetFunction')
        self.args = [ctypes.c_uint64(0), ctypes.c_uint64(0), ctypes.c_uint64(0), ctypes.c_uint32(0)]
        self.params = (ctypes.c_void_p * 4)(*[ctypes.cast(ctypes.byref(a), ctypes.c_void_p) for a in self.args])
        self.stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
        self.launch = self.cuda.cuLaunchKernel
        self.launch.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p] * 3

    @staticmethod
    def _check(result, what):
        if result != 0:
            raise RuntimeError(f'{what} failed with CUresult {result}')

    def __call__(self):
        self.launch(self.function, 1, 1, 1, 32, 1, 1, 0, self.stream, self.params, None)


def median_us(fn, calls, repeats):
    times = [_host_overhead_us(fn, calls) for _ in range(repeats)]
    return statistics.median(times), min(times), max(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--calls', type=int, default=500)
    parser.add_argument('--repeats', type=int, default=7)
    args = parser.parse_args(argv)
    measure = lambda fn: median_us(fn, args.calls, args.repeats)    # noqa: E731

    # Tiny inputs of every family (the value checks of the paged calls are cached after their first call)
    num_sms = deep_gemm.get_num_sms()
    q, kv, w, ctx, bt = _inputs(2, 256, 1)
    meta = deep_gemm.get_paged_mqa_logits_metadata(ctx, 64, num_sms)
    rq = torch.randn(8, 64, 128, device='cuda').to(torch.float8_e4m3fn)
    rk = torch.randn(256, 128, device='cuda').to(torch.float8_e4m3fn)
    rs, rw = torch.rand(256, device='cuda'), torch.randn(8, 64, device='cuda')
    ks = torch.zeros(8, dtype=torch.int32, device='cuda')
    ke = torch.full((8, ), 256, dtype=torch.int32, device='cuda')
    ha = torch.randn(4, 1024, device='cuda').bfloat16()
    hb, hd, hs = torch.randn(24, 1024, device='cuda'), torch.empty(4, 24, device='cuda'), torch.empty(4, device='cuda')
    clean_buf = torch.empty(2, 1024, device='cuda')[:, :256]
    clean_ks = torch.zeros(2, dtype=torch.int32, device='cuda')

    # (name, call, its output allocation as a torch.empty, or None when the call allocates nothing)
    calls = [
        ('get_paged_mqa_logits_metadata', lambda: deep_gemm.get_paged_mqa_logits_metadata(ctx, 64, num_sms),
         lambda: torch.empty(num_sms + 1, 2, dtype=torch.int32, device='cuda')),
        ('fp8_paged_mqa_logits', lambda: deep_gemm.fp8_paged_mqa_logits(q, kv, w, ctx, bt, meta, 256, False),
         lambda: torch.empty(2, 1024, device='cuda')),
        ('fp8_fp4_paged_mqa_logits', lambda: deep_gemm.fp8_fp4_paged_mqa_logits((q, None), kv, w, ctx, bt, meta, 256),
         lambda: torch.empty(2, 1024, device='cuda')),
        ('fp8_mqa_logits (clean_logits=True)', lambda: deep_gemm.fp8_mqa_logits(rq, (rk, rs), rw, ks, ke),
         lambda: torch.empty(8, 1024, device='cuda')),
        ('tf32_hc_prenorm_gemm', lambda: deep_gemm.tf32_hc_prenorm_gemm(ha, hb, hd, hs), None),
        ('_clean_logits_ragged (test entry point)',
         lambda: deep_gemm._C._clean_logits_ragged(clean_buf, clean_ks, clean_ks), None),
    ]
    floors = {'python no-op call': lambda: None,
              'torch no-op kernel launch (torch.cuda._sleep(0))': lambda: torch.cuda._sleep(0)}
    try:
        floors['driver floor: cuLaunchKernel of an empty kernel (ctypes)'] = DriverLaunch()
    except Exception as e:      # noqa: BLE001 (a reference line only: report and go on)
        print(f'driver floor unavailable: {e}')

    print(f'{torch.cuda.get_device_name()}; CPU time per call, median (min-max) of {args.repeats} x {args.calls} calls\n')
    print('floors')
    floor_us = {}
    for name, fn in floors.items():
        floor_us[name], lo, hi = measure(fn)
        print(f'  {name:<58} {floor_us[name]:6.2f} us ({lo:.2f}-{hi:.2f})')
    launch = floor_us.get('driver floor: cuLaunchKernel of an empty kernel (ctypes)',
                          floor_us['torch no-op kernel launch (torch.cuda._sleep(0))'])

    print('\npublic calls (tiny inputs, warm)                            call     alloc    launch    rest')
    for name, fn, alloc_fn in calls:
        t, lo, hi = measure(fn)
        alloc = measure(alloc_fn)[0] if alloc_fn is not None else 0.0
        print(f'  {name:<56} {t:6.2f} us  {alloc:5.2f}    {launch:5.2f}   {t - alloc - launch:5.2f}   '
              f'(call {lo:.2f}-{hi:.2f})')
    torch.cuda.synchronize()


if __name__ == '__main__':
    main()
