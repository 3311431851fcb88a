"""Per-fit hooks: same start, rank-0-only output, exact metric totals, agreed stops, equal buffers.

Like the step hooks, each returns its input unchanged when training is not distributed.
"""

from __future__ import annotations

import contextlib
import os

from . import comm
from .sync import average_buffers, broadcast_model, check_same_model

__all__ = ["start_fit", "rank_callbacks", "quiet", "reduce_totals", "end_epoch", "agree_stop", "MAIN_RANK_ONLY"]

# Callbacks that write files: run on rank 0 only (a callback class may also set
# ``main_rank_only = True``). Every other callback runs on every rank: a learning-rate
# schedule must change every rank's optimizer, and EarlyStopping sees the same reduced logs
# everywhere, so every rank stops on the same epoch.
MAIN_RANK_ONLY = ("ModelCheckpoint", "CSVLogger", "TensorBoard")


def start_fit(model, where: str = "fit") -> None:
    """Check every rank built the same model, then copy rank 0's weights, buffers and shuffle seed."""
    if not comm.active():
        return
    check_same_model(model, where)
    broadcast_model(model)


def rank_callbacks(callbacks):
    """The callbacks this rank runs: all on rank 0; on the others, all but the file writers."""
    if not comm.active() or comm.is_main() or not callbacks:
        return callbacks
    return [
        cb for cb in callbacks if not getattr(cb, "main_rank_only", False) and type(cb).__name__ not in MAIN_RANK_ONLY
    ]


def quiet():
    """A context in which only rank 0 prints: the other ranks' stdout goes to /dev/null."""
    if not comm.active() or comm.is_main():
        return contextlib.nullcontext()
    return _devnull_stdout()


@contextlib.contextmanager
def _devnull_stdout():
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def reduce_totals(sums: dict, n: int, keys) -> tuple[dict, int]:
    """Sum per-rank running totals (``sums[key]`` and the sample count ``n``) over ranks, so means
    are exact (total over total, not a mean of per-rank means). ``keys`` fixes the order; a key
    a rank never saw counts as 0 there."""
    if not comm.active():
        return sums, n
    keys = list(keys)
    reduced = comm.allreduce_sum([float(sums.get(k, 0.0)) for k in keys] + [float(n)])
    return dict(zip(keys, (float(v) for v in reduced[:-1]), strict=True)), int(round(reduced[-1]))


def agree_stop(model) -> bool:
    """``model.stop_training`` becomes true on every rank if a callback set it on any (collective)."""
    if comm.active():
        model.stop_training = comm.any_true(model.stop_training)
    return model.stop_training


def end_epoch(model) -> None:
    """Average the buffers (BatchNorm running statistics: each rank normalised with its own batch
    statistics) so validation and checkpoints use the same statistics on every rank."""
    if comm.active():
        average_buffers(model)
