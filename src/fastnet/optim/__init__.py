"""Optimizers and learning-rate schedules.

Defaults follow PyTorch except where a class says otherwise (RMSprop uses Keras's
``rho=0.9``, ``eps=1e-7``; SGD's ``lr=0.01`` is Keras's). Usage with a model::

    model.compile(optimizer=fastnet.optim.Adam(lr=1e-3), loss="softmax_cross_entropy")

and by hand: ``opt.step([(key, param, grad, lr_mult), ...])`` updates each array in place.
"""

from __future__ import annotations

from .adagrad import AdaGrad
from .adam import Adam, AdamW
from .base import OPTIMIZER_CLASSES, Optimizer
from .rmsprop import RMSprop
from .schedules import CosineAnnealingLR, ExponentialLR, ReduceLROnPlateau, StepLR
from .sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "AdaGrad",
    "RMSprop",
    "Adam",
    "AdamW",
    "get",
    "from_config",
    "StepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "ReduceLROnPlateau",
]

_NAMES = {"sgd": SGD, "adagrad": AdaGrad, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def get(identifier) -> Optimizer:
    """An optimizer from a name (``"sgd"``, ``"adagrad"``, ``"rmsprop"``, ``"adam"``, ``"adamw"``;
    any case) with default hyperparameters, a config dict, or an Optimizer (returned as is)."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return from_config(identifier)
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier.strip().lower())
        if cls is not None:
            return cls()
    raise ValueError(f"unknown optimizer {identifier!r}; expected an Optimizer instance or one of {sorted(_NAMES)}")


def from_config(config: dict) -> Optimizer:
    """Rebuild an optimizer (hyperparameters only, no state) from ``get_config()``'s output."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"optimizer config must be a dict with 'class_name' and 'config', got {config!r}")
    cls = OPTIMIZER_CLASSES.get(config["class_name"])
    if cls is None:
        raise ValueError(
            f"unknown optimizer class {config['class_name']!r}; expected one of {sorted(OPTIMIZER_CLASSES)}"
        )
    return cls(**config.get("config", {}))
