"""How the interop formats name a model's layers: the state_dict prefix of each layer."""

from __future__ import annotations

import re


def named_layers(model) -> list[tuple[str, object]]:
    """``[(prefix, layer)]`` for every leaf layer: its state_dict prefix (``"3"`` in a Sequential,
    dotted ``"block.conv2d"`` in a graph model, recursing into nested models)."""
    if not hasattr(model, "named_layers"):
        raise TypeError(f"expected a fastnet model (Sequential or Model), got {type(model).__name__}")
    return list(model.named_layers().items())


def natural_order(names) -> list[str]:
    """``["2.weight", "10.bias"]`` in layer order (numbers compared as numbers)."""
    return sorted(names, key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)])
