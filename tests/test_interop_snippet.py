"""Issue 11's user snippet, run as written (in a temporary directory, on random MNIST-shaped data)."""

from __future__ import annotations

import numpy as np
import pytest
from _interop_models import example_module

import fastnet as fn


def test_issue_snippet_runs_as_written(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    pytest.importorskip("safetensors")
    pytest.importorskip("tensorboard")
    ort = pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    fn.seed(0)
    model = example_module("mnist_cnn").lenet5()
    model.compile(optimizer="adam", loss="softmax_cross_entropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 32)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[fn.callbacks.TensorBoard("runs/lenet")])

    model.export_onnx("lenet.onnx")
    sess = ort.InferenceSession("lenet.onnx")
    probs = sess.run(None, {"input": x})[0]
    np.testing.assert_allclose(probs, model.predict(x), rtol=0, atol=1e-5)

    model.save_weights("lenet.safetensors")
    copy = example_module("mnist_cnn").lenet5()
    copy.load_weights("lenet.safetensors")
    np.testing.assert_array_equal(copy.forward(x, training=False), model.forward(x, training=False))
    assert list((tmp_path / "runs" / "lenet").glob("events.out.tfevents.*"))

    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    torch_model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(400, 120),
        torch.nn.ReLU(),
        torch.nn.Linear(120, 84),
        torch.nn.ReLU(),
        torch.nn.Linear(84, 10),
    )
    save_file(torch_model.state_dict(), "from_torch.safetensors")
    model.load_weights("from_torch.safetensors")
    with torch.no_grad():
        expected = torch.softmax(torch_model(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(model.predict(x), expected, rtol=0, atol=1e-5)
