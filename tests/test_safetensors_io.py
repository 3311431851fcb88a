"""safetensors weights under PyTorch names and layouts: fastnet <-> file <-> PyTorch."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from _interop_models import bn_dropout_avgpool, example_module, randomise_statistics, warm_up

import fastnet as fn
from fastnet import layers as L
from fastnet.interop import load_weights, save_weights

safetensors_numpy = pytest.importorskip("safetensors.numpy")

ATOL = 1e-5


def mlp_bn(dtype=np.float32):
    return fn.Sequential(
        [
            L.Dense(20, 32, dtype=dtype),
            L.BatchNorm1d(32, dtype=dtype),
            L.ReLU(),
            L.Dropout(0.2),
            L.Dense(32, 5, dtype=dtype),
        ]
    )


def trained(model, shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((16, *shape), dtype=np.float32).astype(model.dtype)
    model.compile(optimizer="adam", loss="softmax_cross_entropy")
    classes = model.forward(x[:1], training=False).shape[1]
    return warm_up(model, x, rng.integers(0, classes, 16))


def test_round_trip_gives_identical_predictions(tmp_path):
    fn.seed(0)
    source = trained(bn_dropout_avgpool(), (1, 12, 12))
    source.save_weights(tmp_path / "w.safetensors")
    fn.seed(1)
    target = bn_dropout_avgpool()
    target.compile(optimizer="adam", loss="softmax_cross_entropy")
    assert target.load_weights(tmp_path / "w.safetensors") is target  # the method is load_weights
    for key, value in source.state_dict().items():
        np.testing.assert_array_equal(target.state_dict()[key], value)
    x = np.random.default_rng(2).random((7, 1, 12, 12), dtype=np.float32)
    np.testing.assert_array_equal(target.predict(x), source.predict(x))


def test_names_and_layouts_are_pytorchs(tmp_path):
    model = fn.Sequential([L.Conv2D(2, 3, (3, 2)), L.BatchNorm2d(3), L.Flatten(), L.Dense(3 * 4 * 5, 4)])
    model.compile(optimizer="sgd", loss="mse")
    randomise_statistics(model, np.random.default_rng(0))
    model.optimizer.iterations = 12  # what fastnet writes as num_batches_tracked
    save_weights(model, tmp_path / "w.safetensors")
    tensors = safetensors_numpy.load_file(str(tmp_path / "w.safetensors"))
    assert set(tensors) == {
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
        "3.weight",
        "3.bias",
    }
    np.testing.assert_array_equal(tensors["0.weight"], model.layers[0].params["weight"])  # OIHW both
    np.testing.assert_array_equal(tensors["3.weight"], model.layers[3].params["weight"].T)  # Linear: (out, in)
    assert tensors["3.weight"].shape == (4, 60)
    np.testing.assert_array_equal(tensors["1.running_var"], model.layers[1].buffers["running_var"])
    assert tensors["1.num_batches_tracked"].dtype == np.int64 and tensors["1.num_batches_tracked"].shape == ()
    assert int(tensors["1.num_batches_tracked"]) == 12


def test_mismatches_are_listed_in_one_error_and_nothing_changes(tmp_path):
    save_weights(mlp_bn(), tmp_path / "w.safetensors")
    other = fn.Sequential([L.Dense(20, 31), L.BatchNorm1d(31), L.ReLU(), L.Dense(31, 5), L.Tanh(), L.Dense(5, 2)])
    before = other.state_dict()
    with pytest.raises(ValueError) as info:
        load_weights(other, tmp_path / "w.safetensors")
    text = str(info.value)
    assert "missing ['3.weight', '3.bias', '5.weight', '5.bias']" in text
    assert "unexpected ['4.bias', '4.weight']" in text
    assert "0.weight: file (32, 20), model expects (31, 20)" in text
    assert "1.running_mean: file (32,), model expects (31,)" in text
    for key, value in other.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


def test_non_strict_loads_the_common_part_but_never_a_wrong_shape(tmp_path):
    save_weights(mlp_bn(), tmp_path / "w.safetensors")
    longer = fn.Sequential([*mlp_bn().layers, L.ReLU(), L.Dense(5, 3)])
    load_weights(longer, tmp_path / "w.safetensors", strict=False)
    source_w = safetensors_numpy.load_file(str(tmp_path / "w.safetensors"))["4.weight"]
    np.testing.assert_array_equal(longer.layers[4].params["weight"], source_w.T)
    wrong = fn.Sequential([L.Dense(20, 7)])
    with pytest.raises(ValueError, match=r"0.weight: file \(32, 20\), model expects \(7, 20\)"):
        load_weights(wrong, tmp_path / "w.safetensors", strict=False)


def test_dtypes_are_cast_and_bad_dtypes_reported(tmp_path):
    model64 = mlp_bn(np.float64)
    randomise_statistics(model64, np.random.default_rng(0))
    save_weights(model64, tmp_path / "w64.safetensors")
    model32 = load_weights(mlp_bn(), tmp_path / "w64.safetensors")
    np.testing.assert_allclose(model32.layers[0].params["weight"], model64.layers[0].params["weight"], rtol=1e-7)
    assert model32.layers[0].params["weight"].dtype == np.float32
    tensors = {
        k: v.astype(np.int32) if k == "0.bias" else v
        for k, v in safetensors_numpy.load_file(str(tmp_path / "w64.safetensors")).items()
    }
    safetensors_numpy.save_file(tensors, str(tmp_path / "int.safetensors"))
    with pytest.raises(ValueError, match=r"bad dtypes \[0.bias: expected float16/32/64, got I32\]"):
        load_weights(mlp_bn(), tmp_path / "int.safetensors")


def test_damaged_or_missing_files(tmp_path):
    save_weights(mlp_bn(), tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "short.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="is not a readable safetensors file"):
        load_weights(mlp_bn(), tmp_path / "short.safetensors")
    (tmp_path / "huge_header.safetensors").write_bytes((2**40).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="is not a readable safetensors file"):
        load_weights(mlp_bn(), tmp_path / "huge_header.safetensors")
    with pytest.raises(FileNotFoundError):
        load_weights(mlp_bn(), tmp_path / "absent.safetensors")
    with pytest.raises(TypeError, match="path must be a str"):
        save_weights(mlp_bn(), None)


def test_missing_library_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ImportError, match=r"pip install 'fastnet\[safetensors\]'"):
        save_weights(mlp_bn(), tmp_path / "w.safetensors")


# ---- with real PyTorch (a test-only dependency) ------------------------------------------------------
def torch_lenet(nn):
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


def torch_mlp_bn(nn):
    return nn.Sequential(nn.Linear(20, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 5))


def torch_conv_bn(nn):
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Dropout(0.3),
        nn.Conv2d(4, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 16),
        nn.BatchNorm1d(16),
        nn.Tanh(),
        nn.Dropout(0.5),
        nn.Linear(16, 5),
    )


def torch_conv_bn_aligned(nn):
    layers = list(torch_conv_bn(nn))
    layers[8] = nn.AvgPool2d(3)  # 3x3 -> 1x1, then Flatten: module i is layer i of fastnet_conv_bn()
    return nn.Sequential(*layers)


def fastnet_conv_bn():
    layers = bn_dropout_avgpool().layers
    return fn.Sequential([*layers[:8], L.AvgPool2D(3), L.Flatten(), *layers[9:]])


PAIRS = {
    "lenet5": (torch_lenet, lambda: example_module("mnist_cnn").lenet5(), (1, 28, 28)),
    "mlp_bn": (torch_mlp_bn, mlp_bn, (20,)),
    "conv_bn2d": (torch_conv_bn_aligned, fastnet_conv_bn, (1, 12, 12)),
}


@pytest.fixture(scope="module")
def torch_modules():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    safetensors_torch = pytest.importorskip("safetensors.torch")
    return torch, torch.nn, safetensors_torch


def _torch_trained(torch, module, shape):
    torch.manual_seed(0)
    module.train()
    with torch.no_grad():
        for _ in range(3):  # move the BatchNorm statistics away from (0, 1)
            module(torch.rand(16, *shape) * 2 - 0.5)
    return module.eval()


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_pytorch_state_dict_loads_into_fastnet(tmp_path, torch_modules, name):
    torch, nn, safetensors_torch = torch_modules
    build_torch, build_fastnet, shape = PAIRS[name]
    module = _torch_trained(torch, build_torch(nn), shape)
    safetensors_torch.save_file(module.state_dict(), str(tmp_path / "torch.safetensors"))
    model = load_weights(build_fastnet(), tmp_path / "torch.safetensors")
    for n in (1, 7):
        x = np.random.default_rng(n).random((n, *shape), dtype=np.float32)
        with torch.no_grad():
            expected = module(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(model.predict(x), expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_fastnet_weights_load_into_pytorch(tmp_path, torch_modules, name):
    torch, nn, safetensors_torch = torch_modules
    build_torch, build_fastnet, shape = PAIRS[name]
    fn.seed(3)
    model = trained(build_fastnet(), shape)
    model.loss = None  # compare raw outputs: the torch module has no softmax
    save_weights(model, tmp_path / "fastnet.safetensors")
    module = build_torch(nn)
    module.load_state_dict(safetensors_torch.load_file(str(tmp_path / "fastnet.safetensors")), strict=True)
    module.eval()
    x = np.random.default_rng(4).random((7, *shape), dtype=np.float32)
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, model.predict(x), rtol=0, atol=ATOL)


def test_layer_count_mismatch_with_pytorch_is_reported(tmp_path, torch_modules):
    torch, nn, safetensors_torch = torch_modules
    module = torch_conv_bn(nn)  # AdaptiveAvgPool2d + Flatten are two modules, GlobalAvgPool2D one layer
    safetensors_torch.save_file(module.state_dict(), str(tmp_path / "t.safetensors"))
    with pytest.raises(ValueError) as info:
        load_weights(bn_dropout_avgpool(), tmp_path / "t.safetensors")
    text = str(info.value)
    assert "missing ['9.weight', '9.bias', '10.running_mean', '10.running_var', '13.weight', '13.bias']" in text
    assert "unexpected ['11.bias', '11.num_batches_tracked', '11.running_mean'" in text
    assert "10.weight: file (16, 8), model expects (16,)" in text
