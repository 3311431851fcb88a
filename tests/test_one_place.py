"""Facts that must be written once: the supported float dtypes and the sliding-window formula.

Each used to be copied into several modules (layers, losses, optimizers, datasets, warmup; the
window size in layers, reference and fast kernels, and the CLI), where copies drift apart.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "fastnet"


def _sources():
    return sorted(SRC.rglob("*.py"))


def test_float_dtypes_are_defined_once():
    from fastnet._kernels.dtypes import FLOAT_DTYPES

    assert [str(d) for d in FLOAT_DTYPES] == ["float32", "float64"]
    pattern = re.compile(r"\(\s*(np\.dtype\()?np\.float32\)?\s*,\s*(np\.dtype\()?np\.float64\)?\s*\)")
    copies = [
        f"{p.relative_to(SRC)}:{text[: m.start()].count(chr(10)) + 1}"
        for p in _sources()
        if p.name != "dtypes.py"
        for text in [p.read_text()]
        for m in pattern.finditer(text)
    ]
    assert not copies, f"a copy of the float dtype tuple (use fastnet._kernels.dtypes.FLOAT_DTYPES): {copies}"


def _is_window_formula(node):
    """``(...) // s + 1`` (or ``1 + (...) // s``): the window-count formula."""
    if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add)):
        return False
    for one, other in ((node.right, node.left), (node.left, node.right)):
        if isinstance(one, ast.Constant) and one.value == 1:
            return isinstance(other, ast.BinOp) and isinstance(other.op, ast.FloorDiv)
    return False


def test_window_geometry_is_computed_once():
    from fastnet._kernels.geometry import window_out

    assert window_out(28, 5) == 24 and window_out(28, 5, 1, 2) == 28 and window_out(7, 3, 2, 1) == 4
    assert window_out(2, 3) < 1
    copies = [
        f"{p.relative_to(SRC)}:{node.lineno}"
        for p in _sources()
        if p.name != "geometry.py"
        for node in ast.walk(ast.parse(p.read_text()))
        if _is_window_formula(node)
    ]
    assert not copies, f"a copy of the window-size formula (use fastnet._kernels.geometry.window_out): {copies}"
