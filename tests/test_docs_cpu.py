"""CPU checks of the docs that tools read or that must agree: docs/STATUS.md's list of upstream test functions is
the table of docs/UPSTREAM.md (which `benchmarks/upstream_suite.py` reads), row for row."""
import os
import re

ROOT = os.path.join(os.path.dirname(__file__), '..')
ROW = re.compile(r'^\| (main|nv_dev) \| `([^`]+)` \| ([^|]+?) \|', re.M)


def rows(name):
    with open(os.path.join(ROOT, 'docs', name)) as f:
        return [(s, fn, st.strip()) for s, fn, st in ROW.findall(f.read())]


def test_status_lists_every_upstream_function_as_upstream_md_does():
    upstream, status = rows('UPSTREAM.md'), rows('STATUS.md')
    assert len(upstream) >= 50, 'the table of docs/UPSTREAM.md was not found'
    assert status == upstream
    assert len({(s, fn) for s, fn, _ in upstream}) == len(upstream), 'a function listed twice'
