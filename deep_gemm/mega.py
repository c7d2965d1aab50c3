"""Mega MoE: SM100-only upstream (TMEM, clusters, NVSHMEM); not available on SM120. Importable, raises when used."""


def _sm100_only(name):
    def fn(*args, **kwargs):
        raise RuntimeError(f'deep_gemm.{name}: Mega MoE needs SM100 (tcgen05/TMEM and clusters), which SM120, '
                           f'Ada and Hopper do not have; use upstream DeepGEMM on B200/GB200 for it.')
    fn.__name__ = name
    return fn


class SymmBuffer:
    def __init__(self, *args, **kwargs):
        _sm100_only('SymmBuffer')()


get_symm_buffer_for_mega_moe = _sm100_only('get_symm_buffer_for_mega_moe')
transform_weights_for_mega_moe = _sm100_only('transform_weights_for_mega_moe')
fp8_fp4_mega_moe = _sm100_only('fp8_fp4_mega_moe')
bf16_mega_moe = _sm100_only('bf16_mega_moe')
