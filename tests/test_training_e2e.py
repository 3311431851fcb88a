"""End to end: an MLP and a small CNN learn the bundled letters data (17x17 images, 26 classes).

Measured on this machine (seed 0, both backends give the same numbers): the MLP below reaches
about 0.98 validation accuracy after 4 epochs on 6000 training images, the CNN about 0.97 after
3 epochs on 3000; the thresholds leave a margin. Each model trains in a few seconds.
"""
import numpy as np
import pytest

import fastnet as fn
from fastnet import layers as L
from fastnet import optim

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def letters():
    return fn.datasets.letters()


def mlp():
    return fn.Sequential([L.Flatten(), L.Dense(289, 64), L.ReLU(), L.Dense(64, 26)])


def cnn():
    return fn.Sequential([L.Conv2D(1, 8, 3), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(8 * 7 * 7, 26)])


@pytest.mark.parametrize("arch, n_train, epochs, threshold", [
    ("mlp", 6000, 4, 0.95),
    ("cnn", 3000, 3, 0.93),
])
def test_letters_learned(backend, letters, arch, n_train, epochs, threshold):
    (xtr, ytr), (xv, yv), (xte, yte) = letters
    fn.seed(0)
    model = mlp() if arch == "mlp" else cnn()
    model.compile(optimizer=optim.Adam(lr=2e-3), loss="softmax_cross_entropy", metrics=["accuracy"])
    hist = model.fit(xtr[:n_train], ytr[:n_train], epochs=epochs, batch_size=64,
                     validation_data=(xv[:3000], yv[:3000]), verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert hist.history["val_accuracy"][-1] >= threshold, hist.history
    _, test_acc = model.evaluate(xte[:3000], yte[:3000])
    assert test_acc >= threshold - 0.02
    probs = model.predict(xte[:10])
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)


def test_backends_agree_on_training_steps(letters):
    """A few steps of each model give the same weights on both backends (float32 tolerance)."""
    (xtr, ytr), _, _ = letters
    for build in (mlp, cnn):
        states = []
        for backend in ("numpy", "fast"):
            with fn.use_backend(backend):
                fn.seed(1)
                model = build()
                model.compile(optimizer=optim.SGD(lr=0.05, momentum=0.9), loss="softmax_cross_entropy")
                for s in range(0, 5 * 32, 32):
                    model.train_on_batch(xtr[s:s + 32], ytr[s:s + 32])
                states.append(model.state_dict())
        for k in states[0]:
            np.testing.assert_allclose(states[1][k], states[0][k], rtol=1e-3, atol=1e-5, err_msg=k)


def test_save_load_resume_on_letters(tmp_path, letters):
    """The issue's workflow: fit, evaluate, predict, train_on_batch, save, load, continue."""
    (xtr, ytr), (xv, yv), _ = letters
    x, y = xtr[:1000].reshape(1000, -1), ytr[:1000]
    fn.seed(0)
    model = fn.Sequential([L.Dense(289, 32), L.ReLU(), L.Dense(32, 26)])
    model.compile(optimizer=optim.RMSprop(lr=1e-3), loss="softmax_cross_entropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, batch_size=128, validation_data=(xv[:500].reshape(500, -1), yv[:500]), verbose=0)
    model.train_on_batch(x[:128], y[:128])
    model.save(tmp_path / "mlp.npz")
    again = fn.load(tmp_path / "mlp.npz")
    assert again.train_on_batch(x[:128], y[:128]) == model.train_on_batch(x[:128], y[:128])
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
