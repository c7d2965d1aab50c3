"""`python -m deep_gemm.bench`: every kernel on DeepSeek-shaped inputs, checked against a reference, timed, and
printed next to this GPU's measured ceilings, the SM120 roofline, and the SASS time model's predictions (this GPU,
and RTX 5090 / RTX PRO 6000 / DGX Spark GB10 from the sm_120a / sm_121a cubins; model/).

    python -m deep_gemm.bench [--only paged|ragged|hc ...] [--json rows.json]
    python -m deep_gemm.bench --model-only [--only ...] [--rows REGEX] [--json rows.json]   (no GPU needed)
    python -m deep_gemm.bench --model-only --measured gpu_rows.json --calibration H200 [--json calibrated.json]
        (no GPU needed: the calibration of an earlier GPU run's `--json` rows, their bytes and measured times,
        against the model on that GPU's table entry; `python -m deep_gemm.bench.model.markdown` renders it)

Without a GPU it says so and runs `--model-only` for the selected families (compiling only the configurations
those rows use, for sm_90a in SM120 mode and for the SM120 targets).
"""
import argparse
import importlib
import json
import os
import re
import sys
import time
import traceback

FAMILIES = ('paged', 'ragged', 'hc', 'gemm')


def _fmt_us(s):
    return f'{s * 1e6:9.1f}'


def _cards(args, this_gpu=None):
    from .model import gpus, run
    names = args.cards or list(gpus.SM120_CARDS)
    for n in names:
        if n not in gpus.GPUS:
            raise SystemExit(f'deep_gemm.bench: --cards must name entries of model/gpus.py {sorted(gpus.GPUS)}; '
                             f'got {n!r}')
    cards = [this_gpu] if this_gpu is not None else [run.calibration_card(args.calibration)]
    return cards + run.sm120_cards([n for n in names if n in gpus.SM120_CARDS])


def _write_json(path, header, rows):
    with open(path, 'w') as f:
        json.dump(dict(header, rows=rows), f, indent=1, default=str)
    print(f'\nwrote {len(rows)} rows to {path}')


def _model_table(names, results, cards, measured=None):
    """The model's columns: per row, each card's prediction and binding term (and this GPU's error)."""
    from .model import run
    w = 30
    head = f"{'case':<46} " + (f"{'measured':>12} {'error':>7} " if measured else '') + \
        ' '.join(f'{c.label[:w]:>{w}}' for c in cards)
    print(head)
    print('-' * len(head))
    for i, name in enumerate(names):
        r = results[i]
        line = f'{name[:46]:<46} '
        if measured:
            m = measured[i]
            p = r.get(cards[0].label)
            err = (p['seconds'] - m) / m if p and 'error' not in p and m > 0 else None
            line += f'{m * 1e6:9.1f} us ' + (f'{err * 100:+6.0f}% ' if err is not None else f'{"":>7} ')
        line += ' '.join(run.fmt(r.get(c.label), w) for c in cards)
        print(line)
        for c in cards:
            p = r.get(c.label)
            if p and 'error' in p:
                print(f'    {c.label}: {p["error"][:400]}')


def _model_footer():
    print('\nmodel: predicted = max(DRAM, tensor, issue, latency) + launch overhead (model/predict.py): DRAM = bytes '
          '/ (spec bandwidth x sustained fraction); tensor / issue / latency from the kernel\'s SASS main loops '
          '(model/sass.py) scheduled on the SMs with the host plan\'s grid, stages and splits; latency = the '
          'schedulers simulated with the warps\' dependencies (control bits). Binding term after each time; '
          'parameters and their sources (or GUESS) in model/gpus.py.')


def _measured_rows(args):
    """The rows of an earlier GPU run's `--json` file (`--measured`), filtered by --only / --rows: [(bench row, the
    file's dict for it)], and the file's header."""
    from .common import Row
    try:
        with open(args.measured) as f:
            data = json.load(f)
        src = data['rows']
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f'deep_gemm.bench: --measured must be a JSON file written by `python -m deep_gemm.bench '
                         f'--json` on a GPU; reading {args.measured!r} failed: {e}')
    if data.get('model_only'):
        raise SystemExit(f'deep_gemm.bench: --measured {args.measured!r} holds --model-only predictions, not '
                         f'measurements')
    keys = ('bytes_read', 'bytes_written', 'flops', 'mma', 'check', 'family')
    out, fams = [], args.only or FAMILIES
    for r in src:
        if r.get('family') not in fams or (args.rows and not re.search(args.rows, r['name'])):
            continue
        out.append((Row(name=r['name'], seconds=float(r.get('measured_s') or 0.0),
                        **{k: r[k] for k in keys if r.get(k) is not None}), r))
    return out, data


def model_only(args, reason=None):
    from .model import rows as model_rows, run
    if reason:
        print(f'No GPU to benchmark on ({reason}): the time model\'s predictions only (--model-only).\n')
    if args.measured:
        pairs, data = _measured_rows(args)
        measured = [row for row, _ in pairs]
        cards = _cards(args)
        print(f'Calibration of {args.measured} ({data.get("device")}, {len(measured)} rows) against the model on '
              f'{cards[0].label}:\n')
        t0 = time.time()
        results = run.project([(r.name, r) for r in measured], cards, jobs=args.jobs)
        _model_table([r.name for r in measured], results, cards, [r.seconds for r in measured])
        _model_footer()
        print(f'({len(measured)} rows x {len(cards)} cards in {time.time() - t0:.0f} s)')
        if args.json:
            _write_json(args.json, dict(model_only=False, device=data.get('device'), sm120_mode=data.get('sm120_mode'),
                                        ceilings=data.get('ceilings'), cards=[c.label for c in cards],
                                        measured_from=args.measured),
                        [dict(src, predictions=res) for (_, src), res in zip(pairs, results)])
        return 0
    families = args.only or FAMILIES
    names = [n for f, n in model_rows.cases(families) if not args.rows or re.search(args.rows, n)]
    cards = _cards(args)
    t0 = time.time()
    results = run.project([(n, None) for n in names], cards, jobs=args.jobs)
    _model_table(names, results, cards)
    _model_footer()
    print(f'({len(names)} rows x {len(cards)} cards in {time.time() - t0:.0f} s)')
    bad = sum(1 for r in results for p in r.values() if p and 'error' in p)
    if args.json:
        _write_json(args.json, dict(model_only=True, device=None, sm120_mode=None, ceilings=None,
                                    cards=[c.label for c in cards]),
                    [dict(name=n, family=next((f for f, c in model_rows.cases() if c == n), ''), measured_s=None,
                          predictions=r) for n, r in zip(names, results)])
    return 1 if bad else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--only', choices=FAMILIES, action='append', help='run only these families')
    parser.add_argument('--model-only', action='store_true',
                        help='no measurement: print the time model\'s predictions for the rows (no GPU needed)')
    parser.add_argument('--rows', default=None, help='--model-only: only rows whose name matches this regex')
    parser.add_argument('--cards', action='append', default=None,
                        help='SM120 cards to predict (model/gpus.py names; default: all of SM120_CARDS)')
    parser.add_argument('--calibration', default='H100', choices=('H100', 'H200'),
                        help='--model-only: the calibration GPU predicted beside the SM120 cards')
    parser.add_argument('--measured', default=None,
                        help='--model-only: calibrate against the measured rows of this earlier GPU run\'s --json file '
                             '(pass the GPU it ran on as --calibration)')
    parser.add_argument('--json', default=None, help='write the rows (measured and predicted) to this JSON file')
    parser.add_argument('--no-model', action='store_true', help='measure only (no model columns)')
    parser.add_argument('--jobs', type=int, default=min(8, os.cpu_count() or 2),
                        help='parallel compiles / predictions for the model')
    args = parser.parse_args(argv)

    if args.measured and not args.model_only:
        parser.error('--measured goes with --model-only (it predicts an earlier run\'s rows without a GPU)')
    if args.model_only:
        return model_only(args)
    import torch
    import deep_gemm
    if not torch.cuda.is_available():
        return model_only(args, 'torch.cuda.is_available() is False')
    if deep_gemm._C is None:
        print(f'deep_gemm: {deep_gemm._extension_problem()}')
        return 1

    from .ceilings import measure
    from .common import SM120_CARDS
    c = measure()
    sm120_mode = os.environ.get('DG_SM120_MODE', '') not in ('', '0')
    print(f'GPU: {c.device}   SM120 mode: {"on" if sm120_mode else "off"}')
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
            got = mod.run(c)
            for r in got:
                r.family = fam
            rows += got
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
          'bandwidth and MMA peak (model/gpus.py; full-rate block-scaled FP8, native FP4).')

    model_cards = []
    if not args.no_model:
        from .model import run
        print('\nThe SASS time model beside each measured row (error = predicted / measured - 1 on this GPU):\n')
        this = run.this_gpu_card()
        if this is None:
            print(f'(this GPU, {torch.cuda.get_device_name()}, is not in model/gpus.py: SM120 cards only)')
        try:
            model_cards = _cards(args, this) if this is not None else _cards(args)[1:]
            t0 = time.time()
            results = run.project([(r.name, r) for r in rows], model_cards, jobs=args.jobs)
            for r, res in zip(rows, results):
                r.model = res
            if this is None:
                _model_table([r.name for r in rows], results, model_cards)
            else:
                _model_table([r.name for r in rows], results, model_cards, [r.seconds for r in rows])
            _model_footer()
            print(f'(model: {time.time() - t0:.0f} s)')
        except Exception:
            print('[model] failed:')
            traceback.print_exc()
    if args.json:
        _write_json(args.json, dict(model_only=False, device=c.device, sm120_mode=sm120_mode,
                                    ceilings=dict(read_bw=c.read_bw, write_bw=c.write_bw, fp8_mma=c.fp8_mma,
                                                  tf32_mma=c.tf32_mma, bf16_mma=c.bf16_mma),
                                    cards=[m.label for m in model_cards]),
                    [r.as_json(c) for r in rows])
    return 0


if __name__ == '__main__':
    sys.exit(main())
