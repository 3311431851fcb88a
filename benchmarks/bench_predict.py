"""fastnet's inference: ``model.predict(x, batch_size=256)`` on one fresh batch of 256 MNIST images per round (eval
mode, softmax link included), for M3 (LeNet-5) and M4 after 20 training steps.

The peers (ONNX Runtime on this model's export, ``torch.compile``, JAX ``jit``, PyTorch eager) join the same groups
from ``bench_peers.py`` and ``bench_torch.py``.
"""

from __future__ import annotations

import pytest
from common import dataset_for, run_pedantic
from peers_common import PREDICT_SPECS, predict_batches, predict_group, trained_fastnet

pytestmark = pytest.mark.predict


@pytest.mark.parametrize("spec", PREDICT_SPECS, ids=lambda s: f"{s.model}-b{s.batch}")
def test_predict(benchmark, spec, threads, rounds):
    import fastnet

    net = trained_fastnet(spec.model)
    feeder = predict_batches(spec)
    benchmark.group = predict_group(spec)
    benchmark.extra_info.update(
        variant="fast",
        model=spec.model,
        batch=spec.batch,
        threads=threads,
        data=dataset_for(spec.model).source,
        dtype="float32",
    )
    with fastnet.use_backend("fast"):

        def run(x):
            return net.predict(x, batch_size=spec.batch)

        run(feeder.next()[0])
        median = run_pedantic(benchmark, run, rounds, setup=lambda: ((feeder.next()[0],), {}))
    benchmark.extra_info["samples_per_s"] = round(spec.batch / median, 1)
