"""The bundled letters dataset: 17x17 binary images of the uppercase letters A-Z (26 classes)."""

from __future__ import annotations

from importlib import resources

import numpy as np

from ._format import dataset_divisor, format_images, format_labels

CLASS_NAMES = tuple(chr(ord("A") + i) for i in range(26))


def letters(*, normalize: bool = True, flatten: bool = False, dtype=np.float32):
    """Load the letters data shipped inside fastnet (no download, no network).

    Returns ``(x_train, y_train), (x_val, y_val), (x_test, y_test)`` with 40000, 10000
    and 10000 samples. Labels are int64 class ids 0..25 (0 = 'A', see ``CLASS_NAMES``).
    Pixels are 0 (background) or 1 (ink); images:

    - ``normalize=True`` (default): ``dtype`` (float32) NCHW ``(N, 1, 17, 17)``,
      or ``(N, 289)`` with ``flatten=True`` (the course lab's MLP input)
    - ``normalize=False``: the stored uint8 ``(N, 17, 17)``, or ``(N, 289)`` with ``flatten=True``

    Source and caveats (duplicates, cropped edge pixels) are in the project's DATASETS notes.
    """
    ref = resources.files("fastnet.datasets").joinpath("data", "letters.npz")
    with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    out = []
    divisor = dataset_divisor(arrays["x_train"])  # 1: the pixels are already 0/1
    for split in ("train", "val", "test"):
        x = format_images(arrays[f"x_{split}"], normalize=normalize, flatten=flatten, scale=divisor, dtype=dtype)
        out.append((x, format_labels(arrays[f"y_{split}"])))
    return tuple(out)
