"""The SASS analyser: per-iteration instruction mix of a kernel's main loops, from `cuobjdump -sass` of its cubin.

    analyse_cubin(path) -> KernelSass        (one kernel function; resources from `cuobjdump -res-usage`)
    analyse_sass(text, resources) -> KernelSass

What it does, in order:
1. Parses every instruction: address, guard predicate, opcode with modifiers, operands, branch target, and the
   scheduling control bits of its 128-bit encoding (stall cycles, yield, write/read scoreboard, wait mask, reuse;
   the layout NVIDIA's Volta-and-later encodings use, bits 105-125 of the instruction word: Jia et al.,
   "Dissecting the NVIDIA Volta GPU Architecture via Microbenchmarking", arXiv:1804.06826, §2.1; it holds for the
   sm_90a and sm_120a cubins we build: tests/test_sm120_model_cpu.py checks it on dependent chains).
2. Classifies each opcode through `CLASSES` (the first matching row wins): a class (what the instruction does) and
   a pipe (what it occupies besides its issue slot). Every opcode our kernels contain must match a row other than
   the catch-all (`unclassified` lists the misses; the CPU test asserts there are none in our kernels).
3. Builds the control-flow graph, its dominators and natural loops (a back edge is a branch to a block that
   dominates it; out-of-line retry code that jumps back is not a loop of the code it returns to), nested.
4. Per loop, picks one path through one iteration (inner loops counted on their own): the path with the most
   `signature` work (tensor FLOPs if the loop has tensor instructions, else bytes copied to shared memory, else bytes
   loaded or stored), ties broken toward fall-through edges (ptxas lays the common path out as fall-through and
   moves rare code out of line), then toward more instructions. For a persistent kernel whose unit loop ptxas
   merged into the k-block loop, `Loop.per_unit()` gives the steady iteration (through the stage copies, with the
   fewest synchronous global accesses: no scheduler reads, no epilogue stores) and what a unit's last iteration
   adds (predict.py charges it once per unit). Counts along that path: instructions per class,
   tensor instructions per kind, bytes moved per memory kind, and a single-warp cycle estimate from the control
   bits (stall cycles, plus the latency of variable-latency producers a later instruction waits on; `LATENCY`).

Main loops are the innermost loops (no loop inside them) ranked by instruction count; `KernelSass.main_loops`
gives them with a role: 'mma' (has tensor instructions), 'copy' (async copies/TMA, no MMA), 'load', 'store'.
"""
import copy
import functools
import os
import re
import subprocess
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------- classification
# (opcode regex, class, pipe). First match wins; `pipe` names the throughput limit the instruction uses besides its
# issue slot (see gpus.py `pipes`). Classes are what the report counts:
#   tensor      MMA instructions (their kind and FLOPs come from `tensor_kind`)
#   smem_load   LDSM / LDS                     smem_store  STS
#   global_load LDG                            async_copy  LDGSTS (cp.async), UTMALDG / UBLKCP (TMA)
#   global_store STG                           atomic      ATOM / ATOMG / RED
#   local       LDL / STL (register spills)    const_load  LDC / LDCU / ULDC
#   fp32        FFMA / FADD / FMUL / FMNMX / FSETP / FSEL / FCHK
#   fp16        HFMA2 / HADD2 / HMUL2 / HMNMX2 / HSETP2
#   conversion  F2F / F2FP / I2F / F2I / I2FP / F2IP / FRND / I2I (pipes: F2FP ... UNPACK, the FP8/FP4 -> F16
#               unpacks, 'unpack'; other F2FP / I2FP / F2IP 'alu'; the rest 'xu')
#   mufu        MUFU (transcendentals)
#   int         integer / logic / address math (IMAD, IADD3, LOP3, SHF, LEA, ISETP, SEL, PRMT, ...)
#               (pipes: IMAD/IMUL 'imad', the rest 'alu'; FFMA/FADD/FMUL 'fma', FP32 compare/min-max 'alu')
#   move        MOV / S2R / CS2R / P2R / R2P / PLOP3 / SHFL / VOTE / uniform-datapath moves
#   uniform     the uniform datapath's arithmetic (UIADD3, ULOP3, USHF, ...): issue slots, no vector pipe
#   barrier     BAR / SYNCS (mbarrier) / ARRIVES / WARPSYNC / BSSY / BSYNC / MEMBAR / FENCE / ERRBAR / CCTL /
#               ENDCOLLECTIVE
#   wait        DEPBAR (cp.async group wait) / LDGDEPBAR / NANOSLEEP / YIELD
#   control     BRA / EXIT / CALL / RET / BREAK / NOP
CLASSES = [
    (r'^(QMMA|OMMA|HMMA|IMMA|DMMA|BMMA|HGMMA|QGMMA|IGMMA|UTCQMMA|UTCHMMA|UTCOMMA)\b', 'tensor', 'tensor'),
    (r'^LDSM\b', 'smem_load', 'smem'),
    (r'^LDS\b', 'smem_load', 'smem'),
    (r'^STS\b', 'smem_store', 'smem'),
    (r'^ATOMS\b', 'atomic', 'smem'),
    (r'^LDGSTS\b', 'async_copy', 'lsu'),
    (r'^(UTMALDG|UBLKCP|UTMAPF|UTMASTG|UBLKRED|UTMAREDG)\b', 'async_copy', 'lsu'),
    (r'^LDG\b', 'global_load', 'lsu'),
    (r'^LD\b', 'global_load', 'lsu'),
    (r'^STG\b', 'global_store', 'lsu'),
    (r'^ST\b', 'global_store', 'lsu'),
    (r'^(ATOMG|ATOM|RED|REDG)\b', 'atomic', 'lsu'),
    (r'^(LDL|STL)\b', 'local', 'lsu'),
    (r'^(LDC|LDCU|ULDC)\b', 'const_load', None),
    (r'^(FFMA|FADD|FMUL)\b', 'fp32', 'fma'),
    (r'^(FMNMX|FSETP|FSEL|FCHK|FSWZADD|FSET)\b', 'fp32', 'alu'),
    (r'^(HFMA2|HADD2|HMUL2)\b', 'fp16', 'fp16'),
    (r'^(HMNMX2|HSETP2|HSET2)\b', 'fp16', 'alu'),
    (r'^F2FP\.[A-Z0-9.]*UNPACK', 'conversion', 'unpack'),
    (r'^(F2FP|I2FP|F2IP)\b', 'conversion', 'alu'),
    (r'^(F2F|I2F|F2I|FRND|I2I)\b', 'conversion', 'xu'),
    (r'^MUFU\b', 'mufu', 'xu'),
    (r'^(IMAD|IMUL|IDP|IDP4A)\b', 'int', 'imad'),
    (r'^(IADD3|IADD|VIADD|IABS|LOP3|LOP|SHF|SHL|SHR|LEA|ISETP|SEL|PRMT|IMNMX|VIMNMX|VIMNMX3|VIADDMNMX|BMSK|BREV|'
     r'FLO|POPC|SGXT|ISCADD|ICMP|IADD32I|LOP32I|BFE|BFI|VABSDIFF|VABSDIFF4)\b', 'int', 'alu'),
    (r'^(PLOP3|P2R|R2P|PSETP|CSETP)\b', 'move', 'alu'),
    (r'^(MOV|MOV32I|CS2R|S2R|S2UR|R2UR|UMOV|UR2R|SHFL|VOTE|VOTEU|MATCH|REDUX|CREDUX|ELECT|UPLOP3|UP2UR|UR2UP|'
     r'USEL|UPRMT)\b', 'move', None),
    (r'^U[A-Z0-9]+\b', 'uniform', None),
    (r'^(BAR|SYNCS|ARRIVES|WARPSYNC|BSSY|BSYNC|MEMBAR|FENCE|ERRBAR|CGAERRBAR|CCTL|WARPGROUP|B2R|R2B|BMOV|'
     r'ENDCOLLECTIVE|ACQBULK|ACQSHMINIT)\b',
     'barrier', None),
    (r'^(DEPBAR|LDGDEPBAR|NANOSLEEP|YIELD)\b', 'wait', None),
    (r'^(BRA|BRX|JMP|JMX|EXIT|CALL|RET|BREAK|BPT|NOP|KILL|JCAL)\b', 'control', None),
    (r'.', 'unclassified', None),
]
_CLASS_RE = [(re.compile(p), c, pipe) for p, c, pipe in CLASSES]

# Shuffles, special registers and the LSU-issued barriers occupy the LSU/MIO queue too (Nsight Compute
# Profiling Guide, "Pipelines": lsu "also issues special register reads (S2R), shuffles, and CTA-level arrive/wait
# barrier instructions")
_MIO_OPS = re.compile(r'^(SHFL|S2R|BAR|SYNCS|ARRIVES)\b')


@functools.lru_cache(maxsize=None)
def classify(opcode: str):
    """(class, pipe) of an opcode such as 'QMMA.SF.16832.F32.E4M3.E4M3.E8'."""
    for rx, c, pipe in _CLASS_RE:
        if rx.match(opcode):
            if pipe is None and _MIO_OPS.match(opcode):
                pipe = 'mio'
            return c, pipe
    raise AssertionError('unreachable: the catch-all row matches everything')


_SCALE_SUFFIXES = ('E8', 'UE8M0', 'UE4M3')
_INPUT_TYPES = ('E4M3', 'E5M2', 'E2M1', 'E3M2', 'E2M3', 'S8', 'U8', 'S4', 'U4')

# MMA shapes: the digits after the mnemonic, m n k (e.g. 16832 = m16 n8 k32; 1688 = m16 n8 k8)
_MMA_SHAPES = {'16832': (16, 8, 32), '16864': (16, 8, 64), '16816': (16, 8, 16), '1688': (16, 8, 8),
               '1684': (16, 8, 4), '884': (8, 8, 4), '8816': (8, 8, 16), '8832': (8, 8, 32), '16856': (16, 8, 256)}


@functools.lru_cache(maxsize=None)
def tensor_kind(opcode: str):
    """(kind, FLOPs per warp instruction) of a tensor instruction: kind is the opcode up to its operand types, e.g.
    'QMMA.SF.16832.F32.E4M3' (block-scaled FP8), 'QMMA.16832.F32.E4M3' (plain FP8), 'OMMA.SF.16864.F32.E2M1',
    'HMMA.16816.F32.BF16', 'HMMA.16816.F32' (f16 inputs), 'HMMA.1688.F32.TF32'. FLOPs = 2 m n k."""
    parts = opcode.split('.')
    shape = next((p for p in parts if p in _MMA_SHAPES), None)
    flops = 2 * _MMA_SHAPES[shape][0] * _MMA_SHAPES[shape][1] * _MMA_SHAPES[shape][2] if shape else 0
    keep = []
    for p in parts:
        if p in _SCALE_SUFFIXES:
            continue
        if keep and p == keep[-1] and p in _INPUT_TYPES:     # A and B of the same type: name it once
            continue
        keep.append(p)
    return '.'.join(keep), flops


# Bytes one warp instruction moves (all 32 lanes active), by opcode
def _vector_bytes(opcode: str, default: int = 4) -> int:
    parts = opcode.split('.')
    for p, b in (('128', 16), ('64', 8), ('U16', 2), ('S16', 2), ('U8', 1), ('S8', 1)):
        if p in parts:
            return b
    return default


def bytes_moved(opcode: str) -> int:
    """Bytes one warp instruction reads or writes (shared, global or copied), all lanes active."""
    if opcode.startswith('LDSM'):
        # ldmatrix: .M88.{1,2,4} = that many 8x8 matrices of 16-bit (128 bytes each); no suffix = 1
        m = re.search(r'\.M(?:T)?88(?:\.(\d))?', opcode)
        return 128 * int(m.group(1) or 1) if m else 128
    return 32 * _vector_bytes(opcode)


# ---------------------------------------------------------------------------------------------- latencies
# Cycles from issue until a dependent instruction can use the result, for the variable-latency producers (the
# ones that set a scoreboard; fixed-latency ones are covered by the stall counts ptxas encodes). Keyed by class or
# opcode prefix; predict.latency_table replaces the global ones with the GPU's L2 round trip. Sources: Luo et al.,
# "Benchmarking and Dissecting the Nvidia Hopper GPU Architecture", arXiv:2402.13499 (shared memory ~30 cycles, L2
# ~260, DRAM ~480-560 cycles under no load on H800); Jia et al. (Volta/Turing, the same orders). Values are GUESSES
# for a loaded SM where the paper gives unloaded numbers; 'global_load' is an L2 hit (see predict.latency_table).
LATENCY = {
    'smem_load': 30, 'LDSM': 33, 'global_load': 300, 'const_load': 20, 'local': 300, 'move': 20, 'S2R': 25,
    'SHFL': 25, 'mufu': 20, 'conversion': 18, 'atomic': 500, 'barrier': 20, 'wait': 0, 'tensor': 30,
    'fp16': 6, 'fp32': 6, 'int': 6, 'uniform': 6, 'control': 6, 'smem_store': 20, 'global_store': 20,
    'async_copy': 20, 'unclassified': 10,
}


def latency_of(ins, table=None) -> int:
    table = table or LATENCY
    for key in (ins.opcode.split('.')[0], ins.klass):
        if key in table:
            return table[key]
    return 10


# ---------------------------------------------------------------------------------------------- parsing
@dataclass
class Control:
    """The scheduling bits of one instruction (bits 105..125 of the 128-bit word)."""
    stall: int = 1
    yield_: int = 0
    write_sb: int = 7      # 7 = none
    read_sb: int = 7       # 7 = none
    wait_mask: int = 0     # bit i: wait for scoreboard i
    reuse: int = 0

    def encode(self) -> int:
        """The high 64-bit word with these control bits (and no other bits set): decode's inverse."""
        c = (self.stall | self.yield_ << 4 | self.write_sb << 5 | self.read_sb << 8 | self.wait_mask << 11 |
             self.reuse << 17)
        return c << 41

    @staticmethod
    def decode(high: int) -> 'Control':
        c = (high >> 41) & 0x1FFFFF
        return Control(stall=c & 0xF, yield_=(c >> 4) & 1, write_sb=(c >> 5) & 7, read_sb=(c >> 8) & 7,
                       wait_mask=(c >> 11) & 0x3F, reuse=(c >> 17) & 0xF)


@dataclass
class Instr:
    addr: int
    pred: str           # '' or e.g. '@P0', '@!P2', '@!PT' (never executes)
    opcode: str         # mnemonic with modifiers
    operands: str
    ctrl: Control
    target: int = None  # branch target address (BRA / BRX with a literal)
    klass: str = ''
    pipe: str = None

    @property
    def never(self) -> bool:
        return self.pred in ('@!PT', '@!UPT')

    @property
    def conditional(self) -> bool:
        if self.pred != '' and self.pred not in ('@PT', '@UPT'):
            return True
        # A branch may take its (uniform) predicate as an operand: `BRA.U !UP0, 0x160`
        m = _PRED_OPERAND.match(self.operands)
        return self.is_branch and m is not None and m.group(1) not in ('PT', 'UPT')

    @property
    def is_branch(self) -> bool:
        return self.opcode.split('.')[0] in ('BRA', 'BRX', 'JMP', 'JMX')

    @property
    def ends_flow(self) -> bool:
        """Control never falls through (unconditional branch, exit, return)."""
        base = self.opcode.split('.')[0]
        return not self.conditional and (base in ('BRA', 'JMP', 'EXIT', 'RET', 'BRX', 'JMX', 'KILL'))

    def __str__(self):
        return f'/*{self.addr:04x}*/ {self.pred + " " if self.pred else ""}{self.opcode} {self.operands}'


_PRED_OPERAND = re.compile(r'^(!?U?P(?:\d|T))\s*,')
_LINE = re.compile(r'^\s*/\*([0-9a-f]{4,})\*/\s+(.*?);\s*/\*\s*(0x[0-9a-f]{16})\s*\*/\s*$')
_HIGH = re.compile(r'^\s*/\*\s*(0x[0-9a-f]{16})\s*\*/\s*$')
_FUNC = re.compile(r'^\s*Function\s*:\s*(\S+)')
_TARGET = re.compile(r'(?:^|[\s,])(0x[0-9a-f]+)\s*$')


def parse_sass(text: str) -> dict:
    """{function name: [Instr]} from `cuobjdump -sass` output (each instruction on two lines: its low 64 bits with
    the text, then the high 64 bits holding the control bits)."""
    funcs = {}
    current = None
    pending = None
    for line in text.splitlines():
        m = _FUNC.match(line)
        if m:
            current = funcs.setdefault(m.group(1), [])
            pending = None
            continue
        m = _LINE.match(line)
        if m and current is not None:
            addr, body = int(m.group(1), 16), m.group(2).strip()
            pred = ''
            if body.startswith('@'):
                pred, body = body.split(None, 1)
            opcode, _, operands = body.partition(' ')
            klass, pipe = classify(opcode)
            pending = Instr(addr, pred, opcode, operands.strip(), Control(), None, klass, pipe)
            if pending.is_branch:
                t = _TARGET.search(operands.strip())
                if t:
                    pending.target = int(t.group(1), 16)
            current.append(pending)
            continue
        m = _HIGH.match(line)
        if m and pending is not None:
            pending.ctrl = Control.decode(int(m.group(1), 16))
            pending = None
    return funcs


# ---------------------------------------------------------------------------------------------- control flow
@dataclass
class Block:
    index: int
    start: int                  # index into the instruction list
    end: int                    # one past the last instruction
    succ: list = field(default_factory=list)    # [(block index, taken: bool)]
    pred: list = field(default_factory=list)


def build_cfg(instrs):
    """Basic blocks of a function: leaders are the entry, branch targets and instructions after a branch/exit."""
    addr_index = {ins.addr: i for i, ins in enumerate(instrs)}
    leaders = {0}
    for i, ins in enumerate(instrs):
        if ins.is_branch and ins.target in addr_index:
            leaders.add(addr_index[ins.target])
        if ins.is_branch or ins.opcode.split('.')[0] in ('EXIT', 'RET', 'BREAK'):
            if i + 1 < len(instrs):
                leaders.add(i + 1)
    starts = sorted(leaders)
    blocks = [Block(k, s, starts[k + 1] if k + 1 < len(starts) else len(instrs)) for k, s in enumerate(starts)]
    block_of = {b.start: b.index for b in blocks}
    for b in blocks:
        last = instrs[b.end - 1]
        if last.is_branch and last.target in addr_index:
            b.succ.append((block_of[addr_index[last.target]], True))
        if not last.ends_flow and b.end < len(instrs):
            b.succ.append((b.index + 1, False))
    for b in blocks:
        for s, _ in b.succ:
            blocks[s].pred.append(b.index)
    return blocks


def dominators(blocks):
    """Iterative dominator sets (the functions are small: a few thousand instructions)."""
    n = len(blocks)
    reachable = set()
    stack = [0]
    while stack:
        k = stack.pop()
        if k in reachable:
            continue
        reachable.add(k)
        stack.extend(s for s, _ in blocks[k].succ)
    dom = {k: set(reachable) for k in reachable}
    dom[0] = {0}
    order = sorted(reachable)
    changed = True
    while changed:
        changed = False
        for k in order:
            if k == 0:
                continue
            preds = [p for p in blocks[k].pred if p in reachable]
            new = set.intersection(*(dom[p] for p in preds)) if preds else set()
            new = new | {k}
            if new != dom[k]:
                dom[k], changed = new, True
    return dom


@dataclass
class Loop:
    header: int                     # block index
    blocks: set
    latches: list                   # blocks with the back edge
    parent: 'Loop' = None
    children: list = field(default_factory=list)
    # Filled by `count_loop`
    path: list = field(default_factory=list)    # instruction indices of the chosen iteration path (policy 'any')
    # A persistent kernel's view of a loop that holds its unit loop too (`per_unit`): set where a unit's last
    # iteration (most synchronous global accesses) differs from its steady one (fewest); choose_path's policies
    steady: 'Loop' = field(default=None, repr=False)
    unit_path: list = field(default_factory=list)   # (on the steady view) the unit's last iteration
    unit_extra_instructions: int = 0            # unit_path beyond the steady path: instructions, single-warp cycles
    unit_extra_cycles: float = 0.0
    counts: dict = field(default_factory=dict)  # class -> instructions per iteration
    tensor: dict = field(default_factory=dict)  # tensor kind -> instructions per iteration
    tensor_flops: int = 0                       # FLOPs per iteration (one warp)
    kind_flops: dict = field(default_factory=dict)  # tensor kind -> FLOPs of one instruction
    bytes: dict = field(default_factory=dict)   # 'smem_load' / 'smem_store' / 'async_copy' / ... -> bytes
    pipes: dict = field(default_factory=dict)   # pipe -> instructions per iteration
    instructions: int = 0
    cycles: float = 0.0                         # single-warp cycles per iteration (control bits + latencies)
    start_addr: int = 0
    end_addr: int = 0
    instrs: list = field(default=None, repr=False)  # the function's instructions (for re-timing the path)

    @property
    def depth(self) -> int:
        d, p = 0, self.parent
        while p is not None:
            d, p = d + 1, p.parent
        return d

    @property
    def role(self) -> str:
        if self.tensor:
            return 'mma'
        if self.bytes.get('async_copy'):
            return 'copy'
        if self.bytes.get('global_load'):
            return 'load'
        if self.bytes.get('global_store'):
            return 'store'
        return 'other'

    def signature(self) -> float:
        """The work one iteration does, in the unit its role is normalised by (FLOPs or bytes)."""
        role = self.role
        if role == 'mma':
            return self.tensor_flops
        if role == 'copy':
            return self.bytes.get('async_copy', 0)
        if role == 'load':
            return self.bytes.get('global_load', 0)
        if role == 'store':
            return self.bytes.get('global_store', 0)
        return 0

    def per_unit(self) -> 'Loop':
        """This loop as a persistent kernel runs it (steady iterations; `unit_extra_*` once per unit)."""
        return self.steady if self.steady is not None else self

    def describe(self) -> str:
        t = ', '.join(f'{v} {k}' for k, v in sorted(self.tensor.items()))
        c = ', '.join(f'{k} {v}' for k, v in sorted(self.counts.items(), key=lambda kv: -kv[1]))
        return (f'loop 0x{self.start_addr:04x}-0x{self.end_addr:04x} depth {self.depth} role {self.role}: '
                f'{self.instructions} instructions/iteration ({c}){"; tensor " + t if t else ""}; '
                f'~{self.cycles:.0f} cycles for one warp alone' +
                (f' (per unit: steady {self.steady.instructions} instructions ~{self.steady.cycles:.0f} cycles, '
                 f'the last +{self.steady.unit_extra_instructions} instructions '
                 f'+{self.steady.unit_extra_cycles:.0f} cycles)' if self.steady is not None else ''))


def find_loops(blocks):
    dom = dominators(blocks)
    by_header = {}
    for b in blocks:
        if b.index not in dom:
            continue
        for s, _ in b.succ:
            if s in dom[b.index]:        # back edge b -> s
                body = {s, b.index}
                stack = [b.index]
                while stack:
                    k = stack.pop()
                    if k == s:
                        continue
                    for p in blocks[k].pred:
                        if p in dom and p not in body:
                            body.add(p)
                            stack.append(p)
                loop = by_header.setdefault(s, Loop(s, set(), []))
                loop.blocks |= body
                loop.latches.append(b.index)
    loops = sorted(by_header.values(), key=lambda l: len(l.blocks))
    for i, l in enumerate(loops):
        for outer in loops[i + 1:]:
            if l.header in outer.blocks and l.blocks <= outer.blocks and outer is not l:
                l.parent = outer
                outer.children.append(l)
                break
    return loops


def _ins_signature(ins, role):
    if ins.never:
        return 0
    if role == 'mma':
        return tensor_kind(ins.opcode)[1] if ins.klass == 'tensor' else 0
    if role in ('copy', 'load', 'store'):
        want = {'copy': 'async_copy', 'load': 'global_load', 'store': 'global_store'}[role]
        return bytes_moved(ins.opcode) if ins.klass == want else 0
    return 0


def _loop_role(instrs, blocks, loop):
    own = _own_instructions(blocks, loop)
    classes = {instrs[i].klass for i in own if not instrs[i].never}
    if 'tensor' in classes:
        return 'mma'
    for c, r in (('async_copy', 'copy'), ('global_load', 'load'), ('global_store', 'store')):
        if c in classes:
            return r
    return 'other'


def _own_blocks(loop):
    inner = set()
    for c in loop.children:
        inner |= c.blocks
    return loop.blocks - inner


def _own_instructions(blocks, loop):
    return [i for k in _own_blocks(loop) for i in range(blocks[k].start, blocks[k].end)]


def _dag_best_path(instrs, blocks, region, inner_loops, start, ends, weight, better):
    """The best path (a list of instruction indices) from block `start` to any block in `ends` through `region`
    (block indices), with each loop of `inner_loops` collapsed into its header (contributing nothing; left through
    any of its exits) and edges back to `start` dropped. `weight(block) -> (signature, instructions, indices)`;
    `better(a, b)` compares (signature, taken_edges, instructions, path) tuples."""
    inner_of = {}
    for c in inner_loops:
        for k in c.blocks:
            inner_of[k] = c

    def node(k):
        return inner_of[k].header if k in inner_of else k

    def exits_of(n):
        if n in inner_of:
            lp = inner_of[n]
            return [(s, t) for b in lp.blocks for s, t in blocks[b].succ if s not in lp.blocks and s in region]
        return [(s, t) for s, t in blocks[n].succ if s in region]

    nodes = {node(k) for k in region}
    edges = {n: [] for n in nodes}
    for n in nodes:
        for s, taken in exits_of(n):
            t = node(s)
            if t != start and t != n:
                edges[n].append((t, taken))
    # Topological order of the nodes reachable from `start` (acyclic once inner loops are collapsed; should
    # irreducible flow leave a cycle, its nodes follow in address order)
    reach, stack = set(), [start]
    while stack:
        n = stack.pop()
        if n in reach:
            continue
        reach.add(n)
        stack.extend(t for t, _ in edges[n])
    indeg = {n: 0 for n in reach}
    for n in reach:
        for t, _ in edges[n]:
            indeg[t] += 1
    order, ready, seen = [], [start], set()
    while len(order) < len(reach):
        if not ready:
            ready = [min(n for n in reach if n not in seen)]
        n = ready.pop()
        if n in seen:
            continue
        seen.add(n)
        order.append(n)
        for t, _ in edges[n]:
            indeg[t] -= 1
            if indeg[t] <= 0 and t not in seen:
                ready.append(t)

    zero = weight(start)[0]
    zero = tuple(0 for _ in zero) if isinstance(zero, tuple) else 0

    def w(n):
        return (zero, 0, []) if n in inner_of else weight(n)

    def add(a, b):
        return tuple(x + y for x, y in zip(a, b)) if isinstance(a, tuple) else a + b

    sig, nins, rng = w(start)
    best = {start: (sig, 0, nins, rng)}
    for n in order:
        if n not in best:
            continue
        s0, t0, i0, p0 = best[n]
        for t, taken in edges[n]:
            sig, nins, rng = w(t)
            cand = (add(s0, sig), t0 + (1 if taken else 0), i0 + nins, p0 + rng)
            if t not in best or better(cand, best[t]):
                best[t] = cand
    finals = [best[node(e)] for e in ends if node(e) in best]
    if not finals:
        return None
    top = finals[0]
    for f in finals[1:]:
        if better(f, top):
            top = f
    return top[3]


_SYNC_GLOBAL = ('global_load', 'global_store', 'atomic')


def _sync_global(ins) -> int:
    return 0 if ins.never else int(ins.klass in _SYNC_GLOBAL)


def choose_path(instrs, blocks, loop, policy='any'):
    """Instruction indices of one iteration: header to a latch through the loop's own blocks (inner loops are
    entered and left through their header: their bodies are counted as loops of their own). Maximises the role's
    signature, then fall-through edges, then instructions.

    For an MMA or copy loop into which ptxas merged a persistent kernel's unit loop (the k-block loop and, once per
    unit, the scheduler's reads and the epilogue's stores in one loop), `policy` picks between the unit's steady
    iteration and its last one by the synchronous global accesses (LDG / STG / atomics) after the signature and
    the stage copies (the most: both iterations feed the ring): 'steady' the fewest accesses, 'unit' the most.
    'any' (the default) does not look at them: in other kernels a branch around a store is per lane (a divergent
    warp runs both sides), not per unit."""
    role = _loop_role(instrs, blocks, loop)
    sign = {'any': 0, 'steady': -1, 'unit': 1}[policy] if role in ('mma', 'copy') else 0
    # A merged MMA loop's steady and last iterations both issue the stage copies that feed the ring (every thread's
    # share of the producer work): prefer the path through them, not the branch that skips them (taken only in the
    # last kNumStages - 1 iterations of a CTA, when nothing is left to load)
    feeds = 1 if sign != 0 and role == 'mma' else 0

    def weight(k):
        rng = list(range(blocks[k].start, blocks[k].end))
        sig = sum(_ins_signature(instrs[i], role) for i in rng)
        copies = feeds * sum(bytes_moved(instrs[i].opcode) for i in rng
                             if instrs[i].klass == 'async_copy' and not instrs[i].never)
        return (sig, copies, sign * sum(_sync_global(instrs[i]) for i in rng)), len(rng), rng

    def better(a, b):
        return (a[0], -a[1], a[2]) > (b[0], -b[1], b[2])

    path = _dag_best_path(instrs, blocks, loop.blocks, loop.children, loop.header, loop.latches, weight, better)
    if path is None:
        return [i for k in sorted(_own_blocks(loop)) for i in range(blocks[k].start, blocks[k].end)]
    return path


def straight_path(instrs, blocks, loops):
    """The code outside every loop that one warp runs from entry to exit: fall-through edges first, then the
    fewest instructions (the common fast path; rare branches go out of line)."""
    exits = [b.index for b in blocks if not b.succ]
    top = [l for l in loops if l.parent is None]

    def weight(k):
        rng = list(range(blocks[k].start, blocks[k].end))
        return 0, len(rng), rng

    def better(a, b):
        return (-a[1], -a[2]) > (-b[1], -b[2])

    return _dag_best_path(instrs, blocks, set(range(len(blocks))), top, 0, exits, weight, better) or []


def warp_cycles(instrs, path, latency=None, iterations=2, guarded_loads=True):
    """Single-warp cycles per iteration along `path`: each instruction issues at the later of (the previous issue +
    its stall count) and the ready time of every scoreboard it waits on; a variable-latency producer makes its
    write scoreboard ready `latency_of` cycles after it issues (read scoreboards: 10 cycles, operands read).
    Simulated for `iterations` rounds (scoreboards carry over); the last round's length is returned.
    `guarded_loads=False`: a global load under a predicate does not run (its consumers do not wait)."""
    ready = [0.0] * 6
    t = 0.0
    start = 0.0
    for r in range(iterations):
        start = t
        for i in path:
            ins = instrs[i]
            c = ins.ctrl
            for b in range(6):
                if c.wait_mask >> b & 1:
                    t = max(t, ready[b])
            if c.write_sb < 6:
                skip = not guarded_loads and ins.klass == 'global_load' and ins.pred not in ('', '@PT')
                ready[c.write_sb] = t if skip else t + latency_of(ins, latency)
            if c.read_sb < 6:
                ready[c.read_sb] = max(ready[c.read_sb], t + 10)
            t += max(1, c.stall)
    return t - start


def _count_path(loop, instrs, path, latency):
    """Fills `loop`'s per-iteration counts from `path`."""
    counts, tensor, nbytes, pipes = {}, {}, {}, {}
    flops = 0
    for i in path:
        ins = instrs[i]
        klass = 'nop' if ins.never else ins.klass
        counts[klass] = counts.get(klass, 0) + 1
        if ins.never:
            continue
        if ins.pipe:
            pipes[ins.pipe] = pipes.get(ins.pipe, 0) + 1
        if ins.klass == 'tensor':
            kind, f = tensor_kind(ins.opcode)
            tensor[kind] = tensor.get(kind, 0) + 1
            loop.kind_flops[kind] = f
            flops += f
        if ins.klass in ('smem_load', 'smem_store', 'async_copy', 'global_load', 'global_store', 'local'):
            nbytes[ins.klass] = nbytes.get(ins.klass, 0) + bytes_moved(ins.opcode)
    loop.path, loop.instrs = path, instrs
    loop.counts, loop.tensor, loop.tensor_flops, loop.bytes, loop.pipes = counts, tensor, flops, nbytes, pipes
    loop.instructions = len(path)
    loop.cycles = warp_cycles(instrs, path, latency)


def count_loop(instrs, blocks, loop, latency=None):
    _count_path(loop, instrs, choose_path(instrs, blocks, loop), latency)
    loop.start_addr = instrs[blocks[loop.header].start].addr
    loop.end_addr = max(instrs[blocks[k].end - 1].addr for k in loop.blocks)
    # A persistent kernel's view (Loop.per_unit): the steady iteration, and what a unit's last one adds (the policies
    # only differ for MMA and copy loops)
    if _loop_role(instrs, blocks, loop) not in ('mma', 'copy'):
        return loop
    steady = choose_path(instrs, blocks, loop, 'steady')
    unit = choose_path(instrs, blocks, loop, 'unit')
    if unit != steady:
        view = copy.copy(loop)
        view.kind_flops = dict(loop.kind_flops)
        _count_path(view, instrs, steady, latency)
        view.unit_path = unit
        view.unit_extra_instructions = max(0, len(unit) - len(steady))
        view.unit_extra_cycles = max(0.0, warp_cycles(instrs, unit, latency, 1, guarded_loads=False)
                                     - warp_cycles(instrs, steady, latency, 1, guarded_loads=False))
        view.steady = None
        loop.steady = view
    return loop


# ---------------------------------------------------------------------------------------------- the kernel
@dataclass
class KernelSass:
    name: str
    arch: str = ''
    instrs: list = field(default_factory=list)
    loops: list = field(default_factory=list)
    registers: int = 0
    static_smem: int = 0          # bytes, as `cuobjdump -res-usage` reports (SHARED)
    stack: int = 0
    local: int = 0
    max_threads: int = 0          # __launch_bounds__ (EIATTR_MAX_THREADS), 0 if none
    counts: dict = field(default_factory=dict)      # class -> instructions in the whole function
    unclassified: list = field(default_factory=list)
    straight: list = field(default_factory=list)    # instruction indices of the straight-line path (no loop)
    straight_cycles: float = 0.0                    # single-warp cycles of it

    def innermost(self):
        return [l for l in self.loops if not l.children]

    def main_loops(self, roles=('mma', 'copy', 'load', 'store')):
        """Per role, the innermost loops of that role, largest first (the hot loop of each warp role)."""
        out = {}
        for l in sorted(self.innermost(), key=lambda l: -l.instructions):
            if l.role in roles:
                out.setdefault(l.role, []).append(l)
        return out

    def hot_loop(self, role):
        """The loop whose own instructions (inner loops excluded) have `role` and do the most work per iteration
        (then have the most instructions): the loop a warp of that role spends its time in. Not necessarily
        innermost: a producer's copy loop may hold a tiny election loop, a stage loop the per-stage MMA loop."""
        cands = [l for l in self.loops if l.role == role]
        if not cands:
            return None
        return max(cands, key=lambda l: (l.signature(), l.instructions))

    def report(self) -> str:
        lines = [f'{self.name} ({self.arch}): {len(self.instrs)} instructions, {self.registers} registers, '
                 f'{self.static_smem} B static shared memory' + (f', {self.stack} B stack' if self.stack else '')]
        lines.append(f'  straight-line path: {len(self.straight)} instructions, ~{self.straight_cycles:.0f} cycles '
                     f'for one warp alone')
        for l in sorted(self.loops, key=lambda l: l.start_addr):
            lines.append('  ' * (l.depth + 1) + l.describe())
        if self.unclassified:
            lines.append('  unclassified opcodes: ' + ', '.join(sorted(set(self.unclassified))))
        return '\n'.join(lines)


def analyse_instructions(name, instrs, latency=None) -> KernelSass:
    k = KernelSass(name=name, instrs=instrs)
    for ins in instrs:
        k.counts[ins.klass] = k.counts.get(ins.klass, 0) + 1
        if ins.klass == 'unclassified':
            k.unclassified.append(ins.opcode)
    if instrs:
        blocks = build_cfg(instrs)
        k.loops = find_loops(blocks)
        for l in k.loops:
            count_loop(instrs, blocks, l, latency)
        k.straight = straight_path(instrs, blocks, k.loops)
        k.straight_cycles = warp_cycles(instrs, k.straight, latency, iterations=1)
    return k


_RES = re.compile(r'Function\s+(\S+):\s*\n\s*REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)')
_ARCH = re.compile(r'\.target\s+(sm_\w+)')


def parse_res_usage(text: str) -> dict:
    """{function: dict(registers, stack, shared, local)} from `cuobjdump -res-usage`."""
    return {m.group(1): dict(registers=int(m.group(2)), stack=int(m.group(3)), shared=int(m.group(4)),
                             local=int(m.group(5))) for m in _RES.finditer(text)}


def analyse_sass(text: str, resources: dict = None, function: str = None, latency=None) -> KernelSass:
    funcs = parse_sass(text)
    if not funcs:
        raise ValueError('analyse_sass: `text` holds no `Function :` section (is it `cuobjdump -sass` output?)')
    if function is None:
        # The kernel is the largest function (device functions ptxas kept out of line are small)
        function = max(funcs, key=lambda f: len(funcs[f]))
    if function not in funcs:
        raise ValueError(f'analyse_sass: `function` must be one of {sorted(funcs)}; got {function!r}')
    k = analyse_instructions(function, funcs[function], latency)
    m = _ARCH.search(text)
    k.arch = m.group(1) if m else ''
    r = (resources or {}).get(function)
    if r:
        k.registers, k.static_smem, k.stack, k.local = r['registers'], r['shared'], r['stack'], r['local']
    return k


def _tool_env(tool):
    """cuobjdump -sass needs nvdisasm on PATH; the pip packages put both in one bin folder."""
    env = dict(os.environ)
    env['PATH'] = os.path.dirname(tool) + os.pathsep + env.get('PATH', '')
    return env


def run_cuobjdump(cubin_path, *flags):
    from ... import jit
    tool = jit.find_cuobjdump()
    if tool is None:
        raise RuntimeError('cuobjdump not found: install the `nvidia-cuda-cuobjdump` package or a CUDA toolkit')
    p = subprocess.run([tool, *flags, cubin_path], capture_output=True, text=True, env=_tool_env(tool))
    if p.returncode != 0:
        raise RuntimeError(f'cuobjdump {" ".join(flags)} {cubin_path} failed (rc {p.returncode}): '
                           f'{p.stderr.strip() or p.stdout.strip()}')
    return p.stdout


_MAX_THREADS = re.compile(r'EIATTR_MAX_THREADS\s*\n\s*Format:.*\n\s*Value:\s*(0x[0-9a-f]+)')


def analyse_cubin(cubin_path, function=None, latency=None) -> KernelSass:
    """Analyse one kernel of a cubin (the largest function unless `function` is given)."""
    sass = run_cuobjdump(cubin_path, '-sass')
    res = parse_res_usage(run_cuobjdump(cubin_path, '-res-usage'))
    k = analyse_sass(sass, res, function, latency)
    try:
        m = _MAX_THREADS.search(run_cuobjdump(cubin_path, '-elf'))
        if m:
            k.max_threads = int(m.group(1), 16)
    except RuntimeError:
        pass
    return k


@functools.lru_cache(maxsize=256)
def analyse_cubin_cached(cubin_path, function=None) -> KernelSass:
    return analyse_cubin(cubin_path, function)
