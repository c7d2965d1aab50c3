"""Scale-factor layouts for TMA loads (pure torch; SM120 keeps float32 MN-major scales)."""
import torch

from .math import _is_int, align, ceil_div, pack_ue8m0_to_int, unpack_ue8m0_from_int

__all__ = [
    'get_tma_aligned_size', 'get_mn_major_tma_aligned_tensor', 'get_mn_major_tma_aligned_packed_ue8m0_tensor',
    'get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor', 'transform_sf_into_required_layout',
]


def get_tma_aligned_size(x: int, element_size: int) -> int:
    """Round `x` elements up so that the row is a multiple of 16 bytes."""
    if not _is_int(x) or x < 0:
        raise ValueError(f'get_tma_aligned_size: `x` must be a non-negative int, got {x!r}')
    if not _is_int(element_size) or element_size <= 0 or 16 % element_size:
        raise ValueError(f'get_tma_aligned_size: `element_size` must divide 16, got {element_size!r}')
    return align(x, 16 // element_size)


def _check_sf(fn, x, ndim=(2, 3)):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f'{fn}: `x` must be a torch.Tensor, got {type(x).__name__}')
    if x.dim() not in ndim:
        raise ValueError(f'{fn}: `x` must have {" or ".join(map(str, ndim))} dims, got shape {tuple(x.shape)}')


def _is_mn_major(x, aligned_mn):
    mn, k = x.shape[-2:]
    want = ([aligned_mn * k] if x.dim() == 3 else []) + [1, aligned_mn]
    return all(size <= 1 or s == w for size, s, w in zip(x.shape, x.stride(), want))


def get_mn_major_tma_aligned_tensor(x: torch.Tensor) -> torch.Tensor:
    """Same values as `x [(B,) mn, k]`, stored MN-major: strides `(aligned_mn * k,) 1, aligned_mn` with
    `aligned_mn = get_tma_aligned_size(mn, element_size)`. Returns `x` itself if already laid out so."""
    _check_sf('get_mn_major_tma_aligned_tensor', x)
    mn, k = x.shape[-2:]
    aligned_mn = get_tma_aligned_size(mn, x.element_size())
    if _is_mn_major(x, aligned_mn):
        return x
    b = x.shape[0] if x.dim() == 3 else 1
    out = torch.empty_strided((b, mn, k), (aligned_mn * k, 1, aligned_mn), dtype=x.dtype, device=x.device)
    out.copy_(x.unsqueeze(0) if x.dim() == 2 else x)
    return out if x.dim() == 3 else out[0]


def _pack_k(x):
    """float32 UE8M0 values `[..., k]` -> int32 `[..., ceil(k/4)]`; missing k entries padded with 2^0 (byte 127)."""
    k = x.shape[-1]
    return pack_ue8m0_to_int(torch.nn.functional.pad(x.float(), (0, align(k, 4) - k), value=1.0))


def get_mn_major_tma_aligned_packed_ue8m0_tensor(x: torch.Tensor) -> torch.Tensor:
    """float32 power-of-two scales `[(B,) mn, k]` -> int32 `[(B,) mn, ceil(k/4)]` of packed UE8M0 bytes
    (see `pack_ue8m0_to_int`; pad bytes are 127), stored MN-major with TMA-aligned mn."""
    fn = 'get_mn_major_tma_aligned_packed_ue8m0_tensor'
    _check_sf(fn, x)
    if x.dtype != torch.float32:
        raise TypeError(f'{fn}: `x` must be float32, got {x.dtype}')
    return get_mn_major_tma_aligned_tensor(_pack_k(x))


def get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor(x: torch.Tensor, ks_tensor: torch.Tensor, ks,
                                                           gran_k: int = 128) -> torch.Tensor:
    """Pack k-grouped scales per group.

    `x`: float32 `[sum_g ceil(ks[g] / gran_k), mn]` (groups stacked along dim 0, group g owning
    `r_g = ceil(ks[g] / gran_k)` rows). Each group is packed along k on its own (4 UE8M0 bytes per int32, pad
    bytes 127), so no int mixes two groups. Result: int32 `[mn, sum_g ceil(r_g / 4)]`, MN-major, i.e. strides
    `(1, aligned_mn)` with `aligned_mn = align(mn, 4)`; group g's columns start at `sum_{h<g} ceil(r_h / 4)`.
    `ks_tensor` (the device copy of `ks`) is only checked for length.
    """
    fn = 'get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor'
    _check_sf(fn, x, ndim=(2,))
    if x.dtype != torch.float32:
        raise TypeError(f'{fn}: `x` must be float32, got {x.dtype}')
    ks = [int(v) for v in ks]
    if any(v < 0 for v in ks):
        raise ValueError(f'{fn}: `ks` must be non-negative, got {ks}')
    if not isinstance(ks_tensor, torch.Tensor) or ks_tensor.numel() != len(ks):
        got = tuple(ks_tensor.shape) if isinstance(ks_tensor, torch.Tensor) else type(ks_tensor).__name__
        raise ValueError(f'{fn}: `ks_tensor` must be a tensor of {len(ks)} elements, got {got}')
    rows = [ceil_div(v, gran_k) for v in ks]
    if x.shape[0] != sum(rows):
        raise ValueError(f'{fn}: `x` must have {sum(rows)} rows (sum of ceil(ks / {gran_k})), '
                         f'got shape {tuple(x.shape)}')
    packed = [_pack_k(g.t()) for g in torch.split(x, rows, dim=0) if g.shape[0] > 0]
    mn = x.shape[1]
    if not packed:
        return torch.empty((mn, 0), dtype=torch.int32, device=x.device)
    return get_mn_major_tma_aligned_tensor(torch.cat(packed, dim=1))


def _recipe_grans(recipe, is_sfa):
    if not isinstance(recipe, (tuple, list)) or len(recipe) not in (2, 3) or \
            not all(_is_int(v) and v > 0 for v in recipe):
        raise ValueError(f'transform_sf_into_required_layout: `recipe` must be 2 or 3 positive ints, got {recipe!r}')
    if len(recipe) == 3:
        return (recipe[0] if is_sfa else recipe[1]), recipe[2]
    return recipe[0], recipe[1]


def transform_sf_into_required_layout(sf: torch.Tensor, mn: int, k: int, recipe, num_groups=None,
                                      is_sfa: bool = False, disable_ue8m0_cast: bool = False) -> torch.Tensor:
    """Validate scales and return them as float32, MN-major, TMA-aligned (the SM120 kernels' layout).

    `recipe` is `(gran_mn, gran_k)` or `(gran_m_of_a, gran_n_of_b, gran_k)` (`is_sfa` picks the mn granularity).
    `sf` must be `[(num_groups,) ceil(mn / gran_mn), ceil(k / gran_k)]`. Rule for per-block input: when the
    recipe asks for per-row scales (`gran_mn == 1`) and `sf` instead has `ceil(mn / 128)` rows, row r takes block
    `r // 128`'s scale. An int32 `sf` is read as packed UE8M0 (4 k-blocks per int) and unpacked first.
    `disable_ue8m0_cast` is accepted for compatibility: scales are never packed here.
    """
    fn = 'transform_sf_into_required_layout'
    if not isinstance(sf, torch.Tensor):
        raise TypeError(f'{fn}: `sf` must be a torch.Tensor, got {type(sf).__name__}')
    for name, v in (('mn', mn), ('k', k)):
        if not _is_int(v) or v <= 0:
            raise ValueError(f'{fn}: `{name}` must be a positive int, got {v!r}')
    if num_groups is not None and (not _is_int(num_groups) or num_groups <= 0):
        raise ValueError(f'{fn}: `num_groups` must be None or a positive int, got {num_groups!r}')
    gran_mn, gran_k = _recipe_grans(recipe, is_sfa)
    lead = () if num_groups is None else (num_groups,)
    sf_k = ceil_div(k, gran_k)
    if sf.dtype == torch.int32 and sf.dim() == len(lead) + 2 and sf.shape[-1] == ceil_div(sf_k, 4):
        sf = unpack_ue8m0_from_int(sf)[..., :sf_k]
    if not sf.is_floating_point():
        raise TypeError(f'{fn}: `sf` must be float32 (or int32 packed UE8M0), got {sf.dtype}')
    expected = lead + (ceil_div(mn, gran_mn), sf_k)
    given = tuple(sf.shape)
    if given != expected:
        block = lead + (ceil_div(mn, 128), sf_k)
        if gran_mn != 1 or given != block:
            raise ValueError(f'{fn}: `sf` must have shape {expected} for mn={mn}, k={k}, recipe={tuple(recipe)}, '
                             f'num_groups={num_groups}, got {given}')
        rows = torch.arange(mn, device=sf.device) // 128
        sf = sf.index_select(-2, rows)
    return get_mn_major_tma_aligned_tensor(sf.float())
