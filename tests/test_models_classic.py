"""fastnet.models: the MLP, LeNet-5 and small CNN builders (shapes, parameter counts, errors,
save/load) and the name table the CLI uses."""

import numpy as np
import pytest

import fastnet as fn
from fastnet import models


def _dense(i, o):
    return i * o + o


def _conv(c, f, k, bias=True):
    return c * f * k * k + (f if bias else 0)


# Parameter counts written out layer by layer from the architectures' definitions.
CASES = [
    ("mlp", (1, 28, 28), 10, _dense(784, 128) + _dense(128, 10), (10,)),
    ("mlp", (1, 17, 17), 26, _dense(289, 128) + _dense(128, 26), (26,)),
    (
        "lenet",
        (1, 28, 28),
        10,
        _conv(1, 6, 5) + _conv(6, 16, 5) + _dense(16 * 5 * 5, 120) + _dense(120, 84) + _dense(84, 10),
        (10,),
    ),
    (
        "lenet",
        (3, 17, 17),
        26,  # 17 -> pad 2, k5: 17 -> pool 8 -> k5: 4 -> pool 2
        _conv(3, 6, 5) + _conv(6, 16, 5) + _dense(16 * 2 * 2, 120) + _dense(120, 84) + _dense(84, 26),
        (26,),
    ),
    ("cnn", (1, 28, 28), 10, _conv(1, 16, 3) + _conv(16, 32, 3) + _dense(32 * 7 * 7, 64) + _dense(64, 10), (10,)),
]


@pytest.mark.parametrize("name,shape,classes,params,out", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_builds_with_the_formula_param_count_and_output_shape(name, shape, classes, params, out):
    fn.seed(0)
    model = models.build(name, shape, classes)
    assert model.num_params() == params
    text = model.summary(input_shape=(int(np.prod(shape)),) if name == "mlp" else shape, print_fn=None)
    assert f"Total params: {params:,}" in text
    x = np.random.default_rng(0).random((3, *shape), dtype=np.float32)
    y = model.forward(x.reshape(3, -1) if name == "mlp" else x, training=False)
    assert y.shape == (3, *out)
    assert np.isfinite(y).all()


def test_mlp_options():
    model = models.mlp(input_shape=(20,), num_classes=3, hidden=(8, 5), activation="sigmoid")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dense", "Sigmoid", "Dense", "Sigmoid", "Dense"]
    assert model.num_params() == _dense(20, 8) + _dense(8, 5) + _dense(5, 3)


@pytest.mark.parametrize(
    "call,pattern",
    [
        (lambda: models.lenet5((1, 8, 8)), r"lenet5: needs images of at least 12x12, got 8x8"),
        (lambda: models.lenet5((1, 28, 28, 1)), r"lenet5: input_shape must be \(C, H, W\) or \(H, W\)"),
        (lambda: models.small_cnn((1, 28, 28), num_classes=0), r"small_cnn: num_classes must be a positive int"),
        (lambda: models.mlp((784,), hidden=(0,)), r"mlp: hidden must be positive ints"),
        (lambda: models.mlp((784,), activation="gelu"), r"mlp: activation must be one of relu, sigmoid, tanh"),
        (lambda: models.build("vgg16", (1, 28, 28), 10), r"unknown model 'vgg16'; known: mlp, lenet, cnn"),
    ],
)
def test_bad_arguments_name_the_builder(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def _train_steps(model, x, y, steps):
    for _ in range(steps):
        model.train_on_batch(x, y)
    return [p.copy() for p in model.parameters()]


@pytest.mark.parametrize("name", ["mlp", "lenet", "cnn"])
def test_save_load_round_trip_then_training_continues_identically(name, tmp_path):
    fn.seed(1)
    shape = (1, 14, 14)
    model = models.build(name, shape, 5)
    model.compile(optimizer=fn.optim.SGD(lr=0.05, momentum=0.9), loss="softmax_cross_entropy", metrics=["accuracy"])
    rng = np.random.default_rng(2)
    x = rng.random((16, *shape), dtype=np.float32)
    x = x.reshape(16, -1) if name == "mlp" else x
    y = rng.integers(0, 5, 16)
    _train_steps(model, x, y, 2)  # momentum buffers are non-zero now
    model.save(tmp_path / "m.npz")
    again = fn.load(tmp_path / "m.npz")
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[k], v)
    for a, b in zip(_train_steps(model, x, y, 2), _train_steps(again, x, y, 2), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["mlp", "lenet", "cnn"])
def test_float64_models_have_float64_parameters(name):
    builder = {"mlp": models.mlp, "lenet": models.lenet5, "cnn": models.small_cnn}[name]
    model = builder(input_shape=(1, 16, 16), num_classes=4, dtype=np.float64)
    assert {p.dtype for p in model.parameters()} == {np.dtype(np.float64)}
