"""One input-scaling rule for every data path, recorded in the model and checked by evaluate/predict
(issue 9, part 1: the same arrays used to score 0.72 by name and 0.045 by path, exit status 0)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import fastnet
from fastnet import layers as L
from fastnet import preprocessing as P
from fastnet.cli import main
from fastnet.datasets.idx import write_idx

pytestmark = pytest.mark.usefixtures("offline")  # every test here: no network, a fresh HOME


def _letters_npz(path, transform=lambda x: x):
    tr, va, te = fastnet.datasets.letters(normalize=False)
    arrays = {}
    for split, (x, y) in zip(("train", "val", "test"), (tr, va, te), strict=True):
        arrays[f"x_{split}"], arrays[f"y_{split}"] = transform(x), y
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def letters_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("pre")
    out = d / "m.npz"
    argv = ["train", "--epochs", "1", "--limit", "3000", "--verbose", "0", "--lr", "0.005", "--out", str(out)]
    assert main(argv) == 0
    return out


def _test_line(out):
    m = re.search(r"test loss: ([0-9.]+)\s+test accuracy: ([0-9.]+)", out)
    assert m, out
    return m.groups()


def test_same_arrays_by_name_or_by_path_score_the_same(letters_model, capsys, tmp_path):
    npz = _letters_npz(tmp_path / "letters.npz")
    assert main(["evaluate", str(letters_model), "--dataset", "letters"]) == 0
    by_name = _test_line(capsys.readouterr().out)
    assert main(["evaluate", str(letters_model), "--dataset", str(npz)]) == 0
    by_path = _test_line(capsys.readouterr().out)
    assert by_name == by_path
    assert float(by_name[1]) > 0.5  # a trained model, so equal scores are not two equal failures


def test_differently_prepared_data_is_refused_in_one_line(letters_model, capsys, tmp_path):
    npz = _letters_npz(tmp_path / "f255.npz", lambda x: x.astype(np.float32) * 255)
    code = main(["evaluate", str(letters_model), "--dataset", str(npz)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "prepared differently" in err and "0..255" in err and "divide" in err


def test_resume_on_differently_prepared_data_is_refused(letters_model, capsys, tmp_path):
    npz = _letters_npz(tmp_path / "f255.npz", lambda x: x.astype(np.float32) * 255)
    code = main(["train", "--resume", str(letters_model), "--dataset", str(npz), "--epochs", "1", "--verbose", "0"])
    err = capsys.readouterr().err
    assert code == 1 and "prepared differently" in err


def test_record_saved_in_the_model_file(letters_model):
    record = fastnet.load(letters_model).preprocessing
    assert record["rule"] == P.RULE and record["divisor"] == 1.0 and record["source_dtype"] == "uint8"
    assert record["range"] == [0.0, 1.0] and record["layout"] == "flat" and record["sample_shape"] == [289]


def test_every_loader_applies_the_one_rule(tmp_path):
    """Letters, MNIST-layout IDX files and a user .npz holding the same arrays give the same inputs."""
    (xtr, ytr), _, (xte, yte) = fastnet.datasets.letters(normalize=False)
    xtr, ytr, xte, yte = xtr[:50], ytr[:50], xte[:20], yte[:20]
    expect_tr = fastnet.datasets.letters(normalize=True)[0][0][:50]
    d = tmp_path / "idx"
    d.mkdir()
    for base, arr in (
        ("train-images-idx3-ubyte", xtr),
        ("train-labels-idx1-ubyte", ytr.astype(np.uint8)),
        ("t10k-images-idx3-ubyte", xte),
        ("t10k-labels-idx1-ubyte", yte.astype(np.uint8)),
    ):
        write_idx(d / (base + ".gz"), arr)
    (mtr, _), _ = fastnet.datasets.mnist(d, normalize=True)
    np.savez(tmp_path / "u.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    (utr, _), _ = fastnet.datasets.load_npz(tmp_path / "u.npz", normalize=True)
    for got in (mtr, utr):
        np.testing.assert_array_equal(got, expect_tr)
    # 8-bit images are divided by 255 by every loader, and every split of a dataset alike
    big = (xtr * 200).astype(np.uint8)
    np.savez(tmp_path / "b.npz", x_train=big, y_train=ytr, x_test=xte, y_test=yte)
    (btr, _), (bte, _) = fastnet.datasets.load_npz(tmp_path / "b.npz", normalize=True)
    np.testing.assert_allclose(btr[:, 0], big / 255.0, rtol=1e-6)
    np.testing.assert_allclose(bte[:, 0], xte / 255.0, rtol=1e-6)  # the train split decides


def test_pixel_divisor_rule():
    assert P.pixel_divisor(np.array([0, 1], np.uint8)) == 1.0
    assert P.pixel_divisor(np.array([0, 7, 255], np.uint8)) == 255.0
    assert P.pixel_divisor(np.array([0, 300], np.uint16)) == 65535.0
    assert P.pixel_divisor(np.array([0.0, 255.0], np.float32)) == 1.0
    assert P.pixel_divisor(np.array([True, False])) == 1.0
    with pytest.raises(ValueError, match="pixel values >= 0"):
        P.pixel_divisor(np.array([-1, 3], np.int64))
    with pytest.raises(ValueError, match="8-bit"):
        P.pixel_divisor(np.array([0, 70000], np.int64))


def _mlp(seed=0):
    fastnet.seed(seed)
    m = fastnet.Sequential([L.Dense(6, 8), L.ReLU(), L.Dense(8, 3)])
    m.compile(optimizer="adam", loss="softmax_cross_entropy", metrics=["accuracy"])
    return m


def test_api_fit_records_and_evaluate_predict_check(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 6)).astype(np.float32), rng.integers(0, 3, 64)
    m = _mlp()
    m.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert m.preprocessing["range"][1] <= 1.0 and m.preprocessing["divisor"] is None
    m.evaluate(x, y)  # same preparation: fine
    m.predict(x[:1] * 0.01)  # one dark sample is a legitimate input
    with pytest.raises(ValueError, match=r"evaluate: inputs in .*0\.\.255|evaluate: inputs in .*prepared differently"):
        m.evaluate(x * 255, y)
    with pytest.raises(ValueError, match="predict: .*prepared differently"):
        m.predict(x * 255)
    m.save(tmp_path / "m.npz")
    m2 = fastnet.load(tmp_path / "m.npz")
    assert m2.preprocessing == m.preprocessing
    with pytest.raises(ValueError, match="prepared differently"):
        m2.evaluate(x * 255, y)
    with pytest.raises(ValueError, match="fit: .*prepared differently"):
        m2.fit(x * 255, y, epochs=1, verbose=0)


def test_model_trained_unscaled_refuses_scaled_dataset():
    rng = np.random.default_rng(1)
    x, y = (rng.random((64, 6)) * 255).astype(np.float32), rng.integers(0, 3, 64)
    m = _mlp()
    m.fit(x, y, epochs=1, batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="tiny part.*multiply"):
        m.evaluate(x / 255, y)


def test_image_pixels_map_onto_the_training_range():
    record = P.make_record(np.array([[-0.5], [2.0]], np.float32))
    got = P.image_to_input(np.array([0.0, 255.0]), record, np.float32)
    np.testing.assert_allclose(got, [-0.5, 2.0])
    np.testing.assert_allclose(P.image_to_input(np.array([0.0, 51.0]), None, np.float64), [0.0, 0.2])
