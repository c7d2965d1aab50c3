"""Test-selection helpers."""
import functools
import os

import torch

__all__ = ['get_arch_major', 'test_filter', 'ignore_env']


def _sm120_mode() -> bool:
    """`DG_SM120_MODE` as the C++ side reads it (csrc/utils/system.hpp `get_env_flag`)."""
    return os.environ.get('DG_SM120_MODE', '') not in ('', '0', 'false', 'False', 'off')


def get_arch_major() -> int:
    """Major compute capability of the current CUDA device; 12 in SM120 mode (`DG_SM120_MODE=1`), where the library
    plans every kernel for sm_120, so that test files choose the cases an SM120 card runs (needs no GPU then)."""
    if _sm120_mode():
        return 12
    return torch.cuda.get_device_capability()[0]


def _check_cond(fn, cond):
    if not callable(cond):
        raise TypeError(f'{fn}: `cond` must be callable, got {type(cond).__name__}')


def test_filter(cond):
    """Decorator: the wrapped function runs only if `cond()` is true at call time; otherwise it prints that it
    was skipped and returns None."""
    _check_cond('test_filter', cond)

    def decorator(f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            if not cond():
                print(f' > Skipped {f.__name__}')
                return None
            return f(*args, **kwargs)
        return wrapper
    return decorator


test_filter.__test__ = False  # keep pytest from collecting it when a test module imports it


def ignore_env(name: str, cond):
    """Decorator: when `cond()` is true, run the wrapped function with env var `name` removed, then restore it."""
    if not isinstance(name, str) or not name:
        raise TypeError(f'ignore_env: `name` must be a non-empty str, got {name!r}')
    _check_cond('ignore_env', cond)

    def decorator(f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            if not cond():
                return f(*args, **kwargs)
            saved = os.environ.pop(name, None)
            try:
                return f(*args, **kwargs)
            finally:
                if saved is not None:
                    os.environ[name] = saved
        return wrapper
    return decorator
