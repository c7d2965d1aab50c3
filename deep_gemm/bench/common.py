"""Shared pieces of `python -m deep_gemm.bench`: measured ceilings, timing, and one result row per case."""
from dataclasses import dataclass, field


@dataclass
class Ceilings:
    """What this GPU can do, measured in the same run as the kernels (docs/HARDWARE.md §3)."""
    device: str
    read_bw: float          # bytes/s, a streaming read
    write_bw: float         # bytes/s, a streaming write
    fp8_mma: float          # FLOP/s, an FP8 `mma.sync` m16n8k32 loop with independent accumulators
    tf32_mma: float         # FLOP/s, a TF32 `mma.sync` m16n8k8 loop
    bf16_mma: float = 0.0   # FLOP/s, a BF16 `mma.sync` m16n8k16 loop

    @property
    def fp4_mma(self):
        # Off sm_120a/121a the FP4 kernels run their portable form (bf16 mma.sync on dequantized values), bound by
        # the BF16 loop measured here; on an SM120 card the FP4 peak is its own (SM120_CARDS)
        return self.bf16_mma or self.fp8_mma


# The SM120 cards we project onto (docs/HARDWARE.md §1): DRAM bandwidth, FP8 and TF32 dense peaks (FP32 accumulate)
SM120_CARDS = {
    'RTX PRO 6000': dict(read_bw=1.79e12, write_bw=1.79e12, fp8_mma=1000e12, fp4_mma=2000e12, tf32_mma=125e12),
    'RTX 5090': dict(read_bw=1.79e12, write_bw=1.79e12, fp8_mma=990e12, fp4_mma=1670e12, tf32_mma=105e12),
}


@dataclass
class Row:
    """One benchmark case. `bound` names the ceilings its floor is computed from."""
    name: str
    seconds: float
    bytes_read: float = 0.0
    bytes_written: float = 0.0
    flops: float = 0.0
    mma: str = 'fp8_mma'            # which compute ceiling the flops run against: 'fp8_mma', 'fp4_mma' or 'tf32_mma'
    check: str = ''                 # the correctness check's outcome, e.g. 'diff 3e-9'
    notes: list = field(default_factory=list)

    def floor(self, c) -> float:
        """max(bytes / bandwidth, flops / mma peak) for a ceilings object or dict."""
        get = (lambda k: c[k]) if isinstance(c, dict) else (lambda k: getattr(c, k))
        t_mem = self.bytes_read / get('read_bw') + self.bytes_written / get('write_bw')
        t_mma = self.flops / get(self.mma) if self.flops else 0.0
        return max(t_mem, t_mma)


def gpu_time(fn, kernel_names, num_tests=30):
    """GPU time per call (seconds) of the kernels whose names contain `kernel_names` (str or tuple)."""
    from ..testing import bench_kineto
    return bench_kineto(fn, kernel_names, num_tests=num_tests, suppress_kineto_output=True)
