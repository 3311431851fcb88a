"""Data for the command line: every dataset and every image goes through fastnet's one input rule.

``load_data`` reads the raw arrays of any dataset (bundled letters, MNIST, Fashion-MNIST, a user
``.npz``) and scales them with ``fastnet.preprocessing`` (the divisor decided from the training split),
so the same arrays get the same inputs whatever they are called. ``train`` stores the record of that
preparation in the model; ``evaluate`` checks the data against it; ``predict`` maps image pixels onto it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import preprocessing as _pre

DATASETS = ("letters", "mnist", "fashion-mnist")


class Splits(dict):
    """``{"train": (x, y), "val": (x, y), "test": (x, y)}`` plus how the images were scaled."""

    divisor: float = 1.0
    source_dtype: str = "float32"


def _raw_splits(name: str, data_dir) -> dict:
    from . import datasets

    if name == "letters":
        tr, va, te = datasets.letters(normalize=False)
        return {"train": tr, "val": va, "test": te}
    if name in ("mnist", "fashion-mnist"):
        load = datasets.mnist if name == "mnist" else datasets.fashion_mnist
        tr, te = load(data_dir, normalize=False)
    else:
        path = Path(name)
        if path.suffix != ".npz":
            raise ValueError(f"--dataset must be one of {', '.join(DATASETS)} or a .npz file, got {name!r}")
        if not path.is_file():
            raise ValueError(f"dataset file not found: {path}")
        splits = datasets.load_npz(path, normalize=False)
        if len(splits) == 3:
            return dict(zip(("train", "val", "test"), splits, strict=True))
        tr, te = splits
    n = len(tr[0])
    if n < 2:
        raise ValueError(
            f"dataset {name} has {n} training sample{'s' * (n != 1)}; training needs at least 2 "
            "(one is held out for validation when the file has no x_val/y_val)"
        )
    # No validation split in the files: hold out the last 10% of the training set.
    cut = n - max(1, n // 10)
    return {"train": (tr[0][:cut], tr[1][:cut]), "val": (tr[0][cut:], tr[1][cut:]), "test": te}


def load_data(name: str, data_dir=None) -> Splits:
    """The dataset's splits as float32 images (NCHW for (N, H, W) data), scaled by the one rule."""
    raw = _raw_splits(name, data_dir)
    if len(raw["train"][0]) == 0:
        raise ValueError(f"dataset {name} has no training samples")
    try:
        divisor = _pre.pixel_divisor(raw["train"][0])
    except ValueError as e:
        raise ValueError(f"dataset {name} x_train: {e}") from None
    out = Splits()
    out.divisor, out.source_dtype = divisor, str(raw["train"][0].dtype)
    for split, (x, y) in raw.items():
        x = _pre.scale_images(x, divisor, np.float32)
        out[split] = (x[:, None] if x.ndim == 3 else x, y)
    return out


def num_classes(data: dict) -> int:
    y = data["train"][1]
    if y.ndim == 2:
        return int(y.shape[1])
    return int(max(int(v[1].max()) for v in data.values() if len(v[1])) + 1)


def wants_flat(model) -> bool:
    """Models whose first layer is Dense take (N, features); everything else takes NCHW."""
    layers = getattr(model, "layers", None) or []  # a graph Model without a layer list takes images
    first = layers[0] if len(layers) else None
    return type(first).__name__ == "Dense"


def layout(model, x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1) if wants_flat(model) else x


def training_record(model, data: Splits, x_train: np.ndarray) -> dict:
    """The preprocessing record ``train`` stores in the model (``x_train`` already laid out)."""
    return _pre.make_record(
        x_train, divisor=data.divisor, source_dtype=data.source_dtype, layout="flat" if wants_flat(model) else "nchw"
    )


def load_image(path, shape: tuple, invert: bool, record, dtype) -> np.ndarray:
    """A grayscale image as the model's (C, H, W) input, its 0..255 pixels mapped onto the range the
    model was trained on (``record``; [0, 1] for a model saved without one)."""
    try:
        from PIL import Image
    except ImportError:
        raise ValueError("predict needs Pillow: pip install 'fastnet[image]'") from None
    c, h, w = shape
    if not Path(path).is_file():
        raise ValueError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            gray = img.convert("L").resize((w, h), Image.BILINEAR)
    except Image.DecompressionBombError as e:  # not an OSError: Pillow's guard against huge images
        raise ValueError(f"cannot read image {path}: {e}") from None
    except OSError as e:
        raise ValueError(f"cannot read image {path}: {e}") from None
    pixels = np.asarray(gray, dtype=np.float64)
    if invert:  # dark ink on a light background -> light ink on black, as in MNIST and letters
        pixels = 255.0 - pixels
    x = _pre.image_to_input(pixels, record, dtype)
    return np.broadcast_to(x, (c, h, w)).astype(dtype)
