"""Parallel HDF5 store under a real mpiexec (run by tools/test.sh with 1, 2 and 3 ranks)."""

from __future__ import annotations

import numpy as np
import pytest

from prodampi.parallel.comm import World
from prodampi.parallel.h5store import DatasetSpec, H5Store

pytestmark = pytest.mark.mpi


def _rows_for(rank: int, size: int, n: int) -> np.ndarray:
    """Rows of rank ``rank``: round-robin, and the last rank (of >= 2) writes nothing at all."""
    if size > 1 and rank == size - 1:
        return np.zeros(0, dtype=np.int64)
    writers = size - 1 if size > 1 else 1
    return np.arange(rank, n, writers)


def expected(n: int, ncol: int) -> np.ndarray:
    return np.sin(np.arange(n * ncol, dtype=np.float64)).reshape(n, ncol) * 1e3


@pytest.mark.parametrize("collective", [False, True])
def test_write_read_back_exact(mpi_tmp_path, collective):
    world = World()
    n, ncol = 37, 5
    path = mpi_tmp_path / f"store_{collective}.h5"
    store = H5Store.create(path, world, {"x": DatasetSpec((n, ncol), "f8", np.nan),
                                         "status": DatasetSpec((n,), "i1", -1)}, attrs={"who": "test"})
    rows = _rows_for(world.rank, world.size, n)
    exp = expected(n, ncol)
    # non-contiguous, unsorted rows from each rank
    perm = rows[::-1].copy()
    if collective or rows.size:
        store.write_rows("x", perm, exp[perm], collective=collective)
        store.write_rows("status", perm, np.zeros(perm.size, dtype=np.int8), collective=collective)
    store.mark_done(rows)
    done = store.checkpoint()
    assert np.array_equal(done, np.arange(n))
    store.close()

    store = H5Store.open(path, world, mode="r")
    assert np.array_equal(store.read_rows("x", slice(None)), exp)  # bit-exact
    assert np.all(store.read_rows("status", slice(None)) == 0)
    assert np.array_equal(store.done, np.arange(n))
    assert store.file.attrs["who"] == "test"
    sub = np.array([5, 1, 30])
    assert np.array_equal(store.read_rows("x", sub), exp[sub])
    store.close()


def test_ledger_resume_only_recorded_units(mpi_tmp_path):
    world = World()
    n = 24
    path = mpi_tmp_path / "resume.h5"
    store = H5Store.create(path, world, {"x": DatasetSpec((n,), "f8", np.nan)})
    rows = _rows_for(world.rank, world.size, n)
    first, second = rows[: rows.size // 2], rows[rows.size // 2:]
    if first.size:
        store.write_rows("x", first, first * 2.0)
    store.mark_done(first)
    done1 = store.checkpoint()
    if second.size:  # written but never checkpointed: must not appear in the ledger
        store.write_rows("x", second, second * 2.0)
    store.close()
    store = H5Store.open(path, world)
    assert np.array_equal(store.done, done1)
    all_first = np.sort(np.concatenate(world.allgather(first)))
    assert np.array_equal(store.done, all_first)
    todo = np.setdiff1d(rows, store.done)
    assert np.array_equal(todo, np.sort(second))
    store.close()


def test_rank_with_nothing_takes_part_in_collectives(mpi_tmp_path):
    world = World()
    path = mpi_tmp_path / "empty.h5"
    store = H5Store.create(path, world, {"x": DatasetSpec((4, 2), "f4", 0.0)})
    mine = np.array([world.rank]) if world.rank < 4 and world.rank == 0 else np.zeros(0, dtype=np.int64)
    store.write_rows("x", mine, np.ones((mine.size, 2), "f4"), collective=True)
    store.checkpoint()
    store.close()
    store = H5Store.open(path, world, "r")
    x = store.read_rows("x", slice(None))
    store.close()
    assert x[0].tolist() == [1.0, 1.0] and np.all(x[1:] == 0)
