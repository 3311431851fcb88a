"""The interop parts of the command line: ``fastnet export`` and ``fastnet train --tensorboard DIR``.

fastnet export MODEL.npz OUT.onnx [--opset 17] [--input-shape C,H,W]
fastnet export MODEL.npz OUT.safetensors        # the weights under PyTorch names and layouts
"""

from __future__ import annotations

from pathlib import Path


def add_tensorboard_option(train_parser) -> None:
    train_parser.add_argument(
        "--tensorboard",
        default=None,
        metavar="DIR",
        help="log scalars and weight/gradient histograms for TensorBoard to DIR (needs fastnet[tensorboard])",
    )


def tensorboard_callbacks(args) -> list:
    """``[TensorBoard(DIR)]`` for ``--tensorboard DIR`` (built before training: a missing extra fails now)."""
    if not getattr(args, "tensorboard", None):
        return []
    from .callbacks import TensorBoard

    return [TensorBoard(args.tensorboard)]


def _shape(text: str) -> tuple:
    import argparse

    try:
        shape = tuple(int(t) for t in text.replace("x", ",").split(",") if t.strip())
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected positive ints like 1,28,28, got {text!r}")
    return shape


def add_export_command(sub) -> None:
    """Register ``fastnet export``."""
    e = sub.add_parser("export", help="write a saved model as ONNX (.onnx) or PyTorch-style weights (.safetensors)")
    e.add_argument("model", metavar="MODEL.npz")
    e.add_argument("out", metavar="OUT.onnx|OUT.safetensors")
    e.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 17)")
    e.add_argument(
        "--input-shape",
        type=_shape,
        default=None,
        metavar="C,H,W",
        help="one sample's shape, if the saved model does not record it",
    )
    e.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    import fastnet

    from .cli import CLIError as cmd_error  # noqa: N813  (the CLI's one-line user error)
    from .interop.onnx_export import DEFAULT_OPSET
    from .interop.safetensors_io import torch_state

    model_path, out = Path(args.model), Path(args.out)
    if out.suffix not in (".onnx", ".safetensors"):
        raise cmd_error(f"the output must end in .onnx or .safetensors, got {args.out!r}")
    if not model_path.is_file():
        raise cmd_error(f"model file not found: {model_path}")
    model = fastnet.load(model_path)
    if out.suffix == ".safetensors":
        if args.opset is not None or args.input_shape is not None:
            raise cmd_error("--opset and --input-shape only apply to .onnx output")
        fastnet.save_weights(model, out)
        print(f"wrote {out} ({len(torch_state(model))} tensors, PyTorch names)")
        return 0
    opset = DEFAULT_OPSET if args.opset is None else args.opset
    proto = fastnet.export_onnx(model, out, opset=opset, input_shape=args.input_shape)
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in proto.graph.output]
    inputs = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in proto.graph.input]
    print(f"wrote {out} (ONNX opset {opset}): input {_fmt(inputs[0])} -> output {_fmt(dims[0])}, as model.predict")
    return 0


def _fmt(dims) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"
