"""deep_gemm for SM120: a drop-in replacement for DeepSeek's DeepGEMM (2.6.1 API) whose kernels are built on
warp-level `mma.sync`, so they run on consumer/workstation Blackwell (sm_120, sm_121) and, for testing, on Hopper
(sm_90) in SM120 mode.

`import deep_gemm` never raises: without a GPU, a toolkit or even the compiled extension, every name is still
importable and the error comes at the first kernel call, naming the function, the GPU and what to do.
"""
import os as _os
import shutil as _shutil
import sys as _sys

__version__ = '2.6.1+sm120.1'

from . import utils  # noqa: E402
from . import testing  # noqa: E402
from .utils import *  # noqa: E402,F401,F403

from . import _env  # noqa: E402
_env.warn_unsupported()

try:
    from . import _C
    _C_IMPORT_ERROR = None
except Exception as _e:  # not built (ImportError), or built for another torch/CUDA (ImportError, OSError)
    _C = None
    _C_IMPORT_ERROR = _e


def _device_description():
    try:
        import torch
        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            return f'{torch.cuda.get_device_name()} (sm_{major}{minor})'
        return 'no CUDA device'
    except Exception:
        return 'an unknown device'


def _extension_problem():
    """Why deep_gemm._C is unavailable, and how to build it (None when it is loaded)."""
    if _C is not None:
        return None
    import importlib.machinery
    here = _os.path.dirname(_os.path.abspath(__file__))
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    built = [f for f in _os.listdir(here) if f.startswith('_C.') and f.endswith(suffixes)]
    how = ('`./develop.sh` in a clone of the repository (or `pip install --no-build-isolation .` from the clone), '
           'against the torch you run with')
    if built:
        return (f'the C++ extension deep_gemm._C could not be loaded ({_C_IMPORT_ERROR!r}) from {here}: it was '
                f'probably built against another torch or CUDA; rebuild it with {how}')
    # Not built. Python's own message here ("partially initialized module ... circular import") misleads
    if _os.path.exists(_os.path.join(here, '..', 'setup.py')):
        return (f'the extension is not built: there is no deep_gemm/_C*.so in {here}. Python imported deep_gemm '
                f'from this source tree (the current directory, or a path entry ahead of an installed copy): '
                f'build it in place with `./develop.sh` there, or run Python from another directory to use an '
                f'installed copy')
    return f'the extension is not built: there is no deep_gemm/_C*.so in {here}. Build it with {how}'


def _missing_extension(name):
    def fn(*args, **kwargs):
        raise RuntimeError(f'deep_gemm.{name}: {_extension_problem()}.')
    fn.__name__ = name
    return fn


def _not_on_this_build(name, what):
    def fn(*args, **kwargs):
        raise RuntimeError(
            f'deep_gemm.{name}: {what} is not implemented in deep_gemm {__version__} '
            f'(running on {_device_description()}). This build provides the indexer '
            f'(fp8_mqa_logits, fp8_paged_mqa_logits, get_paged_mqa_logits_metadata, ...) and tf32_hc_prenorm_gemm '
            f'on sm_120/sm_121 (and sm_90 for testing); install upstream DeepGEMM on Hopper/SM100 for this function.')
    fn.__name__ = name
    return fn


def _find_cuda_home():
    for env in ('CUDA_HOME', 'CUDA_PATH'):
        if _os.environ.get(env):
            return _os.environ[env]
    if _os.path.exists('/usr/local/cuda/bin/nvcc'):
        return '/usr/local/cuda'
    nvcc = _shutil.which('nvcc')
    return _os.path.dirname(_os.path.dirname(_os.path.realpath(nvcc))) if nvcc else ''


def _nvrtc_dirs():
    dirs = []
    for root in _sys.path:
        for sub in ('nvidia/cu13/lib', 'nvidia/cu12/lib', 'nvidia/cuda_nvrtc/lib', 'torch/lib'):
            d = _os.path.join(root or '.', sub)
            if _os.path.isdir(d):
                dirs.append(d)
    return list(dict.fromkeys(dirs))


# The names each kernel family brings; the C++ extension provides them when it is loaded
_RUNTIME_NAMES = ('set_num_sms', 'get_num_sms', 'set_tc_util', 'get_tc_util', 'set_pdl', 'get_pdl')
_INDEXER_NAMES = ('fp8_fp4_mqa_logits', 'fp8_mqa_logits', 'get_paged_mqa_logits_metadata',
                  'fp8_fp4_paged_mqa_logits', 'fp8_paged_mqa_logits')
_MHC_NAMES = ('tf32_hc_prenorm_gemm',)
_GEMM_NAMES = (
    'fp8_fp4_gemm_nt', 'fp8_fp4_gemm_nn', 'fp8_fp4_gemm_tn', 'fp8_fp4_gemm_tt',
    'fp8_gemm_nt', 'fp8_gemm_nn', 'fp8_gemm_tn', 'fp8_gemm_tt', 'fp8_gemm_nt_skip_head_mid',
    'm_grouped_fp8_fp4_gemm_nt_contiguous', 'm_grouped_fp8_fp4_gemm_nn_contiguous',
    'm_grouped_fp8_gemm_nt_contiguous', 'm_grouped_fp8_gemm_nn_contiguous',
    'm_grouped_fp8_fp4_gemm_nt_masked', 'm_grouped_fp8_gemm_nt_masked', 'fp8_m_grouped_gemm_nt_masked',
    'k_grouped_fp8_gemm_tn_contiguous', 'k_grouped_fp8_gemm_nt_contiguous',
    'bf16_gemm_nt', 'bf16_gemm_nn', 'bf16_gemm_tn', 'bf16_gemm_tt',
    'm_grouped_bf16_gemm_nt_contiguous', 'm_grouped_bf16_gemm_nn_contiguous', 'm_grouped_bf16_gemm_nt_masked',
    'bf16_m_grouped_gemm_nt_masked', 'k_grouped_bf16_gemm_tn_contiguous',
    'einsum', 'fp8_einsum', 'cublaslt_gemm_nt', 'cublaslt_gemm_nn', 'cublaslt_gemm_tn', 'cublaslt_gemm_tt',
)

if _C is not None:
    _C.init(_os.path.join(_os.path.dirname(_os.path.abspath(__file__)), 'include'), _find_cuda_home(), _nvrtc_dirs())
    for _name in _RUNTIME_NAMES + _INDEXER_NAMES + _MHC_NAMES + _GEMM_NAMES:
        globals()[_name] = getattr(_C, _name, None) or _not_on_this_build(_name, 'this kernel')
else:
    for _name in _RUNTIME_NAMES + _INDEXER_NAMES + _MHC_NAMES + _GEMM_NAMES:
        globals()[_name] = _missing_extension(_name)


_ignore_compile_dims = False
_block_size_multiple_of = 1


def set_ignore_compile_dims(new_value: bool = True):
    """Accepted for compatibility: our kernels always specialize on every shape constant."""
    global _ignore_compile_dims
    _ignore_compile_dims = bool(new_value)


def set_block_size_multiple_of(new_value: int):
    """Accepted for compatibility (upstream's GEMM tile-size constraint; no GEMM kernels here yet)."""
    global _block_size_multiple_of
    if not isinstance(new_value, int) or new_value <= 0:
        raise ValueError(f'set_block_size_multiple_of: `new_value` must be a positive int; got {new_value!r}')
    _block_size_multiple_of = new_value


from . import legacy  # noqa: E402,F401
from . import mega  # noqa: E402
from .mega import (SymmBuffer, get_symm_buffer_for_mega_moe, transform_weights_for_mega_moe,  # noqa: E402,F401
                   fp8_fp4_mega_moe, bf16_mega_moe)
