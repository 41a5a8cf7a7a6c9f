"""``prodampi selftest``: does this installation run MPI, parallel HDF5, netCDF4 and torch together?

Run it the way jobs run, e.g. ``mpiexec -n 4 prodampi selftest``.  Every check runs in this one process, on
every rank; the result is agreed collectively and printed by rank 0.  Exit status 0 only when all pass.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .parallel.comm import World
from .parallel.faults import fault_point

log = logging.getLogger(__name__)


def _check_mpi(world: World, tmp: Path) -> str:
    total = world.allreduce_sum(world.rank)
    assert total == world.size * (world.size - 1) // 2, f"allreduce gave {total}"
    right, left = (world.rank + 1) % world.size, (world.rank - 1) % world.size
    got = world.comm.sendrecv(world.rank, dest=right, source=left)
    assert got == left, f"ring exchange gave {got}, expected {left}"
    from mpi4py import MPI

    return f"{world.size} rank(s), {MPI.Get_library_version().splitlines()[0].strip()}"


def _check_hdf5(world: World, tmp: Path) -> str:
    import h5py

    from .parallel.h5store import DatasetSpec, H5Store

    assert h5py.get_config().mpi, "h5py is not built with MPI"
    n_per, ncol = 3, 4
    nrows = n_per * world.size
    path = tmp / "selftest.h5"
    expect = np.arange(nrows * ncol, dtype=np.float64).reshape(nrows, ncol) * 1.5
    store = H5Store.create(path, world, {"a": DatasetSpec((nrows, ncol), "f8", np.nan),
                                         "b": DatasetSpec((nrows, ncol), "f8", np.nan)})
    last = world.size - 1
    mine = np.arange(world.rank * n_per, (world.rank + 1) * n_per)
    # collective write: every rank takes part; the last rank (when size > 1) writes an empty selection
    rows_c = mine if (world.size == 1 or world.rank != last) else np.zeros(0, dtype=np.int64)
    store.write_rows("a", rows_c, expect[rows_c], collective=True)
    # independent write: the last rank does not call at all when size > 1
    if world.size == 1 or world.rank != last:
        store.write_rows("b", mine, expect[mine])
        store.mark_done(mine)
    store.checkpoint()
    store.close()
    store = H5Store.open(path, world, mode="r")
    a, b = store.read_rows("a", slice(None)), store.read_rows("b", slice(None))
    done = store.done
    store.close()
    filled = nrows if world.size == 1 else n_per * (world.size - 1)
    assert np.array_equal(a[:filled], expect[:filled]) and np.all(np.isnan(a[filled:])), "collective write"
    assert np.array_equal(b[:filled], expect[:filled]) and np.all(np.isnan(b[filled:])), "independent write"
    assert np.array_equal(done, np.arange(filled)), f"ledger lists {done}"
    return f"HDF5 {h5py.version.hdf5_version}, mpio collective + independent write/read-back of {nrows} rows"


def _check_netcdf(world: World, tmp: Path) -> str:
    import h5py
    import netCDF4

    path = tmp / "selftest.nc"
    ok = True
    if world.is_root:
        with netCDF4.Dataset(path, "w") as ds:
            ds.createDimension("x", 5)
            v = ds.createVariable("v", "f8", ("x",))
            v.units = "g C m-3"
            v[:] = np.arange(5.0)
        with netCDF4.Dataset(path) as ds:
            ok = np.array_equal(ds["v"][:], np.arange(5.0)) and ds["v"].units == "g C m-3"
        with h5py.File(path, "r") as f:  # the MPI h5py reads what netCDF4's bundled HDF5 wrote
            ok = ok and np.array_equal(f["v"][:], np.arange(5.0))
    ok = world.bcast(ok)
    assert ok, "netCDF4 write/read-back failed"
    return f"netCDF4 {netCDF4.__version__} (netCDF-C {netCDF4.__netcdf4libversion__}) write + read by netCDF4 and h5py"


def _check_torch(world: World, tmp: Path) -> str:
    import importlib.util

    if importlib.util.find_spec("torch") is None:  # same install on every rank, so every rank skips
        return "SKIP: torch is not installed (needed by the learn stage: pip install 'prodampi[learn]')"
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world.size))
    x = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    assert float((x @ x.T).sum()) == 83.0  # [[5, 14], [14, 50]]
    if world.size == 1:
        return f"torch {torch.__version__}, tensor ops"
    import socket

    import torch.distributed as dist

    port = None
    if world.is_root:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    port = world.bcast(port)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=world.rank,
                            world_size=world.size, timeout=__import__("datetime").timedelta(seconds=60))
    try:
        t = torch.tensor([float(world.rank)])
        dist.all_reduce(t)
        assert float(t) == world.size * (world.size - 1) / 2, f"gloo all_reduce gave {float(t)}"
    finally:
        dist.destroy_process_group()
    return f"torch {torch.__version__}, gloo all_reduce over {world.size} ranks"


CHECKS: list[tuple[str, Callable[[World, Path], str]]] = [
    ("mpi", _check_mpi),
    ("parallel-hdf5", _check_hdf5),
    ("netcdf4", _check_netcdf),
    ("torch", _check_torch),
]


def run_selftest(world: World, workdir: str | os.PathLike | None = None) -> bool:
    """Run every check on every rank, printing one PASS line per check on rank 0; True when all pass.

    A failing check raises (on the rank where it failed); under the CLI that ends the job, non-zero.
    """
    tmp = None
    if world.is_root:
        base = Path(workdir) if workdir else None
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="prodampi-selftest-", dir=base)
    tmp = Path(world.bcast(tmp))
    results = []
    try:
        for name, fn in CHECKS:
            # A check that fails raises on its rank: abort_on_error (in the CLI) then ends the whole job with
            # that rank's message.  Catching it here could leave the other ranks waiting in a collective call.
            t0 = time.monotonic()
            fault_point(f"selftest_{name}", world.rank)
            msg = fn(world, tmp)
            world.barrier()
            results.append((name, True, msg, time.monotonic() - t0))
            if world.is_root:
                word, msg = ("SKIP", msg[5:].strip()) if msg.startswith("SKIP:") else ("PASS", msg)
                print(f"  {word}  {name:<14} {results[-1][3]:6.2f} s  {msg}", flush=True)
        fault_point("selftest", world.rank)
        world.barrier()
    finally:
        if world.is_root:
            shutil.rmtree(tmp, ignore_errors=True)
    if world.is_root:
        print(f"selftest: all checks passed on {world.size} rank(s)", flush=True)
    return all(r[1] for r in results)
