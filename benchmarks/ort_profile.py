"""Where ONNX Runtime's prediction spends its time, node by node, next to fastnet's layers on the same model.

    PYTHONPATH=src python benchmarks/ort_profile.py --model M4 --threads 2

The model is ``interleaved.py --predict``'s (fastnet's M4 or M3 after 20 training steps, exported with
``fastnet.export_onnx``), run at batch 256 in the session ``peers_common.ort_session`` builds, with ONNX Runtime's
own profiler on (``SessionOptions.enable_profiling``); the medians of each node's kernel time over ``--runs`` runs
are printed, then fastnet's ``predict`` on the same batch and the forward time of each of its layers run one by
one (unfused, so a Conv2D's ReLU and pool show as their own rows). A view for aiming work, not a
pytest-benchmark suite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fastnet  # noqa: E402,I001  (before NumPy: fastnet/_thread_env.py)
import numpy as np  # noqa: E402
from conv_engines import _median_ms  # noqa: E402
from peers_common import PREDICT_SPECS, predict_batches, trained_fastnet  # noqa: E402


def ort_nodes(net, x, threads: int, runs: int) -> dict[str, float]:
    """{node (op): median ms} from ONNX Runtime's profiler, ``runs`` runs of ``x`` after one warm-up."""
    import onnxruntime as ort

    from fastnet.interop import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(net, path, input_shape=x.shape[1:])
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "ort_profile")
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        for _ in range(runs + 1):
            sess.run(None, {"input": x})
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    per_node: dict[str, list[float]] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            key = f"{e['name'].removesuffix('_kernel_time')} ({e['args'].get('op_name')})"
            per_node.setdefault(key, []).append(e["dur"] / 1e3)
    return {k: float(np.median(v[1:] or v)) for k, v in per_node.items()}  # the first run warms up


def fastnet_layers(net, x, runs: int) -> dict[str, float]:
    """{layer: median ms of its forward in eval mode}, the layers of ``net`` one after another."""
    times: dict[str, list[float]] = {}
    for _ in range(runs + 1):
        h = x
        for i, layer in enumerate(net.layers):
            t = time.perf_counter()
            h = layer.forward(h, training=False)
            times.setdefault(f"{i} {type(layer).__name__}", []).append(time.perf_counter() - t)
    return {k: float(np.median(v[1:])) * 1e3 for k, v in times.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=[s.model for s in PREDICT_SPECS], default="M4")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=20)
    args = p.parse_args(argv)
    fastnet.set_num_threads(args.threads)
    spec = next(s for s in PREDICT_SPECS if s.model == args.model)
    net = trained_fastnet(spec.model)
    x = predict_batches(spec).next()[0]
    nodes = ort_nodes(net, x, args.threads, args.runs)
    print(f"threads {args.threads}; batch {len(x)}; load average {[round(v, 2) for v in os.getloadavg()]}")
    print("\n| ONNX Runtime node | ms |\n|---|---|\n" + "\n".join(f"| {k} | {v:.2f} |" for k, v in nodes.items()))
    print(f"| all nodes | {sum(nodes.values()):.2f} |")
    whole = _median_ms(lambda: net.predict(x, batch_size=len(x)), args.runs)
    layers = fastnet_layers(net, x, args.runs)
    print(
        "\n| fastnet layer (unfused) | ms |\n|---|---|\n" + "\n".join(f"| {k} | {v:.2f} |" for k, v in layers.items())
    )
    print(f"| predict (fused, as shipped) | {whole:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
