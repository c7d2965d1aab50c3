"""The time model: one kernel launch (its SASS analysis + the host plan's work decomposition) on one GPU.

    predicted = max(DRAM, tensor, issue, latency) + launch overhead + tail

- DRAM: (bytes read + written) / (spec bandwidth x sustained fraction).
- The three SM terms come from a schedule of the grid's CTAs onto the SMs (CTAs in launch order, each onto the
  earliest free slot of `resident` slots per SM), each CTA taking `fixed + stages x per-stage time`. Per stage,
  with the resident CTAs' warps spread over the 4 schedulers (warp slot i on scheduler i % 4):
    tensor   max over schedulers of the tensor unit's busy cycles (instructions x FLOPs / that kind's rate)
    issue    max over schedulers of issue slots (one warp instruction per clock) and of each pipe's cycles
             (fma / imad / alu / fp16 / xu / unpack / mio / lsu, gpus.py `pipes`), and the SM's shared-memory and
             L1 bytes over their bytes per clock: the largest names the sub-term, e.g. 'issue(slots)', 'issue(alu)'
    latency  the slowest warp's own dependent chain (single-warp cycles per iteration from the control bits,
             sass.warp_cycles) and Little's law for the CTA's copy pipeline (a stage's DRAM bytes cannot arrive
             faster than `stages_in_flight` per DRAM round trip); `fixed` adds the straight-line code's single-warp
             cycles and `fill_round_trips` DRAM round trips per CTA
  Each term is the schedule's makespan with only that resource; the prediction uses all of them at once.
- Tail: `tail_round_trips` dependent L2 round trips after the main loop (split sums, atomics).

Loop iterations per warp come from the work, not from the SASS: a warp of a group with role 'mma' runs its hot MMA
loop `flops_per_stage / (loop FLOPs x MMA warps)` times per stage (so ptxas unrolling or split tiles do not matter);
other roles run their hot loop once per stage unless `WarpGroup.work` gives the role's signature units (bytes) per
warp per stage. A group with the MMA role runs, for its other roles, the loop of that role that encloses the MMA
loop when there is one (the stage loop around the per-stage MMA loop).
"""
import heapq
import math
from dataclasses import dataclass, field

from . import sass as sass_mod

TERMS = ('dram', 'tensor', 'issue', 'latency')


@dataclass
class WarpGroup:
    """`warps` warps per CTA that run the hot loops of `roles` ('mma', 'copy', 'load', 'store')."""
    warps: int
    roles: tuple
    name: str = ''
    work: dict = field(default_factory=dict)    # role -> signature units (FLOPs or bytes) per warp per stage


@dataclass
class Work:
    """One launch as the host plans it."""
    kernel: object                  # sass.KernelSass
    threads: int                    # per CTA
    dynamic_smem: int               # bytes per CTA
    cta_stages: list                # pipeline stages of each CTA, in launch (blockIdx) order
    groups: list                    # [WarpGroup], in warp order within the CTA
    flops_per_stage: float = 0.0    # tensor FLOPs per stage per CTA (the MMA loops' iteration count)
    bytes_read: float = 0.0         # DRAM bytes of the whole launch
    bytes_written: float = 0.0
    stage_dram_bytes: float = 0.0   # DRAM bytes one stage of one CTA brings in (0: no Little's-law term)
    stages_in_flight: float = 1.0   # stages a CTA keeps in flight
    fill_round_trips: float = 1.0   # dependent DRAM round trips before a CTA's first stage
    tail_round_trips: float = 0.0   # dependent L2 round trips after the main loops (split sums, atomics)
    cta_units: list = None          # units (tile x K split) of each CTA, where a unit ends with work outside the
                                    # steady loop iteration (the MMA loop's `unit_path`: scheduler, epilogue)
    unit_sum_slots: int = 0         # per unit, iterations of the MMA loop's inner load loop (a split-K closer summing
                                    # the other splits' slots: splits - 1), charged with the unit's end
    cta_fixed_bytes: list = None    # DRAM bytes each CTA moves outside its stages (e.g. a prologue's stores), at its
                                    # SM's share of the DRAM bandwidth
    straight: bool = True           # add the straight-line code once per warp
    description: str = ''
    notes: list = field(default_factory=list)


@dataclass
class Prediction:
    gpu: str
    seconds: float
    terms: dict                     # 'dram' / 'tensor' / 'issue' / 'latency' -> seconds
    binding: str                    # the largest term, with its sub-term: 'DRAM', 'tensor', 'issue(alu)', 'latency(warp)'
    launch: float
    tail: float
    resident: int                   # CTAs per SM
    waves: float
    warps_per_scheduler: float
    detail: dict = field(default_factory=dict)

    def as_dict(self):
        return dict(gpu=self.gpu, seconds=self.seconds, terms=self.terms, binding=self.binding, launch=self.launch,
                    tail=self.tail, resident=self.resident, waves=self.waves,
                    warps_per_scheduler=self.warps_per_scheduler, detail=self.detail)


def occupancy(gpu, threads: int, registers: int, smem: int, max_threads: int = 0) -> tuple:
    """(resident CTAs per SM, what limits it). Registers are allocated per warp in units of 256 (8 per thread)."""
    if threads <= 0:
        raise ValueError(f'occupancy: `threads` must be positive; got {threads}')
    warps = math.ceil(threads / 32)
    regs_per_warp = math.ceil(max(registers, 1) / 8) * 8 * 32
    limits = {
        'threads': gpu.max_threads_per_sm // (warps * 32),
        'blocks': gpu.max_ctas_per_sm,
        'registers': (gpu.regs_per_sm // gpu.schedulers // regs_per_warp) * gpu.schedulers // warps
        if regs_per_warp <= gpu.regs_per_sm // gpu.schedulers else 0,
    }
    if smem > 0:
        limits['shared memory'] = gpu.smem_per_sm // (smem + gpu.smem_reserved_per_block)
    if smem > gpu.smem_per_block:
        limits['shared memory'] = 0
    if registers > gpu.max_regs_per_thread:
        limits['registers'] = 0
    if max_threads and threads > max_threads:
        limits['launch bounds'] = 0
    what = min(limits, key=lambda k: limits[k])
    return limits[what], what


def _schedule(durations, slots: int) -> float:
    """Makespan of CTAs (in launch order) on `slots` identical slots, each CTA onto the earliest free one."""
    if not durations:
        return 0.0
    free = [0.0] * min(slots, len(durations))
    heapq.heapify(free)
    end = 0.0
    for d in durations:
        t = heapq.heappop(free) + d
        end = max(end, t)
        heapq.heappush(free, t)
    return end


def _group_loops(work: Work, kernel):
    """[(group, [(loop, iterations per warp per stage)])], and notes on roles without a loop."""
    mma_warps = sum(g.warps for g in work.groups if 'mma' in g.roles)
    out, notes = [], []
    for g in work.groups:
        loops = []
        mma_loop = kernel.hot_loop('mma') if 'mma' in g.roles else None
        for role in g.roles:
            loop = kernel.hot_loop(role)
            # A group that also runs the MMA loop runs the loop of `role` that encloses it (the stage loop that
            # issues the copies around the per-stage MMA loop), when there is one
            anc = mma_loop.parent if mma_loop is not None and role != 'mma' else None
            while anc is not None and anc.role != role:
                anc = anc.parent
            if anc is not None:
                loop = anc
            if role == 'mma' and loop is not None and work.cta_units:
                loop = loop.per_unit()      # a persistent kernel: steady iterations, the unit ends charged apart
            if loop is None:
                notes.append(f'{g.name or "group"}: no {role} loop in the SASS of {kernel.name}')
                continue
            if role in g.work:
                it = g.work[role] / max(loop.signature(), 1)
            elif role == 'mma':
                if not work.flops_per_stage or not loop.tensor_flops:
                    raise ValueError(f'predict: the mma role of {kernel.name} needs Work.flops_per_stage and a '
                                     f'loop with tensor instructions')
                it = work.flops_per_stage / (loop.tensor_flops * mma_warps)
            else:
                it = 1.0
            loops.append((loop, it))
        out.append((g, loops))
    return out, notes


def _warp_demand(gpu, loops):
    """Per-stage throughput demand of one warp running `loops`: issue slots, tensor cycles, pipe cycles, and the
    shared-memory / L1 bytes it moves."""
    d = dict(issue=0.0, tensor=0.0, smem=0.0, l1=0.0, pipes={})
    for loop, it in loops:
        d['issue'] += it * loop.instructions
        for kind, n in loop.tensor.items():
            d['tensor'] += it * n * gpu.tensor_cycles(kind, loop.kind_flops[kind])
        for pipe, n in loop.pipes.items():
            rate = gpu.pipes.get(pipe)
            if rate and pipe not in ('tensor', 'smem'):
                d['pipes'][pipe] = d['pipes'].get(pipe, 0.0) + it * n / rate
        d['smem'] += it * (loop.bytes.get('smem_load', 0) + loop.bytes.get('smem_store', 0))
        d['l1'] += it * sum(loop.bytes.get(k, 0) for k in ('global_load', 'global_store', 'async_copy', 'local'))
    return d


def latency_table(gpu) -> dict:
    """sass.LATENCY with this GPU's L2 round trip (in its cycles) for LDG / atomics / local memory: the operands our
    kernels stream go through cp.async (their DRAM latency is the Little's-law and fill terms), so an LDG in a hot
    loop reads small re-read data (weights, block table entries, schedule) that hits in L2."""
    t = dict(sass_mod.LATENCY)
    for k in ('global_load', 'atomic', 'local'):
        t[k] = gpu.l2_latency * gpu.clock
    return t


def _periods(iterations, max_stages=16):
    """The fewest stages N (<= max_stages) over which every loop runs a whole number of iterations (within 5%)."""
    for n in range(1, max_stages + 1):
        if all(abs(it * n - round(it * n)) <= 0.05 * max(1.0, it * n) for it in iterations):
            return n
    return max_stages


class _Program:
    """One warp's instruction stream for a number of stages: each loop's path repeated round(it x stages) times,
    loops in the order given. Costs per instruction are precomputed for one GPU."""

    def __init__(self, loops, stages, gpu, lat):
        self.ins = []
        for loop, it in loops:
            reps = int(round(it * stages))
            self.ins.extend([loop.instrs[i] for i in loop.path] * reps)
        self.cost = [_cost(ins, gpu, lat) for ins in self.ins]


def _cost(ins, gpu, lat):
    """(pipe, busy cycles of that pipe, result latency if it sets a scoreboard, stall, wait mask, write sb, read sb)."""
    c = ins.ctrl
    pipe, busy = None, 0.0
    if not ins.never:
        if ins.klass == 'tensor':
            kind, flops = sass_mod.tensor_kind(ins.opcode)
            pipe, busy = 'tensor', gpu.tensor_cycles(kind, flops)
        elif ins.pipe and ins.pipe not in ('smem', 'tensor') and gpu.pipes.get(ins.pipe):
            pipe, busy = ins.pipe, 1.0 / gpu.pipes[ins.pipe]
    return (pipe, busy, sass_mod.latency_of(ins, lat), max(1, c.stall), c.wait_mask, c.write_sb, c.read_sb)


def simulate_scheduler(programs, issue_rate=1.0):
    """Cycles one scheduler needs to issue `programs` (one instruction list per warp, `_Program`), and the busy
    cycles of each pipe. Each cycle it issues the next instruction of the first ready warp after the one that
    issued last (loose round robin); a warp is ready when its previous instruction's stall count has elapsed,
    the scoreboards it waits on are released (variable-latency results) and the pipe it needs is free (tensor:
    that kind's cycles per instruction; others 1 / rate)."""
    n = len(programs)
    pcs = [0] * n
    nxt = [0.0] * n
    sb = [[0.0] * 6 for _ in range(n)]
    free = {}
    busy = {'issue': 0.0}
    t, last = 0.0, n - 1
    left = sum(len(p.ins) for p in programs)
    step = 1.0 / issue_rate
    while left:
        issued = False
        soonest = math.inf
        for j in range(n):
            w = (last + 1 + j) % n
            p = programs[w]
            if pcs[w] >= len(p.ins):
                continue
            pipe, cyc, lat, stall, wait, wsb, rsb = p.cost[pcs[w]]
            ready = nxt[w]
            if wait:
                for b in range(6):
                    if wait >> b & 1 and sb[w][b] > ready:
                        ready = sb[w][b]
            if pipe is not None and free.get(pipe, 0.0) > ready:
                ready = free[pipe]
            if ready <= t:
                if pipe is not None:
                    free[pipe] = t + cyc
                    busy[pipe] = busy.get(pipe, 0.0) + cyc
                if wsb < 6:
                    sb[w][wsb] = t + lat
                if rsb < 6:
                    sb[w][rsb] = max(sb[w][rsb], t + 10)
                nxt[w] = t + stall
                pcs[w] += 1
                left -= 1
                busy['issue'] += step
                last, issued = w, True
                break
            soonest = min(soonest, ready)
        t = t + step if issued else max(t + step, soonest)
    end = max([t] + nxt + list(free.values()))     # the last instructions' pipes drain too
    return end, busy


_sim_cache = {}


def _simulate_sm(gpu, lat, warp_loops, schedulers, max_instructions=60000):
    """Per-stage cycles of one SM: each scheduler simulated over N stages of its warps' programs (N makes the loop
    iterations whole), and the busy cycles of each pipe per stage (the busiest scheduler's)."""
    its = [it for loops in warp_loops for _, it in loops if it > 0]
    n = _periods(its) if its else 1
    worst, worst_busy = 0.0, {}
    for s in range(schedulers):
        mine = [warp_loops[w] for w in range(len(warp_loops)) if w % schedulers == s]
        if not mine:
            continue
        size = sum(sum(len(l.path) * it for l, it in loops) for loops in mine) * n
        scale = max(1, math.ceil(size / max_instructions))
        stages = max(1, n // scale) if scale > 1 else n
        key = (id(gpu), s, stages, tuple(tuple((id(l), it) for l, it in loops) for loops in mine))
        if key not in _sim_cache:
            progs = [_Program(loops, stages, gpu, lat) for loops in mine]
            if not any(p.ins for p in progs):
                _sim_cache[key] = (0.0, {})
            else:
                end, busy = simulate_scheduler(progs, gpu.issue)
                _sim_cache[key] = (end / stages, {k: v / stages for k, v in busy.items()})
        cyc, busy = _sim_cache[key]
        if cyc > worst:
            worst, worst_busy = cyc, busy
    return worst, worst_busy


def predict(work: Work, gpu) -> Prediction:
    k = work.kernel
    # cuobjdump's SHARED of a kernel that uses shared memory includes the 1 KB the system reserves per block (cc >= 8:
    # an sm_120a kernel with only dynamic shared memory shows SHARED:1024); `occupancy` adds that reservation itself
    # and checks the per-block opt-in limit against the user's bytes alone
    static = max(0, k.static_smem - gpu.smem_reserved_per_block) if k.static_smem else 0
    smem = static + work.dynamic_smem
    resident, limit = occupancy(gpu, work.threads, k.registers, smem, k.max_threads)
    if resident < 1:
        raise ValueError(f'predict: {k.name} cannot run on {gpu.name}: {limit} allow no CTA per SM '
                         f'({work.threads} threads, {k.registers} registers, {smem} B shared memory)')
    grid = len(work.cta_stages)
    resident_eff = max(1, min(resident, math.ceil(grid / gpu.sms)))
    lat = latency_table(gpu)
    group_loops, notes = _group_loops(work, k)

    # The resident CTAs' warps in slot order (slot i on scheduler i % 4), each with its loops per stage
    warps_per_cta = math.ceil(work.threads / 32)
    warp_loops = []
    sched = [dict(issue=0.0, tensor=0.0, pipes={}) for _ in range(gpu.schedulers)]
    smem_bytes = l1_bytes = 0.0
    for _ in range(resident_eff):
        w0 = len(warp_loops)
        for g, loops in group_loops:
            d = _warp_demand(gpu, loops)
            for _ in range(g.warps):
                s = len(warp_loops) % gpu.schedulers
                sched[s]['issue'] += d['issue']
                sched[s]['tensor'] += d['tensor']
                for p, c in d['pipes'].items():
                    sched[s]['pipes'][p] = sched[s]['pipes'].get(p, 0.0) + c
                warp_loops.append(loops)
            smem_bytes += g.warps * d['smem']
            l1_bytes += g.warps * d['l1']
        warp_loops.extend([[]] * (w0 + warps_per_cta - len(warp_loops)))   # idle warps keep their slots

    # Throughput per stage: tensor, and issue with its pipes and the SM's shared-memory / L1 bytes
    tensor = max(s['tensor'] for s in sched)
    issue_parts = {'slots': max(s['issue'] / gpu.issue for s in sched),
                   'smem': smem_bytes / gpu.smem_bytes_per_clk, 'l1': l1_bytes / gpu.l1_bytes_per_clk}
    for s in sched:
        for p, c in s['pipes'].items():
            issue_parts[p] = max(issue_parts.get(p, 0.0), c)
    issue_name = max(issue_parts, key=lambda x: issue_parts[x])
    issue = issue_parts[issue_name]
    # Latency: the schedulers simulated with their warps' dependencies, and Little's law for the copy pipeline
    sim, sim_busy = _simulate_sm(gpu, lat, warp_loops, gpu.schedulers)
    mem = gpu.dram_latency * gpu.clock / work.stages_in_flight if work.stage_dram_bytes and work.stages_in_flight \
        else 0.0
    latency_parts = {'warp': sim, 'memory': mem}
    latency_name = max(latency_parts, key=lambda x: latency_parts[x])
    latency = max(latency_parts.values())

    straight = [k.instrs[i] for i in k.straight] if work.straight else []
    fixed_latency = sass_mod.warp_cycles(k.instrs, k.straight, lat, iterations=1) if straight else 0.0
    fixed_latency += work.fill_round_trips * gpu.dram_latency * gpu.clock
    fixed_issue = len(straight) * math.ceil(resident_eff * warps_per_cta / gpu.schedulers) / gpu.issue
    slots = gpu.sms * resident_eff

    # Per-CTA bytes outside the stages (a prologue's stores) at the SM's share of DRAM bandwidth, in cycles
    per_sm_bw = gpu.dram_bw * gpu.dram_efficiency / gpu.sms
    extra = [b / per_sm_bw * gpu.clock for b in work.cta_fixed_bytes] if work.cta_fixed_bytes else \
        [0.0] * len(work.cta_stages)

    # Per unit: the MMA loop's unit-ending iteration beyond a steady one (single-warp cycles; issue slots of the
    # resident warps sharing a scheduler)
    unit_loop = k.hot_loop('mma').per_unit() if work.cta_units else None
    units = work.cta_units if unit_loop is not None else [0] * len(work.cta_stages)
    unit_latency = unit_loop.unit_extra_cycles if unit_loop is not None else 0.0
    unit_instructions = unit_loop.unit_extra_instructions if unit_loop is not None else 0
    # A split-K closer also sums the other splits' slots: the MMA loop's inner load loop (the most bytes per
    # iteration), `unit_sum_slots` times, as one warp's chain (the makespan is the closers')
    sums = [c for c in (unit_loop.children if unit_loop is not None else []) if c.role == 'load']
    if sums and work.unit_sum_slots:
        sum_loop = max(sums, key=lambda c: c.signature())
        unit_latency += work.unit_sum_slots * sum_loop.cycles
        unit_instructions += work.unit_sum_slots * sum_loop.instructions
    unit_issue = unit_instructions * math.ceil(resident_eff * warps_per_cta / gpu.schedulers) / gpu.issue

    def makespan(per, fixed, per_unit=0.0):
        return gpu.seconds(_schedule([fixed + x + st * per + u * per_unit
                                      for st, x, u in zip(work.cta_stages, extra, units)], slots))

    terms = {
        'dram': (work.bytes_read + work.bytes_written) / (gpu.dram_bw * gpu.dram_efficiency),
        'tensor': makespan(tensor, 0.0) if not work.cta_fixed_bytes else
        gpu.seconds(_schedule([st * tensor for st in work.cta_stages], slots)),
        'issue': makespan(issue, fixed_issue, unit_issue),
        'latency': makespan(latency, fixed_latency, unit_latency),
    }
    sm_time = makespan(max(tensor, issue, latency), max(fixed_issue, fixed_latency), max(unit_issue, unit_latency))
    tail = work.tail_round_trips * gpu.l2_latency
    seconds = max(terms['dram'], sm_time) + gpu.launch_overhead + tail
    # The binding term: the largest; the simulation (latency) only when it exceeds both throughput terms by 10%
    top = max(('dram', 'tensor', 'issue'), key=lambda x: terms[x])
    if terms['latency'] > 1.1 * max(terms['tensor'], terms['issue']) and terms['latency'] > terms['dram']:
        top = 'latency'
    binding = {'dram': 'DRAM', 'tensor': 'tensor', 'issue': f'issue({issue_name})',
               'latency': f'latency({latency_name})'}[top]
    waves = grid / (gpu.sms * resident)
    wps = resident_eff * warps_per_cta / gpu.schedulers
    detail = dict(per_stage_cycles=dict(tensor=tensor, issue=issue, latency=latency, simulated=sim),
                  per_unit_cycles=dict(issue=unit_issue, latency=unit_latency) if work.cta_units else {},
                  issue_parts=issue_parts, latency_parts=latency_parts, simulated_busy=sim_busy,
                  occupancy_limit=limit, grid=grid, stages_max=max(work.cta_stages) if work.cta_stages else 0,
                  loops={(g.name or '+'.join(g.roles)): [(l.describe(), round(it, 3)) for l, it in loops]
                         for g, loops in group_loops},
                  notes=notes + list(work.notes))
    return Prediction(gpu=gpu.name, seconds=seconds, terms=terms, binding=binding, launch=gpu.launch_overhead,
                      tail=tail, resident=resident, waves=waves, warps_per_scheduler=wps, detail=detail)
