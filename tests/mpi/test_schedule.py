"""The dynamic work queue under a real mpiexec (1, 2, 3 ranks): every unit served exactly once, fast ranks
take more, a stop request ends the handing out, progress reports reach rank 0."""

from __future__ import annotations

import time

import pytest

from prodampi.parallel.comm import World
from prodampi.parallel.schedule import WorkQueue

pytestmark = pytest.mark.mpi


def test_every_unit_once_and_fast_ranks_take_more():
    w = World()
    seen_reports: list[dict] = []
    q = WorkQueue(w, list(range(40)), on_progress=(lambda r: seen_reports.append(r)) if w.is_root else None)
    mine = []
    while (u := q.next()) is not None:
        mine.append(u)
        q.report({"n": len(mine)})
        if w.rank == w.size - 1 and w.size > 1:
            time.sleep(0.02)  # the last rank is slow
    q.close()
    allu = w.allgather(mine)
    flat = sorted(u for part in allu for u in part)
    assert flat == list(range(40))
    if w.size > 1 and q.dynamic:
        counts = [len(p) for p in allu]
        assert counts[-1] < max(counts[:-1]), counts  # the slow rank took fewer units
    if w.is_root:
        assert seen_reports and set(seen_reports[-1]) <= set(range(w.size))


def test_stop_request_ends_handing_out():
    w = World()
    q = WorkQueue(w, list(range(1000)))
    got = 0
    while q.next() is not None:
        got += 1
        if w.rank == 0 and got == 3:
            q.request_stop()
        if w.rank != 0:
            time.sleep(0.001)
    q.close()
    total = w.allreduce_sum(got)
    assert total < 1000
