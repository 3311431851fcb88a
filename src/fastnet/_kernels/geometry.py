"""Sliding-window geometry, the one formula every convolution and pooling path uses (layers,
reference and fast kernels, the CLI's model builder). The Cython kernels recompute it from the
array shapes they are given, which the Python side built with this function."""


def window_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Number of window positions along one axis: ``(size + 2*padding - kernel) // stride + 1``.

    Less than 1 when the window does not fit in the padded input; callers raise their own
    ValueError then (they know which layer or argument to name)."""
    return (size + 2 * padding - kernel) // stride + 1


# The max-pool window a convolution's kernels can apply in their own output pass (kernel, stride, padding):
# 2x2 of stride 2, no padding (LeNet-5's, the Keras CNN's, VGG's). A Conv2D followed by a MaxPool2D of
# exactly this window is fused at compile time (``layers/pool.py``, ``conv2d_maxpool_forward``).
FUSED_MAXPOOL = ((2, 2), (2, 2), (0, 0))
