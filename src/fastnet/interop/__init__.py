"""Working with the tools users already have: ONNX export, safetensors weights, TensorBoard logs.

Each needs an optional extra (``pip install 'fastnet[onnx]'``, ``[safetensors]``,
``[tensorboard]``), imported only when used.
"""

from .onnx_export import DEFAULT_OPSET, export_onnx  # noqa: F401
from .safetensors_io import load_weights, save_weights  # noqa: F401
