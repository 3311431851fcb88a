"""ResNet-20 on Fashion-MNIST: residual learning (He et al. 2016, section 4.2) on 28x28 clothes.

``fastnet.models.resnet(20)``: a 16-filter 3x3 stem, three stages of three basic blocks (16, 32, 64
filters on 28x28, 14x14 and 7x7 maps), BatchNorm after every convolution, projection shortcuts where
the shape changes, global average pooling and a 10-way classifier (0.27M parameters). Training as in
the paper's CIFAR runs, shortened: SGD with momentum 0.9, weight decay 5e-4, batch 128, learning rate
0.1 annealed to 0 along a cosine over the epochs (a function of the epoch, so ``--resume`` continues the
same schedule), augmentation by random shifts of up to 2 pixels and horizontal flips. The test split
is only evaluated, never used to choose anything: the reported accuracy is the last epoch's.

    python examples/fashion_resnet.py [--epochs 15] [--depth 20] [--limit N] [--threads 2] [--out r20.npz]
                                      [--resume r20.npz] [--plot curves.png] [--data-dir DIR]

Fashion-MNIST is read from --data-dir, $FASTNET_DATA, ../shared/data, ~/.fastnet/datasets or
/usr/share/datasets/fashion-mnist (``apt-get install -y dataset-fashion-mnist``). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import math
import time

from _common import load

import fastnet as fn
from fastnet.transforms import Compose, RandomFlip, RandomShift


def cosine(base_lr: float, epochs: int):
    """lr(epoch): ``base_lr`` at epoch 0 down to ~0 at the last, along half a cosine."""
    return lambda epoch: 0.5 * base_lr * (1.0 + math.cos(math.pi * epoch / epochs))


class EpochTimer(fn.callbacks.Callback):
    """Seconds of each epoch's training (without the test evaluation fit does after it)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_batch_end(self, batch, logs=None):
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(self._last - self._t0)
        if logs is not None:
            logs["epoch_seconds"] = self.seconds[-1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=15, help="total epochs of the schedule (default 15)")
    p.add_argument("--depth", type=int, default=20, help="6n + 2 (default 20)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only (quick trials)")
    p.add_argument("--stop-after", type=int, default=None, help="stop after this many epochs of the schedule")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="save the trained model (and optimizer state) here")
    p.add_argument("--resume", default=None, help="continue a model saved by --out")
    p.add_argument("--plot", default=None, help="write the loss/accuracy curves PNG")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()

    if args.threads:
        fn.set_num_threads(args.threads)
    (x_train, y_train), (x_test, y_test) = load("fashion-mnist", args.data_dir, normalize=True)
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    fn.seed(args.seed)
    if args.resume:
        model = fn.load(args.resume)
    else:
        model = fn.models.resnet(args.depth, input_shape=(1, 28, 28), num_classes=10)
        model.compile(
            optimizer=fn.optim.SGD(lr=args.lr, momentum=0.9, weight_decay=5e-4),
            loss="softmax_cross_entropy",
            metrics=["accuracy"],
        )
    start = model.epochs_trained
    stop = args.epochs if args.stop_after is None else min(args.epochs, start + args.stop_after)
    print(
        f"{model.name}: {model.num_params():,} parameters, {len(x_train)} training images, "
        f"epochs {start + 1}..{stop} of {args.epochs}, {fn.get_num_threads()} threads"
    )
    loader = fn.DataLoader(
        x_train,
        y_train,
        batch_size=args.batch_size,
        seed=args.seed,
        num_classes=10,
        transform=Compose([RandomShift(2), RandomFlip(0.5)]),
    )
    timer = EpochTimer()
    schedule = fn.callbacks.LearningRateScheduler(cosine(args.lr, args.epochs))
    with loader:
        history = model.fit(
            loader,
            epochs=stop,
            initial_epoch=start,
            validation_data=(x_test, y_test),
            callbacks=[schedule, timer],
            verbose=2,
        )
    test_loss, test_acc = model.evaluate(x_test, y_test)
    per_epoch = sum(timer.seconds) / max(1, len(timer.seconds))
    print(
        f"test accuracy {test_acc:.4f} (loss {test_loss:.4f}) after {model.epochs_trained} epochs; "
        f"{per_epoch:.1f} s per training epoch ({len(x_train) / per_epoch:.0f} images/s)"
    )
    if args.out:
        model.save(args.out)
        print(f"saved {args.out}")
    if args.plot:
        fn.plot_history(
            {k: v for k, v in history.history.items() if k != "epoch_seconds"},
            args.plot,
            title=f"{model.name} on Fashion-MNIST",
        )
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
