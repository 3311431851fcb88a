"""The MNIST example of "Deep Learning with Python" (Chollet), in fastnet.

``Dense(784, 512) - ReLU - Dense(512, 10)``, RMSprop (lr 1e-3), batch 128, 5 epochs, pixels
scaled to [0, 1]. The book reports 98.9% training and 97.8% test accuracy.

    python examples/mnist_keras_book.py [--data-dir DIR] [--epochs 5] [--seed 0] [--plot curves.png]

MNIST is read from --data-dir, $FASTNET_DATA, ../shared/data or ~/.fastnet/datasets (never downloaded here).
"""

from __future__ import annotations

import argparse
import time

from _common import load

import fastnet as fn
from fastnet import layers as L


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default=None, help="write the loss/accuracy curves to this PNG")
    args = p.parse_args()

    (x_train, y_train), (x_test, y_test) = load("mnist", args.data_dir, normalize=True, flatten=True)
    fn.seed(args.seed)
    model = fn.Sequential([L.Dense(784, 512), L.ReLU(), L.Dense(512, 10)])
    model.compile(optimizer=fn.optim.RMSprop(lr=1e-3), loss="softmax_cross_entropy", metrics=["accuracy"])
    model.summary()
    t0 = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=128, verbose=2)
    seconds = time.perf_counter() - t0
    _, train_acc = model.evaluate(x_train, y_train)
    _, test_acc = model.evaluate(x_test, y_test)
    print(
        f"train accuracy {train_acc:.4f} (book: 0.989), test accuracy {test_acc:.4f} (book: 0.978), "
        f"{seconds:.0f}s of training"
    )
    if args.plot:
        fn.plot_history(history, args.plot, title="MNIST 784-512-10, RMSprop")
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
