"""DataLoader: coverage of every sample, drop_last, seeded per-epoch permutations, set_epoch,
worker exceptions, thread cleanup, memory-mapped input, input checks and transforms."""

import gc
import threading
import traceback

import numpy as np
import pytest

import fastnet
from fastnet.data import DataLoader, check_arrays
from fastnet.transforms import Compose, Normalize, RandomFlip, RandomShift


def loader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("fastnet-DataLoader")]


@pytest.fixture(autouse=True)
def no_leftover_threads():
    yield
    gc.collect()
    assert loader_threads() == []


def xy(n=23, d=3):
    x = np.arange(n * d, dtype=np.float32).reshape(n, d)
    return x, np.arange(n)


def ids(loader):
    return [yb.tolist() for _, yb in loader]


@pytest.mark.parametrize("prefetch", [0, 2])
@pytest.mark.parametrize("n,bs", [(23, 5), (20, 5), (1, 4), (7, 7)])
def test_every_sample_once_per_epoch(prefetch, n, bs):
    x, y = xy(n)
    dl = DataLoader(x, y, batch_size=bs, seed=1, prefetch=prefetch)
    for _ in range(2):
        batches = list(dl)
        assert len(batches) == len(dl) == -(-n // bs)
        seen = np.concatenate([yb for _, yb in batches])
        assert sorted(seen) == list(range(n))
        for xb, yb in batches:
            np.testing.assert_array_equal(xb, x[yb])  # x and y stay paired
            assert len(xb) <= bs
    assert dl.num_samples == n and dl.batch_size == bs


def test_drop_last():
    x, y = xy(23)
    dl = DataLoader(x, y, batch_size=5, drop_last=True, seed=0)
    batches = ids(dl)
    assert len(dl) == len(batches) == 4 and all(len(b) == 5 for b in batches)
    assert len(set(sum(batches, []))) == 20
    with pytest.raises(ValueError, match=r"drop_last=True with batch_size 30 > 23 samples"):
        DataLoader(x, y, batch_size=30, drop_last=True)


def test_no_shuffle_is_in_order():
    x, y = xy(11)
    assert sum(ids(DataLoader(x, y, batch_size=4, shuffle=False)), []) == list(range(11))


def test_determinism_epochs_differ_and_set_epoch():
    x, y = xy(40)
    a = DataLoader(x, y, batch_size=8, seed=7)
    b = DataLoader(x, y, batch_size=8, seed=7)
    e0, e1, e2 = ids(a), ids(a), ids(a)
    assert e0 == ids(b) and e1 == ids(b)  # same seed, same sequence of epochs
    assert e0 != e1 != e2
    resumed = DataLoader(x, y, batch_size=8, seed=7)
    resumed.set_epoch(2)  # resuming at epoch 2 reproduces the uninterrupted run
    assert ids(resumed) == e2
    assert ids(DataLoader(x, y, batch_size=8, seed=8)) != e0
    with pytest.raises(ValueError, match=r"set_epoch: epoch must be an int >= 0, got -1"):
        a.set_epoch(-1)


def test_seed_none_follows_fastnet_seed():
    x, y = xy(30)
    fastnet.seed(3)
    first = ids(DataLoader(x, y, batch_size=6))
    fastnet.seed(3)
    assert ids(DataLoader(x, y, batch_size=6)) == first


def test_worker_exception_keeps_traceback():
    def broken_transform(xb):
        raise RuntimeError("boom in transform")

    x, y = xy(10)
    dl = DataLoader(x, y, batch_size=4, transform=broken_transform, prefetch=2)
    with pytest.raises(RuntimeError, match="boom in transform") as info:
        list(dl)
    frames = "".join(traceback.format_tb(info.value.__traceback__))
    assert "broken_transform" in frames  # the worker's frames are part of the traceback


def test_early_break_leaves_no_thread():
    x, y = xy(200)
    dl = DataLoader(x, y, batch_size=2, prefetch=3, seed=0)
    for i, _ in enumerate(dl):
        assert loader_threads()  # the prefetcher is running
        if i == 2:
            break
    gc.collect()
    assert loader_threads() == []


def test_close_and_context_manager_stop_threads():
    x, y = xy(200)
    with DataLoader(x, y, batch_size=2, prefetch=2, seed=0) as dl:
        it = iter(dl)
        next(it)
        assert len(loader_threads()) == 1
        dl.close()
        assert loader_threads() == []
        dl.close()  # idempotent
    it2 = iter(dl)
    next(it2)
    del it2
    gc.collect()
    assert loader_threads() == []


def test_memory_mapped_npy(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (50, 1, 4, 4), dtype=np.uint8)
    y = np.arange(50)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    xm = np.load(tmp_path / "x.npy", mmap_mode="r")
    ym = np.load(tmp_path / "y.npy", mmap_mode="r")
    dl = DataLoader(xm, ym, batch_size=16, seed=2, dtype=np.float32, num_classes=50)
    for xb, yb in dl:
        assert xb.dtype == np.float32 and type(xb) is np.ndarray and xb.flags.writeable
        np.testing.assert_array_equal(xb, x[yb].astype(np.float32))
    assert sorted(sum(ids(dl), [])) == list(range(50))


def test_input_checks():
    x, y = xy(10)
    with pytest.raises(ValueError, match=r"x and y lengths differ: x has 10 samples, y has 9"):
        DataLoader(x, y[:9])
    bad = x.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"x contains NaN or inf \(first at sample 4"):
        DataLoader(bad, y)
    with pytest.raises(ValueError, match=r"label 10 outside \[0, 10\)"):
        DataLoader(x, y + 1, num_classes=10)
    with pytest.raises(ValueError, match=r"label -1 outside \[0, 5\)"):
        DataLoader(x, y - 1, num_classes=5)
    with pytest.raises(ValueError, match=r"ndim >= 2, got shape \(10,\)"):
        DataLoader(y.astype(np.float32), y)
    with pytest.raises(ValueError, match=r"y must have shape \(N,\) class ids or \(N, classes\)"):
        DataLoader(x, np.zeros((10, 2, 2)))
    with pytest.raises(ValueError, match=r"y has 3 columns, expected num_classes=4"):
        check_arrays(x, np.zeros((10, 3)), num_classes=4)
    with pytest.raises(ValueError, match=r"batch_size must be a positive int, got 0"):
        DataLoader(x, y, batch_size=0)
    with pytest.raises(ValueError, match=r"prefetch must be an int >= 0, got -1"):
        DataLoader(x, y, prefetch=-1)


def test_y_none_yields_none_labels():
    x, _ = xy(9)
    out = list(DataLoader(x, None, batch_size=4, shuffle=False))
    assert [yb for _, yb in out] == [None] * 3
    np.testing.assert_array_equal(np.concatenate([xb for xb, _ in out]), x)


# ---- transforms ----------------------------------------------------------------------------------
def test_normalize_scalar_and_per_channel():
    x = np.arange(2 * 3 * 2 * 2, dtype=np.uint8).reshape(2, 3, 2, 2)
    out = Normalize(0.5, 0.25, scale=1 / 255)(x, None)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (x / 255 - 0.5) / 0.25, rtol=1e-5)
    mean, std = [1.0, 2.0, 3.0], [1.0, 2.0, 4.0]
    out = Normalize(mean, std, dtype=np.float64)(x, None)
    np.testing.assert_allclose(out, (x - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(std, (1, 3, 1, 1)))
    with pytest.raises(ValueError, match=r"Normalize: std must be finite and > 0"):
        Normalize(0, 0)


def test_random_shift_moves_content_and_is_seeded():
    x = np.zeros((64, 1, 7, 7), np.float32)
    x[:, 0, 3, 3] = 1.0
    out = RandomShift(2)(x, np.random.default_rng(0))
    assert out.shape == x.shape
    assert np.all(out.sum(axis=(1, 2, 3)) == 1.0)  # a shift of <= 2 keeps the centre pixel inside
    pos = np.argwhere(out[:, 0] == 1.0)[:, 1:]
    assert np.all(np.abs(pos - 3) <= 2) and len({tuple(p) for p in pos}) > 5
    again = RandomShift(2)(x, np.random.default_rng(0))
    np.testing.assert_array_equal(out, again)
    flat = RandomShift(2, image_shape=(7, 7))(x.reshape(64, 49), np.random.default_rng(0))
    np.testing.assert_array_equal(flat.reshape(out.shape), out)


def test_random_flip():
    x = np.arange(40 * 5, dtype=np.float32).reshape(40, 1, 1, 5)
    out = RandomFlip(0.5)(x, np.random.default_rng(1))
    flipped = np.all(out == x[..., ::-1], axis=(1, 2, 3))
    kept = np.all(out == x, axis=(1, 2, 3))
    assert np.all(flipped | kept) and 0 < flipped.sum() < 40
    np.testing.assert_array_equal(RandomFlip(1.0)(x, np.random.default_rng(0)), x[..., ::-1])
    with pytest.raises(ValueError, match=r"RandomFlip: expected image batches"):
        RandomFlip()(x.reshape(40, 5), np.random.default_rng(0))


def test_loader_augmentation_reproducible_per_epoch():
    x = np.random.default_rng(0).random((30, 1, 6, 6)).astype(np.float32)
    y = np.arange(30)
    t = Compose([RandomShift(1), RandomFlip(0.5)])
    a = DataLoader(x, y, batch_size=10, transform=t, seed=4)
    b = DataLoader(x, y, batch_size=10, transform=t, seed=4)
    b.set_epoch(1)
    first, second = [xb for xb, _ in a], [xb for xb, _ in a]
    for u, v in zip(second, (xb for xb, _ in b), strict=True):
        np.testing.assert_array_equal(u, v)
    assert not all(np.array_equal(u, v) for u, v in zip(first, second, strict=True))
