"""CPU tests of deep_gemm.utils.fp4_cache: FP4 q / key quantization and the FP4 paged cache layout."""
import pytest
import torch

from deep_gemm.utils import (build_fp4_paged_cache, cast_back_from_fp4, dequantize_fp4, dequantize_fp4_paged_cache,
                             pack_fp4_pages, per_token_cast_to_fp4, quantize_fp4, unpack_fp4_pages)

E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def by_hand_value(byte_row, sf_int, k):
    """Element k of a packed row, computed from the contract's words: low nibble = even element, scale byte k // 32."""
    code = (byte_row[k // 2] >> (4 * (k % 2))) & 0xF
    exp = (sf_int >> (8 * (k // 32))) & 0xFF
    return (-1 if code & 8 else 1) * E2M1[code & 7] * 2.0 ** (exp - 127)


@pytest.mark.parametrize('d', [64, 128])
def test_quantize_q_shapes_and_values(d):
    torch.manual_seed(d)
    q = torch.randn(3, 2, 16, d) * 4
    packed, sf = quantize_fp4(q)
    assert packed.dtype == torch.int8 and tuple(packed.shape) == (3, 2, 16, d // 2)
    assert sf.dtype == torch.int32 and tuple(sf.shape) == (3, 2, 16)
    ref_p, ref_s = per_token_cast_to_fp4(q.view(-1, d), use_ue8m0=True, gran_k=32, use_packed_ue8m0=True)
    assert torch.equal(packed.view(-1, d // 2), ref_p) and torch.equal(sf.view(-1), ref_s.view(-1))
    deq = dequantize_fp4(packed, sf)
    assert deq.shape == q.shape
    # every element, recomputed from the raw bytes
    pb = packed.view(torch.uint8).view(-1, d // 2).tolist()
    sfl = [s & 0xFFFFFFFF for s in sf.view(-1).tolist()]
    flat = deq.view(-1, d)
    for r in (0, 7, 95):
        assert flat[r].tolist() == [by_hand_value(pb[r], sfl[r], k) for k in range(d)]
    if d == 64:
        # padding bytes 2, 3 of each scale are 127
        assert all(((s >> 16) & 0xFF) == 127 and (s >> 24) == 127 for s in sfl)
    # quantization error bound: half an e2m1 step of the largest magnitude (relative 1/4 of the block scale * 2)
    blocks = q.view(-1, d // 32, 32)
    err = (deq.view(-1, d // 32, 32) - blocks).abs()
    scale = torch.tensor([[2.0 ** (((s >> (8 * b)) & 0xFF) - 127) for b in range(d // 32)] for s in sfl])
    assert bool((err <= scale.unsqueeze(2) * 1.0 + 1e-12).all())


def test_dequantize_round_trip_exact():
    """Values already on the FP4 grid survive quantize -> dequantize exactly."""
    torch.manual_seed(1)
    d = 128
    codes = torch.randint(0, 16, (40, d))
    grid = torch.tensor(E2M1 + [-v for v in E2M1])[codes]
    grid[:, ::32] = 6.0  # pin each block's amax to 6 * 2^e so the chosen scale is exactly 2^e
    exps = torch.randint(-6, 7, (40, d // 32)).float()
    x = grid * torch.exp2(exps).repeat_interleave(32, dim=1)
    packed, sf = quantize_fp4(x)
    assert torch.equal(dequantize_fp4(packed, sf), x)


@pytest.mark.parametrize('block_kv', [32, 64])
@pytest.mark.parametrize('d', [64, 128])
def test_paged_cache_layout_by_hand(block_kv, d):
    torch.manual_seed(block_kv + d)
    t = 2 * block_kv + 5  # a partial last page
    k = torch.randn(t, d) * 3
    page_ids = torch.tensor([4, 0, 2], dtype=torch.int32)
    cache, packed, sf = build_fp4_paged_cache(k, block_kv, page_ids=page_ids, num_pages=6)
    half = d // 2
    assert cache.dtype == torch.uint8 and tuple(cache.shape) == (6, block_kv, 1, half + 4)
    raw = cache.view(-1).tolist()
    page_bytes = block_kv * (half + 4)
    pb = packed.view(torch.uint8).tolist()
    sfl = [s & 0xFFFFFFFF for s in sf.tolist()]
    for i in range(t):
        page, slot = int(page_ids[i // block_kv]), i % block_kv
        base = page * page_bytes
        # token-major key bytes, then int32 scales after all block_kv keys of the page
        assert raw[base + slot * half: base + (slot + 1) * half] == pb[i]
        off = base + block_kv * half + 4 * slot
        assert raw[off] | (raw[off + 1] << 8) | (raw[off + 2] << 16) | (raw[off + 3] << 24) == sfl[i]
    # untouched pages and the unused slots of the last page are zero
    for page in (1, 3, 5):
        assert not any(raw[page * page_bytes:(page + 1) * page_bytes])
    last = 2 * page_bytes
    assert not any(raw[last + 5 * half: last + block_kv * half])
    assert not any(raw[last + block_kv * half + 4 * 5: last + page_bytes])
    # round trip through the pages
    deq = dequantize_fp4_paged_cache(cache)
    want = cast_back_from_fp4(packed, sf.view(-1, 1), 32, True)
    for i in range(t):
        assert torch.equal(deq[int(page_ids[i // block_kv]), i % block_kv], want[i])


def test_tiny_example_bytes():
    """block_kv = 2, D = 64: one page of 2 * 32 key bytes then 2 int32 scales, checked byte by byte."""
    packed = torch.arange(64, dtype=torch.int32).to(torch.uint8).view(torch.int8).view(2, 32)
    sf = torch.tensor([0x04030201, 0x7F7F8180], dtype=torch.int64).to(torch.int32)
    cache = pack_fp4_pages(packed, sf, 2)
    assert tuple(cache.shape) == (1, 2, 1, 36)
    assert cache.view(-1).tolist() == list(range(64)) + [0x01, 0x02, 0x03, 0x04, 0x80, 0x81, 0x7F, 0x7F]
    p2, s2 = unpack_fp4_pages(cache)
    assert torch.equal(p2.view(2, 32), packed) and torch.equal(s2.view(-1), sf)


def test_unpack_padded_pages():
    """Pages further apart than their payload (padded pool) are read at p * stride(0)."""
    torch.manual_seed(3)
    block_kv, d = 32, 128
    cache, packed, sf = build_fp4_paged_cache(torch.randn(3 * block_kv, d), block_kv)
    page_bytes = block_kv * (d // 2 + 4)
    pool = torch.full((3, page_bytes + 64), 0xAB, dtype=torch.uint8)
    pool[:, :page_bytes] = cache.view(3, page_bytes)
    view = pool.as_strided((3, block_kv, 1, d // 2 + 4), (page_bytes + 64, d // 2 + 4, d // 2 + 4, 1))
    p2, s2 = unpack_fp4_pages(view)
    assert torch.equal(p2.reshape(-1, d // 2), packed) and torch.equal(s2.reshape(-1), sf)


def test_bad_inputs():
    k = torch.randn(8, 128)
    with pytest.raises(TypeError, match=r'quantize_fp4: `x` must be a floating-point tensor, got torch.int32'):
        quantize_fp4(torch.zeros(4, 128, dtype=torch.int32))
    with pytest.raises(ValueError, match=r'quantize_fp4: last dim of `x` \(D\) must be one of \(64, 128\), got shape \(4, 96\)'):
        quantize_fp4(torch.zeros(4, 96))
    with pytest.raises(ValueError, match=r'build_fp4_paged_cache: `block_kv` must be a positive int, got 0'):
        build_fp4_paged_cache(k, 0)
    with pytest.raises(ValueError, match=r'build_fp4_paged_cache: `k` must be 2-D'):
        build_fp4_paged_cache(k.view(2, 4, 128), 32)
    with pytest.raises(ValueError, match=r'pack_fp4_pages: `page_ids` must be distinct'):
        build_fp4_paged_cache(torch.randn(64, 128), 32, page_ids=torch.tensor([1, 1]))
    with pytest.raises(ValueError, match=r'pack_fp4_pages: `num_pages` must be an int >= max\(page_ids\) \+ 1 = 4, got 2'):
        build_fp4_paged_cache(torch.randn(64, 128), 32, page_ids=torch.tensor([3, 0]), num_pages=2)
    with pytest.raises(ValueError, match=r'pack_fp4_pages: `page_ids` must be a 1-D int32/int64 tensor of '):
        build_fp4_paged_cache(torch.randn(64, 128), 32, page_ids=torch.tensor([0]))
    packed, sf = quantize_fp4(k)
    with pytest.raises(ValueError, match=r'dequantize_fp4: `sf` must have shape \(8,\)'):
        dequantize_fp4(packed, sf[:4])
    with pytest.raises(TypeError, match=r'dequantize_fp4: `sf` must be int32, got torch.float32'):
        dequantize_fp4(packed, sf.float())
    with pytest.raises(ValueError, match=r'unpack_fp4_pages: `kv_cache` must be uint8 \[P, block_kv, 1, D/2 \+ 4\]'):
        unpack_fp4_pages(torch.zeros(2, 32, 1, 132, dtype=torch.uint8))
    with pytest.raises(TypeError, match=r'unpack_fp4_pages: `kv_cache` must be a torch.Tensor, got list'):
        unpack_fp4_pages([1, 2])
