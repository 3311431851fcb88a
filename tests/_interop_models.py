"""Models shared by the interop tests: the examples' models and a random stack builder."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

import fastnet as fn
from fastnet import layers as L

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example_module(name: str):
    """Import ``examples/<name>.py`` (they import their ``_common`` helper from their own folder)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mlp(classes=10):
    """The Keras-book MNIST MLP (examples/mnist_keras_book.py)."""
    return fn.Sequential([L.Dense(784, 512), L.ReLU(), L.Dense(512, classes)])


def bn_dropout_avgpool():
    return fn.Sequential(
        [
            L.Conv2D(1, 4, 3, padding=1),
            L.BatchNorm2d(4),
            L.ReLU(),
            L.AvgPool2D(2),
            L.Dropout(0.3),
            L.Conv2D(4, 8, 3, stride=2, padding=1),
            L.BatchNorm2d(8),
            L.ReLU(),
            L.GlobalAvgPool2D(),
            L.Dense(8, 16),
            L.BatchNorm1d(16),
            L.Tanh(),
            L.Dropout(0.5),
            L.Dense(16, 5),
        ]
    )


def warm_up(model, x, y, steps=3):
    """A few training steps so BatchNorm statistics and weights are not at their initial values."""
    for _ in range(steps):
        model.train_on_batch(x, y)
    return model


def random_stack(rng: np.random.Generator):
    """A random valid Sequential over every layer type, and its input shape (C, H, W)."""
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(6, 13)), int(rng.integers(6, 13))
    shape, layers = (c, h, w), []
    for _ in range(int(rng.integers(1, 4))):  # convolutional part
        kind = rng.choice(["conv", "maxpool", "avgpool", "bn", "act", "dropout"])
        cc, hh, ww = shape
        if kind == "conv":
            k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
            pad = (int(rng.integers(0, 2)), int(rng.integers(0, 2)))
            layer = L.Conv2D(cc, int(rng.integers(1, 5)), k, stride=(int(rng.integers(1, 3)), 1), padding=pad)
        elif kind in ("maxpool", "avgpool"):
            k = int(rng.integers(2, 4))
            if min(hh, ww) + 2 < k:
                continue
            cls = L.MaxPool2D if kind == "maxpool" else L.AvgPool2D
            layer = cls(k, stride=int(rng.integers(1, 3)), padding=int(rng.integers(0, k // 2 + 1)))
        elif kind == "bn":
            layer = L.BatchNorm2d(cc)
        elif kind == "act":
            layer = _random_activation(rng)
        else:
            layer = L.Dropout(0.25)
        try:
            shape = layer.output_shape(shape)
        except ValueError:
            continue
        layers.append(layer)
    if rng.random() < 0.3:
        layers.append(L.GlobalAvgPool2D())
        features = shape[0]
    else:
        if rng.random() < 0.5:
            layers.append(L.Reshape((shape[0] * shape[1], -1)))
            layers.append(_random_activation(rng))
        layers.append(L.Flatten())
        features = int(np.prod(shape))
    for _ in range(int(rng.integers(1, 3))):  # dense part
        out = int(rng.integers(2, 9))
        act = rng.choice(["none", "relu", "leaky_relu", "sigmoid", "tanh", "gelu"])
        layers.append(L.Dense(features, out, activation=None if act == "none" else str(act), alpha=0.2))
        if rng.random() < 0.4:
            layers.append(L.BatchNorm1d(out))
        if rng.random() < 0.5:
            layers.append(_random_activation(rng))
        features = out
    return fn.Sequential(layers), (c, h, w)


def _random_activation(rng):
    choice = rng.choice(["relu", "leaky", "sigmoid", "tanh", "gelu", "softmax"])
    return {
        "relu": L.ReLU,
        "leaky": lambda: L.LeakyReLU(0.3),
        "sigmoid": L.Sigmoid,
        "tanh": L.Tanh,
        "gelu": L.GELU,
        "softmax": L.Softmax,
    }[str(choice)]()


def randomise_statistics(model, rng):
    """Non-trivial BatchNorm parameters and running statistics (eval mode uses them)."""
    for layer in model.layers:
        if isinstance(layer, (L.BatchNorm1d, L.BatchNorm2d)):
            n = layer.num_features
            layer.params["weight"][...] = rng.uniform(0.5, 1.5, n)
            layer.params["bias"][...] = rng.normal(0, 0.3, n)
            layer.buffers["running_mean"][...] = rng.normal(0, 0.5, n)
            layer.buffers["running_var"][...] = rng.uniform(0.3, 2.0, n)
        elif "bias" in layer.params:
            layer.params["bias"][...] = rng.normal(0, 0.2, layer.params["bias"].shape)
    return model
