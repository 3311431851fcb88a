"""The benchmark models in JAX: the whole training step (forward, loss, gradient, optax update) under one ``jax.jit``,
and the jitted inference forward, in NCHW or NHWC.

M1-M4 start from a fastnet model's weights (``fastnet.interop.safetensors_io.torch_state``: PyTorch names and
layouts, layer ``i`` of the Sequential is key ``"i.weight"`` / ``"i.bias"``), so a predict here can be checked
against fastnet's ``predict`` on the same weights. ResNet-20 (R20) has its own He-normal initialisation.

``configure(threads, convs)`` must run before ``jax`` is first imported: XLA reads ``XLA_FLAGS`` and sizes its CPU
thread pool from the CPU affinity mask when the backend starts.
"""

from __future__ import annotations

import os
import sys

import numpy as np

# JAX 0.10 sends CPU convolutions to YNNPACK; this flag gives them back to XLA's own (Eigen) convolution.
XLA_CONVS_FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
CONV_CHOICES = ("ynnpack", "xla")

# Sequential models: ("dense" | "conv", state_dict index[, padding]) or a parameter-free op. The indices are those of
# common.fastnet_model's layers (and torch_model's modules), so fastnet's weights load by name.
ARCH = {
    "M1": [("dense", 0), ("relu",), ("dense", 2)],
    "M2": [("dense", 0), ("sigmoid",), ("dense", 2), ("sigmoid",)],
    "M3": [("conv", 0, 2), ("relu",), ("pool",), ("conv", 3, 0), ("relu",), ("pool",), ("flatten",)]
    + [("dense", 7), ("relu",), ("dense", 9), ("relu",), ("dense", 11)],
    "M4": [("conv", 0, 0), ("relu",), ("conv", 2, 0), ("relu",), ("pool",), ("dropout", 0.25), ("flatten",)]
    + [("dense", 7), ("relu",), ("dropout", 0.5), ("dense", 10)],
}


def configure(threads: int, convs: str) -> dict:
    """Set ``XLA_FLAGS`` and the CPU affinity for a JAX run with ``threads`` threads; returns what was set.

    Threads: XLA's CPU client sizes its intra-op pool from the affinity mask, so for fewer threads than the mask has
    the process (its main thread, whose mask XLA's threads inherit) is pinned to the first ``threads`` CPUs of it.
    ``--xla_cpu_multi_thread_eigen=false`` is added for one thread as well (it alone did not stop XLA from using both
    cores here: same wall time and CPU time as without it).
    """
    if convs not in CONV_CHOICES:
        raise ValueError(f"--fn-jax-convs must be one of {CONV_CHOICES}, got {convs!r}")
    if "jax" in sys.modules:
        raise RuntimeError("peers_jax.configure must run before jax is imported (XLA reads XLA_FLAGS at start)")
    flags = os.environ.get("XLA_FLAGS", "").split()
    if convs == "xla" and XLA_CONVS_FLAG not in flags:
        flags.append(XLA_CONVS_FLAG)
    if threads == 1:
        flags.append("--xla_cpu_multi_thread_eigen=false")
    os.environ["XLA_FLAGS"] = " ".join(flags)
    cpus = sorted(os.sched_getaffinity(0))
    if threads < len(cpus):
        os.sched_setaffinity(0, cpus[:threads])
    return {"XLA_FLAGS": os.environ["XLA_FLAGS"], "cpus": sorted(os.sched_getaffinity(0))}


# ---- parameters ------------------------------------------------------------------------------


def params_from_torch_state(model: str, state: dict, nhwc: bool) -> dict:
    """JAX parameters of Sequential ``model`` from PyTorch-layout arrays: conv OIHW (HWIO for NHWC), dense (in, out).

    In NHWC the flatten order is (H, W, C) instead of (C, H, W): the first dense layer's rows are permuted once here,
    so both layouts compute the same function of the same weights.
    """
    import jax.numpy as jnp

    params, channels, flat_seen = {}, None, False
    for op in ARCH[model]:
        if op[0] == "flatten":
            flat_seen = True
        if op[0] not in ("dense", "conv"):
            continue
        w, b = np.asarray(state[f"{op[1]}.weight"]), np.asarray(state[f"{op[1]}.bias"])
        if op[0] == "conv":
            channels = w.shape[0]
            w = w.transpose(2, 3, 1, 0) if nhwc else w
        else:
            w = w.T  # (in, out)
            if nhwc and flat_seen and channels is not None:
                side = int(round((w.shape[0] // channels) ** 0.5))
                w = w.reshape(channels, side, side, -1).transpose(1, 2, 0, 3).reshape(w.shape[0], -1)
                channels = None  # only the first dense layer after the flatten
        params[str(op[1])] = {"w": jnp.asarray(np.ascontiguousarray(w)), "b": jnp.asarray(b)}
    return params


# ---- forward passes ----------------------------------------------------------------------------


def _conv(x, w, stride, pad, nhwc):
    from jax import lax

    dims = ("NHWC", "HWIO", "NHWC") if nhwc else ("NCHW", "OIHW", "NCHW")
    return lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad), (pad, pad)], dimension_numbers=dims)


def _bias(y, b, nhwc):
    return y + (b if nhwc else b[:, None, None])


def _pool(x, nhwc):
    """2x2 max pooling, stride 2. As a max over a reshaped (.., 2, .., 2) view when the sides are even: its gradient
    compiles to a compare-and-select that was 5x faster on XLA's CPU backend than ``reduce_window``'s
    select-and-scatter (M4's 128x64x24x24 pooling forward+backward: 27 ms against 130-145 ms)."""
    import jax.numpy as jnp
    from jax import lax

    n, *dims = x.shape
    h, w = (dims[0], dims[1]) if nhwc else (dims[1], dims[2])
    if h % 2 == 0 and w % 2 == 0:
        if nhwc:
            return x.reshape(n, h // 2, 2, w // 2, 2, dims[2]).max(axis=(2, 4))
        return x.reshape(n, dims[0], h // 2, 2, w // 2, 2).max(axis=(3, 5))
    win = (1, 2, 2, 1) if nhwc else (1, 1, 2, 2)
    return lax.reduce_window(x, -jnp.inf, lax.max, win, win, "VALID")


def _dropout(x, rate, key):
    import jax

    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return x * keep.astype(x.dtype) / (1.0 - rate)


def sequential_forward(model: str, nhwc: bool):
    """``f(params, x, train, key) -> logits`` (probabilities for M2, whose last layer is a sigmoid)."""
    import jax
    import jax.numpy as jnp

    ops = ARCH[model]

    def forward(params, x, train, key):
        for op in ops:
            kind = op[0]
            if kind == "dense":
                p = params[str(op[1])]
                x = x @ p["w"] + p["b"]
            elif kind == "conv":
                p = params[str(op[1])]
                x = _bias(_conv(x, p["w"], 1, op[2], nhwc), p["b"], nhwc)
            elif kind == "relu":
                x = jax.nn.relu(x)
            elif kind == "sigmoid":
                x = jax.nn.sigmoid(x)
            elif kind == "pool":
                x = _pool(x, nhwc)
            elif kind == "flatten":
                x = jnp.reshape(x, (x.shape[0], -1))
            elif kind == "dropout" and train:
                key, sub = jax.random.split(key)
                x = _dropout(x, op[1], sub)
        return x

    return forward


# ---- ResNet-20 (common.torch_resnet's graph: BatchNorm in training mode, projection shortcuts) -------------


def resnet_init(seed: int = 0, depth: int = 20, width: int = 16, in_ch: int = 1, classes: int = 10, nhwc=False):
    """(params, batch-norm running statistics) with He-normal convolutions and PyTorch's default Linear init."""
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)

    def conv(c_in, c_out, k):
        w = rng.standard_normal((c_out, c_in, k, k)).astype(np.float32) * np.sqrt(2.0 / (c_in * k * k))
        return jnp.asarray(w.transpose(2, 3, 1, 0) if nhwc else w)

    def bn(c):
        return {"g": jnp.ones(c, jnp.float32), "b": jnp.zeros(c, jnp.float32)}

    def bn_stats(c):
        return {"mean": jnp.zeros(c, jnp.float32), "var": jnp.ones(c, jnp.float32)}

    params = {"stem": {"w": conv(in_ch, width, 3), "bn": bn(width)}, "blocks": []}
    stats = {"stem": bn_stats(width), "blocks": []}
    c_in = width
    for stage in range(3):
        c_out = width * 2**stage
        for b in range((depth - 2) // 6):
            stride = 2 if stage > 0 and b == 0 else 1
            p = {"w1": conv(c_in, c_out, 3), "bn1": bn(c_out), "w2": conv(c_out, c_out, 3), "bn2": bn(c_out)}
            s = {"bn1": bn_stats(c_out), "bn2": bn_stats(c_out)}
            if stride != 1 or c_in != c_out:
                p["proj"], p["bnp"], s["bnp"] = conv(c_in, c_out, 1), bn(c_out), bn_stats(c_out)
            params["blocks"].append(p)
            stats["blocks"].append(s)
            c_in = c_out
    bound = 1.0 / np.sqrt(c_in)
    params["fc"] = {
        "w": jnp.asarray(rng.uniform(-bound, bound, (c_in, classes)).astype(np.float32)),
        "b": jnp.asarray(rng.uniform(-bound, bound, classes).astype(np.float32)),
    }
    return params, stats


def resnet_forward(depth: int = 20, nhwc: bool = False):
    """``f(params, stats, x, train) -> (logits, new stats)``; strides follow ``resnet_init``'s layout of blocks."""
    import jax
    import jax.numpy as jnp

    axes = (0, 1, 2) if nhwc else (0, 2, 3)
    n = (depth - 2) // 6
    strides = [2 if s > 0 and b == 0 else 1 for s in range(3) for b in range(n)]

    def shape_c(v):
        return v if nhwc else v[:, None, None]

    def batchnorm(x, p, s, train):
        if train:
            mean, var = jnp.mean(x, axes), jnp.var(x, axes)
            m = x.size // x.shape[-1 if nhwc else 1]
            new = {"mean": 0.9 * s["mean"] + 0.1 * mean, "var": 0.9 * s["var"] + 0.1 * var * m / (m - 1)}
        else:
            mean, var, new = s["mean"], s["var"], s
        y = (x - shape_c(mean)) * shape_c(p["g"] * jax.lax.rsqrt(var + 1e-5)) + shape_c(p["b"])
        return y, new

    def forward(params, stats, x, train):
        new_stats = {"blocks": []}
        h, new_stats["stem"] = batchnorm(
            _conv(x, params["stem"]["w"], 1, 1, nhwc), params["stem"]["bn"], stats["stem"], train
        )
        h = jax.nn.relu(h)
        for p, s, stride in zip(params["blocks"], stats["blocks"], strides, strict=True):
            ns = {}
            y, ns["bn1"] = batchnorm(_conv(h, p["w1"], stride, 1, nhwc), p["bn1"], s["bn1"], train)
            y, ns["bn2"] = batchnorm(_conv(jax.nn.relu(y), p["w2"], 1, 1, nhwc), p["bn2"], s["bn2"], train)
            short = h
            if "proj" in p:
                short, ns["bnp"] = batchnorm(_conv(h, p["proj"], stride, 0, nhwc), p["bnp"], s["bnp"], train)
            h = jax.nn.relu(y + short)
            new_stats["blocks"].append(ns)
        h = jnp.mean(h, axes[1:])
        return h @ params["fc"]["w"] + params["fc"]["b"], new_stats

    return forward


# ---- losses, optimizers, the jitted step ---------------------------------------------------------


def optimizer(model: str):
    """The spec's optimizer in optax, with the hyperparameters of common.fastnet_model."""
    import optax

    if model == "M1":  # Keras RMSprop as fastnet: p -= lr * g / (sqrt(avg g^2) + eps)
        return optax.rmsprop(1e-3, decay=0.9, eps=1e-7, eps_in_sqrt=False)
    if model == "M2":
        return optax.sgd(1.0)
    if model == "M3":
        return optax.sgd(0.01, momentum=0.9)
    if model == "M4":
        return optax.adam(1e-3, eps=1e-8)
    if model == "R20":  # PyTorch-style coupled weight decay: g + wd * p before the momentum
        return optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(0.1, momentum=0.9))
    raise ValueError(f"unknown model {model!r}")


def _softmax_ce(logits, y):
    import jax
    import jax.numpy as jnp

    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def _bce(p, y):
    import jax.numpy as jnp

    p = jnp.clip(p, 1e-7, 1.0 - 1e-7)
    return -jnp.mean(y * jnp.log(p) + (1.0 - y) * jnp.log1p(-p))


def train_step(model: str, nhwc: bool, init_params=None, seed: int = 0):
    """(jitted ``step(state, x, y) -> (state, loss)``, initial state). ``state`` is donated to the next call."""
    import jax

    opt = optimizer(model)
    if model == "R20":
        params, stats = resnet_init(seed, nhwc=nhwc)
        fwd = resnet_forward(20, nhwc)

        def loss_fn(params, stats, x, y, key):
            logits, new_stats = fwd(params, stats, x, True)
            return _softmax_ce(logits, y), new_stats
    else:
        params, stats = init_params, {}
        fwd = sequential_forward(model, nhwc)
        loss_of = _bce if model == "M2" else _softmax_ce

        def loss_fn(params, stats, x, y, key):
            return loss_of(fwd(params, x, True, key), y), stats

    def step(state, x, y):
        params, stats, opt_state, key = state
        key, sub = jax.random.split(key)
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, x, y, sub)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = jax.tree_util.tree_map(lambda p, u: p + u, params, updates)
        return (params, stats, opt_state, key), loss

    state = (params, stats, opt.init(params), jax.random.PRNGKey(seed))
    return jax.jit(step, donate_argnums=0), state


def predict_fn(model: str, params, nhwc: bool):
    """Jitted ``f(x) -> softmax probabilities`` in eval mode (dropout off), like fastnet's ``predict``."""
    import jax

    fwd = sequential_forward(model, nhwc)
    return jax.jit(lambda p, x: jax.nn.softmax(fwd(p, x, False, None), axis=-1)), params


def to_layout(x: np.ndarray, nhwc: bool) -> np.ndarray:
    """NCHW images as the step wants them (one copy of the whole data set, outside any timing)."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if nhwc and x.ndim == 4 else x
