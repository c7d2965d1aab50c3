"""The bench rows the model covers, and how a kernel family registers its own.

A family registers a builder for the names of its bench rows:

    @register('gemm', r'^fp8_gemm_nt M=(?P<m>\\d+) N=(?P<n>\\d+) K=(?P<k>\\d+)$',
              cases=['fp8_gemm_nt M=4096 N=7168 K=2048'])
    def _gemm(t: Target, m, n, k, row=None) -> predict.Work:
        kernel, spec = t.kernel('fp8_gemm', r'^block_m=128 .* mma=block_scaled')   # compiles for t.target
        ...                                  # the host plan's tiles / grid / stages for t.gpu.sms SMs
        return predict.Work(kernel=kernel, threads=spec['num_threads'], dynamic_smem=spec['dynamic_smem'],
                            cta_stages=[k // 128] * num_tiles, groups=[predict.WarpGroup(8, ('mma', 'copy'))],
                            flops_per_stage=2 * 128 * 128 * 128, bytes_read=..., bytes_written=...,
                            stage_dram_bytes=..., stages_in_flight=num_stages - 1)

A new family puts its builders in a module of this package and imports it at the end of this file (registration
happens at import); a builder may return None where a row has no prediction on that target.
`t.kernel(family, description_regex)` picks the one configuration of `_C.list_kernel_configs(t.target, t.sm120_mode)`
(under `t.env`) whose family and description match, compiles it (`_C.compile_kernel_config`, no GPU) and returns
its SASS analysis and spec. Row names must equal the bench's (`Row.name`); `row` is the measured Row when there is
one (its byte counts are exact for that run), None under `--model-only`. Variant rows of the bench
('  same, DG_X=value') reuse the row above them with that environment variable set for the config choice.

What is reproduced here in Python because no binding exposes it (see the report of issue 18): the paged and ragged
config choice (the MMA-form and q-placement rules of PagedMQALogitsConfig::make / plan_ragged_mqa_logits, matched
against the enumerated descriptions), the ragged split count and per-CTA key tiles, the paged per-SM unit split,
and the clean kernel's launch shape. hc uses `_C._tf32_hc_prenorm_gemm_plan`.
"""
import concurrent.futures
import math
import os
import re
import threading
from dataclasses import dataclass, field

from . import sass
from .predict import Work, WarpGroup

# ------------------------------------------------------------------------------------------------ registry
FAMILIES = []


@dataclass
class Family:
    name: str                       # the bench family (`--only` value)
    pattern: object                 # compiled regex of its row names
    build: object                   # (Target, row=None, **groups) -> Work, or None for no prediction
    cases: list = field(default_factory=list)
    combine: object = None          # optional: (build results of other rows) for derived rows


def register(family: str, pattern: str, cases=()):
    def deco(fn):
        FAMILIES.append(Family(family, re.compile(pattern), fn, list(cases)))
        return fn
    return deco


def match(name: str):
    """(Family, regex match) of a row name, or (None, None)."""
    for f in FAMILIES:
        m = f.pattern.match(name)
        if m:
            return f, m
    return None, None


def cases(families=None):
    """Row names `--model-only` prints, in bench order."""
    return [(f.name, c) for f in FAMILIES if families is None or f.name in families for c in f.cases]


_VARIANT_ENV = re.compile(r'^\s+same, (?P<var>DG_\w+)=(?P<value>\w+)$')
_VARIANT_CLEAN = re.compile(r'^\s+same, clean_logits=True')
_DIFFERENCE = re.compile(r'^\s+fused clean cost N=(?P<n>\d+)K \(difference\)$')


def resolve(name: str, parent: str = None):
    """How to predict a bench row: ('row', canonical name, env overrides) for a row (variants resolved against
    `parent`, the last row whose name does not start with a space), ('difference', name_a, name_b) for a row that is
    the difference of two predictions, or None for a row the model does not cover."""
    m = _VARIANT_ENV.match(name)
    if m and parent:
        return 'row', parent, {m.group('var'): m.group('value')}
    if _VARIANT_CLEAN.match(name) and parent:
        return 'row', parent + ' clean', {}
    m = _DIFFERENCE.match(name)
    if m:
        base = f'mqa_logits S=4096 N={m.group("n")}K H=64 D=128 causal'
        return 'difference', base + ' clean', base
    return ('row', name, {}) if match(name)[0] else None


# ------------------------------------------------------------------------------------------------ targets
_lock = threading.Lock()
_env_lock = threading.Lock()
_configs = {}
_compiled = {}


@dataclass
class Target:
    """Where a row is planned and compiled: a compile target, SM120 planning on or off, the card (its SM count
    sizes persistent grids and splits), `DG_*` overrides the config choice reads, and the largest M tile the GEMM
    rows are planned with (`_C._gemm_plan`'s `max_block_m`: 128 as the library plans; smaller to judge another tile
    on the same cubins)."""
    target: str
    sm120_mode: bool
    gpu: object
    env: dict = field(default_factory=dict)
    max_block_m: int = 128

    def _env_key(self):
        return tuple(sorted(self.env.items()))

    def _with_env(self, fn):
        if not self.env:
            return fn()
        with _env_lock:
            saved = {k: os.environ.get(k) for k in self.env}
            os.environ.update(self.env)
            try:
                return fn()
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v

    def configs(self):
        from ... import jit
        key = (self.target, self.sm120_mode, self._env_key())
        with _lock:
            if key not in _configs:
                _configs[key] = self._with_env(lambda: jit.list_configs(self.target, None, self.sm120_mode))
            return _configs[key]

    def spec(self, family: str, description: str):
        rx = re.compile(description)
        found = [c for c in self.configs() if c['family'] == family and rx.search(c['description'])]
        if len({c['description'] for c in found}) == 1:
            found = found[:1]        # the enumeration may list one config twice (e.g. per next_n under an env override)
        if len(found) != 1:
            raise LookupError(f'model: {len(found)} configurations of family {family!r} for {self.target} '
                              f'(sm120_mode={self.sm120_mode}, env={self.env}) match {description!r}; expected 1. '
                              f'Descriptions: {[c["description"] for c in self.configs() if c["family"] == family]}')
        return found[0]

    def kernel(self, family: str, description: str):
        """(sass.KernelSass, spec dict) of the one configuration matching `description` (compiled once)."""
        from ... import jit
        spec = self.spec(family, description)
        key = (self.target, self.sm120_mode, self._env_key(), spec['index'])
        with _lock:
            fut = _compiled.get(key)
            owner = fut is None
            if owner:
                fut = _compiled[key] = concurrent.futures.Future()
        if owner:
            try:
                report = self._with_env(lambda: jit.compile_config(self.target, spec['index'], self.sm120_mode))
                fut.set_result((sass.analyse_cubin_cached(report['cubin_path']), dict(spec, **report)))
            except BaseException as e:   # noqa: B902 (handed to every waiter)
                fut.set_exception(e)
        return fut.result()

    @property
    def sm120(self) -> bool:
        return self.target.startswith('sm_12')

    @property
    def sm90(self) -> bool:
        return self.target.startswith('sm_90')


# ------------------------------------------------------------------------------------------------ paged
H, D, BKV = 64, 128, 64


def _even_split(total: int, parts: int):
    """Units per part when `total` units are split at floor(s * total / parts) (the metadata kernel's split)."""
    return [(s + 1) * total // parts - s * total // parts for s in range(parts)]


def _paged_fp8_description(t: Target) -> str:
    """PagedMQALogitsConfig::make's FP8 MMA form: block-scaled on sm_120a/121a unless DG_SM120_FP8_MMA=plain, the
    plain mma.sync everywhere else (emulated by ptxas on sm_90)."""
    env = t.env.get('DG_SM120_FP8_MMA', os.environ.get('DG_SM120_FP8_MMA', ''))
    form = 'block_scaled' if t.sm120 and env != 'plain' else 'plain'
    return rf'^FP8 H={H} D={D} block_kv={BKV} stages=\d+ mma={form}$'


def _paged_work(t: Target, kernel, spec, B, ctx_len, next_n, row_bytes, bytes_read, bytes_written):
    stages = int(re.search(r'stages=(\d+)', spec['description']).group(1))
    consumers = spec['num_threads'] // 32 - 1     # PagedMQALogitsHeuristics: consumer warps + one producer warp
    units = B * math.ceil(ctx_len / BKV)
    return Work(kernel=kernel, threads=spec['num_threads'], dynamic_smem=spec['dynamic_smem'],
                cta_stages=_even_split(units, t.gpu.sms),
                groups=[WarpGroup(consumers, ('mma',), 'consumers'), WarpGroup(1, ('copy',), 'producer')],
                flops_per_stage=2.0 * H * D * BKV * next_n, bytes_read=bytes_read, bytes_written=bytes_written,
                stage_dram_bytes=BKV * (row_bytes + 4), stages_in_flight=stages, fill_round_trips=2,
                description=spec['description'])


@register('paged', r'^paged_mqa_logits B=(?P<B>\d+) ctx=(?P<ctx>\d+)K n=(?P<n>\d+)$',
          cases=['paged_mqa_logits B=64 ctx=64K n=1', 'paged_mqa_logits B=64 ctx=8K n=1',
                 'paged_mqa_logits B=4096 ctx=2K n=1', 'paged_mqa_logits B=64 ctx=32K n=2'])
def _paged(t: Target, B, ctx, n, row=None):
    B, ctx_len, next_n = int(B), int(ctx) * 1024, int(n)
    kernel, spec = t.kernel('paged_mqa_logits', _paged_fp8_description(t))
    tokens = B * ctx_len
    valid = B * sum(ctx_len - i for i in range(next_n))
    rd = row.bytes_read if row else tokens * (D + 4) + B * next_n * H * D + B * next_n * H * 4 + \
        B * math.ceil(ctx_len / BKV) * 4
    wr = row.bytes_written if row else valid * 4
    return _paged_work(t, kernel, spec, B, ctx_len, next_n, D, rd, wr)


@register('paged', r'^fp4_paged_mqa_logits B=(?P<B>\d+) ctx=(?P<ctx>\d+)K n=(?P<n>\d+)$',
          cases=['fp4_paged_mqa_logits B=64 ctx=64K n=1'])
def _paged_fp4(t: Target, B, ctx, n, row=None):
    B, ctx_len, next_n = int(B), int(ctx) * 1024, int(n)
    env = t.env.get('DG_SM120_FP4_MMA', os.environ.get('DG_SM120_FP4_MMA', ''))
    form = 'fp4_native$' if t.sm120 and env != 'portable' else 'fp4_portable q=smem$'
    kernel, spec = t.kernel('paged_mqa_logits', rf'^FP4 H={H} D={D} block_kv={BKV} stages=\d+ mma={form}')
    tokens = B * ctx_len
    rd = row.bytes_read if row else tokens * (D // 2 + 4) + B * next_n * H * (D // 2 + 4) + B * next_n * H * 4 + \
        B * math.ceil(ctx_len / BKV) * 4
    wr = row.bytes_written if row else B * ctx_len * next_n * 4
    return _paged_work(t, kernel, spec, B, ctx_len, next_n, D // 2, rd, wr)


@register('paged', r'^paged_mqa_logits_metadata B=(?P<B>\d+)$',
          cases=['paged_mqa_logits_metadata B=4096', 'paged_mqa_logits_metadata B=16384'])
def _metadata(t: Target, B, row=None):
    # One CTA of 512 threads. ROUGH: its loops are data-dependent walks; each thread keeps 8 requests in registers,
    # so B <= 4096 is its straight-line code, larger B adds one pass of its hottest load loop per further 4096
    B = int(B)
    kernel, spec = t.kernel('paged_mqa_logits_metadata', r'^metadata$')
    return Work(kernel=kernel, threads=spec['num_threads'], dynamic_smem=spec['dynamic_smem'],
                cta_stages=[math.ceil(B / 4096) - 1], groups=[WarpGroup(spec['num_threads'] // 32, ('load',), 'all')],
                bytes_read=row.bytes_read if row else B * 4 * 2,
                bytes_written=row.bytes_written if row else (t.gpu.sms + 1) * 8, fill_round_trips=1,
                tail_round_trips=2, description=spec['description'],
                notes=['rough: the metadata kernel is a single CTA of data-dependent walks'])


# ------------------------------------------------------------------------------------------------ ragged
S_RAGGED = 4096


def _ragged_splits(num_sms, num_q, num_k, block_q, block_k):
    """RaggedMqaLogitsPlan::num_splits (heuristics/sm120_mqa_logits.hpp)."""
    num_tiles = max(1, math.ceil(num_q / block_q))
    by_fill = math.ceil(2 * max(1, num_sms) / num_tiles)
    by_keys = max(1, math.ceil(num_k / block_k))
    return min(max(min(by_fill, by_keys), 1), 64)


def _ragged_cta_stages(num_sms, num_q, num_k, block_q, block_k, ranges):
    """Key tiles of each CTA in blockIdx order (sm120_fp8_mqa_logits.cuh: split = b % S, q tile = last - b / S,
    tiles split, split + S, ...), and the masked columns of its rows it cleans (1/S of its tile's).
    `ranges(q) -> (lo, hi)`."""
    splits = _ragged_splits(num_sms, num_q, num_k, block_q, block_k)
    num_tiles = math.ceil(num_q / block_q)
    out, masked = [], []
    for b in range(num_tiles * splits):
        split, tile = b % splits, num_tiles - 1 - b // splits
        lo, hi, m = num_k, 0, 0
        for q in range(tile * block_q, min(num_q, (tile + 1) * block_q)):
            a, z = ranges(q)
            m += num_k - max(0, z - a)
            if a < z:
                lo, hi = min(lo, a), max(hi, z)
        tiles = math.ceil((hi - lo) / block_k) if lo < hi else 0
        out.append(math.ceil((tiles - split) / splits) if split < tiles else 0)
        masked.append(m / splits)
    return out, splits, masked


def _ragged_work(t: Target, n, window, fp4, clean, row):
    form = ('native' if fp4 else 'block_scaled') if t.sm120 else ('portable' if fp4 else 'plain')
    env = t.env.get('DG_SM120_FP4_MMA' if fp4 else 'DG_SM120_FP8_MMA',
                    os.environ.get('DG_SM120_FP4_MMA' if fp4 else 'DG_SM120_FP8_MMA', ''))
    if t.sm120 and env in ('plain', 'portable'):
        form = env
    kernel, spec = t.kernel('mqa_logits', rf'^{"FP4 " if fp4 else ""}H={H} D={D} mma={form} warps=8 ')
    d = spec['description']
    block_k, stages, warps = (int(re.search(rf'{k}=(\d+)', d).group(1)) for k in ('block_k', 'stages', 'warps'))
    block_q = warps * (64 // H)

    def ranges(q):
        hi = n - S_RAGGED + q + 1
        return (max(0, hi - window) if window else 0), hi

    cta, splits, masked = _ragged_cta_stages(t.gpu.sms, S_RAGGED, n, block_q, block_k, ranges)
    pairs = sum(ranges(q)[1] - ranges(q)[0] for q in range(S_RAGGED))
    row_bytes = D // 2 if fp4 else D
    rd = row.bytes_read if row else S_RAGGED * H * row_bytes + n * row_bytes + n * 4 + S_RAGGED * H * 4 + \
        2 * S_RAGGED * 4 + (S_RAGGED * H * 4 if fp4 else 0)
    wr = row.bytes_written if row else (S_RAGGED * n if clean else pairs) * 4
    return Work(kernel=kernel, threads=spec['num_threads'], dynamic_smem=spec['dynamic_smem'], cta_stages=cta,
                groups=[WarpGroup(warps, ('mma', 'copy'), 'all')], flops_per_stage=2.0 * H * D * block_k * block_q,
                bytes_read=rd, bytes_written=wr, stage_dram_bytes=block_k * (row_bytes + 4),
                stages_in_flight=stages - 1, description=d + f' splits={splits}',
                cta_fixed_bytes=[4 * x for x in masked] if clean else None,
                notes=['the fused clean: each CTA stores its -inf columns before its main loop, at its SM\'s '
                       'share of DRAM bandwidth'] if clean else [])


# ' clean' suffix: the bench's '  same, clean_logits=True (fused, 1 kernel)' row under its parent (see `resolve`)
@register('ragged', r'^mqa_logits S=4096 N=(?P<n>\d+)K H=64 D=128 causal(?P<clean> clean)?$',
          cases=['mqa_logits S=4096 N=16K H=64 D=128 causal', 'mqa_logits S=4096 N=64K H=64 D=128 causal'])
def _ragged(t: Target, n, clean=None, row=None):
    return _ragged_work(t, int(n) * 1024, None, False, bool(clean), row)


@register('ragged', r'^mqa_logits\+clean N=(?P<n>\d+)K window=(?P<w>\d+)$',
          cases=['mqa_logits+clean N=16K window=64'])
def _ragged_window(t: Target, n, w, row=None):
    return _ragged_work(t, int(n) * 1024, int(w), False, True, row)


@register('ragged', r'^fp4 mqa_logits S=4096 N=(?P<n>\d+)K H=64 D=128 causal$',
          cases=['fp4 mqa_logits S=4096 N=16K H=64 D=128 causal'])
def _ragged_fp4(t: Target, n, row=None):
    return _ragged_work(t, int(n) * 1024, None, True, False, row)


# The clean pass paged mode launches (smxx_clean_logits.hpp: 8 KB segments, one wave of resident blocks)
@register('ragged', r'^clean_logits \(paged\) B=(?P<B>\d+) next_n=(?P<n>\d+) (?P<w>\d+)K$',
          cases=['clean_logits (paged) B=128 next_n=2 64K'])
def _clean(t: Target, B, n, w, row=None):
    rows, width = int(B) * int(n), int(w) * 1024
    kernel, spec = t.kernel('clean_logits', r'^fp32 mode=1$')
    masked_bytes = row.bytes_written if row else rows * width * 4 / 2      # lengths uniform in [1, width]
    seg_cols = 8192 // 4
    num_segs = math.ceil(width / seg_cols)
    items = rows * num_segs
    blocks_per_sm = max(1, t.gpu.max_threads_per_sm // 256)
    max_warps = t.gpu.sms * blocks_per_sm * 8
    per_warp = math.ceil(items / max_warps)
    grid = math.ceil(items / (per_warp * 8))
    return Work(kernel=kernel, threads=256, dynamic_smem=0, cta_stages=[per_warp] * grid,
                groups=[WarpGroup(8, ('store',), 'all', work={'store': masked_bytes / items})],
                bytes_read=row.bytes_read if row else rows * 4, bytes_written=masked_bytes, fill_round_trips=1,
                description=spec['description'] + f' grid={grid} items/warp={per_warp}')


# ------------------------------------------------------------------------------------------------ hc
@register('hc', r'^hc_prenorm_gemm M=(?P<m>\d+) N=(?P<n>\d+) K=(?P<k>\d+)(?: splits=(?P<s>\d+))?$',
          cases=[f'hc_prenorm_gemm M={m} N=24 K=16384' for m in (1, 64, 1024, 4096, 16384)] +
                ['hc_prenorm_gemm M=64 N=24 K=16384 splits=16', 'hc_prenorm_gemm M=4096 N=24 K=16384 splits=16'])
def _hc(t: Target, m, n, k, s=None, row=None):
    from ... import jit
    m, n, k, user = int(m), int(n), int(k), int(s or 1)
    ext = jit._ext()
    plan = ext._tf32_hc_prenorm_gemm_plan(t.target, m, n, k, user, t.gpu.sms)
    rounding = ext._tf32_hc_prenorm_gemm_default_rounding()
    n_tiles = math.ceil(n / 8)
    kernel, spec = t.kernel('hc_prenorm_gemm', rf'^n_tiles={n_tiles} b_rounding={rounding}$')
    kb_user = k // 64 // user
    S = plan['num_int_splits']
    per_split = [math.ceil((kb_user - s_) / S) for s_ in range(S)]
    cta = [per_split[y] for _ in range(user) for y in range(S) for _ in range(plan['num_m_tiles'])]
    levels = 0 if S == 1 else (1 if plan['group_size'] >= S else 2)
    rows = min(m, 128)
    rd = row.bytes_read if row else m * k * 2 + n * k * 4
    wr = row.bytes_written if row else (user * m * n + user * m) * 4
    return Work(kernel=kernel, threads=spec['num_threads'], dynamic_smem=spec['dynamic_smem'], cta_stages=cta,
                groups=[WarpGroup(8, ('mma',), 'all')], flops_per_stage=2.0 * 128 * n_tiles * 8 * 64,
                bytes_read=rd, bytes_written=wr, stage_dram_bytes=rows * 64 * 2 + n * 64 * 4, stages_in_flight=3,
                tail_round_trips=3 * levels,
                description=spec['description'] + f' m_tiles={plan["num_m_tiles"]} int_splits={S} '
                                                  f'group={plan["group_size"]}')


from . import gemm_rows  # noqa: E402,F401,I001  (registers the GEMM family's rows)
