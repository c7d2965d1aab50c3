"""Scale-factor layouts of upstream DeepGEMM 2.6.1, as SM120 (arch major 12) sees them, and the M/K alignment knobs.

Layouts (`aligned_mn = get_tma_aligned_size(mn, element_size)`, i.e. mn rounded up to 16 bytes):

- MN-major TMA-aligned `[(G,) mn, k]`: strides `((G:) aligned_mn * k,) 1, aligned_mn`; the storage holds the full
  `aligned_mn` rows of every column (the padding rows are 0 in outputs made here).
- Packed UE8M0: int32 `[(G,) mn, ceil(k / 4)]`, MN-major TMA-aligned as above; int c of row m holds, little-endian,
  the bytes of scales 4c .. 4c + 3 (padding bytes 0). Byte = the float32's biased exponent field
  `(bits >> 23) & 0xff`: exact for powers of two (2^e -> e + 127); any other value ROUNDS DOWN to a power of two
  (its mantissa is dropped, and its sign); 0 and subnormals give 0, inf / NaN 255. A byte never spills into its
  neighbours. GEMMs handed such non-power-of-two fp32 scales directly should use them unpacked (ours do).
- k-grouped packed: `sf` float32 `[sum_g ceil(k_g / gran_k), mn]` (the groups' K-block rows stacked) -> int32
  `[sum_g ceil(k_g / (4 gran_k)), mn]`, row stride `aligned_mn` (the transpose of an MN-major TMA-aligned tensor):
  each group's rows are packed four per int on their own (no int mixes two groups; padding bytes 0).

On CUDA tensors each copy or pack is one JIT kernel (`smxx_mn_major_transpose`, `smxx_mn_major_pack_fp32_into_ue8m0`,
`smxx_k_grouped_pack_fp32_into_ue8m0`: upstream's profiler substrings `transpose` / `pack_fp32_into_ue8m0`); CPU
tensors take an equivalent torch path with the same results.
"""
import operator

import torch

from .math import _is_int, align, ceil_div

__all__ = [
    'get_tma_aligned_size', 'get_mn_major_tma_aligned_tensor', 'get_mn_major_tma_aligned_packed_ue8m0_tensor',
    'get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor', 'transform_sf_into_required_layout',
    'set_mk_alignment_for_contiguous_layout', 'get_mk_alignment_for_contiguous_layout',
    'get_theoretical_mk_alignment_for_contiguous_layout', 'get_m_alignment_for_contiguous_layout',
    'get_k_alignment_for_contiguous_layout',
]

MAX_MK_ALIGNMENT = 4096     # csrc/jit/device_runtime.hpp: DeviceRuntime::kMaxMkAlignment
MAX_K_GROUPS = 4096         # csrc/jit_kernels/impls/smxx_layout.hpp: SfKGroupedPackConfig::kMaxGroups


def _ext(fn):
    """deep_gemm._C, or the package's clear "extension not built" RuntimeError naming `fn`."""
    import deep_gemm
    if getattr(deep_gemm, '_C', None) is None:
        deep_gemm._missing_extension(fn)()
    return deep_gemm._C


# ---------------------------------------------------------------- the M/K alignment of grouped layouts
def set_mk_alignment_for_contiguous_layout(new_value: int) -> None:
    """Rows (m-grouped) / K (k-grouped) of each group in contiguous layouts are aligned to this; default 128."""
    fn = 'set_mk_alignment_for_contiguous_layout'
    if not _is_int(new_value) or not 0 < new_value <= MAX_MK_ALIGNMENT:
        raise ValueError(f'{fn}: `new_value` must be an int in [1, {MAX_MK_ALIGNMENT}]; got {new_value!r}')
    _ext(fn).set_mk_alignment_for_contiguous_layout(new_value)


def get_mk_alignment_for_contiguous_layout() -> int:
    return _ext('get_mk_alignment_for_contiguous_layout').get_mk_alignment_for_contiguous_layout()


def get_m_alignment_for_contiguous_layout() -> int:
    return get_mk_alignment_for_contiguous_layout()


def get_k_alignment_for_contiguous_layout() -> int:
    return get_mk_alignment_for_contiguous_layout()


def get_theoretical_mk_alignment_for_contiguous_layout(expected_m=None, num_groups=None) -> int:
    """128 without a hint, else the next power of two >= `expected_m`, clamped to [16, 128] (our kernels tile M by
    at most 128). `num_groups` (2.5-generation form) is accepted and does not change the result."""
    fn = 'get_theoretical_mk_alignment_for_contiguous_layout'
    if num_groups is not None and (not _is_int(num_groups) or num_groups <= 0):
        raise ValueError(f'{fn}: `num_groups` must be None or a positive int; got {num_groups!r}')
    if expected_m is None:
        return 128
    if not _is_int(expected_m) or expected_m < 0:
        raise ValueError(f'{fn}: `expected_m` must be None or a non-negative int; got {expected_m!r}')
    return min(128, max(16, 1 << max(expected_m - 1, 0).bit_length()))


# ---------------------------------------------------------------- shared pieces
def get_tma_aligned_size(x: int, element_size: int) -> int:
    """Round `x` elements up so that the row is a multiple of 16 bytes."""
    if not _is_int(x) or x < 0:
        raise ValueError(f'get_tma_aligned_size: `x` must be a non-negative int, got {x!r}')
    if not _is_int(element_size) or element_size <= 0 or 16 % element_size:
        raise ValueError(f'get_tma_aligned_size: `element_size` must divide 16, got {element_size!r}')
    return align(x, 16 // element_size)


def _check_sf(fn, sf, ndim=(2, 3)):
    if not isinstance(sf, torch.Tensor):
        raise TypeError(f'{fn}: `sf` must be a torch.Tensor, got {type(sf).__name__}')
    if sf.dim() not in ndim:
        want = ' or '.join(map(str, ndim))
        raise ValueError(f'{fn}: `sf` must have {want} dims ([(G,) mn, k]), got shape {tuple(sf.shape)}')


def _check_dtype(fn, name, t, dtype):
    if t.dtype != dtype:
        raise TypeError(f'{fn}: `{name}` must be {dtype}, got {t.dtype}')


def _mn_major_strides(shape, aligned_mn):
    return ((aligned_mn * shape[-1],) if len(shape) == 3 else ()) + (1, aligned_mn)


def _exponent_bytes(sf):
    """float32 -> uint8 biased exponent fields, same shape (any strides)."""
    return ((sf.view(torch.int32) >> 23) & 0xFF).to(torch.uint8)


def _pack_bytes_last_dim(b):
    """uint8 `[..., n]` -> int32 `[..., ceil(n / 4)]`, little-endian, padding bytes 0."""
    n = b.shape[-1]
    if n == 0:
        return torch.zeros(b.shape[:-1] + (0,), dtype=torch.int32, device=b.device)
    padded = torch.zeros(b.shape[:-1] + (align(n, 4),), dtype=torch.uint8, device=b.device)
    padded[..., :n] = b
    return padded.view(torch.int32)


def _psum_row_mask(psum_layout, mn, alignment):
    """bool [mn]: rows inside a group of an m-grouped psum layout (group g: [align(end[g-1]), end[g]))."""
    mask = torch.zeros(mn, dtype=torch.bool)
    prev_end = 0
    for end in psum_layout.tolist():
        mask[align(max(prev_end, 0), alignment):max(min(end, mn), 0)] = True
        prev_end = end
    return mask.to(psum_layout.device)


def _check_psum(fn, psum_layout, sf):
    if psum_layout is None:
        return None
    if not isinstance(psum_layout, torch.Tensor):
        raise TypeError(f'{fn}: `psum_layout` must be None or a torch.Tensor, got {type(psum_layout).__name__}')
    _check_dtype(fn, 'psum_layout', psum_layout, torch.int32)
    if psum_layout.dim() != 1:
        raise ValueError(f'{fn}: `psum_layout` must be 1-D [num_groups] (cumulative group ends), '
                         f'got shape {tuple(psum_layout.shape)}')
    if sf.dim() != 2:
        raise ValueError(f'{fn}: `psum_layout` needs a 2-D `sf` [M, k] (m-grouped rows), got shape {tuple(sf.shape)}')
    if psum_layout.device != sf.device:
        raise ValueError(f'{fn}: `psum_layout` must be on {sf.device} (where `sf` is), got {psum_layout.device}')
    return psum_layout.contiguous()


def _to_mn_major(fn, sf, mn, gran_mn=1, pack=False, psum_layout=None):
    """`sf [(G,) ceil(mn / gran_mn), k]` -> a new MN-major TMA-aligned `[(G,) mn, k]` (row m reads row m // gran_mn;
    packed to int32 `[(G,) mn, ceil(k / 4)]` with `pack`); rows outside the psum groups are 0."""
    k = sf.shape[-1]
    out_k = ceil_div(k, 4) if pack else k
    dtype = torch.int32 if pack else sf.dtype
    aligned_mn = get_tma_aligned_size(mn, dtype.itemsize)
    alignment = get_mk_alignment_for_contiguous_layout() if psum_layout is not None else 1
    full = (torch.empty if sf.is_cuda else torch.zeros)(sf.shape[:-2] + (out_k, aligned_mn), dtype=dtype,
                                                        device=sf.device)
    out = full.transpose(-1, -2)[..., :mn, :]
    if sf.is_cuda:
        _ext(fn).sf_mn_major_layout(fn, sf, out, pack, gran_mn, psum_layout, alignment)
        return out
    src = _pack_bytes_last_dim(_exponent_bytes(sf)) if pack else sf
    if gran_mn > 1:
        src = src.repeat_interleave(gran_mn, dim=-2)[..., :mn, :]
    if psum_layout is not None:
        src = src.masked_fill(~_psum_row_mask(psum_layout, mn, alignment).unsqueeze(-1), 0)
    out.copy_(src)
    return out


# ---------------------------------------------------------------- public layout functions
def get_mn_major_tma_aligned_tensor(sf: torch.Tensor) -> torch.Tensor:
    """Same values as `sf [(G,) mn, k]`, MN-major TMA-aligned (strides `((G:) aligned_mn * k,) 1, aligned_mn`).
    Returns `sf` itself when it already has exactly these strides; else a bitwise copy (one JIT kernel on CUDA)."""
    fn = 'get_mn_major_tma_aligned_tensor'
    _check_sf(fn, sf)
    if sf.element_size() not in (1, 2, 4, 8):
        raise TypeError(f'{fn}: `sf` elements must be 1, 2, 4 or 8 bytes, got {sf.dtype}')
    aligned_mn = get_tma_aligned_size(sf.shape[-2], sf.element_size())
    if tuple(sf.stride()) == _mn_major_strides(sf.shape, aligned_mn):
        return sf
    return _to_mn_major(fn, sf, sf.shape[-2])


def get_mn_major_tma_aligned_packed_ue8m0_tensor(sf: torch.Tensor, psum_layout=None) -> torch.Tensor:
    """float32 `sf [(G,) mn, k]` -> packed UE8M0 int32 `[(G,) mn, ceil(k / 4)]`, MN-major TMA-aligned (see the module
    doc: the byte is the exponent field, so non-powers of two round down).

    `psum_layout` (2-D `sf` only): int32 `[num_groups]` cumulative row ends of an m-grouped psum layout; group g's rows
    are `[align(end[g-1], get_mk_alignment_for_contiguous_layout()), end[g])`. Rows outside every group (the gaps,
    and rows past the last end) are never read and their packed ints are 0.
    """
    fn = 'get_mn_major_tma_aligned_packed_ue8m0_tensor'
    _check_sf(fn, sf)
    _check_dtype(fn, 'sf', sf, torch.float32)
    return _to_mn_major(fn, sf, sf.shape[-2], pack=True, psum_layout=_check_psum(fn, psum_layout, sf))


def _int_list(fn, name, values):
    try:
        out = [operator.index(v) for v in values]
    except TypeError:
        raise TypeError(f'{fn}: `{name}` must be a sequence of ints, got {values!r:.200}') from None
    if any(v < 0 for v in out):
        raise ValueError(f'{fn}: `{name}` must be non-negative, got {out}')
    return out


def _pick_alias(fn, name, value, alias, alias_value):
    if alias_value is None:
        return value
    if value is not None:
        raise TypeError(f'{fn}: give `{name}` or its 2.5-generation name `{alias}`, not both')
    return alias_value


def get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(sf: torch.Tensor, grouped_layout=None, ks_cpu=None,
                                                           gran_k: int = 128, k_alignment=None,
                                                           use_psum_layout: bool = False, *, ks_tensor=None,
                                                           ks=None) -> torch.Tensor:
    """Pack k-grouped float32 scales per group (layout in the module doc).

    2.6.1 form `(sf, grouped_layout, ks_cpu, gran_k, k_alignment, use_psum_layout=False)`; the 2.5-generation form
    `(sf, ks_tensor, ks, gran_k)` is the same call with `k_alignment` defaulting to `gran_k`.
    - `use_psum_layout=False`: `grouped_layout` is the device int32 per-group K (equal to the host list `ks_cpu`);
      `sf` has `sum_g ceil(k_g / gran_k)` rows; the result has `sum_g ceil(k_g / (4 gran_k))` rows.
    - `use_psum_layout=True`: `grouped_layout` is the device int32 cumulative K ends; group g has
      `k_g = end[g] - align(end[g-1], k_alignment)` (its scale rows still stacked without gaps in `sf`). The kernel
      reads k_g on the device, so the output is sized without a host sync: `ks_cpu` (real or k_alignment-aligned K
      sizes) gives `sum_g ceil(ks_cpu[g] / (4 gran_k))` rows; `ks_cpu=None` or `[]` ("not synced") gives the upper
      bound `min(R, (R + 3 G) // 4)` from `R = sf.shape[0]` rows and `G` groups. Rows past the packed groups are 0.
    """
    fn = 'get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor'
    grouped_layout = _pick_alias(fn, 'grouped_layout', grouped_layout, 'ks_tensor', ks_tensor)
    ks_cpu = _pick_alias(fn, 'ks_cpu', ks_cpu, 'ks', ks)
    _check_sf(fn, sf, ndim=(2,))
    _check_dtype(fn, 'sf', sf, torch.float32)
    if not isinstance(grouped_layout, torch.Tensor):
        raise TypeError(f'{fn}: `grouped_layout` must be a torch.Tensor, got {type(grouped_layout).__name__}')
    _check_dtype(fn, 'grouped_layout', grouped_layout, torch.int32)
    if grouped_layout.dim() != 1 or grouped_layout.device != sf.device:
        raise ValueError(f'{fn}: `grouped_layout` must be 1-D [num_groups] on {sf.device} (where `sf` is), '
                         f'got shape {tuple(grouped_layout.shape)} on {grouped_layout.device}')
    k_alignment = gran_k if k_alignment is None else k_alignment
    for name, v in (('gran_k', gran_k), ('k_alignment', k_alignment)):
        if not _is_int(v) or v <= 0:
            raise ValueError(f'{fn}: `{name}` must be a positive int, got {v!r}')
    if not isinstance(use_psum_layout, bool):
        raise TypeError(f'{fn}: `use_psum_layout` must be a bool, got {use_psum_layout!r}')
    num_groups, num_rows, mn = grouped_layout.numel(), sf.shape[0], sf.shape[1]
    if num_groups > MAX_K_GROUPS:
        raise ValueError(f'{fn}: at most {MAX_K_GROUPS} groups, got {num_groups}')
    ks_list = None if ks_cpu is None else _int_list(fn, 'ks_cpu', ks_cpu)
    if ks_list is not None and ks_list and len(ks_list) != num_groups or \
            not use_psum_layout and (ks_list is None or len(ks_list) != num_groups):
        raise ValueError(f'{fn}: `ks_cpu` must list the K of each of the {num_groups} groups of `grouped_layout`'
                         f'{" (or be None / [] with use_psum_layout=True)" if use_psum_layout else ""}, got {ks_cpu!r:.200}')
    if ks_list or not use_psum_layout:
        if not use_psum_layout and num_rows != sum(ceil_div(k, gran_k) for k in ks_list):
            raise ValueError(f'{fn}: `sf` must have {sum(ceil_div(k, gran_k) for k in ks_list)} rows (the sum of '
                             f'ceil(ks_cpu / {gran_k})), got shape {tuple(sf.shape)}')
        num_out_rows = sum(ceil_div(k, 4 * gran_k) for k in ks_list)
    else:
        num_out_rows = min(num_rows, (num_rows + 3 * num_groups) // 4)

    full = (torch.empty if sf.is_cuda else torch.zeros)((num_out_rows, align(mn, 4)), dtype=torch.int32,
                                                        device=sf.device)
    out = full[:, :mn]
    if sf.is_cuda:
        _ext(fn).sf_k_grouped_pack(fn, sf, out, grouped_layout, gran_k, k_alignment, use_psum_layout)
        return out
    # CPU: the same walk as the kernel, with K sizes read from `grouped_layout`
    row, out_row, prev_end = 0, 0, 0
    for value in grouped_layout.tolist():
        if use_psum_layout:
            k = max(value - align(max(prev_end, 0), k_alignment), 0)
            prev_end = value
        else:
            k = max(value, 0)
        rows = ceil_div(k, gran_k)
        packed = _pack_bytes_last_dim(_exponent_bytes(sf[row:row + rows]).t()).t()   # [ceil(rows' / 4), mn]
        n = max(min(packed.shape[0], num_out_rows - out_row), 0)
        out[out_row:out_row + n] = packed[:n]
        row, out_row = row + rows, out_row + ceil_div(rows, 4)
    return out


def _recipe_grans(fn, recipe, is_sfa):
    if not isinstance(recipe, (tuple, list)) or len(recipe) not in (2, 3) or \
            not all(_is_int(v) and v > 0 for v in recipe):
        raise ValueError(f'{fn}: `recipe` must be (gran_mn, gran_k) or the legacy (gran_m_a, gran_n_b, gran_k), '
                         f'positive ints; got {recipe!r}')
    if len(recipe) == 2:
        return recipe[0], recipe[1]
    if is_sfa is None and recipe[0] != recipe[1]:
        raise ValueError(f'{fn}: `is_sfa` must be True (scales of A) or False (of B) with the 3-tuple recipe '
                         f'{tuple(recipe)}; got None')
    return (recipe[0] if is_sfa or is_sfa is None else recipe[1]), recipe[2]


def transform_sf_into_required_layout(sf: torch.Tensor, mn: int, k: int, recipe, num_groups=None, is_sfa=None,
                                      disable_ue8m0_cast: bool = False, psum_layout=None) -> torch.Tensor:
    """Scales in the layout SM120's GEMMs read (2.6.1 signature; the 2.5 form is the same without `psum_layout`).

    `recipe`: `(gran_mn, gran_k)`, or the legacy `(gran_m_a, gran_n_b, gran_k)` with `is_sfa` choosing A's or B's
    granularity. `sf` is `[(num_groups,) ceil(mn / gran_mn), ceil(k / gran_k)]`:
    - float32, `disable_ue8m0_cast=False`: broadcast to per-row scales (a block's scale to its `gran_mn` rows), then
      packed UE8M0 int32 `[(num_groups,) mn, ceil(ceil(k / gran_k) / 4)]`, MN-major TMA-aligned (one kernel). Scales
      that are not powers of two round down (the exponent field): GEMMs given such scales should take them unpacked.
    - float32, `disable_ue8m0_cast=True`: per-row float32 `[(num_groups,) mn, ceil(k / gran_k)]`, MN-major TMA-aligned.
    - int32 (already packed, last dim `ceil(ceil(k / gran_k) / 4)`): per-row, MN-major TMA-aligned; returned as is
      when it already is (`disable_ue8m0_cast` does not unpack it).
    `psum_layout` (2-D `sf`, per-row recipes): as in `get_mn_major_tma_aligned_packed_ue8m0_tensor`; gap rows of a new
    output are 0.
    """
    fn = 'transform_sf_into_required_layout'
    if not isinstance(sf, torch.Tensor):
        raise TypeError(f'{fn}: `sf` must be a torch.Tensor, got {type(sf).__name__}')
    for name, v in (('mn', mn), ('k', k)):
        if not _is_int(v) or v <= 0:
            raise ValueError(f'{fn}: `{name}` must be a positive int, got {v!r}')
    if num_groups is not None and (not _is_int(num_groups) or num_groups <= 0):
        raise ValueError(f'{fn}: `num_groups` must be None or a positive int, got {num_groups!r}')
    gran_mn, gran_k = _recipe_grans(fn, recipe, is_sfa)
    if sf.dtype not in (torch.float32, torch.int32):
        raise TypeError(f'{fn}: `sf` must be float32 scales or int32 packed UE8M0 scales, got {sf.dtype}')
    packed = sf.dtype == torch.int32
    sf_k = ceil_div(k, gran_k)
    expected = (() if num_groups is None else (num_groups,)) + (ceil_div(mn, gran_mn),
                                                                 ceil_div(sf_k, 4) if packed else sf_k)
    if tuple(sf.shape) != expected:
        raise ValueError(f'{fn}: `sf` ({sf.dtype}) must have shape {expected} for mn={mn}, k={k}, '
                         f'recipe={tuple(recipe)}, num_groups={num_groups}; got {tuple(sf.shape)}')
    psum_layout = _check_psum(fn, psum_layout, sf)
    if psum_layout is not None and gran_mn != 1:
        raise ValueError(f'{fn}: `psum_layout` needs per-row scales (gran_mn = 1); got recipe {tuple(recipe)}')
    if packed or disable_ue8m0_cast:
        aligned_mn = get_tma_aligned_size(mn, 4)
        if gran_mn == 1 and psum_layout is None and tuple(sf.stride()) == _mn_major_strides(sf.shape, aligned_mn):
            return sf
        return _to_mn_major(fn, sf, mn, gran_mn, psum_layout=psum_layout)
    return _to_mn_major(fn, sf, mn, gran_mn, pack=True, psum_layout=psum_layout)
