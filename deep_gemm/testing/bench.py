"""GPU timing helpers: CUDA events (`bench`) and the torch profiler (`bench_kineto`)."""
import contextlib
import os
import statistics
import sys

import torch

__all__ = ['bench', 'bench_kineto']

_L2_FLUSH_BYTES = 256 * 1024 * 1024  # larger than the L2 of every GPU we target


def _check_fn(fn, name, num_tests):
    if not callable(fn):
        raise TypeError(f'{name}: `fn` must be callable, got {type(fn).__name__}')
    if not isinstance(num_tests, int) or isinstance(num_tests, bool) or num_tests <= 0:
        raise ValueError(f'{name}: `num_tests` must be a positive int, got {num_tests!r}')


def _l2_flush_buffer():
    return torch.zeros(_L2_FLUSH_BYTES // 4, dtype=torch.int32, device='cuda')


def _flush_l2(cache):
    """Evict L2 by *reading* a buffer larger than it. NOTES: a flush that writes (e.g. `zero_()`) leaves L2 full of
    dirty lines, whose write-back then lands inside the next timed kernel (on the H100 that is up to 50 MB, ~17 us
    of DRAM time charged to the kernel); a read leaves only clean lines, and any earlier dirty lines are written
    back during the flush itself."""
    cache.sum(dtype=torch.int64)


def bench(fn, num_warmups: int = 5, num_tests: int = 10, high_precision: bool = False) -> float:
    """Mean seconds per call of `fn`, timed with CUDA events around each call.

    L2 is flushed (a 256 MB buffer is read) before every timed call, outside the timed region.
    `high_precision=True` returns the median of the per-call times instead of the mean.
    """
    _check_fn(fn, 'bench', num_tests)
    if not isinstance(num_warmups, int) or num_warmups < 0:
        raise ValueError(f'bench: `num_warmups` must be a non-negative int, got {num_warmups!r}')
    for _ in range(num_warmups):
        fn()
    cache = _l2_flush_buffer()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(num_tests)]
    for start, end in events:
        _flush_l2(cache)
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    times = [start.elapsed_time(end) / 1e3 for start, end in events]
    return statistics.median(times) if high_precision else sum(times) / len(times)


@contextlib.contextmanager
def _suppress_output(enabled):
    """Silence stdout/stderr at the file-descriptor level (kineto prints from C++)."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [devnull]:
            os.close(fd)


def _kernel_events(prof):
    """(name, seconds) of every GPU kernel the profiler recorded."""
    out = []
    for evt in prof.events():
        if evt.device_type != torch.autograd.DeviceType.CUDA:
            continue
        out.append((evt.name, evt.time_range.elapsed_us() / 1e6))
    return out


def bench_kineto(fn, kernel_names, num_tests: int = 30, suppress_kineto_output: bool = False,
                 trace_path: str = None, flush_l2: bool = True, with_multiple_kernels: bool = False):
    """Average GPU seconds per call of the kernels whose names contain each of `kernel_names`.

    `fn` runs once unprofiled (warm-up / JIT), then `num_tests` times under the profiler, with a 256 MB buffer
    read before each call when `flush_l2`. The flush's kernels are learned by profiling one flush alone and
    are then excluded by exact name (so a kernel of `fn` with exactly that name is excluded too).
    Without `with_multiple_kernels`, each name must match exactly one kernel per call (`num_tests` in total);
    with it, all matching kernels' times are summed. Returns a float for a str, a tuple for a tuple/list.
    """
    _check_fn(fn, 'bench_kineto', num_tests)
    is_single = isinstance(kernel_names, str)
    names = (kernel_names,) if is_single else tuple(kernel_names)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise TypeError(f'bench_kineto: `kernel_names` must be a non-empty str or tuple of them, got {kernel_names!r}')
    fn()
    cache = _l2_flush_buffer() if flush_l2 else None
    torch.cuda.synchronize()
    with _suppress_output(suppress_kineto_output):
        flush_names = set()
        if cache is not None:
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as flush_prof:
                _flush_l2(cache)
                torch.cuda.synchronize()
            flush_names = {k for k, _ in _kernel_events(flush_prof)}
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(num_tests):
                if cache is not None:
                    _flush_l2(cache)
                fn()
            torch.cuda.synchronize()
    if trace_path is not None:
        prof.export_chrome_trace(trace_path)
    kernels = [(k, t) for k, t in _kernel_events(prof) if k not in flush_names]
    results = []
    for name in names:
        matched = [t for k, t in kernels if name in k]
        if not matched or (not with_multiple_kernels and len(matched) != num_tests):
            seen = sorted({k for k, _ in kernels})
            raise RuntimeError(f'bench_kineto: expected {"at least one" if with_multiple_kernels else "exactly one"} '
                               f'kernel containing {name!r} per call ({num_tests} calls), found {len(matched)}; '
                               f'kernels seen: {seen}')
        results.append(sum(matched) / num_tests)
    return results[0] if is_single else tuple(results)
