"""Helpers shared by the examples: finding MNIST-style data without any download."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import fastnet

# The repository's sibling data directory (../shared/data when run from a checkout next to it).
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load(name: str, data_dir=None, **options):
    """``fastnet.datasets.mnist`` / ``fashion_mnist`` from ``data_dir``, ``$FASTNET_DATA``, ../shared/data,
    ~/.fastnet/datasets or (Fashion-MNIST) /usr/share/datasets/fashion-mnist; never downloads.
    Exits with a clear message when the data is missing."""
    loader = {"mnist": fastnet.datasets.mnist, "fashion-mnist": fastnet.datasets.fashion_mnist}[name]
    candidates = [data_dir] if data_dir else []
    if not data_dir and not os.environ.get("FASTNET_DATA") and SHARED.is_dir():
        candidates.append(SHARED)
    candidates.append(None)  # fastnet's own search order
    last = None
    for c in candidates:
        try:
            return loader(c, download=False, **options)
        except FileNotFoundError as e:
            last = e
    hint = " (install it with: apt-get install -y dataset-fashion-mnist)" if name == "fashion-mnist" else ""
    sys.exit(f"{name} data is missing{hint}.\n{last}\nPass --data-dir DIR or set FASTNET_DATA.")
