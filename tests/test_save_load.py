"""Save/load: exact round trip (weights, optimizer state, next step), atomic writes, no pickle, clear errors."""

import json
import os
import zipfile

import numpy as np
import pytest

import fastnet as fn
from fastnet import layers as L
from fastnet import losses, optim, serialization


def data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 8, 8)).astype(np.float32), rng.integers(0, 4, n)


def cnn(dtype=np.float32):
    return fn.Sequential(
        [
            L.Conv2D(1, 3, (3, 2), padding=1, dtype=dtype),
            L.BatchNorm2d(3, dtype=dtype),
            L.ReLU(),
            L.MaxPool2D(2),
            L.Flatten(),
            L.Dropout(0.3),
            L.Dense(3 * 4 * 4, 4, dtype=dtype),
        ]
    )


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)


@pytest.mark.parametrize(
    "opt",
    [
        lambda: optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
        lambda: optim.Adam(lr=1e-3),
        lambda: optim.AdamW(lr=1e-3),
        lambda: optim.RMSprop(lr=1e-3),
        lambda: optim.AdaGrad(lr=0.05),
    ],
)
def test_round_trip_is_exact_and_next_step_identical(tmp_path, opt):
    x, y = data()
    fn.seed(3)
    model = cnn()
    model[0].lr_mult = 0.5
    model.compile(optimizer=opt(), loss="softmax_cross_entropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    again = fn.load(path)

    assert again.compiled and type(again.optimizer) is type(model.optimizer)
    assert again.optimizer.get_config() == model.optimizer.get_config()
    assert again.optimizer.iterations == model.optimizer.iterations
    assert [m.name for m in again.metrics] == ["accuracy"] and again.loss.get_config() == model.loss.get_config()
    assert again[0].lr_mult == 0.5 and again.shuffle_seed == model.shuffle_seed
    assert repr(again) == repr(model)
    assert_same_state(model, again)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))

    # Next training step (with dropout, batch-norm and optimizer state) is identical.
    la, lb = model.train_on_batch(x[:8], y[:8]), again.train_on_batch(x[:8], y[:8])
    assert la == lb
    assert_same_state(model, again)
    # ... and so is a further epoch through fit.
    model.fit(x, y, epochs=3, initial_epoch=2, batch_size=8, verbose=0)
    again.fit(x, y, epochs=3, initial_epoch=2, batch_size=8, verbose=0)
    assert_same_state(model, again)


def test_float64_and_uncompiled_model(tmp_path):
    fn.seed(1)
    model = fn.Sequential([L.Dense(5, 4, dtype=np.float64), L.Tanh(), L.Dense(4, 2, dtype=np.float64)])
    model.save(tmp_path / "m64.npz")
    again = fn.load(tmp_path / "m64.npz")
    assert again.loss is None and again.optimizer is None and again.dtype == np.float64
    assert_same_state(model, again)


def test_path_kept_as_given_and_no_object_arrays(tmp_path):
    model = fn.Sequential([L.Dense(3, 2)])
    model.compile(optimizer="adam", loss="mse")
    path = tmp_path / "weights.bin"  # no .npz appended
    model.save(str(path))
    assert path.exists() and not (tmp_path / "weights.bin.npz").exists()
    with np.load(path, allow_pickle=False) as f:
        assert "config" in f.files and "model/0.weight" in f.files
        assert all(f[k].dtype != object for k in f.files)
        cfg = json.loads(str(f["config"][()]))
    assert cfg["format"] == "fastnet.Sequential" and cfg["fastnet_version"] == fn.__version__
    assert cfg["layers"][0]["class"] == "Dense" and cfg["compile"]["optimizer"]["class_name"] == "Adam"


def test_load_does_not_disturb_global_rng(tmp_path):
    fn.Sequential([L.Dense(30, 30)]).save(tmp_path / "m.npz")
    fn.seed(11)
    a = fn.random.generator().standard_normal(3)
    fn.seed(11)
    fn.load(tmp_path / "m.npz")
    b = fn.random.generator().standard_normal(3)
    np.testing.assert_array_equal(a, b)


def test_fused_model_reloads_fused(tmp_path):
    model = fn.Sequential([L.Dense(4, 3), L.ReLU(), L.Dense(3, 2)])
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    model.save(tmp_path / "f.npz")
    again = fn.load(tmp_path / "f.npz")
    assert again.fusions() == [("0", "1")] and isinstance(again[1], L.ReLU)


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    good = fn.Sequential([L.Dense(4, 3)])
    good.save(path)
    original = path.read_bytes()

    def crash(fileobj, arrays):
        fileobj.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(serialization, "_write_npz", crash)
    with pytest.raises(OSError, match="simulated"):
        fn.Sequential([L.Dense(4, 3)]).save(path)
    assert path.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]  # no temporary file left behind
    assert_same_state(good, fn.load(path))


def test_not_a_model_file(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match=r"other.npz' is not a fastnet model file \(it has no 'config' entry\)"):
        fn.load(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"this is not a zip")
    with pytest.raises(ValueError, match="junk.npz' is not a fastnet model file"):
        fn.load(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ValueError, match="single.npy' is not a fastnet model file"):
        fn.load(tmp_path / "single.npy")
    np.savez(tmp_path / "wrongfmt.npz", config=np.array(json.dumps({"format": "keras"})))
    with pytest.raises(ValueError, match=r"format 'keras', expected 'fastnet.Sequential'"):
        fn.load(tmp_path / "wrongfmt.npz")
    with pytest.raises(FileNotFoundError):
        fn.load(tmp_path / "missing.npz")


def _rewrite_config(path, edit):
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    cfg = json.loads(str(arrays["config"][()]))
    edit(cfg)
    arrays["config"] = np.array(json.dumps(cfg))
    np.savez(path, **arrays)


def test_version_mismatch_and_unknown_layer(tmp_path):
    path = tmp_path / "m.npz"
    fn.Sequential([L.Dense(4, 3)]).save(path)
    _rewrite_config(path, lambda c: c.update(format_version=99))
    with pytest.raises(ValueError, match=r"model format version 99 .* reads version 1"):
        fn.load(path)
    fn.Sequential([L.Dense(4, 3)]).save(path)
    _rewrite_config(path, lambda c: c["layers"][0].update({"class": "Transformer"}))
    with pytest.raises(
        ValueError, match=r"layers\[0\]\.class: unknown layer class 'Transformer'; known classes: \[.*'Dense'"
    ):
        fn.load(path)


def test_weights_not_matching_architecture(tmp_path):
    path = tmp_path / "m.npz"
    fn.Sequential([L.Dense(4, 3)]).save(path)
    _rewrite_config(path, lambda c: c["layers"][0]["config"].update(in_features=5))
    with pytest.raises(
        ValueError,
        match=r"layers\[0\] \(Dense\) config declares weight of shape \(5, 3\), "
        r"the stored array 'model/0.weight' has shape \(4, 3\)",
    ):
        fn.load(path)


def test_saved_file_is_a_plain_zip(tmp_path):
    path = tmp_path / "m.npz"
    model = fn.Sequential([L.Dense(4, 3)])
    model.compile(optimizer=optim.SGD(lr=0.1, momentum=0.9), loss=losses.MSE())
    model.train_on_batch(np.ones((2, 4), np.float32), np.zeros((2, 3), np.float32))
    model.save(path)
    names = zipfile.ZipFile(path).namelist()
    assert "config.npy" in names and "model/0.weight.npy" in names
    assert any(n.startswith("optimizer/") for n in names)
