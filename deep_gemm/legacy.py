"""`deep_gemm.legacy`: upstream's deprecated Triton kernels (m-grouped BF16 GEMMs with `_tl` suffixes, fused
k-grouped BF16). Not provided by this build: every name raises a clear error when looked up."""


def __getattr__(name):
    if name.startswith('__'):
        raise AttributeError(name)
    raise AttributeError(f'deep_gemm.legacy.{name}: upstream\'s deprecated Triton kernels (deep_gemm.legacy) are not '
                         f'provided by this build; use the CUDA GEMMs instead (e.g. deep_gemm.m_grouped_bf16_gemm_nt_'
                         f'contiguous, deep_gemm.k_grouped_bf16_gemm_tn_contiguous)')
