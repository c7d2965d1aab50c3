"""CPU tests of deep_gemm.utils and deep_gemm.testing (no GPU, no C++ extension needed)."""
import os

import pytest
import torch

from deep_gemm import testing as dgt
from deep_gemm import utils as dgu

E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def is_pow2(t):
    m, _ = torch.frexp(t.double())
    return bool((m == 0.5).all())


# ---------------------------------------------------------------- integer math
def test_ceil_div_align():
    assert [dgu.ceil_div(x, 4) for x in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]
    assert [dgu.align(x, 128) for x in (0, 1, 128, 129)] == [0, 128, 128, 256]
    assert dgu.get_tma_aligned_size(5, 4) == 8 and dgu.get_tma_aligned_size(5, 2) == 8
    assert dgu.get_tma_aligned_size(17, 1) == 32 and dgu.get_tma_aligned_size(3, 8) == 4
    with pytest.raises(ValueError, match='ceil_div.*`y`'):
        dgu.ceil_div(3, 0)
    with pytest.raises(TypeError, match='align'):
        dgu.align(3.0, 2)
    with pytest.raises(ValueError, match='element_size'):
        dgu.get_tma_aligned_size(3, 3)


# ---------------------------------------------------------------- UE8M0
def test_ceil_to_ue8m0():
    x = torch.tensor([1.0, 1.5, 2.0, 2.0000002, 3.0, 0.3, 2.0 ** -20, 448.0, 1e-4 / 448])
    want = torch.tensor([1.0, 2.0, 2.0, 4.0, 4.0, 0.5, 2.0 ** -20, 512.0, 2.0 ** -22])
    assert torch.equal(dgu.ceil_to_ue8m0(x), want)
    assert torch.equal(dgu.ceil_to_ue8m0(x.double()), want.double())
    assert torch.equal(dgu.ceil_to_ue8m0(torch.tensor([1.0 + 2 ** -40], dtype=torch.float64)),
                       torch.tensor([2.0], dtype=torch.float64))
    assert dgu.ceil_to_ue8m0(x.bfloat16()).dtype == torch.bfloat16


def test_pack_unpack_ue8m0():
    x = torch.tensor([[1.0, 2.0, 0.5, 2.0 ** 10], [2.0 ** -127, 2.0 ** 127, 4.0, 0.25]])
    packed = dgu.pack_ue8m0_to_int(x)
    assert packed.dtype == torch.int32 and packed.shape == (2, 1)
    # bytes little-endian: [127, 128, 126, 137] and [0, 254, 129, 125]
    to_i32 = lambda v: v - (1 << 32) if v >= 1 << 31 else v
    assert packed[0, 0].item() == to_i32(127 | 128 << 8 | 126 << 16 | 137 << 24)
    assert packed[1, 0].item() == 0 | 254 << 8 | 129 << 16 | 125 << 24
    assert torch.equal(dgu.unpack_ue8m0_from_int(packed), x)
    hand = torch.tensor([0x7F80817E], dtype=torch.int32)  # bytes 0x7E, 0x81, 0x80, 0x7F
    assert torch.equal(dgu.unpack_ue8m0_from_int(hand), torch.tensor([0.5, 4.0, 2.0, 1.0]))
    neg = torch.tensor([-2 ** 31 | 0x7F], dtype=torch.int32)  # top byte 0x80 -> 2^1, low byte 127
    assert torch.equal(dgu.unpack_ue8m0_from_int(neg), torch.tensor([1.0, 2.0 ** -127, 2.0 ** -127, 2.0]))
    r = dgu.ceil_to_ue8m0(torch.rand(3, 8, 12) * 100 + 1e-3)
    assert torch.equal(dgu.unpack_ue8m0_from_int(dgu.pack_ue8m0_to_int(r)), r)
    with pytest.raises(ValueError, match='multiple of 4'):
        dgu.pack_ue8m0_to_int(torch.ones(2, 3))


# ---------------------------------------------------------------- FP8 casts
def _check_fp8(x, x_fp8, sf_full, use_ue8m0):
    assert x_fp8.dtype == torch.float8_e4m3fn and x_fp8.shape == x.shape
    back = x_fp8.float() * sf_full
    rel = (back - x).abs() / x.abs().clamp(min=1e-30)
    big = x.abs() > sf_full * 16  # values well inside e4m3's normal range
    assert big.any() and rel[big].max() < 0.07
    if use_ue8m0:
        assert is_pow2(sf_full)


@pytest.mark.parametrize('use_ue8m0', [False, True])
def test_per_token_cast_to_fp8(use_ue8m0):
    torch.manual_seed(0)
    x = torch.randn(5, 300) * torch.logspace(-3, 3, 5).unsqueeze(1)
    x_fp8, sf = dgu.per_token_cast_to_fp8(x, use_ue8m0)
    assert sf.shape == (5, 3) and sf.dtype == torch.float32
    amax = torch.stack([x[:, i * 128:(i + 1) * 128].abs().amax(1) for i in range(3)], 1)
    want = amax / 448
    assert torch.equal(sf, dgu.ceil_to_ue8m0(want) if use_ue8m0 else want)
    _check_fp8(x, x_fp8, sf.repeat_interleave(128, 1)[:, :300], use_ue8m0)
    # all-zero row: amax clamped to 1e-4
    _, sf0 = dgu.per_token_cast_to_fp8(torch.zeros(1, 64), use_ue8m0, gran_k=64)
    assert torch.allclose(sf0, dgu.ceil_to_ue8m0(torch.tensor([[1e-4 / 448]])) if use_ue8m0
                          else torch.tensor([[1e-4 / 448]]))


@pytest.mark.parametrize('use_ue8m0', [False, True])
def test_per_channel_and_block_cast_to_fp8(use_ue8m0):
    torch.manual_seed(1)
    x = torch.randn(200, 136) * 10
    x_fp8, sf = dgu.per_channel_cast_to_fp8(x, use_ue8m0)
    assert sf.shape == (2, 136)
    want = x[128:].abs().amax(0) / 448
    assert torch.equal(sf[1], dgu.ceil_to_ue8m0(want) if use_ue8m0 else want)
    _check_fp8(x, x_fp8, sf.repeat_interleave(128, 0)[:200], use_ue8m0)
    x_fp8, sf = dgu.per_block_cast_to_fp8(x, use_ue8m0)
    assert sf.shape == (2, 2)
    want = x[128:, :128].abs().amax() / 448
    assert sf[1, 0].item() == (dgu.ceil_to_ue8m0(want) if use_ue8m0 else want).item()
    _check_fp8(x, x_fp8, sf.repeat_interleave(128, 0)[:200].repeat_interleave(128, 1)[:, :136], use_ue8m0)


def test_per_custom_dims_cast_to_fp8():
    x = torch.zeros(2, 3, 4)
    x[1, 2, 3] = -1280.0
    x[0, 0, 0] = 448.0 / 2
    x_fp8, sf = dgu.per_custom_dims_cast_to_fp8(x, (0,), False)
    assert sf.shape == (2,) and torch.equal(sf, torch.tensor([0.5, 1280.0 / 448]))
    assert x_fp8[1, 2, 3].float().item() == -448.0 and x_fp8[0, 0, 0].float().item() == 448.0
    x_fp8, sf = dgu.per_custom_dims_cast_to_fp8(x, (2, 0), True)
    assert sf.shape == (2, 4)
    assert sf[1, 3].item() == 4.0 and sf[0, 0].item() == 0.5 and sf[0, 1].item() == 2.0 ** -22
    assert x_fp8[1, 2, 3].float().item() == -320.0 and x_fp8[0, 0, 0].float().item() == 448.0
    with pytest.raises(ValueError, match='dims'):
        dgu.per_custom_dims_cast_to_fp8(x, (3,), False)


# ---------------------------------------------------------------- FP4
def test_fp4_nibble_order_and_grid():
    # amax 6 and ue8m0 -> scale 1, so values map to their own codes
    row = torch.tensor([[0.5, -1.0, 6.0, 0.0, -6.0, 1.5, 3.0, -0.5]])
    packed, sf = dgu.per_token_cast_to_fp4(row, True, gran_k=8)
    assert sf.tolist() == [[1.0]] and packed.dtype == torch.int8 and packed.shape == (1, 4)
    # codes: 0.5->1, -1->0xA, 6->7, 0->0, -6->0xF, 1.5->3, 3->5, -0.5->0x9
    want = [0x1 | 0xA << 4, 0x7 | 0x0 << 4, 0xF | 0x3 << 4, 0x5 | 0x9 << 4]
    assert packed.view(torch.uint8).tolist() == [want]
    assert torch.equal(dgu.cast_back_from_fp4(packed, sf, gran_k=8), row)
    # every grid value (both signs), scaled by a power of two, survives a round trip exactly
    grid = torch.tensor(E2M1 + [-v for v in E2M1])
    x = torch.stack([grid * 2.0 ** e for e in (-3, 0, 5)])
    for packed_sf in (False, True):
        p, s = dgu.per_token_cast_to_fp4(x, True, gran_k=16, use_packed_ue8m0=packed_sf)
        assert torch.equal(dgu.cast_back_from_fp4(p, s, gran_k=16, use_packed_ue8m0=packed_sf), x)


def test_fp4_rounding_rule():
    x = torch.tensor([[6.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 0.26, 5.01, -2.6, 0.1]])
    p, s = dgu.per_token_cast_to_fp4(x, False, gran_k=12)
    assert s.item() == 1.0
    want = [6.0, 0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 0.5, 6.0, -3.0, 0.0]
    assert dgu.cast_back_from_fp4(p, s, gran_k=12).tolist()[0] == want


@pytest.mark.parametrize('use_ue8m0', [False, True])
def test_fp4_round_trip_error(use_ue8m0):
    torch.manual_seed(2)
    x = torch.randn(6, 96) * 3
    p, s = dgu.per_token_cast_to_fp4(x, use_ue8m0, gran_k=32)
    assert p.shape == (6, 48) and s.shape == (6, 3)
    back = dgu.cast_back_from_fp4(p, s, gran_k=32)
    scale = s.repeat_interleave(32, 1)
    v = (x / scale).abs()
    # half of the local e2m1 step: 0.25 below 2, 0.5 in [2, 4), 1 above 4
    half_step = torch.where(v < 2, 0.25, torch.where(v < 4, 0.5, 1.0)) * scale
    assert ((back - x).abs() <= half_step * (1 + 1e-6)).all()
    assert (back - x).abs().max() > 0  # the cast actually quantizes


def test_fp4_packed_sf_padding():
    x = torch.randn(3, 64)
    p, s = dgu.per_token_cast_to_fp4(x, True, gran_k=32, use_packed_ue8m0=True)
    _, s_float = dgu.per_token_cast_to_fp4(x, True, gran_k=32)
    assert s.dtype == torch.int32 and s.shape == (3, 1)
    b = s.view(torch.uint8).view(3, 4)
    assert b[:, 2:].eq(127).all()
    assert torch.equal(dgu.unpack_ue8m0_from_int(s)[:, :2], s_float)
    assert torch.equal(dgu.cast_back_from_fp4(p, s, 32, True), dgu.cast_back_from_fp4(p, s_float, 32))
    with pytest.raises(ValueError, match='use_packed_ue8m0'):
        dgu.per_token_cast_to_fp4(x, False, use_packed_ue8m0=True)
    with pytest.raises(ValueError, match='cast_back_from_fp4'):
        dgu.cast_back_from_fp4(p, s_float[:, :1], 32)


def test_transpose_packed_fp4():
    torch.manual_seed(3)
    codes = torch.randint(0, 16, (6, 10), dtype=torch.uint8)
    pack = lambda c: (c[:, 0::2] | (c[:, 1::2] << 4)).view(torch.int8)
    got = dgu.transpose_packed_fp4(pack(codes))
    assert got.shape == (10, 3)
    assert torch.equal(got, pack(codes.t().contiguous()))
    hand = torch.tensor([[0x21], [0x43]], dtype=torch.uint8).view(torch.int8)  # [[1,2],[3,4]]
    assert dgu.transpose_packed_fp4(hand).view(torch.uint8).tolist() == [[0x31], [0x42]]
    with pytest.raises(ValueError, match='even'):
        dgu.transpose_packed_fp4(torch.zeros(3, 2, dtype=torch.int8))


# The layout functions are tested in test_layout_cpu.py / test_layout_gpu.py


# ---------------------------------------------------------------- testing helpers
def test_calc_diff():
    x = torch.randn(64, 32)
    assert dgt.calc_diff(x, x) == pytest.approx(0.0, abs=1e-12)
    assert dgt.calc_diff(x, -x) == pytest.approx(2.0)
    assert dgt.calc_diff(torch.zeros(4), torch.zeros(4)) == 0.0
    assert dgt.calc_diff(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])) == pytest.approx(1.0)
    assert dgt.calc_diff(torch.tensor([3.0]), torch.tensor([1.0])) == pytest.approx(1 - 6 / 10)


def test_count_bytes():
    a, b, c = torch.zeros(3, 4), torch.zeros(5, dtype=torch.bfloat16), torch.zeros(7, dtype=torch.int8)
    assert dgt.count_bytes(a) == 48
    assert dgt.count_bytes(a, (b, None, [c, (a,)]), None) == 48 + 10 + 7 + 48
    assert dgt.count_bytes() == 0
    with pytest.raises(TypeError):
        dgt.count_bytes(3)


def test_assert_bitwise_equal():
    x = torch.randn(4, 5)
    dgt.assert_bitwise_equal(x, x.clone(), 'same')
    y = x.clone()
    y.view(torch.int32)[2, 3] ^= 1
    with pytest.raises(AssertionError, match=r'flip.*\(2, 3\)'):
        dgt.assert_bitwise_equal(x, y, 'flip')
    nan = torch.full((3,), float('nan'))
    dgt.assert_bitwise_equal(nan, nan.clone())
    with pytest.raises(AssertionError):
        dgt.assert_bitwise_equal(torch.tensor([0.0]), torch.tensor([-0.0]))
    with pytest.raises(AssertionError, match='dtype|float'):
        dgt.assert_bitwise_equal(x, x.double())
    dgt.assert_bitwise_equal(x.t(), x.t().contiguous())


def test_filter_and_ignore_env(capsys):
    calls = []
    on = dgt.test_filter(lambda: True)(lambda v: calls.append(v) or v)
    off = dgt.test_filter(lambda: False)(lambda v: calls.append(v) or v)
    assert on(1) == 1 and off(2) is None and calls == [1]
    assert 'kipped' in capsys.readouterr().out
    os.environ['DG_TEST_IGNORE_ME'] = 'x'
    try:
        seen = dgt.ignore_env('DG_TEST_IGNORE_ME', lambda: True)(lambda: os.environ.get('DG_TEST_IGNORE_ME'))
        kept = dgt.ignore_env('DG_TEST_IGNORE_ME', lambda: False)(lambda: os.environ.get('DG_TEST_IGNORE_ME'))
        assert seen() is None and os.environ['DG_TEST_IGNORE_ME'] == 'x' and kept() == 'x'
    finally:
        del os.environ['DG_TEST_IGNORE_ME']
