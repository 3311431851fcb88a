"""Training curves as a PNG: ``fastnet.plot_history(history, path)``."""

from __future__ import annotations

import os
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
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    fig.savefig(tmp, format="png", dpi=dpi)
    os.replace(tmp, path)  # a reader never sees half a PNG
    return path
