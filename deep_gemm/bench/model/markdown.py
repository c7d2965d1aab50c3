"""Markdown tables for docs/PERF.md from the rows `python -m deep_gemm.bench --json rows.json` wrote:

    python -m deep_gemm.bench.model.markdown rows.json

prints the calibration table (measured vs the model on the GPU that ran, per row, with the error and the binding
term) when the file has measurements, and the projection table (RTX 5090 / RTX PRO 6000 / GB10, each time with its
binding term), followed by one line per row whose SM120 projection is bound by neither DRAM nor the tensor pipe,
saying what limits it.
"""
import json
import sys


def _cell(p):
    if not p:
        return '—'
    if 'error' in p:
        return 'error'
    return f'{p["seconds"] * 1e6:.1f} µs ({p["binding"]})'


def _limit(name, label, p):
    """One line on what limits a row that is neither DRAM- nor tensor-bound."""
    d = p.get('detail') or {}
    loops = '; '.join(f'{group}: {desc.split(": ", 1)[-1].split(" (")[0]} x {it} per stage' for group, ls in
                      (d.get('loops') or {}).items() for desc, it in ls)
    per = d.get('per_stage_cycles') or {}
    what = {'latency(warp)': f'the warps\' own dependency chains with {p.get("warps_per_scheduler", 0):.2f} warps per '
                             f'scheduler (simulated {per.get("simulated", 0):.0f} cycles per stage vs tensor '
                             f'{per.get("tensor", 0):.0f} and issue {per.get("issue", 0):.0f})',
            'latency(memory)': 'too few stages in flight for the DRAM round trip (Little\'s law)'}.get(
        p['binding'], f'the {p["binding"]} throughput')
    return f'- {name}, {label}: {p["seconds"] * 1e6:.1f} µs, bound by {what}. Loops: {loops}'


def render(data) -> str:
    out = []
    cards = data.get('cards') or []
    sm120 = [c for c in cards if c in ('RTX 5090', 'RTX PRO 6000', 'GB10')]
    rows = data['rows']
    if not data.get('model_only') and cards:
        this = cards[0]
        out += [f'Calibration on {data.get("device")} ({this}): measured vs predicted', '',
                '| case | measured | predicted | error | binding term |', '|---|---|---|---|---|']
        for r in rows:
            p = (r.get('predictions') or {}).get(this)
            if not p or 'error' in p or not r.get('measured_s'):
                continue
            err = (p['seconds'] - r['measured_s']) / r['measured_s']
            out.append(f'| {r["name"].strip()} | {r["measured_s"] * 1e6:.1f} µs | {p["seconds"] * 1e6:.1f} µs | '
                       f'{err * 100:+.0f}% | {p["binding"]} |')
        out.append('')
    elif cards and cards[0] not in sm120:
        sm120 = [cards[0]] + sm120
    out += ['Projection (the SASS time model on the sm_120a / sm_121a cubins; time and binding term)', '',
            '| case | ' + ' | '.join(sm120) + ' |', '|---|' + '---|' * len(sm120)]
    limits = []
    for r in rows:
        preds = r.get('predictions') or {}
        if not any(preds.get(c) for c in sm120):
            continue
        out.append(f'| {r["name"].strip()} | ' + ' | '.join(_cell(preds.get(c)) for c in sm120) + ' |')
        for c in sm120:
            p = preds.get(c)
            if p and 'error' not in p and c in ('RTX 5090', 'RTX PRO 6000', 'GB10') and \
                    p['binding'] not in ('DRAM', 'tensor'):
                limits.append(_limit(r['name'].strip(), c, p))
    if limits:
        out += ['', 'Rows whose SM120 projection is bound by neither DRAM nor the tensor pipe:', ''] + limits
    return '\n'.join(out)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__)
        return 2
    with open(argv[0]) as f:
        print(render(json.load(f)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
