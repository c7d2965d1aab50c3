"""One DeepSeek-V4-shaped tf32_hc_prenorm_gemm call (M=16384, N=24, K=16384), for `ncu` to profile:

    ncu --clock-control none --section SpeedOfLight -k regex:hc_prenorm_gemm python3 benchmarks/ncu_hc.py
"""
import sys

import torch

import deep_gemm

M = int(sys.argv[1]) if len(sys.argv) > 1 else 16384
N, K = 24, 16384
a = torch.randn(M, K, device='cuda').bfloat16()
b = torch.randn(N, K, device='cuda')
d = torch.empty(M, N, device='cuda')
s = torch.empty(M, device='cuda')
for _ in range(2):
    deep_gemm.tf32_hc_prenorm_gemm(a, b, d, s)
torch.cuda.synchronize()
print(f'bytes read (a + b): {a.numel() * 2 + b.numel() * 4}')
