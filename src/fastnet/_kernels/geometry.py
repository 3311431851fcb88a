"""Sliding-window geometry, the one formula every convolution and pooling path uses (layers,
reference and fast kernels, the CLI's model builder). The Cython kernels recompute it from the
array shapes they are given, which the Python side built with this function."""


def window_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Number of window positions along one axis: ``(size + 2*padding - kernel) // stride + 1``.

    Less than 1 when the window does not fit in the padded input; callers raise their own
    ValueError then (they know which layer or argument to name)."""
    return (size + 2 * padding - kernel) // stride + 1
