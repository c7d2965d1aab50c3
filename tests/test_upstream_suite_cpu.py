"""CPU tests of benchmarks/upstream_suite.py (the runner of upstream DeepGEMM's test files) on a made-up upstream
folder: PASS, FAIL with the last error line, TIMEOUT (children killed too), an import error, upstream's own skips,
`__main__` preamble/guards/order, scripts, the expectations table and the exit status."""
import importlib.util
import os
import re
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_runner():
    path = os.path.join(REPO, 'benchmarks', 'upstream_suite.py')
    spec = importlib.util.spec_from_file_location('upstream_suite', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


suite = _load_runner()
# the runner gives upstream's test_lazy_init.py one process per visible GPU, at most 2
LAZY_PROCS = min(2, suite._visible_gpus())

FILES = {
    'generators.py': 'MARK = 41\n',
    'test_a.py': '''
        import os
        import random
        import subprocess
        import sys
        import time
        from generators import MARK

        GUARD = False


        def test_ok():
            # the __main__ preamble ran in this module before the call
            random.seed(7)
            assert FIRST_AFTER_PREAMBLE == random.random()
            assert MARK == 41
            assert os.environ['DG_SM120_MODE'] == '1'
            assert os.environ['DG_MQA_NUM_CASES'] == '3'
            assert os.environ['PYTHONPATH'].split(os.pathsep)[0] == REPO_PATH
            assert os.getcwd() == os.path.dirname(os.path.abspath(__file__))
            print('ok ran')


        def test_fail():
            print('some output')
            assert 1 + 1 == 3, 'boom 42'


        def test_slow():
            child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
            with open('child.pid', 'w') as f:
                f.write(str(child.pid))
            time.sleep(60)


        def test_skip():
            print(' > Skipped test_skip')


        def test_guarded():
            raise RuntimeError('must not run: its __main__ guard is false')


        def test_not_in_main():
            print('also discovered')


        if __name__ == '__main__':
            random.seed(7)
            FIRST_AFTER_PREAMBLE = random.random()

            test_fail()
            test_ok()
            if GUARD:
                test_guarded()
            test_skip()
            test_slow()
        ''',
    'test_b.py': '''
        from no_such_module_for_upstream_suite import thing


        def test_b():
            pass


        if __name__ == '__main__':
            test_b()
        ''',
    'test_lazy_init.py': '''
        import sys

        if __name__ == '__main__':
            assert sys.argv[1:] == ['--num-processes', '%d'], sys.argv
            print('script ran')
        ''',
    'test_worker.py': '''
        import multiprocessing as mp


        def work():
            raise ValueError('worker failed')


        if __name__ == '__main__':
            p = mp.Process(target=work)
            p.start()
            p.join()
        ''',
    'test_mega_moe.py': '''
        from deep_gemm.utils.dist import no_such_name_for_upstream_suite

        if __name__ == '__main__':
            pass
        ''',
    'test_sanitizer.py': '''
        if __name__ == '__main__':
            raise SystemExit('must not run unless named')
        ''',
}
FILES['test_lazy_init.py'] = FILES['test_lazy_init.py'].replace('%d', str(LAZY_PROCS))


@pytest.fixture
def fake_upstream(tmp_path):
    d = tmp_path / 'main'
    d.mkdir()
    for name, text in FILES.items():
        text = textwrap.dedent(text).replace('REPO_PATH', repr(REPO))
        (d / name).write_text(text)
    return d


def _run(capsys, argv):
    rc = suite.main(argv)
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln for ln in out.splitlines() if '::' in ln.split()[0]}
    return rc, out, lines


def _no_expectations(tmp_path):
    return ['--expectations', str(tmp_path / 'none.md')]


def test_discovery_order_and_kinds(fake_upstream):
    entries = suite.discover_dir(str(fake_upstream))
    keys = [f'{f}::{e["name"]}' for f, e in entries]
    # __main__ order first (test_guarded keeps its place), then the rest in file order; scripts as __main__
    assert keys == ['test_a.py::test_fail', 'test_a.py::test_ok', 'test_a.py::test_guarded', 'test_a.py::test_skip',
                    'test_a.py::test_slow', 'test_a.py::test_not_in_main', 'test_b.py::test_b',
                    'test_lazy_init.py::__main__', 'test_mega_moe.py::__main__', 'test_sanitizer.py::__main__',
                    'test_worker.py::__main__']
    by_key = dict(zip(keys, (e for _, e in entries)))
    assert by_key['test_a.py::test_guarded']['guards'] == ['GUARD']
    assert 'FIRST_AFTER_PREAMBLE = random.random()' in by_key['test_a.py::test_ok']['preamble']
    assert by_key['test_lazy_init.py::__main__']['args'] == ['--num-processes', str(LAZY_PROCS)]
    assert by_key['test_sanitizer.py::__main__']['only_when_named']


def test_results_and_exit_status(fake_upstream, tmp_path, capsys):
    logs = tmp_path / 'logs'
    rc, out, lines = _run(capsys, [str(fake_upstream), '--timeout', '4', '--mqa-cases', '3', '--log-dir', str(logs)]
                          + _no_expectations(tmp_path))
    assert rc == 1, out
    assert ' PASS ' in lines['test_a.py::test_ok'] + ' ', out
    assert 'FAIL AssertionError: boom 42' in lines['test_a.py::test_fail'], out
    assert 'TIMEOUT after 4 s' in lines['test_a.py::test_slow'], out
    assert 'SKIPPED-by-upstream' in lines['test_a.py::test_skip'], out
    assert 'SKIPPED-by-upstream' in lines['test_a.py::test_guarded'] and 'GUARD' in lines['test_a.py::test_guarded']
    assert ' PASS ' in lines['test_a.py::test_not_in_main'] + ' '
    assert "FAIL ModuleNotFoundError: No module named 'no_such_module_for_upstream_suite'" in lines['test_b.py::test_b']
    assert ' PASS ' in lines['test_lazy_init.py::__main__'] + ' '
    worker = lines['test_worker.py::__main__']
    assert 'FAIL' in worker and 'ValueError: worker failed' in worker, out
    assert 'EXCLUDED' in lines['test_sanitizer.py::__main__']
    assert 'summary main:' in out and 'required but not passing' in out
    # the timed-out function's own child was killed with it
    pid = int((fake_upstream / 'child.pid').read_text())
    status = f'/proc/{pid}/status'
    if os.path.exists(status):
        state = [ln for ln in open(status) if ln.startswith('State:')]
        assert state and 'Z' in state[0], f'child {pid} of the timed-out function still runs: {state}'
    # logs: one per function run, and the combined one
    assert (logs / 'main__test_a__test_ok.log').read_text().strip().endswith('ok ran')
    assert 'some output' in (logs / 'main__test_a__test_fail.log').read_text()
    combined = (logs / 'main__all.log').read_text()
    assert '===== main/test_b.py::test_b: FAIL' in combined and 'summary main:' in combined
    assert not (logs / 'main__test_sanitizer____main__.log').exists()


def test_only_and_expectations(fake_upstream, tmp_path, capsys):
    table = tmp_path / 'UPSTREAM.md'
    table.write_text('| suite | function | status | notes |\n|---|---|---|---|\n'
                     '| main | `test_a.py::test_fail` | needs #15 | GEMMs |\n'
                     '| main | `test_a.py::test_ok` | needs #16 | listed as pending but passes |\n'
                     '| main | `test_b.py::test_b` | needs #15 | pending, but its file must import |\n'
                     '| main | `test_mega_moe.py::__main__` | SM100-only | a script that must import |\n')
    base = [str(fake_upstream), '--log-dir', str(tmp_path / 'l'), '--mqa-cases', '3', '--expectations', str(table)]
    rc, out, lines = _run(capsys, base + ['--only', 'test_a.py::test_fail'])
    assert rc == 0 and '[expected: needs #15]' in lines['test_a.py::test_fail'], out
    assert list(lines) == ['test_a.py::test_fail']
    rc, out, lines = _run(capsys, base + ['--only', 'test_a.py::test_ok'])
    assert rc == 0 and 'update it' in lines['test_a.py::test_ok'], out
    rc, out, lines = _run(capsys, base + ['--only', 'test_a.py::test_fail', '--all-required'])
    assert rc == 1, out
    rc, out, lines = _run(capsys, base + ['--only', 'test_b.py'])
    assert rc == 1 and list(lines) == ['test_b.py::test_b'], out
    assert 'the file does not import: required whatever its status' in lines['test_b.py::test_b'], out
    rc, out, lines = _run(capsys, base + ['--only', 'test_mega_moe.py'])
    assert rc == 1 and 'ImportError' in lines['test_mega_moe.py::__main__'], out
    assert 'the file does not import' in lines['test_mega_moe.py::__main__'], out
    rc, out, lines = _run(capsys, base + ['--only', 'test_sanitizer.py::__main__', '--timeout', '20'])
    assert 'FAIL' in lines['test_sanitizer.py::__main__'] and 'must not run unless named' in out, out
    # --passing-only drops the rows listed as pending
    rc, out, _ = _run(capsys, base + ['--only', 'test_a.py::test_*', '--passing-only', '--list'])
    assert 'test_a.py::test_fail' not in out and 'test_a.py::test_ok' not in out and 'test_a.py::test_skip' in out


def test_bad_arguments(fake_upstream, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv('DG_UPSTREAM_TESTS', raising=False)
    with pytest.raises(SystemExit):
        suite.main([])
    assert 'DG_UPSTREAM_TESTS is not set' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        suite.main([str(fake_upstream), '--only', 'test_zzz.py::nothing'])
    assert 'selects nothing' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        suite.main([str(fake_upstream), '--mqa-cases', '0'])
    assert '--mqa-cases' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        suite.main([str(tmp_path / 'missing')])
    assert 'is not a directory' in capsys.readouterr().err


def test_default_directory_from_the_environment(fake_upstream, monkeypatch, capsys):
    monkeypatch.setenv('DG_UPSTREAM_TESTS', str(fake_upstream.parent))
    assert suite.main(['--list']) == 0
    assert 'test_a.py::test_ok' in capsys.readouterr().out


def test_expectation_table_of_this_repository_parses():
    """docs/UPSTREAM.md: every row names a real status, for both suites."""
    path = os.path.join(REPO, 'docs', 'UPSTREAM.md')
    table = suite.load_expectations(path)
    assert table, f'{path}: no rows found'
    suites = {s for s, _ in table}
    assert suites == {'main', 'nv_dev'}, suites
    for (s, key), status in table.items():
        assert re.match(r'^(passes|needs #\d+|SM100-only|not provided|not run)', status), (s, key, status)


def test_expectation_table_lists_every_upstream_function():
    """With the upstream folder available: docs/UPSTREAM.md has exactly one row per discovered entry."""
    root = os.environ.get('DG_UPSTREAM_TESTS')
    if not root:
        pytest.skip('DG_UPSTREAM_TESTS is not set (the folder holding upstream\'s main/ and nv_dev/ tests)')
    table = suite.load_expectations(os.path.join(REPO, 'docs', 'UPSTREAM.md'))
    for s in ('main', 'nv_dev'):
        found = {f'{f}::{e["name"]}' for f, e in suite.discover_dir(os.path.join(root, s))}
        listed = {k for t, k in table if t == s}
        assert found == listed, f'{s}: missing rows {sorted(found - listed)}, stale rows {sorted(listed - found)}'

