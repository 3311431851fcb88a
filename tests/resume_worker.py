"""Training setups for tests/test_resume_exact.py, runnable in a fresh process.

``python resume_worker.py rest DIR`` loads ``DIR/<setup>-first.npz`` for every setup, trains the
remaining epochs with the setup's callbacks rebuilt from scratch, and writes ``DIR/<setup>-rest.npz``
plus ``DIR/<setup>-rest.json`` (history, checkpoint files written). The same functions run the
uninterrupted and the first-part runs inside the test process.
"""

import json
import sys
from pathlib import Path

import numpy as np

import fastnet as fn
from fastnet import callbacks as C
from fastnet import layers as L
from fastnet import optim

N, M = 3, 3  # epochs before the save, epochs after it
# A scripted monitored quantity (min mode), so plateaus, stops and "best" saves fall after the save:
# best 1.0 at epoch 1; a fresh callback at epoch 3 would count 4.0 as an improvement.
SCORE = [5.0, 1.0, 3.0, 4.0, 2.0, 6.0]


class Score(C.Callback):
    """Puts SCORE[epoch] under "score" in the epoch logs (stateless, so nothing to resume)."""

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = SCORE[epoch]


def data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 72)
    x = rng.standard_normal((72, 6)).astype(np.float32)
    x[np.arange(72), y] += 1.5
    return (x[:56], y[:56]), (x[56:], y[56:])


def build():
    model = fn.Sequential([L.Dense(6, 16), L.ReLU(), L.Dropout(0.2), L.Dense(16, 3)])
    model.compile(optimizer=optim.SGD(lr=0.2, momentum=0.9), loss="softmax_cross_entropy", metrics=["accuracy"])
    return model


def callbacks(setup, model, ckdir):
    """The setup's callbacks, built fresh (as a user would in a new process)."""
    opt = model.optimizer
    plateau = dict(factor=0.5, patience=0, cooldown=1, min_delta=0.0)
    made = {
        "loader_seed_none": [],
        "steplr": [C.LearningRateScheduler(optim.StepLR(opt, step_size=2, gamma=0.5))],
        "exponentiallr": [C.LearningRateScheduler(optim.ExponentialLR(opt, gamma=0.7))],
        "cosineannealinglr": [C.LearningRateScheduler(optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.01))],
        "plateau_schedule": [C.LearningRateScheduler(optim.ReduceLROnPlateau(opt, **plateau), monitor="score")],
        "plateau_callback": [C.ReduceLROnPlateau(monitor="score", **plateau)],
        "early_stopping": [C.EarlyStopping(monitor="score", patience=3)],
        "checkpoint_best": [
            C.ModelCheckpoint(str(Path(ckdir) / "best-{epoch}.npz"), monitor="score", save_best_only=True)
        ],
        "lr_function": [C.LearningRateScheduler(lambda epoch, lr: lr * 0.8)],
    }[setup]
    return [Score()] + made


def mid_run_callbacks(model, ckdir):
    """A checkpoint every epoch, first in the list, then callbacks whose state changes after it."""
    return [
        C.ModelCheckpoint(str(Path(ckdir) / "ck{epoch}.npz")),
        Score(),
        C.ReduceLROnPlateau(monitor="score", factor=0.5, patience=0, cooldown=1, min_delta=0.0),
        C.LearningRateScheduler(optim.StepLR(model.optimizer, step_size=2, gamma=0.7)),
        C.EarlyStopping(monitor="score", patience=4),
    ]


SETUPS = [
    "loader_seed_none",
    "steplr",
    "exponentiallr",
    "cosineannealinglr",
    "plateau_schedule",
    "plateau_callback",
    "early_stopping",
    "checkpoint_best",
    "lr_function",
]


def fit(setup, model, epochs, initial_epoch, ckdir):
    (x, y), val = data()
    # seed=None: the loader must not depend on the global generator, which differs between the runs
    train = (fn.DataLoader(x, y, batch_size=8, prefetch=0),) if setup == "loader_seed_none" else (x, y)
    kw = {} if setup == "loader_seed_none" else {"batch_size": 8}
    cbs = callbacks(setup, model, ckdir)
    hist = model.fit(
        *train, epochs=epochs, initial_epoch=initial_epoch, validation_data=val, callbacks=cbs, verbose=0, **kw
    )
    return {"epoch": hist.epoch, "history": hist.history, "lr": float(model.optimizer.lr)}


def first(setup, directory, epochs):
    """A fresh run of ``epochs`` epochs from seed 0, saved to ``<setup>-first.npz``."""
    ckdir = Path(directory) / f"{setup}-ck"
    ckdir.mkdir(exist_ok=True)
    fn.seed(0)
    model = build()
    info = fit(setup, model, epochs, 0, ckdir)
    info["saved"] = sorted(p.name for p in ckdir.iterdir())
    return model, info


def rest(setup, directory):
    """Load ``<setup>-first.npz``, train to N + M epochs, save ``<setup>-rest.npz`` and ``.json``."""
    directory = Path(directory)
    ckdir = directory / f"{setup}-ck-rest"
    ckdir.mkdir(exist_ok=True)
    fn.seed(12345)  # another global stream than the first run's: it must not matter
    model = fn.load(directory / f"{setup}-first.npz")
    info = fit(setup, model, N + M, model.epochs_trained, ckdir)
    info["saved"] = sorted(p.name for p in ckdir.iterdir())
    model.save(directory / f"{setup}-rest.npz")
    (directory / f"{setup}-rest.json").write_text(json.dumps(info))


if __name__ == "__main__":
    assert sys.argv[1] == "rest"
    for name in SETUPS:
        rest(name, sys.argv[2])
