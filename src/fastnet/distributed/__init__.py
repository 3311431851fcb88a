"""Data-parallel training over MPI (mpi4py): ``mpirun -n N`` runs one ``fit`` as N cooperating ranks.

>>> import fastnet as fn
>>> fn.distributed.init()                      # no-op without an MPI launcher or with one rank
>>> model.fit(x, y, epochs=3, batch_size=128)  # batch_size is the GLOBAL batch

What is equal to one process on the same global batches (up to floating-point summation order):
the starting weights (broadcast from rank 0), the shuffle order, every update, for the losses'
"mean", "sum" and "batchmean" reductions, and the logged loss and metrics (exact sums and
counts, reduced over ranks). What is not: BatchNorm normalises each rank's slice with that
slice's own statistics (per-rank, like PyTorch's DDP without SyncBatchNorm); its running
statistics are averaged over ranks at the end of every epoch, so all ranks hold the same ones.
Only rank 0 prints, saves checkpoints and writes CSV logs; every rank stops on the same batch
or epoch.

Without mpi4py, or with one rank, nothing here imports MPI and fit behaves exactly as before.
"""

from .comm import abort, active, barrier, init, is_main, rank, size
from .loop import agree_stop, end_epoch, quiet, rank_callbacks, reduce_totals, start_fit
from .step import agree_loss, global_batch_loss, local_range, reduce_gradients, reducer_stats
from .sync import average_buffers, broadcast_model, check_same_model

__all__ = [
    "init",
    "active",
    "rank",
    "size",
    "is_main",
    "barrier",
    "abort",
    "start_fit",
    "rank_callbacks",
    "quiet",
    "reduce_totals",
    "agree_stop",
    "end_epoch",
    "agree_loss",
    "global_batch_loss",
    "local_range",
    "reduce_gradients",
    "reducer_stats",
    "average_buffers",
    "broadcast_model",
    "check_same_model",
]
