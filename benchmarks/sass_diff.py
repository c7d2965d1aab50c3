"""Does a device-code change alter the instruction stream? For refactors made without a GPU.

    python benchmarks/sass_diff.py --family hc_prenorm_gemm --save before.json      # on the tree before the change
    python benchmarks/sass_diff.py --family hc_prenorm_gemm --compare before.json   # on the tree after it

compiles every configuration of the given families (default: all) for sm_120a and sm_121a and for sm_90a in SM120 mode
(what the GPU tests run), disassembles each cubin (`cuobjdump -sass`) and records a hash of its instructions (addresses,
opcodes, operands and control words: everything the GPU executes, nothing from names or paths). `--compare` prints,
per configuration, `same`, `operands` (the same opcodes in the same order, other operands: usually another register
allocation; read the diff) or `CHANGED` with the instruction counts before and after, and exits 1 unless all are
`same` (or a configuration appeared or went away). A refactor whose every configuration reads `same` runs exactly as
the code the last GPU run tested; one that changes code still needs that GPU run.
"""
import argparse
import hashlib
import json
import re
import subprocess
import sys

TARGETS = (('sm_120a', False), ('sm_121a', False), ('sm_90a', True))
_INSTR = re.compile(r'/\*[0-9a-f]{4,}\*/')            # an instruction line: /*0a40*/ OPCODE operands ; /* 0x... */
_CONTROL = re.compile(r'\s*/\* 0x[0-9a-f]{16} \*/\s*')   # the line after it: the rest of its 128-bit word


def sass_fingerprint(text: str):
    """(sha1 of the instruction lines, sha1 of the opcode sequence alone, the instruction count) of `cuobjdump -sass`
    output: only lines with an instruction address and the control-word lines that follow them, so file names and
    the cubin's path do not count. Equal opcode sequences with different full hashes mean the same instructions in
    the same order with other operands (most often another register allocation)."""
    lines = [ln.strip() for ln in text.splitlines() if _INSTR.search(ln) or _CONTROL.fullmatch(ln)]
    ops = []
    for ln in lines:
        m = _INSTR.search(ln)
        if m:
            words = ln[m.end():].split()
            ops.append(words[1] if words and words[0].startswith('@') and len(words) > 1 else (words or [''])[0])
    return (hashlib.sha1('\n'.join(lines).encode()).hexdigest(), hashlib.sha1(' '.join(ops).encode()).hexdigest(),
            len(ops))


def fingerprints(families=None, targets=TARGETS):
    from deep_gemm import jit
    tool = jit.find_cuobjdump()
    if tool is None:
        raise SystemExit('sass_diff: cuobjdump not found (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm)')
    out = {}
    for target, mode in targets:
        for c in jit.list_configs(target, None, mode):
            if families and c['family'] not in families:
                continue
            report = jit.compile_config(target, c['index'], mode)
            sass = subprocess.run([tool, '-sass', report['cubin_path']], capture_output=True, text=True, check=True)
            digest, ops, count = sass_fingerprint(sass.stdout)
            key = f'{target}{" (SM120 mode)" if mode else ""} {c["family"]} {c["description"]}'
            out[key] = dict(family=c['family'], sha1=digest, opcodes=ops, instructions=count)
    return out


def compare(before: dict, after: dict):
    """[(key, 'same' | 'operands' | 'CHANGED' | 'new' | 'gone', detail)] over the union of both runs' configurations
    ('operands': the same opcodes in the same order, some operands differ)."""
    rows = []
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        if b is None:
            rows.append((key, 'new', f'{a["instructions"]} instructions'))
        elif a is None:
            rows.append((key, 'gone', f'{b["instructions"]} instructions'))
        elif a['sha1'] == b['sha1']:
            rows.append((key, 'same', f'{a["instructions"]} instructions'))
        elif a['opcodes'] == b['opcodes']:
            rows.append((key, 'operands', f'{a["instructions"]} instructions, the same opcodes in the same order'))
        else:
            rows.append((key, 'CHANGED', f'{b["instructions"]} -> {a["instructions"]} instructions'))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--family', action='append', help='only this kernel family (repeatable; default: all)')
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument('--save', help='write this tree\'s fingerprints to this JSON file')
    g.add_argument('--compare', help='compare this tree with the fingerprints in this JSON file')
    args = p.parse_args(argv)
    now = fingerprints(set(args.family) if args.family else None)
    if args.save:
        with open(args.save, 'w') as f:
            json.dump(now, f, indent=1, sort_keys=True)
        print(f'sass_diff: {len(now)} configurations fingerprinted into {args.save}')
        return 0
    with open(args.compare) as f:
        before = json.load(f)
    if args.family:
        before = {k: v for k, v in before.items() if v['family'] in args.family}
    rows = compare(before, now)
    for key, status, detail in rows:
        print(f'{status:8s} {key}  ({detail})')
    bad = [r for r in rows if r[1] != 'same']
    operands = sum(1 for r in rows if r[1] == 'operands')
    print(f'sass_diff: {len(rows) - len(bad)} of {len(rows)} configurations have the same SASS, {operands} the same '
          f'opcodes with other operands, {len(bad) - operands} changed, new or gone')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
