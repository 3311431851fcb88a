"""fastnet's task team (``_kernels/tasks.py``): every task once, errors reach the caller, no nested
teams, and the convolution built on it gives the same bits at every thread count."""

import threading

import numpy as np
import pytest

import fastnet as fn
from fastnet._kernels import parallel, tasks
from fastnet._kernels.fast import conv


@pytest.mark.parametrize("count", [1, 2, 3])
def test_every_task_runs_exactly_once(keep_threads, count):
    fn.set_num_threads(count)
    seen, lock = [], threading.Lock()

    def task(i):
        with lock:
            seen.append(i)

    tasks.run(task, 37)
    assert sorted(seen) == list(range(37))


def test_an_error_in_a_task_reaches_the_caller(keep_threads):
    fn.set_num_threads(2)

    def task(i):
        if i == 5:
            raise ValueError("task 5 failed")

    with pytest.raises(ValueError, match="task 5 failed"):
        tasks.run(task, 16)


def test_kernels_inside_a_task_are_serial_and_teams_do_not_nest(keep_threads):
    fn.set_num_threads(2)
    inner = []

    def task(i):
        inner.append((parallel.omp_threads(1 << 30), tasks.team(8)))

    tasks.run(task, 4)
    assert inner and all(t == (1, 1) for t in inner)
    assert parallel.omp_threads(1 << 30) == 2  # outside the tasks again


def test_a_user_thread_never_starts_a_team(keep_threads):
    fn.set_num_threads(2)
    out = []
    t = threading.Thread(target=lambda: out.append(tasks.team(8)))
    t.start()
    t.join()
    assert out == [1]


@pytest.mark.parametrize(
    "shape,act",
    [
        ((37, 32, 13, 13, 64, 3, 1), None),  # wide path, odd batch: a short last chunk
        ((37, 32, 13, 13, 64, 3, 1), "relu"),
        ((19, 3, 17, 15, 6, 5, 2), None),  # stacked path (few filters), non-square input, stride 2
        ((1, 4, 9, 9, 20, 3, 1), "relu"),  # batch 1: one chunk
    ],
)
def test_convolution_is_the_same_at_every_thread_count(keep_threads, shape, act):
    n, c, h, w, f, k, s = shape
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = (0.2 * rng.standard_normal((f, c, k, k))).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    results = []
    for count in (1, 2, 3):
        fn.set_num_threads(count)
        y = conv.conv2d_forward(x, wt, b, (s, s), (1, 1), act=act)
        dy = np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape)
        results.append((y, *conv.conv2d_backward(dy, x, wt, (s, s), (1, 1), act=act, y=y)))
    for other in results[1:]:
        for a, b_ in zip(results[0], other, strict=True):
            assert np.array_equal(a, b_)
