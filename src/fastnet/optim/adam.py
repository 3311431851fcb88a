"""Adam and AdamW: bias-corrected first and second moment estimates."""

from __future__ import annotations

from .._kernels import ops
from .base import Optimizer, check_hyper


class Adam(Optimizer):
    """``m = b1 m + (1 - b1) d``, ``v = b2 v + (1 - b2) d**2``,
    ``p -= lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - b1**t)``,
    ``v_hat = v / (1 - b2**t)``, ``t`` the parameter's own step count, and
    ``d = grad + weight_decay * p`` (L2 decay, coupled, as ``torch.optim.Adam``).

    PyTorch's defaults (``lr=1e-3``, betas ``0.9, 0.999``, ``eps=1e-8``; Keras uses eps 1e-7).
    State per parameter: ``m/<key>``, ``v/<key>``.
    """

    _slots = ("m", "v")
    _hyper = ("beta1", "beta2", "eps", "weight_decay")
    _decoupled = False

    def __init__(
        self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0
    ):
        super().__init__(lr)
        who = type(self).__name__
        self.beta1 = check_hyper(beta1, "beta1", who, 0.0, 1.0)
        self.beta2 = check_hyper(beta2, "beta2", who, 0.0, 1.0)
        self.eps = check_hyper(eps, "eps", who, low_open=True)
        self.weight_decay = check_hyper(weight_decay, "weight_decay", who)

    def _update(self, p, g, state, lr, t):
        ops.adam_update_(
            p, g, state["m"], state["v"], lr, self.beta1, self.beta2, self.eps, t, self.weight_decay, self._decoupled
        )


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * weight_decay``
    before the Adam step on the raw gradient. PyTorch's defaults (``weight_decay=0.01``)."""

    _decoupled = True

    def __init__(
        self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.01
    ):
        super().__init__(lr, beta1, beta2, eps, weight_decay)
