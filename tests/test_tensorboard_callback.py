"""The TensorBoard callback: event files read back with TensorBoard's own reader."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import fastnet as fn
from fastnet import layers as L
from fastnet.callbacks import TensorBoard

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402


def read_events(log_dir) -> dict[str, list[tuple[int, object]]]:
    """tag -> [(step, value)] over every event file in ``log_dir``, in file then write order."""
    out: dict[str, list] = {}
    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, tensor_util.make_ndarray(value.tensor)))
    return out


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6), dtype=np.float32), rng.integers(0, 3, n)


def model():
    fn.seed(0)
    m = fn.Sequential([L.Dense(6, 8), L.BatchNorm1d(8), L.ReLU(), L.Dense(8, 3)])
    return m.compile(optimizer=fn.optim.SGD(lr=0.05), loss="softmax_cross_entropy", metrics=["accuracy"])


def test_epoch_scalars_hold_the_history_with_epoch_steps(tmp_path):
    x, y = data()
    m = model()
    history = m.fit(x, y, epochs=3, batch_size=8, validation_data=(x, y), verbose=0, callbacks=[TensorBoard(tmp_path)])
    events = read_events(tmp_path)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert [step for step, _ in events[key]] == [0, 1, 2]
        np.testing.assert_allclose([float(v) for _, v in events[key]], history.history[key], rtol=1e-6)
    assert [step for step, _ in events["lr"]] == [0, 1, 2]
    np.testing.assert_allclose([float(v) for _, v in events["lr"]], [0.05] * 3, rtol=1e-7)  # stored as float32


def test_learning_rate_follows_a_schedule(tmp_path):
    x, y = data()
    m = model()
    schedule = fn.callbacks.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))
    m.fit(x, y, epochs=3, batch_size=20, verbose=0, callbacks=[schedule, TensorBoard(tmp_path, histogram_freq=0)])
    lrs = [float(v) for _, v in read_events(tmp_path)["lr"]]
    np.testing.assert_allclose(lrs, [0.1, 0.05, 0.1 / 3], rtol=1e-6)


def test_histograms_of_weights_and_gradients_per_layer(tmp_path):
    x, y = data()
    m = model()
    m.fit(x, y, epochs=4, batch_size=8, verbose=0, callbacks=[TensorBoard(tmp_path, histogram_freq=2)])
    events = read_events(tmp_path)
    for name in ("0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"):
        for kind in ("weights", "gradients"):
            tag = f"{kind}/{name}"
            assert [step for step, _ in events[tag]] == [1, 3], tag  # every 2nd epoch
    # a histogram is (bins, 3): left edge, right edge, count; the counts add up to the parameter's size
    _, last = events["weights/0.weight"][-1]
    assert last.shape[1] == 3 and last[:, 2].sum() == m.layers[0].params["weight"].size
    assert last[0, 0] == pytest.approx(m.layers[0].params["weight"].min())
    assert last[-1, 1] == pytest.approx(m.layers[0].params["weight"].max())
    assert not any(tag.startswith(("weights/1.running", "gradients/1.running")) for tag in events)  # buffers


def test_batch_scalars_every_n_batches_use_the_optimizer_step(tmp_path):
    x, y = data(40)
    m = model()
    m.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[TensorBoard(tmp_path, update_freq=3, histogram_freq=0)])
    events = read_events(tmp_path)
    assert [step for step, _ in events["batch/loss"]] == [3, 6, 9]  # 5 batches an epoch, 10 in all
    assert "batch/batch" not in events and "batch/size" not in events


def test_resumed_training_continues_the_steps(tmp_path):
    x, y = data()
    m = model()
    m.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[TensorBoard(tmp_path, histogram_freq=0)])
    m.fit(x, y, epochs=4, initial_epoch=2, batch_size=8, verbose=0, callbacks=[TensorBoard(tmp_path)])
    assert len(list(Path(tmp_path).glob("events.out.tfevents.*"))) == 2  # one file per fit
    assert [step for step, _ in read_events(tmp_path)["loss"]] == [0, 1, 2, 3]


def test_bad_arguments_and_missing_tensorboard(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="update_freq must be 'epoch' or a positive int"):
        TensorBoard(tmp_path, update_freq=0)
    with pytest.raises(ValueError, match="histogram_freq must be an int >= 0"):
        TensorBoard(tmp_path, histogram_freq=-1)
    with pytest.raises(TypeError, match="log_dir must be a str"):
        TensorBoard(3)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ImportError, match=r"pip install 'fastnet\[tensorboard\]'"):
        TensorBoard(tmp_path)
