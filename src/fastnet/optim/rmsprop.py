"""RMSprop: gradient divided by a running root-mean-square of recent gradients."""

from __future__ import annotations

from .._kernels import ops
from .base import Optimizer, check_hyper


class RMSprop(Optimizer):
    """``sq = rho * sq + (1 - rho) * d**2``; ``p -= lr * d / (sqrt(sq) + eps)``.

    Defaults are Keras's (``lr=1e-3``, ``rho=0.9``, ``eps=1e-7``: the Keras book's MNIST
    example uses them); PyTorch's would be ``alpha=0.99``, ``eps=1e-8``. ``eps`` is added
    after the square root, as PyTorch does (Keras adds it inside; the difference is below
    1e-7 relative once ``sq`` is not tiny). Not centered, no momentum.
    State per parameter: ``square_avg/<key>``.
    """

    _slots = ("square_avg",)
    _hyper = ("rho", "eps", "weight_decay")

    def __init__(self, lr: float = 1e-3, rho: float = 0.9, eps: float = 1e-7, weight_decay: float = 0.0):
        super().__init__(lr)
        self.rho = check_hyper(rho, "rho", "RMSprop", 0.0, 1.0)
        self.eps = check_hyper(eps, "eps", "RMSprop", low_open=True)
        self.weight_decay = check_hyper(weight_decay, "weight_decay", "RMSprop")

    def _update(self, p, g, state, lr, t):
        ops.rmsprop_update_(p, g, state["square_avg"], lr, self.rho, self.eps, self.weight_decay)
