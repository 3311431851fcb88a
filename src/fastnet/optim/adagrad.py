"""AdaGrad: per-coordinate learning rates shrinking with the sum of squared gradients."""

from __future__ import annotations

from .._kernels import ops
from .base import Optimizer, check_hyper


class AdaGrad(Optimizer):
    """``acc += d**2``; ``p -= lr * d / (sqrt(acc) + eps)``, ``d = grad + weight_decay * p``.

    PyTorch's defaults (``lr=0.01``, ``eps=1e-10``, accumulator starting at 0, no lr decay).
    State per parameter: ``sum/<key>``.
    """

    _slots = ("sum",)
    _hyper = ("eps", "weight_decay")

    def __init__(self, lr: float = 0.01, eps: float = 1e-10, weight_decay: float = 0.0):
        super().__init__(lr)
        self.eps = check_hyper(eps, "eps", "AdaGrad", low_open=True)
        self.weight_decay = check_hyper(weight_decay, "weight_decay", "AdaGrad")

    def _update(self, p, g, state, lr, t):
        ops.adagrad_update_(p, g, state["sum"], lr, self.eps, self.weight_decay)
