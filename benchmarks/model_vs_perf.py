"""Re-predict docs/PERF.md's calibration table with the time model as it is now, without a GPU.

    python benchmarks/model_vs_perf.py [--calibration H200] [--rows REGEX] [--jobs 2] [--markdown]
    python benchmarks/model_vs_perf.py --projection [--rows REGEX]      (the same rows on the SM120 cards)
    python benchmarks/model_vs_perf.py --projection --max-block-m 64      (the GEMM rows planned with M tiles <= 64)

The calibration table in docs/PERF.md ("Time model: calibration ...") holds, per bench row, the time a GPU run
measured (its command, card and date are in the text above it) and what the model predicted then. This tool reads
the measured column, predicts each row again on that GPU's table entry (sm_90a in SM120 mode, as the bench plans and
compiles it) and prints old prediction, new prediction and the new error, with the count within +-20%: a model
change is judged against the same measurements without a GPU. `--projection` predicts the same rows on the SM120
cards (sm_120a / sm_121a cubins) instead and prints PERF.md's projection table. The kernels compiled are those of
the checkout, so to judge the model alone against a run of older kernels, check the kernel headers of that run's
commit out first
(`git checkout <commit> -- deep_gemm/include`, and back with `git checkout HEAD -- deep_gemm/include`).
"""
import argparse
import os
import re
import sys

PERF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'docs', 'PERF.md')
_ROW = re.compile(r'^\| (?P<name>[^|]+?) \| (?P<measured>[\d.]+) µs \| (?P<predicted>[\d.]+) µs \| [^|]+ \| [^|]+ \|$')
# Rows the bench prints indented under the row before them (model/rows.py resolves them against it)
_INDENTED = re.compile(r'^(same, |fused clean cost )')


def calibration_rows(text: str):
    """[(bench row name, measured us, predicted us)] of the calibration table in PERF.md's text; names of variant
    rows get back the indentation the bench prints them with."""
    start = text.find('## Time model: calibration')
    if start < 0:
        raise ValueError('model_vs_perf: docs/PERF.md has no "## Time model: calibration" section')
    section = text[start:]
    end = section.find('**Projection**')
    section = section[:end] if end > 0 else section
    out = []
    for line in section.splitlines():
        m = _ROW.match(line.strip())
        if m:
            name = m.group('name')
            out.append(('  ' + name if _INDENTED.match(name) else name, float(m.group('measured')),
                        float(m.group('predicted'))))
    if not out:
        raise ValueError('model_vs_perf: no "| case | measured | predicted | error | binding |" rows found')
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--calibration', default='H200', help='the GPU the table was measured on (model/gpus.py)')
    p.add_argument('--rows', default=None, help='only rows whose name matches this regex')
    p.add_argument('--jobs', type=int, default=2)
    p.add_argument('--markdown', action='store_true', help='print the table in docs/PERF.md\'s format')
    p.add_argument('--projection', action='store_true', help='predict the rows on the SM120 cards instead')
    p.add_argument('--perf', default=PERF, help='the markdown file to read (default: docs/PERF.md)')
    p.add_argument('--max-block-m', type=int, default=128, choices=(16, 32, 64, 128),
                   help='plan the GEMM rows with M tiles of at most this many rows (another tile, the same cubins)')
    args = p.parse_args(argv)

    from deep_gemm.bench.model import run
    with open(args.perf) as f:
        table = calibration_rows(f.read())
    if args.rows:
        table = [r for r in table if re.search(args.rows, r[0])]
    if args.projection:
        from deep_gemm.bench.model import markdown
        cards = run.sm120_cards(max_block_m=args.max_block_m)
        results = run.project([(name, None) for name, _, _ in table], cards, jobs=args.jobs)
        print('| case | ' + ' | '.join(c.label for c in cards) + ' |\n|---|' + '---|' * len(cards))
        for (name, _, _), res in zip(table, results):
            print(f'| {name.strip()} | ' + ' | '.join(markdown._cell(res.get(c.label)) for c in cards) + ' |')
        return 0
    card = run.calibration_card(args.calibration, max_block_m=args.max_block_m)
    results = run.project([(name, None) for name, _, _ in table], [card], jobs=args.jobs)
    within = total = 0
    lines = []
    for (name, measured, before), res in zip(table, results):
        r = res.get(card.label)
        if not r or 'error' in r:
            lines.append((name, measured, before, None, (r or {}).get('error', 'no prediction')))
            continue
        now = r['seconds'] * 1e6
        err = now / measured - 1
        total += 1
        within += abs(err) <= 0.2
        lines.append((name, measured, before, now, r['binding']))
    if args.markdown:
        print('| case | measured | predicted | error | binding term |\n|---|---|---|---|---|')
        for name, measured, _, now, binding in lines:
            if now is not None:
                print(f'| {name.strip()} | {measured:.1f} µs | {now:.1f} µs | {(now / measured - 1) * 100:+.0f}% | '
                      f'{binding} |')
    else:
        print(f'{"row":60s} {"measured":>9s} {"before":>9s} {"now":>9s} {"error":>6s}  binding')
        for name, measured, before, now, binding in lines:
            if now is None:
                print(f'{name[:60]:60s} {measured:9.1f} {before:9.1f} {"-":>9s} {"":6s}  {binding}')
            else:
                print(f'{name[:60]:60s} {measured:9.1f} {before:9.1f} {now:9.1f} {(now / measured - 1) * 100:+5.0f}%  '
                      f'{binding}')
    print(f'within +-20%: {within} of {total} rows predicted ({len(lines)} in the table)', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
