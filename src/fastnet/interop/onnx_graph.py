"""A small builder around ``onnx.helper``: unique names, one initializer per parameter, nodes.

The layer converters (``onnx_layers.py``) and the model walker (``onnx_export.py``) only call
``op``, ``param`` and ``const``; this file is the one place that knows how names are made.
"""

from __future__ import annotations

import numpy as np


class OnnxGraph:
    """Nodes and initializers of one ONNX graph under construction.

    ``dtype`` is the model's float dtype (float32 or float64): parameters and the scalar
    constants the converters need are stored in it. ``opset`` is the target ai.onnx opset, so
    a converter can choose an op that exists there (e.g. ``Gelu`` only from opset 20).
    """

    def __init__(self, onnx, dtype, opset: int):
        self.onnx = onnx
        self.helper = onnx.helper
        self.dtype = np.dtype(dtype)
        self.elem_type = onnx.helper.np_dtype_to_tensor_dtype(self.dtype)
        self.opset = int(opset)
        self.nodes: list = []
        self.initializers: list = []
        self._names: set[str] = set()
        self._params: dict[tuple[int, str], str] = {}  # (id(layer), key) -> initializer name

    def fresh(self, hint: str) -> str:
        """A graph-unique name starting with ``hint``."""
        name, k = hint, 1
        while name in self._names:
            k += 1
            name = f"{hint}_{k}"
        self._names.add(name)
        return name

    def _initializer(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name=name))
        return name

    def param(self, layer, key: str, array: np.ndarray, name: str) -> str:
        """The initializer holding ``layer``'s ``key`` array, created on first use: a layer used
        several times in a graph (shared weights) has one copy of each parameter."""
        ident = (id(layer), key)
        if ident not in self._params:
            self._params[ident] = self._initializer(self.fresh(name), np.asarray(array, dtype=self.dtype))
        return self._params[ident]

    def const(self, hint: str, array) -> str:
        """A constant initializer (its dtype as given: int64 for shapes, the model dtype for scalars)."""
        return self._initializer(self.fresh(hint), np.asarray(array))

    def scalar(self, hint: str, value: float) -> str:
        return self.const(hint, np.array(value, dtype=self.dtype))

    def op(self, op_type: str, inputs: list[str], hint: str, output: str | None = None, **attrs) -> str:
        """Append one node; returns the name of its (single) output."""
        out = output if output is not None else self.fresh(hint)
        self._names.add(out)
        node_name = self.fresh(f"{hint}/{op_type}")
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], name=node_name, **attrs))
        return out
