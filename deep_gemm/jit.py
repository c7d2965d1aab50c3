"""Compile-only entry point: build kernel configurations for an explicit target without a GPU.

    python -m deep_gemm.jit --arch sm_120a [--family paged_mqa_logits ...] [--jobs 2]

compiles every configuration the heuristics can choose for that target (filling the JIT's disk cache, so a
later run on such a GPU starts warm) and prints, as each one completes, its registers, shared memory and local
memory, checked against the target's limits: shared memory within the per-block maximum, no spills or stack
frame, and the intended MMA instructions in the SASS (`cuobjdump -sass`). Any problem fails the run (exit 1).

Compiles and SASS checks run in parallel; a cubin's SASS-check result is stored next to it in the JIT cache
(`sass_check.json`), so a warm run only reads files.
"""
import argparse
import concurrent.futures
import glob
import json
import os
import shutil
import subprocess
import sys
import time

# Targets this tool checks -> opt-in shared memory per block (bytes). sm_120a/sm_121a are what the package is for
# (checked in CI); sm_120f is the family target of both; sm_90a is the test GPU; sm_89 compiles but is not
# supported or tested (README).
SMEM_LIMITS = {'sm_120a': 101376, 'sm_121a': 101376, 'sm_120f': 101376, 'sm_90a': 232448, 'sm_89': 101376}
ARCHS = tuple(SMEM_LIMITS)

SASS_CHECK_FILE = 'sass_check.json'


def _ext():
    import deep_gemm
    if deep_gemm._C is None:
        raise RuntimeError(f'deep_gemm.jit: {deep_gemm._extension_problem()}')
    return deep_gemm._C


def _check_arch(fn, target):
    if target not in SMEM_LIMITS:
        raise ValueError(f'deep_gemm.jit.{fn}: `target` must be one of {", ".join(ARCHS)}; got {target!r}')


def families(target='sm_120a', sm120_mode=False):
    """The kernel families that have configurations for `target`."""
    return sorted({c['family'] for c in _ext().list_kernel_configs(target, sm120_mode)})


def list_configs(target, family=None, sm120_mode=False):
    """Every kernel configuration the heuristics can choose for `target`, as dicts (family, symbol, ...).
    `family`: one family name or a list of them (None: all). With `sm120_mode`, those a GPU of `target` picks
    under DG_SM120_MODE=1."""
    _check_arch('list_configs', target)
    configs = _ext().list_kernel_configs(target, sm120_mode)
    for i, c in enumerate(configs):
        c['index'] = i
    if family is None:
        return configs
    wanted = [family] if isinstance(family, str) else list(family)
    known = sorted({c['family'] for c in configs})
    unknown = [f for f in wanted if f not in known]
    if unknown:
        raise ValueError(f'deep_gemm.jit.list_configs: `family` must be among {", ".join(known)} for {target}; '
                         f'got {", ".join(map(repr, unknown))}')
    return [c for c in configs if c['family'] in wanted]


def find_cuobjdump():
    """cuobjdump from PATH, the toolkit, or the `nvidia-cuda-cuobjdump` pip package; None if absent."""
    candidates = [shutil.which('cuobjdump')]
    for home in (os.environ.get('CUDA_HOME'), '/usr/local/cuda'):
        if home:
            candidates.append(os.path.join(home, 'bin', 'cuobjdump'))
    for root in sys.path:
        candidates += glob.glob(os.path.join(root or '.', 'nvidia', '*', 'bin', 'cuobjdump'))
    return next((c for c in candidates if c and os.path.isfile(c) and os.access(c, os.X_OK)), None)


def sass_of(cubin_path, cuobjdump=None):
    """The SASS of a cubin, by `cuobjdump -sass` (which runs `nvdisasm`: looked up beside cuobjdump, then on PATH)."""
    cuobjdump = cuobjdump or find_cuobjdump()
    if cuobjdump is None:
        raise RuntimeError('deep_gemm.jit.sass_of: cuobjdump not found: install the `nvidia-cuda-cuobjdump` and '
                           '`nvidia-cuda-nvdisasm` packages (./develop.sh does) or a full CUDA toolkit')
    env = dict(os.environ)
    env['PATH'] = os.pathsep.join([os.path.dirname(os.path.abspath(cuobjdump)), env.get('PATH', '')])
    r = subprocess.run([cuobjdump, '-sass', cubin_path], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        hint = (' (install the `nvidia-cuda-nvdisasm` package, or put a CUDA toolkit\'s bin on PATH)'
                if 'nvdisasm' in r.stderr else '')
        raise RuntimeError(f'deep_gemm.jit.sass_of: `{cuobjdump} -sass {cubin_path}` exited with {r.returncode}: '
                           f'{r.stderr.strip() or r.stdout.strip()[-2000:]}{hint}')
    return r.stdout


def missing_sass(cubin_path, needles, cuobjdump=None):
    """The `needles` absent from the cubin's SASS. The answer is stored beside the cubin (a cache entry's cubin
    never changes), so asking again only reads that file."""
    needles = sorted(set(needles))
    record = os.path.join(os.path.dirname(cubin_path), SASS_CHECK_FILE)
    try:
        with open(record) as f:
            stored = json.load(f)
        if stored.get('cubin_size') == os.path.getsize(cubin_path) and set(needles) <= set(stored['present']) | set(
                stored['missing']):
            return [n for n in needles if n in stored['missing']]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    sass = sass_of(cubin_path, cuobjdump)
    missing = [n for n in needles if n not in sass]
    tmp = f'{record}.{os.getpid()}.{id(needles)}.tmp'
    try:
        with open(tmp, 'w') as f:
            json.dump({'cubin_size': os.path.getsize(cubin_path), 'missing': missing,
                       'present': [n for n in needles if n not in missing]}, f)
        os.replace(tmp, record)
    except OSError:  # a read-only cache still gets its answer
        pass
    return missing


def compile_config(target, index, sm120_mode=False):
    """Compile one configuration (by its index in list_configs(target)) and return its resource report."""
    _check_arch('compile_config', target)
    return _ext().compile_kernel_config(target, index, sm120_mode)


def check_report(report, sass=None, missing=None):
    """The problems of one compiled configuration (empty when it is fine). The SASS check takes either the SASS
    text or the list of `expected_sass` entries already known to be missing from it."""
    problems = []
    limit = SMEM_LIMITS.get(report['target'])
    if not report['resources_found']:
        problems.append('no ptxas resource report for the kernel')
    if limit is not None and report['total_smem'] > limit:
        problems.append(f"shared memory {report['total_smem']} B > {limit} B")
    for key in ('stack_frame', 'spill_stores', 'spill_loads'):
        if report[key]:
            problems.append(f'{key} = {report[key]} B (local memory)')
    if sass is not None:
        missing = [n for n in report['expected_sass'] if n not in sass]
    for needle in missing or ():
        problems.append(f'SASS lacks {needle!r}')
    return problems


def _compile_and_check(target, config, sm120_mode, cuobjdump):
    start = time.monotonic()
    report = compile_config(target, config['index'], sm120_mode)
    missing = None
    if cuobjdump and report['expected_sass']:
        try:
            missing = missing_sass(report['cubin_path'], report['expected_sass'], cuobjdump)
        except RuntimeError as e:
            return report, [str(e)], time.monotonic() - start
    return report, check_report(report, missing=missing), time.monotonic() - start


def compile_all(target, family=None, jobs=2, check_sass=True, sm120_mode=False, on_result=None):
    """Compile every configuration for `target` (or of `family`) and check it, `jobs` at a time (compiles release
    the GIL; SASS checks are subprocesses). Returns [(report, problems)] in configuration order; `on_result(done,
    total, report, problems, seconds)` is called as each one completes."""
    configs = list_configs(target, family, sm120_mode)
    cuobjdump = None
    if check_sass:
        cuobjdump = find_cuobjdump()
        if cuobjdump is None:
            raise RuntimeError('deep_gemm.jit.compile_all: cuobjdump not found, so the SASS cannot be checked: install '
                               'the `nvidia-cuda-cuobjdump` and `nvidia-cuda-nvdisasm` packages (./develop.sh does) '
                               'or pass check_sass=False')
    results = [None] * len(configs)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_compile_and_check, target, c, sm120_mode, cuobjdump): i for i, c in enumerate(configs)}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            report, problems, seconds = future.result()
            results[futures[future]] = (report, problems)
            if on_result is not None:
                on_result(done, len(configs), report, problems, seconds)
    return results


def _row(report, problems):
    spill = report['spill_stores'] + report['spill_loads'] + report['stack_frame']
    return (f"{report['family']:<26} {report['description'][:58]:<58} {report['registers']:>5} "
            f"{report['total_smem']:>7} {spill:>6}  {'; '.join(problems) or 'ok'}")


def _duration(seconds):
    return f'{int(seconds) // 60}m{int(seconds) % 60:02d}s' if seconds >= 60 else f'{seconds:.0f}s'


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m deep_gemm.jit', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--arch', default='sm_120a', choices=ARCHS, metavar='ARCH',
                        help=f'compile target, one of: {", ".join(ARCHS)} (default: sm_120a). sm_120a/sm_121a '
                             f'are what this package targets; sm_89 compiles but is not supported or tested')
    parser.add_argument('--family', action='append', metavar='FAMILY',
                        help='only this kernel family (repeatable; default: all); an unknown name is an error '
                             'that lists the families')
    parser.add_argument('--jobs', type=int, default=os.cpu_count() or 2,
                        help='compiles and SASS checks run at once (default: the number of CPUs)')
    parser.add_argument('--sm120-mode', action='store_true',
                        help='the configs a GPU of --arch picks under DG_SM120_MODE=1 (to pre-compile GPU tests)')
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1; got {args.jobs}')
    try:
        configs = list_configs(args.arch, args.family, args.sm120_mode)
    except ValueError as e:
        parser.error(str(e).replace('deep_gemm.jit.list_configs: `family`', '--family'))
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1

    check_sass = find_cuobjdump() is not None
    if not check_sass:
        print('note: cuobjdump not found, so the SASS is not checked (install the `nvidia-cuda-cuobjdump` and '
              '`nvidia-cuda-nvdisasm` packages, as ./develop.sh does, or a full CUDA toolkit)', flush=True)
    start = time.monotonic()
    width = len(str(len(configs)))
    print(f"{len(configs)} configurations for {args.arch}, {args.jobs} at a time", flush=True)
    print(f"{'':>{2 * width + 3}} {'family':<26} {'config':<58} {'regs':>5} {'smem':>7} {'spill':>6}  problems",
          flush=True)

    def on_result(done, total, report, problems, seconds):
        elapsed = time.monotonic() - start
        eta = elapsed / done * (total - done)
        how = 'cached' if report['from_disk_cache'] else f'{seconds:.1f}s'
        print(f'[{done:>{width}}/{total}] {_row(report, problems)}  ({how}; ETA {_duration(eta)})', flush=True)

    try:
        results = compile_all(args.arch, args.family, args.jobs, check_sass, args.sm120_mode, on_result)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    bad = [(r, p) for r, p in results if p]
    cached = sum(r['from_disk_cache'] for r, _ in results)
    for r, p in bad:
        print(f'problem: {_row(r, p)}')
    unchecked = '' if check_sass else ' (SASS not checked)'
    print(f'{len(results)} configurations for {args.arch} ({cached} from the JIT cache) in '
          f'{_duration(time.monotonic() - start)}, {len(bad)} with problems{unchecked}')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
