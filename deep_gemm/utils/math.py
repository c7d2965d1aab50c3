"""Integer helpers and reference FP8 / FP4 (e2m1) quantizers, written with plain torch ops.

Everything here runs on CPU and CUDA tensors alike; nothing launches a custom kernel.
"""
import numbers

import torch

__all__ = [
    'ceil_div', 'align', 'ceil_to_ue8m0', 'pack_ue8m0_to_int', 'unpack_ue8m0_from_int',
    'per_token_cast_to_fp8', 'per_channel_cast_to_fp8', 'per_block_cast_to_fp8',
    'per_custom_dims_cast_to_fp8', 'per_token_cast_to_fp4', 'cast_back_from_fp4',
    'transpose_packed_fp4',
]

FP8_E4M3_MAX = 448.0
FP4_E2M1_MAX = 6.0
AMAX_CLAMP = 1e-4
# e2m1 code -> value; bit 3 is the sign, bits 0..2 index the magnitude grid
_E2M1_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_tensor(fn, name, x, ndim=None, floating=False):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f'{fn}: `{name}` must be a torch.Tensor, got {type(x).__name__}')
    if ndim is not None and x.dim() not in ((ndim,) if _is_int(ndim) else ndim):
        raise ValueError(f'{fn}: `{name}` must have {ndim} dims, got shape {tuple(x.shape)}')
    if floating and not x.is_floating_point():
        raise TypeError(f'{fn}: `{name}` must be a floating-point tensor, got {x.dtype}')


def _check_gran(fn, gran, even=False):
    if not _is_int(gran) or gran <= 0 or (even and gran % 2):
        raise ValueError(f'{fn}: `gran_k` must be a positive {"even " if even else ""}int, got {gran!r}')


def _check_int_operands(fn, x, y):
    """`x` and `y` are ints (not bools) or integer tensors; a Python-int `y` must be positive. A tensor `y` is not
    checked for zeros (that would synchronize with the device)."""
    for name, v in (('x', x), ('y', y)):
        if isinstance(v, torch.Tensor):
            if v.dtype == torch.bool or v.is_floating_point() or v.is_complex():
                raise TypeError(f'{fn}: `{name}` must be an int or an integer tensor, got a {v.dtype} tensor')
        elif isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f'{fn}: `{name}` must be an int or an integer tensor, got {type(v).__name__} ({v!r:.40})')
    if not isinstance(y, torch.Tensor) and y <= 0:
        raise ValueError(f'{fn}: `y` must be positive, got {y}')


def ceil_div(x, y):
    """`ceil(x / y)` as plain integer arithmetic `(x + y - 1) // y`, like upstream: ints give an int, an integer
    tensor (either operand) gives an elementwise tensor, e.g. `ceil_div(context_lens, block_kv)`. `y > 0`."""
    _check_int_operands('ceil_div', x, y)
    return (x + y - 1) // y


def align(x, y):
    """Round `x` up to a multiple of `y` (`ceil_div(x, y) * y`); ints or integer tensors, as `ceil_div`."""
    _check_int_operands('align', x, y)
    return (x + y - 1) // y * y


def ceil_to_ue8m0(x: torch.Tensor) -> torch.Tensor:
    """Round positive values up to a power of two, exactly (powers of two stay unchanged).

    Returns a tensor of the same dtype. Float32/bf16/fp16 are handled via the float32 bit pattern (a subnormal
    rounds to 2^-126), float64 via its own bits. Zero, negative, inf and NaN inputs give unspecified values.
    """
    _check_tensor('ceil_to_ue8m0', 'x', x, floating=True)
    if x.dtype == torch.float64:
        bits = x.contiguous().view(torch.int64)
        exp = ((bits >> 52) & 0x7FF) + ((bits & 0xFFFFFFFFFFFFF) != 0).to(torch.int64)
        return (exp << 52).view(torch.float64)
    bits = x.float().view(torch.int32)
    exp = (bits >> 23) & 0xFF
    exp = exp + ((bits & 0x7FFFFF) != 0).to(torch.int32)
    return (exp << 23).view(torch.float32).to(x.dtype)


def pack_ue8m0_to_int(x: torch.Tensor) -> torch.Tensor:
    """Pack powers of two `[..., 4n]` into int32 `[..., n]`: four UE8M0 bytes per int, little-endian.

    Byte = biased float32 exponent `(bits >> 23) & 0xFF`; mantissa bits are ignored.
    """
    _check_tensor('pack_ue8m0_to_int', 'x', x, floating=True)
    if x.dim() == 0 or x.shape[-1] % 4:
        raise ValueError(f'pack_ue8m0_to_int: last dim of `x` must be a multiple of 4, got shape {tuple(x.shape)}')
    exp = (x.float().contiguous().view(torch.int32) >> 23) & 0xFF
    return exp.to(torch.uint8).view(torch.int32)


def unpack_ue8m0_from_int(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `pack_ue8m0_to_int`: int32 `[..., n]` -> float32 `[..., 4n]`, value = 2^(byte - 127).

    Byte 0 gives the subnormal 2^-127 and byte 255 gives NaN (the E8M0 NaN encoding).
    """
    _check_tensor('unpack_ue8m0_from_int', 'x', x)
    if x.dtype != torch.int32 or x.dim() == 0:
        raise TypeError(f'unpack_ue8m0_from_int: `x` must be an int32 tensor with >= 1 dim, '
                        f'got {x.dtype} with shape {tuple(x.shape)}')
    exp = x.contiguous().view(torch.uint8).to(torch.int32)
    bits = torch.where(exp == 0, torch.full_like(exp, 0x00400000), exp << 23)
    bits = torch.where(exp == 255, torch.full_like(exp, 0x7FC00000), bits)
    return bits.view(torch.float32)


def _scale_from_amax(amax, max_value, use_ue8m0):
    # divide by a tensor, not a Python scalar: CUDA turns `t / scalar` into `t * (1 / scalar)`, which rounds
    # differently from the CPU and would make the quantizers device-dependent
    amax = amax.clamp(min=AMAX_CLAMP)
    sf = amax / torch.full_like(amax, max_value)
    return ceil_to_ue8m0(sf) if use_ue8m0 else sf


def _to_fp8(x, sf):
    return (x / sf).clamp(-FP8_E4M3_MAX, FP8_E4M3_MAX).to(torch.float8_e4m3fn)


def _check_packed_ue8m0(fn, use_ue8m0, use_packed_ue8m0):
    if use_packed_ue8m0 and not use_ue8m0:
        raise ValueError(f'{fn}: `use_packed_ue8m0=True` requires `use_ue8m0=True`, got use_ue8m0={use_ue8m0!r}')


def _pack_block_scales(sf):
    """float32 power-of-two scales `[M, nb]` -> int32 `[M, ceil(nb / 4)]` of UE8M0 bytes, missing blocks 127 (2^0)."""
    nb = sf.shape[1]
    return pack_ue8m0_to_int(torch.nn.functional.pad(sf, (0, align(nb, 4) - nb), value=1.0))


def per_token_cast_to_fp8(x: torch.Tensor, use_ue8m0: bool, gran_k: int = 128, use_packed_ue8m0: bool = False):
    """`x [M, K]` -> `(fp8 e4m3 [M, K], float32 scales [M, ceil(K / gran_k)])`, one scale per row and K block.

    With `use_packed_ue8m0` (requires `use_ue8m0`) the scales are int32 `[M, ceil(K / gran_k / 4)]` of UE8M0 bytes,
    four per int (little-endian), missing blocks padded with 127 (2^0), as `per_token_cast_to_fp4`'s."""
    fn = 'per_token_cast_to_fp8'
    _check_tensor(fn, 'x', x, ndim=2, floating=True)
    _check_gran(fn, gran_k)
    _check_packed_ue8m0(fn, use_ue8m0, use_packed_ue8m0)
    m, k = x.shape
    nb = ceil_div(k, gran_k)
    xp = torch.nn.functional.pad(x.float(), (0, nb * gran_k - k)).view(m, nb, gran_k)
    sf = _scale_from_amax(xp.abs().amax(dim=2), FP8_E4M3_MAX, use_ue8m0)
    x_fp8 = _to_fp8(xp, sf.unsqueeze(2)).view(m, nb * gran_k)[:, :k].contiguous()
    return x_fp8, (_pack_block_scales(sf) if use_packed_ue8m0 else sf)


def per_channel_cast_to_fp8(x: torch.Tensor, use_ue8m0: bool, gran_k: int = 128):
    """`x [M, N]` -> `(fp8 e4m3 [M, N], float32 scales [ceil(M / gran_k), N])`, blocks of `gran_k` rows."""
    _check_tensor('per_channel_cast_to_fp8', 'x', x, ndim=2, floating=True)
    _check_gran('per_channel_cast_to_fp8', gran_k)
    x_fp8, sf = per_token_cast_to_fp8(x.t(), use_ue8m0, gran_k)
    return x_fp8.t().contiguous(), sf.t().contiguous()


def per_block_cast_to_fp8(x: torch.Tensor, use_ue8m0: bool, gran_k: int = 128):
    """`x [M, N]` -> `(fp8 e4m3 [M, N], float32 scales [ceil(M / gran_k), ceil(N / gran_k)])`, square blocks."""
    _check_tensor('per_block_cast_to_fp8', 'x', x, ndim=2, floating=True)
    _check_gran('per_block_cast_to_fp8', gran_k)
    m, n = x.shape
    bm, bn = ceil_div(m, gran_k), ceil_div(n, gran_k)
    xp = torch.nn.functional.pad(x.float(), (0, bn * gran_k - n, 0, bm * gran_k - m))
    xp = xp.view(bm, gran_k, bn, gran_k)
    sf = _scale_from_amax(xp.abs().amax(dim=(1, 3)), FP8_E4M3_MAX, use_ue8m0)
    x_fp8 = _to_fp8(xp, sf.view(bm, 1, bn, 1)).view(bm * gran_k, bn * gran_k)[:m, :n].contiguous()
    return x_fp8, sf


def per_custom_dims_cast_to_fp8(x: torch.Tensor, dims, use_ue8m0: bool):
    """One scale per index of the kept `dims`; amax over all other dims.

    Returns `(fp8 e4m3 like x, float32 scale of shape [x.shape[d] for d in sorted(dims)])`.
    """
    _check_tensor('per_custom_dims_cast_to_fp8', 'x', x, floating=True)
    dims = (dims,) if _is_int(dims) else tuple(dims)
    if not all(_is_int(d) and -x.dim() <= d < x.dim() for d in dims):
        raise ValueError(f'per_custom_dims_cast_to_fp8: `dims` must be ints in [-{x.dim()}, {x.dim()}), got {dims}')
    kept = sorted({d % x.dim() for d in dims})
    reduced = [d for d in range(x.dim()) if d not in kept]
    xf = x.float()
    amax = xf.abs().amax(dim=reduced, keepdim=True) if reduced else xf.abs()
    sf = _scale_from_amax(amax, FP8_E4M3_MAX, use_ue8m0)
    return _to_fp8(xf, sf), sf.reshape([x.shape[d] for d in kept])


def _e2m1_codes(v: torch.Tensor) -> torch.Tensor:
    """float32 -> uint8 e2m1 codes; round to nearest, ties to even code (as cvt.rn), saturating at 6."""
    a = v.abs()
    idx = ((a > 0.25).to(torch.uint8) + (a >= 0.75) + (a > 1.25) + (a >= 1.75)
           + (a > 2.5) + (a >= 3.5) + (a > 5.0))
    return idx.to(torch.uint8) | (torch.signbit(v).to(torch.uint8) << 3)


def _pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).view(torch.int8)


def _unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    p = packed.contiguous().view(torch.uint8)
    return torch.stack((p & 0xF, p >> 4), dim=-1).flatten(-2)


def per_token_cast_to_fp4(x: torch.Tensor, use_ue8m0: bool, gran_k: int = 32, use_packed_ue8m0: bool = False):
    """`x [M, K]` -> `(int8 [M, K/2] packed e2m1, sf)`; low nibble = even element, high nibble = odd element.

    Per (row, gran_k block): scale = max(amax, 1e-4) / 6, rounded up to a power of two when `use_ue8m0`.
    `x / scale` is rounded to the nearest e2m1 value (ties to the even code, i.e. IEEE round-half-even like
    `cvt.rn.satfinite.e2m1x2`), saturating at +-6; negative values that round to 0 keep the sign (code 0x8).
    A partial last K block is zero-padded. `sf` is float32 `[M, ceil(K/gran_k)]`, or with `use_packed_ue8m0`
    (requires `use_ue8m0`) int32 `[M, ceil(K/gran_k/4)]` of UE8M0 bytes, missing blocks padded with 127 (2^0).
    """
    fn = 'per_token_cast_to_fp4'
    _check_tensor(fn, 'x', x, ndim=2, floating=True)
    _check_gran(fn, gran_k, even=True)
    if x.shape[1] % 2:
        raise ValueError(f'{fn}: K (x.shape[1]) must be even, got shape {tuple(x.shape)}')
    _check_packed_ue8m0(fn, use_ue8m0, use_packed_ue8m0)
    m, k = x.shape
    nb = ceil_div(k, gran_k)
    xp = torch.nn.functional.pad(x.float(), (0, nb * gran_k - k)).view(m, nb, gran_k)
    sf = _scale_from_amax(xp.abs().amax(dim=2), FP4_E2M1_MAX, use_ue8m0)
    codes = _e2m1_codes(xp / sf.unsqueeze(2)).view(m, nb * gran_k)[:, :k]
    packed = _pack_nibbles(codes).contiguous()
    return packed, (_pack_block_scales(sf) if use_packed_ue8m0 else sf)


def cast_back_from_fp4(packed: torch.Tensor, sf: torch.Tensor, gran_k: int = 32, use_packed_ue8m0: bool = False):
    """Dequantize `per_token_cast_to_fp4` output: float32 `[M, K]` = e2m1 value x block scale."""
    fn = 'cast_back_from_fp4'
    _check_tensor(fn, 'packed', packed, ndim=2)
    _check_tensor(fn, 'sf', sf, ndim=2)
    _check_gran(fn, gran_k, even=True)
    if packed.dtype not in (torch.int8, torch.uint8):
        raise TypeError(f'{fn}: `packed` must be int8 or uint8, got {packed.dtype}')
    m, k = packed.shape[0], packed.shape[1] * 2
    nb = ceil_div(k, gran_k)
    if use_packed_ue8m0:
        if sf.dtype != torch.int32 or tuple(sf.shape) != (m, ceil_div(nb, 4)):
            raise ValueError(f'{fn}: packed `sf` must be int32 of shape {(m, ceil_div(nb, 4))}, '
                             f'got {sf.dtype} {tuple(sf.shape)}')
        sf = unpack_ue8m0_from_int(sf)[:, :nb]
    elif not sf.is_floating_point() or tuple(sf.shape) != (m, nb):
        raise ValueError(f'{fn}: `sf` must be a float tensor of shape {(m, nb)}, got {sf.dtype} {tuple(sf.shape)}')
    table = torch.tensor(_E2M1_GRID + tuple(-v for v in _E2M1_GRID), dtype=torch.float32, device=packed.device)
    values = table[_unpack_nibbles(packed).long()]
    return values * sf.float().repeat_interleave(gran_k, dim=1)[:, :k]


def transpose_packed_fp4(x: torch.Tensor) -> torch.Tensor:
    """Packed e2m1 `[M, K/2]` -> packed `[K, M/2]` holding the transpose of the unpacked matrix (M even)."""
    _check_tensor('transpose_packed_fp4', 'x', x, ndim=2)
    if x.dtype not in (torch.int8, torch.uint8):
        raise TypeError(f'transpose_packed_fp4: `x` must be int8 or uint8, got {x.dtype}')
    if x.shape[0] % 2:
        raise ValueError(f'transpose_packed_fp4: M (x.shape[0]) must be even, got shape {tuple(x.shape)}')
    out = _pack_nibbles(_unpack_nibbles(x).t().contiguous()).contiguous()
    return out.view(x.dtype)
