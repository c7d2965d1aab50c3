"""The SASS instructions where a kernel's warps wait, from ncu's source page (warp-stall sampling per instruction).

    ncu --set full --import-source no -k regex:KERNEL --launch-count 1 --page source --print-source sass --csv \\
        python3 benchmarks/ncu_gemm.py ... > source.csv
    python3 benchmarks/ncu_source_top.py source.csv [--top 40]

Prints the instructions with the most stall samples (all samples, and not-issued ones), each with its address and
SASS text, plus the share of all samples, so a reader sees which part of the kernel (main loop, split-K sum,
epilogue, barrier) the time goes to. Only ncu's CSV is read; nothing runs on the GPU here.

Status (2026-12-03): written for the split-K closer question of docs/PERF.md ("The per-launch cost is a slow last
CTA") and tested on a hand-written CSV in ncu's documented column names (tests/test_ncu_source_top_cpu.py); the
session's device time ran out before it read a real ncu export, so check the column names on first use.
"""
import argparse
import csv
import io
import sys


def _number(text):
    try:
        return float(str(text).replace(',', ''))
    except ValueError:
        return 0.0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('csv_file')
    p.add_argument('--top', type=int, default=40)
    args = p.parse_args(argv)
    text = open(args.csv_file, errors='replace').read()
    # ncu prints its own lines (==PROF==, the program's output) before the table: start at the header row
    start = text.find('"Address"')
    if start < 0:
        print(f'{args.csv_file}: no "Address" column (not an ncu --page source --csv output)')
        return 1
    rows = list(csv.reader(io.StringIO(text[start:])))
    header, body = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
    col = {name: i for i, name in enumerate(header)}
    all_col = next((i for n, i in col.items() if n.startswith('Warp Stall Sampling (All')), None)
    not_col = next((i for n, i in col.items() if n.startswith('Warp Stall Sampling (Not')), None)
    src_col = col.get('Source')
    if all_col is None or src_col is None:
        print('columns:', header)
        return 1
    total = sum(_number(r[all_col]) for r in body) or 1.0
    print(f'{len(body)} SASS instructions, {total:.0f} stall samples')
    ranked = sorted(body, key=lambda r: -_number(r[all_col]))[:args.top]
    for r in ranked:
        s_all = _number(r[all_col])
        s_not = _number(r[not_col]) if not_col is not None else 0.0
        print(f'{r[col["Address"]]:>8} {s_all / total * 100:5.1f}% (not issued {s_not / total * 100:5.1f}%)  '
              f'{r[src_col].strip()[:90]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
