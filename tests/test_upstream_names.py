"""CPU test: every `deep_gemm...` name that upstream DeepGEMM's own test files import or use resolves against this
package, and every keyword they pass to one of our functions is accepted.

The upstream files (read-only, never copied here) come from one environment variable, `DG_UPSTREAM_TESTS`: the
folder that holds `main/` (upstream 2.6.1) and `nv_dev/` (NVIDIA's SM120 port). Unset, these tests skip and say so.

What is collected, by parsing each file (no upstream code runs):
- `import deep_gemm[.sub]` and `from deep_gemm[.sub] import a, b` (every imported name);
- attribute chains rooted at a name bound by such an import: `deep_gemm.fp8_gemm_nt`, `deep_gemm.utils.x`, ...;
- keywords of calls to those names, including `**kwargs` whose keys the same function spells out
  (`kwargs = dict(k=...)`, `kwargs['k'] = ...`).
`deep_gemm.legacy.<name>` (upstream's deprecated Triton kernels) passes if `deep_gemm.legacy` exists and its
attribute access raises an error whose message names `deep_gemm.legacy`.
"""
import ast
import importlib
import inspect
import os
import re

import pytest

ENV = 'DG_UPSTREAM_TESTS'
SUBDIRS = ('main', 'nv_dev')
LEGACY = 'deep_gemm.legacy'


def _upstream_files():
    root = os.environ.get(ENV)
    if not root:
        return None, f'{ENV} is not set (point it at the folder holding upstream DeepGEMM\'s main/ and nv_dev/ tests)'
    files = []
    for sub in SUBDIRS:
        d = os.path.join(root, sub)
        if os.path.isdir(d):
            files += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith('.py')]
    return (root, files), None


# ---------------------------------------------------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------------------------------------------------
def _dotted(node):
    """'a.b.c' for an Attribute/Name chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return '.'.join(reversed(parts))
    return None


def _spelled_out_keys(func):
    """{variable: keys} for `v = dict(k=...)`, `v = {'k': ...}` and `v['k'] = ...` inside one function body."""
    keys = {}
    for node in ast.walk(func):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name):
                v = node.value
                if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == 'dict':
                    keys.setdefault(target.id, set()).update(k.arg for k in v.keywords if k.arg)
                elif isinstance(v, ast.Dict):
                    keys.setdefault(target.id, set()).update(
                        k.value for k in v.keys if isinstance(k, ast.Constant) and isinstance(k.value, str))
            elif (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)
                  and isinstance(target.slice, ast.Constant) and isinstance(target.slice.value, str)):
                keys.setdefault(target.value.id, set()).add(target.slice.value)
    return keys


def parse_upstream_file(path):
    """(names, keywords): names = {dotted deep_gemm name: first line}, keywords = {dotted name: {keyword: line}}."""
    tree = ast.parse(open(path).read(), filename=path)
    bound = {}       # local name -> dotted deep_gemm path
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == 'deep_gemm' or alias.name.startswith('deep_gemm.'):
                    names.setdefault(alias.name, node.lineno)
                    if alias.asname:
                        bound[alias.asname] = alias.name
                    else:
                        bound['deep_gemm'] = 'deep_gemm'
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and \
                (node.module == 'deep_gemm' or node.module.startswith('deep_gemm.')):
            for alias in node.names:
                full = f'{node.module}.{alias.name}'
                names.setdefault(full, node.lineno)
                bound[alias.asname or alias.name] = full

    def resolve_chain(node):
        d = _dotted(node)
        if d is None:
            return None
        root, _, rest = d.partition('.')
        if root not in bound:
            return None
        return bound[root] + ('.' + rest if rest else '')

    keywords = {}
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))] + [tree]
    spelled = {}
    for func in functions:
        for var, ks in _spelled_out_keys(func).items():
            spelled.setdefault(id(func), {}).setdefault(var, set()).update(ks)
    # innermost enclosing function of every call, for its `**kwargs` keys
    owner = {}
    for func in functions:
        for node in ast.walk(func):
            if isinstance(node, ast.Call) and id(node) not in owner:
                owner[id(node)] = func
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            full = resolve_chain(node)
            if full:
                names.setdefault(full, node.lineno)
        if isinstance(node, ast.Call):
            full = resolve_chain(node.func)
            if not full:
                continue
            per = keywords.setdefault(full, {})
            for kw in node.keywords:
                if kw.arg is not None:
                    per.setdefault(kw.arg, node.lineno)
                elif isinstance(kw.value, ast.Name):
                    scope = spelled.get(id(owner.get(id(node), tree)), {})
                    for k in scope.get(kw.value.id, ()):
                        per.setdefault(k, node.lineno)
    # only the outermost chains and their prefixes matter; drop attribute accesses of deep_gemm's own objects that
    # are prefixes already listed (`deep_gemm` itself)
    names.pop('deep_gemm', None)
    return names, {k: v for k, v in keywords.items() if v}


def collect():
    """({dotted name: [where]}, {dotted name: {keyword: [where]}}) over every upstream file, or a skip reason."""
    found, reason = _upstream_files()
    if found is None:
        return None, None, reason
    root, files = found
    names, keywords = {}, {}
    for path in files:
        rel = os.path.relpath(path, root)
        n, k = parse_upstream_file(path)
        for name, line in n.items():
            names.setdefault(name, []).append(f'{rel}:{line}')
        for name, kws in k.items():
            for kw, line in kws.items():
                keywords.setdefault(name, {}).setdefault(kw, []).append(f'{rel}:{line}')
    return names, keywords, None


# ---------------------------------------------------------------------------------------------------------------------
# Resolution against this package
# ---------------------------------------------------------------------------------------------------------------------
def resolve(dotted):
    """The object `dotted` names: the longest importable module prefix, then attributes (the way `import a.b` plus
    `a.b.c` would find it). Raises what the lookup raises."""
    parts = dotted.split('.')
    obj, i = None, len(parts)
    while i > 0:
        try:
            obj = importlib.import_module('.'.join(parts[:i]))
            break
        except ModuleNotFoundError as e:
            if e.name is None or not '.'.join(parts[:i]).startswith(e.name):
                raise
            i -= 1
    if obj is None:
        raise ModuleNotFoundError(f'no module {parts[0]!r}')
    for attr in parts[i:]:
        obj = getattr(obj, attr)
    return obj


def check_name(dotted):
    """None if `dotted` resolves (or is an exempt legacy name with a clear error), else what went wrong."""
    try:
        resolve(dotted)
        return None
    except Exception as e:  # noqa: BLE001 (any failure is a finding)
        if dotted.startswith(LEGACY + '.') and LEGACY in str(e):
            try:
                resolve(LEGACY)
                return None
            except Exception as e2:  # noqa: BLE001
                return f'{LEGACY} itself does not resolve: {type(e2).__name__}: {e2}'
        return f'{type(e).__name__}: {e}'


_PYBIND_SIG = re.compile(r'^\s*\w+\((?P<args>.*)\)\s*(->.*)?$')


def accepted_keywords(obj):
    """Set of keyword names `obj` accepts, or '*' for any (a **kwargs parameter), or None if unknowable."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return '*'
        return {p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    # pybind11: the first lines of __doc__ are the overloads' signatures `name(a: T, b: T = ...) -> R`
    doc = getattr(obj, '__doc__', None) or ''
    out = set()
    for line in doc.splitlines():
        line = re.sub(r'^\d+\.\s*', '', line.strip())
        m = _PYBIND_SIG.match(line)
        if not m or not line.startswith(getattr(obj, '__name__', '') + '('):
            continue
        depth, cur, args = 0, '', []
        for ch in m.group('args'):
            depth += ch in '([{'
            depth -= ch in ')]}'
            if ch == ',' and depth == 0:
                args.append(cur)
                cur = ''
            else:
                cur += ch
        args.append(cur)
        for a in args:
            a = a.strip()
            if a.startswith('**'):
                return '*'
            if a and not a.startswith('*'):
                out.add(a.split(':')[0].split('=')[0].strip())
    return out or None


# ---------------------------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------------------------
NAMES, KEYWORDS, SKIP_REASON = collect()


def _where(places, limit=4):
    return ', '.join(places[:limit]) + (f' (+{len(places) - limit} more)' if len(places) > limit else '')


def test_upstream_directory():
    """The variable points at a folder with both test sets (a wrong path fails; only an unset variable skips)."""
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    root = os.environ[ENV]
    for sub in SUBDIRS:
        d = os.path.join(root, sub)
        assert os.path.isdir(d), f'{ENV}={root!r}: no {sub}/ folder there'
        assert any(f.startswith('test_') and f.endswith('.py') for f in os.listdir(d)), f'{d}: no test_*.py files'
    # the parser sees what the files obviously use (guards against it silently collecting nothing)
    for expected in ('deep_gemm.testing.bench_kineto', 'deep_gemm.utils.ceil_div', 'deep_gemm.tf32_hc_prenorm_gemm',
                     'deep_gemm.fp8_fp4_paged_mqa_logits', 'deep_gemm.testing.get_arch_major'):
        assert expected in NAMES, f'parser did not find {expected} in the upstream files'
    assert 'max_seqlen_k' in KEYWORDS.get('deep_gemm.fp8_fp4_mqa_logits', {}), 'parser missed **kernel_kwargs keys'


@pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or '')
@pytest.mark.parametrize('name', sorted(NAMES or []))
def test_upstream_name_resolves(name):
    problem = check_name(name)
    assert problem is None, f'{name} (used at {_where(NAMES[name])}) does not resolve: {problem}'


def _keyword_cases():
    cases = []
    for name in sorted(KEYWORDS or {}):
        if name.startswith(LEGACY + '.'):
            continue
        for kw in sorted(KEYWORDS[name]):
            cases.append((name, kw))
    return cases


@pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or '')
@pytest.mark.parametrize('name,keyword', _keyword_cases())
def test_upstream_keyword_accepted(name, keyword):
    if check_name(name) is not None:
        pytest.fail(f'{name} does not resolve (see test_upstream_name_resolves)')
    obj = resolve(name)
    if inspect.isclass(obj):
        obj = obj.__init__
    accepted = accepted_keywords(obj)
    assert accepted is not None, f'{name}: cannot read its signature (neither inspect nor a pybind11 docstring)'
    assert accepted == '*' or keyword in accepted, \
        f'{name} does not accept keyword {keyword!r} (used at {_where(KEYWORDS[name][keyword])}); ' \
        f'accepts {sorted(accepted)}'


# ---------------------------------------------------------------------------------------------------------------------
# The parser itself, on a made-up file (runs without the upstream folder)
# ---------------------------------------------------------------------------------------------------------------------
def test_parser_on_a_made_up_file(tmp_path):
    src = '''
import torch
import deep_gemm
import deep_gemm.utils.layout as L
from deep_gemm.testing import bench_kineto as bk, calc_diff
from deep_gemm.utils import (ceil_div,
    align)
from generators import deep_gemm_lookalike

def f():
    kw = dict(q=1, kv=2)
    kw['extra'] = 3
    deep_gemm.fp8_fp4_mqa_logits(**kw)
    deep_gemm.utils.math.ceil_div(1, 2)
    getattr(deep_gemm.legacy, 'x')
    L.get_tma_aligned_size(4, 4)
    bk(lambda: None, 'k', trace_path=None)
    torch.zeros(1).deep_gemm_lookalike
'''
    p = tmp_path / 'test_x.py'
    p.write_text(src)
    names, keywords = parse_upstream_file(str(p))
    assert set(names) == {'deep_gemm.utils.layout', 'deep_gemm.testing.bench_kineto', 'deep_gemm.testing.calc_diff',
                          'deep_gemm.utils.ceil_div', 'deep_gemm.utils.align', 'deep_gemm.fp8_fp4_mqa_logits',
                          'deep_gemm.utils', 'deep_gemm.utils.math', 'deep_gemm.utils.math.ceil_div',
                          'deep_gemm.legacy', 'deep_gemm.utils.layout.get_tma_aligned_size'}
    assert set(keywords['deep_gemm.fp8_fp4_mqa_logits']) == {'q', 'kv', 'extra'}
    assert set(keywords['deep_gemm.testing.bench_kineto']) == {'trace_path'}


def test_resolution_rules():
    assert check_name('deep_gemm.utils.math.ceil_div') is None
    assert check_name('deep_gemm.testing.bench_kineto') is None
    assert 'AttributeError' in check_name('deep_gemm.no_such_name')
    assert check_name('deep_gemm.no_such_module.x') is not None
    assert accepted_keywords(resolve('deep_gemm.testing.bench_kineto')) >= {'suppress_kineto_output', 'trace_path',
                                                                            'flush_l2', 'with_multiple_kernels'}
