"""``Sequential``: a stack of layers, the chain special case of ``fastnet.Model``.

It runs through the same plan, backward, fusion and training engine as any graph; what it adds
is the list interface (``add``, indexing, slicing) and index names (``"0.weight"``), so the files
saved before graphs existed still load.
"""

from __future__ import annotations

import numpy as np

from . import graph_build
from .layers.base import Layer
from .model import Model

__all__ = ["Sequential"]


class Sequential(Model):
    """A linear stack of layers.

    >>> model = Sequential([Dense(784, 512), ReLU(), Dense(512, 10)])
    >>> model.compile(optimizer="rmsprop", loss="softmax_cross_entropy", metrics=["accuracy"])
    >>> history = model.fit(x, y, epochs=5, batch_size=128)

    Attributes: ``layers`` (list, may be edited), ``loss``, ``optimizer``, ``metrics`` (set by
    ``compile``), ``history`` (the last ``fit``'s History), ``stop_training`` (a callback sets it).
    """

    default_name = "sequential"
    layers: list = None  # a plain list here (Model.layers is a derived property)

    def __init__(self, layers=None, name: str | None = None):
        self._init_model(name)
        self.layers: list[Layer] = []
        self._chain_ids = None
        for layer in layers or []:
            self.add(layer)

    # ---- building ---------------------------------------------------------------------------
    def add(self, layer: Layer):
        """Append a layer."""
        if not isinstance(layer, Layer):
            raise ValueError(
                f"Sequential.add: expected a fastnet Layer, got {type(layer).__name__} (position {len(self.layers)})"
            )
        self.layers.append(layer)
        return self

    def _current_plan(self, fused: bool):
        ids = tuple(id(layer) for layer in self.layers)
        if ids != self._chain_ids:  # the list was edited: rebuild the chain
            nodes = [
                (layer, [("input", 0) if i == 0 else ("node", i - 1)], False) for i, layer in enumerate(self.layers)
            ]
            out = [("node", len(nodes) - 1) if nodes else ("input", 0)]
            # index names, as before graphs: a layer listed twice keeps its first index
            names = {}
            for i, layer in enumerate(self.layers):
                names.setdefault(id(layer), str(i))
            layers = list({id(layer): layer for layer in self.layers}.values())
            self._nodes, self._out_refs, self._layers, self._names = nodes, out, layers, names
            self._plan = graph_build.build_plan(["input"], nodes, out, names)
            self._fused_plan = None
            self.input_names, self._input_shapes, self._output_shapes = ["input"], [None], [None]
            self._multi_in = self._multi_out = self.takes_list = False
            self._chain_ids = ids
        return super()._current_plan(fused)

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(self.layers[index])  # shares the layer objects, like PyTorch
        return self.layers[index]

    def __repr__(self):
        lines = [f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)" if lines else "Sequential()"

    # ---- shapes -----------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple | None:
        """One sample's shape (no batch axis) as last seen by ``forward``/``fit`` (saved with the
        model), else the first layer's ``(in_features,)``; ``None`` when unknown."""
        if self._input_shape is not None:
            return self._input_shape
        if self.layers and hasattr(self.layers[0], "in_features"):
            return (int(self.layers[0].in_features),)
        return None

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = tuple(layer.output_shape(shape))
        return shape

    # ---- computation ----------------------------------------------------------------------------
    def forward(self, x, training: bool | None = None):
        """Run every layer; ``training=None`` uses each layer's own mode (see ``train()``/``eval()``)."""
        if not self.layers:
            raise ValueError("Sequential.forward: the model has no layers")
        if isinstance(x, np.ndarray) and x.ndim >= 1:
            self._input_shape = tuple(x.shape[1:])
        return super().forward(x, training)

    # ---- config -------------------------------------------------------------------------------
    def get_config(self) -> dict:
        from . import _graph_config

        return {"name": self.name, "layers": [_graph_config.layer_entry(layer) for layer in self.layers]}

    @classmethod
    def from_config(cls, config: dict):
        from . import _graph_config

        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError(f"Sequential.from_config: expected a dict with a 'layers' list, got {config!r:.80}")
        layers = [_graph_config.build_layer(spec, f"Sequential layer {i}") for i, spec in enumerate(config["layers"])]
        return cls(layers, name=config.get("name"))
