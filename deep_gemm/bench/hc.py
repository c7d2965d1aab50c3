"""`tf32_hc_prenorm_gemm` on DeepSeek-V4 shapes (K = 4 * hidden = 16384, N = 24).

Memory-bound: the floor is reading `a` (M * K * 2 bytes) and `b` (N * K * 4 bytes) once and writing `d` and
`sqr_sum` once; at M <= 64 the call is launch-bound and the time in microseconds is what matters.
"""
from .common import Row, gpu_time


def _reference(a, b):
    """torch's TF32 matmul (upstream's reference), small M padded to 128 zero rows so cuBLAS runs a TF32 GEMM."""
    import torch
    m, k = a.shape
    af = a.float()
    if m < 128:
        af = torch.cat([af, af.new_zeros(128 - m, k)])
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        d = (af @ b.T)[:m]
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    return d, a.float().square().sum(-1)


def run(ceilings) -> list:
    import torch
    import deep_gemm
    from ..testing import calc_diff

    rows = []
    k, n = 16384, 24
    torch.manual_seed(0)
    b = torch.randn(n, k, device='cuda') * 0.02
    for m, num_splits in ((1, None), (64, None), (1024, None), (4096, None), (16384, None), (64, 16), (4096, 16)):
        a = torch.randn(m, k, device='cuda').to(torch.bfloat16)
        shape_d = (m, n) if num_splits is None else (num_splits, m, n)
        shape_s = (m,) if num_splits is None else (num_splits, m)
        d = torch.full(shape_d, float('nan'), device='cuda')
        s = torch.full(shape_s, float('nan'), device='cuda')

        def fn():
            deep_gemm.tf32_hc_prenorm_gemm(a, b, d, s, num_splits)

        fn()
        ref_d, ref_s = _reference(a, b)
        out_d, out_s = (d, s) if num_splits is None else (d.sum(0), s.sum(0))
        diff_d, diff_s = calc_diff(out_d, ref_d), calc_diff(out_s, ref_s)
        ok = diff_d < 1e-8 and diff_s < 1e-8
        check = f'{"ok" if ok else "FAIL"} diff d {diff_d:.1e} sq {diff_s:.1e}'
        seconds = gpu_time(fn, 'hc_prenorm_gemm')
        name = f'hc_prenorm_gemm M={m} N={n} K={k}' + (f' splits={num_splits}' if num_splits else '')
        notes = []
        if m <= 64:
            notes.append(f'launch-bound: {seconds * 1e6:.1f} us')
        rows.append(Row(name=name, seconds=seconds,
                        bytes_read=a.numel() * a.element_size() + b.numel() * b.element_size(),
                        bytes_written=(d.numel() + s.numel()) * 4,
                        flops=2.0 * m * n * k, mma='tf32_mma', check=check, notes=notes))
        del a, d, s, ref_d, ref_s, out_d, out_s
    return rows
