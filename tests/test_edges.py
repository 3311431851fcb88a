"""Smaller hard edges of issue 9 (part 4): each a clear message or the documented behaviour."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import threading
from dataclasses import replace

import numpy as np
import pytest

import fastnet as fn
from fastnet import _atomic_write
from fastnet import layers as L
from fastnet.cli import main
from fastnet.datasets.idx import write_idx

mn = importlib.import_module("fastnet.datasets.mnist")


pytestmark = pytest.mark.usefixtures("offline")  # every test here: no network, a fresh HOME


def _mlp():
    fn.seed(0)
    m = fn.Sequential([L.Dense(4, 8), L.ReLU(), L.Dense(8, 3)])
    m.compile(optimizer="sgd", loss="softmax_cross_entropy", metrics=["accuracy"])
    return m


def _one_line(code, err, pattern):
    import re

    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), lines[0]


# ---- (N, 1) integer labels ---------------------------------------------------------------------
def test_keras_style_column_labels_are_accepted_by_fit():
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 4)).astype(np.float32), rng.integers(0, 3, 20)
    a = _mlp()
    a.fit(x, y, epochs=2, batch_size=5, verbose=0)
    b = _mlp()  # same seed, so the same weights and shuffle seed as a
    b.fit(x, y[:, None], epochs=2, batch_size=5, verbose=0)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(pa, pb)
    assert b.evaluate(x, y[:, None], return_dict=True)["accuracy"] == a.evaluate(x, y, return_dict=True)["accuracy"]
    with pytest.raises(ValueError, match=r"labels must be class ids in \[0, 3\)"):
        _mlp().fit(x, (y + 5)[:, None], epochs=1, verbose=0)


# ---- train_on_batch NaN ----------------------------------------------------------------------------
def test_train_on_batch_names_the_nan_index():
    m = _mlp()
    x = np.ones((6, 4), np.float32)
    x[2, 3] = np.nan
    before = [p.copy() for p in m.parameters()]
    with pytest.raises(ValueError, match=r"train_on_batch: x contains NaN or inf \(first at index \(2, 3\)"):
        m.train_on_batch(x, np.zeros(6, np.int64))
    for p, q in zip(m.parameters(), before, strict=True):
        np.testing.assert_array_equal(p, q)
    big = np.full((6, 4), 3e38, np.float32)  # the sum overflows, the data is finite: no false alarm
    assert np.isfinite(big).all()
    with contextlib.suppress(fn.NonFiniteLossError):  # a diverging loss is fine; a NaN-input error would not be
        m.train_on_batch(big, np.zeros(6, np.int64))


# ---- 0 or 1 training samples -----------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1])
def test_tiny_datasets_fail_clearly(tmp_path, capsys, n):
    p = tmp_path / "tiny.npz"
    np.savez(
        p,
        x_train=np.zeros((n, 4, 4), np.uint8),
        y_train=np.zeros(n, np.int64),
        x_test=np.zeros((2, 4, 4)),
        y_test=np.zeros(2),
    )
    code = main(["train", "--dataset", str(p), "--verbose", "0"])
    _one_line(code, capsys.readouterr().err, rf"has {n} training sample.*at least 2|no training samples")
    assert "zero-size" not in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least one sample"):
        _mlp().fit(np.zeros((0, 4)), np.zeros(0), verbose=0)


# ---- predict on a decompression bomb ---------------------------------------------------------------
def test_predict_on_a_decompression_bomb_is_one_line(tmp_path, capsys, monkeypatch):
    from PIL import Image

    model = tmp_path / "m.npz"
    fn.seed(0)
    fn.Sequential([L.Dense(16, 3)]).save(model)  # takes 4x4 images
    img = tmp_path / "big.png"
    Image.new("L", (64, 64)).save(img)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64*64 > 2*100: Pillow's DecompressionBombError
    code = main(["predict", str(model), str(img)])
    _one_line(code, capsys.readouterr().err, r"cannot read image .*big.png.*decompression bomb")


# ---- unwritable --out / --plot fail before training -------------------------------------------------
@pytest.mark.parametrize("option", ["--out", "--plot"])
def test_unwritable_output_fails_before_training(tmp_path, capsys, monkeypatch, option):
    import fastnet._training as T

    def no_training(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(T, "fit", no_training)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for target in (tmp_path / "missing_dir" / "m.png", blocker / "m.png", tmp_path):
        code = main(["train", "--verbose", "0", option, str(target)])
        _one_line(code, capsys.readouterr().err, rf"{option} {target}")
    assert sorted(os.listdir(tmp_path)) == ["a_file", "home"] or sorted(os.listdir(tmp_path)) == ["a_file"]


# ---- atomic save: stale temporaries, mode, directory fsync ----------------------------------------
def _dead_pid():
    pid = 2**22 - 7
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_stale_temp_of_a_killed_save_is_removed_by_the_next_save(tmp_path):
    target = tmp_path / "m.npz"
    stale = _atomic_write.temp_name(target, pid=_dead_pid())
    with open(stale, "wb") as f:
        f.write(b"PK\x03\x04 half of a model written when the saver was killed")
    alive = _atomic_write.temp_name(tmp_path / "m.npz", pid=os.getppid())  # a running writer's file stays
    with open(alive, "wb") as f:
        f.write(b"in progress")
    other = _atomic_write.temp_name(tmp_path / "other.npz", pid=_dead_pid())  # another target's: not ours
    with open(other, "wb") as f:
        f.write(b"x")
    _mlp().save(target)
    names = sorted(os.listdir(tmp_path))
    assert os.path.basename(stale) not in names
    assert os.path.basename(alive) in names and os.path.basename(other) in names
    fn.load(target)


def test_saved_file_mode_respects_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        _mlp().save(tmp_path / "a.npz")
        np.savez(tmp_path / "b.npz", x=np.zeros(1))
        os.umask(0o077)
        _mlp().save(tmp_path / "c.npz")
    finally:
        os.umask(old)
    mode = lambda p: os.stat(p).st_mode & 0o777  # noqa: E731
    assert mode(tmp_path / "a.npz") == mode(tmp_path / "b.npz") == 0o644
    assert mode(tmp_path / "c.npz") == 0o600
    os.chmod(tmp_path / "a.npz", 0o640)
    _mlp().save(tmp_path / "a.npz")  # overwriting keeps the existing file's mode, as open(..., "w") does
    assert mode(tmp_path / "a.npz") == 0o640


def test_directory_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    import stat

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        return real_fsync(fd)

    def replace_(a, b):
        events.append("rename")
        return real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace_)
    _mlp().save(tmp_path / "m.npz")
    assert events == ["fsync-file", "rename", "fsync-dir"]


# ---- the dataset cache is checked against its pinned sha256 ----------------------------------------
def test_cached_dataset_files_are_checked_against_their_pin(tmp_path):
    rng = np.random.default_rng(0)
    cache = tmp_path / "home" / ".fastnet" / "datasets" / "mnist"
    cache.mkdir(parents=True)
    arrays = {
        "train_images": rng.integers(0, 256, (5, 4, 4), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, 5).astype(np.uint8),
        "test_images": rng.integers(0, 256, (2, 4, 4), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, 2).astype(np.uint8),
    }
    files = {}
    for role, (base, _) in mn.MNIST.files.items():
        write_idx(cache / (base + ".gz"), arrays[role])
        files[role] = (base, hashlib.sha256((cache / (base + ".gz")).read_bytes()).hexdigest())
    spec = replace(mn.MNIST, files=files)
    (xtr, _), _ = mn.load(spec, download=False)  # pins match: loads
    np.testing.assert_array_equal(xtr, arrays["train_images"])
    write_idx(cache / "t10k-labels-idx1-ubyte.gz", np.zeros(2, np.uint8))  # altered after the download
    with pytest.raises(ValueError, match=r"cached file .*t10k-labels-idx1-ubyte.gz has sha256 .* expected .*delete it"):
        mn.load(spec, download=False)


# ---- use_backend is thread-local -----------------------------------------------------------------
def test_use_backend_is_thread_local():
    start = fn.get_backend()
    other = "numpy" if start == "fast" else "fast"
    inside, seen_by_other_thread = threading.Event(), []
    release = threading.Event()

    def worker():
        with fn.use_backend(other):
            inside.set()
            release.wait(10)
            seen_by_other_thread.append(fn.get_backend())

    t = threading.Thread(target=worker)
    t.start()
    assert inside.wait(10)
    assert fn.get_backend() == start  # this thread is unaffected by the other thread's block
    release.set()
    t.join()
    assert seen_by_other_thread == [other]
    with fn.use_backend(other):
        assert fn.get_backend() == other
        results = []
        th = threading.Thread(target=lambda: results.append(fn.get_backend()))
        th.start()
        th.join()
        assert results == [start]  # a new thread starts with the process-wide backend
    assert fn.get_backend() == start


# ---- --resume / load of a plain text file -----------------------------------------------------------
def test_resume_from_a_text_file_has_no_pickle_advice(tmp_path, capsys):
    p = tmp_path / "notes.npz"
    p.write_text("hello\n")
    code = main(["train", "--resume", str(p), "--verbose", "0"])
    err = capsys.readouterr().err
    _one_line(code, err, r"is not a fastnet model file")
    assert "pickle" not in err


def test_train_on_batch_refuses_nan_before_batchnorm_sees_it():
    """A model whose forward keeps state (BatchNorm's running statistics) has its data checked before
    the step: NaN never reaches the statistics. (Without such state the check runs after a non-finite
    loss, and names the index the same way.)"""
    m = fn.Sequential([L.Dense(4, 3), L.BatchNorm1d(3), L.ReLU(), L.Dense(3, 2)])
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    x = np.ones((6, 4), np.float32)
    x[4, 1] = np.inf
    before = m.state_dict()
    with pytest.raises(ValueError, match=r"train_on_batch: x contains NaN or inf \(first at index \(4, 1\)"):
        m.train_on_batch(x, np.zeros(6, np.int64))
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    y = np.full((6, 3), 1 / 3, np.float32)  # soft targets
    y[0, 1] = np.nan
    plain = _mlp()
    with pytest.raises(ValueError, match=r"train_on_batch: y contains NaN or inf \(first at index \(0, 1\)"):
        plain.train_on_batch(np.ones((6, 4), np.float32), y)
