"""GPU test: a kernel call that has to compile says so once on stderr; a call served by the disk cache, and any
call under DG_JIT_QUIET=1, says nothing."""
import os
import subprocess
import sys
import tempfile

import pytest

pytestmark = pytest.mark.gpu
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))

_CHILD = r'''
import sys, torch
sys.path.insert(0, {repo!r})
import deep_gemm
logits = torch.randn(3, 1024, device='cuda')[:, :700]
ks = torch.tensor([0, 5, 800], dtype=torch.int32, device='cuda')
ke = torch.tensor([10, 700, 900], dtype=torch.int32, device='cuda')
for _ in range(3):  # the same kernel again: no second message
    deep_gemm._C._clean_logits_ragged(logits, ks, ke)
torch.cuda.synchronize()
print('child ok')
'''


def _run(cache_dir, quiet):
    env = {k: v for k, v in os.environ.items() if k not in ('DG_JIT_QUIET', 'DG_JIT_DEBUG')}
    env['DG_JIT_CACHE_DIR'] = cache_dir
    if quiet:
        env['DG_JIT_QUIET'] = '1'
    r = subprocess.run([sys.executable, '-c', _CHILD.format(repo=REPO)], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and 'child ok' in r.stdout, f'child failed (rc {r.returncode}):\n{r.stderr}'
    return [line for line in r.stderr.splitlines() if 'deep_gemm: compiling' in line], r.stderr


def test_first_use_compile_is_announced_once():
    with tempfile.TemporaryDirectory() as d:
        lines, err = _run(d, quiet=False)
        assert len(lines) == 1, f'expected one compile message, got {len(lines)}; stderr:\n{err}'
        assert 'smxx_clean_logits' in lines[0] and 'first use' in lines[0] and d in lines[0], lines[0]
        lines, err = _run(d, quiet=False)
        assert not lines, f'a disk-cache hit must be silent; stderr:\n{err}'


def test_quiet_silences_the_compile_message():
    with tempfile.TemporaryDirectory() as d:
        lines, err = _run(d, quiet=True)
        assert not lines, f'DG_JIT_QUIET=1 must silence the compile message; stderr:\n{err}'
