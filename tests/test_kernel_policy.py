"""The kernel layer's policies, checked on its source (the way stumpy lints its JIT decorators).

1. Every Numba kernel is decorated with ``_jit.jit`` / ``_jit.pjit`` at module level: no raw
   ``numba.njit`` (which would bypass cache=True, fastmath and the stale-cache check) and no
   ``njit`` built inside a function.
2. A parallel Numba kernel (``pjit``, or any ``parallel=True`` decorator) is reached only as the
   ``parallel`` argument of ``parallel.run``, the one function that applies the size threshold,
   the thread count and the main-thread rule. ``prange`` only appears in parallel kernels.
3. Every OpenMP thread count handed to a Cython kernel (the ``num_threads=`` parameter of a
   ``prange`` in a ``.pyx``) comes from ``parallel.omp_threads`` or ``parallel.team_size``,
   which apply the same rules; every ``prange`` in a ``.pyx`` takes its ``num_threads`` from a
   parameter (never the OpenMP default of all cores).
4. The policy functions themselves keep the main-thread rule.
"""

from __future__ import annotations

import ast
import re
import threading
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parents[1] / "src" / "fastnet" / "_kernels"
POLICY_MODULES = {"parallel.py", "_jit.py"}  # the policy itself
OMP_POLICY = {"omp_threads", "team_size"}


def _python_modules():
    return sorted(p for p in KERNELS.rglob("*.py") if p.name not in POLICY_MODULES)


def _rel(path):
    return str(path.relative_to(KERNELS.parent))


def _decorator_name(dec):
    """('pjit', parallel?) for a decorator node: its callee's last name and parallel=True."""
    call = dec if isinstance(dec, ast.Call) else None
    target = call.func if call else dec
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    par = name == "pjit" or any(
        k.arg == "parallel" and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in (call.keywords if call else [])
    )
    return name, par


def _parallel_kernels(tree):
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and any(_decorator_name(d)[1] for d in node.decorator_list)
    }


def _module_trees():
    return {p: ast.parse(p.read_text(), str(p)) for p in _python_modules()}


def test_numba_kernels_use_the_jit_policy():
    problems = []
    for path, tree in _module_trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "numba":
                bad = [a.name for a in node.names if a.name in {"njit", "jit", "generated_jit", "vectorize"}]
                if bad:
                    problems.append(f"{_rel(path)}:{node.lineno}: imports numba.{bad[0]} (use _jit.jit/pjit)")
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "numba"
                and node.attr in {"njit", "jit", "vectorize"}
            ):
                problems.append(f"{_rel(path)}:{node.lineno}: numba.{node.attr} (use _jit.jit/pjit)")
        for outer in ast.walk(tree):
            if not isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(outer):
                nested = inner is not outer and isinstance(inner, ast.FunctionDef)
                if nested and any(_decorator_name(d)[0] in {"jit", "pjit", "njit"} for d in inner.decorator_list):
                    problems.append(f"{_rel(path)}:{inner.lineno}: kernel {inner.name} built inside {outer.name}")
    assert not problems, "\n".join(problems)


def _is_policy_call(node, names):
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "parallel"
        and node.func.attr in names
    )


def test_parallel_numba_kernels_are_reached_only_through_parallel_run():
    trees = _module_trees()
    by_module = {p: _parallel_kernels(t) for p, t in trees.items()}
    assert sum(map(len, by_module.values())) >= 10, "the walk found too few parallel kernels to be looking right"
    problems = []
    for path, tree in trees.items():
        own = by_module[path]
        kernels = set(own)
        for node in ast.walk(tree):  # parallel kernels imported from another kernel module count too
            if isinstance(node, ast.ImportFrom) and node.module and node.level:
                src = path.parents[node.level - 1].joinpath(*node.module.split(".")).with_suffix(".py")
                kernels |= {a.asname or a.name for a in node.names if a.name in by_module.get(src, ())}
        allowed = set()
        for node in ast.walk(tree):
            if _is_policy_call(node, {"run"}):
                if len(node.args) > 3:
                    allowed.add(id(node.args[3]))
                allowed |= {id(k.value) for k in node.keywords if k.arg == "parallel"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in kernels and id(node) not in allowed:
                problems.append(f"{_rel(path)}:{node.lineno}: parallel kernel {node.id} used outside parallel.run")
        serial = [f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name not in own]
        for f in serial:
            for node in ast.walk(f):
                if isinstance(node, ast.Name) and node.id == "prange":
                    problems.append(f"{_rel(path)}:{node.lineno}: prange in {f.name}, which is not a parallel kernel")
    assert not problems, "\n".join(problems)


def _split_params(text):
    """Parameter names of a Cython ``def`` signature (commas inside [] or () do not split)."""
    names, depth, cur = [], 0, ""
    for ch in text + ",":
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            head = cur.split("=")[0].strip()
            if head:
                names.append(re.findall(r"\w+", head)[-1])
            cur = ""
        else:
            cur += ch
    return names


def _cython_thread_params():
    """{function: index of the parameter its prange's num_threads comes from} over every .pyx;
    fails on a prange whose num_threads is missing or not a parameter."""
    params, problems = {}, []
    for pyx in sorted(KERNELS.rglob("*.pyx")):
        text = pyx.read_text()
        for m in re.finditer(r"^def (\w+)\((.*?)\):\s*$(.*?)(?=^\S|\Z)", text, re.S | re.M):
            name, sig, body = m.group(1), _split_params(m.group(2)), m.group(3)
            for pr in re.finditer(r"prange\(([^)]*)\)", body):
                nt = re.search(r"num_threads\s*=\s*(\w+)", pr.group(1))
                if nt is None or nt.group(1) not in sig:
                    problems.append(f"{pyx.name}: {name}: prange without num_threads from a parameter")
                else:
                    params[name] = sig.index(nt.group(1))
        for m in re.finditer(r"prange\(", text):
            line = text.count("\n", 0, m.start()) + 1
            before = text[: m.start()]
            if not re.search(r"^def \w+\(", before, re.M):
                problems.append(f"{pyx.name}:{line}: prange outside a def")
    return params, problems


def test_openmp_thread_counts_come_from_the_policy():
    params, problems = _cython_thread_params()
    assert len(params) >= 10, f"found only {sorted(params)}: the .pyx walk is not looking right"
    calls = 0
    for path, tree in _module_trees().items():
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.Module)):
                continue
            # local names bound (only) to a policy call inside this function
            bound, other = set(), set()
            for node in ast.walk(func):
                if isinstance(node, ast.Assign):
                    for t in node.targets:
                        if isinstance(t, ast.Name):
                            (bound if _is_policy_call(node.value, OMP_POLICY) else other).add(t.id)
            policy_names = bound - other
            for node in ast.walk(func):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                if node.func.attr not in params or isinstance(func, ast.Module):
                    continue
                calls += 1
                i = params[node.func.attr]
                arg = node.args[i] if len(node.args) > i else None
                if arg is None:
                    problems.append(f"{_rel(path)}:{node.lineno}: {node.func.attr} without its thread count")
                elif not (_is_policy_call(arg, OMP_POLICY) or (isinstance(arg, ast.Name) and arg.id in policy_names)):
                    problems.append(
                        f"{_rel(path)}:{node.lineno}: {node.func.attr}'s thread count "
                        f"`{ast.unparse(arg)}` does not come from parallel.omp_threads/team_size"
                    )
    assert calls >= len(params), f"only {calls} calls of the {len(params)} Cython kernels found"
    assert not problems, "\n".join(problems)


def _in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_policy_functions_keep_the_main_thread_rule():
    from fastnet._kernels import config, parallel

    big = 1 << 30
    assert parallel.omp_threads(config.PARALLEL_MIN_ELEMENTS - 1) == 1
    assert _in_thread(lambda: parallel.use_parallel(big, 1)) is False
    assert _in_thread(lambda: parallel.omp_threads(big)) == 1
    assert _in_thread(lambda: parallel.team_size(4)) == 1
    assert parallel.team_size(4) == 4
    calls = []

    def ser(*a):
        calls.append("serial")

    def par(*a):
        calls.append("parallel")

    n = config.PARALLEL_MIN_ELEMENTS - 1  # below the warm-up size: run() compiles nothing
    _in_thread(lambda: parallel.run(n, 1, ser, par, ()))
    assert calls == ["serial"]


@pytest.mark.parametrize("n_threads", [1, 2])
def test_omp_threads_follows_the_thread_count(n_threads):
    import fastnet as fn
    from fastnet._kernels import parallel

    before = fn.get_num_threads()
    try:
        fn.set_num_threads(n_threads)
        assert parallel.omp_threads(1 << 30) == n_threads
    finally:
        fn.set_num_threads(before)


def test_kernels_never_import_the_package_above():
    """``fastnet._kernels`` is the bottom layer: the layers, the model and ``fastnet.threads``
    import it, never the other way round (a cycle waiting to happen at import time)."""
    problems = []
    for path in sorted(KERNELS.rglob("*.py")):
        depth = len(path.relative_to(KERNELS).parts)  # 1 for _kernels/x.py, 2 for _kernels/fast/x.py
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                outside = node.level > depth or (node.level == 0 and (node.module or "").startswith("fastnet"))
                if outside and not (node.module or "").startswith("fastnet._kernels"):
                    problems.append(f"{_rel(path)}:{node.lineno}: from {'.' * node.level}{node.module or ''} import")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("fastnet") and not alias.name.startswith("fastnet._kernels"):
                        problems.append(f"{_rel(path)}:{node.lineno}: import {alias.name}")
    assert not problems, "\n".join(problems)
