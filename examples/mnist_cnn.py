"""LeNet-5 and a small CNN on MNIST and Fashion-MNIST.

LeNet-5 (LeCun et al. 1998, with ReLU and max pooling): ``Conv(1, 6, 5, padding=2) - pool -
Conv(6, 16, 5) - pool - 120 - 84 - 10``. The small CNN: two 3x3 conv blocks (16 and 32 channels)
with 2x2 pooling, then 64 hidden units. Adam (lr 1e-3), batch 128, images scaled to [0, 1] (NCHW).

    python examples/mnist_cnn.py [--dataset mnist|fashion-mnist|both] [--model lenet|cnn|both]
                                 [--epochs 3] [--limit N] [--data-dir DIR] [--augment]
    mpirun -n 2 python examples/mnist_cnn.py --distributed ...   # data-parallel over 2 MPI ranks

MNIST is read from --data-dir, $FASTNET_DATA, ../shared/data or ~/.fastnet/datasets; Fashion-MNIST also
from /usr/share/datasets/fashion-mnist (``apt-get install -y dataset-fashion-mnist``). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import time

from _common import load

import fastnet as fn
from fastnet.transforms import RandomShift

lenet5, small_cnn = fn.models.lenet5, fn.models.small_cnn  # the models, importable from here as before


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=("mnist", "fashion-mnist", "both"), default="mnist")
    p.add_argument("--model", choices=("lenet", "cnn", "both"), default="both")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    p.add_argument("--augment", action="store_true", help="random shifts of up to 2 pixels")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--distributed",
        action="store_true",
        help="under mpirun: train data-parallel (needs mpi4py); batch 128 is global",
    )
    args = p.parse_args()
    if args.distributed:
        fn.distributed.init()  # a no-op outside mpirun
    with fn.distributed.quiet():  # only rank 0 prints
        run(args)


def run(args):

    names = ("mnist", "fashion-mnist") if args.dataset == "both" else (args.dataset,)
    builders = {"lenet": lenet5, "cnn": small_cnn}  # the CLI's models too (fastnet.models)
    models = list(builders) if args.model == "both" else [args.model]
    rows = []
    for name in names:
        (x_train, y_train), (x_test, y_test) = load(name, args.data_dir, normalize=True)
        if args.limit:
            x_train, y_train = x_train[: args.limit], y_train[: args.limit]
        for m in models:
            fn.seed(args.seed)
            model = builders[m]()
            model.compile(optimizer=fn.optim.Adam(lr=1e-3), loss="softmax_cross_entropy", metrics=["accuracy"])
            loader = fn.DataLoader(
                x_train,
                y_train,
                batch_size=128,
                seed=args.seed,
                num_classes=10,
                transform=RandomShift(2) if args.augment else None,
            )
            print(f"\n== {model.name} on {name} ({len(x_train)} training images) ==")
            t0 = time.perf_counter()
            with loader:
                model.fit(loader, epochs=args.epochs, validation_data=(x_test, y_test), verbose=2)
            seconds = time.perf_counter() - t0
            _, test_acc = model.evaluate(x_test, y_test)
            rows.append((name, model.name, test_acc, seconds))
    print("\ndataset         model       test acc   train time")
    for name, model_name, acc, seconds in rows:
        print(f"{name:14s}  {model_name:10s}  {acc:8.4f}  {seconds:8.0f}s")


if __name__ == "__main__":
    main()
