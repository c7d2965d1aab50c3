"""Per-GPU parameters of the time model. Every number carries its source; numbers nobody published are marked
GUESS (the CPU test checks that every entry has one or the other).

Units: clocks in Hz, bandwidth in bytes/s, latencies in seconds, tensor rates in FLOPs per clock per SM (dense, the
accumulator type of the instruction kind), pipe rates in warp instructions per clock per scheduler (4 per SM).

Public sources, cited by key:
  BW-RTX   NVIDIA RTX Blackwell GPU architecture whitepaper / GeForce RTX 5090 spec page: 170 SMs, 2407 MHz boost,
           1792 GB/s, 96 MB L2; tensor TFLOPS listed with sparsity: FP16 838.4, FP8 1676.8, FP4 3352 (dense = half)
  PRO6000  NVIDIA RTX PRO 6000 Blackwell datasheet (as tabulated by hmc-tech.com and fixstars.com): 188 SMs, 2617 MHz
           boost, 1792 GB/s, 128 MB L2; dense FP8 1007 (FP32 accumulate), FP4 2015, BF16 503.8 (FP32 accumulate),
           TF32 251.9 TFLOPS
  GB10     NVIDIA DGX Spark product page and Hot Chips 2025 (The Register, 2025-08): 6144 CUDA cores (48 SMs), 1 PFLOP
           FP4 with sparsity, ~31 TFLOPS FP32, 128 GB LPDDR5X at 273 GB/s
  H100     NVIDIA H100 Tensor Core GPU datasheet / Hopper whitepaper: H100 SXM5 132 SMs, 3.35 TB/s HBM3, 50 MB L2,
           228 KB shared memory per SM (227 KB per block), 64K registers per SM, 2048 threads per SM
  H200     NVIDIA H200 datasheet: same GH100 SM count (132) and L2 as H100 SXM, 4.8 TB/s HBM3e
  ADA-WP   NVIDIA Ada GPU architecture whitepaper: GeForce lists FP8 / FP16 with FP32 accumulate at half the FP16-
           accumulate rate (RTX 4090: 330.3 vs 660.6 TFLOPS FP8); GEMM.md §5 and docs/HARDWARE.md §1 carry the same for the 5090
  CUDA-PG  CUDA C++ Programming Guide, "Arithmetic Instructions" throughput table and "Compute Capabilities"
           table (cc 9.0: 128 FP32, 64 INT32 add/logic/compare, 64 IMAD, 16 conversions, 16 MUFU, 32 shuffles per
           clock per SM; 64K 32-bit registers per SM; 32 resident blocks per SM on 9.0, 32 on 12.x with 1536 threads
           and 100 KB shared memory per SM, 99 KB per block)
  NCU      Nsight Compute Profiling Guide, "Pipelines" (which instructions use the fma / alu / xu / lsu pipes)
  PERF     this repository's docs/PERF.md: ceilings measured by our micro-kernels on the lent H100 (run 12: BF16
           mma.sync m16n8k16 loop 549 TFLOP/s, TF32 273, streaming read 2849 GB/s; SM clock 1980 MHz under load)
  LUO24    Luo et al., "Benchmarking and Dissecting the Nvidia Hopper GPU Architecture", arXiv:2402.13499
           (latencies: shared memory ~30 cycles, L2 hit ~260 cycles, global ~480+ cycles)
"""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class P:
    """A parameter value with its source (a GUESS when it starts with 'GUESS')."""
    value: object
    source: str

    @property
    def guess(self) -> bool:
        return self.source.startswith('GUESS')


# Tensor instruction kinds (sass.tensor_kind) -> FLOPs per clock per SM
_FP8_SF, _FP8, _FP8_F16 = 'QMMA.SF.16832.F32.E4M3', 'QMMA.16832.F32.E4M3', 'QMMA.16832.F16.E4M3'
_FP4_SF = 'OMMA.SF.16864.F32.E2M1'
_BF16, _F16, _F16_F16, _TF32 = 'HMMA.16816.F32.BF16', 'HMMA.16816.F32', 'HMMA.16816.F16', 'HMMA.1688.F32.TF32'


def _every_sm():
    """What the GH100 and GB202/GB10 SMs share."""
    return dict(
        smem_bytes_per_clk=P(128, 'CUDA-PG: 32 banks x 4 bytes per clock per SM (every cc >= 5.0)'),
        l1_bytes_per_clk=P(128, 'GUESS: L1 / LSU data path of 128 B per clock per SM (as shared memory)'),
        schedulers=P(4, 'H100 / BW-RTX whitepapers: 4 SM sub-partitions (one warp scheduler each) per SM'),
        issue=P(1.0, 'H100 / BW-RTX whitepapers: each scheduler dispatches one warp instruction per clock'),
        regs_per_sm=P(65536, 'CUDA-PG: 64K 32-bit registers per SM (cc 9.0 and 12.x)'),
        max_regs_per_thread=P(255, 'CUDA-PG: 255 registers per thread'),
        smem_reserved_per_block=P(1024, 'CUDA-PG: 1 KB of shared memory reserved per block (cc >= 8.0)'),
        launch_overhead=P(1.5e-6, 'GUESS: kernel duration floor as the profiler sees it (start, first CTA, drain); '
                                  'PERF bounds it: the one-CTA metadata kernel takes 2.6 us in all on the H100'),
    )


def _every_sm_pipes():
    """Pipe rates (warp instructions per clock per scheduler) the GH100 and GB202/GB10 SMs share."""
    return {
        'fma': P(1.0, 'CUDA-PG: 128 FP32 FMA per clock per SM (cc 9.0 and 12.x) = 1 warp instruction/clk/scheduler'),
        'xu': P(0.125, 'CUDA-PG: 16 type conversions / MUFU per clock per SM (cc 8.6 to 12.x)'),
        'mio': P(0.25, 'CUDA-PG: 32 shuffle results per clock per SM = 1 warp instruction/clk/SM; S2R / barriers '
                       'through the same queue (NCU); GUESS that they share the rate'),
        'lsu': P(0.25, 'GUESS: one LSU warp instruction per clock per SM (LDG/STG/LDGSTS issue; NCU lsu pipe)'),
    }


def _sm120_common(geforce: bool, source_tensor: str):
    """The GB202/GB10 SM (sm_120 / sm_121): what the RTX parts share. `geforce`: FP8/FP16 with FP32 accumulate at
    half rate (the plain forms); the block-scaled FP8 form runs at the full rate (docs/HARDWARE.md §1)."""
    half = 'ADA-WP (GeForce: FP32-accumulate forms at half the FP16-accumulate rate)'
    full = 'PRO6000 (FP32-accumulate listed at the full rate)'
    return dict(
        tensor={
            _FP8_SF: P(2048, source_tensor + '; block-scaled form at the full FP8 rate: docs/HARDWARE.md §1 / GEMM.md §5 '
                       '(not yet measured on a card)'),
            _FP8: P(1024 if geforce else 2048, half if geforce else full),
            _FP8_F16: P(2048, source_tensor),
            _FP4_SF: P(4096, source_tensor + ' (FP4 = 2x FP8)'),
            _BF16: P(512 if geforce else 1024, half if geforce else full),
            _F16: P(512 if geforce else 1024, half if geforce else full),
            _F16_F16: P(1024, source_tensor + ' (FP16 accumulate = FP8 / 2)'),
            _TF32: P(256 if geforce else 512, (half if geforce else full) + '; TF32 = BF16 / 2'),
        },
        pipes={
            **_every_sm_pipes(),
            'imad': P(0.5, 'GUESS: 64 IMAD per clock per SM as cc 8.6-9.0 (CUDA-PG); cc 12.0 column not checked'),
            'alu': P(0.5, 'GUESS: 64 INT32 add/logic/compare per clock per SM as cc 8.6-9.0 (CUDA-PG); the RTX '
                          'Blackwell whitepaper calls the FP32/INT32 cores unified, which would make this 1.0'),
            'fp16': P(1.0, 'GUESS: 256 half-precision results per clock per SM (HFMA2) as cc 8.6-9.0 (CUDA-PG)'),
            'unpack': P(0.25, 'GUESS: as sm_90 (derived there from PERF\'s FP8 ceiling loop); our sm_120a kernels '
                              'use native FP8/FP4 MMAs and no unpacks in their loops'),
        },
        max_threads_per_sm=P(1536, 'CUDA-PG: 1536 threads (48 warps) per SM on cc 12.x; docs/HARDWARE.md §1'),
        max_ctas_per_sm=P(32, 'CUDA-PG: 32 resident blocks per SM (cc 12.x)'),
        smem_per_sm=P(102400, 'CUDA-PG: 100 KB shared memory per SM on cc 12.x'),
        smem_per_block=P(101376, 'CUDA-PG: 99 KB opt-in per block; docs/HARDWARE.md §1 (101376 B)'),
        dram_efficiency=P(0.88, 'GUESS: sustained streaming read / spec bandwidth for GDDR7 (the H100 reaches '
                                '0.85 of HBM3 spec in PERF); to be replaced by a measured ceiling'),
        dram_latency=P(700e-9, 'GUESS: loaded DRAM round trip on GDDR7 (LUO24 gives ~480 cycles unloaded on HBM)'),
        l2_latency=P(200e-9, 'GUESS: L2 hit round trip (LUO24 order of magnitude)'),
        **_every_sm(),
    )


def _sm90_common():
    return dict(
        tensor={
            _BF16: P(2048, 'PERF: BF16 mma.sync m16n8k16 loop 549 TFLOP/s on 132 SMs at 1.98 GHz = 2100'),
            _F16: P(2048, 'PERF (as BF16: same HMMA.16816.F32 datapath)'),
            _F16_F16: P(2048, 'GUESS: f16-accumulate mma.sync at the f32-accumulate rate (not measured)'),
            _TF32: P(1024, 'PERF: TF32 mma.sync m16n8k8 loop 273 TFLOP/s = 1044 per clock per SM'),
        },
        pipes={
            **_every_sm_pipes(),
            'imad': P(0.5, 'CUDA-PG: 64 32-bit integer multiply-add per clock per SM (cc 9.0)'),
            'alu': P(0.5, 'CUDA-PG: 64 INT32 add / logic / compare / min-max per clock per SM (cc 9.0); NCU: FP32 '
                          'compare/min-max and fast F2FP conversions issue to alu'),
            'fp16': P(1.0, 'CUDA-PG: 256 half-precision results per clock per SM (cc 9.0)'),
            'unpack': P(0.25, 'PERF: the FP8 mma.sync ceiling loop (ptxas emulation: 132 F2FP.F16.E4M3.UNPACK_B, '
                              '32 HMMA, 64 FADD per iteration) runs at 270 TFLOP/s, i.e. 4060 cycles per iteration '
                              'of 8 warps per scheduler; HMMA (2048), issue (2136) and alu at 0.5 (2640) cannot '
                              'explain it, unpacks at 32 per clock per SM (0.25) do (derived: the model\'s '
                              'scheduler simulation of that loop gives 4342 cycles with 0.25)'),
        },
        max_threads_per_sm=P(2048, 'H100 / CUDA-PG'),
        max_ctas_per_sm=P(32, 'CUDA-PG (cc 9.0)'),
        smem_per_sm=P(233472, 'H100: 228 KB per SM'),
        smem_per_block=P(232448, 'H100: 227 KB opt-in per block'),
        dram_latency=P(600e-9, 'GUESS: loaded HBM round trip (LUO24: ~480 cycles unloaded at 1.98 GHz = 250 ns; '
                               'PERF / the hc plan fit ~3 us per round trip under full load, NOT used here)'),
        l2_latency=P(150e-9, 'LUO24: L2 hit ~260 cycles at 1.98 GHz = 130 ns (rounded up for load)'),
        **_every_sm(),
    )


def _card(name, target, sms, clock, dram_bw, l2, common, match, **extra):
    d = dict(common)
    d.update(name=P(name, 'the card'), target=P(target[0], target[1]), sms=sms, clock=clock, dram_bw=dram_bw,
             l2_bytes=l2, match=P(match, 'torch.cuda.get_device_name() substrings'))
    d.update(extra)
    return d


GPUS = {
    'RTX 5090': _card(
        'RTX 5090', ('sm_120a', 'compute capability 12.0 (CUDA-PG); our sm_120a build'),
        P(170, 'BW-RTX'), P(2.407e9, 'BW-RTX: 2407 MHz boost (the tensor TFLOPS are quoted at it)'),
        P(1.792e12, 'BW-RTX: 1792 GB/s GDDR7'), P(96 << 20, 'BW-RTX: 96 MB L2'),
        _sm120_common(True, 'BW-RTX: FP8 838 dense / (170 SMs x 2.407 GHz) = 2048'), ('5090',)),
    'RTX PRO 6000': _card(
        'RTX PRO 6000', ('sm_120a', 'compute capability 12.0; our sm_120a build'),
        P(188, 'PRO6000'), P(2.617e9, 'PRO6000: 2617 MHz boost'), P(1.792e12, 'PRO6000: 1792 GB/s GDDR7'),
        P(128 << 20, 'PRO6000: 128 MB L2'),
        _sm120_common(False, 'PRO6000: FP8 1007 dense / (188 x 2.617 GHz) = 2047'), ('PRO 6000',)),
    'GB10': _card(
        'GB10', ('sm_121a', 'compute capability 12.1 (DGX Spark); our sm_121a build'),
        P(48, 'GB10: 6144 CUDA cores / 128 per SM'),
        P(2.52e9, 'GB10: ~31 TFLOPS FP32 / (6144 cores x 2) = 2.52 GHz (derived)'),
        P(273e9, 'GB10: 273 GB/s LPDDR5X'), P(24 << 20, 'GUESS: 24 MB L2 (not published)'),
        _sm120_common(True, 'GB10: 1 PFLOP FP4 sparse = 500 dense / (48 x 2.52 GHz) = 4133 FP4 -> 2048 FP8; GUESS '
                            'that the plain forms run at GeForce half rate'),
        ('GB10', 'DGX Spark'),
        dram_efficiency=P(0.85, 'GUESS: LPDDR5X sustained / spec'),
        dram_latency=P(800e-9, 'GUESS: LPDDR5X round trip')),
    'H100': _card(
        'H100', ('sm_90a', 'compute capability 9.0; the sm_90a build runs in SM120 mode'),
        P(132, 'H100 (SXM5)'), P(1.98e9, 'PERF: SM clock 1980 MHz under load (H100 SXM5 max boost)'),
        P(3.35e12, 'H100: 3.35 TB/s HBM3 (SXM5)'), P(50 << 20, 'H100: 50 MB L2'), _sm90_common(), ('H100',),
        dram_efficiency=P(0.85, 'PERF: streaming read 2849 GB/s measured / 3350 spec')),
    'H200': _card(
        'H200', ('sm_90a', 'compute capability 9.0; the sm_90a build runs in SM120 mode'),
        P(132, 'H200'), P(1.98e9, 'H200: GH100 at 1980 MHz max boost (as H100 SXM5)'),
        P(4.8e12, 'H200: 4.8 TB/s HBM3e'), P(50 << 20, 'H200: 50 MB L2 (GH100)'), _sm90_common(), ('H200',),
        dram_efficiency=P(0.80, 'PERF (run G1, 2026-12-03): streaming read 3856 GB/s measured / 4800 spec')),
}

SM120_CARDS = ('RTX 5090', 'RTX PRO 6000', 'GB10')
CALIBRATION_CARDS = ('H100', 'H200')


@dataclass
class Gpu:
    """Plain values of one GPU (`GPUS[name]` without the sources); `sources[key]` has each one's source."""
    name: str
    target: str
    sms: int
    clock: float
    dram_bw: float
    l2_bytes: int
    tensor: dict
    pipes: dict
    smem_bytes_per_clk: float
    l1_bytes_per_clk: float
    schedulers: int
    issue: float
    regs_per_sm: int
    max_regs_per_thread: int
    max_threads_per_sm: int
    max_ctas_per_sm: int
    smem_per_sm: int
    smem_per_block: int
    smem_reserved_per_block: int
    dram_efficiency: float
    dram_latency: float
    l2_latency: float
    launch_overhead: float
    match: tuple = ()
    sources: dict = field(default_factory=dict)

    def tensor_cycles(self, kind: str, flops: int) -> float:
        """Cycles one scheduler's tensor unit is busy for one instruction of `kind` (a quarter of the SM's rate)."""
        rate = self.tensor.get(kind)
        if rate is None:
            raise KeyError(f'Gpu.tensor_cycles: no tensor rate for {kind!r} on {self.name} '
                           f'(known: {sorted(self.tensor)}): add it to gpus.py with its source')
        return flops / (rate / self.schedulers)

    def cycles(self, seconds: float) -> float:
        return seconds * self.clock

    def seconds(self, cycles: float) -> float:
        return cycles / self.clock


def flatten_sources(name: str) -> dict:
    """{'key' or 'tensor.KIND' / 'pipes.PIPE': P} of one table entry."""
    out = {}
    for k, v in GPUS[name].items():
        if isinstance(v, dict):
            for kk, vv in v.items():
                out[f'{k}.{kk}'] = vv
        else:
            out[k] = v
    return out


def gpu(name: str, **overrides) -> Gpu:
    if name not in GPUS:
        raise ValueError(f'gpus.gpu: `name` must be one of {sorted(GPUS)}; got {name!r}')
    d = {}
    for k, v in GPUS[name].items():
        d[k] = {kk: vv.value for kk, vv in v.items()} if isinstance(v, dict) else v.value
    d.update(overrides)
    return Gpu(sources=flatten_sources(name), **d)


def gpu_for_device(device_name: str, num_sms: int = None):
    """The table entry of a torch device name (e.g. 'NVIDIA H100 80GB HBM3'); None when not in the table. With
    `num_sms`, an entry whose SM count differs takes the live count (a partitioned or cut-down part)."""
    for name, d in GPUS.items():
        if any(m in device_name for m in d['match'].value):
            g = gpu(name)
            if num_sms and num_sms != g.sms:
                g = gpu(name, sms=num_sms)
            return g
    return None
