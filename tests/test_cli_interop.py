"""``fastnet export`` (ONNX, safetensors) and ``fastnet train --tensorboard DIR``."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

import fastnet
from fastnet.cli import main

pytestmark = pytest.mark.usefixtures("offline")  # every test here: no network, a fresh HOME


def run(capsys, argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, pattern):
    assert code != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert re.search(pattern, err), err


TRAIN = ["train", "--epochs", "1", "--limit", "600", "--verbose", "0"]


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """A letters MLP and a letters LeNet trained by the CLI (tiny runs)."""
    d = tmp_path_factory.mktemp("cli_interop")
    paths = {}
    for name in ("mlp", "lenet"):
        paths[name] = d / f"{name}.npz"
        assert main([*TRAIN, "--model", name, "--out", str(paths[name])]) == 0
    return paths


@pytest.mark.parametrize("name", ["mlp", "lenet"])
def test_export_onnx_matches_predict(saved_models, tmp_path, capsys, name):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    code, out, err = run(capsys, ["export", saved_models[name], tmp_path / "m.onnx"])
    assert code == 0, err
    assert "ONNX opset 17" in out and "as model.predict" in out
    model = fastnet.load(saved_models[name])
    x = np.random.default_rng(0).random((7, *model.input_shape), dtype=np.float32)
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model.predict(x), rtol=0, atol=1e-5)


def test_export_safetensors(saved_models, tmp_path, capsys):
    pytest.importorskip("safetensors")
    code, out, err = run(capsys, ["export", saved_models["lenet"], tmp_path / "w.safetensors"])
    assert code == 0, err
    model = fastnet.load(saved_models["lenet"])
    copy = fastnet.load(saved_models["lenet"])
    for p in copy.parameters():
        p[...] = 0
    fastnet.load_weights(copy, tmp_path / "w.safetensors")
    for (k, a), b in zip(model.state_dict().items(), copy.state_dict().values(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=k)


def test_export_errors_are_one_line(saved_models, tmp_path, capsys):
    one_line_error(*run(capsys, ["export", saved_models["mlp"], tmp_path / "m.pt"])[::2], r"must end in \.onnx")
    one_line_error(*run(capsys, ["export", tmp_path / "absent.npz", tmp_path / "m.onnx"])[::2], "model file not found")
    pytest.importorskip("onnx")
    one_line_error(
        *run(capsys, ["export", saved_models["mlp"], tmp_path / "m.onnx", "--opset", "5"])[::2], r"opset must be in"
    )


def test_export_without_onnx_names_the_extra(saved_models, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    code, _, err = run(capsys, ["export", saved_models["mlp"], tmp_path / "m.onnx"])
    one_line_error(code, err, r"pip install 'fastnet\[onnx\]'")


def test_train_tensorboard_writes_epoch_scalars(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    code, _, err = run(capsys, [*TRAIN, "--epochs", "2", "--tensorboard", tmp_path / "runs"])
    assert code == 0, err
    steps = {}
    for path in (tmp_path / "runs").glob("events.out.tfevents.*"):
        for event in EventFileLoader(str(path)).Load():
            for v in event.summary.value:
                steps.setdefault(v.tag, []).append((event.step, float(tensor_util.make_ndarray(v.tensor).ravel()[0])))
    for tag in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert [s for s, _ in steps[tag]] == [0, 1], tag
    assert all(np.isfinite(v) for _, v in steps["loss"])


def test_train_tensorboard_without_the_extra_fails_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    code, out, err = run(capsys, [*TRAIN, "--tensorboard", tmp_path / "runs"])
    one_line_error(code, err, r"pip install 'fastnet\[tensorboard\]'")
    assert "accuracy" not in out  # nothing was trained
