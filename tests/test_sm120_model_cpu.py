"""CPU tests of the SASS time model (deep_gemm/bench/model): the analyser on small hand-written kernels with known
per-iteration instruction counts (compiled here with nvcc -cubin for sm_120a and sm_90a), the per-GPU parameter
table (every entry sourced or marked GUESS, derived peaks equal to the published ones), the model's arithmetic on
synthetic inputs, and `python -m deep_gemm.bench --model-only` end to end on one cheap row."""
import json
import os
import shutil
import subprocess

import pytest

from deep_gemm.bench.model import gpus, predict, rows, sass

CUDA_HOME = os.environ.get('CUDA_HOME', '/usr/local/cuda')
NVCC = os.path.join(CUDA_HOME, 'bin', 'nvcc')

KERNELS = r'''
// Hand-written kernels with known per-iteration instruction counts
template <int kKind>
__device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2], unsigned sf) {
    if constexpr (kKind == 0) {   // plain FP8 m16n8k32: native on sm_120a, emulated by ptxas on sm_90a
        asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};" : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    } else if constexpr (kKind == 3) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};" : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    } else if constexpr (kKind == 4) {
        asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};" : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
#ifdef SM120
    if constexpr (kKind == 1) {   // block-scaled FP8
        asm volatile("mma.sync.aligned.m16n8k32.row.col.kind::mxf8f6f4.block_scale.scale_vec::1X.f32.e4m3.e4m3.f32."
                     "ue8m0 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3}, %10, {0, 0}, %10, {0, 0};"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(sf));
    } else if constexpr (kKind == 2) {   // native FP4 m16n8k64
        asm volatile("mma.sync.aligned.m16n8k64.row.col.kind::mxf4nvf4.block_scale.scale_vec::2X.f32.e2m1.e2m1.f32."
                     "ue8m0 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3}, %10, {0, 0}, %10, {0, 0};"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(sf));
    }
#endif
}

// Per iteration: 1 LDSM.x4, 4 LDS.64, 4 MMAs (each its own B and accumulator), 1 BAR. kUnits: a persistent
// kernel's merged loop, where every 8th iteration (a unit's last, warp-uniform) also stores its 16 accumulators (16
// STG) and reads the next unit from global memory (1 LDG)
template <int kKind, bool kUnits = false>
__device__ void t_mma(const unsigned* __restrict__ in, float* out, int n, unsigned sf) {
    __shared__ __align__(16) unsigned smem[4096];
    const int t = threadIdx.x;
    for (int i = t; i < 4096; i += 128) smem[i] = in[i];
    __syncthreads();
    float d[4][4] = {};
    unsigned a[4], b[4][2];
    int unit = blockIdx.x;
    #pragma unroll 1
    for (int it = 0; it < n; ++it) {
        const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem + ((it * 64 + t * 4) & 2047)));
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3]) : "r"(addr));
        #pragma unroll
        for (int j = 0; j < 4; ++j)
            asm volatile("ld.shared.v2.u32 {%0,%1}, [%2];" : "=r"(b[j][0]), "=r"(b[j][1]) : "r"(addr + 8192 + j * 1024));
        #pragma unroll
        for (int j = 0; j < 4; ++j)
            mma<kKind>(d[j], a, b[j], sf);
        __syncthreads();
        if (kUnits and (it & 7) == 7) {
            #pragma unroll
            for (int j = 0; j < 4; ++j)
                #pragma unroll
                for (int k = 0; k < 4; ++k)
                    out[(static_cast<long>(unit) * 16 + j * 4 + k) * 128 + t] = d[j][k], d[j][k] = 0.0f;
            unit = static_cast<int>(__ldg(in + 4096 + unit));
        }
    }
    #pragma unroll
    for (int j = 0; j < 4; ++j)
        #pragma unroll
        for (int k = 0; k < 4; ++k)
            out[(j * 4 + k) * 128 + t] = d[j][k];
}

// A warp-uniform data-dependent branch: 8 MMAs and a store on one side, 1 MMA on the other
template <int kKind>
__device__ void t_branch(const unsigned* __restrict__ in, float* out, int n, unsigned sf) {
    float d[8][4] = {};
    unsigned a[4], b[2];
    const int t = threadIdx.x;
    #pragma unroll 1
    for (int it = 0; it < n; ++it) {
        #pragma unroll
        for (int j = 0; j < 4; ++j) a[j] = in[it * 512 + j * 128 + t];
        b[0] = a[0] ^ a[3], b[1] = a[1] ^ a[2];
        if (__any_sync(0xffffffffu, a[0] & 1)) {
            #pragma unroll
            for (int j = 0; j < 8; ++j) {
                const unsigned c[4] = {a[0] + j, a[1], a[2], a[3]};
                mma<kKind>(d[j], c, b, sf);
            }
            out[it * 128 + t] = d[it & 7][0];
        } else {
            const unsigned c[4] = {b[0], b[1], a[2] + 1u, a[3] + 3u};
            mma<kKind>(d[0], c, b, sf);
        }
    }
    #pragma unroll
    for (int j = 0; j < 8; ++j)
        #pragma unroll
        for (int k = 0; k < 4; ++k)
            out[(j * 4 + k) * 128 + t] = d[j][k];
}


#define KINDS(X) X(0) X(3) X(4)
#ifdef SM120
#define KINDS120(X) X(1) X(2)
#else
#define KINDS120(X)
#endif
#define WRAP(K) \
    extern "C" __global__ void __launch_bounds__(128, 1) t_mma_##K(const unsigned* in, float* out, int n, unsigned sf) \
    { t_mma<K>(in, out, n, sf); } \
    extern "C" __global__ void __launch_bounds__(128, 1) t_branch_##K(const unsigned* in, float* out, int n, unsigned sf) \
    { t_branch<K>(in, out, n, sf); } \
    extern "C" __global__ void __launch_bounds__(128, 1) t_units_##K(const unsigned* in, float* out, int n, unsigned sf) \
    { t_mma<K, true>(in, out, n, sf); }
KINDS(WRAP)
KINDS120(WRAP)

// Per iteration: 2 x 16-byte cp.async, a wait, 2 BAR, 1 LDS.128, 1 STG.128
extern "C" __global__ void __launch_bounds__(128, 1) t_copy(const int4* __restrict__ src, int4* dst, int n) {
    __shared__ int4 buf[256];
    const int t = threadIdx.x;
    #pragma unroll 1
    for (int it = 0; it < n; ++it) {
        #pragma unroll
        for (int j = 0; j < 2; ++j) {
            const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(buf + t * 2 + j));
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(s), "l"(src + it * 256 + t * 2 + j) : "memory");
        }
        asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;" ::: "memory");
        __syncthreads();
        dst[it * 128 + t] = buf[t ^ 1];
        __syncthreads();
    }
}

// A dependent chain of 8 FFMA per iteration (fixed latency >= 4 cycles each)
extern "C" __global__ void t_chain(float* out, float b, int n) {
    float a = out[threadIdx.x];
    #pragma unroll 1
    for (int i = 0; i < n; ++i) {
        #pragma unroll
        for (int j = 0; j < 8; ++j)
            a = __fmaf_rn(a, b, 1.0f);
    }
    out[threadIdx.x] = a;
}

// Two nested loops: the inner one holds exactly one FFMA, the outer one an FMUL
extern "C" __global__ void t_nest(float* out, float b, int n, int m) {
    float a = out[threadIdx.x];
    #pragma unroll 1
    for (int i = 0; i < n; ++i) {
        #pragma unroll 1
        for (int j = 0; j < m; ++j)
            a = __fmaf_rn(a, b, 1.0f);
        a = __fmul_rn(a, out[i]);
    }
    out[threadIdx.x] = a;
}
'''


def _have_tools():
    from deep_gemm import jit
    return os.path.exists(NVCC) and jit.find_cuobjdump() is not None


needs_tools = pytest.mark.skipif(not _have_tools(), reason=f'needs nvcc ({NVCC}) and cuobjdump')


@pytest.fixture(scope='module')
def cubins(tmp_path_factory):
    d = tmp_path_factory.mktemp('sass_model')
    src = d / 'k.cu'
    src.write_text(KERNELS)
    out = {}
    for target in ('sm_120a', 'sm_90a'):
        path = d / f'k_{target}.cubin'
        flags = ['-DSM120'] if target.startswith('sm_12') else []
        r = subprocess.run([NVCC, '-cubin', f'-arch={target}', '-O3', '-std=c++17', *flags, '-o', str(path),
                            str(src)], capture_output=True, text=True)
        assert r.returncode == 0, f'nvcc -cubin -arch={target} failed:\n{r.stderr}'
        out[target] = str(path)
    return out


def _ops(kernel, loop):
    """{opcode: count} along a loop's chosen path."""
    counts = {}
    for i in loop.path:
        op = kernel.instrs[i].opcode
        counts[op] = counts.get(op, 0) + 1
    return counts


# (target, kind) -> the tensor instructions one iteration of t_mma must hold (4 MMAs; sm_90a emulates FP8 with 2
# F16 HMMAs each)
MMA_EXPECT = {
    ('sm_120a', 0): {'QMMA.16832.F32.E4M3': 4},
    ('sm_120a', 1): {'QMMA.SF.16832.F32.E4M3': 4},
    ('sm_120a', 2): {'OMMA.SF.16864.F32.E2M1': 4},
    ('sm_120a', 3): {'HMMA.16816.F32.BF16': 4},
    ('sm_120a', 4): {'HMMA.1688.F32.TF32': 4},
    ('sm_90a', 0): {'HMMA.16816.F32': 8},
    ('sm_90a', 3): {'HMMA.16816.F32.BF16': 4},
    ('sm_90a', 4): {'HMMA.1688.F32.TF32': 4},
}
MMA_FLOPS = {0: 2 * 16 * 8 * 32, 1: 2 * 16 * 8 * 32, 2: 2 * 16 * 8 * 64, 3: 2 * 16 * 8 * 16, 4: 2 * 16 * 8 * 8}


@needs_tools
@pytest.mark.parametrize('target,kind', sorted(MMA_EXPECT))
def test_mma_loop_counts(cubins, target, kind):
    k = sass.analyse_cubin(cubins[target], f't_mma_{kind}')
    loop = k.hot_loop('mma')
    assert loop is not None, k.report()
    where = f'{target} t_mma_{kind}:\n{k.report()}'
    assert loop.tensor == MMA_EXPECT[(target, kind)], where
    assert loop.tensor_flops == 4 * MMA_FLOPS[kind], where          # the emulation keeps the FLOPs
    ops = _ops(k, loop)
    assert ops.get('LDSM.16.M88.4') == 1 and ops.get('LDS.64') == 4, (ops, where)
    assert loop.counts['smem_load'] == 5 and loop.bytes['smem_load'] == 512 + 4 * 256, where
    assert sum(n for op, n in ops.items() if op.startswith('BAR.SYNC')) == 1, (ops, where)
    assert loop.depth == 0 and loop.role == 'mma'
    assert not k.unclassified, k.unclassified
    if (target, kind) == ('sm_90a', 0):
        # ptxas' emulation converts the FP8 operands to F16 (docs/HARDWARE.md §2)
        assert loop.counts.get('conversion', 0) >= 8 and loop.pipes.get('unpack', 0) >= 8, where
    assert k.max_threads == 128 and k.registers > 0 and k.static_smem >= 16384


@needs_tools
@pytest.mark.parametrize('target,kind,expect', [('sm_120a', 1, {'QMMA.SF.16832.F32.E4M3': 8}),
                                                ('sm_120a', 2, {'OMMA.SF.16864.F32.E2M1': 8}),
                                                ('sm_90a', 0, {'HMMA.16816.F32': 16})])
def test_branch_takes_the_heavier_side(cubins, target, kind, expect):
    # The 1-MMA side must not be added to the 8-MMA side (nor chosen instead of it)
    k = sass.analyse_cubin(cubins[target], f't_branch_{kind}')
    loop = k.hot_loop('mma')
    assert loop.tensor == expect, f'{target} t_branch_{kind}:\n{k.report()}'
    assert loop.counts.get('global_store') == 1 and loop.counts.get('global_load') == 4, k.report()


@needs_tools
@pytest.mark.parametrize('target,kind', [('sm_120a', 1), ('sm_90a', 0), ('sm_90a', 3)])
def test_per_unit_view_of_a_merged_loop(cubins, target, kind):
    # One loop holds the k-block iteration and, every 8th iteration, the unit's end (a scheduler LDG, 16 STGs):
    # the persistent kernel's view runs the steady iteration and charges the end once per unit
    k = sass.analyse_cubin(cubins[target], f't_units_{kind}')
    loop = k.hot_loop('mma')
    where = f'{target} t_units_{kind}:\n{k.report()}'
    view = loop.per_unit()
    assert view is not loop, where
    assert view.tensor == MMA_EXPECT[(target, kind)], where
    assert not view.counts.get('global_store') and not view.counts.get('global_load'), where
    assert view.counts['smem_load'] == 5, where
    unit_ops = {}
    for i in view.unit_path:
        unit_ops[k.instrs[i].klass] = unit_ops.get(k.instrs[i].klass, 0) + 1
    assert unit_ops.get('global_store') == 16 and unit_ops.get('global_load') == 1, (unit_ops, where)
    assert view.unit_extra_instructions >= 17 and view.unit_extra_cycles > 0, where
    # The plain view is unchanged by it (the model's other kernels use it)
    assert loop.tensor == view.tensor


@needs_tools
@pytest.mark.parametrize('target,kind', [('sm_120a', 1), ('sm_90a', 0)])
def test_per_unit_view_absent_without_unit_ends(cubins, target, kind):
    # t_mma has no branch; t_branch's store sits on the side with the MMA work, which the signature picks first
    for name in (f't_mma_{kind}', f't_branch_{kind}'):
        loop = sass.analyse_cubin(cubins[target], name).hot_loop('mma')
        assert loop.per_unit() is loop and loop.steady is None, name


@needs_tools
@pytest.mark.parametrize('target', ['sm_120a', 'sm_90a'])
def test_copy_loop(cubins, target):
    k = sass.analyse_cubin(cubins[target], 't_copy')
    loop = k.hot_loop('copy')
    ops = _ops(k, loop)
    where = f'{target} t_copy {ops}\n{k.report()}'
    assert ops.get('LDGSTS.E.BYPASS.128') == 2 and loop.bytes['async_copy'] == 2 * 512, where
    assert ops.get('STG.E.128') == 1 and ops.get('LDS.128') == 1, where
    assert sum(n for op, n in ops.items() if op.startswith('BAR.SYNC')) == 2, where
    assert loop.counts.get('wait', 0) >= 1, where                    # LDGDEPBAR / DEPBAR
    assert loop.role == 'copy' and loop.signature() == 1024


@needs_tools
@pytest.mark.parametrize('target', ['sm_120a', 'sm_90a'])
def test_dependent_chain_timing_from_control_bits(cubins, target):
    k = sass.analyse_cubin(cubins[target], 't_chain')
    (loop,) = k.loops
    ops = _ops(k, loop)
    assert ops.get('FFMA') == 8 and loop.counts['fp32'] == 8, ops
    # Each FFMA waits for the previous one: >= 4 cycles apart (fixed latency), so >= 32 cycles; the loop has 11
    # instructions, so a decode that ignored the stall counts would give ~11
    assert loop.cycles >= 32, k.report()
    # Issue times from the stall counts: consecutive FFMAs of the chain at least 4 cycles apart
    t, issue = 0, []
    for i in loop.path:
        if k.instrs[i].opcode == 'FFMA':
            issue.append(t)
        t += max(1, k.instrs[i].ctrl.stall)
    assert all(b - a >= 4 for a, b in zip(issue, issue[1:])), issue
    # The thread-index read (S2R, variable latency) sets a scoreboard that a later instruction waits on
    s2r = next(ins for ins in k.instrs if ins.opcode == 'S2R')
    assert s2r.ctrl.write_sb < 6
    assert any(ins.ctrl.wait_mask >> s2r.ctrl.write_sb & 1 for ins in k.instrs if ins.addr > s2r.addr)


@needs_tools
@pytest.mark.parametrize('target', ['sm_120a', 'sm_90a'])
def test_nested_loops(cubins, target):
    k = sass.analyse_cubin(cubins[target], 't_nest')
    inner = [l for l in k.loops if l.depth == 1]
    assert len(inner) == 1, k.report()
    assert _ops(k, inner[0]).get('FFMA') == 1 and inner[0].parent is not None, k.report()
    assert 'FMUL' in _ops(k, inner[0].parent), k.report()
    # The parent's own path excludes the child's instructions
    assert not set(inner[0].path) & set(inner[0].parent.path)


def test_control_bits_round_trip():
    # The S2R of the paged kernel (sm_120a): stall 7, yield, write scoreboard 1 (hand-decoded from its encoding)
    c = sass.Control.decode(0x000e6e0000002100)
    assert (c.stall, c.yield_, c.write_sb, c.read_sb, c.wait_mask, c.reuse) == (7, 1, 1, 7, 0, 0)
    # ISETP that waits on scoreboard 1 with a 13-cycle stall
    c = sass.Control.decode(0x002fda0003f05270)
    assert (c.stall, c.write_sb, c.read_sb, c.wait_mask) == (13, 7, 7, 0b10)
    for c in (sass.Control(3, 1, 2, 5, 0b101010, 9), sass.Control(15, 0, 7, 7, 0x3F, 0xF)):
        assert sass.Control.decode(c.encode()) == c


@pytest.mark.parametrize('opcode,klass,pipe', [
    ('QMMA.SF.16832.F32.E4M3.E4M3.E8', 'tensor', 'tensor'), ('OMMA.SF.16864.F32.E2M1.E2M1.UE8M0', 'tensor', 'tensor'),
    ('HMMA.16816.F32.BF16', 'tensor', 'tensor'), ('LDSM.16.M88.4', 'smem_load', 'smem'), ('LDS.128', 'smem_load', 'smem'),
    ('STS.128', 'smem_store', 'smem'), ('LDGSTS.E.BYPASS.128', 'async_copy', 'lsu'), ('UTMALDG.2D', 'async_copy', 'lsu'),
    ('LDG.E.CONSTANT', 'global_load', 'lsu'), ('STG.E.128', 'global_store', 'lsu'), ('FFMA', 'fp32', 'fma'),
    ('FMNMX', 'fp32', 'alu'), ('F2FP.F16.E4M3.UNPACK_B', 'conversion', 'unpack'),
    ('F2FP.BF16.F32.PACK_AB', 'conversion', 'alu'), ('I2F.U32.RP', 'conversion', 'xu'), ('MUFU.RCP', 'mufu', 'xu'),
    ('IMAD.WIDE.U32', 'int', 'imad'), ('IADD3', 'int', 'alu'), ('LOP3.LUT', 'int', 'alu'), ('SHFL.BFLY', 'move', 'mio'),
    ('BAR.SYNC.DEFER_BLOCKING', 'barrier', 'mio'), ('SYNCS.PHASECHK.TRANS64.TRYWAIT', 'barrier', 'mio'),
    ('WARPSYNC.ALL', 'barrier', None), ('DEPBAR.LE', 'wait', None), ('UIADD3', 'uniform', None),
    ('BRA.U.ANY', 'control', None), ('LDL.LU', 'local', 'lsu'), ('SOMETHINGNEW', 'unclassified', None)])
def test_classification_table(opcode, klass, pipe):
    assert sass.classify(opcode) == (klass, pipe)


def test_tensor_kinds():
    assert sass.tensor_kind('QMMA.SF.16832.F32.E4M3.E4M3.E8') == ('QMMA.SF.16832.F32.E4M3', 8192)
    assert sass.tensor_kind('QMMA.16832.F32.E4M3.E4M3') == ('QMMA.16832.F32.E4M3', 8192)
    assert sass.tensor_kind('OMMA.SF.16864.F32.E2M1.E2M1.UE8M0') == ('OMMA.SF.16864.F32.E2M1', 16384)
    assert sass.tensor_kind('HMMA.1688.F32.TF32') == ('HMMA.1688.F32.TF32', 2048)
    assert sass.tensor_kind('QMMA.16832.F32.E4M3.E5M2') == ('QMMA.16832.F32.E4M3.E5M2', 8192)
    assert sass.bytes_moved('LDSM.16.M88.4') == 512 and sass.bytes_moved('LDSM.16.MT88.2') == 256
    assert sass.bytes_moved('LDGSTS.E.BYPASS.128') == 512 and sass.bytes_moved('LDGSTS.E') == 128
    assert sass.bytes_moved('STG.E.U16') == 64


# ------------------------------------------------------------------------------------------------ the table
_SOURCE_KEYS = ('BW-RTX', 'PRO6000', 'GB10', 'H100', 'H200', 'ADA-WP', 'CUDA-PG', 'NCU', 'PERF', 'LUO24',
                'docs/HARDWARE.md', 'GEMM.md', 'the card', 'torch.cuda', 'compute capability')


@pytest.mark.parametrize('name', sorted(gpus.GPUS))
def test_every_parameter_is_sourced_or_a_guess(name):
    flat = gpus.flatten_sources(name)
    for key, p in flat.items():
        assert isinstance(p, gpus.P), f'{name}.{key} is not a sourced parameter: {p!r}'
        assert p.source.strip(), f'{name}.{key}: no source'
        assert p.guess or any(s in p.source for s in _SOURCE_KEYS), \
            f'{name}.{key}: source {p.source!r} cites none of {_SOURCE_KEYS} and is not marked GUESS'
    g = gpus.gpu(name)
    for field in ('sms', 'clock', 'dram_bw', 'l2_bytes', 'dram_efficiency', 'launch_overhead', 'regs_per_sm'):
        assert getattr(g, field) > 0, f'{name}.{field}'
    assert 0 < g.dram_efficiency <= 1
    assert set(g.pipes) >= {'fma', 'imad', 'alu', 'xu', 'mio', 'lsu', 'unpack', 'fp16'}


def _peak(name, kind):
    g = gpus.gpu(name)
    return g.tensor[kind] * g.sms * g.clock / 1e12


@pytest.mark.parametrize('name,kind,tflops', [
    ('RTX 5090', 'QMMA.SF.16832.F32.E4M3', 838), ('RTX 5090', 'QMMA.16832.F32.E4M3', 419),   # GeForce half rate
    ('RTX 5090', 'OMMA.SF.16864.F32.E2M1', 1676), ('RTX 5090', 'HMMA.16816.F32.BF16', 209.5),
    ('RTX PRO 6000', 'QMMA.SF.16832.F32.E4M3', 1007), ('RTX PRO 6000', 'QMMA.16832.F32.E4M3', 1007),
    ('RTX PRO 6000', 'OMMA.SF.16864.F32.E2M1', 2015), ('RTX PRO 6000', 'HMMA.16816.F32.BF16', 503.8),
    ('RTX PRO 6000', 'HMMA.1688.F32.TF32', 251.9), ('GB10', 'OMMA.SF.16864.F32.E2M1', 500),
    ('H100', 'HMMA.16816.F32.BF16', 549), ('H100', 'HMMA.1688.F32.TF32', 273)])
def test_table_reproduces_published_peaks(name, kind, tflops):
    # Per-SM per-clock rates x SMs x clock = the datasheet's dense TFLOP/s (or PERF's measured mma.sync loops)
    assert abs(_peak(name, kind) - tflops) / tflops < 0.05, (name, kind, _peak(name, kind))


def test_table_sm_counts_and_lookup():
    assert [gpus.gpu(n).sms for n in ('RTX 5090', 'RTX PRO 6000', 'GB10', 'H100', 'H200')] == [170, 188, 48, 132, 132]
    assert gpus.gpu_for_device('NVIDIA H100 80GB HBM3').name == 'H100'
    assert gpus.gpu_for_device('NVIDIA H200').name == 'H200'
    assert gpus.gpu_for_device('NVIDIA GeForce RTX 5090').name == 'RTX 5090'
    assert gpus.gpu_for_device('NVIDIA RTX PRO 6000 Blackwell Workstation Edition').name == 'RTX PRO 6000'
    assert gpus.gpu_for_device('NVIDIA A100-SXM4-80GB') is None
    assert gpus.gpu_for_device('NVIDIA H100 80GB HBM3', 114).sms == 114
    with pytest.raises(ValueError, match='gpus.gpu: `name` must be one of'):
        gpus.gpu('RTX 9090')


# ------------------------------------------------------------------------------------------------ arithmetic
def test_occupancy():
    h100, g5090 = gpus.gpu('H100'), gpus.gpu('RTX 5090')
    # 256 threads x 128 registers: 4096 registers per warp, 4 warps per scheduler -> 2 CTAs (not 8 by threads)
    assert predict.occupancy(h100, 256, 128, 0) == (2, 'registers')
    assert predict.occupancy(h100, 256, 32, 0) == (8, 'threads')
    assert predict.occupancy(h100, 256, 32, 100 * 1024) == (2, 'shared memory')
    assert predict.occupancy(g5090, 256, 32, 0) == (6, 'threads')          # 1536 threads per SM
    assert predict.occupancy(g5090, 160, 206, 93280)[0] == 1                # registers and shared memory
    assert predict.occupancy(g5090, 128, 32, 101377)[0] == 0               # over the per-block limit
    assert predict.occupancy(h100, 128, 40, 0, max_threads=64)[0] == 0     # over __launch_bounds__


def test_schedule_makespan():
    assert predict._schedule([3, 3, 3], 2) == 6
    assert predict._schedule([5, 1, 1, 1, 1, 1], 2) == 5
    assert predict._schedule([], 4) == 0


def _program(opcode, n, stall, gpu, wsb=7, wait=0):
    ins = [sass.Instr(16 * i, '', opcode, '', sass.Control(stall, 0, wsb, 7, wait, 0), None, *sass.classify(opcode))
           for i in range(n)]
    p = predict._Program([], 0, gpu, predict.latency_table(gpu))
    p.ins = ins
    p.cost = [predict._cost(x, gpu, predict.latency_table(gpu)) for x in ins]
    return p


def test_scheduler_simulation():
    g = gpus.gpu('RTX 5090')
    # Issue-bound: 2 warps x 10 independent FFMA (stall 1) on one scheduler = 20 cycles
    end, busy = predict.simulate_scheduler([_program('FFMA', 10, 1, g), _program('FFMA', 10, 1, g)])
    assert end == pytest.approx(20) and busy['issue'] == pytest.approx(20) and busy['fma'] == pytest.approx(20)
    # Latency-bound: one warp, each FFMA 4 cycles after the previous
    end, _ = predict.simulate_scheduler([_program('FFMA', 10, 4, g)])
    assert end == pytest.approx(40)
    # Tensor-bound: 2 warps x 4 block-scaled QMMA, 16 cycles each on a 5090 scheduler (2048 FLOP/clk/SM)
    end, busy = predict.simulate_scheduler([_program('QMMA.SF.16832.F32.E4M3.E4M3.E8', 4, 1, g)] * 2)
    assert busy['tensor'] == pytest.approx(128) and end == pytest.approx(128, abs=2)
    # The plain form runs at half rate on GeForce (32 cycles), full rate on the PRO 6000 (16)
    pro = gpus.gpu('RTX PRO 6000')
    assert g.tensor_cycles('QMMA.16832.F32.E4M3', 8192) == 32 and pro.tensor_cycles('QMMA.16832.F32.E4M3', 8192) == 16
    # A variable-latency producer (LDS sets scoreboard 0) and a consumer waiting on it: 30 cycles of latency
    lds = _program('LDS', 1, 1, g, wsb=0)
    use = _program('FFMA', 1, 1, g, wait=1)
    lds.ins += use.ins
    lds.cost += use.cost
    end, _ = predict.simulate_scheduler([lds])
    assert end == pytest.approx(sass.LATENCY['smem_load'] + 1)


def test_unit_end_skips_the_latency_of_predicated_loads():
    # A unit's end of `@P0 LDG -> FADD` (the optional C read ptxas if-converts): charged with guarded_loads=False
    # (the unit-extra timing) as issue only; an unpredicated LDG keeps its latency either way
    def ins(addr, pred, opcode, wsb=7, wait=0):
        return sass.Instr(addr, pred, opcode, '', sass.Control(1, 0, wsb, 7, wait, 0), None, *sass.classify(opcode))
    guarded = [ins(0, '@P0', 'LDG.E.64', wsb=0), ins(16, '@P0', 'FADD', wait=1)]
    plain = [ins(0, '', 'LDG.E.64', wsb=0), ins(16, '', 'FADD', wait=1)]
    lat = sass.LATENCY['global_load']
    assert sass.warp_cycles(guarded, [0, 1], iterations=1) >= lat
    assert sass.warp_cycles(guarded, [0, 1], iterations=1, guarded_loads=False) == 2
    assert sass.warp_cycles(plain, [0, 1], iterations=1, guarded_loads=False) >= lat

def _synthetic_kernel(n_mma=4, n_ffma=4):
    """cuobjdump-style SASS of one function: a loop of `n_mma` QMMA.SF and `n_ffma` FFMA, stall 1 each."""
    lines = ['\tcode for sm_120a', '\t.target\tsm_120a', '\t\tFunction : synth']
    body = ['S2R R0, SR_TID.X'] + ['QMMA.SF.16832.F32.E4M3.E4M3.E8 R4, R8, R12, R4, R2, R2, URZ'] * n_mma + \
        ['FFMA R20, R20, R21, R22'] * n_ffma
    addr = 0
    for text in body:
        lines += [f'        /*{addr:04x}*/                   {text} ;   /* 0x0000000000000000 */',
                  f'                                             /* 0x{sass.Control(1, 0, 7, 7, 0, 0).encode():016x} */']
        addr += 16
    lines += [f'        /*{addr:04x}*/               @P0 BRA 0x10 ;   /* 0x0000000000000000 */',
              f'                                             /* 0x{sass.Control(1, 0, 7, 7, 0, 0).encode():016x} */',
              f'        /*{addr + 16:04x}*/                   EXIT ;   /* 0x0000000000000000 */',
              f'                                             /* 0x{sass.Control(1, 0, 7, 7, 0, 0).encode():016x} */']
    k = sass.analyse_sass('\n'.join(lines), {'synth': dict(registers=64, stack=0, shared=0, local=0)})
    return k


def test_predict_arithmetic():
    g = gpus.gpu('RTX 5090')
    k = _synthetic_kernel()
    (loop,) = k.loops
    assert loop.tensor == {'QMMA.SF.16832.F32.E4M3': 4} and loop.instructions == 9 and loop.cycles == 9
    stages = 100
    work = predict.Work(kernel=k, threads=128, dynamic_smem=0, cta_stages=[stages] * g.sms,
                        groups=[predict.WarpGroup(4, ('mma',))], flops_per_stage=4 * 4 * 8192, bytes_read=1e6,
                        fill_round_trips=0)
    p = predict.predict(work, g)
    # One warp per scheduler, one iteration per stage: 4 x 16 tensor cycles, 9 issue slots per stage
    assert p.detail['per_stage_cycles']['tensor'] == pytest.approx(64)
    assert p.terms['tensor'] == pytest.approx(stages * 64 / g.clock)
    assert p.terms['issue'] == pytest.approx((stages * 9 + len(k.straight)) / g.clock)
    assert p.terms['dram'] == pytest.approx(1e6 / (g.dram_bw * g.dram_efficiency))
    resident = predict.occupancy(g, 128, 64, 0)[0]
    assert p.binding == 'tensor' and p.resident == resident and p.waves == pytest.approx(1 / resident)
    assert p.seconds >= max(p.terms.values()) + g.launch_overhead
    # Twice the stages: twice the tensor term; twice the CTAs on the same SMs: two CTAs per SM share it
    p2 = predict.predict(predict.Work(**dict(work.__dict__, cta_stages=[2 * stages] * g.sms)), g)
    assert p2.terms['tensor'] == pytest.approx(2 * p.terms['tensor'])
    p3 = predict.predict(predict.Work(**dict(work.__dict__, cta_stages=[stages] * (2 * g.sms))), g)
    assert p3.terms['tensor'] == pytest.approx(2 * p.terms['tensor'])
    # DRAM-bound when the bytes dominate
    p4 = predict.predict(predict.Work(**dict(work.__dict__, bytes_read=1e10)), g)
    assert p4.binding == 'DRAM' and p4.seconds == pytest.approx(p4.terms['dram'] + g.launch_overhead)
    # On the PRO 6000 the same kernel is tensor-bound too, at its own clock and SM count
    pro = gpus.gpu('RTX PRO 6000')
    p5 = predict.predict(predict.Work(**dict(work.__dict__, cta_stages=[stages] * pro.sms)), pro)
    assert p5.terms['tensor'] == pytest.approx(stages * 64 / pro.clock)


def test_predict_charges_unit_ends_once_per_unit():
    # A loop whose steady view needs 1000 more cycles (and 50 more instructions) at a unit's end: with cta_units
    # the latency and issue terms grow by that per unit, and only for a Work that says it has units
    import copy
    g = gpus.gpu('RTX 5090')
    k = _synthetic_kernel()
    (loop,) = k.loops
    view = copy.copy(loop)
    view.unit_extra_cycles, view.unit_extra_instructions, view.steady = 1000.0, 50, None
    loop.steady = view
    stages, units = 100, 4
    base = dict(kernel=k, threads=128, dynamic_smem=0, cta_stages=[stages] * g.sms,
                groups=[predict.WarpGroup(4, ('mma',))], flops_per_stage=4 * 4 * 8192, bytes_read=1e6,
                fill_round_trips=0)
    p0 = predict.predict(predict.Work(**base), g)
    p1 = predict.predict(predict.Work(**base, cta_units=[units] * g.sms), g)
    assert p1.terms['latency'] - p0.terms['latency'] == pytest.approx(units * 1000 / g.clock)
    assert p1.terms['issue'] - p0.terms['issue'] == pytest.approx(units * 50 / g.clock)   # one warp per scheduler
    assert p1.terms['tensor'] == pytest.approx(p0.terms['tensor'])
    assert p1.detail['per_unit_cycles'] == {'issue': pytest.approx(50), 'latency': pytest.approx(1000)}
    # A split-K closer sums `unit_sum_slots` slots in the loop's inner load loop: its chain, that many times per unit
    inner = sass.Loop(header=0, blocks=set(), latches=[])
    inner.bytes, inner.cycles, inner.instructions = {'global_load': 4096}, 700.0, 100
    view.children = [inner]
    p3 = predict.predict(predict.Work(**base, cta_units=[units] * g.sms, unit_sum_slots=3), g)
    assert p3.terms['latency'] - p1.terms['latency'] == pytest.approx(units * 3 * 700 / g.clock)
    assert p3.terms['issue'] - p1.terms['issue'] == pytest.approx(units * 3 * 100 / g.clock)
    loop.steady = None
    p2 = predict.predict(predict.Work(**base, cta_units=[units] * g.sms), g)
    assert p2.terms['latency'] == pytest.approx(p0.terms['latency'])     # no unit ends in the SASS: nothing added

def test_row_registry():
    names = [n for _, n in rows.cases()]
    assert len(names) == len(set(names)) and len(names) >= 19
    for n in names:
        fam, m = rows.match(n)
        assert fam is not None and m is not None, n
    assert rows.resolve('  same, DG_SM120_FP8_MMA=plain', 'paged_mqa_logits B=64 ctx=64K n=1') == \
        ('row', 'paged_mqa_logits B=64 ctx=64K n=1', {'DG_SM120_FP8_MMA': 'plain'})
    assert rows.resolve('  same, clean_logits=True (fused, 1 kernel)', 'mqa_logits S=4096 N=16K H=64 D=128 causal') \
        == ('row', 'mqa_logits S=4096 N=16K H=64 D=128 causal clean', {})
    assert rows.resolve('  fused clean cost N=64K (difference)')[0] == 'difference'
    assert rows.resolve('host overhead (tiny inputs)') is None
    # The ragged split plan (heuristics/sm120_mqa_logits.hpp): 512 query tiles fill 132 SMs without a split
    assert rows._ragged_splits(132, 4096, 16384, 8, 64) == 1 and rows._ragged_splits(188, 64, 16384, 8, 64) == 47
    assert rows._even_split(10, 4) == [2, 3, 2, 3]


# ------------------------------------------------------------------------------------------------ end to end
def _ext_built():
    import deep_gemm
    return deep_gemm._C is not None


@needs_tools
@pytest.mark.skipif(not _ext_built(), reason='deep_gemm._C is not built')
def test_model_only_end_to_end(tmp_path, capsys):
    from deep_gemm.bench.__main__ import main
    out = tmp_path / 'rows.json'
    rc = main(['--model-only', '--only', 'hc', '--rows', r'M=4096 N=24 K=16384$', '--cards', 'RTX 5090',
               '--json', str(out), '--jobs', '2'])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    data = json.loads(out.read_text())
    assert data['model_only'] and [r['name'] for r in data['rows']] == ['hc_prenorm_gemm M=4096 N=24 K=16384']
    preds = data['rows'][0]['predictions']
    assert set(preds) == {'H100 (sm_90a, SM120 mode)', 'RTX 5090'}, preds.keys()
    for label, p in preds.items():
        assert 'error' not in p, p
        assert p['seconds'] >= p['terms']['dram'] > 0 and p['binding'].split('(')[0] in \
            ('DRAM', 'tensor', 'issue', 'latency'), p
        assert p['grid'] >= 32 and p['registers'] > 0, p
    # hc streams `a` (M x K bf16): DRAM-bound on both, and slower on the 5090 (1.79 vs 3.35 TB/s)
    assert preds['RTX 5090']['seconds'] > preds['H100 (sm_90a, SM120 mode)']['seconds']


@needs_tools
@pytest.mark.skipif(not _ext_built(), reason='deep_gemm._C is not built')
def test_bench_without_gpu_honours_only(capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip('this machine has a GPU: the bench would measure')
    from deep_gemm.bench.__main__ import main
    rc = main(['--only', 'hc', '--rows', r'M=1 N=24', '--cards', 'GB10', '--jobs', '2'])
    printed = capsys.readouterr().out
    assert rc == 0 and 'No GPU to benchmark on' in printed, printed
    assert 'hc_prenorm_gemm M=1 N=24' in printed and 'paged_mqa_logits' not in printed and 'mqa_logits' not in \
        printed, printed


@needs_tools
@pytest.mark.skipif(not _ext_built(), reason='deep_gemm._C is not built')
def test_calibration_of_an_earlier_gpu_run(tmp_path, capsys):
    """--model-only --measured: an earlier GPU run's rows (their bytes and times) predicted on that GPU's entry, the
    error per row printed and written, without a GPU; rows of other families and rows the model does not cover pass
    through."""
    from deep_gemm.bench.__main__ import main
    from deep_gemm.bench.model import markdown
    m, k = 4096, 16384
    gpu_run = dict(model_only=False, device='NVIDIA H200 (132 SMs)', sm120_mode=True, cards=[],
                   ceilings=dict(read_bw=3.856e12, write_bw=4.3e12, fp8_mma=268e12, tf32_mma=271e12, bf16_mma=539e12),
                   rows=[dict(name=f'hc_prenorm_gemm M={m} N=24 K={k}', family='hc', measured_s=49.4e-6,
                              bytes_read=m * k * 2 + 24 * k * 4, bytes_written=(m * 24 + m) * 4,
                              flops=2.0 * m * 24 * k, mma='tf32_mma', check='ok', floor_s=35.3e-6, predictions={}),
                         dict(name='host overhead (tiny inputs)', family='hc', measured_s=11.7e-6, predictions={}),
                         dict(name='paged_mqa_logits B=64 ctx=8K n=1', family='paged', measured_s=59.2e-6,
                              predictions={})])
    src, out = tmp_path / 'gpu.json', tmp_path / 'cal.json'
    src.write_text(json.dumps(gpu_run))
    rc = main(['--model-only', '--measured', str(src), '--calibration', 'H200', '--only', 'hc', '--cards', 'GB10',
               '--json', str(out), '--jobs', '2'])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    data = json.loads(out.read_text())
    assert not data['model_only'] and data['device'] == 'NVIDIA H200 (132 SMs)' and data['measured_from'] == str(src)
    assert data['cards'] == ['H200 (sm_90a, SM120 mode)', 'GB10'], data['cards']
    hc, host = data['rows']                          # --only hc: the paged row is left out
    assert hc['measured_s'] == 49.4e-6 and hc['floor_s'] == 35.3e-6
    p = hc['predictions']['H200 (sm_90a, SM120 mode)']
    assert 'error' not in p and p['seconds'] > 0, p
    assert p['bytes'] == hc['bytes_read'] + hc['bytes_written']      # the measured row's own bytes
    assert all(v is None for v in host['predictions'].values())
    err = (p['seconds'] - 49.4e-6) / 49.4e-6
    assert f'{err * 100:+6.0f}%' in printed, printed
    assert f'| hc_prenorm_gemm M={m} N=24 K={k} | 49.4 µs | {p["seconds"] * 1e6:.1f} µs | {err * 100:+.0f}% |' in \
        markdown.render(data)


@pytest.mark.parametrize('content,needle', [
    (None, 'reading'), ('not json', 'reading'), (json.dumps(dict(rows=[])), None),
    (json.dumps(dict(model_only=True, rows=[])), 'holds --model-only predictions, not measurements')])
def test_calibration_input_errors(tmp_path, capsys, content, needle):
    from deep_gemm.bench.__main__ import main
    src = tmp_path / 'gpu.json'
    if content is not None:
        src.write_text(content)
    if needle is None:           # a valid file without rows: nothing to predict, no error
        assert main(['--model-only', '--measured', str(src), '--calibration', 'H200', '--cards', 'GB10']) == 0
        return
    with pytest.raises(SystemExit) as e:
        main(['--model-only', '--measured', str(src)])
    assert '--measured' in str(e.value) and needle in str(e.value), e.value


def test_measured_needs_model_only(capsys):
    from deep_gemm.bench.__main__ import main
    with pytest.raises(SystemExit) as e:
        main(['--measured', 'x.json'])
    assert e.value.code == 2 and '--measured goes with --model-only' in capsys.readouterr().err


def test_markdown_tables():
    from deep_gemm.bench.model import markdown
    pred = lambda s, b: dict(seconds=s, binding=b, terms={}, warps_per_scheduler=2.0,      # noqa: E731
                             detail=dict(per_stage_cycles=dict(simulated=5000, tensor=4000, issue=1000),
                                         loops={'all': [('loop 0x10-0x20 depth 0 role mma: 300 instructions/'
                                                         'iteration (fp32 136)', 2.0)]}))
    data = dict(model_only=False, device='NVIDIA H100 80GB HBM3 (132 SMs)', cards=['this GPU (H100, sm_90a)',
                'RTX 5090', 'RTX PRO 6000', 'GB10'],
                rows=[dict(name='mqa_logits S=4096 N=16K H=64 D=128 causal', measured_s=3290e-6,
                           predictions={'this GPU (H100, sm_90a)': pred(3182e-6, 'latency(warp)'),
                                        'RTX 5090': pred(1880e-6, 'latency(warp)'), 'RTX PRO 6000': pred(1e-3, 'tensor'),
                                        'GB10': pred(5e-3, 'DRAM')}),
                      dict(name='host overhead (tiny inputs)', measured_s=7e-6, predictions={})])
    md = markdown.render(data)
    assert '| mqa_logits S=4096 N=16K H=64 D=128 causal | 3290.0 µs | 3182.0 µs | -3% | latency(warp) |' in md, md
    assert '| mqa_logits S=4096 N=16K H=64 D=128 causal | 1880.0 µs (latency(warp)) | 1000.0 µs (tensor) | ' \
           '5000.0 µs (DRAM) |' in md, md
    assert 'host overhead' not in md
    # One line on what limits the only SM120 projection bound by neither DRAM nor the tensor pipe
    limits = [line for line in md.splitlines() if line.startswith('- ')]
    assert len(limits) == 1 and 'RTX 5090' in limits[0] and '2.00 warps per scheduler' in limits[0], limits


@needs_tools
@pytest.mark.skipif(not _ext_built(), reason='deep_gemm._C is not built')
def test_bench_gpu_path_with_a_fake_gpu(tmp_path, capsys, monkeypatch):
    # The measuring path of `python -m deep_gemm.bench` with the GPU parts replaced: a fake H100, fake ceilings and
    # fake measured rows (one the model covers, one variant it cannot apply, one it does not cover)
    import sys
    import torch
    import deep_gemm.bench.__main__ as bench_main
    from deep_gemm.bench import ceilings, common
    from deep_gemm.bench.model import run
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda *a: 'NVIDIA H100 80GB HBM3', raising=False)
    monkeypatch.setattr(ceilings, 'measure', lambda: common.Ceilings('NVIDIA H100 80GB HBM3 (132 SMs)', 2.85e12,
                                                                      3.1e12, 270e12, 273e12, 549e12))
    h100 = run.calibration_card('H100')
    h100.label = 'this GPU (H100, sm_90a)'
    monkeypatch.setattr(run, 'this_gpu_card', lambda: h100)
    fake = type(sys)('deep_gemm.bench.hc')
    m, k = 4096, 16384
    fake.run = lambda c: [common.Row(name=f'hc_prenorm_gemm M={m} N=24 K={k}', seconds=53.6e-6,
                                     bytes_read=m * k * 2 + 24 * k * 4, bytes_written=(m * 24 + m) * 4,
                                     flops=2.0 * m * 24 * k, mma='tf32_mma', check='ok'),
                          common.Row(name='  same, DG_SM120_FP8_MMA=plain', seconds=60e-6),
                          common.Row(name='host overhead (tiny inputs)', seconds=7e-6)]
    monkeypatch.setitem(sys.modules, 'deep_gemm.bench.hc', fake)
    out = tmp_path / 'rows.json'
    rc = bench_main.main(['--only', 'hc', '--cards', 'RTX PRO 6000', '--json', str(out), '--jobs', '2'])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    data = json.loads(out.read_text())
    assert not data['model_only'] and data['cards'] == ['this GPU (H100, sm_90a)', 'RTX PRO 6000'], data['cards']
    first, variant, host = data['rows']
    assert first['family'] == 'hc' and first['measured_s'] == 53.6e-6 and first['floor_s'] > 0
    p = first['predictions']['this GPU (H100, sm_90a)']
    assert 'error' not in p and p['binding'] == 'DRAM', p
    # The row's own bytes drive the DRAM term: 136 MB at 0.85 x 3.35 TB/s
    assert p['terms']['dram'] == pytest.approx((first['bytes_read'] + first['bytes_written']) / (3.35e12 * 0.85))
    assert first['predictions']['RTX PRO 6000']['seconds'] > p['seconds']
    # A DG_SM120_FP8_MMA variant of an hc row: the hc config choice ignores it, so it is predicted like its parent on
    # every card; the host-overhead row has no prediction
    for card, pred in variant['predictions'].items():
        assert 'error' not in pred and pred['seconds'] == pytest.approx(first['predictions'][card]['seconds']), card
    assert all(v is None for v in host['predictions'].values())
    assert 'measured' in printed and '%' in printed and 'hc_prenorm_gemm M=4096 N=24 K=16384' in printed


def _sass_function(body):
    """cuobjdump-style SASS of one function from [(address, text)], stall 1 each (analysed, no GPU tools)."""
    ctrl = f'/* 0x{sass.Control(1, 0, 7, 7, 0, 0).encode():016x} */'
    lines = ['\tcode for sm_120a', '\t.target\tsm_120a', '\t\tFunction : synth']
    for addr, text in body:
        lines += [f'        /*{addr:04x}*/                   {text} ;   /* 0x0000000000000000 */',
                  f'                                             {ctrl}']
    return sass.analyse_sass('\n'.join(lines), {'synth': dict(registers=64, stack=0, shared=0, local=0)})


def test_steady_iteration_issues_the_stage_copies():
    # A merged MMA loop whose stage copies ptxas placed out of line (reached by taken branches) and whose
    # fall-through skips them, as in the sm_120a GEMM kernels: the steady iteration (and the unit's last) must go
    # through the copies, which run every k block but the last few of a CTA; the unit's end adds the store
    mma = 'QMMA.SF.16832.F32.E4M3.E4M3.E8 R4, R8, R12, R4, R2, R2, URZ'
    k = _sass_function([(0x00, 'S2R R0, SR_TID.X'), (0x10, mma), (0x20, mma), (0x30, '@!P0 BRA 0xa0'),
                        (0x40, mma), (0x50, mma), (0x60, '@P2 BRA 0x80'), (0x70, 'STG.E [R2.64], R4'),
                        (0x80, '@P3 BRA 0x10'), (0x90, 'EXIT'),
                        (0xa0, 'LDGSTS.E.BYPASS.128 [R6], desc[UR4][R8.64]'), (0xb0, 'BRA 0x40')])
    loop = k.hot_loop('mma')
    view = loop.per_unit()
    where = k.report()
    assert view is not loop and view.tensor == {'QMMA.SF.16832.F32.E4M3': 4}, where
    assert view.counts.get('async_copy') == 1 and not view.counts.get('global_store'), where
    unit = [k.instrs[i].klass for i in view.unit_path]
    assert unit.count('async_copy') == 1 and unit.count('global_store') == 1, (unit, where)
