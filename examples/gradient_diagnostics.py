"""Where gradients vanish: per-layer gradient norms recorded by ``fastnet.diagnostics.LayerStats``.

Two experiments, each writing a PNG of per-layer gradient norms over training (``fn.plot_gradient_norms``):

``lab``: the course lab's ``Dense(289, 20) - Sigmoid - Dense(20, 26) - Sigmoid`` on the bundled
letters, batch 1024, trained once with the quadratic loss and once with cross-entropy. The quadratic
loss's output gradient ``(p - t) p (1 - p)`` vanishes where a sigmoid output saturates, cross-entropy's
``p - t`` does not. To compare true gradients, the quadratic run uses ``QuadraticLoss(lab_lr=False)``
with SGD lr 1000/1024: exactly the lab's updates (its lr 1000 on a gradient divided by the batch size).

``resnet``: plain-20 against ResNet-20 (``fastnet.models``), same data, seed and SGD settings, on a
Fashion-MNIST subset. Without shortcuts, the gradient reaching the early layers of the 20-layer stack
is much smaller than at its top; with them it is not.

    python examples/gradient_diagnostics.py lab [--epochs 20] [--out docs/gradients_lab.png]
    python examples/gradient_diagnostics.py resnet [--limit 4000] [--epochs 2] [--out docs/gradients_resnet.png]
"""

from __future__ import annotations

import argparse

import numpy as np

import fastnet as fn
from fastnet import layers as L
from fastnet import losses
from fastnet.diagnostics import LayerStats


def summarize(label, stats, history):
    rec = stats.record
    names = rec["weighted"]
    first, last = rec["grad_norm"][names[0]], rec["grad_norm"][names[-1]]
    acc = history.history.get("val_accuracy", [float("nan")])
    print(
        f"{label:28s} val acc after epoch 1 {acc[0]:.4f}, last {acc[-1]:.4f}; gradient norm first/last weighted "
        f"layer: median {np.median(first):.3g} / {np.median(last):.3g} (ratio {np.median(first) / np.median(last):.3g})"
    )
    dead = rec.get("dead_fraction", {})
    if dead:
        print(f"{'':28s} dead ReLU units at the end: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in dead.items()))


def lab(args):
    (x_train, y_train), (x_val, y_val), _ = fn.datasets.letters(flatten=True)
    runs = {}
    for label, loss, lr in (
        ("quadratic loss", losses.QuadraticLoss(lab_lr=False), 1000.0 / 1024),
        ("cross-entropy", losses.BinaryCrossEntropy(reduction="batchmean"), 1.0),
    ):
        fn.seed(args.seed)
        model = fn.Sequential(
            [L.Dense(289, 20, init="glorot"), L.Sigmoid(), L.Dense(20, 26, init="glorot"), L.Sigmoid()]
        )
        model.compile(optimizer=fn.optim.SGD(lr=lr), loss=loss, metrics=["accuracy"])
        stats = LayerStats(every=args.every, probe=x_train[:1024])
        history = model.fit(
            x_train, y_train, epochs=args.epochs, batch_size=1024, validation_data=(x_val, y_val), verbose=0,
            callbacks=[stats],
        )  # fmt: skip
        summarize(label, stats, history)
        runs[label] = stats
    return runs, "course lab sigmoid net on letters: quadratic vs cross-entropy"


def resnet(args):
    from _common import load

    (x_train, y_train), (x_test, y_test) = load("fashion-mnist", args.data_dir, normalize=True)
    x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    runs = {}
    for name in ("plain20", "resnet20"):
        fn.seed(args.seed)
        model = fn.models.build(name, (1, 28, 28), 10)
        model.compile(optimizer=fn.optim.SGD(lr=0.05, momentum=0.9), loss="softmax_cross_entropy", metrics=["accuracy"])
        stats = LayerStats(every=args.every, probe=x_train[:128])
        history = model.fit(
            x_train, y_train, epochs=args.epochs, batch_size=128, validation_data=(x_test[:1000], y_test[:1000]),
            verbose=0, callbacks=[stats],
        )  # fmt: skip
        summarize(name, stats, history)
        runs[name] = stats
    return runs, f"plain-20 vs ResNet-20, Fashion-MNIST ({len(x_train)} images)"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", choices=("lab", "resnet"))
    p.add_argument("--epochs", type=int, default=None, help="default: 20 (lab), 2 (resnet)")
    p.add_argument("--limit", type=int, default=4000, help="resnet: training images used")
    p.add_argument("--every", type=int, default=None, help="record every N batches (default: 1 lab, 5 resnet)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None, help="PNG to write (default docs/gradients_<experiment>.png)")
    args = p.parse_args()
    args.epochs = args.epochs or (20 if args.experiment == "lab" else 2)
    args.every = args.every or (1 if args.experiment == "lab" else 5)
    runs, title = (lab if args.experiment == "lab" else resnet)(args)
    out = args.out or f"docs/gradients_{args.experiment}.png"
    fn.plot_gradient_norms(runs, out, title=title)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
