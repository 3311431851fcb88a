"""Shared by the benchmark suites: data, the four benchmark models (fastnet and PyTorch), batch feeders.

The models are the ones issue 3 names:

- M1 ``784-512(relu)-10``, softmax cross-entropy, RMSprop, batch 128 (the Keras book's MNIST MLP)
- M2 ``289-20(sigmoid)-26(sigmoid)``, binary cross-entropy on probabilities, SGD lr 1.0, batch 1024 (the course lab)
- M3 LeNet-5, softmax cross-entropy, SGD momentum 0.9, batch 64 and 256
- M4 ``conv 32@3x3-relu-conv 64@3x3-relu-maxpool 2-dropout 0.25-flatten-dense 128-relu-dropout 0.5-dense 10``,
  Adam, batch 128 (the Keras ``mnist_cnn`` example)
- R20 ResNet-20 (``fastnet.models.resnet(20)``: He et al. 2016 section 4.2, width 16, BatchNorm, projection
  shortcuts), softmax cross-entropy, SGD momentum 0.9 with weight decay 5e-4, batch 128, 28x28 inputs (issue 7)

Real data (MNIST for M1/M3/M4, the letters data for M2) is read from ``$FASTNET_BENCH_DATA`` or the repository's
``../shared/data``; when it is absent, random data of the same shape is used and ``source`` says so.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def data_dirs() -> list[Path]:
    dirs = []
    for var in ("FASTNET_BENCH_DATA", "FASTNET_DATA"):
        if os.environ.get(var):
            dirs.append(Path(os.environ[var]))
    dirs.append(REPO.parent / "shared" / "data")
    return dirs


def _find(name: str) -> Path | None:
    for d in data_dirs():
        if (d / name).is_file():
            return d / name
    return None


@dataclass
class Dataset:
    x: np.ndarray  # float32, the model's input layout
    y: np.ndarray  # int64 class ids
    y_onehot: np.ndarray  # float32 one-hot (BCE targets)
    source: str  # file it came from, or "random (no <file> found)"


def _onehot(y, classes):
    out = np.zeros((y.size, classes), dtype=np.float32)
    out[np.arange(y.size), y] = 1.0
    return out


def mnist(images: bool, n: int = 60000) -> Dataset:
    """MNIST training images scaled to [0, 1]: (N, 1, 28, 28) when ``images`` else (N, 784)."""
    path = _find("mnist.npz")
    if path is not None:
        with np.load(path, allow_pickle=False) as d:
            x = d["x_train"][:n].astype(np.float32) / 255.0
            y = d["y_train"][:n].astype(np.int64)
        source = str(path)
    else:
        rng = np.random.default_rng(0)
        x = rng.random((n, 28, 28), dtype=np.float32)
        y = rng.integers(0, 10, n).astype(np.int64)
        source = "random (no mnist.npz found)"
    x = x.reshape(n, 1, 28, 28) if images else x.reshape(n, 784)
    return Dataset(np.ascontiguousarray(x), y, _onehot(y, 10), source)


def letters() -> Dataset:
    """The course lab's 17x17 binary letters, flattened to (N, 289), 26 classes."""
    path = _find("letters.npz")
    if path is not None:
        with np.load(path, allow_pickle=False) as d:
            x = d["x_train"].reshape(len(d["x_train"]), 289).astype(np.float32)
            y = d["y_train"].astype(np.int64)
        source = str(path)
    else:
        rng = np.random.default_rng(0)
        x = (rng.random((40000, 289)) < 0.3).astype(np.float32)
        y = rng.integers(0, 26, 40000).astype(np.int64)
        source = "random (no letters.npz found)"
    return Dataset(x, y, _onehot(y, 26), source)


@dataclass(frozen=True)
class Spec:
    model: str  # "M1" .. "M4"
    batch: int
    title: str

    @property
    def group(self) -> str:
        return f"step {self.model} {self.title} b{self.batch}"

    @property
    def images(self) -> bool:
        return self.model in ("M3", "M4", "R20")


SPECS = [
    Spec("M1", 128, "mlp 784-512-10 rmsprop"),
    Spec("M2", 1024, "mlp 289-20-26 sigmoid bce sgd"),
    Spec("M3", 64, "lenet5 sgd-momentum"),
    Spec("M3", 256, "lenet5 sgd-momentum"),
    Spec("M4", 128, "cnn 32-64 dropout adam"),
    Spec("R20", 128, "resnet20 sgd-momentum"),
]


def spec_names(specs) -> dict[str, int]:
    """Index in ``specs`` by name: ``M3b64``-style, and the bare model name where the model has one batch size."""
    names = {f"{s.model}b{s.batch}": i for i, s in enumerate(specs)}
    names.update({s.model: i for i, s in enumerate(specs) if sum(t.model == s.model for t in specs) == 1})
    return names


_DATA_CACHE: dict = {}


def dataset_for(model: str) -> Dataset:
    key = "letters" if model == "M2" else ("mnist-img" if model in ("M3", "M4", "R20") else "mnist-flat")
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = letters() if model == "M2" else mnist(images=key == "mnist-img")
    return _DATA_CACHE[key]


class Batches:
    """Cycles through a dataset one batch at a time, so each timed step sees fresh data (as in training)."""

    def __init__(self, x, y, batch: int):
        self.x, self.y, self.batch = x, y, batch
        self.n = (len(x) // batch) * batch
        self.i = 0

    def next(self):
        if self.i + self.batch > self.n:
            self.i = 0
        s = slice(self.i, self.i + self.batch)
        self.i += self.batch
        return self.x[s], self.y[s]


# ---- timing -------------------------------------------------------------------------------


def time_steps(net, feeder, steps) -> list[float]:
    """Seconds of each of ``steps`` training steps of ``net`` on the next batches of ``feeder`` (a ``Batches``)."""
    out = []
    for _ in range(steps):
        x, y = feeder.next()
        t0 = time.perf_counter()
        net.train_on_batch(x, y)
        out.append(time.perf_counter() - t0)
    return out


def median_of(benchmark) -> float:
    return float(benchmark.stats.stats.median)


def run_pedantic(benchmark, fn, rounds, setup=None):
    """Warm up then time ``fn`` (one call per round) in pytest-benchmark's pedantic mode.

    ``rounds`` is (timed rounds, warm-up rounds, seconds budget). A call that is slow enough to blow the budget gets
    fewer timed rounds (never fewer than 5), so the slow NumPy references do not dominate the run time.
    """
    n_rounds, n_warmup, budget = rounds
    args, kwargs = setup() if setup is not None else ((), {})
    t = time.perf_counter()
    fn(*args, **kwargs)  # one probe call (after the caller's compile call) to size the run
    per_call = time.perf_counter() - t
    n_rounds = max(min(n_rounds, 5), min(n_rounds, int(budget / max(per_call, 1e-9))))
    benchmark.extra_info["rounds"] = n_rounds
    if setup is None:
        benchmark.pedantic(fn, rounds=n_rounds, warmup_rounds=n_warmup, iterations=1)
    else:
        benchmark.pedantic(fn, setup=setup, rounds=n_rounds, warmup_rounds=n_warmup, iterations=1)
    return median_of(benchmark)


# ---- fastnet models ------------------------------------------------------------------------


def fastnet_model(model: str):
    """A compiled fastnet Sequential for ``model`` ("M1" .. "M4") and whether it wants one-hot targets."""
    import fastnet as fn
    from fastnet import layers as L

    if model == "M1":
        net = fn.Sequential([L.Dense(784, 512), L.ReLU(), L.Dense(512, 10)])
        net.compile(optimizer=fn.optim.RMSprop(lr=1e-3), loss="softmax_cross_entropy")
        return net, False
    if model == "M2":
        net = fn.Sequential([L.Dense(289, 20, init="glorot"), L.Sigmoid(), L.Dense(20, 26, init="glorot"), L.Sigmoid()])
        net.compile(optimizer=fn.optim.SGD(lr=1.0), loss="binary_cross_entropy")
        return net, True
    if model == "M3":
        net = fn.models.lenet5()  # the one LeNet-5 definition (ReLU, max-pool)
        net.compile(optimizer=fn.optim.SGD(lr=0.01, momentum=0.9), loss="softmax_cross_entropy")
        return net, False
    if model == "M4":
        net = fn.Sequential(
            [
                L.Conv2D(1, 32, 3),
                L.ReLU(),
                L.Conv2D(32, 64, 3),
                L.ReLU(),
                L.MaxPool2D(2),
                L.Dropout(0.25),
                L.Flatten(),
                L.Dense(9216, 128),
                L.ReLU(),
                L.Dropout(0.5),
                L.Dense(128, 10),
            ]
        )
        net.compile(optimizer=fn.optim.Adam(lr=1e-3), loss="softmax_cross_entropy")
        return net, False
    if model == "R20":
        net = fn.models.resnet(20, input_shape=(1, 28, 28), num_classes=10)
        net.compile(optimizer=fn.optim.SGD(lr=0.1, momentum=0.9, weight_decay=5e-4), loss="softmax_cross_entropy")
        return net, False
    raise ValueError(f"unknown model {model!r}, expected M1..M4 or R20")


# ---- the same models in PyTorch ------------------------------------------------------------


def torch_model(model: str, channels_last: bool = False):
    """(module, loss, optimizer, wants_onehot) with the same layers and hyperparameters as fastnet's."""
    import torch
    from torch import nn

    if model == "M1":
        net = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
        # Keras's RMSprop (rho 0.9, eps 1e-7), which fastnet follows; PyTorch's default alpha is 0.99.
        opt = torch.optim.RMSprop(net.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
        return net, nn.CrossEntropyLoss(), opt, False
    if model == "M2":
        net = nn.Sequential(nn.Linear(289, 20), nn.Sigmoid(), nn.Linear(20, 26), nn.Sigmoid())
        return net, nn.BCELoss(), torch.optim.SGD(net.parameters(), lr=1.0), True
    if model == "M3":
        net = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(400, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, 10),
        )
        opt_factory = lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)  # noqa: E731
    elif model == "M4":
        net = nn.Sequential(
            nn.Conv2d(1, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
            nn.Flatten(),
            nn.Linear(9216, 128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, 10),
        )
        opt_factory = lambda p: torch.optim.Adam(p, lr=1e-3)  # noqa: E731
    elif model == "R20":
        net = torch_resnet(20)
        opt_factory = lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4)  # noqa: E731
    else:
        raise ValueError(f"unknown model {model!r}, expected M1..M4 or R20")
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net, nn.CrossEntropyLoss(), opt_factory(net.parameters()), False


def torch_resnet(depth: int, width: int = 16, in_channels: int = 1, classes: int = 10):
    """The graph of ``fastnet.models.resnet``: 3x3 conv-BN-ReLU stem, three stages of basic blocks
    (stride 2 at the start of stages 2 and 3), 1x1 conv-BN projections where the shape changes,
    global average pooling, a linear classifier; convolutions without bias."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.shortcut = nn.Identity()
            if stride != 1 or c_in != c_out:
                self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

        def forward(self, x):
            h = self.bn1(self.conv1(x)).relu()
            return (self.bn2(self.conv2(h)) + self.shortcut(x)).relu()

    n = (depth - 2) // 6
    layers = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    c_in = width
    for stage in range(3):
        c_out = width * 2**stage
        for b in range(n):
            layers.append(Block(c_in, c_out, 2 if stage > 0 and b == 0 else 1))
            c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, classes)]
    return nn.Sequential(*layers)


def torch_step(net, loss_fn, opt, compiled: bool = False):
    """One PyTorch training step, returning the loss as a float like ``train_on_batch``; ``compiled``: the module
    and ``opt.step`` under ``torch.compile`` (Inductor, mode default), compiled at the first call."""
    import torch

    forward, update = (torch.compile(net), torch.compile(opt.step)) if compiled else (net, opt.step)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(forward(x), y)
        loss.backward()
        update()
        return loss.item()

    return step


def torch_batches(ds: Dataset, spec_or_batch, onehot: bool, channels_last: bool = False) -> Batches:
    import torch

    batch = getattr(spec_or_batch, "batch", spec_or_batch)
    x = torch.from_numpy(ds.x)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(ds.y_onehot if onehot else ds.y)

    feeder = Batches(x, y, batch)
    if channels_last:
        base_next = feeder.next

        def next_cl():
            xb, yb = base_next()
            return xb.contiguous(memory_format=torch.channels_last), yb

        feeder.next = next_cl
    return feeder
