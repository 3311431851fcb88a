"""Shared by fastnet's predict benchmark and the peers (bench_peers.py): the predict workloads, fastnet's reference
model for them, and the correctness checks every peer passes before it is timed.

A failing check fails the benchmark with the reason (``pytest.fail``): a fast wrong peer is no benchmark.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from common import Batches, Spec, dataset_for, fastnet_model

# predict at batch 256 (issue 8): each timed round predicts one fresh batch of 256 images
PREDICT_SPECS = [Spec("M3", 256, "lenet5"), Spec("M4", 256, "cnn 32-64")]
CHECK_STEPS = 20  # training steps of the loss check
PREDICT_ATOL = 1e-4  # peers' probabilities against fastnet's predict on the same weights


def predict_group(spec: Spec) -> str:
    return f"predict {spec.model} {spec.title} b{spec.batch}"


def trained_fastnet(model: str, steps: int = CHECK_STEPS, batch: int = 128):
    """fastnet's ``model`` (seed 0) after ``steps`` training steps on the data, so its outputs are not the near-uniform
    probabilities of a fresh network (a weak test of the peers' agreement)."""
    import fastnet

    fastnet.seed(0)
    with fastnet.use_backend("fast"):
        net, onehot = fastnet_model(model)
        ds = dataset_for(model)
        feed = Batches(ds.x, ds.y_onehot if onehot else ds.y, batch)
        for _ in range(steps):
            net.train_on_batch(*feed.next())
    return net


def predict_batches(spec: Spec) -> Batches:
    ds = dataset_for(spec.model)
    return Batches(ds.x, ds.y, spec.batch)


def check_loss_decreases(name: str, step, batch, steps: int = CHECK_STEPS) -> list[float]:
    """Train ``steps`` steps on one fixed real batch: the loss must be finite and end lower than it started.

    One fixed batch (not a stream) because twenty steps on fresh batches of a slow-start model (LeNet-5 with SGD lr
    0.01) move the loss less than the batch-to-batch noise; fitting one batch is a check the step learns at all.
    """
    losses = [float(step(*batch)) for _ in range(steps)]
    if not all(math.isfinite(v) for v in losses):
        pytest.fail(f"{name}: training loss not finite over {steps} steps: {losses}")
    if not min(losses[-3:]) < losses[0]:
        pytest.fail(f"{name}: training loss did not decrease over {steps} steps on one batch: {losses}")
    return losses


def check_outputs_match(name: str, got, want, atol: float = PREDICT_ATOL) -> float:
    """The peer's probabilities equal fastnet's predict within ``atol``; returns the largest difference."""
    got = np.asarray(got, dtype=np.float64)
    if got.shape != want.shape:
        pytest.fail(f"{name}: output shape {got.shape}, fastnet's predict gives {want.shape}")
    err = float(np.max(np.abs(got - want)))
    if not err <= atol:
        pytest.fail(f"{name}: outputs differ from fastnet's predict by {err:.3g} (allowed {atol:g})")
    return err


def torch_predict_model(torch, model: str, fastnet_net, channels_last: bool):
    """common.torch_model's network in eval mode holding ``fastnet_net``'s weights (same names, PyTorch layouts)."""
    from common import torch_model

    from fastnet.interop.safetensors_io import torch_state

    net = torch_model(model)[0]
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in torch_state(fastnet_net).items()})
    net.eval()
    return net.to(memory_format=torch.channels_last) if channels_last else net


def torch_input(torch, x: np.ndarray, channels_last: bool):
    t = torch.from_numpy(x)
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t


ORT_SESSION = "CPUExecutionProvider, intra_op=threads, inter_op=1, sequential, ORT_ENABLE_ALL"


def ort_session(ort, path, threads: int):
    """An ONNX Runtime session on the model file ``path`` in the suites' configuration (``ORT_SESSION``)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
