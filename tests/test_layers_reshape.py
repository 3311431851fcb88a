"""Flatten and Reshape: shapes, gradient checks, errors, config."""

import json

import numpy as np
import pytest

from fastnet import layers as L
from fastnet.gradcheck import check_layer


@pytest.mark.parametrize("shape", [(1, 3), (1, 2, 3, 5), (3, 1, 7, 4), (2, 3, 5)], ids=str)
def test_flatten(backend, shape, rng):
    x = rng.standard_normal(shape)
    layer = L.Flatten()
    y = layer.forward(x, training=True)
    assert y.shape == (shape[0], int(np.prod(shape[1:])))
    np.testing.assert_array_equal(y, x.reshape(shape[0], -1))  # NCHW order: channel-major
    assert layer.output_shape(shape[1:]) == y.shape[1:]
    np.testing.assert_array_equal(layer.backward(y * 2), x * 2)
    check_layer(L.Flatten(), x).assert_ok()


@pytest.mark.parametrize(
    "target,shape,expect",
    [((5, -1), (2, 3, 5), (5, 3)), ((-1,), (1, 2, 3, 4), (24,)), ((2, 3), (3, 6), (2, 3)), (4, (2, 2, 2), (4,))],
    ids=str,
)
def test_reshape(backend, target, shape, expect, rng):
    x = rng.standard_normal(shape)
    layer = L.Reshape(target)
    y = layer.forward(x, training=True)
    assert y.shape == (shape[0],) + expect and layer.output_shape(shape[1:]) == expect
    np.testing.assert_array_equal(layer.backward(y), x)
    check_layer(L.Reshape(target), x).assert_ok()


def test_errors_and_config():
    with pytest.raises(
        ValueError,
        match=r"Flatten: expected an input with a batch axis and at least one more, "
        r"\(N, \.\.\.\), got shape \(4,\)",
    ):
        L.Flatten().forward(np.zeros(4))
    with pytest.raises(
        ValueError,
        match=r"Reshape: cannot reshape a sample of shape \(3, 5\) \(15 elements\) "
        r"to \(4, 4\) \(16 elements\)",
    ):
        L.Reshape((4, 4)).forward(np.zeros((2, 3, 5)))
    with pytest.raises(
        ValueError, match=r"Reshape: cannot reshape a sample of shape \(7,\) \(7 elements\) to \(2, -1\)"
    ):
        L.Reshape((2, -1)).forward(np.zeros((2, 7)))
    with pytest.raises(
        ValueError,
        match=r"Reshape: shape must be a non-empty tuple of positive ints with at most "
        r"one -1, got \(-1, -1\)",
    ):
        L.Reshape((-1, -1))
    with pytest.raises(ValueError, match=r"Reshape: shape must be .*, got \(\)"):
        L.Reshape(())
    flat = L.Flatten()
    flat.forward(np.zeros((2, 3, 4)), training=True)
    with pytest.raises(ValueError, match=r"Flatten.backward: expected dout of shape \(2, 12\), got \(2, 3, 4\)"):
        flat.backward(np.zeros((2, 3, 4)))
    layer = L.Reshape((3, -1))
    cfg = json.loads(json.dumps(layer.get_config()))
    assert cfg == {"shape": [3, -1]} and L.Reshape.from_config(cfg).shape == (3, -1)
    assert repr(layer) == "Reshape(shape=[3, -1])" and repr(L.Flatten()) == "Flatten()"
