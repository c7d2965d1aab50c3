"""`python -m deep_gemm.bench`: every kernel on DeepSeek-shaped inputs, checked against a reference, timed, and
printed next to this GPU's measured ceilings and the SM120 projection.

Without a GPU it says so and compiles the kernels for sm_120a instead, printing their resource usage.
"""
import argparse
import importlib
import sys
import traceback

FAMILIES = ('paged', 'ragged', 'hc')


# The compile-only tool's kernel families behind each benchmark family (plus the ceilings every run measures)
_JIT_FAMILIES = {'paged': ('paged_mqa_logits_metadata', 'paged_mqa_logits'), 'ragged': ('mqa_logits', 'clean_logits'),
                 'hc': ('hc_prenorm_gemm',)}


def _no_gpu(reason, only=None):
    from .. import jit
    argv = ['--arch', 'sm_120a']
    if only:
        for fam in ('ceilings',) + tuple(f for o in dict.fromkeys(only) for f in _JIT_FAMILIES[o]):
            argv += ['--family', fam]
    what = f'the kernel configurations of {", ".join(dict.fromkeys(only))}' if only else 'every kernel configuration'
    print(f'No GPU to benchmark on ({reason}). Compiling {what} for sm_120a instead:\n', flush=True)
    return jit.main(argv)


def _fmt_us(s):
    return f'{s * 1e6:9.1f}'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--only', choices=FAMILIES, action='append', help='run only these families')
    args = parser.parse_args(argv)

    import torch
    import deep_gemm
    if not torch.cuda.is_available():
        return _no_gpu('torch.cuda.is_available() is False', args.only)
    if deep_gemm._C is None:
        print(f'deep_gemm._C is not built: {deep_gemm._C_IMPORT_ERROR!r}')
        return 1

    from .ceilings import measure
    from .common import SM120_CARDS
    c = measure()
    print(f'GPU: {c.device}   SM120 mode: {"on" if __import__("os").environ.get("DG_SM120_MODE") else "off"}')
    print(f'Ceilings measured now: read {c.read_bw / 1e9:.0f} GB/s, write {c.write_bw / 1e9:.0f} GB/s, '
          f'FP8 mma.sync {c.fp8_mma / 1e12:.0f} TFLOP/s, TF32 mma.sync {c.tf32_mma / 1e12:.0f} TFLOP/s, '
          f'BF16 mma.sync {c.bf16_mma / 1e12:.0f} TFLOP/s\n')

    rows = []
    for fam in args.only or FAMILIES:
        try:
            mod = importlib.import_module(f'.{fam}', __package__)
        except ImportError as e:
            print(f'[{fam}] not available: {e}')
            continue
        try:
            rows += mod.run(c)
        except Exception:
            print(f'[{fam}] failed:')
            traceback.print_exc()

    cards = list(SM120_CARDS)
    header = (f"{'case':<44} {'time us':>9} {'GB/s':>7} {'TFLOP/s':>8} {'floor us':>9} {'of floor':>8}  "
              + ' '.join(f'{n + " floor":>18}' for n in cards) + '  check')
    print(header)
    print('-' * len(header))
    for r in rows:
        floor = r.floor(c)
        eff = min(1.0, floor / r.seconds) if r.seconds > 0 else 0.0
        gbs = (r.bytes_read + r.bytes_written) / r.seconds / 1e9
        tfs = r.flops / r.seconds / 1e12
        # Projection: the roofline floor of the same bytes and flops on each SM120 card
        proj = [r.floor(SM120_CARDS[n]) for n in cards]
        print(f'{r.name:<44} {_fmt_us(r.seconds)} {gbs:7.0f} {tfs:8.1f} {_fmt_us(floor)} {eff * 100:7.0f}%  '
              + ' '.join(f'{p * 1e6:15.1f} us' for p in proj) + f'  {r.check}')
        for n in r.notes:
            print(f'    {n}')
    print('\nfloor = max(bytes / measured bandwidth, flops / measured mma.sync peak) on this GPU; "of floor" = floor / '
          'time. The SM120 columns are the roofline projection: the same bytes and flops at that card\'s DRAM '
          'bandwidth and MMA peak (docs/HARDWARE.md §1; full-rate block-scaled FP8, native FP4).')
    return 0


if __name__ == '__main__':
    sys.exit(main())
