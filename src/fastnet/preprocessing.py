"""One input-scaling rule for every data path, and the record of it that is saved with a model.

Why: the same pixels used to get a different scale depending on how the data was named (the
bundled letters fed 0/1, the same arrays from a ``.npz`` were divided by 255), and a model
evaluated on differently scaled data gave a meaningless accuracy with exit status 0. Now:

- :func:`pixel_divisor` is THE rule, decided by the data (dtype and values), never by its name:
  bool and integer images whose values are all 0/1 are kept (binary images), other integer images
  in 0..255 are divided by 255 (uint16 up to 65535 by 65535), float data is taken as it is.
  Every dataset loader (bundled letters, MNIST, Fashion-MNIST, the user's ``.npz``) and the CLI use it;
  a dataset's divisor is decided once, from its training split, and applied to every split.
- :func:`make_record` describes the prepared training inputs: the rule, the source dtype, the
  divisor, the value range seen, one sample's shape and the layout. ``fit`` stores one on the model
  (``model.preprocessing``) and ``save`` writes it into the file.
- :func:`check_inputs` compares new inputs with the record: values far outside the training range
  (e.g. floats in 0..255 for a model trained on 0..1) or a dataset spanning a tiny fraction of it
  (e.g. 0..1 data for a model trained on 0..255) raise a ValueError saying what to do.
- :func:`image_to_input` maps 8-bit image pixels onto the training range, so ``predict`` prepares
  an image file the way the training images were prepared (any affine scaling of full-range images).
"""

from __future__ import annotations

import numpy as np

from ._kernels.dtypes import FLOAT_DTYPES

__all__ = ["RULE", "pixel_divisor", "scale_images", "value_range", "make_record", "check_inputs", "image_to_input"]

RULE = "fastnet.inputs/1"
# Values may exceed the training range by this fraction of its span before they count as scaled differently
# (test data standardised with training statistics overshoots a little; a factor-255 mistake overshoots hugely).
OVERSHOOT = 0.5
# A dataset spanning less than this fraction of the training span was most likely scaled twice (1/255 = 0.004).
MIN_SPAN_FRACTION = 1 / 20


def pixel_divisor(x: np.ndarray) -> float:
    """The one scaling rule: what raw inputs ``x`` are divided by to become model inputs."""
    x = np.asarray(x)
    if x.dtype.kind == "b" or x.size == 0:
        return 1.0
    if x.dtype.kind in "ui":
        lo, hi = int(x.min()), int(x.max())
        if lo < 0:
            raise ValueError(
                f"integer inputs must be pixel values >= 0, got values from {lo} to {hi}; "
                "convert signed data to float yourself"
            )
        if hi <= 1:
            return 1.0  # binary images (ink 1, background 0), like the bundled letters
        if hi <= 255:
            return 255.0
        if x.dtype == np.uint16:
            return 65535.0
        raise ValueError(
            f"integer inputs of dtype {x.dtype} go up to {hi}; fastnet scales 8-bit (0..255) and 16-bit "
            "pixel data only: convert other data to float in the range you want"
        )
    if x.dtype.kind == "f":
        return 1.0
    raise ValueError(f"inputs must be numeric, got dtype {x.dtype}")


def scale_images(x: np.ndarray, divisor: float, dtype=np.float32) -> np.ndarray:
    """``x`` as ``dtype`` divided by ``divisor`` (float32 or float64 only)."""
    dt = np.dtype(dtype)
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"dataset dtype must be float32 or float64, got {dt}")
    out = np.asarray(x).astype(dt)
    if divisor != 1.0:
        out /= dt.type(divisor)
    return out


def value_range(x: np.ndarray) -> tuple[float, float]:
    """(min, max) of the finite values of ``x`` ((0, 0) when it has none)."""
    x = np.asarray(x)
    if x.size == 0:
        return 0.0, 0.0
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        x = x[np.isfinite(x)]
        if x.size == 0:
            return 0.0, 0.0
    return float(x.min()), float(x.max())


def make_record(x_prepared, *, divisor=None, source_dtype=None, layout=None) -> dict:
    """The preprocessing record of training inputs ``x_prepared`` (what the model was fed).

    ``divisor``/``source_dtype``/``layout`` are known when fastnet prepared the data itself (the CLI);
    arrays given to ``fit`` directly have only their range and sample shape recorded.
    """
    x = np.asarray(x_prepared)
    lo, hi = value_range(x)
    return {
        "rule": RULE,
        "source_dtype": str(np.dtype(source_dtype)) if source_dtype is not None else str(x.dtype),
        "divisor": float(divisor) if divisor is not None else None,
        "range": [lo, hi],
        "sample_shape": [int(s) for s in x.shape[1:]],
        "layout": layout,
    }


def _describe(record: dict) -> str:
    lo, hi = record["range"]
    how = ""
    if record.get("divisor") not in (None, 1.0):
        how = f" ({record['source_dtype']} pixels / {record['divisor']:g})"
    elif record.get("divisor") == 1.0 and record.get("source_dtype", "").startswith(("uint", "int", "bool")):
        how = f" ({record['source_dtype']} pixels, unscaled)"
    return f"inputs in {lo:.4g}..{hi:.4g}{how}"


def check_inputs(record, x, where: str, *, whole_dataset: bool = True) -> None:
    """Raise a ValueError when ``x`` (prepared inputs) is clearly scaled differently from the training
    inputs described by ``record``. ``whole_dataset=False`` (a few samples, e.g. ``predict``) checks
    only the upper and lower bounds: one dark image legitimately spans a small range."""
    if not record or record.get("range") is None:
        return
    lo, hi = (float(v) for v in record["range"])
    span = hi - lo
    if span <= 0:
        return  # constant training inputs: nothing meaningful to compare with
    xlo, xhi = value_range(x)
    slack = OVERSHOOT * span
    problem = None
    if xhi > hi + slack or xlo < lo - slack:
        problem = "values far outside"
    elif whole_dataset and np.asarray(x).shape[0] > 1 and (xhi - xlo) < MIN_SPAN_FRACTION * span:
        problem = "values spanning a tiny part of"
    if problem is None:
        return
    hint = ""
    if hi <= 1.0 + slack and xhi > 1.5:
        hint = " (divide 0..255 pixel data by 255, or pass it as uint8 and let fastnet scale it)"
    elif xhi <= 1.0 + 1e-6 and hi > 2.0:
        hint = f" (the model was trained on unscaled data: multiply by {hi:.4g} or prepare it as in training)"
    raise ValueError(
        f"{where}: inputs in {xlo:.4g}..{xhi:.4g} are {problem} the range the model was trained on "
        f"({_describe(record)}); they were prepared differently from the training data{hint}"
    )


def image_to_input(pixels: np.ndarray, record, dtype) -> np.ndarray:
    """8-bit image pixels (0..255) as model inputs: mapped onto the record's training range, or onto
    [0, 1] for a model without a record (fastnet's own rule for 8-bit images)."""
    x01 = np.asarray(pixels, dtype=np.float64) / 255.0
    if record and record.get("range") is not None:
        lo, hi = (float(v) for v in record["range"])
        if hi > lo:
            return (lo + x01 * (hi - lo)).astype(dtype)
    return x01.astype(dtype)


def remember_or_check(model, x, where: str) -> None:
    """``fit``: record the training inputs on a model that has no record yet (``model.preprocessing``,
    saved with it); a model that has one (resumed, or prepared by the CLI) checks ``x`` against it."""
    record = getattr(model, "preprocessing", None)
    if record:
        check_inputs(record, x, where)
    else:
        model.preprocessing = make_record(x)


def check_model_inputs(model, x, where: str, *, whole_dataset: bool = True) -> None:
    """``evaluate``/``predict``: check ``x`` against the model's record (no record: nothing to check)."""
    check_inputs(getattr(model, "preprocessing", None), x, where, whole_dataset=whole_dataset)
