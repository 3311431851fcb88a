"""plot_history writes a valid PNG from a History or a dict, and fails clearly otherwise."""

import struct
import sys

import pytest

import fastnet
from fastnet.callbacks import History

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_dict_history_writes_png(tmp_path):
    h = {
        "loss": [1.0, 0.6, 0.4],
        "val_loss": [1.1, 0.7, 0.5],
        "accuracy": [0.5, 0.7, 0.8],
        "val_accuracy": [0.45, 0.66, 0.75],
    }
    out = fastnet.plot_history(h, tmp_path / "curves.png", title="run")
    assert out == tmp_path / "curves.png"
    w, hgt = png_size(out)
    assert w > 0 and hgt > 0 and out.stat().st_size > 1000
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no temporary left behind


def test_history_object_and_panels(tmp_path):
    hist = History()
    hist.history = {"loss": [0.9, 0.5], "lr": [0.1, 0.05]}
    one = fastnet.plot_history({"loss": [0.9, 0.5]}, tmp_path / "one.png")
    two = fastnet.plot_history(hist, tmp_path / "two.png")
    assert png_size(two)[0] > png_size(one)[0]  # one panel per quantity, side by side


def test_bad_history(tmp_path):
    with pytest.raises(ValueError, match=r"plot_history: expected a History .* got int"):
        fastnet.plot_history(3, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"history\['loss'\] must be a list of numbers"):
        fastnet.plot_history({"loss": ["a"]}, tmp_path / "x.png")


def test_missing_matplotlib_message(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes "import matplotlib" fail
    with pytest.raises(ImportError, match=r"plot_history needs matplotlib: pip install 'fastnet\[plot\]'"):
        fastnet.plot_history({"loss": [1.0]}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
