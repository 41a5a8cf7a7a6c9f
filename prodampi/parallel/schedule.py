"""Work distribution: a dynamic work queue served from rank 0 (fast ranks take more work).

:class:`WorkQueue` hands out unit ids (e.g. batches of profiles) one at a time.  Rank 0 runs a small server
thread on a duplicated communicator; every rank -- rank 0's own worker included -- asks it for the next unit.
The server polls with ``Iprobe`` and short sleeps, so it costs rank 0 no core while it waits.  Results must
never depend on which rank took which unit (the random streams are keyed by site, not rank), so the order
of service only changes the wall time.

The same channel carries progress reports (:meth:`WorkQueue.report`): each rank sends its counters now and
then, and the server calls ``on_progress(reports)`` with the latest report of every rank, from which rank 0
writes one heartbeat line for the whole job.

A stop request (:meth:`WorkQueue.request_stop`, after SIGTERM or SIGUSR1) makes the server hand out no more
units, to any rank.

Without ``MPI_THREAD_MULTIPLE`` (or on one rank) the queue degrades to a static round-robin split, which
gives the same results.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .comm import World

log = logging.getLogger(__name__)

__all__ = ["WorkQueue"]

_REQ, _REP = 11, 12


class WorkQueue:
    """Dynamic queue of unit ids (collective construction and :meth:`close`).

    Parameters
    ----------
    world : World
    units : sequence of int
        The units to hand out, in order (same on every rank).
    on_progress : callable or None
        Rank 0: called on the server thread with ``{rank: payload}`` after every progress report.
    poll_s : float
        Server polling interval (s).
    """

    def __init__(self, world: World, units: Sequence[int], on_progress: Callable[[dict], None] | None = None,
                 poll_s: float = 0.005) -> None:
        self.world = world
        self.units = [int(u) for u in units]
        self.on_progress = on_progress
        self.poll_s = poll_s
        MPI = world.MPI
        self.dynamic = world.size > 1 and MPI.Query_thread() >= MPI.THREAD_MULTIPLE
        self._local: list[int] = []
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.served: dict[int, int] = {}
        if not self.dynamic:
            if world.size > 1:
                log.warning("MPI without THREAD_MULTIPLE: static round-robin work split")
            self._local = self.units[world.rank::world.size]
            self.comm = None
            return
        self.comm = world.comm.Dup()
        if world.is_root:
            self._thread = threading.Thread(target=self._serve, name="prodampi-queue", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ server (rank 0 thread)
    def _serve(self) -> None:
        from mpi4py import MPI

        comm = self.comm
        pending = list(self.units)
        stopped = False
        byes = 0
        reports: dict[int, Any] = {}
        status = MPI.Status()
        while byes < comm.Get_size():
            if not comm.Iprobe(source=MPI.ANY_SOURCE, tag=_REQ, status=status):
                time.sleep(self.poll_s)
                continue
            msg = comm.recv(source=status.Get_source(), tag=_REQ)
            kind, rank = msg[0], msg[1]
            if kind == "next":
                unit = None if (stopped or not pending) else pending.pop(0)
                if unit is not None:
                    self.served[unit] = rank
                comm.send(unit, dest=rank, tag=_REP)
            elif kind == "stop":
                stopped = True
            elif kind == "progress":
                reports[rank] = msg[2]
                if self.on_progress is not None:
                    try:
                        self.on_progress(dict(reports))
                    except Exception:  # noqa: BLE001 - a progress line must never kill the job
                        log.exception("progress callback failed")
            elif kind == "bye":
                byes += 1

    # ------------------------------------------------------------------ workers
    def next(self) -> int | None:
        """The next unit for this rank, or None when the queue is empty or stopped."""
        if not self.dynamic:
            if self._stopped or not self._local:
                return None
            return self._local.pop(0)
        self.comm.send(("next", self.world.rank), dest=0, tag=_REQ)
        return self.comm.recv(source=0, tag=_REP)

    def request_stop(self) -> None:
        """Hand out no more units (to any rank, once the server has the message)."""
        self._stopped = True
        if self.dynamic:
            self.comm.send(("stop", self.world.rank), dest=0, tag=_REQ)

    def report(self, payload: Any) -> None:
        """Send this rank's progress counters to rank 0 (small, picklable)."""
        if self.dynamic:
            self.comm.send(("progress", self.world.rank, payload), dest=0, tag=_REQ)
        elif self.on_progress is not None and self.world.size == 1:
            self.on_progress({0: payload})

    def close(self) -> None:
        """Collective: every rank says goodbye; rank 0 joins its server thread."""
        if not self.dynamic:
            return
        self.comm.send(("bye", self.world.rank), dest=0, tag=_REQ)
        if self._thread is not None:
            self._thread.join()
        self.world.barrier()
        self.comm.Free()
        self.comm = None
