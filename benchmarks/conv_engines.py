"""A convolution engine switched off and on, interleaved in one process: per layer and for whole steps.

    PYTHONPATH=src python benchmarks/conv_engines.py --threads 2            # the layer table in config.py
    PYTHONPATH=src python benchmarks/conv_engines.py --threads 1 --steps    # and whole training steps / predict
    PYTHONPATH=src python benchmarks/conv_engines.py --switch strided --layers "ResNet-20 16->32 1x1 s2"

``--switch`` names the engine (``SWITCHES``): "blocked" (default) alternates ``config.BLOCKED_MAX_CF = None`` (the
dispatch without the blocked kernels: direct, Winograd or im2col) with a limit that lets every layer through;
"strided" ``config.STRIDED_PHASES`` False / True (1x1 stride-2 layers on im2col or by stride phases on the
blocked kernels); "gemm-dw" ``config.BLOCKED_GEMM_DW_MAX_OUTPUT`` None / as shipped (a small plane's dW from the blocked
kernels or from im2col's GEMM). For each convolution of LeNet-5, the Keras CNN and ResNet-20 (float32, ReLU
fused, dx where a later layer needs it) it prints the medians of forward and backward. ``--steps`` does the same
for whole training steps (and ``predict`` at batch 256) of the models in ``common.py``, switching the shipped rule
off and on between steps. Interleaving in one process keeps
the machine's speed phases out of the ratio, which suites run one after another do not (see README). Not a
pytest-benchmark suite (``report.py`` does not run it): a view for tuning the dispatch rule.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
if importlib.util.find_spec("fastnet") is None:  # not installed, no PYTHONPATH: the checkout's
    sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import fastnet  # noqa: E402,I001  (before NumPy, as in a user's script: fastnet/_thread_env.py)
import numpy as np  # noqa: E402

from fastnet._kernels import config  # noqa: E402
from fastnet._kernels.fast import conv  # noqa: E402

# name: (batch, C, F, H, W, kernel, stride, padding, dx wanted)
LAYERS = {
    "LeNet-5 1->6 5x5 pad 2": (256, 1, 6, 28, 28, 5, 1, 2, False),
    "LeNet-5 6->16 5x5": (256, 6, 16, 14, 14, 5, 1, 0, True),
    "Keras CNN 1->32 3x3": (128, 1, 32, 28, 28, 3, 1, 0, False),
    "Keras CNN 32->64 3x3": (128, 32, 64, 26, 26, 3, 1, 0, True),
    "ResNet-20 16->16 28x28": (128, 16, 16, 28, 28, 3, 1, 1, True),
    "ResNet-20 32->32 14x14": (128, 32, 32, 14, 14, 3, 1, 1, True),
    "ResNet-20 64->64 7x7": (128, 64, 64, 7, 7, 3, 1, 1, True),
    "ResNet-20 stem 1->16": (128, 1, 16, 28, 28, 3, 1, 1, False),
    "ResNet-20 16->32 1x1 s2": (128, 16, 32, 28, 28, 1, 2, 0, True),
    "ResNet-20 32->64 1x1 s2": (128, 32, 64, 14, 14, 1, 2, 0, True),
}
EVERY_LAYER = 1 << 30  # a BLOCKED_MAX_CF that lets every layer through
# switch: (config names, value "off", value "on" in the layer table); --steps uses the shipped value for "on"
SWITCHES = {
    "blocked": (("BLOCKED_MAX_CF", "BLOCKED_WINOGRAD_CF"), None, EVERY_LAYER),
    "strided": (("STRIDED_PHASES",), False, True),
    "gemm-dw": (("BLOCKED_GEMM_DW_MAX_OUTPUT",), None, config.BLOCKED_GEMM_DW_MAX_OUTPUT),
}


def _set(names, value) -> None:
    for name in names:
        setattr(config, name, value)


def _median_ms(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def _layer_times(shape, rng, rounds: int, reps: int, switch) -> dict:
    n, c, f, h, w, k, s, p, need_dx = shape
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = (rng.standard_normal((f, c, k, k)) * 0.1).astype(np.float32)
    b = np.zeros(f, np.float32)
    y = conv.conv2d_forward(x, wt, b, (s, s), (p, p), "relu")
    dy = rng.standard_normal(y.shape).astype(np.float32)

    def forward():
        conv.conv2d_forward(x, wt, b, (s, s), (p, p), "relu")

    def backward():
        conv.conv2d_backward(dy, x, wt, (s, s), (p, p), "relu", y, need_dx)

    names, off, on = switch
    times = defaultdict(list)
    for _ in range(rounds):
        for engine, value in (("before", off), ("after", on)):
            # the blocked switch sets both limits: with BLOCKED_MAX_CF alone, a layer Winograd takes stayed there
            # (BLOCKED_WINOGRAD_CF), so until 2026-12-02 the Keras CNN's 32->64 "blocked" column was Winograd again
            _set(names, value)
            times[engine, "fwd"].append(_median_ms(forward, reps))
            times[engine, "bwd"].append(_median_ms(backward, reps))
    return {key: float(np.median(v)) for key, v in times.items()}


def layer_rows(names, batch=None, rounds: int = 3, reps: int = 7, switch: str = "blocked"):
    """{name: {(engine, pass): ms}} for engine "before" / "after" (the switch off / on) and pass "fwd" / "bwd"."""
    rng = np.random.default_rng(0)
    config_names = SWITCHES[switch][0]
    shipped = [getattr(config, name) for name in config_names]
    try:
        return {
            name: _layer_times((batch or LAYERS[name][0], *LAYERS[name][1:]), rng, rounds, reps, SWITCHES[switch])
            for name in names
        }
    finally:
        for name, value in zip(config_names, shipped, strict=True):
            setattr(config, name, value)


def step_rows(steps: int = 8, switch: str = "blocked"):
    """{model: {(kind, engine): ms}}: training steps (and predict at batch 256 for M3/M4), the switch's first
    config value as shipped ("after") and off ("before"), alternated between steps."""
    from common import SPECS, dataset_for, fastnet_model

    name, off = SWITCHES[switch][0][0], SWITCHES[switch][1]
    shipped = getattr(config, name)
    out = {}
    try:
        for spec in (s for s in SPECS if s.model in ("M3", "M4", "R20")):
            fastnet.seed(0)
            net, onehot = fastnet_model(spec.model)
            data = dataset_for(spec.model)
            xb, yb = data.x[: spec.batch], (data.y_onehot if onehot else data.y)[: spec.batch]
            for value in (off, shipped, off, shipped):  # warm-up: both engines compiled and in cache
                setattr(config, name, value)
                net.train_on_batch(xb, yb)
            times = defaultdict(list)
            for _ in range(steps if spec.model != "R20" else max(1, steps // 3)):
                for engine, value in (("before", off), ("after", shipped)):
                    setattr(config, name, value)
                    t = time.perf_counter()
                    net.train_on_batch(xb, yb)
                    times["train", engine].append(time.perf_counter() - t)
                    if spec.model in ("M3", "M4"):
                        t = time.perf_counter()
                        net.predict(data.x[:256], batch_size=256)
                        times["predict b256", engine].append(time.perf_counter() - t)
            out[f"{spec.model} b{spec.batch}"] = {key: float(np.median(v)) * 1e3 for key, v in times.items()}
    finally:
        setattr(config, name, shipped)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=None, help="fastnet.set_num_threads(N); default: every CPU")
    p.add_argument("--layers", default=",".join(LAYERS), help="comma-separated names from LAYERS")
    p.add_argument("--batch", type=int, default=None, help="override every layer's batch (a quick look)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--steps", action="store_true", help="also whole training steps and predict")
    p.add_argument("--steps-count", type=int, default=8, help="interleaved steps per engine (a third for ResNet-20)")
    p.add_argument("--switch", choices=list(SWITCHES), default="blocked", help="the engine switched off and on")
    args = p.parse_args(argv)
    if args.threads:
        fastnet.set_num_threads(args.threads)
    names = [n.strip() for n in args.layers.split(",") if n.strip()]
    unknown = [n for n in names if n not in LAYERS]
    if unknown:
        raise SystemExit(f"conv_engines: unknown layer(s) {unknown}; known: {list(LAYERS)}")
    print(f"threads {fastnet.get_num_threads()}; ms, medians of {args.rounds} interleaved rounds of {args.reps}")
    on = args.switch
    print(f"switch {on}: before = off, {on} = on")
    print(f"| layer | fwd before | fwd {on} | bwd before | bwd {on} |\n|---|---|---|---|---|")
    for name, t in layer_rows(names, args.batch, args.rounds, args.reps, args.switch).items():
        print(
            f"| {name} | {t['before', 'fwd']:.2f} | {t['after', 'fwd']:.2f} "
            f"| {t['before', 'bwd']:.2f} | {t['after', 'bwd']:.2f} |"
        )
    if args.steps:
        print(f"\n| model | kind | before ms | {on} ms | speed-up |\n|---|---|---|---|---|")
        for model, t in step_rows(args.steps_count, args.switch).items():
            for kind in ("train", "predict b256"):
                if (kind, "before") in t:
                    a, b = t[kind, "before"], t[kind, "after"]
                    print(f"| {model} | {kind} | {a:.1f} | {b:.1f} | {a / b:.2f}x |")


if __name__ == "__main__":
    main()
