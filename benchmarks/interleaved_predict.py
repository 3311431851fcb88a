"""The prediction workers of ``interleaved.py --predict``: fastnet's ``predict`` and each peer's, on the same weights.

Each builder returns ``(run, feeder, err)``: ``run(x, y)`` predicts one batch (``y`` unused, so the driver's
burst loop serves training steps and predictions alike), ``feeder`` gives fresh batches of 256 MNIST images in the
framework's layout, and ``err`` is the largest difference between the peer's probabilities and fastnet's
``predict`` on the first batch, checked by ``peers_common.check_outputs_match`` before anything is timed. The
configurations are the pytest suites' (``bench_predict.py``, ``bench_torch.py``, ``bench_peers.py``): fastnet's
model after 20 training steps (seed 0), PyTorch eager and ``torch.compile`` (inductor freezing) on its weights
under ``inference_mode`` / ``no_grad``, JAX ``jit`` in the layout the suite's probe picks here (NHWC), ONNX Runtime on
fastnet's ONNX export with ``intra_op_num_threads`` = the thread count.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from peers_common import (
    check_outputs_match,
    ort_session,
    predict_batches,
    torch_input,
    torch_predict_model,
    trained_fastnet,
)

PREDICT_PEERS = ("torch", "torch-cl", "compile", "compile-cl", "jax-xla", "jax-ynnpack", "ort")


class _Layout:
    """``predict_batches(spec)``, each x passed through ``convert`` (a layout or a tensor) and y kept."""

    def __init__(self, spec, convert):
        self.batches, self.convert = predict_batches(spec), convert

    def next(self):
        x, y = self.batches.next()
        return self.convert(x), y


def build_predict(framework: str, spec, threads: int):
    """``(run, feeder, err)`` for ``framework`` (fastnet or one of PREDICT_PEERS) on ``spec`` (of PREDICT_SPECS)."""
    import fastnet

    fastnet.set_num_threads(threads)
    net = trained_fastnet(spec.model)
    x0 = predict_batches(spec).next()[0]  # the first batch every feeder gives
    want = net.predict(x0, batch_size=spec.batch)
    if framework == "fastnet":
        return (lambda x, y: net.predict(x, batch_size=spec.batch)), _Layout(spec, lambda x: x), 0.0
    if framework.startswith(("torch", "compile")):
        run, convert = _torch(framework, spec, net, threads)
    elif framework.startswith("jax"):
        run, convert = _jax(framework, spec, net, threads)
    elif framework == "ort":
        run, convert = _ort(net, threads), (lambda x: x)
    else:
        raise ValueError(f"unknown framework {framework!r}")
    err = check_outputs_match(f"{framework} predict {spec.model}", np.asarray(run(convert(x0), None)), want)
    return run, _Layout(spec, convert), err


def _torch(framework, spec, net, threads):
    import torch

    torch.set_num_threads(threads)
    cl = framework.endswith("-cl")
    tnet = torch_predict_model(torch, spec.model, net, cl)
    if framework.startswith("compile"):
        with torch.no_grad(), torch._inductor.config.patch(freezing=True):
            compiled = torch.compile(lambda x: torch.softmax(tnet(x), dim=1))
            compiled(torch_input(torch, np.zeros((spec.batch, 1, 28, 28), np.float32), cl))  # compile untimed

        def run(x, y):
            with torch.no_grad(), torch._inductor.config.patch(freezing=True):
                return compiled(x).numpy()
    else:

        def run(x, y):
            with torch.inference_mode():
                return torch.softmax(tnet(x), dim=1).numpy()

    return run, (lambda x: torch_input(torch, x, cl))


def _jax(framework, spec, net, threads):
    import peers_jax

    from fastnet.interop.safetensors_io import torch_state

    peers_jax.configure(threads, "xla" if framework == "jax-xla" else "ynnpack")
    nhwc = True  # the layout bench_peers.py's probe of both picks on this machine for M3 and M4
    params = peers_jax.params_from_torch_state(spec.model, torch_state(net), nhwc)
    f, params = peers_jax.predict_fn(spec.model, params, nhwc)
    return (lambda x, y: np.asarray(f(params, x))), (lambda x: peers_jax.to_layout(x, nhwc))


def _ort(net, threads):
    import onnxruntime as ort

    from fastnet.interop import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(net, path, input_shape=(1, 28, 28))
        sess = ort_session(ort, path, threads)
    return lambda x, y: sess.run(None, {"input": x})[0]
