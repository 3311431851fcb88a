"""The CLI's model and optimizer choices: zoo names, JSON layer lists, optimizer names, and its one-line error."""

from __future__ import annotations

import json
import re
from pathlib import Path

MODELS = ("mlp", "lenet", "cnn", "resnet<depth>", "plain<depth>")  # depth 6n + 2: resnet20, plain20, resnet32, ...
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")


class CLIError(Exception):
    """A user mistake: reported as one line, exit status 1."""


# ---- models ----------------------------------------------------------------------------------------
def build_model(spec: str, input_shape: tuple, classes: int):
    """A ``fastnet.models`` name (``mlp``, ``lenet``, ``cnn``, ``resnet20``, ``plain20``, ...; sized for
    ``input_shape`` = (C, H, W)) or a JSON layer list."""
    from . import models

    name = spec.strip()
    if re.fullmatch(r"mlp|lenet5?|cnn|small_cnn|(resnet|plain)\d+", name):
        try:
            return models.build(name, input_shape, classes)
        except ValueError as e:
            raise CLIError(f"--model {name}: {e}") from None
    return model_from_json(spec)


def model_from_json(spec: str):
    """A Sequential from JSON text or a .json file: a list (or ``{"layers": [...]}``) whose items are
    ``"ReLU"``, ``["Dense", {"in_features": 289, "out_features": 64}]`` or
    ``{"class": "Dense", "config": {...}}``."""
    from . import Sequential
    from .layers.base import LAYER_CLASSES

    text = spec
    if not spec.lstrip().startswith(("[", "{")):
        path = Path(spec)
        if path.suffix != ".json":
            raise CLIError(
                f"--model must be one of {', '.join(MODELS)}, a JSON layer list or a .json file, got {spec!r}"
            )
        if not path.is_file():
            raise CLIError(f"model spec file not found: {path}")
        text = path.read_text()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise CLIError(f"--model is not valid JSON: {e}") from None
    items = doc.get("layers") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise CLIError('--model JSON must be a non-empty list of layers or {"layers": [...]}')
    layers = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            name, cfg = item, {}
        elif isinstance(item, list) and len(item) in (1, 2) and isinstance(item[0], str):
            name, cfg = item[0], (item[1] if len(item) == 2 else {})
        elif isinstance(item, dict) and "class" in item:
            name, cfg = item["class"], item.get("config", {k: v for k, v in item.items() if k != "class"})
        else:
            raise CLIError(
                f'--model layer {i}: expected "Name", ["Name", {{config}}] or '
                f'{{"class": "Name", "config": {{...}}}}, got {item!r}'
            )
        cls = LAYER_CLASSES.get(name)
        if cls is None or not isinstance(cfg, dict):
            raise CLIError(f"--model layer {i}: unknown layer {name!r}; known: {', '.join(sorted(LAYER_CLASSES))}")
        try:
            layers.append(cls(**cfg))
        except (TypeError, ValueError) as e:
            raise CLIError(f"--model layer {i} ({name}): {e}") from None
    return Sequential(layers)


def make_optimizer(name: str, lr: float | None):
    from . import optim

    cls = {
        "sgd": optim.SGD,
        "adam": optim.Adam,
        "adamw": optim.AdamW,
        "rmsprop": optim.RMSprop,
        "adagrad": optim.AdaGrad,
    }[name]
    return cls() if lr is None else cls(lr=lr)
