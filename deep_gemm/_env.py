"""Upstream DeepGEMM environment variables that this build does not implement.

Setting one of them changes nothing here; rather than ignore them silently, `import deep_gemm` names every such
variable that is set in one warning. The list comes from upstream's documentation and test files (its sanitizer
script sets `DG_USE_NVIDIA_TOOLS` and `DG_USE_TEMP_CUBLASLT_WORKSPACE`). The variables this build honours are
listed in the README.
"""
import os
import warnings

# name -> what happens here instead
UNSUPPORTED = {
    'DG_JIT_CPP_STANDARD': 'kernels are always compiled as C++17',
    'DG_JIT_DUMP_ASM': 'use DG_JIT_DUMP_SASS=1 or DG_JIT_DUMP_PTX=1',
    'DG_JIT_USE_RUNTIME_API': 'kernels are always loaded and launched through the driver API',
    'DG_SKIP_CUDA_BUILD': 'the extension has no device code to skip; build it with ./develop.sh',
    'DG_USE_NVIDIA_TOOLS': 'deep_gemm.testing.bench_kineto profiles as usual under NVIDIA tools',
    'DG_USE_TEMP_CUBLASLT_WORKSPACE': "cublaslt_gemm_* run through torch's cuBLAS, which owns its workspace",
}


def unsupported_set(environ=None):
    """The unsupported variables set to something other than empty or 0 (upstream's 'off')."""
    environ = os.environ if environ is None else environ
    return [name for name in UNSUPPORTED if environ.get(name, '').strip() not in ('', '0')]


def warn_unsupported(environ=None):
    names = unsupported_set(environ)
    if names:
        warnings.warn('deep_gemm: these upstream DeepGEMM environment variables are set but not supported by this '
                      'build, so they have no effect: '
                      + '; '.join(f'{n} ({UNSUPPORTED[n]})' for n in names), RuntimeWarning, stacklevel=3)
    return names
