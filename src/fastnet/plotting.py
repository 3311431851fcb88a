"""Training curves as a PNG: ``fastnet.plot_history(history, path)``."""

from __future__ import annotations

from pathlib import Path


def _curves(history) -> dict:
    """The ``{name: [values per epoch]}`` dict of a History object or a plain dict."""
    h = getattr(history, "history", history)
    if not isinstance(h, dict) or not h:
        raise ValueError(
            f"plot_history: expected a History (with a .history dict) or a non-empty dict of lists, "
            f"got {type(history).__name__}"
        )
    out = {}
    for k, v in h.items():
        try:
            vals = [float(e) for e in v]
        except (TypeError, ValueError):
            raise ValueError(f"plot_history: history[{k!r}] must be a list of numbers, got {v!r}") from None
        out[str(k)] = vals
    return out


def require_matplotlib() -> None:
    """Raise the ImportError ``plot_history`` would, before any work is done (the CLI checks
    ``--plot`` this way so a long training run does not end in that error)."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise ImportError(_NO_MATPLOTLIB)


_NO_MATPLOTLIB = "plot_history needs matplotlib: pip install 'fastnet[plot]' (or pip install matplotlib)"


def plot_history(history, path, title: str | None = None, dpi: int = 100) -> Path:
    """Write a PNG with one panel per quantity (loss first, then metrics, then anything else).

    Each panel shows the training curve and, when present, its ``val_`` twin. Uses
    matplotlib's Agg canvas directly, so it works without a display and does not change
    the pyplot backend. Needs matplotlib (``pip install "fastnet[plot]"``).
    Returns the path written.
    """
    curves = _curves(history)
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise ImportError(_NO_MATPLOTLIB) from None
    bases = [k for k in curves if not k.startswith("val_")]
    bases += [k[4:] for k in curves if k.startswith("val_") and k[4:] not in curves]  # val-only curves
    bases.sort(key=lambda k: (k != "loss", k == "lr", list(curves).index(k) if k in curves else 0))
    n = len(bases)
    fig = Figure(figsize=(5 * n, 3.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, name in zip(axes, bases, strict=True):
        for key, style in ((name, "-o"), ("val_" + name, "--s")):
            if key in curves:
                vals = curves[key]
                ax.plot(range(1, len(vals) + 1), vals, style, markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save_png(fig, path, dpi)


def _layer_record(run) -> dict:
    rec = getattr(run, "layer_stats", None) or getattr(run, "record", None) or run
    if not isinstance(rec, dict) or "grad_norm" not in rec or not rec.get("steps"):
        raise ValueError(
            "plot_gradient_norms: expected a LayerStats callback, a History it recorded into, or its record dict "
            f"with recorded steps, got {type(run).__name__}"
        )
    return rec


def _weighted(rec, layers):
    """The layers to draw: those named, else the ones whose record has a matrix/filter weight."""
    names = list(layers) if layers is not None else list(rec.get("weighted") or rec["layers"])
    unknown = [n for n in names if n not in rec["grad_norm"]]
    if unknown:
        raise ValueError(f"plot_gradient_norms: no gradient record for layers {unknown}; recorded: {rec['layers']}")
    return names


def plot_gradient_norms(runs, path, title: str | None = None, layers=None, dpi: int = 100) -> Path:
    """Write a PNG of per-layer gradient norms recorded by :class:`fastnet.diagnostics.LayerStats`.

    ``runs`` is one record (the callback, the History or the dict) or a ``{label: record}`` dict to
    compare runs (one row each, shared y axis). Left: each layer's gradient norm over training (log
    scale, colour from the first layer, dark, to the last, light). Right: gradient norm against
    layer depth at the first, middle and last recorded steps; a curve rising to the right means the
    early layers get the smallest updates. ``layers`` picks the layers to draw (default: those
    with a weight matrix or filter bank). Needs matplotlib. Returns the path written.
    """
    if isinstance(runs, dict) and "grad_norm" not in runs:
        items = [(str(k), _layer_record(v)) for k, v in runs.items()]
    else:
        items = [(None, _layer_record(runs))]
    if not items:
        raise ValueError("plot_gradient_norms: no runs given")
    try:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise ImportError(_NO_MATPLOTLIB.replace("plot_history", "plot_gradient_norms")) from None
    fig = Figure(figsize=(11, 3.6 * len(items)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(items), 2, squeeze=False, sharey=True)
    cmap = colormaps["viridis"]
    for (label, rec), (ax_t, ax_d) in zip(items, axes, strict=True):
        names = _weighted(rec, layers)
        steps = rec["steps"]
        for i, n in enumerate(names):
            colour = cmap(0.9 * i / max(1, len(names) - 1))
            ax_t.plot(steps, rec["grad_norm"][n], color=colour, lw=1.2, label=n if len(names) <= 12 else None)
        ax_t.set_yscale("log")
        ax_t.set_xlabel("batch")
        ax_t.set_ylabel("gradient L2 norm")
        ax_t.set_title(f"{label}: per-layer gradient norm" if label else "per-layer gradient norm")
        ax_t.grid(alpha=0.3)
        if len(names) <= 12:
            ax_t.legend(fontsize=7)
        for k, style in ((0, "-o"), (len(steps) // 2, "-s"), (len(steps) - 1, "-^")):
            ax_d.plot(
                range(1, len(names) + 1),
                [rec["grad_norm"][n][k] for n in names],
                style,
                ms=3,
                label=f"batch {steps[k]}",
            )
        ax_d.set_xlabel("weighted layer (input to output)")
        ax_d.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_d.set_title(f"{label}: gradient norm by depth" if label else "gradient norm by depth")
        ax_d.grid(alpha=0.3)
        ax_d.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save_png(fig, path, dpi)


def _save_png(fig, path, dpi) -> Path:
    """Write ``fig`` as a PNG atomically (a reader never sees half a PNG; a crash leaves the old file)."""
    from ._atomic_write import atomic_write

    path = Path(path)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    return path
