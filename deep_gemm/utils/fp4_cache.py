"""FP4 (e2m1 + UE8M0) indexer operands in the layouts of CONTRACT.md §2, for tests and benchmarks.

- q: `(packed int8 [..., H, D/2], sf int32 [..., H])`: low nibble = even element; the int32 holds four UE8M0
  bytes little-endian, byte b scaling elements [32b, 32b + 32) (D = 64: bytes 2, 3 are padding, 127 here).
- ragged keys: `(packed int8 [N, D/2], sf int32 [N])`, the same per row.
- paged keys: uint8 `[P, block_kv, 1, D/2 + 4]`; page p holds `block_kv * D/2` packed key bytes (token t at byte
  `t * D/2`), then `block_kv` int32 scales (token t at byte `block_kv * D/2 + 4t`). Not interleaved per token.

Value = e2m1 x 2^(byte - 127). Everything runs on CPU and CUDA tensors alike (plain torch ops).
"""
import torch

from .math import cast_back_from_fp4, per_token_cast_to_fp4

__all__ = ['quantize_fp4', 'dequantize_fp4', 'pack_fp4_pages', 'unpack_fp4_pages', 'build_fp4_paged_cache',
           'dequantize_fp4_paged_cache']

_SUPPORTED_D = (64, 128)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _tensor(fn, name, x):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f'{fn}: `{name}` must be a torch.Tensor, got {type(x).__name__}')


def _check_block_kv(fn, block_kv):
    if not _is_int(block_kv) or block_kv <= 0:
        raise ValueError(f'{fn}: `block_kv` must be a positive int, got {block_kv!r}')


def quantize_fp4(x: torch.Tensor):
    """`x [..., D]` float (D in {64, 128}) -> `(packed int8 [..., D/2], sf int32 [...])`, one scale per 32 elements.

    Per row and 32-block: scale = 2^ceil(log2(max(amax, 1e-4) / 6)), values rounded to the nearest e2m1
    (`deep_gemm.utils.per_token_cast_to_fp4(x, use_ue8m0=True, gran_k=32, use_packed_ue8m0=True)`).
    Use it for q `[..., H, D]` (sf `[..., H]`) and ragged keys `[N, D]` (sf `[N]`).
    """
    fn = 'quantize_fp4'
    _tensor(fn, 'x', x)
    if not x.is_floating_point():
        raise TypeError(f'{fn}: `x` must be a floating-point tensor, got {x.dtype}')
    if x.dim() < 1 or x.shape[-1] not in _SUPPORTED_D:
        raise ValueError(f'{fn}: last dim of `x` (D) must be one of {_SUPPORTED_D}, got shape {tuple(x.shape)}')
    lead, d = tuple(x.shape[:-1]), x.shape[-1]
    packed, sf = per_token_cast_to_fp4(x.reshape(-1, d), use_ue8m0=True, gran_k=32, use_packed_ue8m0=True)
    return packed.view(*lead, d // 2), sf.view(lead)


def dequantize_fp4(packed: torch.Tensor, sf: torch.Tensor) -> torch.Tensor:
    """Inverse of `quantize_fp4`: `(int8/uint8 [..., D/2], int32 [...])` -> float32 `[..., D]`."""
    fn = 'dequantize_fp4'
    _tensor(fn, 'packed', packed)
    _tensor(fn, 'sf', sf)
    if packed.dtype not in (torch.int8, torch.uint8):
        raise TypeError(f'{fn}: `packed` must be int8 or uint8, got {packed.dtype}')
    if sf.dtype != torch.int32:
        raise TypeError(f'{fn}: `sf` must be int32, got {sf.dtype}')
    if packed.dim() < 1 or 2 * packed.shape[-1] not in _SUPPORTED_D:
        raise ValueError(f'{fn}: last dim of `packed` must be D/2 with D in {_SUPPORTED_D}, '
                         f'got shape {tuple(packed.shape)}')
    if tuple(sf.shape) != tuple(packed.shape[:-1]):
        raise ValueError(f'{fn}: `sf` must have shape {tuple(packed.shape[:-1])} (packed.shape[:-1]), '
                         f'got {tuple(sf.shape)}')
    lead, half = tuple(packed.shape[:-1]), packed.shape[-1]
    out = cast_back_from_fp4(packed.reshape(-1, half), sf.reshape(-1, 1), gran_k=32, use_packed_ue8m0=True)
    return out.view(*lead, 2 * half)


def _page_ids(fn, page_ids, num_blocks, num_pages, device):
    if page_ids is None:
        page_ids = torch.arange(num_blocks, dtype=torch.int64)
    else:
        _tensor(fn, 'page_ids', page_ids)
        if page_ids.dtype not in (torch.int32, torch.int64) or page_ids.dim() != 1 or page_ids.numel() != num_blocks:
            raise ValueError(f'{fn}: `page_ids` must be a 1-D int32/int64 tensor of ceil(num_tokens / block_kv) = '
                             f'{num_blocks} entries, got {page_ids.dtype} of shape {tuple(page_ids.shape)}')
        page_ids = page_ids.to(torch.int64).cpu()
        if num_blocks and (int(page_ids.min()) < 0 or len(set(page_ids.tolist())) != num_blocks):
            raise ValueError(f'{fn}: `page_ids` must be distinct non-negative page indices, got {page_ids.tolist()}')
    needed = int(page_ids.max()) + 1 if num_blocks else 0
    if num_pages is None:
        num_pages = needed
    elif not _is_int(num_pages) or num_pages < needed:
        raise ValueError(f'{fn}: `num_pages` must be an int >= max(page_ids) + 1 = {needed}, got {num_pages!r}')
    return page_ids.to(device), num_pages


def pack_fp4_pages(packed: torch.Tensor, sf: torch.Tensor, block_kv: int, page_ids=None, num_pages=None):
    """Lay quantized keys `(packed int8 [T, D/2], sf int32 [T])` into pages uint8 `[num_pages, block_kv, 1, D/2+4]`.

    Token i goes to page `page_ids[i // block_kv]`, slot `i % block_kv` (default `page_ids = arange`); slots and
    pages not written are zero. `num_pages` (default `max(page_ids) + 1`) sizes the pool.
    """
    fn = 'pack_fp4_pages'
    _tensor(fn, 'packed', packed)
    _tensor(fn, 'sf', sf)
    _check_block_kv(fn, block_kv)
    if packed.dtype not in (torch.int8, torch.uint8) or packed.dim() != 2 or 2 * packed.shape[1] not in _SUPPORTED_D:
        raise ValueError(f'{fn}: `packed` must be int8/uint8 [T, D/2] with D in {_SUPPORTED_D}, '
                         f'got {packed.dtype} of shape {tuple(packed.shape)}')
    if sf.dtype != torch.int32 or tuple(sf.shape) != (packed.shape[0],):
        raise ValueError(f'{fn}: `sf` must be int32 of shape {(packed.shape[0],)}, got {sf.dtype} {tuple(sf.shape)}')
    t, half = packed.shape
    num_blocks = (t + block_kv - 1) // block_kv
    page_ids, num_pages = _page_ids(fn, page_ids, num_blocks, num_pages, packed.device)
    pad = num_blocks * block_kv - t
    keys = torch.nn.functional.pad(packed.view(torch.uint8), (0, 0, 0, pad)).view(num_blocks, block_kv * half)
    scales = torch.nn.functional.pad(sf, (0, pad)).contiguous().view(torch.uint8).view(num_blocks, block_kv * 4)
    cache = torch.zeros(num_pages, block_kv * (half + 4), dtype=torch.uint8, device=packed.device)
    cache[page_ids] = torch.cat([keys, scales], dim=1)
    return cache.view(num_pages, block_kv, 1, half + 4)


def unpack_fp4_pages(kv_cache: torch.Tensor):
    """Pages uint8 `[P, block_kv, 1, D/2+4]` -> `(packed int8 [P, block_kv, D/2], sf int32 [P, block_kv])`.

    Reads page p at byte `p * kv_cache.stride(0)` (padded pages allowed), as the kernels do.
    """
    fn = 'unpack_fp4_pages'
    _tensor(fn, 'kv_cache', kv_cache)
    if kv_cache.dtype != torch.uint8 or kv_cache.dim() != 4 or kv_cache.shape[2] != 1 \
            or 2 * (kv_cache.shape[3] - 4) not in _SUPPORTED_D:
        raise ValueError(f'{fn}: `kv_cache` must be uint8 [P, block_kv, 1, D/2 + 4] with D in {_SUPPORTED_D}, '
                         f'got {kv_cache.dtype} of shape {tuple(kv_cache.shape)}')
    p, block_kv, _, row = kv_cache.shape
    half = row - 4
    page_bytes = block_kv * row
    if kv_cache.stride(3) != 1 or kv_cache.stride(1) != row or kv_cache.stride(0) < page_bytes \
            or kv_cache.stride(0) % 4:
        raise ValueError(f'{fn}: each page of `kv_cache` must be contiguous, pages a multiple of 4 bytes apart '
                         f'(strides (>= {page_bytes}, {row}, *, 1)), got strides {tuple(kv_cache.stride())}')
    pages = torch.as_strided(kv_cache, (p, page_bytes), (kv_cache.stride(0), 1))
    packed = pages[:, :block_kv * half].reshape(p, block_kv, half).view(torch.int8)
    sf = pages[:, block_kv * half:].contiguous().view(torch.int32).view(p, block_kv)
    return packed, sf


def build_fp4_paged_cache(k: torch.Tensor, block_kv: int, page_ids=None, num_pages=None):
    """Quantize keys `k [T, D]` per token (`quantize_fp4`) and lay them into FP4 pages (`pack_fp4_pages`).

    Returns `(kv_cache uint8 [num_pages, block_kv, 1, D/2 + 4], packed int8 [T, D/2], sf int32 [T])`.
    """
    fn = 'build_fp4_paged_cache'
    _tensor(fn, 'k', k)
    if k.dim() != 2:
        raise ValueError(f'{fn}: `k` must be 2-D [num_tokens, D], got shape {tuple(k.shape)}')
    _check_block_kv(fn, block_kv)
    packed, sf = quantize_fp4(k)
    return pack_fp4_pages(packed, sf, block_kv, page_ids, num_pages), packed, sf


def dequantize_fp4_paged_cache(kv_cache: torch.Tensor) -> torch.Tensor:
    """FP4 pages uint8 `[P, block_kv, 1, D/2 + 4]` -> float32 keys `[P, block_kv, D]`."""
    packed, sf = unpack_fp4_pages(kv_cache)
    return dequantize_fp4(packed, sf)
