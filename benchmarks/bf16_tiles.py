"""BF16 GEMM rows against the BF16 `mma.sync` ceiling measured in the same run, with the plan (tile, k block, stages,
grid) each row used: the measurement behind docs/PERF.md's BF16 tile experiments (GEMM section).

    DG_SM120_MODE=1 python3 benchmarks/bf16_tiles.py [--shape MxNxK ...]

Default shapes: the bench's BF16 rows and upstream `test_bf16.py`'s M = 4096 shapes. Each row: GPU time per call
(`deep_gemm.testing` kineto timer, L2 flushed), TFLOP/s, % of the measured BF16 `mma.sync` ceiling, and the plan from
`deep_gemm._C._gemm_plan` for this GPU's SM count (the plan the call itself took).
"""
import argparse
import os

import torch

import deep_gemm
from deep_gemm.bench.ceilings import measure
from deep_gemm.bench.common import gpu_time

SHAPES = [(16, 4096, 4096), (4096, 4096, 4096), (4096, 2112, 7168), (4096, 7168, 4096), (4096, 4096, 7168),
          (4096, 7168, 16384), (4096, 1536, 24576), (4096, 24576, 1536), (4096, 2048, 7168)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shape', action='append', help='MxNxK (repeatable; default: the shapes above)')
    args = p.parse_args(argv)
    shapes = [tuple(int(x) for x in s.split('x')) for s in args.shape] if args.shape else SHAPES
    c = measure()
    major, minor = torch.cuda.get_device_capability()
    target = f'sm_{major}{minor}' + ('a' if major >= 9 else '')
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    mode = os.environ.get('DG_SM120_MODE', '') not in ('', '0')
    print(f'{torch.cuda.get_device_name()}, SM120 mode {"on" if mode else "off"}: BF16 mma.sync ceiling '
          f'{c.bf16_mma / 1e12:.0f} TFLOP/s (measured now)')
    print(f'{"M x N x K":<20} {"time us":>9} {"TFLOP/s":>8} {"of ceil":>8}  plan')
    for m, n, k in shapes:
        a = torch.randn(m, k, device='cuda', dtype=torch.bfloat16)
        b = torch.randn(n, k, device='cuda', dtype=torch.bfloat16)
        d = torch.empty(m, n, device='cuda', dtype=torch.bfloat16)
        deep_gemm.bf16_gemm_nt(a, b, d)
        seconds = gpu_time(lambda: deep_gemm.bf16_gemm_nt(a, b, d), 'bf16_gemm')
        tflops = 2.0 * m * n * k / seconds / 1e12
        plan = deep_gemm._C._gemm_plan(target, 0, m, n, k, type_a=2, type_b=2, sm120_mode=mode, num_sms=sms)
        print(f'{m}x{n}x{k:<10} {seconds * 1e6:9.1f} {tflops:8.1f} {tflops * 1e12 / c.bf16_mma * 100:7.0f}%  '
              f'{plan["block_m"]}x{plan["block_n"]}x{plan["block_k"]} stages={plan["num_stages"]} '
              f'splits={plan["num_splits"]} grid={plan["grid"]}', flush=True)


if __name__ == '__main__':
    main()
