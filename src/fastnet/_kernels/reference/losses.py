"""Loss kernels, plain NumPy. Each returns ``(loss_sum, grad)``: the SUM of the per-element
losses as a Python float and its gradient with respect to the prediction (same shape and
dtype as the prediction). The loss class divides both by what its reduction asks for.
"""

import numpy as np

__all__ = ["softmax_cross_entropy", "sigmoid_bce_with_logits", "bce_on_probs", "mse"]


def _log_softmax(x):
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(logits, target, label_smoothing):
    """Cross-entropy of ``softmax(logits)`` (N, C) against class ids (N,) int64 or
    probability rows (N, C) float.

    Label smoothing (as PyTorch, also for probability targets): the target becomes
    ``(1 - ls) * t + ls / C``. Gradient of the sum: ``p * sum(t) - t`` per row, which is
    ``p - t`` for rows that sum to one.
    """
    n, c = logits.shape
    logp = _log_softmax(logits)
    p = np.exp(logp)
    ls = float(label_smoothing)
    if target.ndim == 1:
        rows = np.arange(n)
        picked = logp[rows, target].sum()
        loss = -(1.0 - ls) * picked
        if ls:
            loss -= ls / c * logp.sum()
        grad = p
        grad -= ls / c
        grad[rows, target] -= 1.0 - ls
        return float(loss), grad.astype(logits.dtype, copy=False)
    t = target
    if ls:
        t = (1.0 - ls) * t + ls / c
    loss = -(t * logp).sum()
    grad = p * t.sum(axis=1, keepdims=True) - t
    return float(loss), grad.astype(logits.dtype, copy=False)


def sigmoid_bce_with_logits(logits, target):
    """Binary cross-entropy of ``sigmoid(logits)`` without forming the sigmoid's log:
    ``max(x, 0) - x * t + log1p(exp(-|x|))`` is finite for any finite x."""
    x = logits
    loss = (np.maximum(x, 0) - x * target + np.log1p(np.exp(-np.abs(x)))).sum()
    e = np.exp(-np.abs(x))
    sig = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return float(loss), (sig - target).astype(logits.dtype, copy=False)


def bce_on_probs(probs, target, eps):
    """Binary cross-entropy of probabilities, clipped to [eps, 1 - eps] so the logs stay finite.

    The gradient is ``(p - t) / (p (1 - p))`` at the clipped p (PyTorch also clamps the
    denominator rather than zeroing the gradient outside the range), so a saturated wrong
    output still pushes the right way.
    """
    dt = probs.dtype.type
    p = np.clip(probs, dt(eps), dt(1) - dt(eps))
    loss = -(target * np.log(p) + (1 - target) * np.log1p(-p)).sum()
    grad = (p - target) / (p * (1 - p))
    return float(loss), grad.astype(probs.dtype, copy=False)


def mse(pred, target):
    """``sum((pred - target) ** 2)`` and its gradient ``2 (pred - target)``."""
    e = pred - target
    return float((e * e).sum()), (2 * e).astype(pred.dtype, copy=False)
