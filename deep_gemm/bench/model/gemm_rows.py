"""The GEMM bench rows (deep_gemm/bench/gemm.py) in the time model.

Each row's work decomposition comes from the host plan (`_C._gemm_plan`: tiles, K splits, stages, persistent grid for
the card's SM count): units (tile x K split) are dealt to the persistent CTAs round-robin, so CTA c runs the k blocks
of units c, c + grid, ... The MMA form is the one the host picks for the row's scales: the bench passes packed UE8M0
scales (as SGLang does), which sm_120a / sm_121a multiply in the block-scaled MMA (HW); other targets run Promote with
the plain FP8 MMA (the host unpacks the scales to float32 for it)."""
import math
import re

from .predict import WarpGroup, Work
from .rows import register

_V4 = ['fp8_gemm_nt flash wqkv_a M=1 1536x4096', 'fp8_gemm_nt flash wo_b M=64 4096x8192',
       'fp8_gemm_nt pro wo_b M=4096 7168x16384', 'fp8_gemm_nt published 4096x24576x1536']


def cta_work(m, n, k, plan, groups=1, block_k=128):
    """[(k blocks, units)] of each persistent CTA under `plan` (a `_C._gemm_plan` dict): units (tile x K split, the
    split fastest) are dealt round-robin, CTA c taking units c, c + grid, ...; split s of a tile covers k blocks
    [kb * s / S, kb * (s + 1) / S). benchmarks/gemm_time_fit.py uses the same decomposition."""
    m_tiles, n_tiles = math.ceil(m / plan['block_m']), math.ceil(n / plan['block_n'])
    kb, splits = math.ceil(k / block_k), plan['num_splits']
    per_split = [(kb * (s + 1)) // splits - (kb * s) // splits for s in range(splits)]
    units = [per_split[u % splits] for u in range(groups * m_tiles * n_tiles * splits)]
    grid = plan['grid']
    return [(sum(units[c::grid]), len(units[c::grid])) for c in range(min(grid, len(units)))]


_KIND = {'normal': 0, 'm-contiguous': 1, 'm-masked': 3}


def _gemm_work(t, m, n, k, row, bf16=False, kind='normal', groups=1, fp4_b=False, planned_groups=None, total_m=0):
    """The Work of one GEMM launch: `groups` groups of m x n x k that have rows (batched heads, or the active experts
    of a masked call, whose plan sees `planned_groups` groups in all); a contiguous layout: `total_m` rows in all
    (padding included), planned for `m` rows per group as the host does (its M tiles run over all rows)."""
    from ... import jit
    ext = jit._ext()
    plan = ext._gemm_plan(t.target, _KIND[kind], m, n, k, num_groups=planned_groups or groups,
                          type_a=2 if bf16 else 0, type_b=2 if bf16 else (1 if fp4_b else 0),
                          gran_k_b=32 if fp4_b else 128, max_block_m=t.max_block_m, sm120_mode=t.sm120_mode,
                          num_sms=t.gpu.sms, total_m=total_m)
    form = '' if bf16 else (' hw' if t.sm120 else ' promote')
    combo = 'bf16xbf16' if bf16 else ('fp8xfp4' if fp4_b else 'fp8xfp8')
    sf = '' if bf16 else (' sf_k=128/32' if fp4_b else ' sf_k=128/128')
    desc = (rf'^{kind} {combo} {plan["block_m"]}x{plan["block_n"]} warps=\d+x\d+ stages={plan["num_stages"]}'
            + re.escape(sf) + form + '$')
    kernel, spec = t.kernel('bf16_gemm' if bf16 else 'fp8_gemm', desc)
    block_k = plan['block_k']
    work = cta_work(total_m, n, k, plan, block_k=block_k) if total_m else \
        cta_work(m, n, k, plan, groups=groups, block_k=block_k)
    cta = [kb for kb, _ in work]
    grid = plan['grid']
    a_elem, b_elem = (2, 2) if bf16 else (1, 0.5 if fp4_b else 1)
    if row:
        rd, wr = row.bytes_read, row.bytes_written
    elif total_m:
        rd = total_m * k * a_elem + groups * (n * k * b_elem + (n * k // 32 if fp4_b else 0))
        wr = total_m * n * 2
    else:
        rd = groups * (m * k * a_elem + n * k * b_elem + (n * k // 32 if fp4_b else 0))
        wr = groups * m * n * 2
    return Work(kernel=kernel, threads=spec['num_threads'], dynamic_smem=spec['dynamic_smem'], cta_stages=cta,
                cta_units=[u for _, u in work], unit_sum_slots=plan['num_splits'] - 1,
                groups=[WarpGroup(spec['num_threads'] // 32, ('mma',), 'all')],
                flops_per_stage=2.0 * plan['block_m'] * plan['block_n'] * block_k, bytes_read=rd, bytes_written=wr,
                stage_dram_bytes=(plan['block_m'] * a_elem + plan['block_n'] * b_elem) * block_k,
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


@register('gemm', r'^fp8_einsum wo_a b=(?P<b>\d+) h=(?P<h>\d+) (?P<n>\d+)x(?P<k>\d+)$',
          cases=['fp8_einsum wo_a b=64 h=8 1024x4096'])
def _einsum(t, b, h, n, k, row=None):
    # 'bhr,hdr->bhd': one GEMM per head (M = b, N = d, K = r), batched in one launch
    return _gemm_work(t, int(b), int(n), int(k), row, groups=int(h))


@register('gemm', r'^masked fp8xfp4 E=(?P<e>\d+) active=(?P<a>\d+) m=(?P<m>\d+) (?P<n>\d+)x(?P<k>\d+)$',
          cases=['masked fp8xfp4 E=256 active=8 m=1 4096x4096', 'masked fp8xfp4 E=384 active=8 m=1 6144x7168'])
def _masked(t, e, a, m, n, k, row=None):
    # MoE decode: only the `a` active experts have rows (their tiles are the units); the grid is one CTA per SM
    return _gemm_work(t, int(m), int(n), int(k), row, kind='m-masked', groups=int(a), fp4_b=True,
                      planned_groups=int(e))


@register('gemm', r'^contiguous fp8xfp4 G=(?P<g>\d+) expected_m=(?P<e>\d+) (?P<n>\d+)x(?P<k>\d+)$',
          cases=['contiguous fp8xfp4 G=8 expected_m=4096 4096x4096'])
def _contiguous(t, g, e, n, k, row=None):
    # MoE prefill: the bench's fixed group sizes (0.7-1.3x expected), one contiguous A aligned per group
    from ..gemm import contiguous_sizes
    _, _, total = contiguous_sizes(int(g), int(e))
    return _gemm_work(t, max(1, total // int(g)), int(n), int(k), row, kind='m-contiguous', groups=int(g),
                      fp4_b=True, total_m=total)
