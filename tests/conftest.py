"""Shared pytest setup: GPU tests skip (with the reason) where there is no GPU; GPU tests run in SM120 mode."""
import os

import pytest

# GPU tests plan every kernel for sm_120 (101376 B of shared memory, no clusters) unless told otherwise, so the
# H100 we test on runs the exact SM120 configurations (SM120.md §4)
os.environ.setdefault('DG_SM120_MODE', '1')


def _gpu_reason():
    try:
        import torch
    except Exception as e:  # pragma: no cover
        return f'torch is not importable: {e}'
    if not torch.cuda.is_available():
        return 'no CUDA GPU on this machine (GPU tests run on the lent GPU: benchmarks/device_check.sh)'
    import deep_gemm
    if deep_gemm._C is None:
        return f'deep_gemm._C is not built: {deep_gemm._C_IMPORT_ERROR!r}'
    return None


def pytest_collection_modifyitems(config, items):
    reason = _gpu_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if 'gpu' in item.keywords:
            item.add_marker(skip)
