"""The strongest peers on fastnet's workloads, joining the groups of ``bench_training_steps.py`` (training steps) and
``bench_predict.py`` (predict at batch 256), so ``report.py`` prints fastnet against the best of them.

- ``torch.compile`` (Inductor, default mode): the module and ``optimizer.step`` compiled, NCHW and channels-last for
  the CNNs; predict compiles ``softmax(net(x))`` under ``no_grad`` with Inductor's ``freezing`` (its CPU inference
  setting). Compilation and warm-up calls happen before any timing.
- JAX: the whole training step (forward, loss, gradient, optax update; dropout in M4) under one ``jax.jit``, and the
  jitted forward for predict. NCHW and NHWC are both compiled, checked and probed (5 calls each); the faster is
  timed and ``extra_info`` gives both probes. ``--fn-jax-convs`` picks JAX 0.10's YNNPACK convolutions (its default)
  or XLA's own; ``report.py`` runs both, each in its own process (variants ``jax`` and ``jax-xla-convs``).
- ONNX Runtime: predict on fastnet's own ONNX export (``fastnet.interop.export_onnx``), CPU provider,
  ``intra_op_num_threads`` = fastnet's threads, ``inter_op_num_threads`` 1, all graph optimizations.

Every peer is checked before it is timed: 20 training steps on one real batch must lower the loss, and predict must
equal fastnet's ``predict`` on the same weights within 1e-4; a failed check fails the entry with the reason. Each peer
is skipped with a reason when its packages are missing (optional benchmark extras: ``torch``, ``jax``,
``onnxruntime``).
"""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest
from common import SPECS, dataset_for, fastnet_model, run_pedantic, torch_batches, torch_model, torch_step
from peers_common import (
    ORT_SESSION,
    PREDICT_SPECS,
    check_loss_decreases,
    check_outputs_match,
    ort_session,
    predict_batches,
    predict_group,
    torch_input,
    torch_predict_model,
    trained_fastnet,
)

pytestmark = pytest.mark.peers
PROBE_CALLS = 5


def _layouts(spec):
    return ["default", "channels_last"] if spec.images else ["default"]


def _ids(params):
    return [f"{s.model}-b{s.batch}-{lay}" for s, lay in params]


STEP_PARAMS = [(s, lay) for s in SPECS for lay in _layouts(s)]
PREDICT_PARAMS = [(s, lay) for s in PREDICT_SPECS for lay in _layouts(s)]


def _info(benchmark, group, variant, spec, threads, **more):
    benchmark.group = group
    benchmark.extra_info.update(
        variant=variant, model=spec.model, batch=spec.batch, threads=threads, dtype="float32", **more
    )


def _throughput(benchmark, spec, median):
    benchmark.extra_info["samples_per_s"] = round(spec.batch / median, 1)


# ---- torch.compile -------------------------------------------------------------------------------


@pytest.fixture
def torch_compiler(torch_mod):
    """torch with Dynamo's caches emptied before and after the test: a process that had compiled a dozen models
    crashed (segfault in the garbage collector during tracing) when they were left to pile up."""
    torch_mod._dynamo.reset()
    yield torch_mod
    torch_mod._dynamo.reset()
    gc.collect()


@pytest.mark.inductor
@pytest.mark.parametrize("spec,layout", STEP_PARAMS, ids=_ids(STEP_PARAMS))
def test_compile_train_step(benchmark, spec, layout, torch_compiler, threads, rounds):
    torch = torch_compiler
    torch.manual_seed(0)
    cl = layout == "channels_last"
    net, loss_fn, opt, onehot = torch_model(spec.model, channels_last=cl)
    net.train()
    step = torch_step(net, loss_fn, opt, compiled=True)
    ds = dataset_for(spec.model)
    feeder = torch_batches(ds, spec, onehot, channels_last=cl)
    variant = "torch-compile" + ("-channels_last" if cl else "")
    t = time.perf_counter()
    losses = check_loss_decreases(f"{variant} {spec.group}", step, feeder.next())  # compiles here, untimed
    _info(
        benchmark,
        spec.group,
        variant,
        spec,
        torch.get_num_threads(),
        data=ds.source,
        torch=torch.__version__,
        compiled="module + optimizer.step, mode=default",
        compile_and_check_s=round(time.perf_counter() - t, 1),
        check_loss=[round(losses[0], 4), round(losses[-1], 4)],
    )
    _throughput(benchmark, spec, run_pedantic(benchmark, step, rounds, setup=lambda: (feeder.next(), {})))


@pytest.mark.inductor
@pytest.mark.parametrize("spec,layout", PREDICT_PARAMS, ids=_ids(PREDICT_PARAMS))
def test_compile_predict(benchmark, spec, layout, torch_compiler, threads, rounds):
    torch = torch_compiler
    cl = layout == "channels_last"
    fnet = trained_fastnet(spec.model)
    feeder = predict_batches(spec)
    x0 = feeder.next()[0]
    want = fnet.predict(x0, batch_size=spec.batch)
    tnet = torch_predict_model(torch, spec.model, fnet, cl)
    variant = "torch-compile" + ("-channels_last" if cl else "")
    with torch.no_grad(), torch._inductor.config.patch(freezing=True):
        run = torch.compile(lambda x: torch.softmax(tnet(x), dim=1))
        err = check_outputs_match(f"{variant} {predict_group(spec)}", run(torch_input(torch, x0, cl)).numpy(), want)
        _info(
            benchmark,
            predict_group(spec),
            variant,
            spec,
            torch.get_num_threads(),
            torch=torch.__version__,
            compiled="softmax(net(x)), no_grad, inductor freezing",
            max_abs_diff_vs_fastnet=err,
        )
        median = run_pedantic(benchmark, run, rounds, setup=lambda: ((torch_input(torch, feeder.next()[0], cl),), {}))
    _throughput(benchmark, spec, median)


# ---- JAX -------------------------------------------------------------------------------------------


class _JaxStepper:
    """Calls the jitted step with the current state (donated) and keeps the new one; the float() waits for it."""

    def __init__(self, jitted, state):
        self.jitted, self.state = jitted, state

    def __call__(self, x, y):
        self.state, loss = self.jitted(self.state, x, y)
        return float(loss)


def _probe(fn, make_args) -> float:
    times = []
    for _ in range(PROBE_CALLS):
        args = make_args()
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _jax_variant(convs):
    return "jax" if convs == "ynnpack" else "jax-xla-convs"


def _jax_info(jax, convs, setting):
    import optax

    return {"jax": jax.__version__, "optax": optax.__version__, "convs": convs, "XLA_FLAGS": setting["XLA_FLAGS"]}


@pytest.mark.jax
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.model}-b{s.batch}")
def test_jax_train_step(benchmark, spec, jax_mod, threads, rounds):
    import peers_jax
    from common import Batches

    jax, convs, setting = jax_mod
    ds = dataset_for(spec.model)
    y = ds.y_onehot if spec.model == "M2" else ds.y.astype(np.int32)
    init_state = None
    if spec.model != "R20":  # fastnet's own initial weights (seed 0), in PyTorch layout
        import fastnet
        from fastnet.interop.safetensors_io import torch_state

        fastnet.seed(0)
        init_state = torch_state(fastnet_model(spec.model)[0])
    variant = _jax_variant(convs)
    candidates = {}
    for nhwc in [False, True] if spec.images else [False]:
        layout = "NHWC" if nhwc else "NCHW"
        init = None if init_state is None else peers_jax.params_from_torch_state(spec.model, init_state, nhwc)
        jitted, state = peers_jax.train_step(spec.model, nhwc, init)
        step = _JaxStepper(jitted, state)
        feeder = Batches(peers_jax.to_layout(ds.x, nhwc), y, spec.batch)
        t = time.perf_counter()
        losses = check_loss_decreases(f"{variant} {layout} {spec.group}", step, feeder.next())  # compiles here
        compile_s = time.perf_counter() - t
        candidates[layout] = (_probe(step, feeder.next), step, feeder, losses, compile_s)
    layout = min(candidates, key=lambda k: candidates[k][0])
    _, step, feeder, losses, compile_s = candidates[layout]
    _info(
        benchmark,
        spec.group,
        variant,
        spec,
        threads,
        data=ds.source,
        layout=layout,
        layout_probe_ms={k: round(v[0] * 1e3, 2) for k, v in candidates.items()},
        compile_and_check_s=round(compile_s, 1),
        check_loss=[round(losses[0], 4), round(losses[-1], 4)],
        cpus=setting["cpus"],
        **_jax_info(jax, convs, setting),
    )
    _throughput(benchmark, spec, run_pedantic(benchmark, step, rounds, setup=lambda: (feeder.next(), {})))


@pytest.mark.jax
@pytest.mark.parametrize("spec", PREDICT_SPECS, ids=lambda s: f"{s.model}-b{s.batch}")
def test_jax_predict(benchmark, spec, jax_mod, threads, rounds):
    import peers_jax

    from fastnet.interop.safetensors_io import torch_state

    jax, convs, setting = jax_mod
    fnet = trained_fastnet(spec.model)
    feeder = predict_batches(spec)
    x0 = feeder.next()[0]
    want = fnet.predict(x0, batch_size=spec.batch)
    weights = torch_state(fnet)
    variant = _jax_variant(convs)
    candidates = {}
    for nhwc in (False, True):
        layout = "NHWC" if nhwc else "NCHW"
        f, params = peers_jax.predict_fn(spec.model, peers_jax.params_from_torch_state(spec.model, weights, nhwc), nhwc)

        def run(x, f=f, params=params):
            return np.asarray(f(params, x))  # np.asarray waits for the result

        def args(nhwc=nhwc):
            return (peers_jax.to_layout(feeder.next()[0], nhwc),)

        err = check_outputs_match(f"{variant} {layout} {predict_group(spec)}", run(peers_jax.to_layout(x0, nhwc)), want)
        candidates[layout] = (_probe(run, args), run, args, err)
    layout = min(candidates, key=lambda k: candidates[k][0])
    _, run, args, err = candidates[layout]
    _info(
        benchmark,
        predict_group(spec),
        variant,
        spec,
        threads,
        layout=layout,
        layout_probe_ms={k: round(v[0] * 1e3, 2) for k, v in candidates.items()},
        max_abs_diff_vs_fastnet=err,
        cpus=setting["cpus"],
        **_jax_info(jax, convs, setting),
    )
    _throughput(benchmark, spec, run_pedantic(benchmark, run, rounds, setup=lambda: (args(), {})))


# ---- ONNX Runtime ------------------------------------------------------------------------------------


@pytest.mark.onnxruntime
@pytest.mark.parametrize("spec", PREDICT_SPECS, ids=lambda s: f"{s.model}-b{s.batch}")
def test_ort_predict(benchmark, spec, ort_mod, threads, rounds, tmp_path):
    from fastnet.interop import export_onnx

    ort = ort_mod
    fnet = trained_fastnet(spec.model)
    path = tmp_path / f"{spec.model}.onnx"
    export_onnx(fnet, path, input_shape=(1, 28, 28))
    sess = ort_session(ort, path, threads)

    def run(x):
        return sess.run(None, {"input": x})[0]

    feeder = predict_batches(spec)
    x0 = feeder.next()[0]
    err = check_outputs_match(f"onnxruntime {predict_group(spec)}", run(x0), fnet.predict(x0, batch_size=spec.batch))
    _info(
        benchmark,
        predict_group(spec),
        "onnxruntime",
        spec,
        threads,
        onnxruntime=ort.__version__,
        session=ORT_SESSION,
        max_abs_diff_vs_fastnet=err,
    )
    _throughput(benchmark, spec, run_pedantic(benchmark, run, rounds, setup=lambda: ((feeder.next()[0],), {})))
