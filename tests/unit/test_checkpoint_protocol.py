"""Order of the checkpoint protocol of :class:`prodampi.parallel.h5store.H5Store` (``conventions.md`` C.2).

A checkpoint is only safe when its steps happen in this order:

1. the HDF5 file is flushed (every row the ledger will name is on disk),
2. the new ledger is written to a temporary file in the ledger's folder (the old ledger stays intact),
3. that temporary file is fsync'ed with its complete content,
4. it is renamed over the ledger with ``os.replace``,
5. the folder is fsync'ed (the rename itself is durable).

The test records the calls that matter (``h5py.File.flush``, ``open``, ``os.fsync``, ``os.replace``) while
one checkpoint runs, identifying files by inode so that it does not depend on how the temporary file is
named.  Removing the flush, the fsync, the rename or the folder fsync, or writing the ledger in place, each
fails it.
"""

from __future__ import annotations

import builtins
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
pytest.importorskip("mpi4py")

from prodampi.parallel.comm import World  # noqa: E402
from prodampi.parallel.h5store import DatasetSpec, H5Store  # noqa: E402


def _read_fd(fd: int) -> str | None:
    """What a crash right after fsync(fd) would leave in that file (Linux /proc; None elsewhere)."""
    proc = f"/proc/self/fd/{fd}"
    if not os.path.exists(proc):
        return None
    rd = os.open(proc, os.O_RDONLY)
    try:
        return os.pread(rd, 1 << 20, 0).decode()
    finally:
        os.close(rd)


class Recorder:
    """Records protocol events while :attr:`on` is set; every event carries the ledger's state at that time."""

    def __init__(self, ledger: Path) -> None:
        self.ledger = ledger
        self.events: list[dict] = []
        self.on = False

    def _ledger_state(self) -> tuple[tuple[int, int] | None, str | None]:
        try:
            st = os.stat(self.ledger)
            return (st.st_dev, st.st_ino), self.ledger.read_text()
        except FileNotFoundError:
            return None, None

    def add(self, kind: str, **kw: object) -> None:
        if self.on:
            ino, text = self._ledger_state()
            self.events.append({"kind": kind, "ledger_inode": ino, "ledger_text": text, **kw})

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_flush, real_open, real_fsync, real_replace = h5py.File.flush, builtins.open, os.fsync, os.replace
        rec = self

        def flush(self_file):  # h5py.File.flush
            rec.add("h5flush", filename=str(self_file.filename))
            return real_flush(self_file)

        def open_(file, mode="r", *args, **kwargs):
            fh = real_open(file, mode, *args, **kwargs)
            if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
                st = os.fstat(fh.fileno())
                rec.add("open_write", path=Path(file).resolve(), inode=(st.st_dev, st.st_ino))
            return fh

        def fsync(fd):
            st = os.fstat(fd)
            content = _read_fd(fd) if rec.on and not stat.S_ISDIR(st.st_mode) else None
            rec.add("fsync", inode=(st.st_dev, st.st_ino), is_dir=stat.S_ISDIR(st.st_mode), content=content)
            return real_fsync(fd)

        def replace(src, dst, *args, **kwargs):
            st = os.stat(src)
            rec.add("replace", src=Path(src).resolve(), dst=Path(dst).resolve(), inode=(st.st_dev, st.st_ino),
                    src_text=Path(src).read_text())
            return real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(h5py.File, "flush", flush)
        monkeypatch.setattr(builtins, "open", open_)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)


@pytest.fixture
def store(tmp_path):
    world = World()
    if world.size != 1:  # pragma: no cover - this is a serial test
        pytest.skip("serial test")
    s = H5Store.create(tmp_path / "run" / "out.h5", world, {"v": DatasetSpec((8, 2), "f8", np.nan)})
    yield s
    s.close()


def _first(events: list[dict], pred) -> int:
    for i, e in enumerate(events):
        if pred(e):
            return i
    return -1


def test_checkpoint_flushes_then_writes_temp_then_fsyncs_then_replaces_then_fsyncs_folder(store, monkeypatch):
    ledger = H5Store.ledger_path(store.path).resolve()
    folder = ledger.parent
    before_text = ledger.read_text()
    before = json.loads(before_text)
    st0 = os.stat(ledger)
    old_inode = (st0.st_dev, st0.st_ino)
    st_dir = os.stat(folder)
    dir_inode = (st_dir.st_dev, st_dir.st_ino)

    store.write_rows("v", np.array([1, 3]), np.array([[1.0, 2.0], [3.0, 4.0]]))
    store.mark_done([1, 3])
    rec = Recorder(ledger)
    rec.install(monkeypatch)
    rec.on = True
    store.checkpoint(info={"step": 0})
    rec.on = False
    monkeypatch.undo()
    ev = rec.events

    after_text = ledger.read_text()
    after = json.loads(after_text)
    assert before["done"] == [] and after["done"] == [[1, 2], [3, 4]] and after["info"] == {"step": 0}
    st1 = os.stat(ledger)
    new_inode = (st1.st_dev, st1.st_ino)

    # 1. the HDF5 file is flushed before anything of the new ledger exists
    i_flush = _first(ev, lambda e: e["kind"] == "h5flush" and Path(e["filename"]).resolve() == store.path.resolve())
    assert i_flush >= 0, f"the HDF5 file was not flushed before the ledger update: {[e['kind'] for e in ev]}"
    # 2. the new ledger is written to a temporary file in the same folder, never to the ledger itself
    i_open = _first(ev, lambda e: e["kind"] == "open_write" and e["inode"] == new_inode)
    writes_in_place = [e for e in ev if e["kind"] == "open_write" and e["path"] == ledger]
    assert not writes_in_place, "the ledger was opened for writing in place"
    assert i_open >= 0, "the new ledger was not written through a temporary file"
    assert ev[i_open]["path"].parent == folder and ev[i_open]["path"] != ledger
    assert i_flush < i_open, "the ledger was written before the HDF5 flush"
    # 3. the temporary file is fsync'ed, holding the complete new ledger, while the old ledger is untouched
    i_fsync = _first(ev, lambda e: e["kind"] == "fsync" and not e["is_dir"] and e["inode"] == new_inode)
    assert i_fsync > i_open, "the temporary ledger was not fsync'ed"
    if ev[i_fsync]["content"] is not None:
        assert ev[i_fsync]["content"] == after_text, "fsync before the temporary ledger was completely written"
    assert ev[i_fsync]["ledger_inode"] == old_inode and ev[i_fsync]["ledger_text"] == before_text, \
        "the ledger changed before the temporary file was complete"
    # 4. it replaces the ledger by rename, after the fsync
    i_rep = _first(ev, lambda e: e["kind"] == "replace" and e["dst"] == ledger)
    assert i_rep > i_fsync, "os.replace onto the ledger missing or before the fsync"
    assert ev[i_rep]["inode"] == new_inode and ev[i_rep]["src_text"] == after_text
    assert ev[i_rep]["src"].parent == folder
    assert all(e["ledger_inode"] == old_inode for e in ev[:i_rep + 1]), "the old ledger was modified in place"
    # 5. the folder is fsync'ed after the rename
    i_dir = _first(ev, lambda e: e["kind"] == "fsync" and e["is_dir"] and e["inode"] == dir_inode)
    assert i_dir > i_rep, "the folder holding the ledger was not fsync'ed after the rename"
    # nothing else touches the ledger after the rename; no temporary file is left behind
    assert not [e for e in ev[i_rep + 1:] if e["kind"] in ("open_write", "replace")]
    assert sorted(p.name for p in folder.iterdir()) == ["out.h5", "out.h5.ledger.json"]

