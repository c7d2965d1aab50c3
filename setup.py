"""Build `deep_gemm._C`: one small C++ translation unit (pybind11 + torch), no device code.

Kernels are compiled at run time by the JIT (csrc/jit/), so this build needs only a host compiler, torch and
the CUDA headers. It copes with partial CUDA installs (docs/HARDWARE.md §5): it finds `CUDA_HOME` when torch
would guess wrong, and adds the header directories that pip-installed CUDA packages use.
"""
import glob
import os
import shutil
import site
import sys

from setuptools import find_packages, setup


def _find_cuda_home():
    for env in ('CUDA_HOME', 'CUDA_PATH'):
        if os.environ.get(env) and os.path.exists(os.path.join(os.environ[env], 'bin', 'nvcc')):
            return os.environ[env]
    # `/usr/local/bin/nvcc` may be a wrapper: prefer a real toolkit directory
    for candidate in ('/usr/local/cuda', *sorted(glob.glob('/usr/local/cuda-*'), reverse=True)):
        if os.path.exists(os.path.join(candidate, 'bin', 'nvcc')):
            return candidate
    nvcc = shutil.which('nvcc')
    return os.path.dirname(os.path.dirname(os.path.realpath(nvcc))) if nvcc else None


_cuda_home = _find_cuda_home()
if _cuda_home:
    # Must be set before torch.utils.cpp_extension computes its own guess at import
    os.environ['CUDA_HOME'] = _cuda_home

from torch.utils.cpp_extension import BuildExtension, CUDAExtension  # noqa: E402


def _pip_cuda_include_dirs():
    """Header directories of pip-installed CUDA packages (cuBLAS headers torch includes, cuda.h)."""
    dirs = []
    roots = list(site.getsitepackages()) + [site.getusersitepackages()] + sys.path
    for root in dict.fromkeys(r for r in roots if r and os.path.isdir(r)):
        for pattern in ('nvidia/cu13/include', 'nvidia/cu12/include', 'nvidia/*/include'):
            dirs += [d for d in glob.glob(os.path.join(root, pattern)) if os.path.isdir(d)]
    return list(dict.fromkeys(dirs))


include_dirs = [os.path.join(os.path.dirname(os.path.abspath(__file__)), 'csrc')]
if _cuda_home:
    include_dirs.append(os.path.join(_cuda_home, 'include'))
include_dirs += _pip_cuda_include_dirs()

cxx_flags = ['-std=c++20', '-O3', '-fvisibility=hidden', '-Wno-deprecated-declarations', '-Wno-unused-function']

setup(
    name='deep_gemm',
    version='2.6.1+sm120.1',
    description='DeepGEMM-compatible kernels for SM120 (RTX 50, RTX PRO 6000, DGX Spark), on mma.sync',
    packages=find_packages(include=['deep_gemm', 'deep_gemm.*']),
    package_data={'deep_gemm': ['include/deep_gemm/**/*.cuh', 'include/deep_gemm/*.cuh']},
    include_package_data=True,
    ext_modules=[CUDAExtension(
        name='deep_gemm._C',
        sources=['csrc/python_api.cpp'],
        include_dirs=include_dirs,
        extra_compile_args={'cxx': cxx_flags},
        libraries=['dl'],
    )],
    cmdclass={'build_ext': BuildExtension},
    python_requires='>=3.9',
)
