"""Where a dense FP8 GEMM's time goes, from one bench run: per M tile size, a least-squares fit of

    measured time = a x (k blocks of the busiest CTA) + b x (units of the busiest CTA) + c

over the `fp8_gemm_nt` rows of `python -m deep_gemm.bench --only gemm --json rows.json` (any GPU; no GPU needed to
fit). The work decomposition (tile, K splits, persistent grid) is the host plan's (`_C._gemm_plan`) for the GPU that
ran the rows, so `a` is the main loop's time per k block, `b` what each unit (output tile x K split) costs outside
it (epilogue, unit switch) and `c` what a launch costs whatever its size. `a` is printed beside two floors of a k
block measured in the same run: its MMA work at the FP8 mma.sync ceiling, and the grid's A and B tiles of one k
block (all CTAs at once) at the read ceiling.

    python benchmarks/gemm_time_fit.py rows.json [--target sm_90a] [--no-sm120-mode] [--sms 132]
"""
import argparse
import json
import math
import re
import sys

_SHAPE = (re.compile(r'^fp8_gemm_nt .*M=(\d+) (\d+)x(\d+)$'), re.compile(r'^fp8_gemm_nt published (\d+)x(\d+)x(\d+)$'))


def busiest_cta(plan, m, n, k, block_k=128):
    """(k blocks, units) of the CTA with the most k blocks, under the model's decomposition of the plan."""
    from deep_gemm.bench.model.gemm_rows import cta_work
    return max(cta_work(m, n, k, plan, block_k=block_k))


def fit(rows):
    """Least squares of [kb, units, 1] -> seconds; returns (a, b, c)."""
    import numpy as np
    x = np.array([[kb, u, 1.0] for kb, u, _ in rows])
    y = np.array([t for _, _, t in rows])
    return tuple(float(v) for v in np.linalg.lstsq(x, y, rcond=None)[0])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('rows', help='a `python -m deep_gemm.bench --json` file with measured fp8_gemm_nt rows')
    ap.add_argument('--target', default='sm_90a', help='the compile target the rows ran as (default sm_90a)')
    ap.add_argument('--no-sm120-mode', dest='sm120_mode', action='store_false',
                    help='the rows ran without DG_SM120_MODE (default: they ran in SM120 mode)')
    ap.add_argument('--sms', type=int, default=132, help='SM count of the GPU that ran the rows')
    args = ap.parse_args(argv)
    import deep_gemm
    if deep_gemm._C is None:
        print(f'gemm_time_fit: {deep_gemm._extension_problem()}')
        return 1
    with open(args.rows) as f:
        data = json.load(f)
    groups = {}
    for r in data['rows']:
        m = next((p.match(r['name']) for p in _SHAPE if p.match(r['name'])), None)
        if not m or not r.get('measured_s'):
            continue
        mm, n, k = (int(v) for v in m.groups())
        plan = deep_gemm._C._gemm_plan(args.target, 0, mm, n, k, sm120_mode=args.sm120_mode, num_sms=args.sms)
        kb, units = busiest_cta(plan, mm, n, k)
        groups.setdefault(plan['block_m'], []).append((r['name'], kb, units, r['measured_s'] * 1e6))
    fp8 = (data.get('ceilings') or {}).get('fp8_mma')
    print(f'{args.rows}: {data.get("device")}; fit per M tile: time = a x k blocks + b x units + c (busiest CTA)\n')
    for bm, rows in sorted(groups.items()):
        if len(rows) < 4:
            print(f'block_m {bm}: {len(rows)} rows, too few to fit 3 terms\n')
            continue
        a, b, c = fit([(kb, u, t) for _, kb, u, t in rows])
        ceil = data.get('ceilings') or {}
        mma = 2.0 * bm * 128 * 128 / (fp8 / args.sms) * 1e6 if fp8 else None
        dram = (bm + 128) * 128 * args.sms / ceil['read_bw'] * 1e6 if ceil.get('read_bw') else None
        floors = [f'{what} {v:.3f} us = {v / a * 100:.0f}% of a' for what, v in (('MMA', mma), ('DRAM', dram)) if v]
        print(f'block_m {bm} ({len(rows)} rows): a = {a:.3f} us per k block' +
              (f' (floors: {", ".join(floors)})' if floors else '') +
              f', b = {b:.2f} us per unit, c = {c:.1f} us per launch')
        for name, kb, u, t in rows:
            f_ = a * kb + b * u + c
            print(f'    {name:<48} {t:9.1f} us  fit {f_:9.1f} us ({(f_ - t) / t * 100:+5.1f}%)  k blocks {kb:5d}'
                  f'  units {u:4d}')
        print()
    return 0


if __name__ == '__main__':
    sys.exit(main())
