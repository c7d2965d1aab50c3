"""GPU tests of the scale-factor layout kernels: each JIT kernel against the independent references of
test_layout_cpu.py (bitwise), over upstream test_layout.py's case sets, plus the kernels' names (upstream's timers
find them by substring) and the padding / gap rows (outputs come from an allocator block poisoned beforehand)."""
import random

import pytest
import torch

import deep_gemm.utils as dgu
from deep_gemm.testing.bench import _kernel_events

import test_layout_cpu as ref

pytestmark = pytest.mark.gpu
INTS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def poisoned(fn, nbytes):
    """Run `fn` right after freeing a block of `nbytes` filled with 0xA5, so an output of that size (the caching
    allocator hands the same block back) starts out as garbage rather than zeros."""
    junk = torch.empty(max(nbytes, 1), dtype=torch.uint8, device='cuda')
    junk.fill_(0xA5)
    del junk
    return fn()


def kernels_of(fn):
    """(result, names of the GPU kernels one call launches), after a warm-up call (JIT)."""
    fn()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        out = fn()
        torch.cuda.synchronize()
    return out, [name for name, _ in _kernel_events(prof)]


def mn_major_nbytes(shape, element_size):
    g = shape[0] if len(shape) == 3 else 1
    return g * shape[-1] * ref.ref_aligned_mn(shape[-2], element_size) * element_size


def check_mn_major(out, expected, element_size, what):
    assert out.is_cuda and out.shape == expected.shape, f'{what}: shape {tuple(out.shape)} != {tuple(expected.shape)}'
    strides = ref.ref_mn_major_strides(tuple(expected.shape), element_size)
    assert out.stride() == strides, f'{what}: strides {out.stride()} != {strides}'
    got = out.cpu()
    if not ref.bits_equal(got, expected):
        ints = INTS[expected.element_size()]
        bad = (got.view(ints) != expected.view(ints)).nonzero()
        raise AssertionError(f'{what}: {bad.shape[0]} of {expected.numel()} elements differ, first at '
                             f'{bad[0].tolist()}: got {got.view(ints)[tuple(bad[0])].item():#x}, expected '
                             f'{expected.view(ints)[tuple(bad[0])].item():#x}')
    pad = ref.padded_storage(out)[..., expected.shape[-2]:]
    assert pad.cpu().view(INTS[pad.element_size()]).eq(0).all(), \
        f'{what}: padding rows [{expected.shape[-2]}, {out.stride(-1)}) are not all 0'


def upstream_sf(mn, k, num_groups, gran_k, major, seed, pow2=False):
    """Scales as upstream's test builds them: [G * mn, sf_k] viewed [G, mn, sf_k] for G > 1, K- or MN-major."""
    sf_k = -(-k // gran_k)
    sf = ref.scales_with_specials((num_groups * mn, sf_k), seed=seed, pow2=pow2).cuda()
    sf = sf if num_groups == 1 else sf.view(num_groups, mn, sf_k)
    return sf if major == 'k' else sf.transpose(-1, -2).contiguous().transpose(-1, -2)


# ---------------------------------------------------------------- MN-major copy and pack, upstream's sets
@pytest.mark.parametrize('major', ['k', 'mn'])
@pytest.mark.parametrize('k', [128, 7168, 7296])
@pytest.mark.parametrize('mn', [4096, 4097, 8192])
def test_sf_layout_kernels(mn, k, major):
    for num_groups in (1, 2, 4):
        for gran_k in (32, 128):
            what = f'mn={mn} k={k} major={major} groups={num_groups} gran_k={gran_k}'
            sf = upstream_sf(mn, k, num_groups, gran_k, major, seed=mn + k + num_groups + gran_k)
            expected_f32 = sf.cpu()
            nbytes = mn_major_nbytes(tuple(sf.shape), 4)
            out = poisoned(lambda: dgu.get_mn_major_tma_aligned_tensor(sf), nbytes)
            check_mn_major(out, expected_f32, 4, f'transpose {what}')
            if out is sf:
                assert major == 'mn' and mn % 4 == 0, what
            packed = poisoned(lambda: dgu.get_mn_major_tma_aligned_packed_ue8m0_tensor(sf),
                              mn_major_nbytes(tuple(sf.shape[:-1]) + (-(-sf.shape[-1] // 4),), 4))
            check_mn_major(packed, ref.ref_packed(expected_f32), 4, f'pack {what}')


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.uint8, torch.float64, torch.int32])
def test_transpose_dtypes_and_strides(dtype):
    base = (torch.randn(3, 1000, 70) * 100).to(dtype).cuda()
    for src in (base, base[:, 5:900:3, 1:67:2], base.transpose(-1, -2).contiguous().transpose(-1, -2)[1], base[0, :1]):
        what = f'{dtype} shape={tuple(src.shape)} strides={src.stride()}'
        out = poisoned(lambda: dgu.get_mn_major_tma_aligned_tensor(src), mn_major_nbytes(tuple(src.shape), src.element_size()))
        check_mn_major(out, src.cpu(), src.element_size(), what)


# ---------------------------------------------------------------- psum (m-grouped) pack
@pytest.mark.parametrize('alignment', [32, 128, 160, 224])
def test_pack_psum_layout(alignment):
    old = dgu.get_mk_alignment_for_contiguous_layout()
    rng = random.Random(alignment)
    try:
        dgu.set_mk_alignment_for_contiguous_layout(alignment)
        ends, prev = [], 0
        for i in range(9):
            m = 0 if i == 3 else rng.randint(1, 700)
            prev = -(-prev // alignment) * alignment + m
            ends.append(prev)
        mn = ends[-1] + 77
        rows = ref.ref_psum_rows(ends, alignment, mn)
        gaps = sorted(set(range(mn)) - set(rows))
        for k in (4, 56, 228):
            sf = ref.scales_with_specials((mn, k), seed=k)
            sf[gaps] = float('nan')         # gap rows are never read: their packed ints must still be 0
            psum = torch.tensor(ends, dtype=torch.int32, device='cuda')
            out = poisoned(lambda: dgu.get_mn_major_tma_aligned_packed_ue8m0_tensor(sf.cuda(), psum_layout=psum),
                           mn_major_nbytes((mn, -(-k // 4)), 4))
            expected = ref.ref_packed(sf)
            expected[gaps] = 0
            check_mn_major(out, expected, 4, f'psum pack alignment={alignment} k={k} ends={ends}')
            f32 = dgu.transform_sf_into_required_layout(sf.cuda(), mn, k * 128, (1, 128), disable_ue8m0_cast=True,
                                                        psum_layout=psum)
            expected = sf.clone()
            expected[gaps] = 0
            check_mn_major(f32, expected, 4, f'psum fp32 alignment={alignment} k={k}')
    finally:
        dgu.set_mk_alignment_for_contiguous_layout(old)


# ---------------------------------------------------------------- k-grouped pack, upstream's sets
def upstream_k_grouped_cases():
    rng = random.Random(1)
    for mn in (4096, 7168):
        for num_groups, avg_k in ((16, 2048), (8, 4096), (72, 384), (128, 256)):
            for gran_k in (32, 128):
                ks = [-(-int(rng.uniform(0.7, 1.3) * avg_k) // gran_k) * gran_k for _ in range(num_groups)]
                yield mn, ks, gran_k


def check_k_grouped(out, expected, what):
    assert out.is_cuda and out.dtype == torch.int32 and out.shape == expected.shape, \
        f'{what}: shape {tuple(out.shape)} != {tuple(expected.shape)}'
    assert out.stride() == (ref.ref_aligned_mn(out.shape[1], 4), 1), f'{what}: strides {out.stride()}'
    got = out.cpu()
    if not torch.equal(got, expected):
        bad = (got != expected).nonzero()
        raise AssertionError(f'{what}: {bad.shape[0]} ints differ, first at {bad[0].tolist()}: '
                             f'{got[tuple(bad[0])].item():#x} != {expected[tuple(bad[0])].item():#x}')
    aligned = out.stride(0)
    full = torch.as_strided(out, (out.shape[0], aligned), (aligned, 1))
    assert full[:, out.shape[1]:].eq(0).all(), f'{what}: padding columns are not 0'


def test_k_grouped_sf_layout_kernels():
    for mn, ks, gran_k in upstream_k_grouped_cases():
        sf = ref.k_grouped_inputs(ks, gran_k, mn, seed=len(ks) + gran_k)
        layout = torch.tensor(ks, dtype=torch.int32, device='cuda')
        expected = ref.ref_k_grouped_packed(sf, ks, gran_k)
        what = f'mn={mn} groups={len(ks)} gran_k={gran_k} ks={ks}'
        nbytes = expected.shape[0] * ref.ref_aligned_mn(mn, 4) * 4
        sf_cuda = sf.cuda()
        out26 = poisoned(lambda: dgu.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(sf_cuda, layout, ks, gran_k,
                                                                                            gran_k), nbytes)
        check_k_grouped(out26, expected, f'2.6.1 form {what}')
        out25 = poisoned(lambda: dgu.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(sf_cuda, layout, ks, gran_k),
                         nbytes)
        check_k_grouped(out25, expected, f'2.5 form {what}')


@pytest.mark.parametrize('mn', [3, 4097])
def test_k_grouped_unaligned_and_strided(mn):
    ks = [128 * r for r in (3, 0, 9, 1, 4)]
    sf = ref.k_grouped_inputs(ks, 32, mn, seed=mn)
    wide = torch.zeros(sf.shape[0], mn + 3)
    wide[:, 1:mn + 1] = sf
    layout = torch.tensor(ks, dtype=torch.int32, device='cuda')
    expected = ref.ref_k_grouped_packed(sf, ks, 32)
    for src in (sf.cuda(), wide.cuda()[:, 1:mn + 1], sf.t().contiguous().cuda().t()):
        out = dgu.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(src, layout, ks, 32)
        check_k_grouped(out, expected, f'mn={mn} strides={src.stride()}')


@pytest.mark.parametrize('k_alignment', [32, 128, 160, 224])
def test_k_grouped_psum(k_alignment):
    for mn, ks, gran_k in upstream_k_grouped_cases():
        if mn != 4096:
            continue
        real_ks = [k + (gran_k // 2 if i % 2 else 0) for i, k in enumerate(ks)]
        real_ks[len(real_ks) // 2] = 0
        ends, prev = [], 0
        for k in real_ks:
            prev = -(-prev // k_alignment) * k_alignment + k
            ends.append(prev)
        sf = ref.k_grouped_inputs(real_ks, gran_k, mn, seed=k_alignment)
        layout = torch.tensor(ends, dtype=torch.int32, device='cuda')
        expected = ref.ref_k_grouped_packed(sf, real_ks, gran_k)
        aligned_ks = [-(-k // k_alignment) * k_alignment for k in real_ks]
        what = f'psum groups={len(ks)} gran_k={gran_k} k_alignment={k_alignment} ends={ends}'
        sf_cuda = sf.cuda()
        for ks_cpu in (real_ks, aligned_ks, None, []):
            out = dgu.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(sf_cuda, layout, ks_cpu, gran_k,
                                                                             k_alignment, use_psum_layout=True)
            tag = 'None' if ks_cpu is None else ('[]' if not ks_cpu else ('real' if ks_cpu is real_ks else 'aligned'))
            assert out.shape[0] >= expected.shape[0], f'{what} ks_cpu={tag}: {out.shape[0]} rows'
            check_k_grouped(out[:expected.shape[0]], expected, f'{what} ks_cpu={tag}')
            assert out[expected.shape[0]:].eq(0).all(), f'{what} ks_cpu={tag}: rows past the groups are not 0'
            if ks_cpu is real_ks:
                assert out.shape[0] == expected.shape[0], what


# ---------------------------------------------------------------- transform_sf_into_required_layout
@pytest.mark.parametrize('num_groups', [None, 3])
def test_transform_matches_cpu_path(num_groups):
    lead = () if num_groups is None else (num_groups,)
    cases = [((1, 128), 4097, 7168, False), ((1, 1, 128), 4097, 7168, True), ((128, 128), 4097, 7168, None),
             ((1, 32), 3000, 7296, None), ((1, 128, 128), 2050, 1024, False)]
    for recipe, mn, k, is_sfa in cases:
        gran_mn, gran_k = (recipe[0] if len(recipe) == 2 or is_sfa else recipe[1]), recipe[-1]
        sf = ref.scales_with_specials(lead + (-(-mn // gran_mn), -(-k // gran_k)), seed=mn + k)
        for disable in (False, True):
            what = f'recipe={recipe} is_sfa={is_sfa} mn={mn} k={k} groups={num_groups} disable_ue8m0_cast={disable}'
            cpu = dgu.transform_sf_into_required_layout(sf, mn, k, recipe, num_groups, is_sfa, disable)
            gpu = dgu.transform_sf_into_required_layout(sf.cuda(), mn, k, recipe, num_groups, is_sfa, disable)
            per_row = sf.index_select(-2, torch.arange(mn) // gran_mn)
            check_mn_major(gpu, per_row if disable else ref.ref_packed(per_row), 4, what)
            assert gpu.stride() == cpu.stride() and ref.bits_equal(gpu.cpu(), cpu), what
            again = dgu.transform_sf_into_required_layout(gpu, mn, k, (1, gran_k), num_groups,
                                                          disable_ue8m0_cast=disable)
            assert again is gpu, f'{what}: an int32 / fp32 result in the required layout must come back as is'


# ---------------------------------------------------------------- kernel names and counts
def test_kernel_names():
    sf = upstream_sf(4097, 7168, 2, 128, 'k', seed=0)
    _, names = kernels_of(lambda: dgu.get_mn_major_tma_aligned_tensor(sf))
    assert len(names) == 1 and 'transpose' in names[0] and 'pack_fp32_into_ue8m0' not in names[0], names
    seen = list(names)
    _, names = kernels_of(lambda: dgu.get_mn_major_tma_aligned_packed_ue8m0_tensor(sf))
    assert len(names) == 1 and 'pack_fp32_into_ue8m0' in names[0] and 'transpose' not in names[0], names
    seen += names
    blocks = torch.rand(2, 33, 1, device='cuda')
    _, names = kernels_of(lambda: dgu.transform_sf_into_required_layout(blocks, 4097, 128, (128, 128), 2))
    assert len(names) == 1 and 'pack_fp32_into_ue8m0' in names[0], names
    seen += names
    ks = [256, 512, 0, 128]
    k_sf = ref.k_grouped_inputs(ks, 128, 4096).cuda()
    layout = torch.tensor(ks, dtype=torch.int32, device='cuda')
    for use_psum, ks_cpu in ((False, ks), (True, None)):
        _, names = kernels_of(lambda: dgu.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(
            k_sf, layout, ks_cpu, 128, 128, use_psum_layout=use_psum))
        assert len(names) == 1 and 'pack_fp32_into_ue8m0' in names[0] and 'transpose' not in names[0], names
        seen += names
    assert not any('gemm' in name for name in seen), seen
    # already in the required layout: no kernel at all
    aligned = dgu.get_mn_major_tma_aligned_tensor(sf)
    out, names = kernels_of(lambda: dgu.get_mn_major_tma_aligned_tensor(aligned))
    assert out is aligned and names == [], names


def test_errors_on_cuda():
    fn = 'get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor'
    sf = torch.ones(3, 8, device='cuda')
    with pytest.raises(ValueError, match=f'{fn}: `grouped_layout` must be 1-D .* on cuda'):
        dgu.get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(sf, torch.tensor([384], dtype=torch.int32), [384])
    with pytest.raises(ValueError, match='transform_sf_into_required_layout: `psum_layout` must be on cuda'):
        dgu.transform_sf_into_required_layout(sf, 3, 1024, (1, 128), psum_layout=torch.tensor([3], dtype=torch.int32))
