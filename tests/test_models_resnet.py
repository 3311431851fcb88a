"""fastnet.models.resnet / plain (He et al. 2016, section 4.2): structure, parameter counts from the
paper's recipe, shapes, float64 gradient check, save/load, diagnostics and the CLI's resnetN."""

import re

import numpy as np
import pytest
from _bench_module import bench_module

import fastnet as fn
from fastnet import models
from fastnet.cli import main


def expected_params(depth, width=16, channels=1, classes=10, residual=True):
    """Trainable parameters counted from the recipe: 3x3 convs without bias, BN (gamma, beta) after
    each, 1x1 conv + BN projections where a residual block changes shape, a dense classifier."""
    n = (depth - 2) // 6
    total = 9 * channels * width + 2 * width  # stem conv + BN
    c_in = width
    for stage in range(3):
        c = width * 2**stage
        for _ in range(n):
            total += 9 * c_in * c + 2 * c + 9 * c * c + 2 * c
            if residual and c_in != c:
                total += c_in * c + 2 * c
            c_in = c
    return total + c_in * classes + classes


@pytest.mark.parametrize("depth", [8, 14, 20, 32])
@pytest.mark.parametrize("kind", ["resnet", "plain"])
def test_param_count_matches_the_recipe(kind, depth):
    model = models.build(f"{kind}{depth}", (1, 28, 28), 10)
    want = expected_params(depth, residual=kind == "resnet")
    assert model.num_params() == want
    assert model.name == f"{kind}{depth}"
    text = model.summary(print_fn=None)
    assert re.search(rf"Trainable params: {want:,}\b", text), text


def test_resnet20_is_the_papers_size():
    # The paper: 0.27M parameters for ResNet-20 with parameter-free (option A) shortcuts; the two
    # projections of option B add 16*32 + 32*64 weights and 2*(32 + 64) BN parameters: 2,752.
    assert expected_params(20) == 272_186
    assert expected_params(20, residual=False) == 272_186 - (16 * 32 + 2 * 32 + 32 * 64 + 2 * 64)


def test_pytorch_equivalent_has_the_same_count():
    torch = pytest.importorskip("torch")
    with bench_module("common") as common:
        torch_resnet = common.torch_resnet
    for depth, width in ((8, 4), (20, 16)):
        net = torch_resnet(depth, width=width, in_channels=3, classes=7)
        ours = models.resnet(depth, width=width, input_shape=(3, 16, 16), num_classes=7)
        assert ours.num_params() == sum(p.numel() for p in net.parameters())
        assert ours.num_params(trainable=False) == sum(
            b.numel() for name, b in net.named_buffers() if not name.endswith("num_batches_tracked")
        )
    del torch


def test_structure_and_dotted_names():
    model = models.resnet(20)
    keys = set(model.state_dict())
    assert {"stem_conv.weight", "stage1_block1.conv1.weight", "stage3_block3.bn2.running_var", "fc.weight"} <= keys
    assert {"stage2_block1.shortcut_conv.weight", "stage3_block1.shortcut_bn.weight"} <= keys
    assert not any("shortcut" in k for k in keys if k.startswith(("stage1", "stage2_block2", "stage3_block2")))
    assert not any(k.endswith("conv1.bias") or k.endswith("conv2.bias") for k in keys)  # BN follows every conv
    plain = models.plain(20)
    assert not any("shortcut" in k for k in plain.state_dict())
    adds = [n for n, layer in model.named_layers().items() if type(layer).__name__ == "Add"]
    assert len(adds) == 9 and not any(type(layer).__name__ == "Add" for layer in plain.named_layers().values())


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 9, 11), (1, 4, 4)])
def test_forward_shapes(shape):
    fn.seed(0)
    model = models.resnet(8, width=4, input_shape=shape, num_classes=5)
    x = np.random.default_rng(0).random((3, *shape), dtype=np.float32)
    for training in (True, False):
        y = model.forward(x, training=training)
        assert y.shape == (3, 5) and y.dtype == np.float32 and np.isfinite(y).all()


@pytest.mark.parametrize(
    "call,pattern",
    [
        (lambda: models.resnet(21), r"resnet: depth must be 6n \+ 2 with n >= 1 .* got 21"),
        (lambda: models.plain(2), r"plain: depth must be 6n \+ 2"),
        (lambda: models.resnet(20, shortcut="identity"), r"resnet: shortcut must be one of 'projection'"),
        (lambda: models.resnet(20, width=0), r"resnet: width must be a positive int"),
        (lambda: models.resnet(20, input_shape=(28,)), r"resnet: input_shape must be \(C, H, W\)"),
        (lambda: models.build("resnet19", (1, 28, 28), 10), r"depth must be 6n \+ 2"),
    ],
)
def test_bad_arguments(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


@pytest.mark.parametrize("kind", ["resnet", "plain"])
def test_float64_gradient_check_of_a_tiny_network(kind, backend):
    fn.seed(3)
    model = getattr(models, kind)(8, width=4, input_shape=(1, 5, 5), num_classes=3, dtype=np.float64)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 1, 5, 5)), rng.integers(0, 3, 4)
    result = fn.gradcheck.check_model(model, x, y)
    assert result.ok, result


def _continue(model, x, y, steps=2):
    for _ in range(steps):
        model.train_on_batch(x, y)
    return model.state_dict()


@pytest.mark.parametrize("name", ["resnet8", "plain8", "resnet14"])
def test_save_load_round_trip_then_training_continues_identically(name, tmp_path):
    fn.seed(1)
    model = models.build(name, (1, 8, 8), 4)
    model.compile(optimizer=fn.optim.SGD(lr=0.05, momentum=0.9, weight_decay=5e-4), loss="softmax_cross_entropy")
    rng = np.random.default_rng(2)
    x, y = rng.random((12, 1, 8, 8), dtype=np.float32), rng.integers(0, 4, 12)
    _continue(model, x, y)
    model.save(tmp_path / "m.npz")
    again = fn.load(tmp_path / "m.npz")
    assert again.name == name and again.num_params() == model.num_params()
    before = model.state_dict()
    for k, v in again.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    a, b = _continue(model, x, y), _continue(again, x, y)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(model.predict(x), again.predict(x))


def test_diagnostics_on_a_resnet_names_nested_layers():
    from fastnet.diagnostics import LayerStats

    fn.seed(0)
    model = models.resnet(8, width=4, input_shape=(1, 8, 8), num_classes=3)
    model.compile(optimizer=fn.optim.SGD(lr=0.05, momentum=0.9), loss="softmax_cross_entropy")
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 1, 8, 8), dtype=np.float32), rng.integers(0, 3, 32)
    stats = LayerStats(every=1, probe=x[:8])
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[stats])
    rec = stats.record
    assert rec["weighted"][0] == "stem_conv" and rec["weighted"][-1] == "fc"
    assert "stage2_block1.shortcut_conv" in rec["weighted"] and "stage1_block1.bn1" in rec["layers"]
    assert all(len(v) == 4 and np.isfinite(v).all() for v in rec["grad_norm"].values())
    assert {"stem_relu", "stage1_block1.relu1", "stage3_block1.relu2"} <= set(rec["dead_fraction"])
    assert all(0 <= v <= 1 for vals in rec["dead_fraction"].values() for v in vals)


def test_cli_trains_a_resnet8_and_reloads_it(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNET_OFFLINE", "1")
    out_path = tmp_path / "r8.npz"
    argv = ["train", "--model", "resnet8", "--epochs", "1", "--limit", "256", "--batch-size", "64"]
    code = main([*argv, "--augment", "--optimizer", "sgd", "--lr", "0.05", "--verbose", "0", "--out", str(out_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "test accuracy" in out
    assert main(["summary", str(out_path)]) == 0
    summary = capsys.readouterr().out
    assert "resnet8" in summary and f"Trainable params: {expected_params(8, classes=26):,}" in summary
    assert main(["evaluate", str(out_path)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    code = main(["train", "--model", "resnet9", "--epochs", "1"])
    assert code == 1 and "--model resnet9: resnet: depth must be 6n + 2" in capsys.readouterr().err
