"""Run upstream DeepGEMM's own test files, unmodified, against this package in SM120 mode.

    python benchmarks/upstream_suite.py [DIR] [--only FILE::FUNC ...] [--timeout S] [--mqa-cases N|all]
                                        [--log-dir D] [--passing-only] [--all-required] [--list]

DIR holds upstream's test files (default: `$DG_UPSTREAM_TESTS/main`; `$DG_UPSTREAM_TESTS` is the folder holding
`main/` and `nv_dev/`). Nothing is copied: the files run where they are.

Each test function runs in its own subprocess, with cwd = DIR (so `import generators` works), `DG_SM120_MODE=1`,
`PYTHONPATH` = this repository first, `DG_MQA_NUM_CASES` (the sampling `test_attention.py` reads) and a timeout that
kills the subprocess and its children. Before the call the subprocess runs the statements the file's
`if __name__ == '__main__':` block runs before its first test call (the seeds, the library-path print), and a call
that block guards with a condition (`if get_arch_major() >= 9:`) runs only if the condition holds here. Functions
run in the order that block calls them, then any other `def test_*` in file order. A file whose main block calls no
test function is a script and runs as one (`test_lazy_init.py --num-processes 2`); `test_sanitizer.py` (which runs
every other file under compute-sanitizer, for hours) only with `--only test_sanitizer.py::__main__`.

One line per FILE::FUNC: PASS, FAIL <last error line>, TIMEOUT, SKIPPED-by-upstream (the function printed upstream's
" > Skipped" or its guard was false) or EXCLUDED (test_sanitizer.py, not run); then a summary. What each function is
expected to do on SM120 comes from docs/UPSTREAM.md (`--expectations`): a FAIL or TIMEOUT of a row whose status is
not "passes" is reported as expected and does not fail the run, unless the file did not even import; every other
FAIL/TIMEOUT (including functions that file does not list) makes the exit status 1. Each function's output goes to `<log dir>/<suite>__<file>__<func>.log`,
and all of them, with the summary, to `<log dir>/<suite>__all.log` (log dir: `--log-dir`, else `$OUT`, else
`./upstream_logs`).
"""
import argparse
import ast
import fnmatch
import os
import re
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV_DIR = 'DG_UPSTREAM_TESTS'
MAIN = '__main__'
NOT_TESTS = ('generators.py',)
# Scripts: the arguments they run with here, and which of them only run when named with --only
def _visible_gpus():
    """GPUs the subprocesses will see (CUDA_VISIBLE_DEVICES, else nvidia-smi's count; 1 when unknown)."""
    visible = os.environ.get('CUDA_VISIBLE_DEVICES')
    if visible is not None:
        return max(1, len([d for d in visible.split(',') if d.strip()]))
    try:
        out = subprocess.run(['nvidia-smi', '-L'], capture_output=True, text=True, timeout=20).stdout
        return max(1, sum(line.startswith('GPU ') for line in out.splitlines()))
    except (OSError, subprocess.SubprocessError):
        return 1


# test_lazy_init.py spawns one process per GPU index (it calls torch.cuda.set_device(rank)): at most the GPUs here
SCRIPT_ARGS = {'test_lazy_init.py': ['--num-processes', str(min(2, _visible_gpus()))],
               'test_mega_moe.py': ['--num-processes', '1']}
ONLY_WHEN_NAMED = ('test_sanitizer.py',)
SKIP_MARK = '@@upstream_suite: SKIPPED-by-upstream:'
IMPORT_MARK = '@@upstream_suite: the file did not import'
_ERROR_LINE = re.compile(r'^(\w+\.)*\w*(Error|Exception|Exit|Interrupt)\b.*|^\w+Error$')


# ---------------------------------------------------------------------------------------------------------------------
# Discovery (parses the files; imports nothing)
# ---------------------------------------------------------------------------------------------------------------------
def _is_main_guard(node):
    t = node.test if isinstance(node, ast.If) else None
    return (isinstance(t, ast.Compare) and isinstance(t.left, ast.Name) and t.left.id == '__name__'
            and len(t.comparators) == 1 and isinstance(t.comparators[0], ast.Constant)
            and t.comparators[0].value == MAIN)


def _calls_in(stmts, tests, guards, out):
    """Append (name, [guard sources]) for each bare call `test_x()` of a known test function, in order."""
    for stmt in stmts:
        if isinstance(stmt, ast.If):
            cond = ast.unparse(stmt.test)
            _calls_in(stmt.body, tests, guards + [cond], out)
            _calls_in(stmt.orelse, tests, guards + [f'not ({cond})'], out)
            continue
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in tests:
                out.append((node.func.id, guards))


def discover(path):
    """Entries of one file: dicts with name, kind ('function' | 'script'), guards and preamble (sources)."""
    fname = os.path.basename(path)
    tree = ast.parse(open(path).read(), filename=path)
    defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.name.startswith('test_')]
    main = next((n for n in tree.body if _is_main_guard(n)), None)
    calls = []
    if main is not None:
        _calls_in(main.body, set(defs), [], calls)
    if main is not None and not calls:
        return [dict(name=MAIN, kind='script', guards=[], preamble='', args=SCRIPT_ARGS.get(fname, []),
                     only_when_named=fname in ONLY_WHEN_NAMED)]
    preamble = []
    if main is not None:
        for stmt in main.body:
            found = []
            _calls_in([stmt], set(defs), [], found)
            if found:
                break
            preamble.append(ast.unparse(stmt))
    entries, seen = [], set()
    for name, guards in calls + [(d, []) for d in defs]:
        if name not in seen:
            seen.add(name)
            entries.append(dict(name=name, kind='function', guards=guards, preamble='\n'.join(preamble), args=[],
                                only_when_named=False))
    return entries


def discover_dir(directory):
    files = sorted(f for f in os.listdir(directory) if f.startswith('test_') and f.endswith('.py')
                   and f not in NOT_TESTS)
    out = []
    for f in files:
        try:
            entries = discover(os.path.join(directory, f))
        except SyntaxError as e:
            entries = [dict(name=MAIN, kind='unparsable', guards=[], preamble='', args=[], only_when_named=False,
                            error=f'SyntaxError: {e}')]
        out += [(f, e) for e in entries]
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Expectations (docs/UPSTREAM.md rows: | suite | file::function | status | ... |)
# ---------------------------------------------------------------------------------------------------------------------
def load_expectations(path):
    """{(suite, 'file::func'): status text}; missing file gives {}."""
    out = {}
    if not path or not os.path.exists(path):
        return out
    for line in open(path):
        cells = [c.strip().strip('`') for c in line.strip().strip('|').split('|')]
        if len(cells) >= 3 and '::' in cells[1] and cells[0] in ('main', 'nv_dev'):
            out[(cells[0], cells[1])] = cells[2]
    return out


def is_required(status):
    return status is None or status.lower().startswith('passes')


# ---------------------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------------------
_CHILD = r'''
import importlib, sys
try:
    mod = importlib.import_module({module!r})
except BaseException:
    print({import_mark!r}, flush=True)
    raise
ns = vars(mod)
exec(compile({preamble!r}, '<__main__ preamble of {module}>', 'exec'), ns)
for cond in {guards!r}:
    if not eval(cond, ns):
        print({mark!r}, 'the __main__ block runs {name} only if', cond)
        sys.exit(0)
getattr(mod, {name!r})()
'''


def child_env(mqa_cases):
    env = dict(os.environ)
    env['DG_SM120_MODE'] = '1'
    env['PYTHONUNBUFFERED'] = '1'
    env['PYTHONPATH'] = os.pathsep.join([REPO] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    if mqa_cases == 'all':
        env.pop('DG_MQA_NUM_CASES', None)
    elif mqa_cases is not None:
        env['DG_MQA_NUM_CASES'] = str(mqa_cases)
    return env


def command(fname, entry):
    if entry['kind'] == 'script':
        return [sys.executable, fname] + list(entry['args'])
    module = fname[:-3]
    return [sys.executable, '-c', _CHILD.format(module=module, preamble=entry['preamble'], guards=entry['guards'],
                                                mark=SKIP_MARK, import_mark=IMPORT_MARK, name=entry['name'])]


def run_one(directory, fname, entry, env, timeout):
    """(result, detail, output, seconds) for one entry."""
    start = time.time()
    proc = subprocess.Popen(command(fname, entry), cwd=directory, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        # the subprocess leads its own session: end it and whatever it spawned (test_lazy_init's workers)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, _ = proc.communicate()
        timed_out = True
    text = out.decode(errors='replace')
    seconds = time.time() - start
    if timed_out:
        return 'TIMEOUT', f'after {timeout:.0f} s', text, seconds
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    errors = [ln.strip() for ln in lines if _ERROR_LINE.match(ln.strip())]
    if proc.returncode != 0:
        detail = errors[-1] if errors else f'exit status {proc.returncode}' + (
            f'; last output: {lines[-1].strip()}' if lines else '')
        # a script's import failure has no marker: its last error is then an ImportError
        if any(ln.startswith(IMPORT_MARK) for ln in lines) or (
                entry['kind'] == 'script' and re.match(r'(ImportError|ModuleNotFoundError)\b', detail)):
            return 'FAIL-IMPORT', detail, text, seconds
        return 'FAIL', detail, text, seconds
    # a worker process that raised (test_lazy_init.py's `mp.Process`es do not change the parent's exit status)
    if any(ln.startswith('Traceback (most recent call last)') for ln in lines):
        return 'FAIL', 'exit status 0 but a traceback was printed: ' + (errors[-1] if errors else '?'), text, seconds
    skipped = [ln for ln in lines if ln.startswith(SKIP_MARK) or ln.lstrip().startswith('> Skipped')]
    if skipped:
        return 'SKIPPED-by-upstream', skipped[0].replace(SKIP_MARK, '').strip(), text, seconds
    return 'PASS', '', text, seconds


def _safe(s):
    return re.sub(r'[^A-Za-z0-9_.-]', '_', s)


def selection(fname, entry, only):
    """'run', 'excluded' (shown, not run: named-only entries without --only) or None (not selected)."""
    key = f'{fname}::{entry["name"]}'
    if not only:
        return 'excluded' if entry['only_when_named'] else 'run'
    # a bare file name selects the whole file
    hit = any(fnmatch.fnmatchcase(key, pat) or ('::' not in pat and fnmatch.fnmatchcase(fname, pat)) for pat in only)
    return 'run' if hit else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('dir', nargs='?', help=f'folder of upstream test files (default: ${ENV_DIR}/main)')
    p.add_argument('--only', action='append', default=[], metavar='FILE::FUNC',
                   help='run only these (repeatable; shell-style patterns; a bare file name selects the whole file)')
    p.add_argument('--timeout', type=float, default=600.0, help='seconds per function (default 600)')
    p.add_argument('--mqa-cases', default=os.environ.get('DG_MQA_NUM_CASES', '8'),
                   help="DG_MQA_NUM_CASES for the subprocesses: a count, or 'all' (default: $DG_MQA_NUM_CASES or 8)")
    p.add_argument('--log-dir', help='where the logs go (default: $OUT, else ./upstream_logs)')
    p.add_argument('--expectations', default=os.path.join(REPO, 'docs', 'UPSTREAM.md'),
                   help='the table of expected results (default: docs/UPSTREAM.md)')
    p.add_argument('--passing-only', action='store_true', help='run only the functions expected to pass')
    p.add_argument('--all-required', action='store_true', help='every FAIL/TIMEOUT fails the run')
    p.add_argument('--list', action='store_true', help='print the entries that would run, and exit')
    args = p.parse_args(argv)

    directory = args.dir
    if directory is None:
        root = os.environ.get(ENV_DIR)
        if not root:
            p.error(f'no DIR given and ${ENV_DIR} is not set (the folder holding upstream\'s main/ and nv_dev/)')
        directory = os.path.join(root, 'main')
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):
        p.error(f'{directory} is not a directory')
    if args.mqa_cases != 'all' and not (args.mqa_cases.isdigit() and int(args.mqa_cases) > 0):
        p.error(f"--mqa-cases must be a positive count or 'all', got {args.mqa_cases!r}")
    if args.timeout <= 0:
        p.error(f'--timeout must be positive, got {args.timeout}')
    suite = os.path.basename(directory.rstrip(os.sep))
    expectations = load_expectations(args.expectations)

    entries = []
    for f, e in discover_dir(directory):
        how = selection(f, e, args.only)
        if how is not None:
            entries.append((f, dict(e, excluded=how == 'excluded')))
    if args.passing_only:
        entries = [(f, e) for f, e in entries
                   if is_required(expectations.get((suite, f'{f}::{e["name"]}'), 'passes'))]
    if args.list:
        for f, e in entries:
            print(f'{f}::{e["name"]}' + ('  (excluded unless named with --only)' if e['excluded'] else ''))
        return 0
    if args.only and not entries:
        p.error(f'--only {args.only} selects nothing in {directory}')

    log_dir = args.log_dir or os.environ.get('OUT') or os.path.join(os.getcwd(), 'upstream_logs')
    os.makedirs(log_dir, exist_ok=True)
    env = child_env(args.mqa_cases)
    print(f'upstream suite {suite}: {directory}; {len(entries)} entries; SM120 mode; DG_MQA_NUM_CASES='
          f'{env.get("DG_MQA_NUM_CASES", "(all)")}; timeout {args.timeout:.0f} s; logs in {log_dir}', flush=True)

    results, combined = [], []
    width = max([len(f'{f}::{e["name"]}') for f, e in entries] + [20])
    for fname, entry in entries:
        key = f'{fname}::{entry["name"]}'
        if entry['excluded']:
            result, detail, text, secs = 'EXCLUDED', f'(run it with --only {key})', '', 0.0
        elif entry['kind'] == 'unparsable':
            result, detail, text, secs = 'FAIL', entry['error'], '', 0.0
        else:
            result, detail, text, secs = run_one(directory, fname, entry, env, args.timeout)
        status = expectations.get((suite, key))
        # every file must import, even one whose functions wait for a later issue
        required = args.all_required or is_required(status) or result == 'FAIL-IMPORT'
        note = ''
        if result == 'FAIL-IMPORT':
            result, note = 'FAIL', '  [the file does not import: required whatever its status]'
        elif result in ('FAIL', 'TIMEOUT') and not required:
            note = f'  [expected: {status}]'
        elif result == 'PASS' and status is not None and not is_required(status):
            note = f'  [listed as "{status}" in {os.path.basename(args.expectations)}: update it]'
        line = f'{key:<{width}}  {result}{(" " + detail) if detail else ""}  ({secs:.0f} s){note}'
        print(line, flush=True)
        results.append((key, result, required))
        if result == 'EXCLUDED':
            continue
        with open(os.path.join(log_dir, f'{_safe(suite)}__{_safe(fname[:-3])}__{_safe(entry["name"])}.log'), 'w') as fh:
            fh.write(text)
        combined.append(f'===== {suite}/{key}: {result} {detail}\n{text}\n')

    counts = {}
    for _, r, _ in results:
        counts[r] = counts.get(r, 0) + 1
    bad = [k for k, r, req in results if r in ('FAIL', 'TIMEOUT') and req]
    summary = (f'summary {suite}: ' + ', '.join(f'{n} {r}' for r, n in sorted(counts.items())) +
               (f'; required but not passing: {", ".join(bad)}' if bad else '; every required entry passed'))
    print(summary, flush=True)
    with open(os.path.join(log_dir, f'{_safe(suite)}__all.log'), 'w') as fh:
        fh.write(''.join(combined) + summary + '\n')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
