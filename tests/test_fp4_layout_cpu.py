"""CPU model of the FP4 warp tile in `deep_gemm/include/deep_gemm/mma/fp4.cuh`.

Two halves, kept apart on purpose:
  - `Ptx*`: the instructions as the PTX ISA defines them (9.7.14.5.11 "Matrix Fragments for mma.m16n8k64",
    9.7.14.3 "Block Scaling for mma.sync", 9.7.14.5.8 "Matrix Fragments for mma.m16n8k16" with bf16, and `prmt`,
    `fma.rn.bf16x2`). They know nothing of our data layout.
  - `Ours*`: a line-by-line Python mirror of the index arithmetic and bit tricks of fp4.cuh (the C++ is quoted in
    the comments next to each line), fed by our data layout (packed e2m1, low nibble = even element; packed int32
    UE8M0 scales, byte b for elements [32b, 32b+32)).
Each test runs our helpers' registers through the PTX model and compares with the plain math
    D[m, n] = sum_b sk[m, b] * sq[n, b] * sum_{k in block b} k[m, k] * q[n, k]
in float64 (exact here: every product is a small dyadic number). Mutants of the mirror must fail, so the model
really pins down the layout.
"""
import math
import random
import struct

import pytest
import torch

E2M1 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
M32 = 0xFFFFFFFF


def e2m1_value(code):
    return (-1.0 if code & 8 else 1.0) * E2M1[code & 7]


def ue8m0_value(byte):
    return math.nan if byte == 255 else 2.0 ** (byte - 127)


def u32(bs):
    """4 bytes little-endian -> uint32 (a 32-bit load)."""
    return bs[0] | (bs[1] << 8) | (bs[2] << 16) | (bs[3] << 24)


# ----------------------------------------------------------------------------------------------------------------
# The PTX ISA model
# ----------------------------------------------------------------------------------------------------------------

def ptx_16864_a(lane, i):
    """(row, col) of element a_i (nibble i % 8 of register i // 8) for mma.m16n8k64 .e2m1 (Figure 93)."""
    group, tig = lane >> 2, lane % 4
    row = group if (i < 8 or 16 <= i < 24) else group + 8
    col = tig * 8 + (i & 7) + (32 if i >= 16 else 0)
    return row, col


def ptx_16864_b(lane, i):
    """(row k, col n) of element b_i for mma.m16n8k64 .e2m1 (Figures 94, 95)."""
    group, tig = lane >> 2, lane % 4
    return tig * 8 + (i & 7) + (32 if i >= 8 else 0), group


def ptx_c(lane, i):
    """(row, col) of accumulator c_i of any m16n8 f32 MMA (Figure 96)."""
    group, tig = lane >> 2, lane % 4
    return group + (8 if i >= 2 else 0), tig * 2 + (i & 1)


def ptx_sfa_source(row, chunk, thread_id_a, byte_id_a):
    """(lane, byte) providing SF_A[row][chunk] with .scale_vec::2X (Section 9.7.14.3, Figures 43, 45):
    the thread pair lane % 4 in {2 * thread_id_a, 2 * thread_id_a + 1} of quad row % 8, the lower lane for rows
    0..7 and the upper one for rows 8..15; byte pair (byte_id_a, byte_id_a + 1), the lower byte for chunk 0."""
    return 4 * (row % 8) + 2 * thread_id_a + row // 8, byte_id_a + chunk


def ptx_sfb_source(col, chunk, thread_id_b, byte_id_b):
    """(lane, byte) providing SF_B[chunk][col]: lane % 4 == thread_id_b of quad col (Figure 44)."""
    return 4 * col + thread_id_b, byte_id_b + chunk


def ptx_mma_16864_block_scaled(a_regs, b_regs, c, sfa_regs, sfb_regs, byte_id=0, thread_id=0):
    """mma.sync.m16n8k64.row.col.kind::mxf4nvf4.block_scale.scale_vec::2X.f32.e2m1.e2m1.f32.ue8m0, exact math."""
    A = [[None] * 64 for _ in range(16)]
    B = [[None] * 8 for _ in range(64)]
    for lane in range(32):
        for i in range(32):
            r, k = ptx_16864_a(lane, i)
            A[r][k] = e2m1_value((a_regs[lane][i // 8] >> (4 * (i % 8))) & 0xF)
        for i in range(16):
            k, n = ptx_16864_b(lane, i)
            B[k][n] = e2m1_value((b_regs[lane][i // 8] >> (4 * (i % 8))) & 0xF)
    sfa = [[0.0] * 2 for _ in range(16)]
    sfb = [[0.0] * 8 for _ in range(2)]
    for chunk in range(2):
        for r in range(16):
            lane, byte = ptx_sfa_source(r, chunk, thread_id, byte_id)
            sfa[r][chunk] = ue8m0_value((sfa_regs[lane] >> (8 * byte)) & 0xFF)
        for n in range(8):
            lane, byte = ptx_sfb_source(n, chunk, thread_id, byte_id)
            sfb[chunk][n] = ue8m0_value((sfb_regs[lane] >> (8 * byte)) & 0xFF)
    d = [row[:] for row in c]
    for m in range(16):
        for n in range(8):
            d[m][n] += sum(A[m][k] * sfa[m][k // 32] * B[k][n] * sfb[k // 32][n] for k in range(64))
    return d


def bf16_bits_to_float(bits):
    # a bf16 is the upper half of a float32
    return struct.unpack('<f', struct.pack('<I', (bits & 0xFFFF) << 16))[0]


def float_to_bf16_bits(x):
    # round to nearest even, as cvt.rn / fma.rn; exact inputs stay exact
    return torch.tensor([x], dtype=torch.float64).to(torch.bfloat16).view(torch.int16).item() & 0xFFFF


def ptx_prmt(a, b, c):
    """prmt.b32 d, a, b, c (default mode): byte k of d = byte (c >> 4k) & 7 of {b, a}; bit 3 replicates its sign."""
    src = [(a >> (8 * i)) & 0xFF for i in range(4)] + [(b >> (8 * i)) & 0xFF for i in range(4)]
    d = 0
    for k in range(4):
        sel = (c >> (4 * k)) & 0xF
        byte = src[sel & 7]
        if sel & 8:
            byte = 0xFF if byte & 0x80 else 0x00
        d |= byte << (8 * k)
    return d


def ptx_fma_bf16x2(a, b, c):
    """fma.rn.bf16x2: per 16-bit half, a * b + c rounded once to bf16 (float64 is exact for these operands)."""
    out = 0
    for h in range(2):
        x, y, z = (bf16_bits_to_float((v >> (16 * h)) & 0xFFFF) for v in (a, b, c))
        out |= float_to_bf16_bits(x * y + z) << (16 * h)
    return out


def ptx_16816_bf16_a(lane, i):
    """(row, col) of a_i (half i % 2 of register i // 2) for mma.m16n8k16 .bf16."""
    group, tig = lane >> 2, lane % 4
    row = group + (8 if i in (2, 3, 6, 7) else 0)
    col = tig * 2 + (i & 1) + (8 if i >= 4 else 0)
    return row, col


def ptx_16816_bf16_b(lane, i):
    """(row k, col n) of b_i for mma.m16n8k16 .bf16."""
    group, tig = lane >> 2, lane % 4
    return tig * 2 + (i & 1) + (8 if i >= 2 else 0), group


def ptx_mma_16816_bf16(a_regs, b_regs, c):
    A = [[None] * 16 for _ in range(16)]
    B = [[None] * 8 for _ in range(16)]
    for lane in range(32):
        for i in range(8):
            r, k = ptx_16816_bf16_a(lane, i)
            A[r][k] = bf16_bits_to_float(a_regs[lane][i // 2] >> (16 * (i % 2)))
        for i in range(4):
            k, n = ptx_16816_bf16_b(lane, i)
            B[k][n] = bf16_bits_to_float(b_regs[lane][i // 2] >> (16 * (i % 2)))
    d = [row[:] for row in c]
    for m in range(16):
        for n in range(8):
            d[m][n] += sum(A[m][k] * B[k][n] for k in range(16))
    return d


# ----------------------------------------------------------------------------------------------------------------
# Mirror of fp4.cuh
# ----------------------------------------------------------------------------------------------------------------

class Ours:
    """Mirror of fp4.cuh; the `mutant` flag breaks one index on purpose (see test_mutants_fail)."""

    def __init__(self, mutant=None):
        self.mutant = mutant

    # The raw register layout of fp4.cuh's note (kernels load these bytes with ldmatrix): A raw[0] / raw[1] = row g /
    # g + 8, packed bytes 32s + 4t .. +3; raw[2] / raw[3] the same rows, bytes 32s + 16 + 4t .. +3
    def load_a_raw(self, tile, row_stride, step, lane):
        p = (lane >> 2) * row_stride + 32 * step + 4 * (lane & 3)
        if self.mutant == 'a_quad_bytes':
            p = (lane >> 2) * row_stride + 32 * step + 4 * (3 - (lane & 3))
        rd = lambda off: u32(tile[off:off + 4])  # noqa: E731
        raw = [rd(p), rd(p + 8 * row_stride), rd(p + 16), rd(p + 8 * row_stride + 16)]
        if self.mutant == 'a_reg_order':
            raw[1], raw[2] = raw[2], raw[1]
        return raw

    # B raw[0] / raw[1] = column (head) g, packed bytes 32s + 4t .. +3 / 32s + 16 + 4t .. +3
    def load_b_raw(self, tile, row_stride, step, lane):
        p = (lane >> 2) * row_stride + 32 * step + 4 * (lane & 3)
        return [u32(tile[p:p + 4]), u32(tile[p + 16:p + 20])]

    # ---- Fp4Mma<true> ----
    # make_a<kStep>: sf = ((lane & 1) ? sf_row_g8 : sf_row_g) >> (16 * kStep)
    def native_make_a(self, step, raw, sf_row_g, sf_row_g8, lane):
        if self.mutant == 'sfa_lane':
            return raw, (sf_row_g if lane & 1 else sf_row_g8) >> (16 * step)
        return raw, (sf_row_g8 if lane & 1 else sf_row_g) >> (16 * step)

    # make_b<kStep>: sf = sf_col_g >> (16 * kStep)
    def native_make_b(self, step, raw, sf_col_g):
        if self.mutant == 'sf_step_bytes':
            return raw, (sf_col_g >> (16 * step)) if step == 0 else ((sf_col_g >> 16) & 0xFF) << 8 | (sf_col_g >> 24)
        return raw, sf_col_g >> (16 * step)

    # mma: "... %10, {0, 0}, %11, {0, 0};"  -> byte-id 0, thread-id 0 for both
    @staticmethod
    def native_mma(acc, frag_a, frag_b):
        a_regs = [fa[0] for fa in frag_a]
        sfa = [fa[1] for fa in frag_a]
        b_regs = [fb[0] for fb in frag_b]
        sfb = [fb[1] for fb in frag_b]
        return ptx_mma_16864_block_scaled(a_regs, b_regs, acc, sfa, sfb, byte_id=0, thread_id=0)

    # ---- Fp4Mma<false> ----
    # ue8m0_to_bf16x2(s): bits = s == 0 ? 0x0040 : (s == 255 ? 0x7fc0 : (s << 7)); return bits | (bits << 16);
    @staticmethod
    def ue8m0_to_bf16x2(s):
        bits = 0x0040 if s == 0 else (0x7FC0 if s == 255 else (s << 7))
        return bits | (bits << 16)

    K_LO0, K_LO1, K_HI0, K_HI1 = 0xC0800000, 0xC0804000, 0x3F3F3F00, 0x40404040

    # e2m1x8_to_bf16x8(out, w, scale_bf16x2)
    def e2m1x8_to_bf16x8(self, w, scale):
        mag = w & 0x77777777                                                    # w & 0x77777777u
        lo0, hi0 = ptx_prmt(self.K_LO0, self.K_LO1, mag), ptx_prmt(self.K_HI0, self.K_HI1, mag)
        lo1, hi1 = ptx_prmt(self.K_LO0, self.K_LO1, mag >> 16), ptx_prmt(self.K_HI0, self.K_HI1, mag >> 16)
        v = [ptx_prmt(lo0, hi0, 0x5140), ptx_prmt(lo0, hi0, 0x7362),
             ptx_prmt(lo1, hi1, 0x5140), ptx_prmt(lo1, hi1, 0x7362)]
        if self.mutant == 'nibble_order':
            v = [ptx_prmt(lo0, hi0, 0x4051) if i % 2 == 0 else x for i, x in enumerate(v)]
        out = []
        for j in range(4):
            x = w >> (8 * j)                                                    # x = w >> (8 * j)
            sign = ((x << 12) & 0x00008000) | ((x << 24) & 0x80000000)         # ((x << 12) & ..) | ((x << 24) & ..)
            out.append(ptx_fma_bf16x2(v[j] | sign, scale, 0x80008000))          # bf16x2_mul(v[j] | sign, scale)
        return out

    def portable_make_a(self, step, raw, sf_row_g, sf_row_g8):
        sh0, sh1 = 16 * step, 16 * step + 8                                     # kShift0, kShift1
        scale = [self.ue8m0_to_bf16x2((sf_row_g >> sh0) & 0xFF), self.ue8m0_to_bf16x2((sf_row_g8 >> sh0) & 0xFF),
                 self.ue8m0_to_bf16x2((sf_row_g >> sh1) & 0xFF), self.ue8m0_to_bf16x2((sf_row_g8 >> sh1) & 0xFF)]
        r = [[0] * 4 for _ in range(4)]
        for i in range(4):
            v = self.e2m1x8_to_bf16x8(raw[i], scale[i])
            for j in range(4):
                r[j][i] = v[j]                                                  # a.r[j][i] = v[j]
        return r

    def portable_make_b(self, step, raw, sf_col_g):
        sh0, sh1 = 16 * step, 16 * step + 8
        scale = [self.ue8m0_to_bf16x2((sf_col_g >> sh0) & 0xFF), self.ue8m0_to_bf16x2((sf_col_g >> sh1) & 0xFF)]
        r = [[0] * 2 for _ in range(4)]
        for i in range(2):
            v = self.e2m1x8_to_bf16x8(raw[i], scale[i])
            for j in range(4):
                r[j][i] = v[j]
        return r

    # mma: for j in 0..3: bf16_m16n8k16(d, a.r[j], b.r[j])
    @staticmethod
    def portable_mma(acc, frag_a, frag_b):
        for j in range(4):
            acc = ptx_mma_16816_bf16([fa[j] for fa in frag_a], [fb[j] for fb in frag_b], acc)
        return acc

    # The whole warp tile, as a kernel would use it (the compile harness instantiates the same loop)
    def tile(self, native, keys, ksf, heads, hsf, d):
        """keys: packed bytes [16 * D/2], ksf: 16 int32; heads: packed bytes [8 * D/2], hsf: 8 int32."""
        acc = [[0.0] * 8 for _ in range(16)]
        stride = d // 2
        for step in range(d // 64):
            fa, fb = [], []
            for lane in range(32):
                g = lane >> 2
                ra = self.load_a_raw(keys, stride, step, lane)
                rb = self.load_b_raw(heads, stride, step, lane)
                if native:
                    fa.append(self.native_make_a(step, ra, ksf[g], ksf[g + 8], lane))
                    fb.append(self.native_make_b(step, rb, hsf[g]))
                else:
                    fa.append(self.portable_make_a(step, ra, ksf[g], ksf[g + 8]))
                    fb.append(self.portable_make_b(step, rb, hsf[g]))
            acc = self.native_mma(acc, fa, fb) if native else self.portable_mma(acc, fa, fb)
        # accumulator fragment -> D (mma.cuh: lane holds rows g, g+8, columns 2t, 2t+1)
        out = [[None] * 8 for _ in range(16)]
        for lane in range(32):
            for i in range(4):
                r, c = ptx_c(lane, i)
                out[r][c] = acc[r][c]
        return out


# ----------------------------------------------------------------------------------------------------------------
# Data in our layout, and the reference
# ----------------------------------------------------------------------------------------------------------------

def make_rows(rng, rows, d, exp_lo=119, exp_hi=135, pad_garbage=True):
    """Random e2m1 codes (all 16, both zeros included) and UE8M0 block exponents, packed as the contract says.

    The exponent range keeps every sum exact in float64 (< 53 significant bits), so results compare with ==."""
    codes = [[rng.randrange(16) for _ in range(d)] for _ in range(rows)]
    packed = bytearray()
    for r in codes:
        for k in range(0, d, 2):
            packed.append(r[k] | (r[k + 1] << 4))  # low nibble = even element
    exps = [[rng.randint(exp_lo, exp_hi) for _ in range(d // 32)] for _ in range(rows)]
    sf = []
    for e in exps:
        b = e + [rng.randrange(256) if pad_garbage else 127 for _ in range(4 - len(e))]  # D = 64: bytes 2, 3 padding
        sf.append(u32(b))
    return codes, exps, bytes(packed), sf


def reference(kc, ke, qc, qe, d):
    out = [[0.0] * 8 for _ in range(16)]
    for m in range(16):
        for n in range(8):
            s = 0.0
            for b in range(d // 32):
                dot = sum(e2m1_value(kc[m][k]) * e2m1_value(qc[n][k]) for k in range(32 * b, 32 * b + 32))
                s += 2.0 ** (ke[m][b] - 127) * 2.0 ** (qe[n][b] - 127) * dot
            out[m][n] = s
    return out


# ----------------------------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('native', [True, False], ids=['native', 'portable'])
@pytest.mark.parametrize('d', [64, 128])
@pytest.mark.parametrize('seed', [0, 1])
def test_tile_matches_math(native, d, seed):
    rng = random.Random(1000 * seed + d + native)
    kc, ke, keys, ksf = make_rows(rng, 16, d)
    qc, qe, heads, hsf = make_rows(rng, 8, d)
    got = Ours().tile(native, keys, ksf, heads, hsf, d)
    assert got == reference(kc, ke, qc, qe, d)


def test_tile_with_library_quantizer():
    from deep_gemm.utils import per_token_cast_to_fp4
    torch.manual_seed(0)
    d = 128
    k = torch.randn(16, d) * torch.logspace(-2, 2, 16).unsqueeze(1)
    q = torch.randn(8, d)
    kp, ks = per_token_cast_to_fp4(k, use_ue8m0=True, gran_k=32, use_packed_ue8m0=True)
    qp, qs = per_token_cast_to_fp4(q, use_ue8m0=True, gran_k=32, use_packed_ue8m0=True)
    to_u32 = lambda t: [int(x) & M32 for x in t.flatten().tolist()]  # noqa: E731
    got = Ours().tile(True, kp.view(torch.uint8).flatten().tolist(), to_u32(ks), qp.view(torch.uint8).flatten().tolist(),
                      to_u32(qs), d)
    from deep_gemm.utils import cast_back_from_fp4
    kf = cast_back_from_fp4(kp, ks, 32, True).double()
    qf = cast_back_from_fp4(qp, qs, 32, True).double()
    ref = (kf @ qf.t()).tolist()
    assert got == ref
    assert Ours().tile(False, kp.view(torch.uint8).flatten().tolist(), to_u32(ks),
                       qp.view(torch.uint8).flatten().tolist(), to_u32(qs), d) == ref


@pytest.mark.parametrize('mutant', ['a_quad_bytes', 'a_reg_order', 'sfa_lane', 'sf_step_bytes', 'nibble_order'])
def test_mutants_fail(mutant):
    """Each deliberately broken index must change the result: the model can fail."""
    rng = random.Random(7)
    d = 128
    kc, ke, keys, ksf = make_rows(rng, 16, d)
    qc, qe, heads, hsf = make_rows(rng, 8, d)
    ref = reference(kc, ke, qc, qe, d)
    native = mutant != 'nibble_order'
    assert Ours(mutant).tile(native, keys, ksf, heads, hsf, d) != ref


def test_fragment_layout_is_fp8_byte_layout():
    """In bytes, the e2m1 m16n8k64 A/B fragments equal the e4m3 m16n8k32 ones (so FP8 ldmatrix loaders apply)."""
    for lane in range(32):
        g, t = lane >> 2, lane % 4
        for reg in range(4):
            # e4m3 m16n8k32 A: row g (+8 for regs 1, 3), byte columns 4t .. 4t+3 (+16 for regs 2, 3)
            fp8_row, fp8_byte = g + 8 * (reg % 2), 4 * t + 16 * (reg // 2)
            for nib in range(8):
                r, c = ptx_16864_a(lane, 8 * reg + nib)
                assert (r, c // 2) == (fp8_row, fp8_byte + nib // 2) and c % 2 == nib % 2
        for reg in range(2):
            for nib in range(8):
                k, n = ptx_16864_b(lane, 8 * reg + nib)
                assert (n, k // 2) == (g, 4 * t + 16 * reg + nib // 2)


@pytest.mark.parametrize('exp', [0, 1, 50, 100, 111, 120, 126, 127, 128, 140, 200, 252, 253, 254, 255])
def test_portable_dequant_bits(exp):
    """All 16 codes x exponent: our e2m1 -> bf16 (scale folded) is bit-exact e2m1 x 2^(exp-127) in bf16."""
    ours = Ours()
    scale = ours.ue8m0_to_bf16x2(exp)
    for codes in ([0, 1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 11, 12, 13, 14, 15], [15, 0, 9, 6, 8, 1, 7, 14]):
        w = sum(c << (4 * i) for i, c in enumerate(codes))
        out = ours.e2m1x8_to_bf16x8(w, scale)
        for i, c in enumerate(codes):
            bits = (out[i // 2] >> (16 * (i % 2))) & 0xFFFF
            want = e2m1_value(c) * ue8m0_value(exp)
            if math.isnan(want):
                assert (bits & 0x7F80) == 0x7F80 and (bits & 0x7F), (exp, c, hex(bits))
                continue
            want_bits = float_to_bf16_bits(want)
            if exp <= 252:
                # exactly representable (exp 0: 2^-128 .. 1.5 * 2^-125, bf16 subnormals included)
                assert bf16_bits_to_float(want_bits) == want
            assert bits == want_bits, (exp, c, hex(bits), hex(want_bits))
            # negative zero keeps its sign
            if c == 8:
                assert bits == 0x8000


def test_mirror_matches_header_source():
    """The constants and selectors mirrored above are the ones in fp4.cuh (guards against silent drift)."""
    import pathlib
    src = (pathlib.Path(__file__).resolve().parents[1] / 'deep_gemm/include/deep_gemm/mma/fp4.cuh').read_text()
    for needle in ('kLoBytes0 = 0xc0800000u, kLoBytes1 = 0xc0804000u', 'kHiBytes0 = 0x3f3f3f00u, kHiBytes1 = 0x40404040u',
                   'prmt(lo0, hi0, 0x5140u), prmt(lo0, hi0, 0x7362u), prmt(lo1, hi1, 0x5140u), prmt(lo1, hi1, 0x7362u)',
                   'w & 0x77777777u', '((x << 12) & 0x00008000u) | ((x << 24) & 0x80000000u)',
                   "s == 0 ? 0x0040u : (s == 255 ? 0x7fc0u : (s << 7))", '"r"(0x80008000u)',
                   'A raw[0] = row g,     packed bytes 32s + 4t .. +3', 'A raw[1] = row g + 8, packed bytes 32s + 4t .. +3',
                   'A raw[2] = row g,     packed bytes 32s + 16 + 4t .. +3',
                   'A raw[3] = row g + 8, packed bytes 32s + 16 + 4t .. +3',
                   'B raw[0] = column (head) g, packed bytes 32s + 4t .. +3',
                   'B raw[1] = column (head) g, packed bytes 32s + 16 + 4t .. +3',
                   '((lane & 1) ? sf_row_g8 : sf_row_g) >> (16 * kStep)', 'sf_col_g >> (16 * kStep)',
                   '%10, {0, 0}, %11, {0, 0}', 'kind::mxf4nvf4.block_scale.scale_vec::2X.f32.e2m1.e2m1.f32.ue8m0',
                   'out[j][i] = v[j];', 'dequantize_sub_steps(a.r, raw, scale);',
                   'dequantize_sub_steps(b.r, raw, scale);', 'return ue8m0_to_bf16x2((packed >> (8 * kByte)) & 0xffu);',
                   'scale_of<2 * kStep>(sf_row_g), scale_of<2 * kStep>(sf_row_g8)',
                   'scale_of<2 * kStep + 1>(sf_row_g), scale_of<2 * kStep + 1>(sf_row_g8)',
                   'bf16_m16n8k16(d, a.r[j], b.r[j]);'):
        assert needle in src, needle
