"""fastnet: a readable CPU deep-learning library with compiled hot paths.

Public API only; see README.md.
"""

from . import (  # noqa: F401
    _heap,  # noqa: F401  (imports nothing; keeps freed memory mapped between training steps)
    _thread_env,  # noqa: F401  (first: thread-pool variables are read when NumPy loads)
    callbacks,
    data,
    datasets,
    diagnostics,
    distributed,
    gradcheck,
    layers,
    losses,
    metrics,
    models,
    optim,
    transforms,
    utils,
)
from ._kernels.fpenv import flush_denormals_enabled, set_flush_denormals  # noqa: F401  (applies the FTZ default)
from ._kernels.registry import get_backend, set_backend, use_backend  # noqa: F401
from ._kernels.warmup import warmup  # noqa: F401
from ._training import NonFiniteLossError  # noqa: F401
from .data import DataLoader  # noqa: F401
from .graph import Input  # noqa: F401
from .interop import export_onnx, load_weights, save_weights  # noqa: F401  (their libraries load lazily)
from .model import Model, Sequential  # noqa: F401
from .plotting import plot_gradient_norms, plot_history  # noqa: F401
from .random import seed  # noqa: F401
from .serialization import load  # noqa: F401
from .threads import get_num_threads, set_num_threads  # noqa: F401
from .utils import minmax_scale, standardize, to_categorical, train_val_split  # noqa: F401

__version__ = "0.1.0"
