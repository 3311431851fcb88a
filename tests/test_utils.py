"""utils: to_categorical, train_val_split, standardize, minmax_scale."""

import numpy as np
import pytest

import fastnet as fn
from fastnet.utils import minmax_scale, standardize, to_categorical, train_val_split


def test_to_categorical():
    out = to_categorical([2, 0, 1, 2])
    assert out.dtype == np.float32 and out.shape == (4, 3)
    np.testing.assert_array_equal(out.argmax(axis=1), [2, 0, 1, 2])
    np.testing.assert_array_equal(out.sum(axis=1), 1)
    assert to_categorical(np.array([[1], [0]]), num_classes=5).shape == (2, 5)
    assert to_categorical(np.array([1.0, 3.0])).shape == (2, 4)
    assert to_categorical([1], dtype=np.float64).dtype == np.float64


def test_to_categorical_errors():
    with pytest.raises(ValueError, match=r"to_categorical: labels must be in \[0, 3\), got labels from 0 to 3"):
        to_categorical([0, 3], num_classes=3)
    with pytest.raises(ValueError, match="labels must be in .* from -1"):
        to_categorical([-1, 1], num_classes=3)
    with pytest.raises(ValueError, match="to_categorical: y must hold integer class ids, got non-integer values"):
        to_categorical([0.5, 1.0])
    with pytest.raises(ValueError, match=r"to_categorical: y must be a 1-d array of class ids, got shape \(2, 2\)"):
        to_categorical(np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        to_categorical([0], num_classes=0)


def test_train_val_split_partitions_and_is_seeded():
    x = np.arange(100).reshape(50, 2)
    y = np.arange(50)
    (xt, yt), (xv, yv) = train_val_split(x, y, 0.2, seed=1)
    assert len(xv) == 10 and len(xt) == 40
    assert sorted(np.r_[yt, yv]) == list(range(50))  # disjoint and complete
    np.testing.assert_array_equal(xt[:, 0] // 2, yt)  # rows stay paired
    (_, yt2), _ = train_val_split(x, y, 0.2, seed=1)
    np.testing.assert_array_equal(yt, yt2)
    fn.seed(4)
    (_, a), _ = train_val_split(x, y, 0.2)
    fn.seed(4)
    (_, b), _ = train_val_split(x, y, 0.2)
    np.testing.assert_array_equal(a, b)


def test_train_val_split_stratified():
    y = np.r_[np.zeros(80, int), np.ones(20, int)]
    x = np.arange(100)[:, None]
    (_, yt), (_, yv) = train_val_split(x, y, 0.25, stratify=True, seed=0)
    assert (yv == 0).sum() == 20 and (yv == 1).sum() == 5
    assert (yt == 0).sum() == 60 and (yt == 1).sum() == 15
    onehot = to_categorical(y)
    (_, ot), (_, ov) = train_val_split(x, onehot, 0.25, stratify=True, seed=0)
    assert ov[:, 1].sum() == 5 and ot.shape == (75, 2)


def test_train_val_split_errors():
    with pytest.raises(ValueError, match=r"same number of samples, got shapes \(4, 1\) and \(3,\)"):
        train_val_split(np.zeros((4, 1)), np.zeros(3), 0.5)
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\), got 1.0"):
        train_val_split(np.zeros((4, 1)), np.zeros(4), 1.0)
    with pytest.raises(ValueError, match="leaves 2 for training and 0 for validation"):
        train_val_split(np.zeros((2, 1)), np.zeros(2), 0.1)


def test_standardize_fits_and_reapplies():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, (200, 4)).astype(np.float32)
    x[:, 3] = 7.0  # a constant feature
    xs, stats = standardize(x)
    assert xs.dtype == np.float32
    np.testing.assert_allclose(xs.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(xs[:, :3].std(axis=0), 1, rtol=1e-4)
    np.testing.assert_array_equal(xs[:, 3], 0)
    test = rng.normal(5.0, 3.0, (10, 4)).astype(np.float32)
    ts, same = standardize(test, stats=stats)
    assert same is stats
    np.testing.assert_allclose(ts, (test - stats["mean"]) / stats["std"], rtol=1e-6)
    with pytest.raises(ValueError, match=r"standardize: x of shape \(10, 3\) does not fit stats of shape \(1, 4\)"):
        standardize(test[:, :3], stats=stats)
    with pytest.raises(ValueError, match="stats must be the dict returned by a previous standardize call"):
        standardize(test, stats={"mean": 0})
    with pytest.raises(ValueError, match="standardize: x contains NaN or inf"):
        standardize(np.array([[np.nan]]))


def test_minmax_scale():
    img = np.array([[0, 128], [255, 64]], np.uint8)
    s, stats = minmax_scale(img, axis=None)
    assert s.dtype == np.float32 and s.min() == 0 and s.max() == 1
    x = np.array([[1.0, 10.0], [3.0, 10.0], [2.0, 10.0]])
    s, stats = minmax_scale(x, feature_range=(-1, 1))
    np.testing.assert_allclose(s[:, 0], [-1, 1, 0])
    np.testing.assert_allclose(s[:, 1], -1)  # constant feature -> lower end
    s2, _ = minmax_scale(np.array([[5.0, 10.0]]), stats=stats)
    np.testing.assert_allclose(s2, [[3.0, -1.0]])  # test data may fall outside the range
    with pytest.raises(ValueError, match=r"feature_range must be \(low, high\) with high > low"):
        minmax_scale(x, feature_range=(1, 1))
    with pytest.raises(ValueError, match="minmax_scale: x must be numeric, got dtype <U1"):
        minmax_scale(np.array(["a"]))
