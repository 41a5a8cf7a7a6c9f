"""The MPI world wrapper and the self-test under a real mpiexec (1, 2, 3 ranks)."""

from __future__ import annotations

import pytest

from prodampi.errors import DeckError
from prodampi.parallel.comm import World
from prodampi.selftest import run_selftest

pytestmark = pytest.mark.mpi


def test_world_collectives():
    w = World()
    assert w.allreduce_sum(1) == w.size
    assert w.bcast(w.rank * 10 + 7) == 7
    assert w.allgather(w.rank) == list(range(w.size))


def test_run_collective_result_and_error():
    w = World()
    assert w.run_collective(lambda: {"a": 1}) == {"a": 1}

    def bad():
        raise DeckError(["d.yaml: seed = 'x': must be an integer"])

    with pytest.raises(DeckError) as ei:  # every rank sees the root's error
        w.run_collective(bad)
    assert ei.value.collective and "seed" in ei.value.problems[0]


def test_selftest_passes(mpi_tmp_path, capsys):
    w = World()
    assert run_selftest(w, mpi_tmp_path)
