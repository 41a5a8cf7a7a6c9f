"""MPI job used by test_mpi_jobs.py: write + checkpoint twice, then write more and die by SIGKILL.

Usage: mpiexec -n 3 python _ledger_kill_job.py PATH MODE
MODE = between  (SIGKILL every rank after writing rows that were never checkpointed)
     | during   (SIGKILL rank 0 halfway through the 4th ledger write = 3rd checkpoint: PRODAMPI_FAULT=...#4)
"""

import os
import signal
import sys

import numpy as np

from prodampi.parallel.comm import World
from prodampi.parallel.h5store import DatasetSpec, H5Store

N_UNITS, PER_STEP = 30, 6


def value(units: np.ndarray) -> np.ndarray:
    return np.stack([units * 1.25, -units.astype(float)], axis=1)


def main() -> None:
    path, mode = sys.argv[1], sys.argv[2]
    world = World()
    store = H5Store.create(path, world, {"v": DatasetSpec((N_UNITS, 2), "f8", np.nan)})
    writers = max(world.size - 1, 1)  # the last rank never writes anything
    for step in range(3):
        units = np.arange(step * PER_STEP, (step + 1) * PER_STEP)
        mine = units[units % writers == world.rank] if world.rank < writers else units[:0]
        if mine.size:
            store.write_rows("v", mine, value(mine))
        store.mark_done(mine)
        if step < 2:
            store.checkpoint(info={"step": step})
            world.barrier()
            continue
        if mode == "between":
            world.barrier()
            os.kill(os.getpid(), signal.SIGKILL)
        else:  # "during": PRODAMPI_FAULT=kill:ledger_before_replace kills rank 0 inside this update
            store.checkpoint(info={"step": step})
    store.close()


if __name__ == "__main__":
    main()
