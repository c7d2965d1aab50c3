"""CPU test of benchmarks/ncu_source_top.py (ranks ncu's per-instruction stall samples; no GPU, no ncu)."""
import os
import subprocess
import sys

TOOL = os.path.join(os.path.dirname(__file__), '..', 'benchmarks', 'ncu_source_top.py')


def run(tmp_path, text, *args):
    f = tmp_path / 'source.csv'
    f.write_text(text)
    return subprocess.run([sys.executable, TOOL, str(f), *args], capture_output=True, text=True)


def test_ranks_instructions_by_stall_samples(tmp_path):
    text = ('==PROF== Connected to process 1\nprogram output\n'
            '"Address","Source","Warp Stall Sampling (All Samples)","Warp Stall Sampling (Not-issued Samples)"\n'
            '"0x10","HMMA.16816.F32.BF16 R4, R8, R12, R4","30","10"\n'
            '"0x20","BAR.SYNC.DEFER_BLOCKING 0x0","1,060","1,000"\n'
            '"0x30","LDSM.16.M88.4 R8, [R2]","10","5"\n')
    out = run(tmp_path, text, '--top', '2')
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == '3 SASS instructions, 1100 stall samples'
    assert 'BAR.SYNC' in lines[1] and '96.4%' in lines[1] and 'HMMA' in lines[2] and len(lines) == 3


def test_rejects_other_files(tmp_path):
    out = run(tmp_path, 'not,a,source,page\n1,2,3,4\n')
    assert out.returncode == 1 and 'no "Address" column' in out.stdout
