"""Lazy imports of the optional interop libraries, with one clear message when one is missing.

fastnet's core install is numpy + numba; ONNX, safetensors and TensorBoard are extras
(``pip install 'fastnet[onnx]'`` etc.), imported only when a function that needs them runs.
"""

from __future__ import annotations

import importlib

# module -> (extra that installs it, pip name)
_EXTRAS = {
    "onnx": ("onnx", "onnx"),
    "safetensors": ("safetensors", "safetensors"),
    "safetensors.numpy": ("safetensors", "safetensors"),
    "tensorboard": ("tensorboard", "tensorboard"),
}


def require(module: str, purpose: str):
    """Import ``module`` or raise ImportError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        extra, pip_name = _EXTRAS.get(module, (module.split(".")[0], module.split(".")[0]))
        raise ImportError(
            f"{purpose} needs the optional package '{pip_name}', which is not installed "
            f"({e}); install it with: pip install 'fastnet[{extra}]'"
        ) from None
