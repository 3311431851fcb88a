"""Metrics on small hand-made cases."""

import numpy as np
import pytest

from fastnet import metrics

PRED = np.array(
    [
        [0.1, 0.7, 0.2],  # predicts 1
        [0.5, 0.3, 0.2],  # predicts 0
        [0.2, 0.3, 0.5],  # predicts 2
        [0.3, 0.4, 0.3],
    ]
)  # predicts 1
IDS = np.array([1, 2, 2, 0])  # rows 0 and 2 right


def test_accuracy_ids_and_one_hot():
    assert metrics.accuracy(PRED, IDS) == 0.5
    assert metrics.accuracy(PRED, np.eye(3)[IDS]) == 0.5
    assert metrics.accuracy(PRED, IDS.astype(np.uint8)) == 0.5
    assert metrics.accuracy(PRED, IDS.astype(np.float32)) == 0.5  # integral floats are ids
    assert type(metrics.accuracy(PRED, IDS)) is float


def test_accuracy_binary_column():
    pred = np.array([[0.9], [0.2], [0.6], [0.4]])
    assert metrics.accuracy(pred, np.array([1, 0, 0, 0])) == 0.75
    assert metrics.accuracy(pred[:, 0], np.array([[1.0], [1.0], [1.0], [0.0]])) == 0.75


def test_top_k():
    # target scores: row0 0.7 (rank 1), row1 0.2 (rank 3), row2 0.5 (rank 1), row3 0.3 (ties for 2nd)
    assert metrics.top_k_accuracy(PRED, IDS, k=1) == 0.5
    assert metrics.top_k_accuracy(PRED, IDS, k=2) == 0.75  # the tie in row 3 counts
    assert metrics.top_k_accuracy(PRED, IDS, k=3) == 1.0
    assert metrics.top_k_accuracy(PRED, np.eye(3)[IDS], k=2) == 0.75


def test_get():
    for name in ("accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy"):
        m = metrics.get(name)
        assert m.name == "accuracy" and m(PRED, IDS) == 0.5
    m = metrics.get("top_2_accuracy")
    assert m.name == "top_2_accuracy" and m(PRED, IDS) == 0.75
    assert metrics.get("top5").name == "top_5_accuracy"
    assert metrics.get("top_k_accuracy").name == "top_5_accuracy"

    def my_metric(p, t):
        return 1.0

    assert metrics.get(my_metric) is my_metric and my_metric.name == "my_metric"


def test_errors():
    with pytest.raises(ValueError, match=r"accuracy: label 3 out of range \[0, 3\)"):
        metrics.accuracy(PRED, np.array([0, 1, 3, 0]))
    with pytest.raises(
        ValueError, match=r"accuracy: expected a target with 4 rows \(pred shape \(4, 3\)\), got target shape \(3,\)"
    ):
        metrics.accuracy(PRED, IDS[:3])
    with pytest.raises(ValueError, match=r"accuracy: expected integer class ids, got non-integer values"):
        metrics.accuracy(PRED, np.array([0.5, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"accuracy: expected target of shape \(N,\) or \(N, 3\), got \(4, 2\)"):
        metrics.accuracy(PRED, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"top_k_accuracy: k must be an int in \[1, 3\] .* got 4"):
        metrics.top_k_accuracy(PRED, IDS, k=4)
    with pytest.raises(ValueError, match=r"accuracy: expected pred of shape \(N, C\) or \(N,\)"):
        metrics.accuracy(np.zeros((2, 3, 4)), np.zeros(2))
    with pytest.raises(ValueError, match=r"unknown metric 'f1'"):
        metrics.get("f1")
