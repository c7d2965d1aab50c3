"""CPU tests of benchmarks/model_vs_perf.py: it reads docs/PERF.md's calibration table (the measured times the
model is judged against without a GPU), and every row it reads is one the model knows how to predict."""
import importlib.util
import os

import pytest

from deep_gemm.bench.model import rows

_PATH = os.path.join(os.path.dirname(__file__), '..', 'benchmarks', 'model_vs_perf.py')
_spec = importlib.util.spec_from_file_location('model_vs_perf', _PATH)
mvp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mvp)

TEXT = '''
## Time model: calibration on the H200 and SM120 projections

| case | measured | predicted | error | binding term |
|---|---|---|---|---|
| paged_mqa_logits B=64 ctx=8K n=1 | 59.2 µs | 42.7 µs | -28% | latency(warp) |
| same, clean_logits=True (fused, 1 kernel) | 3315.8 µs | 3191.8 µs | -4% | latency(warp) |
| fused clean cost N=16K (difference) | 10.5 µs | 9.4 µs | -10% | latency(warp) |

**Projection** (the same model)

| case | RTX 5090 | RTX PRO 6000 | GB10 |
|---|---|---|---|
| paged_mqa_logits B=64 ctx=8K n=1 | 47.1 µs (DRAM) | 47.1 µs (DRAM) | 311.2 µs (DRAM) |
'''


def test_reads_the_calibration_table_only():
    got = mvp.calibration_rows(TEXT)
    assert got == [('paged_mqa_logits B=64 ctx=8K n=1', 59.2, 42.7),
                   ('  same, clean_logits=True (fused, 1 kernel)', 3315.8, 3191.8),
                   ('  fused clean cost N=16K (difference)', 10.5, 9.4)]


@pytest.mark.parametrize('text,needle', [('# nothing here', 'no "## Time model: calibration"'),
                                         ('## Time model: calibration\n| a | b |', 'no "| case | measured')])
def test_errors_name_what_is_missing(text, needle):
    with pytest.raises(ValueError, match=needle):
        mvp.calibration_rows(text)


def test_every_row_of_perf_md_resolves():
    # The tool predicts each row by its bench name: a renamed bench row must be renamed in PERF.md too
    with open(mvp.PERF) as f:
        table = mvp.calibration_rows(f.read())
    assert len(table) >= 50
    parent = None
    for name, measured, predicted in table:
        if not name.startswith(' '):
            parent = name
        assert rows.resolve(name, parent) is not None, name
        assert measured > 0 and predicted > 0


def test_max_block_m_reaches_the_plan(monkeypatch):
    # `--max-block-m` (another M tile judged on the same cubins) must reach `_C._gemm_plan` through the card's
    # target; stopped at the plan, so nothing compiles
    from deep_gemm import jit
    from deep_gemm.bench.model import run
    seen = {}

    class Stop(Exception):
        pass

    class Ext:
        def _gemm_plan(self, *args, **kwargs):
            seen.update(kwargs)
            raise Stop('planned')

    monkeypatch.setattr(jit, '_ext', lambda: Ext())
    for card in (run.calibration_card('H200', max_block_m=64), run.sm120_cards(['RTX PRO 6000'], max_block_m=64)[0]):
        seen.clear()
        r = run.predict_row('fp8_gemm_nt published 4096x5120x8192', card)
        assert r['error'].startswith('Stop') and seen['max_block_m'] == 64, (r, seen)
    seen.clear()
    run.predict_row('fp8_gemm_nt published 4096x5120x8192', run.calibration_card('H200'))
    assert seen['max_block_m'] == 128
    with pytest.raises(SystemExit):
        mvp.main(['--max-block-m', '48'])
