"""Measure this GPU's ceilings with our own micro-kernels (same run as the kernels they bound)."""
import torch

from .common import Ceilings


def _time(fn, reps):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return sorted(times)[len(times) // 2]


def measure(buffer_bytes=2 << 30, reps=10):
    import deep_gemm
    ext = deep_gemm._C
    buf = torch.empty(buffer_bytes, dtype=torch.uint8, device='cuda')
    buf.random_()
    read_s = _time(lambda: ext.launch_ceiling('read', buf), reps)
    write_s = _time(lambda: ext.launch_ceiling('write', buf), reps)
    sink = torch.zeros(16, dtype=torch.float32, device='cuda')
    num_sms = deep_gemm.get_num_sms()
    blocks_per_sm, threads, accum, iters = 4, 256, 8, 2048
    warps = num_sms * blocks_per_sm * threads // 32
    major, _ = torch.cuda.get_device_capability()
    fp8_kind = 'mma_fp8_block_scaled' if major == 12 else 'mma_fp8'
    fp8_s = _time(lambda: ext.launch_ceiling(fp8_kind, sink, iters, blocks_per_sm), reps)
    tf32_s = _time(lambda: ext.launch_ceiling('mma_tf32', sink, iters, blocks_per_sm), reps)
    bf16_s = _time(lambda: ext.launch_ceiling('mma_bf16', sink, iters, blocks_per_sm), reps)
    del buf
    return Ceilings(
        device=f'{torch.cuda.get_device_name()} ({num_sms} SMs)',
        read_bw=buffer_bytes / read_s, write_bw=buffer_bytes / write_s,
        fp8_mma=warps * iters * accum * (2 * 16 * 8 * 32) / fp8_s,
        tf32_mma=warps * iters * accum * (2 * 16 * 8 * 8) / tf32_s,
        bf16_mma=warps * iters * accum * (2 * 16 * 8 * 16) / bf16_s)
