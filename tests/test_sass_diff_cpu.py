"""CPU tests of benchmarks/sass_diff.py: what counts as the same instruction stream (only instructions and their
control words, not names or paths) and how two runs compare."""
import importlib.util
import os

_PATH = os.path.join(os.path.dirname(__file__), '..', 'benchmarks', 'sass_diff.py')
_spec = importlib.util.spec_from_file_location('sass_diff', _PATH)
sd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sd)

SASS = '''
	code for sm_120a
		Function : {name}
	.headerflags	@"EF_CUDA_TEXMODE_UNIFIED EF_CUDA_64BIT_ADDRESS EF_CUDA_SM120"
        /*0000*/                   LDC R1, c[0x0][0x37c] ;                       /* 0x0000df00ff017b82 */
                                                                                 /* 0x000fe20000000800 */
        /*0010*/              @!P0 MOV {reg}, RZ ;                               /* 0x000000ff00007202 */
                                                                                 /* 0x000fe20000000f00 */
        /*0020*/                   EXIT ;                                        /* 0x000000000000794d */
                                                                                 /* 0x000fea0003800000 */
'''


def test_fingerprint_ignores_names_and_sees_operands():
    a = sd.sass_fingerprint(SASS.format(name='kernel_a', reg='R0'))
    b = sd.sass_fingerprint(SASS.format(name='kernel_b', reg='R0'))
    c = sd.sass_fingerprint(SASS.format(name='kernel_a', reg='R2'))
    assert a == b and a[2] == 3
    assert c[0] != a[0] and c[1] == a[1]            # another register: same opcodes, other operands
    d = sd.sass_fingerprint(SASS.format(name='kernel_a', reg='R0').replace('MOV', 'IMAD.MOV'))
    assert d[1] != a[1]


def test_compare_statuses():
    x = dict(family='f', sha1='1', opcodes='o', instructions=3)
    before = {'same': x, 'ops': x, 'changed': x, 'gone': x}
    after = {'same': x, 'ops': dict(x, sha1='2'), 'changed': dict(x, sha1='2', opcodes='p', instructions=4),
             'new': x}
    got = {k: status for k, status, _ in sd.compare(before, after)}
    assert got == {'same': 'same', 'ops': 'operands', 'changed': 'CHANGED', 'gone': 'gone', 'new': 'new'}
