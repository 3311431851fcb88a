"""Inverted dropout, plain NumPy. The layer draws the keep-mask (1 = keep) from its own
seeded generator and passes ``scale = 1 / (1 - p)``, so eval mode needs no rescaling."""

__all__ = ["dropout_forward", "dropout_backward"]


def dropout_forward(x, mask, scale):
    return x * (mask.astype(x.dtype) * x.dtype.type(scale))


def dropout_backward(dy, mask, scale):
    return dy * (mask.astype(dy.dtype) * dy.dtype.type(scale))
