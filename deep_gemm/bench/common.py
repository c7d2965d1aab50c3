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


def _sm120_roofline_cards():
    """The SM120 cards' roofline ceilings (DRAM spec bandwidth, dense MMA peaks with FP32 accumulate in the forms
    our kernels use: block-scaled FP8, native FP4, TF32), from the model's parameter table (model/gpus.py, every
    number sourced there)."""
    from .model import gpus
    cards = {}
    for name in gpus.SM120_CARDS:
        g = gpus.gpu(name)
        peak = lambda kind: g.tensor[kind] * g.sms * g.clock     # noqa: E731
        cards[name] = dict(read_bw=g.dram_bw, write_bw=g.dram_bw, fp8_mma=peak('QMMA.SF.16832.F32.E4M3'),
                           fp4_mma=peak('OMMA.SF.16864.F32.E2M1'), tf32_mma=peak('HMMA.1688.F32.TF32'),
                           bf16_mma=peak('HMMA.16816.F32.BF16'))
    return cards


# The SM120 cards we project onto with the roofline (docs/HARDWARE.md §1): DRAM bandwidth, FP8 / FP4 / TF32 dense peaks
SM120_CARDS = _sm120_roofline_cards()


@dataclass
class Row:
    """One benchmark case. `bound` names the ceilings its floor is computed from."""
    name: str
    seconds: float
    bytes_read: float = 0.0
    bytes_written: float = 0.0
    flops: float = 0.0
    mma: str = 'fp8_mma'            # the compute ceiling the flops run against: 'fp8_mma', 'fp4_mma', 'tf32_mma', 'bf16_mma'
    check: str = ''                 # the correctness check's outcome, e.g. 'diff 3e-9'
    notes: list = field(default_factory=list)
    family: str = ''                # the bench family that measured it ('paged', 'ragged', 'hc')
    model: dict = field(default_factory=dict)   # card label -> the time model's prediction (model/run.py)

    def as_json(self, ceilings=None) -> dict:
        """The row for `--json`: measurement, bytes / FLOPs, this GPU's roofline floor and the model's predictions."""
        return dict(name=self.name, family=self.family, measured_s=self.seconds, bytes_read=self.bytes_read,
                    bytes_written=self.bytes_written, flops=self.flops, mma=self.mma, check=self.check,
                    notes=list(self.notes), floor_s=self.floor(ceilings) if ceilings is not None else None,
                    predictions=self.model)

    def floor(self, c) -> float:
        """max(bytes / bandwidth, flops / mma peak) for a ceilings object or dict."""
        get = (lambda k: c[k]) if isinstance(c, dict) else (lambda k: getattr(c, k))
        t_mem = self.bytes_read / get('read_bw') + self.bytes_written / get('write_bw')
        t_mma = self.flops / get(self.mma) if self.flops else 0.0
        return max(t_mem, t_mma)


def gpu_time(fn, kernel_names, num_tests=30):
    """GPU time per call (seconds) of the kernels whose names contain `kernel_names` (str or tuple); each name must
    match exactly one launch per call (RuntimeError otherwise, so a missing or extra kernel is never timed as 0)."""
    from ..testing.bench import _bench_kineto_per_call
    return _bench_kineto_per_call(fn, kernel_names, num_tests=num_tests)
