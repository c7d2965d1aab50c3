"""The warm launch path (csrc/jit/kernel_runtime.hpp: the per-device CUfunction launched with cuLaunchKernel, the
context-independent fallback) and the paged logits call's per-thread plan (PagedLogitsPlans + DgEnvWatch in
csrc/jit_kernels/impls/sm120_fp8_paged_mqa_logits.hpp): launches from a thread that never touched the device,
on a side stream, on a second GPU while the first is current, and DG_* variables flipped between warm calls (the
plan must follow them on the very next call)."""
import threading

import pytest
import torch

import deep_gemm
from deep_gemm.testing import calc_diff
from paged_mqa_logits_common import valid_mask
from test_paged_mqa_logits import check, make_case, run

gpu = pytest.mark.gpu


# ------------------------------------------------------------------------------------------------------ helpers
def _ragged_case(device, seed=0):
    """A strided logits buffer with ragged [ks, ke) rows and the expected result of _clean_logits_ragged."""
    g = torch.Generator(device=device).manual_seed(seed)
    rows, cols = 37, 500
    logits = torch.randn(rows, 1024, device=device, generator=g)[:, :cols]
    ks = torch.randint(-5, cols + 5, (rows,), device=device, dtype=torch.int32, generator=g)
    ke = ks + torch.randint(-3, cols + 3, (rows,), device=device, dtype=torch.int32, generator=g)
    col = torch.arange(cols, device=device)[None, :]
    lo = ks.clamp(0, cols)[:, None].long()
    hi = torch.maximum(ke.clamp(0, cols)[:, None].long(), lo)
    expected = torch.where((col >= lo) & (col < hi), logits, torch.full_like(logits, float('-inf')))
    return logits, ks, ke, expected


def _in_thread(fn):
    """Run `fn` in a new thread (its own CUDA runtime state, no context made current yet); re-raise its error."""
    result = {}

    def body():
        try:
            result['value'] = fn()
        except BaseException as e:  # noqa: BLE001 (re-raised in the caller)
            result['error'] = e

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if 'error' in result:
        raise result['error']
    return result.get('value')


# ------------------------------------------------------------------------------------------------------ GPU
@gpu
def test_launches_from_a_fresh_thread():
    # The first deep_gemm call of a new thread, on the default stream: whatever context the thread has current
    # (none yet, possibly), the kernels must run on the tensors' device and give the right answer
    c = make_case(5, 2, 64, 128, 64, 700, seed=21)
    logits, ks, ke, expected = _ragged_case('cuda', seed=1)
    torch.cuda.synchronize()

    def work():
        out = run(c)
        deep_gemm._C._clean_logits_ragged(logits, ks, ke)
        torch.cuda.synchronize()
        return out

    out = _in_thread(work)
    check(c, out)
    assert torch.equal(logits, expected)


@gpu
def test_launches_on_a_side_stream_in_a_thread():
    c = make_case(4, 1, 32, 64, 32, 500, seed=22)
    expected = run(c)
    torch.cuda.synchronize()

    def work():
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.default_stream())
        with torch.cuda.stream(s):
            outs = [run(c) for _ in range(3)]
        s.synchronize()
        return outs

    mask = valid_mask(c)
    for out in _in_thread(work):
        check(c, out)
        assert torch.equal(out[mask].view(torch.int32), expected[mask].view(torch.int32))


@gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason='needs two GPUs')
def test_second_gpu_while_the_first_is_current():
    # Alternate devices, each call with the other device current: the per-device CUfunction of each device
    torch.cuda.set_device(0)
    for dev in (1, 0, 1, 0):
        logits, ks, ke, expected = _ragged_case(f'cuda:{dev}', seed=dev)
        with torch.cuda.device(1 - dev):
            deep_gemm._C._clean_logits_ragged(logits, ks, ke)
        assert torch.equal(logits, expected)
    with torch.cuda.device(1):
        c = make_case(3, 2, 64, 128, 64, 400, seed=23)
        torch.cuda.synchronize()
    out = run(c)    # device 0 current, tensors (and metadata) on device 1
    assert out.device == torch.device('cuda', 1)
    with torch.cuda.device(1):
        check(c, out)


@gpu
def test_print_configs_follows_the_environment_between_warm_calls(monkeypatch, capfd):
    c = make_case(3, 1, 64, 128, 64, 300, seed=24)
    meta = deep_gemm.get_paged_mqa_logits_metadata(c['context_lens'], 64, deep_gemm.get_num_sms())
    monkeypatch.delenv('DG_PRINT_CONFIGS', raising=False)
    run(c, meta)
    run(c, meta)
    torch.cuda.synchronize()
    capfd.readouterr()
    for value in ('1', None, '1', '0', 'true', ''):
        if value is None:
            monkeypatch.delenv('DG_PRINT_CONFIGS', raising=False)
        else:
            monkeypatch.setenv('DG_PRINT_CONFIGS', value)
        out = run(c, meta)
        torch.cuda.synchronize()
        printed = capfd.readouterr().err
        on = value in ('1', 'true')
        assert ('H=64 D=128 block_kv=64' in printed) == on, (value, printed)
        check(c, out)


@gpu
def test_config_follows_the_environment_between_warm_calls(monkeypatch, capfd):
    # The same variable changed in place (not added or removed) between warm calls: the next call's config follows.
    # DG_SM120_MODE changes the stage count of the portable FP4 config (its q regions take 64 KB of sm_120's shared
    # memory); the expected descriptions come from the compile-only enumeration for this GPU's target
    import test_fp4_paged_mqa_logits as fp4
    major, minor = torch.cuda.get_device_capability()
    target = f'sm_{major}{minor}' + ('a' if major >= 9 else '')
    expected = {}
    for mode in (False, True):
        descs = [c['description'] for c in deep_gemm._C.list_kernel_configs(target, mode)
                 if c['family'] == 'paged_mqa_logits' and c['description'].startswith('FP4 H=64 D=128 block_kv=64 ')
                 and 'fp4_portable' in c['description']]
        assert len(descs) == 1, (target, mode, descs)
        expected[mode] = descs[0]
    c = fp4.make_fp4_case(3, 1, 64, 128, 64, 300, seed=25)
    meta = deep_gemm.get_paged_mqa_logits_metadata(c['context_lens'], 64, deep_gemm.get_num_sms())
    monkeypatch.setenv('DG_PRINT_CONFIGS', '1')
    monkeypatch.setenv('DG_SM120_FP4_MMA', 'portable')
    for mode in ('1', '0', '1', '0'):
        monkeypatch.setenv('DG_SM120_MODE', mode)
        capfd.readouterr()
        out = fp4.run(c, meta)
        torch.cuda.synchronize()
        printed = capfd.readouterr().err
        assert expected[mode == '1'] in printed, (mode, expected, printed)
        fp4.check(c, out)
    monkeypatch.setenv('DG_SM120_FP4_MMA', 'fast')
    for _ in range(2):      # an invalid value is never kept: every call reports it
        with pytest.raises(ValueError, match="DG_SM120_FP4_MMA must be 'portable' or 'native'; got 'fast'"):
            fp4.run(c, meta)


@gpu
def test_ragged_and_hc_follow_the_environment_between_warm_calls(monkeypatch, capfd):
    # The ragged and hc warm paths read `DG_*` knobs through the same generation check as the paged one: an invalid
    # DG_SM120_FP8_MMA fails every ragged call (and none of hc's), a valid one works again on the next call, and
    # DG_PRINT_CONFIGS switches hc's config line on and off call by call
    import test_hc_prenorm_gemm as hc
    import test_mqa_logits as ragged
    inp = ragged.make_inputs(40, 300, 64, 128, seed=26)
    ks = torch.zeros(40, dtype=torch.int32, device='cuda')
    ke = torch.arange(261, 301, dtype=torch.int32, device='cuda')
    a, b = hc.inputs(64, 24, 1024, seed=26)
    monkeypatch.delenv('DG_PRINT_CONFIGS', raising=False)
    for form in ('plain', None, 'bogus', 'bogus', 'plain'):
        if form is None:
            monkeypatch.delenv('DG_SM120_FP8_MMA', raising=False)
        else:
            monkeypatch.setenv('DG_SM120_FP8_MMA', form)
        if form == 'bogus':
            with pytest.raises(ValueError, match="DG_SM120_FP8_MMA must be 'plain' or 'block_scaled'; got 'bogus'"):
                ragged.call(inp, ks, ke)
        else:
            ragged.check_logits(ragged.call(inp, ks, ke), inp, ks, ke, clean=True)
        d, s = hc.run(a, b)     # hc reads no MMA-form knob
        diff = calc_diff(d.double(), hc.exact_reference(a, b, hc.default_rounding())[0])
        assert diff < hc.EXACT_TOL, (form, diff)
    monkeypatch.setenv('DG_SM120_FP8_MMA', 'plain')
    for value in ('1', '0', '1', None):
        if value is None:
            monkeypatch.delenv('DG_PRINT_CONFIGS', raising=False)
        else:
            monkeypatch.setenv('DG_PRINT_CONFIGS', value)
        capfd.readouterr()
        hc.run(a, b)
        printed = capfd.readouterr().err
        assert ('tf32_hc_prenorm_gemm M=64 N=24 K=1024' in printed) == (value == '1'), (value, printed)
