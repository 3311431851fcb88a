"""Whole training steps (forward, loss, backward, update via ``model.train_on_batch``) of M1-M4,
under backend "fast" and "numpy" in one group per model and batch size.

Each timed round trains on the next batch of real data (MNIST, or the letters data for M2) when the files are
present, else random data of the same shape; ``extra_info["data"]`` says which, ``samples_per_s`` is
batch / median. PyTorch's version of each model joins the same group from ``bench_torch.py``.
"""

from __future__ import annotations

import pytest
from common import SPECS, Batches, dataset_for, fastnet_model, run_pedantic

pytestmark = pytest.mark.steps


def _build(spec, backend):
    import fastnet

    fastnet.seed(0)
    try:
        with fastnet.use_backend(backend):
            net, onehot = fastnet_model(spec.model)
    except (ImportError, AttributeError) as exc:  # a piece of the library not written yet
        pytest.skip(f"{spec.model} cannot be built yet: {exc!r}")
    return net, onehot


@pytest.mark.parametrize("backend", ["fast", "numpy"])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.model}-b{s.batch}")
def test_train_step(benchmark, spec, backend, threads, rounds):
    import fastnet

    net, onehot = _build(spec, backend)
    ds = dataset_for(spec.model)
    feeder = Batches(ds.x, ds.y_onehot if onehot else ds.y, spec.batch)
    benchmark.group = spec.group
    benchmark.extra_info.update(
        variant=backend, model=spec.model, batch=spec.batch, threads=threads, data=ds.source, dtype="float32"
    )
    with fastnet.use_backend(backend):
        net.train_on_batch(*feeder.next())  # the first step compiles (Numba) outside any timing
        median = run_pedantic(benchmark, net.train_on_batch, rounds, setup=lambda: (feeder.next(), {}))
    benchmark.extra_info["samples_per_s"] = round(spec.batch / median, 1)
