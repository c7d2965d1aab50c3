"""CPU tests of the scale-factor layout functions and the M/K alignment knobs (deep_gemm/utils/layout.py).

The references here are written independently of the library (numpy bit arithmetic, explicit loops); the GPU tests
(test_layout_gpu.py) compare the JIT kernels with the same references.
"""
import struct

import numpy as np
import pytest
import torch

import deep_gemm
import deep_gemm.utils as dgu
import deep_gemm.utils.layout as dgl

needs_ext = pytest.mark.skipif(deep_gemm._C is None, reason='deep_gemm._C is not built (the alignment knob lives there)')


# ---------------------------------------------------------------- references
def ref_aligned_mn(mn, element_size):
    """mn rounded up so that mn * element_size is a multiple of 16 bytes."""
    return -(-mn * element_size // 16) * 16 // element_size


def ref_mn_major_strides(shape, element_size):
    aligned = ref_aligned_mn(shape[-2], element_size)
    return ((aligned * shape[-1],) if len(shape) == 3 else ()) + (1, aligned)


def ref_exponent(x):
    """numpy uint32 biased exponent fields of a float32 tensor (sign and mantissa dropped)."""
    a = x.detach().cpu().contiguous().numpy().astype(np.float32, copy=False).view(np.uint32)
    return (a >> np.uint32(23)) & np.uint32(0xFF)


def ref_pack_last(b):
    """uint32 bytes [..., n] -> int32 [..., ceil(n / 4)]: b[4c] | b[4c+1] << 8 | ..., missing bytes 0."""
    n = b.shape[-1]
    n4 = -(-n // 4) * 4
    p = np.zeros(b.shape[:-1] + (n4,), dtype=np.uint32)
    p[..., :n] = b
    p = p.reshape(b.shape[:-1] + (n4 // 4, 4))
    w = p[..., 0] | (p[..., 1] << np.uint32(8)) | (p[..., 2] << np.uint32(16)) | (p[..., 3] << np.uint32(24))
    return torch.from_numpy(np.ascontiguousarray(w).view(np.int32))


def ref_packed(sf):
    """float32 [(G,) mn, k] -> packed int32 values [(G,) mn, ceil(k / 4)]."""
    return ref_pack_last(ref_exponent(sf))


def ref_k_grouped_packed(sf, ks, gran_k):
    """Each group's ceil(k / gran_k) rows packed along the rows on their own, groups stacked."""
    parts, row = [], 0
    for k in ks:
        rows = -(-k // gran_k)
        parts.append(ref_pack_last(ref_exponent(sf[row:row + rows]).T).T)
        row += rows
    return torch.cat(parts) if parts else torch.zeros((0, sf.shape[1]), dtype=torch.int32)


def ref_psum_rows(ends, alignment, mn):
    """The rows inside the groups of an m-grouped psum layout."""
    rows, prev = set(), 0
    for end in ends:
        start = -(-prev // alignment) * alignment
        rows.update(range(start, min(end, mn)))
        prev = end
    return sorted(rows)


def bits_equal(a, b):
    """Bitwise equality of two tensors of one dtype (NaN == NaN, -0.0 != 0.0), any strides."""
    ints = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(a.view(ints[a.element_size()]), b.view(ints[b.element_size()]))


def padded_storage(out):
    """The full MN-major storage of `out` as [(G,) cols, aligned_mn] (padding rows included)."""
    aligned = out.stride(-1)
    shape = out.shape[:-2] + (out.shape[-1], aligned)
    strides = ((out.stride(0),) if out.dim() == 3 else ()) + (aligned, 1)
    return torch.as_strided(out, shape, strides)


def scales_with_specials(shape, seed=0, pow2=False):
    """float32 scales spanning many binades, with negatives, non-powers of two, zero, a subnormal, inf and NaN."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * torch.exp2(torch.randint(-20, 20, shape, generator=g).float())
    if pow2:
        return dgu.ceil_to_ue8m0(x.abs() + 1e-30)
    flat = x.view(-1)
    specials = torch.tensor([0.0, -0.0, 1e-40, float('inf'), float('-inf'), float('nan'), 1.0, -3.0, 0.01004, 2 ** -126])
    flat[:min(flat.numel(), specials.numel())] = specials[:flat.numel()]
    return x


# ---------------------------------------------------------------- the reference itself
def test_reference_exponent_bytes():
    values = [1.0, 0.01004, 0.01, 3.0, -2.0, 0.0, 1e-40, float('inf'), float('nan'), 2.0 ** 127, 2.0 ** -126]
    by_struct = [(struct.unpack('<I', struct.pack('<f', v))[0] >> 23) & 0xFF for v in values]
    assert by_struct == [127, 120, 120, 128, 128, 0, 0, 255, 255, 254, 1]
    assert ref_exponent(torch.tensor(values)).tolist() == by_struct
    # GEMM.md §2: NVIDIA's port corrupts neighbours for this row; the exponent-field pack must not
    assert ref_pack_last(ref_exponent(torch.tensor([[1.0, 0.01004, 0.01, 3.0]]))).item() == \
        (127 | 120 << 8 | 120 << 16 | 128 << 24) - (1 << 32)


# ---------------------------------------------------------------- get_mn_major_tma_aligned_tensor
@pytest.mark.parametrize('dtype', [torch.float32, torch.int32, torch.bfloat16, torch.uint8, torch.float64])
@pytest.mark.parametrize('shape', [(5, 3), (2, 6, 3), (4097, 7), (1, 1), (3, 33, 1)])
def test_mn_major_copy(dtype, shape):
    x = (torch.randn(shape) * 100).to(dtype)
    for src in (x, x.transpose(-1, -2).contiguous().transpose(-1, -2), x[..., ::1, :]):
        y = dgu.get_mn_major_tma_aligned_tensor(src)
        assert y.shape == src.shape and bits_equal(y, src)
        assert y.stride() == ref_mn_major_strides(shape, x.element_size()), (shape, src.stride(), y.stride())
        assert dgu.get_mn_major_tma_aligned_tensor(y) is y
        assert padded_storage(y)[..., shape[-2]:].eq(0).all()


def test_mn_major_returns_input_only_when_exact():
    x = torch.empty_strided((2, 8, 3), (24, 1, 8))
    assert dgu.get_mn_major_tma_aligned_tensor(x) is x
    v = x[0]
    assert v.stride() == (1, 8) and dgu.get_mn_major_tma_aligned_tensor(v) is v
    # size-1 dims still need the exact strides (upstream's test checks them), so a K-major [mn, 1] is copied
    k_major = torch.randn(8, 1)
    y = dgu.get_mn_major_tma_aligned_tensor(k_major)
    assert y is not k_major and y.stride() == (1, 8) and torch.equal(y, k_major)
    # a strided (non-unit-stride) view
    base = torch.randn(10, 12)
    v = base[::2, ::3]
    y = dgu.get_mn_major_tma_aligned_tensor(v)
    assert torch.equal(y, v) and y.stride() == (1, 8)


def test_mn_major_errors():
    with pytest.raises(ValueError, match='get_mn_major_tma_aligned_tensor: `sf` must have 2 or 3 dims'):
        dgu.get_mn_major_tma_aligned_tensor(torch.zeros(4))
    with pytest.raises(TypeError, match='get_mn_major_tma_aligned_tensor: `sf` must be a torch.Tensor'):
        dgu.get_mn_major_tma_aligned_tensor([1.0])
    with pytest.raises(TypeError, match=r'1, 2, 4 or 8 bytes.*complex128'):
        dgu.get_mn_major_tma_aligned_tensor(torch.zeros(2, 2, dtype=torch.complex128))


# ---------------------------------------------------------------- get_mn_major_tma_aligned_packed_ue8m0_tensor
@pytest.mark.parametrize('shape', [(5, 6), (2, 5, 6), (4097, 7), (3, 9, 1), (1, 4), (8, 228)])
@pytest.mark.parametrize('major', ['k', 'mn'])
def test_packed_values_and_strides(shape, major):
    sf = scales_with_specials(shape, seed=sum(shape))
    if major == 'mn':
        sf = sf.transpose(-1, -2).contiguous().transpose(-1, -2)
    out = dgu.get_mn_major_tma_aligned_packed_ue8m0_tensor(sf)
    pk = -(-shape[-1] // 4)
    assert out.dtype == torch.int32 and out.shape == shape[:-1] + (pk,)
    assert out.stride() == ref_mn_major_strides(out.shape, 4)
    assert torch.equal(out, ref_packed(sf))
    assert padded_storage(out)[..., shape[-2]:].eq(0).all()


def test_packed_byte_is_exponent_field():
    sf = torch.tensor([[1.0, 0.01004, 0.01, 3.0, -0.75]])   # one row, two ints
    out = dgu.get_mn_major_tma_aligned_packed_ue8m0_tensor(sf)
    b = out.contiguous().view(torch.uint8).view(1, 2, 4)
    assert b[0, 0].tolist() == [127, 120, 120, 128] and b[0, 1].tolist() == [126, 0, 0, 0]


def test_packed_upstream_layout_example():
    # An SM120 report upstream (transform of ones [4, 128, 8], recipe (1, 1, 32), k = 256): int32 (4, 128, 2),
    # strides (256, 1, 128)
    out = dgu.get_mn_major_tma_aligned_packed_ue8m0_tensor(torch.ones(4, 128, 8))
    assert out.shape == (4, 128, 2) and out.stride() == (256, 1, 128)
    assert out.eq(0x7F7F7F7F).all()


@needs_ext
def test_packed_psum_layout():
    old = dgu.get_mk_alignment_for_contiguous_layout()
    try:
        for alignment in (32, 160):
            dgu.set_mk_alignment_for_contiguous_layout(alignment)
            # group 1 is empty ([align(70), align(70))); gaps [70, align(70)), [300, align(300)) and [333, 400)
            ends = [70, -(-70 // alignment) * alignment, 300, 333]
            mn = 400
            sf = scales_with_specials((mn, 9), seed=alignment)
            psum = torch.tensor(ends, dtype=torch.int32)
            out = dgu.get_mn_major_tma_aligned_packed_ue8m0_tensor(sf, psum_layout=psum)
            rows = ref_psum_rows(ends, alignment, mn)
            gaps = sorted(set(range(mn)) - set(rows))
            assert gaps and out.stride() == (1, 400)
            assert torch.equal(out[rows], ref_packed(sf)[rows])
            assert out[gaps].eq(0).all()
    finally:
        dgu.set_mk_alignment_for_contiguous_layout(old)


def test_packed_errors():
    fn = 'get_mn_major_tma_aligned_packed_ue8m0_tensor'
    with pytest.raises(TypeError, match=f'{fn}: `sf` must be torch.float32'):
        dgu.get_mn_major_tma_aligned_packed_ue8m0_tensor(torch.zeros(4, 4, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match=f'{fn}: `sf` must have 2 or 3 dims'):
        dgu.get_mn_major_tma_aligned_packed_ue8m0_tensor(torch.zeros(4))
    with pytest.raises(TypeError, match=f'{fn}: `psum_layout` must be torch.int32'):
        dgu.get_mn_major_tma_aligned_packed_ue8m0_tensor(torch.zeros(4, 4), psum_layout=torch.zeros(2))
    with pytest.raises(ValueError, match=f'{fn}: `psum_layout` needs a 2-D `sf`'):
        dgu.get_mn_major_tma_aligned_packed_ue8m0_tensor(torch.zeros(2, 4, 4), torch.zeros(2, dtype=torch.int32))
    with pytest.raises(ValueError, match=f'{fn}: `psum_layout` must be 1-D'):
        dgu.get_mn_major_tma_aligned_packed_ue8m0_tensor(torch.zeros(4, 4), torch.zeros(1, 2, dtype=torch.int32))


# ---------------------------------------------------------------- k-grouped pack
def k_grouped_inputs(ks, gran_k, mn, seed=0):
    rows = sum(-(-k // gran_k) for k in ks)
    return scales_with_specials((rows, mn), seed=seed)


@pytest.mark.parametrize('gran_k', [32, 128])
@pytest.mark.parametrize('mn', [3, 8, 4097])
def test_k_grouped_both_forms(gran_k, mn):
    ks = [gran_k * r for r in (2, 5, 0, 8, 1, 3)]
    sf = k_grouped_inputs(ks, gran_k, mn, seed=mn + gran_k)
    layout = torch.tensor(ks, dtype=torch.int32)
    ref = ref_k_grouped_packed(sf, ks, gran_k)
    packed_rows = [-(-k // (4 * gran_k)) for k in ks]
    for out in (dgu.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(sf, layout, ks, gran_k, gran_k),   # 2.6.1
                dgu.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(sf, layout, ks, gran_k),           # 2.5
                dgu.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(sf, ks_tensor=layout, ks=ks, gran_k=gran_k)):
        assert out.dtype == torch.int32 and out.shape == (sum(packed_rows), mn)
        assert out.stride() == (ref_aligned_mn(mn, 4), 1)
        assert torch.equal(out, ref)
        # upstream's test: split by packed rows, each group against its own packing
        row = 0
        for part, k in zip(out.split(packed_rows), ks):
            r = -(-k // gran_k)
            assert torch.equal(part, ref_pack_last(ref_exponent(sf[row:row + r]).T).T)
            row += r


def test_k_grouped_no_int_mixes_groups():
    # groups of 1 and 2 scale rows: each gets its own int, padding bytes 0
    sf = torch.tensor([[2.0], [4.0], [8.0]])
    out = dgu.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(sf, torch.tensor([128, 256], dtype=torch.int32),
                                                                     [128, 256], 128)
    assert out.shape == (2, 1)
    assert out.contiguous().view(torch.uint8).view(2, 4).tolist() == [[128, 0, 0, 0], [129, 130, 0, 0]]


@pytest.mark.parametrize('k_alignment', [32, 128, 160, 224])
@pytest.mark.parametrize('gran_k', [32, 128])
def test_k_grouped_psum(gran_k, k_alignment):
    real_ks = [gran_k * 3 + (gran_k // 2 if i % 2 else 0) for i in range(5)] + [0, gran_k * 9]
    ends, prev = [], 0
    for k in real_ks:
        prev = -(-prev // k_alignment) * k_alignment + k
        ends.append(prev)
    mn = 37
    sf = k_grouped_inputs(real_ks, gran_k, mn, seed=k_alignment)
    layout = torch.tensor(ends, dtype=torch.int32)
    ref = ref_k_grouped_packed(sf, real_ks, gran_k)
    f = dgu.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor
    exact = f(sf, layout, real_ks, gran_k, k_alignment, use_psum_layout=True)
    assert torch.equal(exact, ref)
    aligned_ks = [-(-k // k_alignment) * k_alignment for k in real_ks]
    for ks_cpu in (aligned_ks, None, []):
        out = f(sf, layout, ks_cpu, gran_k, k_alignment, use_psum_layout=True)
        assert out.shape[0] >= ref.shape[0] and out.stride() == (ref_aligned_mn(mn, 4), 1)
        assert torch.equal(out[:ref.shape[0]], ref) and out[ref.shape[0]:].eq(0).all()
    # the documented unsynced upper bound
    rows, groups = sf.shape[0], len(ends)
    assert f(sf, layout, None, gran_k, k_alignment, use_psum_layout=True).shape[0] == min(rows, (rows + 3 * groups) // 4)


def test_k_grouped_errors():
    f = dgu.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor
    fn = 'get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor'
    sf = torch.ones(7, 3)
    ks = [256, 640]
    layout = torch.tensor(ks, dtype=torch.int32)
    with pytest.raises(ValueError, match=f'{fn}: `sf` must have 7 rows'):
        f(sf[:6], layout, ks, 128)
    with pytest.raises(ValueError, match=f'{fn}: `ks_cpu` must list the K of each of the 2 groups'):
        f(sf, layout, [256], 128)
    with pytest.raises(ValueError, match=f'{fn}: `ks_cpu` must list'):
        f(sf, layout, None, 128)
    with pytest.raises(TypeError, match=f'{fn}: `grouped_layout` must be torch.int32'):
        f(sf, layout.long(), ks, 128)
    with pytest.raises(TypeError, match=f'{fn}: `sf` must be torch.float32'):
        f(sf.double(), layout, ks, 128)
    with pytest.raises(ValueError, match=f'{fn}: `gran_k` must be a positive int'):
        f(sf, layout, ks, 0)
    with pytest.raises(ValueError, match=f'{fn}: `k_alignment` must be a positive int'):
        f(sf, layout, ks, 128, -1)
    with pytest.raises(ValueError, match=f'{fn}: `ks_cpu` must be non-negative'):
        f(sf, layout, [-1, 256], 128)
    with pytest.raises(TypeError, match=f'{fn}: `ks_cpu` must be a sequence of ints'):
        f(sf, layout, [1.5, 256], 128)
    with pytest.raises(TypeError, match=f'{fn}: give `ks_cpu` or its 2.5-generation name `ks`'):
        f(sf, layout, ks, 128, ks=ks)
    with pytest.raises(ValueError, match=f'{fn}: `sf` must have 2 dims'):
        f(sf[None], layout, ks, 128)


# ---------------------------------------------------------------- transform_sf_into_required_layout
def test_transform_fp32_packs_per_row():
    mn, k = 300, 640       # 5 blocks of 128
    sf = scales_with_specials((mn, 5), seed=1)
    out = dgu.transform_sf_into_required_layout(sf, mn, k, (1, 128))
    assert out.dtype == torch.int32 and out.shape == (300, 2) and out.stride() == (1, 300)
    assert torch.equal(out, ref_packed(sf))
    # legacy 3-tuple: A's granularity with is_sfa=True
    assert torch.equal(dgu.transform_sf_into_required_layout(sf, mn, k, (1, 128, 128), is_sfa=True), out)


@pytest.mark.parametrize('num_groups', [None, 3])
def test_transform_block_scales_broadcast(num_groups):
    mn, k = 300, 256
    lead = () if num_groups is None else (num_groups,)
    sf = scales_with_specials(lead + (3, 2), seed=2)
    rows = torch.arange(mn) // 128
    per_row = sf.index_select(-2, rows)
    out = dgu.transform_sf_into_required_layout(sf, mn, k, (1, 128, 128), num_groups=num_groups, is_sfa=False)
    assert out.shape == lead + (mn, 1) and out.stride() == ref_mn_major_strides(out.shape, 4)
    assert torch.equal(out, ref_packed(per_row))
    assert torch.equal(dgu.transform_sf_into_required_layout(sf, mn, k, (128, 128), num_groups), out)
    # fp32 kept: per-row floats, MN-major TMA-aligned
    f32 = dgu.transform_sf_into_required_layout(sf, mn, k, (128, 128), num_groups, disable_ue8m0_cast=True)
    assert f32.dtype == torch.float32 and f32.shape == lead + (mn, 2)
    assert f32.stride() == ref_mn_major_strides(f32.shape, 4) and bits_equal(f32, per_row)


def test_transform_fp4_recipe_positional():
    # upstream's mega-MoE test form: (sf, n, k, (1, 32), num_groups)
    sf = scales_with_specials((2, 64, 8), seed=3, pow2=True)
    out = dgu.transform_sf_into_required_layout(sf, 64, 256, (1, 32), 2)
    assert out.shape == (2, 64, 2) and out.stride() == (128, 1, 64) and torch.equal(out, ref_packed(sf))


def test_transform_int32_already_packed():
    sf = torch.randint(-2 ** 31, 2 ** 31 - 1, (2, 2, 130), dtype=torch.int32).transpose(-1, -2)   # MN-major, 130 rows
    # 130 is not 16-byte aligned: copied into aligned_mn = 132
    out = dgu.transform_sf_into_required_layout(sf, 130, 1024, (1, 128), num_groups=2)
    assert out.stride() == (264, 1, 132) and torch.equal(out, sf)
    assert dgu.transform_sf_into_required_layout(out, 130, 1024, (1, 128), num_groups=2) is out
    assert dgu.transform_sf_into_required_layout(out, 130, 1024, (1, 128), 2, disable_ue8m0_cast=True) is out
    # per-block packed scales broadcast to rows
    blk = torch.randint(0, 2 ** 31 - 1, (2, 1), dtype=torch.int32)
    rows = dgu.transform_sf_into_required_layout(blk, 130, 512, (128, 128))
    assert rows.shape == (130, 1) and torch.equal(rows, blk[torch.arange(130) // 128])


@needs_ext
def test_transform_psum_layout():
    alignment = dgu.get_mk_alignment_for_contiguous_layout()
    ends = [100, alignment * 2 + 50]
    mn = alignment * 3
    sf = scales_with_specials((mn, 3), seed=4)
    psum = torch.tensor(ends, dtype=torch.int32)
    rows = ref_psum_rows(ends, alignment, mn)
    gaps = sorted(set(range(mn)) - set(rows))
    out = dgu.transform_sf_into_required_layout(sf, mn, 384, (1, 128), psum_layout=psum)
    assert torch.equal(out[rows], ref_packed(sf)[rows]) and out[gaps].eq(0).all()
    f32 = dgu.transform_sf_into_required_layout(sf, mn, 384, (1, 128), disable_ue8m0_cast=True, psum_layout=psum)
    assert bits_equal(f32[rows], sf[rows]) and f32[gaps].view(torch.int32).eq(0).all()


def test_transform_errors():
    f = dgu.transform_sf_into_required_layout
    fn = 'transform_sf_into_required_layout'
    sf = torch.ones(300, 2)
    with pytest.raises(ValueError, match=rf'{fn}: `sf` \(torch.float32\) must have shape \(300, 3\).*got \(300, 2\)'):
        f(sf, 300, 384, (1, 128))
    with pytest.raises(ValueError, match=rf'{fn}: `sf` \(torch.float32\) must have shape \(4, 300, 2\)'):
        f(sf, 300, 256, (1, 128), num_groups=4)
    with pytest.raises(ValueError, match=rf'{fn}: `sf` \(torch.int32\) must have shape \(300, 1\)'):
        f(sf.int(), 300, 256, (1, 128))
    with pytest.raises(ValueError, match=f'{fn}: `recipe` must be'):
        f(sf, 300, 256, (128,))
    with pytest.raises(ValueError, match=f'{fn}: `recipe` must be'):
        f(sf, 300, 256, (1, 0))
    with pytest.raises(ValueError, match=f'{fn}: `is_sfa` must be True'):
        f(sf, 300, 256, (1, 128, 128))
    with pytest.raises(TypeError, match=f'{fn}: `sf` must be float32 scales or int32'):
        f(sf.bfloat16(), 300, 256, (1, 128))
    with pytest.raises(ValueError, match=f'{fn}: `mn` must be a positive int'):
        f(sf, 0, 256, (1, 128))
    with pytest.raises(ValueError, match=f'{fn}: `num_groups` must be None or a positive int'):
        f(sf, 300, 256, (1, 128), num_groups=0)
    with pytest.raises(ValueError, match=f'{fn}: `psum_layout` needs per-row scales'):
        f(torch.ones(3, 2), 300, 256, (128, 128), psum_layout=torch.tensor([5], dtype=torch.int32))
    with pytest.raises(TypeError, match=f'{fn}: `sf` must be a torch.Tensor'):
        f(None, 300, 256, (1, 128))


# ---------------------------------------------------------------- alignment knobs
def test_theoretical_alignment():
    f = dgu.get_theoretical_mk_alignment_for_contiguous_layout
    assert f() == 128 and f(None, 8) == 128
    assert [f(m) for m in (0, 1, 16, 17, 33, 64, 65, 100, 128, 129, 5000)] == \
        [16, 16, 16, 32, 64, 64, 128, 128, 128, 128, 128]
    assert f(expected_m=40, num_groups=4) == 64
    with pytest.raises(ValueError, match='get_theoretical_mk_alignment_for_contiguous_layout: `expected_m`'):
        f(-1)
    with pytest.raises(ValueError, match='get_theoretical_mk_alignment_for_contiguous_layout: `num_groups`'):
        f(16, 0)


def test_alignment_names_are_exported_once():
    for name in ('set_mk_alignment_for_contiguous_layout', 'get_mk_alignment_for_contiguous_layout',
                 'get_theoretical_mk_alignment_for_contiguous_layout', 'get_m_alignment_for_contiguous_layout',
                 'get_k_alignment_for_contiguous_layout'):
        assert getattr(dgu, name) is getattr(dgl, name), name
        assert name in dgu.__all__ and name in dgl.__all__


@needs_ext
def test_alignment_set_get():
    old = dgu.get_mk_alignment_for_contiguous_layout()
    assert old == 128 or old > 0
    try:
        for v in (32, 128, 160, 192, 224, 1, 4096):
            dgu.set_mk_alignment_for_contiguous_layout(v)
            assert dgu.get_mk_alignment_for_contiguous_layout() == v
            assert dgu.get_m_alignment_for_contiguous_layout() == v == dgu.get_k_alignment_for_contiguous_layout()
            assert deep_gemm._C.get_mk_alignment_for_contiguous_layout() == v
        for bad in (0, -32, 4097, 2 ** 40, 1.5, True, '128'):
            with pytest.raises(ValueError, match=r'set_mk_alignment_for_contiguous_layout: `new_value` must be an int '
                                                 r'in \[1, 4096\]'):
                dgu.set_mk_alignment_for_contiguous_layout(bad)
        # the C++ setter checks the same range on its own
        with pytest.raises(ValueError, match=r'set_mk_alignment_for_contiguous_layout: `new_value`.*got 5000'):
            deep_gemm._C.set_mk_alignment_for_contiguous_layout(5000)
    finally:
        dgu.set_mk_alignment_for_contiguous_layout(old)


def test_alignment_without_extension(monkeypatch):
    monkeypatch.setattr(deep_gemm, '_C', None)
    for call in (lambda: dgu.set_mk_alignment_for_contiguous_layout(128), dgu.get_mk_alignment_for_contiguous_layout,
                 dgu.get_m_alignment_for_contiguous_layout):
        with pytest.raises(RuntimeError, match=r'deep_gemm\.\w+_alignment_for_contiguous_layout: the C\+\+ extension'):
            call()
    assert dgu.get_theoretical_mk_alignment_for_contiguous_layout() == 128
