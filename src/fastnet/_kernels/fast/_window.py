"""What the Cython window kernels (conv's im2col/col2im, pooling) share: input coercion and the
sliding-window geometry. (Their OpenMP thread count comes from ``parallel.omp_threads``.)"""

from __future__ import annotations

import numpy as np

from ..dtypes import FLOAT_DTYPES
from ..geometry import window_out


def as_float(a, dtype=None):
    """``a`` as a C-contiguous float array: ``dtype`` if given, else its own float32/float64
    (anything else becomes float64). No copy when it already is one."""
    a = np.asarray(a)
    if dtype is None:
        dtype = a.dtype if a.dtype in FLOAT_DTYPES else np.float64
    return np.ascontiguousarray(a, dtype=dtype)


def window_geometry(x_shape, kernel, stride, padding, what: str):
    """``(kh, kw, sh, sw, ph, pw, oh, ow)`` for windows over an NCHW input, as plain ints.

    ``OH = (H + 2*ph - KH) // sh + 1`` (same for W). ``what`` ("conv", "pool") names the
    caller in the ValueError raised when the windows do not fit the input.
    """
    _, _, H, W = x_shape
    kh, kw = int(kernel[0]), int(kernel[1])
    sh, sw = int(stride[0]), int(stride[1])
    ph, pw = int(padding[0]), int(padding[1])
    oh, ow = window_out(H, kh, sh, ph), window_out(W, kw, sw, pw)
    if kh < 1 or kw < 1 or sh < 1 or sw < 1 or ph < 0 or pw < 0 or oh < 1 or ow < 1:
        raise ValueError(
            f"{what} geometry: kernel {kernel}, stride {stride}, padding {padding} do not fit input {tuple(x_shape)}"
        )
    return kh, kw, sh, sw, ph, pw, oh, ow
