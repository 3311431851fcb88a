"""Run by bench_startup.py in a fresh interpreter: time from ``import fastnet`` to the first finished training step.

Usage: ``python first_step.py M1|M2|M3|M4 [backend]``. Prints one JSON line of seconds: import, build (model and
compile), first step (includes Numba compiling or loading its cache), second step (steady state, for comparison)
and total (import through the end of the first step). Random data of the model's input shape is used so that
reading a dataset is not counted.
"""

import json
import sys
import time

t0 = time.perf_counter()
import fastnet  # noqa: E402

t_import = time.perf_counter()

import numpy as np  # noqa: E402
from common import fastnet_model  # noqa: E402

SHAPES = {"M1": ((128, 784), 10), "M2": ((1024, 289), 26), "M3": ((64, 1, 28, 28), 10), "M4": ((128, 1, 28, 28), 10)}


def main(model: str, backend: str) -> dict:
    fastnet.set_backend(backend)
    fastnet.seed(0)
    net, onehot = fastnet_model(model)
    t_build = time.perf_counter()
    shape, classes = SHAPES[model]
    rng = np.random.default_rng(0)
    x = rng.random(shape, dtype=np.float32)
    y = rng.integers(0, classes, shape[0])
    if onehot:
        y = np.eye(classes, dtype=np.float32)[y]
    net.train_on_batch(x, y)
    t_first = time.perf_counter()
    net.train_on_batch(x, y)
    t_second = time.perf_counter()
    return {
        "import": t_import - t0,
        "build": t_build - t_import,
        "first_step": t_first - t_build,
        "second_step": t_second - t_first,
        "total": t_first - t0,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "fast")))
