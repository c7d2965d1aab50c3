"""Helpers shared by the GEMM tests: quantized operands with their exact dequantization, scale-format conversions
(float32 and packed UE8M0 in any layout), float64 references and the comparison every GEMM test uses.

The reference is computed from the *dequantized* operands, so a correct kernel matches it to FP32 accumulation
rounding (much tighter than upstream's check against the unquantized inputs): a wrong row, column, k slice or scale
shows as a large error at a reported position."""
import torch

from deep_gemm.utils import per_token_cast_to_fp4


def ceil_div(a, b):
    return (a + b - 1) // b


def pow2_scales(shape, lo=-6, hi=6, seed=0, device='cuda'):
    """Random powers of two 2^e, e in [lo, hi] (never 1 everywhere: exposes a scale applied to the wrong block)."""
    g = torch.Generator(device='cpu').manual_seed(seed)
    e = torch.randint(lo, hi + 1, shape, generator=g).float()
    return torch.pow(2.0, e).to(device)


def quant_fp8(mn, k, gran_mn=1, gran_k=128, seed=0, device='cuda', scale_range=(-6, 6)):
    """Random FP8 values [mn, k] with power-of-two float32 scales [ceil(mn / gran_mn), ceil(k / gran_k)]; returns
    (fp8, scales, dequantized float64)."""
    g = torch.Generator(device='cpu').manual_seed(seed)
    x = (torch.randn(mn, k, generator=g) * 4).to(torch.float8_e4m3fn).to(device)
    sf = pow2_scales((ceil_div(mn, gran_mn), ceil_div(k, gran_k)), *scale_range, seed=seed + 1, device=device)
    return x, sf, dequant(x, sf, gran_mn, gran_k)


def dequant(x, sf, gran_mn, gran_k):
    """x [mn, k] (fp8) times its float scales, in float64."""
    mn, k = x.shape
    s = sf.double().repeat_interleave(gran_mn, 0)[:mn].repeat_interleave(gran_k, 1)[:, :k]
    return x.double() * s


def quant_fp4(mn, k, gran_k=32, seed=0, device='cuda'):
    """Random packed FP4 [mn, k / 2] with UE8M0 float32 scales [mn, k / gran_k] (powers of two); returns
    (packed int8, scales, dequantized float64)."""
    g = torch.Generator(device='cpu').manual_seed(seed)
    x = torch.randn(mn, k, generator=g).to(device) * pow2_scales((mn, k // gran_k), -3, 3, seed + 2,
                                                                  device).repeat_interleave(gran_k, 1)
    packed, sf = per_token_cast_to_fp4(x, use_ue8m0=True, gran_k=gran_k)
    values = unpack_fp4(packed)
    return packed, sf, values.double() * sf.double().repeat_interleave(gran_k, 1)


_E2M1 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def unpack_fp4(packed):
    table = torch.tensor(_E2M1 + tuple(-v for v in _E2M1), dtype=torch.float32, device=packed.device)
    p = packed.view(torch.uint8)
    codes = torch.stack((p & 0xF, p >> 4), dim=-1).flatten(-2)
    return table[codes.long()]


def pack_ue8m0(sf, mn_major=True):
    """float32 power-of-two scales [..., mn, kb] -> int32 packed UE8M0 [..., mn, ceil(kb / 4)] (byte j of int q = k
    block 4q + j; padding bytes 127), MN-major (stride 1 along mn) unless `mn_major` is False."""
    kb = sf.shape[-1]
    pad = ceil_div(kb, 4) * 4 - kb
    s = torch.nn.functional.pad(sf.float(), (0, pad), value=1.0)
    e = ((s.contiguous().view(torch.int32) >> 23) & 0xFF).to(torch.uint8)
    packed = e.view(torch.int32)
    if not mn_major:
        return packed.contiguous()
    return packed.transpose(-1, -2).contiguous().transpose(-1, -2)


def rows_of_block(sf, mn, gran_mn=128):
    """Block scales [ceil(mn / 128), kb] broadcast to every row: [mn, kb]."""
    return sf.repeat_interleave(gran_mn, 0)[:mn].contiguous()


def check_close(out, ref, what, rel=1e-4):
    """`out` against the float64 `ref`: every element within rel * max|ref| (+ the output dtype's rounding). On
    failure the message names the first bad element, the count of bad ones and which rows / columns they touch."""
    ref = ref.double()
    got = out.double()
    scale = ref.abs().max().item() if ref.numel() else 0.0
    tol = rel * scale + (ref.abs() * (2 ** -7 if out.dtype == torch.bfloat16 else 0))
    err = (got - ref).abs()
    bad = ~(err <= tol)
    if bad.any():
        idx = bad.nonzero()
        first = tuple(idx[0].tolist())
        rows = sorted(set(idx[:, -2].tolist()))[:12] if out.dim() >= 2 else []
        cols = sorted(set(idx[:, -1].tolist()))[:12]
        raise AssertionError(f'{what}: {int(bad.sum())} of {bad.numel()} elements off (max err {err.max().item():.4g}, '
                             f'max |ref| {scale:.4g}); first at {first}: got {got[first].item():.6g}, expected '
                             f'{ref[first].item():.6g}; rows {rows}..., cols {cols}...')
