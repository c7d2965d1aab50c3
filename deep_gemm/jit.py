"""Compile-only entry point: build kernel configurations for an explicit target without a GPU.

    python -m deep_gemm.jit --arch sm_120a [--family paged_mqa_logits] [--jobs 2]

compiles every configuration the heuristics can choose for that target (filling the JIT's disk cache, so a
later run on such a GPU starts warm) and prints each kernel's registers, shared memory and spills, checking
them against the target's limits.
"""
import argparse
import concurrent.futures
import glob
import os
import shutil
import subprocess
import sys

SMEM_LIMITS = {'sm_120a': 101376, 'sm_121a': 101376, 'sm_120f': 101376, 'sm_89': 101376, 'sm_90a': 232448}


def _ext():
    import deep_gemm
    if deep_gemm._C is None:
        raise RuntimeError(f'deep_gemm._C is not built: {deep_gemm._C_IMPORT_ERROR!r}')
    return deep_gemm._C


def list_configs(target, family=None, sm120_mode=False):
    """Every kernel configuration the heuristics can choose for `target`, as dicts (family, symbol, ...).
    With `sm120_mode`, those a GPU of `target` picks under DG_SM120_MODE=1."""
    configs = _ext().list_kernel_configs(target, sm120_mode)
    for i, c in enumerate(configs):
        c['index'] = i
    return [c for c in configs if family is None or c['family'] == family]


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
    cuobjdump = cuobjdump or find_cuobjdump()
    if cuobjdump is None:
        raise RuntimeError('cuobjdump not found: install the `nvidia-cuda-cuobjdump` package or a full CUDA toolkit')
    return subprocess.run([cuobjdump, '-sass', cubin_path], check=True, capture_output=True, text=True).stdout


def compile_config(target, index, sm120_mode=False):
    """Compile one configuration (by its index in list_configs(target)) and return its resource report."""
    return _ext().compile_kernel_config(target, index, sm120_mode)


def check_report(report, sass=None):
    """The problems of one compiled configuration (empty when it is fine)."""
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
        for needle in report['expected_sass']:
            if needle not in sass:
                problems.append(f'SASS lacks {needle!r}')
    return problems


def compile_all(target, family=None, jobs=2, check_sass=True, sm120_mode=False):
    """Compile every configuration for `target` in parallel; returns [(report, problems)]."""
    configs = list_configs(target, family, sm120_mode)
    cuobjdump = find_cuobjdump() if check_sass else None
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        reports = list(pool.map(lambda c: compile_config(target, c['index'], sm120_mode), configs))
    out = []
    for r in reports:
        sass = sass_of(r['cubin_path'], cuobjdump) if cuobjdump and r['expected_sass'] else None
        out.append((r, check_report(r, sass)))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--arch', default='sm_120a', help='sm_120a, sm_121a, sm_89 or sm_90a')
    parser.add_argument('--family', default=None)
    parser.add_argument('--jobs', type=int, default=os.cpu_count() or 2)
    parser.add_argument('--sm120-mode', action='store_true',
                        help='the configs a GPU of --arch picks under DG_SM120_MODE=1 (to pre-compile GPU tests)')
    args = parser.parse_args(argv)
    results = compile_all(args.arch, args.family, args.jobs, sm120_mode=args.sm120_mode)
    print(f"{'family':<22} {'config':<58} {'regs':>5} {'smem':>7} {'spill':>6}  problems")
    bad = 0
    for r, problems in results:
        bad += bool(problems)
        spill = r['spill_stores'] + r['spill_loads'] + r['stack_frame']
        print(f"{r['family']:<22} {r['description'][:58]:<58} {r['registers']:>5} {r['total_smem']:>7} {spill:>6}  "
              f"{'; '.join(problems) or 'ok'}")
    print(f'{len(results)} configurations for {args.arch}, {bad} with problems')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
