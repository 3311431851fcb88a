"""Resume is exact: N + M epochs in one go equal N epochs, save, load in a NEW process, M more.

Covers what arrays and optimizer state alone do not: a DataLoader with ``seed=None``, schedule
objects (StepLR, ExponentialLR, CosineAnnealingLR, ReduceLROnPlateau) and stateful callbacks
(ReduceLROnPlateau, EarlyStopping, ModelCheckpoint's best), a checkpoint written mid-run, the CLI.
"""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastnet as fn
from fastnet import callbacks as C
from fastnet import optim
from fastnet.cli import main

sys.path.insert(0, str(Path(__file__).parent))
import resume_worker as W  # noqa: E402

SRC = Path(fn.__file__).resolve().parent.parent


def python(args, **env):
    full_env = {**os.environ, "PYTHONPATH": str(SRC), "FASTNET_OFFLINE": "1", **env}
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full_env, timeout=300)
    assert r.returncode == 0, r.stderr
    return r


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert np.array_equal(sa[k], sb[k]), k
    oa, ob = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert oa.keys() == ob.keys()
    for k in oa:
        assert np.array_equal(oa[k], ob[k]), k


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every setup: the uninterrupted run, and the resumed one (first part here, rest in a new process)."""
    d = tmp_path_factory.mktemp("resume")
    full, firsts = {}, {}
    for setup in W.SETUPS:
        (d / "full").mkdir(exist_ok=True)
        full[setup] = W.first(setup, d / "full", W.N + W.M)
        model, firsts[setup] = W.first(setup, d, W.N)
        model.save(d / f"{setup}-first.npz")
    python([str(Path(W.__file__)), "rest", str(d)])
    rest = {s: (fn.load(d / f"{s}-rest.npz"), json.loads((d / f"{s}-rest.json").read_text())) for s in W.SETUPS}
    return full, firsts, rest


@pytest.mark.parametrize("setup", W.SETUPS)
def test_resumed_in_a_new_process_is_bit_identical(runs, setup):
    full, firsts, rest = runs
    full_model, full_info = full[setup]
    rest_model, rest_info = rest[setup]
    assert_same_weights(full_model, rest_model)
    assert rest_model.epochs_trained == full_model.epochs_trained
    # the epochs after the save ran with the same logs and learning rates, and stopped at the same epoch
    n_first = len(firsts[setup]["epoch"])
    assert rest_info["epoch"] == full_info["epoch"][n_first:]
    for key, values in full_info["history"].items():
        assert rest_info["history"][key] == values[n_first:], key
    assert rest_info["lr"] == full_info["lr"]
    # ModelCheckpoint(save_best_only) wrote exactly the files the uninterrupted run wrote after epoch N
    assert rest_info["saved"] == sorted(set(full_info["saved"]) - set(firsts[setup]["saved"]))


def test_the_setups_depend_on_the_saved_state(runs):
    """Each setup would differ if its state were not restored (so the test above can fail)."""
    full, _, _ = runs
    assert full["early_stopping"][1]["epoch"] == [0, 1, 2, 3, 4]  # stops after the save
    assert full["checkpoint_best"][1]["saved"] == ["best-1.npz", "best-2.npz"]  # nothing better after
    lrs = full["plateau_callback"][1]["history"]["lr"]
    assert len(set(lrs[W.N :])) > 1  # the rate still changes after the save


def test_checkpoint_mid_run_holds_the_state_of_callbacks_after_it(tmp_path):
    """ModelCheckpoint first in the list: its file, written mid-run, still holds the epoch's final
    state of the callbacks after it (it writes once every on_epoch_end has run)."""
    (x, y), val = W.data()
    fn.seed(0)
    full = W.build()
    (tmp_path / "a").mkdir()
    full.fit(
        x,
        y,
        epochs=6,
        batch_size=8,
        validation_data=val,
        callbacks=W.mid_run_callbacks(full, tmp_path / "a"),
        verbose=0,
    )
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1])\n"
        "import resume_worker as W, fastnet as fn\n"
        "(x, y), val = W.data(); fn.seed(7); m = fn.load(sys.argv[2])\n"
        "m.fit(x, y, epochs=6, initial_epoch=m.epochs_trained, batch_size=8, validation_data=val,\n"
        "      callbacks=W.mid_run_callbacks(m, Path(sys.argv[3])), verbose=0)\n"
        "m.save(sys.argv[4])\n"
    )
    (tmp_path / "b").mkdir()
    ck3, out = tmp_path / "a" / "ck3.npz", tmp_path / "r.npz"
    python(["-c", code, str(Path(W.__file__).parent), str(ck3), str(tmp_path / "b"), str(out)])
    assert_same_weights(full, fn.load(out))


def test_continuing_in_the_same_process_is_identical_too():
    (x, y), val = W.data()
    fn.seed(0)
    one = W.build()
    one.fit(x, y, epochs=6, batch_size=8, callbacks=W.callbacks("plateau_callback", one, "."), verbose=0)
    fn.seed(0)
    two = W.build()
    two.fit(x, y, epochs=3, batch_size=8, callbacks=W.callbacks("plateau_callback", two, "."), verbose=0)
    two.fit(
        x, y, epochs=6, initial_epoch=3, batch_size=8, callbacks=W.callbacks("plateau_callback", two, "."), verbose=0
    )
    assert_same_weights(one, two)


def test_cli_resume_in_a_new_process_is_bit_identical(tmp_path):
    common = ["--limit", "300", "--verbose", "0", "--lr", "0.01", "--batch-size", "32"]
    assert main(["train", "--epochs", "3", "--out", str(tmp_path / "full.npz"), *common]) == 0
    assert main(["train", "--epochs", "2", "--out", str(tmp_path / "first.npz"), *common]) == 0
    resume = ["train", "--resume", str(tmp_path / "first.npz"), "--epochs", "1", "--seed", "5"]
    python(["-m", "fastnet", *resume, "--out", str(tmp_path / "rest.npz"), *common])
    rest = fn.load(tmp_path / "rest.npz")
    assert rest.epochs_trained == 3
    assert_same_weights(fn.load(tmp_path / "full.npz"), rest)


def test_loader_without_seed_follows_the_model_and_explicit_seeds_are_kept():
    (x, y), _ = W.data()
    fn.seed(0)
    model = W.build()
    free, fixed = fn.DataLoader(x, y, batch_size=8), fn.DataLoader(x, y, batch_size=8, seed=3)
    model.fit(free, epochs=1, verbose=0)
    model.fit(fixed, epochs=1, verbose=0)
    assert free.seed == model.shuffle_seed and fixed.seed == 3
    alone = fn.DataLoader(x, y, batch_size=8)  # used outside fit: a seed from fastnet.random at first use
    fn.seed(4)
    s = alone.seed
    fn.seed(4)
    assert fn.DataLoader(x, y, batch_size=8).seed == s


def test_saved_fit_state_is_validated(tmp_path):
    import zipfile

    (x, y), val = W.data()
    fn.seed(0)
    model = W.build()
    model.fit(x, y, epochs=2, callbacks=W.callbacks("early_stopping", model, "."), verbose=0)
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        arrays = {k: f[k] for k in f.files}
    config = json.loads(str(arrays["config"][()]))
    assert config["fit_state"]["epoch"] == 2
    assert [e["class"] for e in config["fit_state"]["callbacks"]] == ["EarlyStopping"]

    def write(doc):
        bad = dict(arrays, config=np.array(json.dumps(dict(config, fit_state=doc))))
        np.savez(tmp_path / "bad.npz", **bad)
        return tmp_path / "bad.npz"

    entry = config["fit_state"]["callbacks"][0]
    for doc, field in [
        ({"epoch": -1, "callbacks": []}, r"fit_state\.epoch"),
        ({"epoch": 2, "callbacks": {}}, r"fit_state\.callbacks"),
        ({"epoch": 2, "callbacks": [dict(entry, index="0")]}, r"fit_state\.callbacks\[0\]\.index"),
        ({"epoch": 2, "callbacks": [dict(entry, state={"best": {"a": 1}})]}, r"callbacks\[0\]\.state\.best"),
    ]:
        with pytest.raises(ValueError, match=field):
            fn.load(write(doc))
    assert zipfile.is_zipfile(tmp_path / "bad.npz")
    # fields the structure check lets through are checked by the callback when a fit restores them
    loaded = fn.load(write({"epoch": 2, "callbacks": [dict(entry, state=dict(entry["state"], wait=-3))]}))
    with pytest.raises(ValueError, match=r"cannot restore the saved state of EarlyStopping #0.*wait must be an int"):
        loaded.fit(x, y, epochs=3, initial_epoch=2, callbacks=W.callbacks("early_stopping", loaded, "."), verbose=0)
    loaded = fn.load(tmp_path / "m.npz")
    with pytest.raises(ValueError, match=r"monitors 'score' in mode 'min', this callback monitors 'loss'"):
        loaded.fit(x, y, epochs=3, initial_epoch=2, callbacks=[C.EarlyStopping(monitor="loss")], verbose=0)


def test_schedule_on_another_optimizer_is_refused():
    (x, y), _ = W.data()
    model = W.build()
    sched = optim.StepLR(optim.SGD(lr=0.1), step_size=1)
    with pytest.raises(ValueError, match="the schedule drives another optimizer than the model's"):
        model.fit(x, y, epochs=1, callbacks=[C.LearningRateScheduler(sched)], verbose=0)


def test_early_stopping_warns_when_best_weights_predate_the_resume(tmp_path):
    (x, y), _ = W.data()
    fn.seed(0)
    model = W.build()
    es = lambda: [W.Score(), C.EarlyStopping(monitor="score", patience=10, restore_best_weights=True)]  # noqa: E731
    model.fit(x, y, epochs=3, callbacks=es(), verbose=0)
    model.save(tmp_path / "m.npz")
    loaded = fn.load(tmp_path / "m.npz")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded.fit(x, y, epochs=5, initial_epoch=3, callbacks=es(), verbose=0)
    assert any("best weights (epoch 2) are from before this resumed fit" in str(w.message) for w in caught)
