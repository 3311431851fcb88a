"""Per-step hooks for the training loop: agree on the loss, sum the gradients, split the batch.

Each hook returns at once (its input unchanged) when training is not distributed, so the loop
calls them unconditionally.

Why the update equals one process's on the global batch: with B samples split as n_r per
rank, a "mean"/"batchmean" loss over the global batch is L = sum_r (n_r / B) L_r, where L_r is
rank r's loss on its slice; a "sum" loss is L = sum_r L_r. So each rank scales its gradient by
w_r = n_r / B (or 1 for "sum") while packing it, and an in-place Allreduce(SUM) leaves
dL/dparams on every rank: the optimizer then makes the same update everywhere, with the same
clipping and weight decay as one process. The loss itself is reduced the same way, first, in
one small float64 reduction that also tells each rank B; a NaN or inf on any rank makes the
reduced loss non-finite on all of them, so all ranks skip the same update (none is left
waiting in a reduction the others skipped).
"""

from __future__ import annotations

import time
import weakref

from . import comm
from .flat import FlatBuffers

__all__ = ["local_range", "agree_loss", "global_batch_loss", "reduce_gradients", "reducer_stats"]


class GradientReducer:
    """One model's flat gradient buffers, the weight of this rank's share of the current batch,
    and counters (steps, bytes reduced, seconds in the reduction and in the copies)."""

    def __init__(self):
        self.flat: FlatBuffers | None = None
        self.weight = 1.0
        self.stats = {"steps": 0, "bytes": 0, "reduce_seconds": 0.0, "copy_seconds": 0.0}

    def reduce(self, grads) -> None:
        if self.flat is None or not self.flat.matches(grads):
            self.flat = FlatBuffers(grads)
        c, MPI = comm.communicator(), comm.mpi()
        t0 = time.perf_counter()
        self.flat.pack(grads, self.weight)
        t1 = time.perf_counter()
        if len(self.flat.buffers) == 1:
            c.Allreduce(MPI.IN_PLACE, self.flat.buffers[0], op=MPI.SUM)
        else:  # all buckets in flight at once, issued in the same order on every rank
            MPI.Request.Waitall([c.Iallreduce(MPI.IN_PLACE, b, op=MPI.SUM) for b in self.flat.buffers])
        t2 = time.perf_counter()
        self.flat.unpack(grads)
        t3 = time.perf_counter()
        s = self.stats
        s["steps"] += 1
        s["bytes"] += self.flat.nbytes
        s["reduce_seconds"] += t2 - t1
        s["copy_seconds"] += (t1 - t0) + (t3 - t2)


_reducers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _reducer(model) -> GradientReducer:
    r = _reducers.get(model)
    if r is None:
        r = _reducers[model] = GradientReducer()
    return r


def reducer_stats(model) -> dict:
    """Counters of ``model``'s gradient reductions so far (all zero when not distributed)."""
    return dict(_reducer(model).stats)


def local_range(n: int) -> tuple[int, int]:
    """This rank's contiguous slice ``[lo, hi)`` of a global batch of ``n`` samples.

    Slices are balanced (sizes differ by at most one) and cover the batch in rank order, so a
    short last batch is split the same way; a rank's slice is empty when ``n`` < ranks.
    """
    if not comm.active():
        return 0, n
    r, p = comm.rank(), comm.size()
    return n * r // p, n * (r + 1) // p


def loss_reduction(loss) -> str:
    """How a loss reduces over the batch: its ``reduction``, else "mean" (a per-sample mean)."""
    return getattr(loss, "reduction", "mean")


def agree_loss(model, loss: float, n_local: int) -> float:
    """The global batch's loss from this rank's ``loss`` on its ``n_local`` samples (collective).

    Also records this rank's gradient weight for ``reduce_gradients``. Pass ``loss=0.0`` with
    ``n_local=0`` on a rank whose slice is empty; it must still take part.
    """
    if not comm.active():
        return loss
    loss, n_global = global_batch_loss(model.loss, loss, n_local)
    _reducer(model).weight = 1.0 if loss_reduction(model.loss) == "sum" else n_local / n_global
    return loss


def global_batch_loss(loss_fn, loss: float, n_local: int) -> tuple[float, int]:
    """``(loss of the global batch, its sample count)`` from this rank's ``loss`` on ``n_local``
    samples (collective; ``loss`` is ignored when ``n_local`` is 0)."""
    if not comm.active():
        return loss, n_local
    is_sum = loss_reduction(loss_fn) == "sum"
    contribution = 0.0 if n_local == 0 else (loss if is_sum else loss * n_local)
    total, n_global = comm.allreduce_sum([contribution, n_local])
    if n_global == 0:
        raise ValueError("fastnet.distributed: a batch with no samples on any rank")
    return float(total if is_sum else total / n_global), int(n_global)


def reduce_gradients(model, grads) -> None:
    """Replace each array of ``grads`` (this rank's gradients, in the same order on every rank) by
    the global batch's gradient, in place (collective; after ``agree_loss`` of the same step)."""
    if not comm.active() or not grads:
        return
    _reducer(model).reduce(list(grads))
