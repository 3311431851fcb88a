"""Datasets: bundled letters, IDX / npz readers (good, corrupt and truncated files written here),
MNIST search order and the offline "nothing found" message, the checked downloader (file:// URLs)."""

import gzip
import hashlib
import importlib
import struct
from dataclasses import replace

import numpy as np
import pytest

from fastnet import datasets as D
from fastnet.datasets import download
from fastnet.datasets.idx import read_idx, read_idx_pair, write_idx

# The module, not the function of the same name that the package exports.
mn = importlib.import_module("fastnet.datasets.mnist")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No real data directory, no network: HOME and FASTNET_DATA point at empty temp dirs."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FASTNET_DATA", raising=False)
    monkeypatch.setenv("FASTNET_OFFLINE", "1")
    monkeypatch.setattr(mn, "FASHION_MNIST", replace(mn.FASHION_MNIST, system_dirs=(str(tmp_path / "nosys"),)))


def tiny(n_train=7, n_test=3, h=5, w=4, seed=0):
    rng = np.random.default_rng(seed)
    return (
        (rng.integers(0, 256, (n_train, h, w), dtype=np.uint8), rng.integers(0, 10, n_train).astype(np.uint8)),
        (rng.integers(0, 256, (n_test, h, w), dtype=np.uint8), rng.integers(0, 10, n_test).astype(np.uint8)),
    )


def write_mnist_dir(d, data, gz=True):
    d.mkdir(parents=True, exist_ok=True)
    (xtr, ytr), (xte, yte) = data
    sfx = ".gz" if gz else ""
    for base, arr in (
        ("train-images-idx3-ubyte", xtr),
        ("train-labels-idx1-ubyte", ytr),
        ("t10k-images-idx3-ubyte", xte),
        ("t10k-labels-idx1-ubyte", yte),
    ):
        write_idx(d / (base + sfx), arr)
    return d


def assert_same(loaded, data):
    for (xl, yl), (x, y) in zip(loaded, data, strict=True):
        np.testing.assert_array_equal(xl, x)
        np.testing.assert_array_equal(yl, y)
        assert yl.dtype == np.int64


# ---- letters ---------------------------------------------------------------------------------
def test_letters_shapes_and_options():
    (xtr, ytr), (xv, yv), (xte, yte) = D.letters()
    assert xtr.shape == (40000, 1, 17, 17) and xtr.dtype == np.float32
    assert xv.shape == (10000, 1, 17, 17) and xte.shape == (10000, 1, 17, 17)
    assert ytr.dtype == np.int64 and ytr.min() == 0 and ytr.max() == 25
    assert set(np.unique(xtr)) == {0.0, 1.0}
    (flat, _), _, _ = D.letters(flatten=True, dtype=np.float64)
    assert flat.shape == (40000, 289) and flat.dtype == np.float64
    np.testing.assert_array_equal(flat.reshape(-1, 1, 17, 17), xtr)
    (raw, _), _, _ = D.letters(normalize=False)
    assert raw.shape == (40000, 17, 17) and raw.dtype == np.uint8
    assert D.LETTER_NAMES[0] == "A" and len(D.LETTER_NAMES) == 26


# ---- IDX reader ------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, gz, dtype):
    arr = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    if dtype == np.uint8:
        arr = np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    p = tmp_path / ("a.idx" + (".gz" if gz else ""))
    write_idx(p, arr)
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == gz
    back = read_idx(p)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, arr)


def test_idx_header_is_big_endian_mnist_layout(tmp_path):
    p = tmp_path / "x"
    write_idx(p, np.zeros((3, 28, 28), np.uint8))
    raw = p.read_bytes()
    assert raw[:16] == struct.pack(">IIII", 0x803, 3, 28, 28)
    assert len(raw) == 16 + 3 * 28 * 28


def test_idx_wrong_magic(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(struct.pack(">IIII", 0x12345678, 1, 2, 2) + bytes(4))
    with pytest.raises(ValueError, match=r"bad magic number 0x12345678"):
        read_idx(p)


def test_idx_short_payload(tmp_path):
    p = tmp_path / "short.gz"
    p.write_bytes(gzip.compress(struct.pack(">IIII", 0x803, 10, 28, 28) + bytes(100)))
    with pytest.raises(ValueError, match=r"payload too short: shape \(10, 28, 28\).*needs 7840 bytes.*found 100"):
        read_idx(p)


def test_idx_truncated_header_and_tiny_file(tmp_path):
    p = tmp_path / "h"
    p.write_bytes(struct.pack(">IH", 0x803, 5))
    with pytest.raises(ValueError, match=r"header needs 16 bytes for 3 dimensions, file has 6"):
        read_idx(p)
    p.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match=r"too short for the 4-byte magic"):
        read_idx(p)


def test_idx_truncated_gzip(tmp_path):
    p = tmp_path / "t.gz"
    write_idx(p, np.arange(5000, dtype=np.uint8).reshape(50, 100) % 7)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"corrupt or truncated gzip"):
        read_idx(p)


def test_idx_pair_count_mismatch(tmp_path):
    write_idx(tmp_path / "i", np.zeros((4, 2, 2), np.uint8))
    write_idx(tmp_path / "l", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match=r"holds 4 images but .* holds 3 labels"):
        read_idx_pair(tmp_path / "i", tmp_path / "l")
    with pytest.raises(ValueError, match=r"expected 3 dimensions \(N, H, W\)"):
        read_idx_pair(tmp_path / "l", tmp_path / "l")


def test_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="IDX file not found"):
        read_idx(tmp_path / "nope")


# ---- MNIST search order ----------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_idx_dir(tmp_path, gz):
    data = tiny()
    d = write_mnist_dir(tmp_path / "m", data, gz=gz)
    assert_same(D.mnist(path=d), data)


def test_mnist_from_npz_file_and_normalize(tmp_path):
    (xtr, ytr), (xte, yte) = data = tiny()
    p = tmp_path / "mnist.npz"
    np.savez(p, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    assert_same(D.mnist(path=p), data)
    assert_same(D.mnist(path=tmp_path), data)  # a directory holding mnist.npz
    (xn, _), (xt, _) = D.mnist(path=p, normalize=True)
    assert xn.shape == (7, 1, 5, 4) and xn.dtype == np.float32
    np.testing.assert_allclose(xn[:, 0], xtr / 255.0, rtol=1e-6)
    (xf, _), _ = D.mnist(path=p, normalize=True, flatten=True, dtype=np.float64)
    assert xf.shape == (7, 20) and xf.dtype == np.float64
    (xu, _), _ = D.mnist(path=p, flatten=True)
    assert xu.shape == (7, 20) and xu.dtype == np.uint8


def test_search_order_env_then_home(tmp_path, monkeypatch):
    env_data, home_data = tiny(seed=1), tiny(seed=2)
    # directly in ~/.fastnet/datasets: its mnist/ subdirectory is the download cache, sha256-pinned
    write_mnist_dir(tmp_path / "home" / ".fastnet" / "datasets", home_data)
    assert_same(D.mnist(), home_data)
    write_mnist_dir(tmp_path / "env" / "mnist", env_data)  # subdirectory layout
    monkeypatch.setenv("FASTNET_DATA", str(tmp_path / "env"))
    assert_same(D.mnist(), env_data)
    explicit = tiny(seed=3)
    assert_same(D.mnist(path=write_mnist_dir(tmp_path / "explicit", explicit)), explicit)


def test_fashion_system_dir(tmp_path, monkeypatch):
    data = tiny(seed=4)
    sysdir = write_mnist_dir(tmp_path / "sys", data)
    monkeypatch.setattr(mn, "FASHION_MNIST", replace(mn.FASHION_MNIST, system_dirs=(str(sysdir),)))
    assert_same(D.fashion_mnist(), data)
    with pytest.raises(FileNotFoundError, match="MNIST not found"):
        D.mnist()  # the Fashion-MNIST system dir is not searched for MNIST


def test_nothing_found_message_offline(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        D.mnist()
    msg = str(e.value)
    assert "MNIST not found" in msg and str(tmp_path / "home" / ".fastnet" / "datasets") in msg
    assert "downloads are disabled" in msg and "FASTNET_DATA" in msg and "mnist.npz" in msg
    with pytest.raises(FileNotFoundError, match=r"Fashion-MNIST not found: .*nosys"):
        D.fashion_mnist(download=False)


def test_explicit_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"path .*missing does not exist"):
        D.mnist(path=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"not all four IDX files"):
        D.mnist(path=tmp_path / "empty")


def test_npz_missing_key_and_length_mismatch(tmp_path):
    (xtr, ytr), (xte, yte) = tiny()
    p = tmp_path / "a.npz"
    np.savez(p, x_train=xtr, y_train=ytr, x_test=xte)
    with pytest.raises(ValueError, match=r"lacks arrays \['y_test'\]"):
        D.mnist(path=p)
    np.savez(p, x_train=xtr, y_train=ytr[:-1], x_test=xte, y_test=yte)
    with pytest.raises(ValueError, match=r"train: 7 images but 6 labels"):
        D.mnist(path=p)
    p.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"cannot read .* as an .npz"):
        D.mnist(path=p)


def test_corrupt_idx_in_mnist_dir(tmp_path):
    d = write_mnist_dir(tmp_path / "m", tiny())
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match=r"holds 3 images but .* holds 2 labels"):
        D.mnist(path=d)


# ---- user data -------------------------------------------------------------------------------
def test_load_npz_with_and_without_val(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        f"{a}_{s}": (rng.integers(0, 256, (4, 3, 3), dtype=np.uint8) if a == "x" else np.arange(4))
        for s in ("train", "val", "test")
        for a in ("x", "y")
    }
    np.savez(tmp_path / "v.npz", **arrays)
    tr, va, te = D.load_npz(tmp_path / "v.npz", normalize=True)
    assert tr[0].shape == (4, 1, 3, 3) and tr[0].dtype == np.float32
    np.testing.assert_allclose(va[0][:, 0], arrays["x_val"] / 255.0, rtol=1e-6)
    del arrays["x_val"], arrays["y_val"]
    np.savez(tmp_path / "nv.npz", **arrays)
    assert len(D.load_npz(tmp_path / "nv.npz")) == 2
    arrays["x_train"] = np.full((4, 2), np.nan)
    np.savez(tmp_path / "nan.npz", **arrays)
    with pytest.raises(ValueError, match=r"x_train: contains NaN or inf"):
        D.load_npz(tmp_path / "nan.npz")
    with pytest.raises(FileNotFoundError, match="load_npz: file not found"):
        D.load_npz(tmp_path / "nope.npz")


def test_from_arrays_split_is_a_partition():
    x = np.arange(50, dtype=np.float32).reshape(25, 2)
    y = np.arange(25)
    tr, va, te = D.from_arrays(x, y, validation_split=0.2, test_split=0.2, seed=3)
    assert (len(tr[0]), len(va[0]), len(te[0])) == (15, 5, 5)
    ys = np.concatenate([tr[1], va[1], te[1]])
    assert sorted(ys) == list(range(25))
    for xs, yy in (tr, va, te):
        np.testing.assert_array_equal(xs[:, 0], 2 * yy)  # pairs stay together
    again = D.from_arrays(x, y, validation_split=0.2, test_split=0.2, seed=3)
    np.testing.assert_array_equal(again[1][1], va[1])
    with pytest.raises(ValueError, match=r"from_arrays: 25 images but 24 labels"):
        D.from_arrays(x, y[:-1])
    with pytest.raises(ValueError, match=r"validation_split must be in \[0, 1\)"):
        D.from_arrays(x, y, validation_split=1.5)


# ---- downloader (file:// URLs only; never the network) ----------------------------------------
def test_fetch_checks_sha_and_tries_next_mirror(tmp_path):
    good = tmp_path / "good.bin"
    good.write_bytes(b"payload" * 100)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"tampered")
    sha = hashlib.sha256(good.read_bytes()).hexdigest()
    dest = tmp_path / "out" / "file.gz"
    download.fetch([bad.as_uri(), (tmp_path / "missing").as_uri(), good.as_uri()], dest, sha)
    assert dest.read_bytes() == good.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.gz"]  # no temporary left


def test_fetch_all_fail_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"tampered")
    dest = tmp_path / "out" / "f.gz"
    with pytest.raises(download.DownloadError, match=r"could not download f.gz: .*sha256 .* != expected 00"):
        download.fetch([bad.as_uri()], dest, "00" * 32)
    assert list(dest.parent.iterdir()) == []


def test_mnist_downloads_into_cache_when_allowed(tmp_path, monkeypatch):
    data = tiny(seed=5)
    mirror = write_mnist_dir(tmp_path / "mirror", data)
    files = {role: (base, download.sha256_file(mirror / (base + ".gz"))) for role, (base, _) in mn.MNIST.files.items()}
    spec = replace(mn.MNIST, files=files, mirrors=("file:///nonexistent/", mirror.as_uri() + "/"))
    assert_same(mn.load(spec, download=True), data)
    cached = tmp_path / "home" / ".fastnet" / "datasets" / "mnist"
    assert sorted(p.name for p in cached.iterdir()) == sorted(b + ".gz" for b, _ in files.values())
    # Now found locally: no download needed even when forbidden.
    assert_same(mn.load(spec, download=False), data)


def test_download_failure_is_reported(tmp_path):
    spec = replace(mn.MNIST, mirrors=((tmp_path / "nowhere").as_uri() + "/",))
    with pytest.raises(FileNotFoundError, match=r"MNIST not found: .*download failed \(could not download"):
        mn.load(spec, download=True)


def test_offline_env_parsing(monkeypatch):
    for value, expected in (("1", True), ("yes", True), ("0", False), ("", False), ("false", False)):
        monkeypatch.setenv("FASTNET_OFFLINE", value)
        assert download.offline() is expected
