"""Datasets: the bundled letters data, MNIST / Fashion-MNIST (local files or checked download),
and the user's own arrays. Every loader returns ``(x, y)`` pairs of NumPy arrays; labels are
int64 class ids. See each function for shapes and the ``normalize`` / ``flatten`` options."""

from .idx import read_idx, read_idx_pair, write_idx  # noqa: F401
from .letters import CLASS_NAMES as LETTER_NAMES  # noqa: F401
from .letters import letters
from .mnist import FASHION_MNIST, MNIST, fashion_mnist, mnist  # noqa: F401
from .user import from_arrays, load_npz  # noqa: F401

__all__ = [
    "letters",
    "mnist",
    "fashion_mnist",
    "load_npz",
    "from_arrays",
    "read_idx",
    "read_idx_pair",
    "write_idx",
    "LETTER_NAMES",
    "MNIST",
    "FASHION_MNIST",
]
