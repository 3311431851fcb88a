"""The ``fastnet`` command line (also ``python -m fastnet``).

    fastnet train [--dataset letters|mnist|fashion-mnist|PATH.npz] [--model mlp|lenet|cnn|resnet20|plain20|JSON]
                  [--augment] [--epochs N] [--batch-size N] [--optimizer NAME] [--lr X] [--seed N] [--threads N]
                  [--out model.npz] [--plot curves.png] [--resume model.npz [--initial-epoch K]]
    fastnet evaluate model.npz [--dataset ...] [--split test|val|train]
    fastnet predict model.npz image.png [image.png ...] [--invert] [--classes NAME]
    fastnet summary model.npz

With no options ``fastnet train`` trains a small MLP on the bundled letters data (offline,
well under a minute on 2 cores) and prints validation and test accuracy. Every dataset is
scaled by one rule decided from its data, not its name (``fastnet.preprocessing``: 0/1 images
kept, 8-bit pixels / 255, floats as they are; NCHW for convolutional models, flat for models
starting with Dense); the record of it is saved in the model, ``evaluate`` refuses data prepared
differently and ``predict`` maps image pixels onto the training range. User mistakes (missing file, bad
option, model/data mismatch) print one line on stderr and exit non-zero; set
``FASTNET_DEBUG=1`` to see the traceback instead. Under ``mpirun -n N`` (with mpi4py), ``train``
and ``evaluate`` run as N data-parallel ranks (``fastnet.distributed``); rank 0 prints and writes.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

from ._cli_data import DATASETS, layout, load_data, load_image, num_classes, training_record, wants_flat  # noqa: F401
from ._cli_interop import add_export_command, add_tensorboard_option, tensorboard_callbacks
from ._cli_models import MODELS, OPTIMIZERS, CLIError, build_model, make_optimizer  # noqa: F401
from .preprocessing import check_inputs


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump)."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(2)


def check_fits(model, x: np.ndarray, what: str) -> None:
    """Run one sample through the model so a shape mismatch becomes one clear line."""
    try:
        model.forward(x[:1], training=False)
    except ValueError as e:
        raise CLIError(f"model does not fit {what} (samples of shape {x.shape[1:]}): {e}") from None


def _accuracy(result) -> tuple[float, float | None]:
    if isinstance(result, dict):
        return float(result["loss"]), result.get("accuracy")
    if isinstance(result, (list, tuple)):
        return float(result[0]), (float(result[1]) if len(result) > 1 else None)
    return float(result), None


# ---- commands --------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    import fastnet

    callbacks = tensorboard_callbacks(args)  # a missing optional library fails now, not after training
    if args.plot:  # fail now, not after training
        from .plotting import require_matplotlib

        require_matplotlib()
    from ._atomic_write import check_writable

    for option, target in (("--out", args.out), ("--plot", args.plot)):
        if target:  # an unwritable path fails now, naming it, not after the whole run
            check_writable(target, option)
    if args.threads is not None:
        fastnet.set_num_threads(args.threads)
    fastnet.seed(args.seed)
    data = load_data(args.dataset, args.data_dir)
    classes = num_classes(data)
    if args.limit is not None:  # quick trials: the first N training samples
        data["train"] = tuple(a[: args.limit] for a in data["train"])
    x_train = data["train"][0]
    if args.resume:
        model = _load_model(args.resume)
        if not model.compiled:
            raise CLIError(f"{args.resume} was saved without compile(); cannot resume training")
    else:
        if x_train.ndim != 4:
            raise CLIError(
                f"dataset {args.dataset} has samples of shape {x_train.shape[1:]}; "
                f"the built-in models need images (C, H, W) or (H, W)"
            )
        model = build_model(args.model, x_train.shape[1:], classes)
        model.compile(
            optimizer=make_optimizer(args.optimizer, args.lr), loss="softmax_cross_entropy", metrics=["accuracy"]
        )
    splits = {k: (layout(model, x), y) for k, (x, y) in data.items()}
    check_fits(model, splits["train"][0], f"dataset {args.dataset}")
    if getattr(model, "preprocessing", None):  # resumed: the data must be prepared as the first run's
        check_inputs(model.preprocessing, splits["train"][0], f"dataset {args.dataset} (train)")
    else:
        model.preprocessing = training_record(model, data, splits["train"][0])
    if not args.resume:
        model.summary(input_shape=splits["train"][0].shape[1:], print_fn=None if args.verbose == 0 else print)
    verbose = args.verbose if args.verbose is not None else (1 if sys.stdout.isatty() else 2)
    # A resumed run continues where the checkpoint stopped (the epoch count is saved in it);
    # --epochs is always the number of epochs to run now.
    start = args.initial_epoch if args.initial_epoch is not None else (model.epochs_trained if args.resume else 0)
    fit_args = dict(
        epochs=start + args.epochs,
        validation_data=splits["val"],
        verbose=verbose,
        initial_epoch=start,
        callbacks=callbacks,
    )
    if args.augment:
        with augmented_loader(splits["train"], x_train.shape[1:], args.batch_size, args.seed, classes) as loader:
            history = model.fit(loader, **fit_args)
    else:
        history = model.fit(*splits["train"], batch_size=args.batch_size, **fit_args)
    _, val_acc = _accuracy(model.evaluate(*splits["val"], return_dict=True))
    test_loss, test_acc = _accuracy(model.evaluate(*splits["test"], return_dict=True))
    print(f"validation accuracy: {val_acc:.4f}")
    print(f"test accuracy: {test_acc:.4f} (loss {test_loss:.4f})")
    if args.out and fastnet.distributed.is_main():  # under mpirun, rank 0 writes the files
        model.save(args.out)
        print(f"saved model to {args.out}")
    if args.plot and fastnet.distributed.is_main():
        fastnet.plot_history(history, args.plot, title=f"{model.name} on {args.dataset}")
        print(f"wrote training curves to {args.plot}")
    return 0


def augmented_loader(train, image_shape, batch_size, seed, classes):
    """A DataLoader that shifts each training image by up to 2 pixels (``--augment``); seeded, so a
    run is reproducible. Flat batches (MLP) are shifted as the images they were."""
    from .data import DataLoader
    from .transforms import RandomShift

    x, y = train
    shift = RandomShift(2, image_shape=None if x.ndim == 4 else tuple(image_shape))
    return DataLoader(x, y, batch_size=batch_size, shuffle=True, seed=seed, transform=shift, num_classes=classes)


def _load_model(path):
    import fastnet

    if not Path(path).is_file():
        raise CLIError(f"model file not found: {path}")
    return fastnet.load(path)


def cmd_evaluate(args) -> int:
    model = _load_model(args.model)
    if not model.compiled:
        raise CLIError(f"{args.model} was saved without compile(); it has no loss to evaluate")
    data = load_data(args.dataset, args.data_dir)
    x, y = data[args.split]
    x = layout(model, x)
    check_fits(model, x, f"dataset {args.dataset}")
    check_inputs(getattr(model, "preprocessing", None), x, f"dataset {args.dataset} ({args.split})")
    loss, acc = _accuracy(model.evaluate(x, y, batch_size=args.batch_size, return_dict=True))
    line = f"{args.split} loss: {loss:.4f}"
    if acc is not None:
        line += f"  {args.split} accuracy: {acc:.4f}"
    print(f"{line}  ({len(x)} samples of {args.dataset})")
    return 0


def input_shape_of(model) -> tuple:
    """(C, H, W) the model takes; from the saved input shape, or a square Dense input."""
    shape = getattr(model, "_input_shape", None)
    if shape is not None and len(shape) == 3:
        return tuple(int(s) for s in shape)
    first = model.layers[0]
    n = getattr(first, "in_features", None) if wants_flat(model) else None
    if n is None and shape is not None and len(shape) == 1:
        n = int(shape[0])
    if n is not None:
        side = math.isqrt(int(n))
        if side * side == n:
            return (1, side, side)
        raise CLIError(f"the model takes {n} features, not a square grayscale image")
    c = getattr(first, "in_channels", 1)
    for side in (28, 17, 32, *range(8, 65)):  # a conv net accepts many sizes: keep the first that works
        try:
            model.forward(np.zeros((1, c, side, side), model.dtype), training=False)
            return (c, side, side)
        except ValueError:
            continue
    raise CLIError("cannot tell which image size the model takes")


def class_names(kind: str | None, n: int):
    from . import datasets

    table = {
        "letters": datasets.LETTER_NAMES,
        "mnist": datasets.MNIST.class_names,
        "fashion-mnist": datasets.FASHION_MNIST.class_names,
    }
    if kind is not None:
        names = table[kind]
        if len(names) != n:
            raise CLIError(f"--classes {kind} has {len(names)} classes but the model outputs {n}")
        return names
    return {26: datasets.LETTER_NAMES, 10: datasets.MNIST.class_names}.get(n)


def cmd_predict(args) -> int:
    model = _load_model(args.model)
    shape = input_shape_of(model)
    record = getattr(model, "preprocessing", None)
    batch = np.stack([load_image(p, shape, args.invert, record, model.dtype) for p in args.images])
    probs = np.asarray(model.predict(layout(model, batch)))
    names = class_names(args.classes, probs.shape[1])
    for path, p in zip(args.images, probs, strict=True):
        k = int(np.argmax(p))
        label = f"{k}" + (f" ({names[k]})" if names is not None else "")
        print(f"{path}: class {label} probability {float(p[k]):.4f}")
    return 0


def cmd_summary(args) -> int:
    model = _load_model(args.model)
    model.summary()
    return 0


# ---- parser and entry point ------------------------------------------------------------------------
def _positive(kind):
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return v

    return parse


def _non_negative_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="fastnet", description="Train, evaluate and use fastnet models from the shell.")
    sub = p.add_subparsers(dest="command", metavar="{train,evaluate,predict,summary,export}", parser_class=_Parser)

    def data_args(sp):
        sp.add_argument(
            "--dataset",
            default="letters",
            metavar="NAME",
            help="letters (bundled), mnist, fashion-mnist or a .npz file with x_train, y_train, "
            "[x_val, y_val,] x_test, y_test (default: letters)",
        )
        sp.add_argument(
            "--data-dir",
            default=None,
            metavar="DIR",
            help="where MNIST/Fashion-MNIST files are (default: $FASTNET_DATA, ~/.fastnet/datasets, ...)",
        )

    t = sub.add_parser("train", help="train a model (default: an MLP on the bundled letters)")
    data_args(t)
    t.add_argument(
        "--model",
        default="mlp",
        metavar="SPEC",
        help="mlp, lenet, cnn, resnet<depth> or plain<depth> (depth 6n + 2: resnet20, plain20, resnet32, ...; "
        "see fastnet.models), a JSON layer list or a .json file (default: mlp)",
    )
    t.add_argument(
        "--augment", action="store_true", help="shift each training image by up to 2 pixels (seeded by --seed)"
    )
    t.add_argument("--epochs", type=_positive(int), default=5, help="epochs to train (default: 5)")
    t.add_argument("--batch-size", type=_positive(int), default=64, help="default: 64")
    t.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="default: adam")
    t.add_argument("--lr", type=_positive(float), default=None, help="learning rate (default: the optimizer's)")
    t.add_argument(
        "--limit",
        type=_positive(int),
        default=None,
        metavar="N",
        help="train on the first N training samples only (quick trials)",
    )
    t.add_argument("--seed", type=_non_negative_int, default=0, help="default: 0")
    t.add_argument("--threads", type=_positive(int), default=None, help="threads for kernels and BLAS")
    t.add_argument("--out", default=None, metavar="MODEL.npz", help="save the trained model")
    t.add_argument("--plot", default=None, metavar="CURVES.png", help="write loss/accuracy curves")
    t.add_argument(
        "--resume",
        default=None,
        metavar="MODEL.npz",
        help="continue training a saved model (its optimizer state included)",
    )
    t.add_argument(
        "--initial-epoch",
        type=_non_negative_int,
        default=None,
        help="with --resume: override the epochs already done (default: the count saved in the model)",
    )
    t.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=None,
        help="0 silent, 1 progress bar, 2 a line per epoch (default: 1 on a terminal, else 2)",
    )
    add_tensorboard_option(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="loss and accuracy of a saved model on a dataset")
    e.add_argument("model", metavar="MODEL.npz")
    data_args(e)
    e.add_argument("--split", choices=("test", "val", "train"), default="test", help="default: test")
    e.add_argument("--batch-size", type=_positive(int), default=256)
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("predict", help="classify image files with a saved model")
    pr.add_argument("model", metavar="MODEL.npz")
    pr.add_argument("images", nargs="+", metavar="IMAGE")
    pr.add_argument("--invert", action="store_true", help="the images are dark ink on a light background")
    pr.add_argument("--classes", choices=DATASETS, default=None, help="class names to print (default: by output size)")
    pr.set_defaults(func=cmd_predict)

    s = sub.add_parser("summary", help="print a saved model's layer table")
    s.add_argument("model", metavar="MODEL.npz")
    s.set_defaults(func=cmd_summary)
    add_export_command(sub)
    return p


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def main(argv=None) -> int:
    """Entry point of the ``fastnet`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    if args.command is None:
        sys.stderr.write(
            "fastnet: error: choose a command: train, evaluate, predict, summary or export (see 'fastnet --help')\n"
        )
        return 2
    if args.command == "train" and args.initial_epoch is not None and not args.resume:
        sys.stderr.write("fastnet train: error: --initial-epoch only makes sense with --resume\n")
        return 2
    from . import distributed
    from ._training import NonFiniteLossError

    try:
        # under mpirun -n N (N > 1) the ranks train together; rank 0 alone prints
        if args.command in ("train", "evaluate") and distributed.init():
            with distributed.quiet():
                return args.func(args)
        return args.func(args)
    except (CLIError, ValueError, OSError, ImportError, NonFiniteLossError) as e:
        if os.environ.get("FASTNET_DEBUG"):
            raise
        where = f" (rank {distributed.rank()})" if distributed.active() else ""
        sys.stderr.write(f"fastnet {args.command}: error{where}: {_one_line(e)}\n")
        distributed.abort(1)  # the other ranks may be waiting in a reduction: end them too
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"fastnet {args.command}: interrupted\n")
        return 130
