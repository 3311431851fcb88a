"""Loss functions: ``forward(pred, target) -> float``, ``backward() -> dpred``.

Each loss calls one fused kernel (``ops.<name>``) that returns the SUM of the per-element
losses and its gradient; the class divides both by the reduction:

- ``"mean"``: PyTorch's mean: over every element of ``pred`` (MSE, BCE) and over the batch
  for ``SoftmaxCrossEntropy`` (one loss per sample), so there ``"mean"`` == ``"batchmean"``.
- ``"sum"``: the plain sum.
- ``"batchmean"``: summed over the outputs of a sample, averaged over the batch: the course
  lab's convention (its learning rates assume it).

Targets: integer class ids ``(N,)`` are accepted by every loss; for MSE and BCE they are
one-hot encoded to ``pred``'s shape (the course lab feeds ids to its sigmoid nets). For a
single-output ``pred`` of shape ``(N,)`` or ``(N, 1)`` the integer targets are the values
themselves (0/1 for BCE). Otherwise the target has ``pred``'s shape (one-hot, probabilities
or any float target).

``link(pred)`` maps raw outputs to what ``model.predict`` returns: softmax for
``SoftmaxCrossEntropy``, sigmoid for ``BinaryCrossEntropy(from_logits=True)``, identity otherwise.
"""

from __future__ import annotations

import numpy as np

from ._kernels import ops
from ._kernels.dtypes import FLOAT_DTYPES

__all__ = [
    "Loss",
    "MSE",
    "QuadraticLoss",
    "BinaryCrossEntropy",
    "SoftmaxCrossEntropy",
    "OutputLosses",
    "get",
    "from_config",
]

REDUCTIONS = ("mean", "sum", "batchmean")

LOSS_CLASSES: dict[str, type] = {}


class Loss:
    """Base class: validation, reduction and config. Subclasses implement ``_sum(pred, target)``."""

    name = "loss"

    def __init__(self, reduction: str = "mean"):
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self._grad = None
        self._scale = 1.0
        self._dpred = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        LOSS_CLASSES[cls.__name__] = cls

    # ---- public API -----------------------------------------------------------------------
    def forward(self, pred: np.ndarray, target) -> float:
        """The reduced loss as a Python float; keeps the gradient for ``backward``."""
        pred = self._check_pred(pred)
        target = self._prepare_target(pred, target)
        loss_sum, grad = self._sum(pred, target)
        self._scale = self._divisor(pred)
        self._grad, self._dpred = grad, None
        return float(loss_sum) / self._scale

    def __call__(self, pred, target) -> float:
        return self.forward(pred, target)

    def backward(self) -> np.ndarray:
        """Gradient of the last ``forward``'s loss with respect to ``pred`` (same shape and dtype)."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        if self._dpred is None:
            g = self._grad
            if self._scale != 1.0:
                g *= g.dtype.type(1.0 / self._scale)  # the kernel's array is ours: scale in place
            self._dpred = g
        return self._dpred

    def link(self, pred: np.ndarray) -> np.ndarray:
        """Map raw model outputs to predictions (identity unless the loss works on scores)."""
        return pred

    def get_config(self) -> dict:
        """JSON-able ``{"class_name": ..., "config": {constructor arguments}}``."""
        return {"class_name": type(self).__name__, "config": self._config()}

    def _config(self) -> dict:
        return {"reduction": self.reduction}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{type(self).__name__}({args})"

    # ---- for subclasses ----------------------------------------------------------------------
    def _sum(self, pred, target):
        raise NotImplementedError

    def _divisor(self, pred) -> float:
        if self.reduction == "sum":
            return 1.0
        if self.reduction == "batchmean":
            return float(pred.shape[0])
        return float(pred.size)

    # ---- validation -----------------------------------------------------------------------
    def _check_pred(self, pred) -> np.ndarray:
        who = type(self).__name__
        if not isinstance(pred, np.ndarray):
            raise ValueError(f"{who}: expected pred as a numpy array, got {type(pred).__name__}")
        if pred.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{who}: expected float32 or float64 pred, got {pred.dtype}")
        if pred.ndim == 0 or pred.shape[0] == 0:
            raise ValueError(f"{who}: expected pred of shape (N, ...) with N >= 1, got {pred.shape}")
        if not np.isfinite(pred).all():
            raise ValueError(
                f"{who}: pred contains NaN or inf (shape {pred.shape}); the model diverged or its input holds NaN"
            )
        return np.ascontiguousarray(pred)

    def _prepare_target(self, pred, target) -> np.ndarray:
        """Class ids -> one-hot in pred's dtype (or values for single-output pred); float -> pred's dtype."""
        who = type(self).__name__
        target = _squeeze_ids(np.asarray(target), pred)
        n = pred.shape[0]
        if target.shape[:1] != (n,):
            raise ValueError(
                f"{who}: expected a target with {n} rows (one per pred row, pred shape "
                f"{pred.shape}), got target shape {target.shape}"
            )
        single = pred.ndim == 1 or (pred.ndim == 2 and pred.shape[1] == 1)
        if target.dtype.kind in "iub" and target.ndim == 1 and pred.ndim == 2 and not single:
            ids = _check_ids(target, pred.shape[1], who)
            onehot = np.zeros(pred.shape, dtype=pred.dtype)
            onehot[np.arange(n), ids] = 1
            return onehot
        if single and target.size == pred.size:
            target = target.reshape(pred.shape)
        if target.shape != pred.shape:
            raise ValueError(
                f"{who}: expected target of shape ({n},) with integer class ids or of pred's "
                f"shape {pred.shape}, got {target.shape} ({target.dtype})"
            )
        if target.dtype.kind not in "iubf":
            raise ValueError(f"{who}: expected a numeric target, got dtype {target.dtype}")
        target = np.ascontiguousarray(target, dtype=pred.dtype)
        if not np.isfinite(target).all():
            raise ValueError(f"{who}: target contains NaN or inf")
        return target


def _squeeze_ids(target, pred):
    """Integer ids given as a column (N, 1) (Keras's sparse labels) -> (N,), for multi-column pred."""
    if (
        target.ndim == 2
        and target.shape[1] == 1
        and target.dtype.kind in "iub"
        and pred.ndim == 2
        and pred.shape[1] > 1
    ):
        return target[:, 0]
    return target


def _check_ids(target, n_classes, who) -> np.ndarray:
    ids = target.astype(np.int64, copy=False)
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= n_classes:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{who}: label {bad} out of range [0, {n_classes}) (pred has {n_classes} classes)")
    return np.ascontiguousarray(ids)


class MSE(Loss):
    """Squared error ``sum((pred - target)**2)`` reduced by ``reduction``.

    ``half=True`` multiplies by 1/2 (the course lab's quadratic cost ``0.5 * ||e||**2``,
    whose gradient is just ``pred - target``). ``MSE(reduction="batchmean", half=True)`` is
    exactly the lab's ``QuadraticLoss`` value and gradient; see :class:`QuadraticLoss` for
    its learning-rate convention.
    """

    name = "mse"

    def __init__(self, reduction: str = "mean", half: bool = False):
        super().__init__(reduction)
        self.half = bool(half)

    def _sum(self, pred, target):
        loss_sum, grad = ops.mse(pred, target)
        if self.half:
            loss_sum *= 0.5
            grad *= grad.dtype.type(0.5)
        return loss_sum, grad

    def _config(self):
        return {"reduction": self.reduction, "half": self.half}


class QuadraticLoss(MSE):
    """The course lab's quadratic loss, learning rates included: ``0.5 * sum((pred - t)**2) / N``.

    The lab's fully connected layer divides its weight and bias gradients by the batch size
    N once more (on top of the loss's ``1/N``), so a lab learning rate of 1000 at batch 1024
    is a plain-gradient step of about 0.98. With ``lab_lr=True`` (default) ``backward``
    returns the loss gradient divided by N again, so the lab's learning rates carry over
    unchanged to fastnet's layers (which do not divide). Then ``backward`` is NOT the
    gradient of ``forward`` (it is that divided by N); use ``lab_lr=False`` for the true
    gradient (the same as ``MSE(reduction="batchmean", half=True)``), and divide the lab's
    learning rate by the batch size. (The lab's cross-entropy omits the ``1/N`` in its
    backward, so its rates carry over to ``BinaryCrossEntropy(reduction="batchmean")`` as they are.)
    """

    name = "quadratic"

    def __init__(self, lab_lr: bool = True):
        super().__init__(reduction="batchmean", half=True)
        self.lab_lr = bool(lab_lr)

    def _divisor(self, pred):
        return float(pred.shape[0])

    def backward(self):
        first = self._dpred is None
        g = super().backward()
        if first and self.lab_lr and self._scale != 1.0:
            g *= g.dtype.type(1.0 / self._scale)
        return g

    def _config(self):
        return {"lab_lr": self.lab_lr}


class BinaryCrossEntropy(Loss):
    """``-(t log p + (1 - t) log(1 - p))`` per element, for sigmoid outputs (one or many columns).

    ``from_logits=False``: ``pred`` holds probabilities, clipped to ``[eps, 1 - eps]``.
    ``from_logits=True``: ``pred`` holds raw scores and the sigmoid is fused in (stable for
    any magnitude); ``link`` then applies the sigmoid. Targets must lie in [0, 1].
    """

    name = "binary_cross_entropy"

    def __init__(self, from_logits: bool = False, eps: float = 1e-7, reduction: str = "mean"):
        super().__init__(reduction)
        eps = float(eps)
        if not (0 < eps < 0.5):
            raise ValueError(f"BinaryCrossEntropy: eps must be in (0, 0.5), got {eps!r}")
        self.from_logits = bool(from_logits)
        self.eps = eps

    def _sum(self, pred, target):
        if target.size and (target.min() < 0 or target.max() > 1):
            raise ValueError(
                f"BinaryCrossEntropy: targets must lie in [0, 1], got values in [{target.min()}, {target.max()}]"
            )
        if self.from_logits:
            return ops.sigmoid_bce_with_logits(pred, target)
        if pred.min() < 0 or pred.max() > 1:
            raise ValueError(
                f"BinaryCrossEntropy: expected probabilities in [0, 1] (use from_logits=True "
                f"for raw scores), got values in [{pred.min()}, {pred.max()}]"
            )
        return ops.bce_on_probs(pred, target, self.eps)

    def link(self, pred):
        return ops.sigmoid_forward(pred) if self.from_logits else pred

    def _config(self):
        return {"from_logits": self.from_logits, "eps": self.eps, "reduction": self.reduction}


class SoftmaxCrossEntropy(Loss):
    """Cross-entropy of ``softmax(pred)`` for logits ``pred`` (N, C), fused and stable.

    Targets: class ids (N,) or probability rows (N, C) (one-hot or soft). ``label_smoothing``
    ``ls`` mixes the target with the uniform distribution: ``(1 - ls) t + ls / C`` (PyTorch).
    One loss per sample, so ``"mean"`` and ``"batchmean"`` both divide by N.
    """

    name = "softmax_cross_entropy"

    def __init__(self, label_smoothing: float = 0.0, reduction: str = "mean"):
        super().__init__(reduction)
        ls = float(label_smoothing)
        if not (0.0 <= ls < 1.0):
            raise ValueError(f"SoftmaxCrossEntropy: label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = ls

    def _check_pred(self, pred):
        pred = super()._check_pred(pred)
        if pred.ndim != 2:
            raise ValueError(f"SoftmaxCrossEntropy: expected logits of shape (N, C), got {pred.shape}")
        return pred

    def _prepare_target(self, pred, target):
        target = _squeeze_ids(np.asarray(target), pred)
        if target.dtype.kind in "iub" and target.ndim == 1:
            if target.shape[0] != pred.shape[0]:
                raise ValueError(
                    f"SoftmaxCrossEntropy: expected {pred.shape[0]} class ids (pred shape "
                    f"{pred.shape}), got target shape {target.shape}"
                )
            return _check_ids(target, pred.shape[1], "SoftmaxCrossEntropy")
        if target.shape != pred.shape:
            raise ValueError(
                f"SoftmaxCrossEntropy: expected target of shape ({pred.shape[0]},) with integer "
                f"class ids or {pred.shape} with probabilities, got {target.shape} ({target.dtype})"
            )
        return super()._prepare_target(pred, target)

    def _sum(self, pred, target):
        return ops.softmax_cross_entropy(pred, target, self.label_smoothing)

    def _divisor(self, pred):
        return 1.0 if self.reduction == "sum" else float(pred.shape[0])

    def link(self, pred):
        return ops.softmax_forward(pred)

    def _config(self):
        return {"label_smoothing": self.label_smoothing, "reduction": self.reduction}


_ALIASES = {
    "mse": MSE,
    "mean_squared_error": MSE,
    "quadratic": QuadraticLoss,
    "quadratic_loss": QuadraticLoss,
    "binary_cross_entropy": BinaryCrossEntropy,
    "binary_crossentropy": BinaryCrossEntropy,
    "bce": BinaryCrossEntropy,
    "softmax_cross_entropy": SoftmaxCrossEntropy,
    "categorical_crossentropy": SoftmaxCrossEntropy,
    "sparse_categorical_crossentropy": SoftmaxCrossEntropy,
    "cross_entropy": SoftmaxCrossEntropy,
}


def get(identifier) -> Loss:
    """A loss instance from a name (``"mse"``, ``"binary_cross_entropy"``, ``"softmax_cross_entropy"``,
    Keras spellings, ``"quadratic"``), a config dict, or a Loss instance (returned as is).

    Note: ``"categorical_crossentropy"`` maps to ``SoftmaxCrossEntropy``, which takes LOGITS
    (Keras's default takes probabilities); do not put a Softmax layer before it.
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return from_config(identifier)
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier.strip().lower())
        if cls is not None:
            return cls()
    raise ValueError(f"unknown loss {identifier!r}; expected a Loss instance or one of {sorted(_ALIASES)}")


def from_config(config: dict) -> Loss:
    """Rebuild a loss from ``get_config()``'s output."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"loss config must be a dict with 'class_name' and 'config', got {config!r}")
    cls = LOSS_CLASSES.get(config["class_name"])
    if cls is None:
        raise ValueError(f"unknown loss class {config['class_name']!r}; expected one of {sorted(LOSS_CLASSES)}")
    return cls(**config.get("config", {}))


# last: it subclasses Loss (and so registers itself in LOSS_CLASSES for from_config)
from .output_losses import OutputLosses  # noqa: E402
