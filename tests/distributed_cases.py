"""Training cases run twice by tests/test_distributed.py: by 2 MPI ranks (this file as a script,
under mpirun) and by one process in the test itself; the results must agree.

Each rank seeds differently (rank 0 like the single process), so equal results also prove that
the weights and the shuffle seed are broadcast from rank 0.

    mpirun -n 2 python tests/distributed_cases.py OUT_DIR [CASE ...]   # writes OUT_DIR/rank<r>.npz
    mpirun -n 2 python tests/distributed_cases.py --fail raise|mismatch
"""

from __future__ import annotations

import sys

import numpy as np

import fastnet as fn
from fastnet import layers as L
from fastnet import losses, optim


def _data(n, shape, classes, seed, float_targets=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape))
    if float_targets:
        return x, rng.standard_normal((n, float_targets))
    return x, rng.integers(0, classes, n)


def _mlp(dtype, outputs=4, bn=False):
    layers = [L.Dense(12, 16, dtype=dtype), L.ReLU()]
    if bn:
        layers.insert(1, L.BatchNorm1d(16, dtype=dtype))
    return fn.Sequential(layers + [L.Dense(16, outputs, dtype=dtype)])


def _cnn(dtype):
    return fn.Sequential(
        [
            L.Conv2D(1, 4, 3, dtype=dtype),
            L.ReLU(),
            L.MaxPool2D(2),
            L.Flatten(),
            L.Dense(36, 5, dtype=dtype),
        ]
    )


# name -> (model builder, loss, optimizer, data (n, sample shape, classes, float targets), fit kwargs)
CASES = {
    "mlp_mean_sgd64": (
        lambda: _mlp(np.float64),
        lambda: losses.SoftmaxCrossEntropy(),
        lambda: optim.SGD(lr=0.1, momentum=0.9),
        (100, (12,), 4, 0),
        dict(epochs=2, batch_size=32, validation_data="head"),  # last batch 4: 2 + 2
    ),
    "mlp_sum_adam64": (
        lambda: _mlp(np.float64, outputs=3),
        lambda: losses.MSE(reduction="sum"),
        lambda: optim.Adam(lr=1e-3),
        (70, (12,), 0, 3),
        dict(epochs=1, batch_size=16),  # last batch 6: 3 + 3
    ),
    "mlp_batchmean_sgd32": (
        lambda: _mlp(np.float32, outputs=3),
        lambda: losses.MSE(reduction="batchmean"),
        lambda: optim.SGD(lr=0.01, momentum=0.9, nesterov=True),
        (67, (12,), 0, 3),
        dict(epochs=1, batch_size=16),  # last batch 3: 1 + 2 (unequal slices)
    ),
    "cnn_mean_adam32": (
        lambda: _cnn(np.float32),
        lambda: losses.SoftmaxCrossEntropy(),
        lambda: optim.Adam(lr=1e-3),
        (48, (1, 8, 8), 5, 0),
        dict(epochs=1, batch_size=16),  # 3 steps
    ),
    "cnn_sum_sgd64": (
        lambda: _cnn(np.float64),
        lambda: losses.SoftmaxCrossEntropy(reduction="sum"),
        lambda: optim.SGD(lr=0.01, momentum=0.9),
        (50, (1, 8, 8), 5, 0),
        dict(epochs=1, batch_size=16),  # last batch 2: 1 + 1
    ),
    "short_last_one": (
        lambda: _mlp(np.float64),
        lambda: losses.SoftmaxCrossEntropy(),
        lambda: optim.Adam(lr=1e-2),
        (65, (12,), 4, 0),
        dict(epochs=2, batch_size=32),  # last batch 1: rank 1's slice is empty
    ),
    "batchnorm": (
        lambda: _mlp(np.float64, bn=True),
        lambda: losses.SoftmaxCrossEntropy(),
        lambda: optim.SGD(lr=0.05),
        (64, (12,), 4, 0),
        dict(epochs=2, batch_size=16),
    ),
}


def run_case(name: str, seed: int = 0) -> dict:
    """Train case ``name`` (distributed if fastnet.distributed was initialised) and evaluate the
    initial weights; returns flat arrays: ``w/<key>`` final state, ``eval/...``, ``history/...``."""
    build, loss, opt, (n, shape, classes, float_targets), kwargs = CASES[name]
    rank = fn.distributed.rank()
    fn.seed(seed + 1000 * rank)  # different weights on every rank but rank 0; fit broadcasts
    model = build()
    model.compile(optimizer=opt(), loss=loss(), metrics=[] if float_targets else ["accuracy"])
    model.shuffle_seed = 4321 + rank
    x, y = _data(n, shape, classes, seed, float_targets)
    out = {}
    # evaluate the initial (rank 0's) weights on an odd number of samples and batches
    fn.distributed.broadcast_model(model)
    ev = model.evaluate(x[:53], y[:53], batch_size=16, return_dict=True)
    out.update({f"eval/{k}": np.float64(v) for k, v in ev.items()})
    kwargs = dict(kwargs, verbose=0)
    if kwargs.get("validation_data") == "head":
        kwargs["validation_data"] = (x[:37], y[:37])
    history = model.fit(x, y, **kwargs)
    out.update({f"history/{k}": np.asarray(v, dtype=np.float64) for k, v in history.history.items()})
    out.update({f"w/{k}": v for k, v in model.state_dict().items()})
    return out


def _fail(kind: str) -> None:
    fn.distributed.init()
    fn.seed(0)
    width = 16 + (fn.distributed.rank() if kind == "mismatch" else 0)
    model = fn.Sequential([L.Dense(12, width), L.ReLU(), L.Dense(width, 4)])
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    x, y = _data(512, (12,), 4, 0)

    class RaiseOnRank1(fn.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if fn.distributed.rank() == 1 and batch == 3:
                raise RuntimeError("rank 1 fails on purpose at batch 3")

    model.fit(x, y, epochs=50, batch_size=8, verbose=0, callbacks=[RaiseOnRank1()])


def main(argv) -> int:
    if argv[:1] == ["--fail"]:
        _fail(argv[1])
        return 0
    fn.distributed.init()
    out_dir, names = argv[0], argv[1:] or list(CASES)
    results = {}
    for name in names:
        results.update({f"{name}/{k}": v for k, v in run_case(name).items()})
    np.savez(f"{out_dir}/rank{fn.distributed.rank()}.npz", **results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
