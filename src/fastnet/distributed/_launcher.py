"""What the MPI launcher told this process, read from its environment without importing MPI.

``mpirun``/``mpiexec``/``srun`` export the job's size and this process's rank before Python
starts. Reading them first lets ``fastnet.distributed.init()`` stay a no-op (no mpi4py import,
no MPI initialisation) in a plain one-process run, and lets it fail clearly when a job of
several ranks was launched without mpi4py installed (each rank would otherwise silently train
the whole model on its own and all of them would write the same files).
"""

from __future__ import annotations

import os

# The job size per launcher family; the first one set wins. (Not SLURM_NTASKS: a batch script
# running one plain python process sees it too; srun with an MPI plugin sets PMI_SIZE.)
_SIZE_VARS = (
    "OMPI_COMM_WORLD_SIZE",  # Open MPI
    "PMI_SIZE",  # MPICH, Intel MPI (Hydra), srun --mpi=pmi2
    "MV2_COMM_WORLD_SIZE",  # MVAPICH2
)


def _int_env(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def launched_size() -> int:
    """The number of ranks the launcher started (1 when no MPI launcher is in the environment)."""
    for size_var in _SIZE_VARS:
        n = _int_env(size_var)
        if n is not None and n >= 1:
            return n
    return 1
