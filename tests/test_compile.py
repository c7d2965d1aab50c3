"""Compile-only tests (no GPU): every kernel configuration the heuristics can choose is compiled for sm_120a and
sm_121a, and its resources are checked: shared memory within 101376 B, no local memory (spills or stack), and
the intended MMA instructions in the SASS. Also the compile-only tool itself (`python -m deep_gemm.jit`), and that
CI runs the README's commands."""
import os
import re

import pytest

import deep_gemm

pytestmark = pytest.mark.compile

TARGETS = ('sm_120a', 'sm_121a')


def _skip_reason():
    if deep_gemm._C is None:
        return deep_gemm._extension_problem()
    return None


@pytest.fixture(scope='module')
def reports():
    """Compile everything once per target, in parallel (the compiler releases the GIL), then check per config."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from deep_gemm import jit
    if jit.find_cuobjdump() is None:
        pytest.fail('cuobjdump not found: `pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm` (./develop.sh '
                    'installs both) to check the SASS')
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


# --- The compile-only tool itself (python -m deep_gemm.jit) ---------------------------------------------------------

def _fake_cuobjdump(tmp_path, body):
    tool = tmp_path / 'cuobjdump'
    tool.write_text('#!/bin/sh\n' + body)
    tool.chmod(0o755)
    return str(tool)


def test_sass_of_shows_cuobjdump_errors(tmp_path):
    from deep_gemm import jit
    tool = _fake_cuobjdump(tmp_path, "echo \"cuobjdump fatal : Could not find executable file 'nvdisasm'\" >&2\n"
                                     "exit 1\n")
    with pytest.raises(RuntimeError, match=r"exited with 1: cuobjdump fatal : Could not find executable file "
                                           r"'nvdisasm'.*nvidia-cuda-nvdisasm"):
        jit.sass_of(str(tmp_path / 'kernel.cubin'), tool)


def test_sass_check_is_stored_beside_the_cubin(tmp_path):
    """The first check runs cuobjdump; asking again (even for a subset of the needles) only reads the record."""
    from deep_gemm import jit
    calls = tmp_path / 'calls'
    tool = _fake_cuobjdump(tmp_path, f'echo run >> {calls}\necho "        /*0040*/ QMMA.SF.16832.F32.E4M3.E4M3 R4"\n')
    entry = tmp_path / 'entry'
    entry.mkdir()
    cubin = entry / 'kernel.cubin'
    cubin.write_bytes(b'\0' * 64)
    assert jit.missing_sass(str(cubin), ['QMMA.SF.16832', 'HMMA.16816'], tool) == ['HMMA.16816']
    assert (entry / jit.SASS_CHECK_FILE).is_file()
    assert jit.missing_sass(str(cubin), ['HMMA.16816', 'QMMA.SF.16832'], tool) == ['HMMA.16816']
    assert jit.missing_sass(str(cubin), ['QMMA.SF.16832'], tool) == []
    assert calls.read_text().count('run') == 1
    # A needle the record does not know about means asking cuobjdump again
    assert jit.missing_sass(str(cubin), ['FFMA'], tool) == ['FFMA']
    assert calls.read_text().count('run') == 2


def test_cli_help_lists_exactly_the_accepted_targets(capsys):
    from deep_gemm import jit
    with pytest.raises(SystemExit) as e:
        jit.main(['--help'])
    assert e.value.code == 0
    text = ' '.join(capsys.readouterr().out.split())
    listed = re.search(r'one of: ([a-z0-9_, ]+) \(default', text)
    assert listed, text
    assert tuple(a.strip() for a in listed.group(1).split(',')) == jit.ARCHS


@pytest.mark.parametrize('argv,needle', [
    (['--arch', 'sm_70'], "invalid choice: 'sm_70' (choose from 'sm_120a', 'sm_121a', 'sm_120f', 'sm_90a', 'sm_89')"),
    (['--arch', 'sm_100a'], "invalid choice: 'sm_100a'"),
    (['--family', 'nonsense'], "--family must be among {families} for sm_120a; got 'nonsense'"),
    (['--jobs', '0'], '--jobs must be at least 1; got 0'),
])
def test_cli_rejects_unknown_values(argv, needle, capsys):
    if '--family' in argv and _skip_reason():
        pytest.skip(_skip_reason())
    from deep_gemm import jit
    if '{families}' in needle:    # the list grows with the library: it is every family sm_120a has, sorted
        families = jit.families('sm_120a')
        assert list(families) == sorted(families) and {'fp8_gemm', 'bf16_gemm', 'paged_mqa_logits'} <= set(families)
        needle = needle.format(families=', '.join(families))
    with pytest.raises(SystemExit) as e:
        jit.main(argv)
    assert e.value.code == 2
    assert needle in ' '.join(capsys.readouterr().err.split())


def test_every_listed_target_has_configs():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from deep_gemm import jit
    for arch in jit.ARCHS:
        assert jit.list_configs(arch), arch


def test_cli_prints_one_line_per_configuration(capsys):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from deep_gemm import jit
    assert jit.main(['--arch', 'sm_120a', '--family', 'paged_mqa_logits_metadata', '--family', 'clean_logits']) == 0
    out = capsys.readouterr().out
    n = len(jit.list_configs('sm_120a', ['paged_mqa_logits_metadata', 'clean_logits']))
    rows = [line for line in out.splitlines() if re.match(r'\[\s*\d+/\d+\] ', line)]
    assert len(rows) == n and all(f'/{n}]' in r and 'ETA' in r and ' ok ' in r for r in rows), out
    assert f'{n} configurations for sm_120a' in out and '0 with problems' in out, out


def test_cli_without_cuobjdump_checks_resources_and_says_so(monkeypatch, capsys):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from deep_gemm import jit
    monkeypatch.setattr(jit, 'find_cuobjdump', lambda: None)
    assert jit.main(['--arch', 'sm_120a', '--family', 'paged_mqa_logits_metadata']) == 0
    out = capsys.readouterr().out
    assert out.startswith('note: cuobjdump not found, so the SASS is not checked'), out
    assert out.rstrip().endswith('0 with problems (SASS not checked)'), out


def test_bench_without_gpu_models_only_the_requested_families(monkeypatch, capsys):
    """Without a GPU the bench prints the time model's predictions (it compiles nothing else); --only and --rows
    choose the rows exactly as they do on a GPU."""
    import torch
    from deep_gemm.bench import __main__ as bench
    from deep_gemm.bench.model import rows as model_rows, run
    asked = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(run, 'project', lambda pairs, cards, jobs: asked.append([n for n, _ in pairs]) or
                        [{c.label: dict(error='not run in this test') for c in cards} for _ in pairs])
    bench.main(['--only', 'hc', '--cards', 'RTX 5090'])
    out = capsys.readouterr().out
    assert 'No GPU to benchmark on (torch.cuda.is_available() is False)' in out, out
    assert asked[-1] == [n for _, n in model_rows.cases(['hc'])] and asked[-1], asked
    assert all(n.startswith('hc_prenorm_gemm') for n in asked[-1]), asked[-1]
    bench.main(['--only', 'gemm', '--rows', 'bf16', '--cards', 'RTX 5090'])
    assert asked[-1] and all('bf16' in n for n in asked[-1]), asked[-1]
    bench.main(['--cards', 'RTX 5090'])
    assert {f for f, _ in model_rows.cases()} == set(bench.FAMILIES)
    assert asked[-1] == [n for _, n in model_rows.cases()], asked[-1]


# --- CI runs exactly the README's commands --------------------------------------------------------------------------

def test_ci_runs_the_readme_commands():
    root = os.path.join(os.path.dirname(__file__), '..')
    readme = open(os.path.join(root, 'README.md')).read()
    block = re.search(r'## Set-up and tests\n.*?```bash\n(.*?)```', readme, re.S)
    assert block, 'README.md lost its "Set-up and tests" code block'
    commands = [line.split('#')[0].strip() for line in block.group(1).splitlines() if line.split('#')[0].strip()]
    ci = [line.strip() for line in open(os.path.join(root, '.ci', 'run')).read().splitlines()]
    ci_commands = [c for c in ci if c in commands]
    assert ci_commands == commands, f'.ci/run runs {ci_commands}; the README says {commands}'


# --- Upstream's compile-time debugging variables, on the compile-only path --------------------------------------------

def test_compile_debug_variables(tmp_path):
    """DG_JIT_PRINT_COMPILER_COMMAND, DG_JIT_WITH_LINEINFO, DG_JIT_DUMP_PTX and DG_JIT_DUMP_SASS each show up on
    stderr when a kernel compiles (one small kernel, a fresh cache directory); the compile-only path never prints
    the first-use message."""
    import subprocess
    import sys
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if k != 'DG_JIT_QUIET'}
    env.update(DG_JIT_CACHE_DIR=str(tmp_path), DG_JIT_PRINT_COMPILER_COMMAND='1', DG_JIT_WITH_LINEINFO='1',
               DG_JIT_DUMP_PTX='1', DG_JIT_DUMP_SASS='1')
    code = ('import deep_gemm\n'
            'i = [c["family"] for c in deep_gemm._C.list_kernel_configs("sm_120a")].index("clean_logits")\n'
            'r = deep_gemm._C.compile_kernel_config("sm_120a", i)\n'
            'print(r["symbol"])\n')
    root = os.path.join(os.path.dirname(__file__), '..')
    r = subprocess.run([sys.executable, '-c', code], env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    symbol = r.stdout.split()[-1]
    err = r.stderr
    assert 'nvcc' in err and '-lineinfo' in err and '--gpu-architecture=sm_120a' in err, err[:3000]
    assert '.entry ' + symbol in err or f'.entry {symbol}(' in err, f'no PTX of {symbol} on stderr:\n{err[:3000]}'
    assert 'Function : ' + symbol in err, f'no SASS of {symbol} on stderr (DG_JIT_DUMP_SASS):\n{err[-3000:]}'
    assert 'first use' not in err, err[:3000]
