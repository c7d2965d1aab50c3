"""The GEMM bench rows (deep_gemm/bench/gemm.py) in the time model.

Each row's work decomposition comes from the host plan (`_C._gemm_plan`: tiles, K splits, stages, persistent grid for
the card's SM count): units (tile x K split) are dealt to the persistent CTAs round-robin, so CTA c runs the k blocks
of units c, c + grid, ... The MMA form is the one the host picks for the row's scales: the bench passes packed UE8M0
scales (as SGLang does), which sm_120a / sm_121a multiply in the block-scaled MMA (HW); other targets run Promote with
the plain FP8 MMA (the host unpacks the scales to float32 for it)."""
import math

from .predict import WarpGroup, Work
from .rows import register

_V4 = ['fp8_gemm_nt flash wqkv_a M=1 1536x4096', 'fp8_gemm_nt flash wo_b M=64 4096x8192',
       'fp8_gemm_nt pro wo_b M=4096 7168x16384', 'fp8_gemm_nt published 4096x24576x1536']


def _units(m, n, k, plan, groups=1, block_k=128):
    m_tiles, n_tiles = math.ceil(m / plan['block_m']), math.ceil(n / plan['block_n'])
    kb, splits = math.ceil(k / block_k), plan['num_splits']
    per_split = [(kb * (s + 1)) // splits - (kb * s) // splits for s in range(splits)]
    return [per_split[u % splits] for u in range(groups * m_tiles * n_tiles * splits)]


def _gemm_work(t, m, n, k, row, bf16=False):
    from ... import jit
    ext = jit._ext()
    plan = ext._gemm_plan(t.target, 0, m, n, k, type_a=2 if bf16 else 0, type_b=2 if bf16 else 0,
                          sm120_mode=t.sm120_mode, num_sms=t.gpu.sms)
    form = '' if bf16 else (' hw' if t.sm120 else ' promote')
    desc = (rf'^normal {"bf16xbf16" if bf16 else "fp8xfp8"} {plan["block_m"]}x{plan["block_n"]} '
            rf'warps=\d+x\d+ stages={plan["num_stages"]}' + ('' if bf16 else r' sf_k=128/128') + form + '$')
    kernel, spec = t.kernel('bf16_gemm' if bf16 else 'fp8_gemm', desc)
    units = _units(m, n, k, plan, block_k=64 if bf16 else 128)
    grid = plan['grid']
    cta = [sum(units[c::grid]) for c in range(min(grid, len(units)))]
    elem = 2 if bf16 else 1
    block_k = 64 if bf16 else 128
    rd = row.bytes_read if row else (m * k + n * k) * elem
    wr = row.bytes_written if row else m * n * 2
    return Work(kernel=kernel, threads=spec['num_threads'], dynamic_smem=spec['dynamic_smem'], cta_stages=cta,
                groups=[WarpGroup(spec['num_threads'] // 32, ('mma',), 'all')],
                flops_per_stage=2.0 * plan['block_m'] * plan['block_n'] * block_k, bytes_read=rd, bytes_written=wr,
                stage_dram_bytes=(plan['block_m'] + plan['block_n']) * block_k * elem,
                stages_in_flight=plan['num_stages'] - 1, tail_round_trips=2 if plan['num_splits'] > 1 else 0,
                description=spec['description'] + f' splits={plan["num_splits"]} grid={grid}')


@register('gemm', r'^fp8_gemm_nt (?:flash|pro) [\w ]+? M=(?P<m>\d+) (?P<n>\d+)x(?P<k>\d+)$', cases=_V4[:3])
def _dense(t, m, n, k, row=None):
    return _gemm_work(t, int(m), int(n), int(k), row)


@register('gemm', r'^fp8_gemm_nt published (?P<m>\d+)x(?P<n>\d+)x(?P<k>\d+)$', cases=_V4[3:])
def _published(t, m, n, k, row=None):
    return _gemm_work(t, int(m), int(n), int(k), row)


@register('gemm', r'^bf16_gemm_nt (?P<m>\d+)x(?P<n>\d+)x(?P<k>\d+)$', cases=['bf16_gemm_nt 4096x4096x4096'])
def _bf16(t, m, n, k, row=None):
    return _gemm_work(t, int(m), int(n), int(k), row, bf16=True)
