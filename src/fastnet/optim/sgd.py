"""Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay."""

from __future__ import annotations

from .._kernels import ops
from .base import Optimizer, check_hyper


class SGD(Optimizer):
    """``p -= lr * d`` with ``d = grad + weight_decay * p``; with momentum ``mu``:
    ``buf = mu * buf + d`` and the step uses ``buf`` (or ``d + mu * buf`` with Nesterov).

    PyTorch's formulation and defaults (``lr=0.01`` as Keras; PyTorch has no default),
    without dampening. State per parameter: ``momentum/<key>`` when ``momentum > 0``.
    """

    _hyper = ("momentum", "nesterov", "weight_decay")

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(lr)
        self.momentum = check_hyper(momentum, "momentum", "SGD", 0.0, 1.0)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0, got momentum=0")
        self.weight_decay = check_hyper(weight_decay, "weight_decay", "SGD")
        self._slots = ("momentum",) if self.momentum > 0 else ()

    def _update(self, p, g, state, lr, t):
        ops.sgd_update_(p, g, state.get("momentum"), lr, self.momentum, 0.0, self.nesterov, self.weight_decay)
