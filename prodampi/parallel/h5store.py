"""Parallel HDF5 output with a checkpoint ledger (first cut).

Pattern (``conventions.md`` C.2, C.3):

1. :meth:`H5Store.create` — **collective**: every rank opens the file with the ``mpio`` driver and all
   datasets of the whole job are created up front (contiguous, allocated early, filled with a fill value).
   After this, the file's metadata never changes while work is written, so a SIGKILL during a data write
   cannot corrupt its structure.
2. :meth:`H5Store.write_rows` — **independent** by default: any rank writes its rows whenever it likes; a
   rank with nothing to write simply does not call it.  With ``collective=True`` every rank must call it
   (ranks with nothing pass an empty index) — required for filtered datasets, see h5py #965.
3. :meth:`H5Store.checkpoint` — **collective**: flush the file, gather the work units each rank finished
   since the last checkpoint, and rank 0 rewrites the ledger ``<file>.ledger.json`` atomically (temporary
   file, fsync, ``os.replace``).  The ledger only ever lists units whose rows were flushed before it.
4. :meth:`H5Store.open` — **collective**: reopen for resume; :attr:`H5Store.done` is the set of units the
   ledger recorded, so a restart redoes exactly the unfinished units.

The ledger and the file share a random ``store_id``; a ledger that belongs to another file is refused.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StageError
from ..provenance import write_json_atomic
from .comm import World
from .faults import fault_point

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetSpec:
    """Shape, dtype, fill value and attributes of one preallocated dataset."""

    shape: tuple[int, ...]
    dtype: Any = "f8"
    fillvalue: Any = None
    attrs: dict = field(default_factory=dict)


def _runs(index: np.ndarray) -> list[tuple[int, int, int]]:
    """Split sorted row indices into contiguous runs: (start, stop, offset into the data)."""
    if index.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [index.size]])
    return [(int(index[a]), int(index[b - 1]) + 1, int(a)) for a, b in zip(starts, stops)]


def _encode_ranges(ids: np.ndarray) -> list[list[int]]:
    return [[a, b] for a, b, _ in _runs(np.unique(ids))]


def _decode_ranges(ranges: list[list[int]]) -> np.ndarray:
    if not ranges:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in ranges])


class H5Store:
    """A parallel HDF5 file plus its checkpoint ledger.  Use :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path, world: World, h5file: Any, store_id: str, done: np.ndarray,
                 n_updates: int) -> None:
        self.path = path
        self.world = world
        self.file = h5file
        self.store_id = store_id
        self._done = done
        self._pending: list[np.ndarray] = []
        self.n_updates = n_updates

    # ------------------------------------------------------------------ paths
    @staticmethod
    def ledger_path(path: str | os.PathLike) -> Path:
        """Where the ledger of the store at ``path`` lives."""
        p = Path(path)
        return p.with_name(p.name + ".ledger.json")

    # ------------------------------------------------------------------ construction (collective)
    @classmethod
    def create(cls, path: str | os.PathLike, world: World, datasets: dict[str, DatasetSpec],
               attrs: dict | None = None) -> H5Store:
        """Create the file and every dataset, collectively (all ranks must call with the same arguments)."""

        path = Path(path)
        if world.is_root:
            path.parent.mkdir(parents=True, exist_ok=True)
            for stale in (path, cls.ledger_path(path)):
                stale.unlink(missing_ok=True)
        store_id = world.bcast(uuid.uuid4().hex if world.is_root else None)
        f = _h5open(path, "w", world)
        f.attrs["store_id"] = store_id
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
        for name, spec in datasets.items():
            dcpl_kw = {}
            if spec.fillvalue is not None:
                dcpl_kw["fillvalue"] = spec.fillvalue
            ds = f.create_dataset(name, shape=spec.shape, dtype=spec.dtype, **dcpl_kw)
            for k, v in spec.attrs.items():
                ds.attrs[k] = v
        f.flush()
        store = cls(path, world, f, store_id, np.zeros(0, dtype=np.int64), 0)
        store._write_ledger(np.zeros(0, dtype=np.int64), info={"created": True})
        world.barrier()
        log.debug("created %s with %d datasets on %d rank(s)", path, len(datasets), world.size)
        return store

    @classmethod
    def open(cls, path: str | os.PathLike, world: World, mode: str = "r+") -> H5Store:
        """Reopen an existing store (collective) and read its ledger back."""
        import json

        path = Path(path)
        lp = cls.ledger_path(path)
        if not path.exists():
            raise StageError(f"{path}: checkpoint file not found")
        f = _h5open(path, mode, world)
        store_id = str(f.attrs.get("store_id", ""))
        ledger = None
        if world.is_root:
            try:
                ledger = json.loads(lp.read_text())
            except FileNotFoundError:
                ledger = {"store_id": store_id, "done": [], "n_updates": 0}
            except (OSError, ValueError) as e:
                ledger = {"error": f"{lp}: unreadable ledger ({e})"}
        ledger = world.bcast(ledger)
        if "error" in ledger:
            f.close()
            raise StageError(ledger["error"])
        if ledger.get("store_id") != store_id:
            f.close()
            raise StageError(f"{lp}: ledger belongs to another file (store_id {ledger.get('store_id')} "
                             f"!= {store_id}); delete both to start over")
        done = _decode_ranges(ledger.get("done", []))
        return cls(path, world, f, store_id, done, int(ledger.get("n_updates", 0)))

    # ------------------------------------------------------------------ data
    def write_rows(self, name: str, index: np.ndarray | slice, data: np.ndarray,
                   collective: bool = False) -> None:
        """Write ``data`` into rows ``index`` (first axis) of dataset ``name``.

        Independent by default (only ranks with data call it).  ``collective=True``: every rank calls it,
        possibly with an empty index.
        """
        ds = self.file[name]
        data = np.asarray(data)
        if isinstance(index, slice):
            start, stop, step = index.indices(ds.shape[0])
            if step != 1:
                raise ValueError("write_rows: slices must have step 1")
            runs = [(start, stop, 0)] if stop > start else []
        else:
            index = np.asarray(index, dtype=np.int64)
            order = np.argsort(index, kind="stable")
            index, data = index[order], data[order] if data.shape[:1] == index.shape else data
            if index.size and (index[0] < 0 or index[-1] >= ds.shape[0]):
                raise IndexError(f"{name}: row index outside 0..{ds.shape[0] - 1}")
            if np.any(np.diff(index) == 0):
                raise ValueError(f"{name}: duplicate row indices")
            runs = _runs(index)
        if collective:
            _collective_write(ds, runs, data)
        else:
            for a, b, off in runs:
                ds[a:b] = data[off:off + (b - a)]

    def read_rows(self, name: str, index: np.ndarray | slice) -> np.ndarray:
        """Read rows of dataset ``name`` (independent)."""
        ds = self.file[name]
        if isinstance(index, slice):
            return ds[index]
        index = np.asarray(index, dtype=np.int64)
        if index.size == 0:
            return np.empty((0,) + ds.shape[1:], dtype=ds.dtype)
        order = np.argsort(index, kind="stable")
        out = np.empty((index.size,) + ds.shape[1:], dtype=ds.dtype)
        out[order] = ds[index[order]]
        return out

    # ------------------------------------------------------------------ ledger
    @property
    def done(self) -> np.ndarray:
        """Sorted unit ids recorded as finished in the ledger (identical on every rank)."""
        return self._done

    def mark_done(self, units: np.ndarray | list[int]) -> None:
        """Note units this rank has finished; they enter the ledger at the next :meth:`checkpoint`."""
        self._pending.append(np.asarray(units, dtype=np.int64).ravel())

    def checkpoint(self, info: dict | None = None) -> np.ndarray:
        """Collective: flush data, then record every rank's pending units in the ledger atomically.

        Returns the updated :attr:`done` array (same on every rank).
        """
        t0 = time.monotonic()
        self.file.flush()  # collective H5Fflush: every rank's rows are on disk before the ledger names them
        local = np.concatenate(self._pending) if self._pending else np.zeros(0, dtype=np.int64)
        self._pending = []
        parts = self.world.gather(local)
        new = None
        if self.world.is_root:
            new = np.union1d(self._done, np.concatenate(parts)).astype(np.int64)
            self._write_ledger(new, info)
        self._done = self.world.bcast(new)
        self.n_updates += 1
        log.debug("checkpoint %d of %s: %d units done (%.3f s)", self.n_updates, self.path.name,
                  self._done.size, time.monotonic() - t0)
        return self._done

    def _write_ledger(self, done: np.ndarray, info: dict | None) -> None:
        if not self.world.is_root:
            return
        rec = {
            "store_id": self.store_id,
            "file": self.path.name,
            "n_updates": self.n_updates + 1,
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "n_done": int(done.size),
            "done": _encode_ranges(done),
            "info": info or {},
        }
        lp = self.ledger_path(self.path)
        fault_point("ledger_before_write", self.world.rank)
        write_json_atomic(lp, rec, before_replace=lambda: fault_point("ledger_before_replace"))

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Collective close."""
        if self.file is not None:
            self.file.close()
            self.file = None

    def __enter__(self) -> H5Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _collective_write(ds: Any, runs: list[tuple[int, int, int]], data: np.ndarray) -> None:
    """One collective H5Dwrite per rank, whatever its number of row runs (an empty rank selects none).

    Issuing one call per contiguous run would give ranks different numbers of collective calls (a hang),
    and h5py skips the HDF5 call altogether for an empty slice (h5py #965).
    """
    from h5py import h5s

    fspace = ds.id.get_space()
    fspace.select_none()
    tail = tuple(ds.shape[1:])
    n = 0
    for a, b, _ in runs:
        fspace.select_hyperslab((a,) + (0,) * len(tail), (b - a,) + tail, op=h5s.SELECT_OR)
        n += b - a
    if n:
        order = np.concatenate([np.arange(off, off + (b - a)) for a, b, off in runs])
        arr = np.ascontiguousarray(np.asarray(data)[order], dtype=ds.dtype)
        mspace = h5s.create_simple(arr.shape)
    else:
        arr = np.zeros((1,) + tail, dtype=ds.dtype)
        mspace = h5s.create_simple(arr.shape)
        mspace.select_none()
    with ds.collective:
        ds.id.write(mspace, fspace, arr, dxpl=ds._dxpl)


def _h5open(path: Path, mode: str, world: World) -> Any:
    """Open with the mpio driver when h5py is MPI-enabled, else serially (single rank only)."""
    import h5py

    if h5py.get_config().mpi:
        return h5py.File(path, mode, driver="mpio", comm=world.comm)
    if world.size > 1:
        raise StageError("h5py is not built with MPI; parallel runs need an MPI-enabled h5py "
                         "(run tools/setup_env.sh)")
    return h5py.File(path, mode)
