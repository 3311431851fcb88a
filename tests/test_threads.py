"""The thread count: results that do not depend on it (blocked GEMM, single-threaded BLAS), and the
automatic count that follows the machine's load. Speed itself is measured in benchmarks/bench_busy.py."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import fastnet as fn
from fastnet import layers as L
from fastnet._kernels import threads
from fastnet._kernels.fast import _extension, gemm


@pytest.mark.parametrize(
    "shape",
    # odd shapes, and the models' own: M1's forward / weight / input gradients, M4's dense 9216->128, LeNet's
    [
        (257, 300, 129),
        (33, 1000, 517),
        (128, 784, 512),
        (784, 128, 512),
        (128, 512, 784),
        (128, 9216, 128),
        (9216, 128, 128),
        (256, 400, 120),
        (1000, 77, 130),
        (128, 128, 9216),
        (64, 300, 1000),
    ],
)
def test_blocked_matmul_is_the_same_at_every_thread_count(keep_threads, shape):
    m, k, n = shape
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    assert m * n * k >= gemm.MIN_WORK  # the blocked path
    outs = []
    for count in (1, 2, 3, 4):
        fn.set_num_threads(count)
        for left, right in ((a, b), (np.asfortranarray(a), b), (a.T.copy().T, b), (a, np.asfortranarray(b))):
            out = np.empty((m, n), np.float32)
            gemm.matmul(left, right, out)
            outs.append(out)
    for out in outs[1:]:
        assert np.array_equal(out, outs[0])
    np.testing.assert_allclose(outs[0], a.astype(np.float64) @ b.astype(np.float64), rtol=1e-4, atol=1e-3)


def test_the_first_small_product_already_runs_on_a_single_threaded_blas():
    """A small product (one call, no task) limits BLAS to one thread, in a process where nothing else did yet:
    otherwise it ran on OpenBLAS's own threads, whose rounding follows their count (a resumed CLI run differed)."""
    import ast
    import subprocess
    import sys

    code = (
        "import fastnet, numpy as np; from threadpoolctl import threadpool_info; "
        "from fastnet._kernels.fast import gemm; "
        "gemm.dot(np.ones((32, 289), np.float32), np.ones((289, 128), np.float32), np.empty((32, 128), np.float32)); "
        "print([i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    counts = ast.literal_eval(out)
    assert counts and all(c == 1 for c in counts)


def test_blocked_matmul_works_in_a_forked_child(keep_threads):
    import os

    fn.set_num_threads(2)
    a = np.ones((64, 512), np.float32)
    b = np.ones((512, 256), np.float32)
    gemm.matmul(a, b, np.empty((64, 256), np.float32))  # the parent's pool threads exist now
    pid = os.fork()
    if pid == 0:  # the child: a new pool, not the parent's (whose threads it does not have)
        ok = np.all(gemm.matmul(a, b, np.empty((64, 256), np.float32)) == 512)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0


def test_blas_runs_single_threaded(keep_threads):
    fn.set_num_threads(2)
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    assert blas and all(i["num_threads"] == 1 for i in blas)


def test_training_is_bit_identical_at_any_thread_count(keep_threads):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((256, 784)).astype(np.float32)
    y = rng.integers(0, 10, 256)
    states = []
    for count in (1, 2):
        fn.set_num_threads(count)
        fn.seed(0)
        model = fn.Sequential([L.Dense(784, 512), L.ReLU(), L.Dense(512, 10)])
        model.compile(optimizer="rmsprop", loss="softmax_cross_entropy")
        model.fit(x, y, epochs=1, batch_size=128, verbose=0)
        states.append(model.state_dict())
    for k in states[0]:
        assert np.array_equal(states[0][k], states[1][k]), k


@pytest.mark.skipif(not _extension.load("_fpenv").supported(), reason="no flush-to-zero mode on this CPU")
def test_gemm_pool_threads_follow_flush_to_zero(keep_threads):
    fn.set_num_threads(2)
    a = np.full((256, 256), 0x00400000, np.uint32).view(np.float32)  # subnormal
    b = np.full((256, 256), 1e30, np.float32)
    out = np.empty((256, 256), np.float32)
    try:
        fn.set_flush_denormals(True)
        assert np.all(gemm.matmul(a, b, out) == 0)  # every block read the subnormals as 0
        fn.set_flush_denormals(False)
        assert np.all(gemm.matmul(a, b, out) > 0)
    finally:
        fn.set_flush_denormals(True)


def test_choose_leaves_the_busy_cores_to_the_others():
    assert threads.choose(0.0, 2) == 2
    assert threads.choose(0.3, 2) == 2
    assert threads.choose(1.0, 2) == 1  # one core busy: one thread, on the free core
    assert threads.choose(1.0, 8) == 7
    # oversubscribed (others want every core): time is shared per thread, so use them all
    assert threads.choose(1.6, 2) == 2
    assert threads.choose(12.0, 2) == 2


def test_others_busy_since_subtracts_this_process(monkeypatch):
    stats = iter([(1000, 2000, 2), (1150, 2200, 2)])  # 150 busy jiffies of 200 over 2 CPUs
    own = iter([10.0, 10.5])  # of which this process used 0.5 s = 50 jiffies
    monkeypatch.setattr(threads, "_proc_stat", lambda: next(stats))
    monkeypatch.setattr(threads, "_own_cpu_seconds", lambda: next(own))
    monkeypatch.setattr(threads.os, "sysconf", lambda name: 100)
    snap = threads._snapshot()
    assert threads.others_busy_since(snap) == pytest.approx(2 * 100 / 200)  # others: 1 CPU


def test_automatic_count_follows_the_load(keep_threads, monkeypatch):
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    monkeypatch.setattr(threads, "others_busy_now", lambda: 0.0)
    fn.set_num_threads(None)
    assert threads.automatic() and fn.get_num_threads() == 2
    monkeypatch.setattr(threads, "others_busy_since", lambda snap: 1.0)  # another process took a core
    threads.tick()
    assert fn.get_num_threads() == 2  # not re-decided within CHECK_EVERY
    age(threads.CHECK_EVERY + 0.1)
    threads.tick()
    assert fn.get_num_threads() == 1
    fn.set_num_threads(2)  # a fixed count is never changed
    age(threads.CHECK_EVERY + 0.1)
    threads.tick()
    assert not threads.automatic() and fn.get_num_threads() == 2


def age(seconds):
    """Make the last load sample ``seconds`` older."""
    t, *rest = threads._state["since"]
    threads._state["since"] = (t - seconds, *rest)


def test_environment_fixes_the_count(keep_threads, monkeypatch):
    monkeypatch.setenv("FASTNET_NUM_THREADS", "1")
    threads._state.update(n=None, auto=False)
    assert fn.get_num_threads() == 1 and not threads.automatic()
    monkeypatch.setenv("FASTNET_NUM_THREADS", "zero")
    threads._state.update(n=None, auto=False)
    with pytest.raises(ValueError, match="FASTNET_NUM_THREADS must be a positive integer, got 'zero'"):
        fn.get_num_threads()
    with pytest.raises(ValueError, match="n must be a positive int or None"):
        fn.set_num_threads(0)


def test_load_sample_reads_the_run_queue():
    assert threads.others_busy_now(samples=3, gap=0.0) >= 0.0
