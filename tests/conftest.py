"""Shared pytest setup: GPU tests skip (with the reason) where there is no GPU; GPU tests run in SM120 mode."""
import os

import pytest

# GPU tests plan every kernel for sm_120 (101376 B of shared memory, no clusters) unless told otherwise, so the
# H100 we test on runs the exact SM120 configurations (docs/HARDWARE.md §4)
os.environ.setdefault('DG_SM120_MODE', '1')
# Tests compile hundreds of kernels: no "compiling ..., first use" line for each (tests/test_first_use_message.py
# checks that message with the variable removed)
os.environ.setdefault('DG_JIT_QUIET', '1')


def _gpu_reason():
    try:
        import torch
    except Exception as e:  # pragma: no cover
        return f'torch is not importable: {e}'
    if not torch.cuda.is_available():
        return 'no CUDA GPU on this machine; GPU tests run with `pytest -m gpu` on a machine that has one'
    import deep_gemm
    if deep_gemm._C is None:
        return deep_gemm._extension_problem()
    return None


def pytest_collection_modifyitems(config, items):
    reason = _gpu_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if 'gpu' in item.keywords:
            item.add_marker(skip)
