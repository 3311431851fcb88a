"""Ahead-of-time compilation of every fast kernel: :func:`fastnet.warmup`.

``import fastnet`` compiles nothing: Numba compiles a kernel at its first call, which
would otherwise land in the first training step. ``warmup`` makes those first calls
up front, on tiny inputs and on inputs just at ``PARALLEL_MIN_ELEMENTS`` (so both the
serial and the parallel variant of each kernel are ready).

Compiled code is cached on disk (``cache=True``): next to the kernel modules
(``fastnet/_kernels/fast/__pycache__``) when that directory is writeable, otherwise
in Numba's per-user cache. Set the environment variable ``NUMBA_CACHE_DIR`` (before
the first import of fastnet) to choose the directory, e.g. for a read-only install
or a shared CI cache. With a warm cache, ``warmup`` only loads machine code (fast);
with an empty one it compiles (tens of seconds per dtype).
"""

from __future__ import annotations

import time

import numpy as np

from . import config
from .config import PARALLEL_MIN_ELEMENTS
from .dtypes import FLOAT_DTYPES

_ACTS = ("relu", "leaky_relu", "sigmoid", "tanh", "gelu")


def _dense_calls(r, rows):
    x, w, b = r(rows, 8), r(8, 16), r(16)
    y = r(rows, 16)
    calls = [("dense_forward", (x, w, b)), ("dense_backward", (y, x, w))]
    for act in _ACTS:
        calls.append(("dense_act_forward", (x, w, b, act, 0.1)))
        calls.append(("dense_act_backward", (y, x, w, y, y if act == "gelu" else None, act, 0.1)))
    return calls


def _calls(dt, n):
    """(kernel name, args) for every fast kernel at about ``n`` elements."""
    rng = np.random.default_rng(0)

    def r(*shape):
        return rng.standard_normal(shape).astype(dt)

    rows = max(1, n // 16)
    y = r(rows, 16)
    flat = r(n)
    calls = _dense_calls(r, max(1, n // 16))
    for act in _ACTS:
        calls.append(("act_forward", (flat, act, 0.1)))
        calls.append(("act_backward_from_output", (flat, flat, flat if act == "gelu" else None, act, 0.1)))
    calls += [
        ("relu_forward", (flat,)),
        ("relu_backward", (flat, flat)),
        ("leaky_relu_forward", (flat, 0.1)),
        ("leaky_relu_backward", (flat, flat, 0.1)),
        ("sigmoid_forward", (flat,)),
        ("sigmoid_backward", (flat, flat)),
        ("tanh_forward", (flat,)),
        ("tanh_backward", (flat, flat)),
        ("gelu_forward", (flat,)),
        ("gelu_backward", (flat, flat)),
        ("softmax_forward", (y,)),
        ("softmax_backward", (y, y)),
    ]
    x3 = r(rows, 4, 4)
    c4 = np.ones(4, dt)
    calls += [
        ("batchnorm_forward_train", (x3, c4, c4, 1e-5)),
        ("batchnorm_forward_eval", (x3, c4, c4, c4, c4, 1e-5)),
        ("batchnorm_backward", (x3, x3, c4, c4, c4)),
        ("add_forward", ([flat, flat],)),
    ]
    for mask in (flat > 0, (flat > 0).astype(np.uint8)):
        calls += [("dropout_forward", (flat, mask, 2.0)), ("dropout_backward", (flat, mask, 2.0))]
    calls.append(("dropout_mask", (1, flat.shape, 0.5)))
    ids = rng.integers(0, 16, size=rows)
    probs = np.full((rows, 16), 1.0 / 16, dtype=dt)
    unit = np.full(n, 0.5, dtype=dt)
    calls += [
        ("softmax_cross_entropy", (y, ids, 0.1)),
        ("softmax_cross_entropy", (y, probs, 0.0)),
        ("sigmoid_bce_with_logits", (flat, unit)),
        ("bce_on_probs", (unit, unit, 1e-7)),
        ("mse", (flat, unit)),
    ]
    p = r(n)
    calls += [
        ("sgd_update_", (p, flat, np.zeros_like(p), 0.0, 0.9, 0.0, True, 1e-4)),
        ("sgd_update_", (p, flat, None, 0.0, 0.0, 0.0, False, 0.0)),
        ("adagrad_update_", (p, flat, np.zeros_like(p), 0.0, 1e-10, 0.0)),
        ("rmsprop_update_", (p, flat, np.zeros_like(p), 0.0, 0.9, 1e-8, 0.0)),
        ("adam_update_", (p, flat, np.zeros_like(p), np.zeros_like(p), 0.0, 0.9, 0.999, 1e-8, 1, 0.0, False)),
        ("adam_update_", (p, flat, np.zeros_like(p), np.zeros_like(p), 0.0, 0.9, 0.999, 1e-8, 1, 0.01, True)),
    ]
    # Conv and pooling: a 2-channel 3x3 layer takes the direct kernel (fast/direct.py, Numba); im2col and
    # pooling are Cython (nothing to compile, but cheap, and complete if that changes).
    side = max(5, int((n // 2) ** 0.5))
    xi, wc, bc = r(1, 2, side, side), r(3, 2, 3, 3), r(3)
    oh = side - 2
    pc = r(1, 3, oh // 2, oh // 2)  # the 3x3 layer's output pooled 2x2
    calls += [
        ("conv2d_forward", (xi, wc, bc, (1, 1), (0, 0))),
        ("conv2d_backward", (r(1, 3, oh, oh), xi, wc, (1, 1), (0, 0))),
        ("im2col", (xi, (3, 3), (1, 1), (0, 0))),
        ("col2im", (r(2 * 9, oh * oh), xi.shape, (3, 3), (1, 1), (0, 0))),
        ("conv2d_maxpool_train_forward", (xi, wc, bc, (1, 1), (0, 0), "relu")),
        # every window's winner at (0, 0): a valid gradient scatter
        ("conv2d_maxpool_backward", (pc, np.zeros(pc.shape, np.uint8), pc, xi, wc, (1, 1), (0, 0), "relu")),
    ]
    # a stride-1 3x3 layer wide enough for Winograd (fast/winograd.py): its Numba tile transforms
    wc_, ws = max(1, config.WINOGRAD_MIN_CHANNELS or 1), config.WINOGRAD_MIN_OUTPUT
    xw, ww = r(1, wc_, ws + 2, ws + 2), r(wc_, wc_, 3, 3)
    calls += [
        ("conv2d_forward", (xw, ww, r(wc_), (1, 1), (0, 0))),
        ("conv2d_backward", (r(1, wc_, ws, ws), xw, ww, (1, 1), (0, 0))),
        ("conv2d_maxpool_forward", (xw, ww, r(wc_), (1, 1), (0, 0), "relu")),  # the pooled output transform
    ]
    ph = side // 2
    argmax = np.zeros((1, 2, ph, ph), dtype=np.int64)  # every window's max at (0, 0): a valid scatter
    calls += [
        ("maxpool2d_forward", (xi, (2, 2), (2, 2), (0, 0))),
        ("maxpool2d_backward", (r(1, 2, ph, ph), argmax, xi.shape)),
        ("avgpool2d_forward", (xi, (2, 2), (2, 2), (0, 0))),
        ("avgpool2d_backward", (r(1, 2, ph, ph), xi.shape, (2, 2), (2, 2), (0, 0))),
        ("global_avgpool2d_forward", (xi,)),
        ("global_avgpool2d_backward", (r(1, 2), xi.shape)),
    ]
    return calls


def warmup_calls(dtype):
    """Every (kernel name, args) pair :func:`warmup` runs for one dtype (small and parallel sizes).

    From ``PARALLEL_MIN_ELEMENTS`` up, each kernel compiles its parallel variant even when it
    runs the serial one (``fastnet._kernels.parallel.run``), so the second set covers both."""
    dt = np.dtype(dtype)
    return _calls(dt, 64) + _calls(dt, PARALLEL_MIN_ELEMENTS)


def warmup(dtypes=("float32",)) -> float:
    """Compile (or load from the on-disk cache) every fast kernel for ``dtypes``; returns the seconds taken.

    Call it once at start-up so the first training step does not pay Numba's compile
    time. ``dtypes`` is a dtype or a sequence of them, each float32 or float64.
    The cache directory is chosen by ``NUMBA_CACHE_DIR`` (see this module's docstring).
    """
    from .registry import kernel

    if isinstance(dtypes, (str, np.dtype, type)):
        dtypes = (dtypes,)
    checked = []
    for d in dtypes:
        try:
            dt = np.dtype(d)
        except TypeError:
            dt = None
        if dt is None or dt not in FLOAT_DTYPES:  # None == float64 in NumPy!
            raise ValueError(f"warmup: dtypes must be float32 or float64, got {d!r}")
        checked.append(dt)
    start = time.perf_counter()
    for dt in checked:
        for name, args in warmup_calls(dt):
            kernel(name, "fast")(*args)
    return time.perf_counter() - start
