"""Compile-only tests (no GPU): every kernel configuration the heuristics can choose is compiled for sm_120a and
sm_121a, and its resources are checked: shared memory within 101376 B, no local memory (spills or stack), and
the intended MMA instructions in the SASS."""
import os

import pytest

import deep_gemm

pytestmark = pytest.mark.compile

TARGETS = ('sm_120a', 'sm_121a')


def _skip_reason():
    if deep_gemm._C is None:
        return f'deep_gemm._C is not built: {deep_gemm._C_IMPORT_ERROR!r}'
    return None


@pytest.fixture(scope='module')
def reports():
    """Compile everything once per target, in parallel (the compiler releases the GIL), then check per config."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from deep_gemm import jit
    if jit.find_cuobjdump() is None:
        pytest.fail('cuobjdump not found: `pip install nvidia-cuda-cuobjdump` (CI installs it) to check the SASS')
    jobs = int(os.environ.get('DG_COMPILE_JOBS', os.cpu_count() or 2))
    return {t: jit.compile_all(t, jobs=jobs) for t in TARGETS}


def _families():
    if deep_gemm._C is None:
        return []
    return sorted({c['family'] for c in deep_gemm._C.list_kernel_configs('sm_120a')})


@pytest.mark.parametrize('target', TARGETS)
@pytest.mark.parametrize('family', _families() or ['<extension not built>'])
def test_family_compiles_within_limits(reports, target, family):
    results = [(r, p) for r, p in reports[target] if r['family'] == family]
    assert results, f'no configurations of {family} for {target}'
    bad = [f"{r['description']}: {'; '.join(p)}" for r, p in results if p]
    assert not bad, f'{len(bad)} of {len(results)} {family} configs for {target} fail:\n' + '\n'.join(bad)


def test_configs_are_listed_for_every_target():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    for t in TARGETS + ('sm_89', 'sm_90a'):
        assert deep_gemm._C.list_kernel_configs(t), t
    with pytest.raises(ValueError, match="unsupported compile target 'sm_70'"):
        deep_gemm._C.list_kernel_configs('sm_70')


def test_check_report_catches_problems():
    """The checker itself must be able to fail."""
    from deep_gemm.jit import check_report
    base = dict(target='sm_120a', resources_found=True, total_smem=1000, stack_frame=0, spill_stores=0,
                spill_loads=0, expected_sass=['QMMA.SF'])
    assert check_report(base, sass='QMMA.SF.16832') == []
    assert check_report(dict(base, total_smem=101377), sass='QMMA.SF')
    assert check_report(dict(base, spill_stores=4), sass='QMMA.SF')
    assert check_report(dict(base, stack_frame=8), sass='QMMA.SF')
    assert check_report(base, sass='HMMA.16816')
    assert check_report(dict(base, resources_found=False), sass='QMMA.SF')
