"""CPU tests: every public name of upstream deep_gemm 2.6.1 exists, `import deep_gemm` never raises, and names
without a kernel on this build raise a clear error naming the function and the device."""
import os
import re
import subprocess
import sys

import pytest

import deep_gemm

# The project's design notes live outside the repository: point DG_DESIGN_DIR at their directory to check them
DESIGN_DIR = os.environ.get('DG_DESIGN_DIR', '')

RUNTIME = ['set_num_sms', 'get_num_sms', 'set_tc_util', 'get_tc_util', 'set_pdl', 'get_pdl',
           'set_ignore_compile_dims', 'set_block_size_multiple_of', 'set_mk_alignment_for_contiguous_layout',
           'get_mk_alignment_for_contiguous_layout', 'get_theoretical_mk_alignment_for_contiguous_layout',
           'get_m_alignment_for_contiguous_layout', 'get_k_alignment_for_contiguous_layout', '__version__']
INDEXER = ['fp8_fp4_mqa_logits', 'get_paged_mqa_logits_metadata', 'fp8_fp4_paged_mqa_logits', 'fp8_mqa_logits',
           'fp8_paged_mqa_logits']
MHC = ['tf32_hc_prenorm_gemm']
LAYOUT = ['transform_sf_into_required_layout', 'get_tma_aligned_size', 'get_mn_major_tma_aligned_tensor',
          'get_mn_major_tma_aligned_packed_ue8m0_tensor', 'get_k_grouped_mn_major_tma_aligned_packed_ue8m0_tensor']
GEMM = ['fp8_fp4_gemm_nt', 'fp8_fp4_gemm_nn', 'fp8_fp4_gemm_tn', 'fp8_fp4_gemm_tt', 'fp8_gemm_nt', 'fp8_gemm_nn',
        'fp8_gemm_tn', 'fp8_gemm_tt', 'm_grouped_fp8_fp4_gemm_nt_contiguous', 'm_grouped_fp8_fp4_gemm_nn_contiguous',
        'm_grouped_fp8_gemm_nt_contiguous', 'm_grouped_fp8_gemm_nn_contiguous', 'm_grouped_fp8_fp4_gemm_nt_masked',
        'm_grouped_fp8_gemm_nt_masked', 'fp8_m_grouped_gemm_nt_masked', 'k_grouped_fp8_gemm_tn_contiguous',
        'k_grouped_fp8_gemm_nt_contiguous', 'fp8_gemm_nt_skip_head_mid', 'fp8_einsum', 'bf16_gemm_nt',
        'bf16_gemm_nn', 'bf16_gemm_tn', 'bf16_gemm_tt', 'm_grouped_bf16_gemm_nt_contiguous',
        'm_grouped_bf16_gemm_nn_contiguous', 'm_grouped_bf16_gemm_nt_masked', 'bf16_m_grouped_gemm_nt_masked',
        'k_grouped_bf16_gemm_tn_contiguous', 'einsum']
CUBLASLT = ['cublaslt_gemm_nt', 'cublaslt_gemm_nn', 'cublaslt_gemm_tn', 'cublaslt_gemm_tt']
MEGA = ['SymmBuffer', 'get_symm_buffer_for_mega_moe', 'transform_weights_for_mega_moe', 'fp8_fp4_mega_moe',
        'bf16_mega_moe']
UTILS = ['ceil_div', 'align', 'get_tma_aligned_size', 'get_mn_major_tma_aligned_tensor',
         'get_mn_major_tma_aligned_packed_ue8m0_tensor', 'ceil_to_ue8m0', 'pack_ue8m0_to_int', 'unpack_ue8m0_from_int',
         'per_token_cast_to_fp8', 'per_channel_cast_to_fp8', 'per_block_cast_to_fp8', 'per_custom_dims_cast_to_fp8',
         'per_token_cast_to_fp4', 'transpose_packed_fp4', 'cast_back_from_fp4']
TESTING = ['bench', 'bench_kineto', 'calc_diff', 'count_bytes', 'assert_bitwise_equal', 'get_arch_major',
           'test_filter', 'ignore_env']


@pytest.mark.parametrize('name', RUNTIME + INDEXER + MHC + LAYOUT + GEMM + CUBLASLT + MEGA + UTILS)
def test_top_level_name_exists(name):
    assert hasattr(deep_gemm, name), f'deep_gemm.{name} is missing'


def test_api_surface_document_is_covered():
    """Every backticked name of API_SURFACE.md is importable (guards against the lists above drifting)."""
    if not DESIGN_DIR:
        pytest.skip('DG_DESIGN_DIR is not set (the directory holding API_SURFACE.md, a list of upstream names)')
    path = os.path.join(DESIGN_DIR, 'API_SURFACE.md')
    assert os.path.isfile(path), f'DG_DESIGN_DIR={DESIGN_DIR!r} holds no API_SURFACE.md'
    text = open(path).read()
    names = set(re.findall(r'`([A-Za-z_][A-Za-z0-9_]*)`', text))
    names -= {'deep_gemm', 'utils', 'testing', 'init_dist', 'uneven_all_gather', 'hasattr'}
    missing = sorted(n for n in names if not hasattr(deep_gemm, n) and not hasattr(deep_gemm.utils, n))
    assert not missing, f'names of API_SURFACE.md missing from deep_gemm: {missing}'
    assert hasattr(deep_gemm.utils.dist, 'init_dist') and hasattr(deep_gemm.utils.dist, 'uneven_all_gather')


@pytest.mark.parametrize('name', UTILS)
def test_utils_names(name):
    assert hasattr(deep_gemm.utils, name)


@pytest.mark.parametrize('name', TESTING)
def test_testing_names(name):
    assert hasattr(deep_gemm.testing, name)


def test_submodules():
    import deep_gemm.utils.math, deep_gemm.utils.layout, deep_gemm.utils.dist, deep_gemm.mega  # noqa: E401,F401


def test_version():
    assert isinstance(deep_gemm.__version__, str) and deep_gemm.__version__.startswith('2.6.1+sm120')


@pytest.mark.parametrize('name', GEMM + CUBLASLT)
def test_gemm_names_are_the_extensions(name):
    """The GEMM families are implemented: each public name is the extension's function (no Python stand-in)."""
    if deep_gemm._C is None:
        pytest.skip(f'deep_gemm._C is not built: {deep_gemm._C_IMPORT_ERROR!r}')
    assert getattr(deep_gemm, name) is getattr(deep_gemm._C, name)


@pytest.mark.parametrize('name', MEGA[1:])
def test_mega_names_raise_clearly(name):
    with pytest.raises(RuntimeError, match=rf'deep_gemm\.{name}: .*SM100'):
        getattr(deep_gemm, name)()


def test_alignment_knobs():
    assert deep_gemm.get_theoretical_mk_alignment_for_contiguous_layout() == 128
    old = deep_gemm.get_mk_alignment_for_contiguous_layout()
    deep_gemm.set_mk_alignment_for_contiguous_layout(64)
    try:
        assert deep_gemm.get_m_alignment_for_contiguous_layout() == 64
        assert deep_gemm.get_k_alignment_for_contiguous_layout() == 64
    finally:
        deep_gemm.set_mk_alignment_for_contiguous_layout(old)
    for bad in (0, 4097):
        with pytest.raises(ValueError, match=rf'new_value.*in \[1, 4096\].*got {bad}'):
            deep_gemm.set_mk_alignment_for_contiguous_layout(bad)
    with pytest.raises(ValueError, match='set_tc_util.*got 101'):
        deep_gemm.set_tc_util(101)
    deep_gemm.set_pdl(True)
    assert deep_gemm.get_pdl() is True
    deep_gemm.set_pdl(False)


def _run_python(code, env_update):
    env = dict(os.environ, **env_update)
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env,
                          cwd=os.path.join(os.path.dirname(__file__), '..'), timeout=120)


def test_import_without_gpu():
    r = _run_python('import deep_gemm; print(deep_gemm.__version__, deep_gemm.fp8_paged_mqa_logits.__name__)',
                    {'CUDA_VISIBLE_DEVICES': ''})
    assert r.returncode == 0, r.stderr
    assert '2.6.1+sm120' in r.stdout


def test_import_without_toolkit():
    """No nvcc anywhere: import works; the first compile names what is missing."""
    r = _run_python('import deep_gemm; print("ok")',
                    {'CUDA_HOME': '/nonexistent', 'PATH': '/usr/bin:/bin', 'DG_JIT_NVCC_COMPILER': '/nonexistent/nvcc'})
    assert r.returncode == 0, r.stderr
    if deep_gemm._C is None:
        pytest.skip(deep_gemm._extension_problem())
    r = _run_python('import deep_gemm, os; os.environ["DG_JIT_CACHE_DIR"] = "/tmp/dg_no_nvcc_cache"\n'
                    'deep_gemm._C.compile_kernel_config("sm_120a", 0)',
                    {'DG_JIT_NVCC_COMPILER': '/nonexistent/nvcc', 'DG_JIT_CACHE_DIR': '/tmp/dg_no_nvcc_cache'})
    assert r.returncode != 0
    assert 'cannot find nvcc' in r.stderr and '/nonexistent/nvcc' in r.stderr


def test_import_with_broken_extension():
    """A broken `_C` (wrong torch ABI, say) must not break the import; calls name the problem."""
    code = ('import sys, types\n'
            'class Broken:\n'
            '    def find_spec(self, name, path=None, target=None):\n'
            '        if name == "deep_gemm._C": raise ImportError("simulated ABI mismatch")\n'
            'sys.meta_path.insert(0, Broken())\n'
            'import deep_gemm\n'
            'try:\n'
            '    deep_gemm.get_paged_mqa_logits_metadata(None, 64, 132)\n'
            'except RuntimeError as e:\n'
            '    print("raised:", e)\n')
    r = _run_python(code, {})
    assert r.returncode == 0, r.stderr
    assert 'raised: deep_gemm.get_paged_mqa_logits_metadata: the C++ extension deep_gemm._C could not be loaded' in r.stdout
    assert 'simulated ABI mismatch' in r.stdout


def test_every_python_package_is_installed():
    """A non-editable install ships only what setup.py's find_packages sees (deep_gemm.bench once lacked
    an __init__.py and was silently left out of the wheel)."""
    from setuptools import find_packages
    root = os.path.join(os.path.dirname(__file__), '..')
    found = set(find_packages(where=root, include=['deep_gemm', 'deep_gemm.*']))
    on_disk = {os.path.relpath(d, root).replace(os.sep, '.') for d, _, files in os.walk(os.path.join(root, 'deep_gemm'))
               if any(f.endswith('.py') for f in files) and '__pycache__' not in d and 'include' not in d}
    assert on_disk <= found, f'packages without __init__.py (left out of wheels): {sorted(on_disk - found)}'


# Drops setuptools' editable-install finder, which would otherwise serve `deep_gemm._C` from an installed tree
_NO_EDITABLE_FINDER = ("import sys\n"
                       "sys.meta_path[:] = [f for f in sys.meta_path\n"
                       "                    if not type(f).__module__.startswith('__editable__')\n"
                       "                    and not getattr(f, '__module__', '').startswith('__editable__')]\n")


@pytest.mark.parametrize('source_tree', [True, False])
def test_unbuilt_extension_says_so(tmp_path, source_tree):
    """Python run inside an unbuilt tree (where its own message blames a circular import) or any other
    directory: the call says the extension is not built and how to build it."""
    import shutil
    root = os.path.join(os.path.dirname(__file__), '..')
    shutil.copytree(os.path.join(root, 'deep_gemm'), tmp_path / 'deep_gemm',
                    ignore=shutil.ignore_patterns('_C.*', '__pycache__', 'include'))
    if source_tree:
        shutil.copy(os.path.join(root, 'setup.py'), tmp_path)
    code = _NO_EDITABLE_FINDER + ('import deep_gemm\n'
                                  'assert deep_gemm._C is None, deep_gemm._C\n'
                                  'deep_gemm.fp8_paged_mqa_logits()\n')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith('RuntimeError: deep_gemm.fp8_paged_mqa_logits: the extension is not built'), r.stderr
    assert './develop.sh' in last and 'circular import' not in last, last
    assert ('run Python from another directory' in last) == source_tree, last


def test_unsupported_upstream_variables_are_named_in_one_warning():
    code = ('import warnings\n'
            'with warnings.catch_warnings(record=True) as w:\n'
            '    warnings.simplefilter("always")\n'
            '    import deep_gemm\n'
            'msgs = [str(x.message) for x in w if "upstream DeepGEMM environment variables" in str(x.message)]\n'
            'print(len(msgs)); print(msgs[0] if msgs else "")\n')
    r = _run_python(code, {'DG_JIT_CPP_STANDARD': '20', 'DG_JIT_DUMP_ASM': '1', 'DG_JIT_USE_RUNTIME_API': '0',
                           'DG_USE_TEMP_CUBLASLT_WORKSPACE': '1'})
    assert r.returncode == 0, r.stderr
    count, message = r.stdout.splitlines()[:2]
    assert count == '1', r.stdout
    assert 'DG_JIT_CPP_STANDARD' in message and 'DG_JIT_DUMP_ASM' in message and \
        'DG_USE_TEMP_CUBLASLT_WORKSPACE' in message, message
    assert 'DG_JIT_USE_RUNTIME_API' not in message, 'a variable set to 0 (upstream: off) changes nothing'
    from deep_gemm import _env
    assert _env.unsupported_set({'DG_SKIP_CUDA_BUILD': '1', 'DG_JIT_CACHE_DIR': '/x'}) == ['DG_SKIP_CUDA_BUILD']
    assert _env.unsupported_set({}) == []
