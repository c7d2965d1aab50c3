"""Predictions for bench rows on several GPUs (the bench's model columns and `--model-only`)."""
import concurrent.futures
import os
from dataclasses import dataclass

from . import gpus, rows
from .predict import predict


@dataclass
class Card:
    """A column of predictions: a label, the table's GPU and the target its kernels are compiled/planned for."""
    label: str
    target: rows.Target


def sm120_cards(names=gpus.SM120_CARDS, max_block_m=128):
    return [Card(n, rows.Target(gpus.gpu(n).target, False, gpus.gpu(n), max_block_m=max_block_m)) for n in names]


def calibration_card(name='H100', sm120_mode=True, max_block_m=128):
    """The H100 / H200 as the bench runs it without a GPU at hand: sm_90a in SM120 mode."""
    g = gpus.gpu(name)
    return Card(f'{name} ({g.target}{", SM120 mode" if sm120_mode else ""})',
                rows.Target(g.target, sm120_mode, g, max_block_m=max_block_m))


def this_gpu_card():
    """The GPU at hand (table entry by name, the live SM count, the target the JIT compiles for, DG_SM120_MODE),
    or None when it is not in the table."""
    import torch
    import deep_gemm
    name = torch.cuda.get_device_name()
    g = gpus.gpu_for_device(name, deep_gemm.get_num_sms())
    if g is None:
        return None
    target = deep_gemm._C.get_compile_target(torch.cuda.current_device())
    mode = os.environ.get('DG_SM120_MODE', '') not in ('', '0')
    return Card(f'this GPU ({g.name}, {target})', rows.Target(target, mode, g))


def _build(name, target, env, row):
    fam, m = rows.match(name)
    kwargs = {k: v for k, v in m.groupdict().items() if v is not None}
    t = rows.Target(target.target, target.sm120_mode, target.gpu, dict(target.env, **env), target.max_block_m)
    return fam.build(t, row=row, **kwargs)


def predict_row(name, card: Card, parent=None, row=None):
    """{'seconds', 'binding', 'terms', ...} of one bench row on one card; None when the model does not cover the
    row (or the row does not apply to that card); {'error': text} when it failed."""
    how = rows.resolve(name, parent)
    if how is None:
        return None
    try:
        if how[0] == 'difference':
            a = predict(_build(how[1], card.target, {}, None), card.target.gpu)
            b = predict(_build(how[2], card.target, {}, None), card.target.gpu)
            return dict(seconds=a.seconds - b.seconds, binding=a.binding, terms={}, description='difference of '
                        'two predictions', derived=True)
        _, canonical, env = how
        work = _build(canonical, card.target, env, row if canonical == name else None)
        if work is None:            # the family has no prediction for this row on this card
            return None
        p = predict(work, card.target.gpu)
        d = p.as_dict()
        d.update(description=work.description, kernel=work.kernel.name, registers=work.kernel.registers,
                 smem=work.kernel.static_smem + work.dynamic_smem, grid=len(work.cta_stages),
                 bytes=work.bytes_read + work.bytes_written)
        return d
    except Exception as e:      # one row's failure must not hide the others
        return {'error': f'{type(e).__name__}: {e}'}


def project(named_rows, cards, jobs=2):
    """[(name, row or None)] x cards -> [{card label: result}] (the same order). Rows are predicted in parallel
    (compiles dominate); variant rows resolve against the last row whose name does not start with a space."""
    tasks = []
    parent = None
    for i, (name, row) in enumerate(named_rows):
        if not name.startswith(' '):
            parent = name
        for c in cards:
            tasks.append((i, c, name, parent, row))
    out = [dict() for _ in named_rows]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futs = {pool.submit(predict_row, name, c, par, row): (i, c) for i, c, name, par, row in tasks}
        for f in concurrent.futures.as_completed(futs):
            i, c = futs[f]
            out[i][c.label] = f.result()
    return out


def fmt(result, width=20) -> str:
    """'123.4 us DRAM' / 'n/a' / 'error' for a table cell."""
    if result is None:
        return f'{"-":>{width}}'
    if 'error' in result:
        return f'{"error":>{width}}'
    return f'{result["seconds"] * 1e6:9.1f} us {result["binding"]:<{width - 13}}'
