"""Callbacks: hooks, History, EarlyStopping, ModelCheckpoint, schedulers, CSVLogger, stopping, resume."""

import csv

import numpy as np
import pytest

import fastnet as fn
from fastnet import callbacks as C
from fastnet import layers as L
from fastnet import optim


def blobs(n=48, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 5)).astype(np.float32) * 0.5
    x[np.arange(n), y] += 2.0
    return x, y


def model(opt=None, dropout=False):
    layers = [L.Dense(5, 8), L.ReLU()] + ([L.Dropout(0.25)] if dropout else []) + [L.Dense(8, 3)]
    m = fn.Sequential(layers)
    m.compile(optimizer=opt or optim.SGD(lr=0.1), loss="softmax_cross_entropy", metrics=["accuracy"])
    return m


class Recorder(C.Callback):
    """Logs every hook call and the weights at each epoch end."""

    def __init__(self):
        super().__init__()
        self.calls, self.weights = [], []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_train_end(self, logs=None):
        self.calls.append("train_end")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"epoch_begin {epoch}")

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(f"epoch_end {epoch}")
        self.weights.append(self.model.state_dict())

    def on_batch_begin(self, batch, logs=None):
        self.calls.append(f"batch_begin {batch}")

    def on_batch_end(self, batch, logs=None):
        assert {"batch", "size", "loss", "accuracy"} <= set(logs)
        self.calls.append(f"batch_end {batch}")


class Inject(C.Callback):
    """Puts a scripted value under ``key`` into the epoch logs (runs before the callbacks after it)."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


def test_hook_order_and_params():
    x, y = blobs(n=20)
    rec = Recorder()
    m = model()
    m.fit(x, y, epochs=2, batch_size=8, callbacks=[rec], verbose=0)
    epoch = ["batch_begin 0", "batch_end 0", "batch_begin 1", "batch_end 1", "batch_begin 2", "batch_end 2"]
    assert rec.calls == (
        ["train_begin", "epoch_begin 0"]
        + epoch
        + ["epoch_end 0", "epoch_begin 1"]
        + epoch
        + ["epoch_end 1", "train_end"]
    )
    assert rec.model is m and rec.params["epochs"] == 2 and rec.params["samples"] == 20


def test_callbacks_must_be_callback_instances():
    x, y = blobs(n=8)
    with pytest.raises(ValueError, match="callbacks must be fastnet.callbacks.Callback instances, got function"):
        model().fit(x, y, callbacks=[lambda: None], verbose=0)


def test_history_records_epochs():
    h = C.History()
    h.on_train_begin()
    h.on_epoch_end(0, {"loss": 2.0, "val_loss": 3.0})
    h.on_epoch_end(1, {"loss": 1.0, "val_loss": 2.5})
    assert h.epoch == [0, 1] and h.history == {"loss": [2.0, 1.0], "val_loss": [3.0, 2.5]}


def test_callback_can_stop_training_mid_epoch():
    class StopAt(C.Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    x, y = blobs(n=40)
    rec = Recorder()
    hist = model().fit(x, y, epochs=5, batch_size=8, callbacks=[StopAt(), rec], verbose=0)
    assert hist.epoch == [0]
    assert rec.calls.count("batch_end 1") == 1 and "batch_begin 2" not in rec.calls


# ---- EarlyStopping ---------------------------------------------------------------------------------
def test_early_stopping_patience_and_restore_when_stopped():
    x, y = blobs()
    rec = Recorder()
    es = C.EarlyStopping(monitor="score", patience=2, restore_best_weights=True)
    m = model()
    # score improves until epoch 1, then stalls: stop after epoch 3 (patience 2), restore epoch 1.
    hist = m.fit(
        x,
        y,
        epochs=10,
        batch_size=16,
        verbose=0,
        callbacks=[Inject("score", [5, 4, 4.5, 4.2, 1, 1, 1, 1, 1, 1]), es, rec],
    )
    assert hist.epoch == [0, 1, 2, 3] and es.stopped_epoch == 3 and es.best_epoch == 1 and es.best == 4
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, rec.weights[1][k])


def test_early_stopping_restores_best_even_when_training_ends_by_itself():
    x, y = blobs()
    rec = Recorder()
    es = C.EarlyStopping(monitor="val_accuracy", patience=5, restore_best_weights=True)
    assert es.mode == "max"
    m = model()
    m.fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[Inject("val_accuracy", [0.5, 0.9, 0.7, 0.8]), es, rec])
    assert es.stopped_epoch is None and es.best_epoch == 1
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, rec.weights[1][k])


def test_early_stopping_min_delta_and_errors():
    es = C.EarlyStopping(monitor="loss", patience=0, min_delta=0.1)

    class Dummy:
        stop_training = False

    es.set_model(Dummy())
    es.on_train_begin()
    es.on_epoch_end(0, {"loss": 1.0})
    es.on_epoch_end(1, {"loss": 0.95})  # not better by more than min_delta
    assert es.model.stop_training and es.stopped_epoch == 1
    with pytest.raises(ValueError, match="EarlyStopping: patience must be an int >= 0, got -1"):
        C.EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="EarlyStopping: mode must be 'auto', 'min' or 'max', got 'up'"):
        C.EarlyStopping(mode="up")
    with pytest.warns(RuntimeWarning, match="monitored quantity 'val_loss' is not in the logs"):
        C.EarlyStopping().on_epoch_end(0, {"loss": 1.0})


# ---- ModelCheckpoint ---------------------------------------------------------------------------------
def test_model_checkpoint_every_epoch_and_best_only(tmp_path):
    x, y = blobs()
    rec = Recorder()
    every = C.ModelCheckpoint(str(tmp_path / "e{epoch:02d}.npz"), save_best_only=False)
    best = C.ModelCheckpoint(tmp_path / "best.npz", monitor="score", save_best_only=True)
    m = model()
    m.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[Inject("score", [3, 1, 2]), every, best, rec])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz", "e01.npz", "e02.npz", "e03.npz"]
    for epoch in range(3):
        loaded = fn.load(tmp_path / f"e{epoch + 1:02d}.npz")
        for k, v in loaded.state_dict().items():
            np.testing.assert_array_equal(v, rec.weights[epoch][k])
    best_model = fn.load(tmp_path / "best.npz")
    for k, v in best_model.state_dict().items():
        np.testing.assert_array_equal(v, rec.weights[1][k])
    with pytest.raises(ValueError, match=r"ModelCheckpoint: cannot format path .*\{nope\}"):
        model().fit(x, y, epochs=1, verbose=0, callbacks=[C.ModelCheckpoint(str(tmp_path / "{nope}.npz"))])


# ---- learning-rate callbacks ---------------------------------------------------------------------------
def test_learning_rate_scheduler_functions():
    x, y = blobs(n=16)
    seen = []

    class Watch(C.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(self.model.optimizer.lr)

    m = model(optim.SGD(lr=0.1))
    m.fit(x, y, epochs=3, verbose=0, callbacks=[C.LearningRateScheduler(lambda e: 0.1 / (e + 1)), Watch()])
    assert seen == pytest.approx([0.1, 0.05, 0.1 / 3])
    seen.clear()
    m.fit(x, y, epochs=3, verbose=0, callbacks=[C.LearningRateScheduler(lambda e, lr: lr * 0.5), Watch()])
    assert seen == pytest.approx([0.1 / 6, 0.1 / 12, 0.1 / 24])
    with pytest.raises(ValueError, match="LearningRateScheduler: schedule returned lr=-1.0 at epoch 0"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[C.LearningRateScheduler(lambda e: -1.0)])
    with pytest.raises(ValueError, match="schedule must be a function"):
        C.LearningRateScheduler(3)


def test_learning_rate_scheduler_with_schedule_object():
    x, y = blobs(n=16)
    m = model(optim.SGD(lr=1.0))
    sched = optim.StepLR(m.optimizer, step_size=2, gamma=0.1)
    hist = m.fit(x, y, epochs=5, verbose=0, callbacks=[C.LearningRateScheduler(sched)])
    assert hist.history["lr"] == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01])  # the rate each epoch ran with
    assert m.optimizer.lr == pytest.approx(0.01)  # 1.0 * 0.1 ** (5 // 2)


def test_reduce_lr_on_plateau():
    x, y = blobs(n=16)
    m = model(optim.SGD(lr=1.0))
    cb = C.ReduceLROnPlateau(monitor="score", factor=0.5, patience=2, min_lr=0.3, min_delta=0.0)
    # stalls from epoch 1 on: reduce after epochs 2 and 4 (the second clipped at min_lr), then stay.
    hist = m.fit(x, y, epochs=7, verbose=0, callbacks=[Inject("score", [1, 1, 1, 1, 1, 1, 1]), cb])
    assert hist.history["lr"] == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.5, 0.3, 0.3])
    assert m.optimizer.lr == pytest.approx(0.3)
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau: factor must be in \(0, 1\), got 1.5"):
        C.ReduceLROnPlateau(factor=1.5)


def test_reduce_lr_cooldown():
    x, y = blobs(n=16)
    m = model(optim.SGD(lr=1.0))
    cb = C.ReduceLROnPlateau(monitor="score", factor=0.5, patience=1, cooldown=2, min_delta=0.0)
    hist = m.fit(x, y, epochs=6, verbose=0, callbacks=[Inject("score", [1] * 6), cb])
    # logs show the rate each epoch ran with: reduced after epoch 1, cooldown counts down through
    # epochs 2-3, reduced again after epoch 3
    assert hist.history["lr"] == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25, 0.25])


# ---- CSVLogger / TerminateOnNaN ---------------------------------------------------------------------
def test_csv_logger(tmp_path):
    x, y = blobs()
    path = tmp_path / "log.csv"
    m = model()
    hist = m.fit(x, y, epochs=3, batch_size=16, validation_data=blobs(seed=1), verbose=0, callbacks=[C.CSVLogger(path)])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [float(r["loss"]) for r in rows] == pytest.approx(hist.history["loss"])
    m.fit(
        x,
        y,
        epochs=5,
        initial_epoch=3,
        batch_size=16,
        validation_data=blobs(seed=1),
        verbose=0,
        callbacks=[C.CSVLogger(path, append=True)],
    )
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3", "4"]


# ---- resume ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("use_loader", [False, True])
def test_resume_from_checkpoint_is_identical(tmp_path, use_loader):
    x, y = blobs(n=60)
    xv, yv = blobs(n=20, seed=1)

    def train_data():
        return (fn.DataLoader(x, y, batch_size=8, seed=77),) if use_loader else (x, y)

    fn.seed(42)
    full = model(optim.Adam(lr=0.01), dropout=True)
    ck = C.ModelCheckpoint(str(tmp_path / "ck{epoch}.npz"))
    kw = {} if use_loader else {"batch_size": 8}
    h_full = full.fit(*train_data(), epochs=5, validation_data=(xv, yv), callbacks=[ck], verbose=0, **kw)

    fn.seed(999)  # a different global stream must not matter for the resumed run
    resumed = fn.load(tmp_path / "ck2.npz")
    assert resumed.epochs_trained == 2  # ck{epoch} is 1-based, as in Keras: ck2 holds two epochs
    h_res = resumed.fit(
        *train_data(), epochs=5, initial_epoch=resumed.epochs_trained, validation_data=(xv, yv), verbose=0, **kw
    )
    assert h_res.epoch == [2, 3, 4]
    assert h_res.history["loss"] == h_full.history["loss"][2:]
    assert h_res.history["val_loss"] == h_full.history["val_loss"][2:]
    assert resumed.epochs_trained == full.epochs_trained == 5
    for k, v in full.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[k], v, err_msg=k)
