"""CPU tests of benchmarks/gemm_time_fit.py: the busiest CTA's work under the persistent round-robin deal, and a fit
that recovers known coefficients (so the numbers it prints for a GPU run mean what PERF.md says)."""
import importlib.util
import json
import os

import pytest

_PATH = os.path.join(os.path.dirname(__file__), '..', 'benchmarks', 'gemm_time_fit.py')
_spec = importlib.util.spec_from_file_location('gemm_time_fit', _PATH)
fit_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fit_mod)


def test_busiest_cta_deals_units_round_robin():
    plan = dict(block_m=128, block_n=128, num_splits=1, grid=4)
    # 2 x 3 = 6 tiles of 8 k blocks on 4 CTAs: CTAs 0 and 1 get two tiles
    assert fit_mod.busiest_cta(plan, 256, 384, 1024) == (16, 2)
    # K split 3 ways over 10 k blocks: splits of 3, 3, 4 blocks; one tile, 3 CTAs: the busiest has the 4-block split
    plan = dict(block_m=16, block_n=128, num_splits=3, grid=3)
    assert fit_mod.busiest_cta(plan, 1, 128, 1280) == (4, 1)
    # Fewer units than CTAs: the grid's extra CTAs have nothing
    plan = dict(block_m=64, block_n=128, num_splits=1, grid=132)
    assert fit_mod.busiest_cta(plan, 64, 256, 256) == (2, 1)


def test_fit_recovers_known_terms():
    pytest.importorskip('numpy')
    a, b, c = 2.0, 5.0, 20.0
    rows = [(kb, u, a * kb + b * u + c) for kb, u in ((3, 1), (16, 1), (96, 3), (564, 47), (2000, 10))]
    got = fit_mod.fit(rows)
    assert got == pytest.approx((a, b, c), rel=1e-9)


def test_main_on_a_fake_run(tmp_path, capsys):
    import deep_gemm
    pytest.importorskip('numpy')
    if deep_gemm._C is None:
        pytest.skip('deep_gemm._C is not built (the fit plans each row with _C._gemm_plan)')
    # Rows timed exactly as 2 us per k block + 5 us per unit + 20 us: the fit must print those terms back
    shapes = [(4096, 4096, 4096), (4096, 24576, 1536), (4096, 5120, 25600), (512, 4096, 8192), (4096, 2112, 7168)]
    rows = []
    for m, n, k in shapes:
        plan = deep_gemm._C._gemm_plan('sm_90a', 0, m, n, k, sm120_mode=True, num_sms=132)
        assert plan['block_m'] == 128
        kb, units = fit_mod.busiest_cta(plan, m, n, k)
        rows.append(dict(name=f'fp8_gemm_nt published {m}x{n}x{k}', measured_s=(2.0 * kb + 5.0 * units + 20.0) * 1e-6))
    src = tmp_path / 'rows.json'
    src.write_text(json.dumps(dict(device='fake', ceilings=dict(fp8_mma=268e12, read_bw=3.856e12), rows=rows)))
    assert fit_mod.main([str(src)]) == 0
    out = capsys.readouterr().out
    assert 'block_m 128 (5 rows): a = 2.000 us per k block' in out and 'b = 5.00 us per unit' in out, out
    assert 'c = 20.0 us per launch' in out and out.count('+0.0%)') == 5, out
