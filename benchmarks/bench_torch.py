"""PyTorch CPU on the same work, float32, ``torch.set_num_threads`` equal to fastnet's thread count.

Entries join the groups of ``bench_training_steps.py`` and ``bench_kernels.py`` (same group names), so
pytest-benchmark and ``report.py`` show fastnet and PyTorch side by side. The CNNs (M3, M4) and the conv / pool
kernels also run in channels-last memory format, PyTorch's faster layout for them. Everything here is skipped with
a clear reason when torch is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest
from common import SPECS, dataset_for, run_pedantic, torch_batches, torch_model, torch_step
from peers_common import (
    PREDICT_SPECS,
    check_outputs_match,
    predict_batches,
    predict_group,
    torch_input,
    torch_predict_model,
    trained_fastnet,
)

pytestmark = pytest.mark.torch


def _layouts(spec):
    return ["default", "channels_last"] if spec.images else ["default"]


STEP_PARAMS = [(s, lay) for s in SPECS for lay in _layouts(s)]


@pytest.mark.parametrize("spec,layout", STEP_PARAMS, ids=[f"{s.model}-b{s.batch}-{lay}" for s, lay in STEP_PARAMS])
def test_torch_train_step(benchmark, spec, layout, torch_mod, threads, rounds):
    torch = torch_mod
    torch.manual_seed(0)
    cl = layout == "channels_last"
    net, loss_fn, opt, onehot = torch_model(spec.model, channels_last=cl)
    net.train()
    ds = dataset_for(spec.model)
    feeder = torch_batches(ds, spec, onehot, channels_last=cl)
    step = torch_step(net, loss_fn, opt)
    benchmark.group = spec.group
    benchmark.extra_info.update(
        variant="torch" if not cl else "torch-channels_last",
        model=spec.model,
        batch=spec.batch,
        threads=torch.get_num_threads(),
        data=ds.source,
        torch=torch.__version__,
        dtype="float32",
    )
    step(*feeder.next())
    median = run_pedantic(benchmark, step, rounds, setup=lambda: (feeder.next(), {}))
    benchmark.extra_info["samples_per_s"] = round(spec.batch / median, 1)


PREDICT_PARAMS = [(s, lay) for s in PREDICT_SPECS for lay in _layouts(s)]


@pytest.mark.parametrize(
    "spec,layout", PREDICT_PARAMS, ids=[f"{s.model}-b{s.batch}-{lay}" for s, lay in PREDICT_PARAMS]
)
def test_torch_predict(benchmark, spec, layout, torch_mod, threads, rounds):
    """Eager ``softmax(net(x))`` under ``inference_mode`` on fastnet's weights (checked against its predict)."""
    torch = torch_mod
    cl = layout == "channels_last"
    fnet = trained_fastnet(spec.model)
    feeder = predict_batches(spec)
    x0 = feeder.next()[0]
    tnet = torch_predict_model(torch, spec.model, fnet, cl)
    variant = "torch" if not cl else "torch-channels_last"

    def run(x):
        with torch.inference_mode():
            return torch.softmax(tnet(x), dim=1)

    err = check_outputs_match(
        f"{variant} {predict_group(spec)}",
        run(torch_input(torch, x0, cl)).numpy(),
        fnet.predict(x0, batch_size=spec.batch),
    )
    benchmark.group = predict_group(spec)
    benchmark.extra_info.update(
        variant=variant,
        model=spec.model,
        batch=spec.batch,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        dtype="float32",
        max_abs_diff_vs_fastnet=err,
    )
    median = run_pedantic(benchmark, run, rounds, setup=lambda: ((torch_input(torch, feeder.next()[0], cl),), {}))
    benchmark.extra_info["samples_per_s"] = round(spec.batch / median, 1)


# ---- kernels: the same shapes as bench_kernels.py, through PyTorch's own ops -----------------


def _t(torch, rng, *shape, cl=False):
    t = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32))
    return t.contiguous(memory_format=torch.channels_last) if cl else t


def _dense(torch, rng, cl):
    x, w, b, dy = _t(torch, rng, 128, 784), _t(torch, rng, 512, 784), _t(torch, rng, 512), _t(torch, rng, 128, 512)

    def run():  # what an autograd Linear does: y = x W^T + b, then dX, dW, db
        torch.addmm(b, x, w.t())
        return dy @ w, dy.t() @ x, dy.sum(0)

    return run


def _conv(n, c, f, h, k, pad, which):
    def build(torch, rng, cl):
        x, w, b = _t(torch, rng, n, c, h, h, cl=cl), _t(torch, rng, f, c, k, k, cl=cl), _t(torch, rng, f)
        oh = h + 2 * pad - k + 1
        dy = _t(torch, rng, n, f, oh, oh, cl=cl)
        conv_bwd = torch.ops.aten.convolution_backward

        def fwd():
            return torch.nn.functional.conv2d(x, w, b, 1, pad)

        def bwd():
            return conv_bwd(dy, x, w, [f], [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, [True, True, True])

        return {"fwd": fwd, "bwd": bwd, "fwd+bwd": lambda: (fwd(), bwd())}[which]

    return build


def _pool(n, c, h):
    def build(torch, rng, cl):
        x = _t(torch, rng, n, c, h, h, cl=cl)
        dy = _t(torch, rng, n, c, h // 2, h // 2, cl=cl)
        fwd = torch.ops.aten.max_pool2d_with_indices
        bwd = torch.ops.aten.max_pool2d_with_indices_backward

        def run():
            _, idx = fwd(x, [2, 2], [2, 2])
            return bwd(dy, x, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)

        return run

    return build


def _softmax_ce(n, classes):
    def build(torch, rng, cl):
        logits = _t(torch, rng, n, classes).requires_grad_(True)
        target = torch.from_numpy(rng.integers(0, classes, n).astype(np.int64))

        def run():  # loss and dlogits, as fastnet's fused kernel returns them
            loss = torch.nn.functional.cross_entropy(logits, target, reduction="sum")
            return torch.autograd.grad(loss, logits)

        return run

    return build


def _adam(size):
    def build(torch, rng, cl):
        p = torch.nn.Parameter(_t(torch, rng, size))
        p.grad = _t(torch, rng, size) * 1e-3
        opt = torch.optim.Adam([p], lr=1e-3, eps=1e-7)  # PyTorch's default implementation (foreach) on CPU
        return opt.step

    return build


# (case name as in bench_kernels.CASES, builder, layouts)
TORCH_KERNELS = [
    ("dense 128x784->512 fwd+bwd", _dense, ["default"]),
    ("conv 1->6 5x5 pad2 128x1x28x28 fwd", _conv(128, 1, 6, 28, 5, 2, "fwd"), ["default", "channels_last"]),
    ("conv 1->6 5x5 pad2 128x1x28x28 bwd", _conv(128, 1, 6, 28, 5, 2, "bwd"), ["default", "channels_last"]),
    ("conv 1->6 5x5 pad2 128x1x28x28 fwd+bwd", _conv(128, 1, 6, 28, 5, 2, "fwd+bwd"), ["default", "channels_last"]),
    ("conv 32->64 3x3 128x32x26x26 fwd", _conv(128, 32, 64, 26, 3, 0, "fwd"), ["default", "channels_last"]),
    ("conv 32->64 3x3 128x32x26x26 bwd", _conv(128, 32, 64, 26, 3, 0, "bwd"), ["default", "channels_last"]),
    ("conv 32->64 3x3 128x32x26x26 fwd+bwd", _conv(128, 32, 64, 26, 3, 0, "fwd+bwd"), ["default", "channels_last"]),
    ("maxpool 2x2 128x6x28x28 fwd+bwd", _pool(128, 6, 28), ["default", "channels_last"]),
    ("maxpool 2x2 128x64x24x24 fwd+bwd", _pool(128, 64, 24), ["default", "channels_last"]),
    ("softmax-CE 128x10", _softmax_ce(128, 10), ["default"]),
    ("softmax-CE 1024x1000", _softmax_ce(1024, 1000), ["default"]),
    ("adam 1M params", _adam(1_000_000), ["default"]),
]
KERNEL_PARAMS = [(name, build, lay) for name, build, lays in TORCH_KERNELS for lay in lays]


@pytest.mark.parametrize("case,build,layout", KERNEL_PARAMS, ids=[f"{n}-{lay}" for n, _, lay in KERNEL_PARAMS])
def test_torch_kernel(benchmark, case, build, layout, torch_mod, rounds):
    torch = torch_mod
    benchmark.group = f"kernel {case}"
    cl = layout == "channels_last"
    benchmark.extra_info.update(
        variant="torch-channels_last" if cl else "torch",
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        dtype="float32",
    )
    with torch.no_grad() if "softmax" not in case else torch.enable_grad():
        fn = build(torch, np.random.default_rng(0), cl)
        fn()
        run_pedantic(benchmark, fn, rounds)
