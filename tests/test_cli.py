"""The fastnet command line: train / evaluate / predict / summary on the bundled letters
(tiny runs), and one-line errors with a non-zero exit for user mistakes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnet
from fastnet.cli import main

SRC = str(Path(fastnet.__file__).resolve().parents[1])


pytestmark = pytest.mark.usefixtures("offline")  # every test here: no network, a fresh HOME


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small letters MLP trained by the CLI, shared by the tests that need a model file."""
    d = tmp_path_factory.mktemp("cli")
    model, curves = d / "m.npz", d / "c.png"
    code = main(
        [
            "train",
            "--epochs",
            "2",
            "--limit",
            "4000",
            "--verbose",
            "0",
            "--lr",
            "0.005",
            "--out",
            str(model),
            "--plot",
            str(curves),
        ]
    )
    assert code == 0
    return model, curves


def run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, pattern):
    import re

    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]


def test_train_saves_model_and_plot(trained, capsys):
    model, curves = trained
    assert model.is_file() and curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    m = fastnet.load(model)
    assert m.layers[0].in_features == 289 and m.layers[-1].out_features == 26


def test_train_prints_accuracy(capsys):
    code, out, err = run(
        capsys,
        [
            "train",
            "--epochs",
            "1",
            "--limit",
            "2000",
            "--verbose",
            "2",
            "--optimizer",
            "sgd",
            "--lr",
            "0.1",
            "--seed",
            "1",
        ],
    )
    assert code == 0, err
    assert "Epoch 1/1" in out and "Total params" in out
    acc = float(out.split("validation accuracy:")[1].split()[0])
    test = float(out.split("test accuracy:")[1].split()[0])
    assert 0.0 <= acc <= 1.0 and 0.0 <= test <= 1.0
    assert acc > 3 / 26  # better than always answering the most common class


def test_evaluate_and_summary(trained, capsys):
    model, _ = trained
    code, out, err = run(capsys, ["evaluate", str(model), "--split", "val"])
    assert code == 0, err
    assert "val accuracy" in out and "10000 samples of letters" in out
    acc = float(out.split("val accuracy:")[1].split()[0])
    assert acc > 0.8  # 2 epochs on 4000 samples already learn most letters
    code, out, err = run(capsys, ["summary", str(model)])
    assert code == 0 and "Dense" in out and "Total params" in out


def test_predict_real_png_matches_model(trained, capsys, tmp_path):
    from PIL import Image

    model, _ = trained
    (_, _), (xv, yv), _ = fastnet.datasets.letters(normalize=False)
    paths = []
    for i in range(3):
        p = tmp_path / f"letter{i}.png"
        Image.fromarray((xv[i] * 255).astype(np.uint8), mode="L").save(p)
        paths.append(str(p))
    code, out, err = run(capsys, ["predict", str(model), *paths])
    assert code == 0, err
    m = fastnet.load(model)
    expected = m.predict(xv[:3].reshape(3, -1).astype(np.float32))
    lines = out.strip().splitlines()
    assert len(lines) == 3
    for line, probs in zip(lines, expected, strict=True):
        k = int(np.argmax(probs))
        assert f"class {k} ({fastnet.datasets.LETTER_NAMES[k]})" in line
        assert abs(float(line.split("probability")[1]) - probs[k]) < 1e-3


def test_resume_continues_training(trained, capsys, tmp_path):
    model, _ = trained
    out_path = tmp_path / "resumed.npz"
    # The model file records its 2 epochs, so resuming needs no --initial-epoch.
    code, out, err = run(
        capsys,
        ["train", "--resume", str(model), "--epochs", "1", "--limit", "1000", "--verbose", "2", "--out", str(out_path)],
    )
    assert code == 0, err
    assert "Epoch 3/3" in out and out_path.is_file()
    assert fastnet.load(out_path).epochs_trained == 3


def test_resume_initial_epoch_overrides_the_saved_count(trained, capsys, tmp_path):
    model, _ = trained
    code, out, err = run(
        capsys,
        ["train", "--resume", str(model), "--initial-epoch", "4", "--epochs", "1", "--limit", "1000", "--verbose", "2"],
    )
    assert code == 0, err
    assert "Epoch 5/5" in out


def test_json_model_and_npz_dataset(capsys, tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    x = (rng.random((60, 6, 6)) * 50 + y[:, None, None] * 80).astype(np.uint8)  # learnable by brightness
    np.savez(tmp_path / "d.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    spec = json.dumps([["Flatten", {}], ["Dense", {"in_features": 36, "out_features": 3}]])
    code, out, err = run(
        capsys, ["train", "--dataset", str(tmp_path / "d.npz"), "--model", spec, "--epochs", "1", "--verbose", "0"]
    )
    assert code == 0, err
    assert "test accuracy" in out


@pytest.mark.parametrize(
    "argv,pattern",
    [
        (["train", "--epochs", "0"], r"--epochs: must be > 0"),
        (["train", "--optimizer", "nope"], r"argument --optimizer: invalid choice"),
        (["train", "--model", "resnet"], r"--model must be one of mlp, lenet, cnn"),
        (["train", "--model", '["Dense"'], r"--model is not valid JSON"),
        (["train", "--model", '[["NoSuchLayer", {}]]'], r"unknown layer 'NoSuchLayer'"),
        (["train", "--dataset", "cifar"], r"--dataset must be one of letters, mnist, fashion-mnist or a .npz"),
        (["train", "--dataset", "missing.npz"], r"dataset file not found: missing.npz"),
        (["train", "--dataset", "mnist"], r"MNIST not found: .*downloads are disabled"),
        (["train", "--initial-epoch", "3"], r"--initial-epoch only makes sense with --resume"),
        (["evaluate", "nope.npz"], r"model file not found: nope.npz"),
        (["summary"], r"the following arguments are required: MODEL.npz"),
        ([], r"choose a command"),
    ],
)
def test_user_errors_are_one_line(capsys, argv, pattern):
    code, _, err = run(capsys, argv)
    assert_one_line_error(code, err, pattern)


def test_shape_mismatch_is_one_line(trained, capsys, tmp_path):
    model, _ = trained
    x = np.zeros((5, 28, 28), np.uint8)
    y = np.zeros(5, np.int64)
    np.savez(tmp_path / "big.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    code, _, err = run(capsys, ["evaluate", str(model), "--dataset", str(tmp_path / "big.npz")])
    assert_one_line_error(code, err, r"model does not fit dataset .*\(784,\).*expected input shape \(N, 289\)")
    code, _, err = run(capsys, ["predict", str(model), str(tmp_path / "no.png")])
    assert_one_line_error(code, err, r"image file not found")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    code, _, err = run(capsys, ["predict", str(model), str(tmp_path / "bad.png")])
    assert_one_line_error(code, err, r"cannot read image")


def test_python_dash_m_entry_point(tmp_path):
    env = dict(os.environ, PYTHONPATH=SRC, FASTNET_OFFLINE="1")
    r = subprocess.run(
        [sys.executable, "-m", "fastnet", "evaluate", str(tmp_path / "none.npz")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 1
    assert r.stderr.strip() == f"fastnet evaluate: error: model file not found: {tmp_path / 'none.npz'}"


def test_conv_model_predict_uses_saved_input_size(capsys, tmp_path):
    from PIL import Image

    from fastnet.cli import build_model, input_shape_of

    fastnet.seed(0)
    model = build_model("lenet", (1, 17, 17), 26)
    model.compile(optimizer="adam", loss="softmax_cross_entropy", metrics=["accuracy"])
    x = np.zeros((2, 1, 17, 17), np.float32)
    model.predict(x)  # records the input shape, which save() keeps
    model.save(tmp_path / "lenet.npz")
    assert input_shape_of(fastnet.load(tmp_path / "lenet.npz")) == (1, 17, 17)
    img = np.full((40, 30), 255, np.uint8)
    img[10:30, 10:20] = 0  # dark ink on white: --invert makes it like the training data
    Image.fromarray(img, mode="L").save(tmp_path / "ink.png")
    code, out, err = run(
        capsys, ["predict", str(tmp_path / "lenet.npz"), str(tmp_path / "ink.png"), "--invert", "--classes", "letters"]
    )
    assert code == 0, err
    assert out.startswith(f"{tmp_path / 'ink.png'}: class ") and "probability" in out
    code, _, err = run(
        capsys, ["predict", str(tmp_path / "lenet.npz"), str(tmp_path / "ink.png"), "--classes", "mnist"]
    )
    assert_one_line_error(code, err, r"--classes mnist has 10 classes but the model outputs 26")


def test_plot_without_matplotlib_fails_before_training(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if matplotlib were not installed
    code, out, err = run(
        capsys,
        [
            "train",
            "--epochs",
            "1",
            "--verbose",
            "2",
            "--plot",
            str(tmp_path / "c.png"),
            "--out",
            str(tmp_path / "m.npz"),
        ],
    )
    assert code == 1
    assert "plot_history needs matplotlib" in err and len(err.strip().splitlines()) == 1
    assert "Epoch" not in out and not (tmp_path / "m.npz").exists()


def test_augment_trains_reproducibly(capsys, tmp_path):
    """--augment shifts the training images (MLP inputs are shifted as the images they were); the
    shifts are seeded, so the same command gives the same weights."""
    saved = []
    for i in range(2):
        out_path = tmp_path / f"a{i}.npz"
        code, out, err = run(
            capsys,
            ["train", "--augment", "--epochs", "1", "--limit", "600", "--verbose", "0", "--out", str(out_path)],
        )
        assert code == 0, err
        assert "test accuracy" in out
        saved.append(fastnet.load(out_path).state_dict())
    plain = tmp_path / "plain.npz"
    assert run(capsys, ["train", "--epochs", "1", "--limit", "600", "--verbose", "0", "--out", str(plain)])[0] == 0
    for k, v in saved[0].items():
        np.testing.assert_array_equal(saved[1][k], v)
    assert any(not np.array_equal(v, fastnet.load(plain).state_dict()[k]) for k, v in saved[0].items())
