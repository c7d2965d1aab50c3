"""FP8 GEMM calls for `ncu` to explain where a launch's time goes beyond the main loop (docs/PERF.md, "Where the time
goes": run G1 fitted 6.5-21 us per launch and 1.3-4.9 us per unit outside the k-block loop, growing with the M tile).

    DG_SM120_MODE=1 DG_PRINT_CONFIGS=1 ncu --clock-control none --set full -k regex:sm120_fp8_gemm \
        --launch-skip 2 --launch-count 1 python3 benchmarks/ncu_gemm.py --shape wqkv_a --m 128
    bash benchmarks/device_check.sh build "" "" with NCU_GEMM=1   (the shapes below, a few metrics each)

Each shape runs three warm calls; profile the third (`--launch-skip 2 --launch-count 1`). The metrics to read:
`gpu__time_duration.sum` against the bench's time, `sm__cycles_active.avg` vs `.max` (imbalance between SMs: the
persistent grid's units per CTA), `smsp__average_warp_latency_issue_stalled_*` (barrier / long scoreboard /
math-pipe waits), `dram__bytes_read.sum` (the floor's bytes), `lts__t_bytes.sum` (the split-K slots' traffic).
The shapes and their plan (tiles, K splits, grid) are printed with `DG_PRINT_CONFIGS=1`.
"""
import argparse

import torch

import deep_gemm

# DeepSeek-V4 shapes of docs/PERF.md's GEMM table: name -> (N, K)
SHAPES = {'wqkv_a': (1536, 4096), 'wo_b': (4096, 8192), 'gate_up': (4096, 4096), 'pro_wqkv_a': (2048, 7168),
          'pro_wo_b': (7168, 16384)}


def fp8_operands(m, n, k):
    a = torch.randn(m, k, device='cuda').to(torch.float8_e4m3fn)
    b = torch.randn(n, k, device='cuda').to(torch.float8_e4m3fn)
    # Packed UE8M0 scales of 1.0 (byte 127), A per row and 128-wide K block, B per row (HW form on sm_120a)
    kb = (k + 127) // 128
    sfa = torch.full((m, (kb + 3) // 4), 0x7f7f7f7f, dtype=torch.int32, device='cuda')
    sfb = torch.full((n, (kb + 3) // 4), 0x7f7f7f7f, dtype=torch.int32, device='cuda')
    return (a, sfa), (b, sfb), torch.empty(m, n, device='cuda', dtype=torch.bfloat16)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--shape', choices=sorted(SHAPES), action='append', help='default: every shape')
    p.add_argument('--m', type=int, action='append', help='rows of A (default: 1, 16, 64, 128, 4096)')
    p.add_argument('--calls', type=int, default=3, help='warm calls per shape (profile the last)')
    p.add_argument('--bf16', action='store_true', help='also bf16_gemm_nt 4096^3 (L2 throughput: its 128 x 128 tiles '
                   'need 64 FLOP per L2 byte, i.e. ~8.4 TB/s at the H200 BF16 ceiling)')
    args = p.parse_args(argv)
    if args.bf16:
        a = torch.randn(4096, 4096, device='cuda', dtype=torch.bfloat16)
        d = torch.empty(4096, 4096, device='cuda', dtype=torch.bfloat16)
        for _ in range(args.calls):
            deep_gemm.bf16_gemm_nt(a, a, d)
        torch.cuda.synchronize()
        print(f'bf16: M=N=K=4096: {args.calls} calls', flush=True)
    for name in args.shape or sorted(SHAPES):
        n, k = SHAPES[name]
        for m in args.m or (1, 16, 64, 128, 4096):
            a, b, d = fp8_operands(m, n, k)
            for _ in range(args.calls):
                deep_gemm.fp8_gemm_nt(a, b, d)
            torch.cuda.synchronize()
            print(f'{name}: M={m} N={n} K={k}: {args.calls} calls', flush=True)


if __name__ == '__main__':
    main()
