"""How the interop formats name a model's layers: the state_dict prefix of each layer."""

from __future__ import annotations

import re


def named_layers(model) -> list[tuple[str, object]]:
    """``[(prefix, layer)]`` for every leaf layer: its state_dict prefix (``"3"`` in a Sequential,
    dotted ``"block.conv2d"`` in a graph model, recursing into nested models)."""
    if hasattr(model, "named_layers"):
        return list(model.named_layers().items())
    if not hasattr(model, "layers"):
        raise TypeError(f"expected a fastnet model, got {type(model).__name__}")
    refuse_graph(model)
    return [(str(i), layer) for i, layer in enumerate(model.layers)]


def natural_order(names) -> list[str]:
    """``["2.weight", "10.bias"]`` in layer order (numbers compared as numbers)."""
    return sorted(names, key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)])


def refuse_graph(model) -> None:
    """The interop formats walk a chain of layers: a graph ``fastnet.Model`` is refused, not mis-read."""
    from ..model import Model, Sequential

    if isinstance(model, Model) and not isinstance(model, Sequential):
        raise ValueError(
            f"{model.name}: graph models (fastnet.Model) are not supported by this exporter yet; only Sequential"
        )
