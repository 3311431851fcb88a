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


@pytest.mark.parametrize(
    "arch, n_train, epochs, threshold",
    [
        ("mlp", 6000, 4, 0.95),
        ("cnn", 3000, 3, 0.93),
    ],
)
def test_letters_learned(backend, letters, arch, n_train, epochs, threshold):
    (xtr, ytr), (xv, yv), (xte, yte) = letters
    fn.seed(0)
    model = mlp() if arch == "mlp" else cnn()
    model.compile(optimizer=optim.Adam(lr=2e-3), loss="softmax_cross_entropy", metrics=["accuracy"])
    hist = model.fit(
        xtr[:n_train], ytr[:n_train], epochs=epochs, batch_size=64, validation_data=(xv[:3000], yv[:3000]), verbose=0
    )
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert hist.history["val_accuracy"][-1] >= threshold, hist.history
    _, test_acc = model.evaluate(xte[:3000], yte[:3000])
    assert test_acc >= threshold - 0.02
    probs = model.predict(xte[:10])
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)


def _m2_like():  # issue 3's M2: sigmoid MLP, BCE on probabilities, SGD lr 1.0
    model = fn.Sequential(
        [L.Flatten(), L.Dense(289, 20, init="glorot"), L.Sigmoid(), L.Dense(20, 26, init="glorot"), L.Sigmoid()]
    )
    return model, optim.SGD(lr=1.0), "binary_cross_entropy"


def _lenet_like():  # conv, max-pool, SGD with Nesterov momentum
    model = fn.Sequential(
        [
            L.Conv2D(1, 6, 5, padding=2),
            L.ReLU(),
            L.MaxPool2D(2),
            L.Conv2D(6, 16, (3, 2), stride=(1, 2)),
            L.Tanh(),
            L.MaxPool2D(2),
            L.Flatten(),
            L.Dense(16 * 3 * 2, 32),
            L.GELU(),
            L.Dense(32, 26),
        ]
    )
    return model, optim.SGD(lr=0.05, momentum=0.9, nesterov=True), "softmax_cross_entropy"


# A bias right before batch-norm has a true gradient of zero: what is computed is rounding noise,
# which Adam and RMSprop scale up to lr-sized steps, so it would differ between backends. No bias
# there, as usual in practice.
def _m4_like():  # conv, batch-norm, dropout, average pooling, Adam
    model = fn.Sequential(
        [
            L.Conv2D(1, 8, 3, bias=False),
            L.BatchNorm2d(8),
            L.ReLU(),
            L.Conv2D(8, 16, 3, padding=1),
            L.LeakyReLU(0.1),
            L.AvgPool2D(2),
            L.Dropout(0.25),
            L.Flatten(),
            L.Dense(16 * 7 * 7, 32),
            L.ReLU(),
            L.Dropout(0.5),
            L.Dense(32, 26),
        ]
    )
    return model, optim.Adam(lr=1e-3), "softmax_cross_entropy"


def _rmsprop_mlp():  # issue 3's M1 shape of model: ReLU MLP with RMSprop, batch-norm in between
    model = fn.Sequential([L.Flatten(), L.Dense(289, 64, bias=False), L.BatchNorm1d(64), L.ReLU(), L.Dense(64, 26)])
    return model, optim.RMSprop(lr=1e-3), "softmax_cross_entropy"


def _simple(build, opt):
    return lambda: (build(), opt(), "softmax_cross_entropy")


@pytest.mark.parametrize(
    "make",
    [
        _simple(mlp, lambda: optim.SGD(lr=0.05, momentum=0.9)),
        _simple(cnn, lambda: optim.SGD(lr=0.05, momentum=0.9)),
        _m2_like,
        _lenet_like,
        _m4_like,
        _rmsprop_mlp,
    ],
    ids=["mlp", "cnn", "m2", "lenet", "m4", "rmsprop-bn"],
)
def test_backends_agree_on_training_steps(letters, make):
    """A few steps of each model give the same weights on both backends (float32 tolerance)."""
    (xtr, ytr), _, _ = letters
    states = []
    for backend in ("numpy", "fast"):
        with fn.use_backend(backend):
            fn.seed(1)
            model, opt, loss = make()
            model.compile(optimizer=opt, loss=loss)
            for s in range(0, 5 * 32, 32):
                model.train_on_batch(xtr[s : s + 32], ytr[s : s + 32])
            states.append(model.state_dict())
    assert states[0].keys() == states[1].keys()
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
