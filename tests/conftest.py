"""Shared pytest fixtures."""

from __future__ import annotations

import os

# One BLAS thread per process: the machine is small and MPI tests run several processes at once
# (multi-threaded OpenBLAS under contention made dense solves ~10x slower).  Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository (real public data; skip when absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present beside the repository")
    return SHARED_DATA



@pytest.fixture(scope="session")
def job_runner():
    """A :class:`prodampi.testing.mpi.MpiJobRunner` rooted at the repository (serial jobs always work)."""
    from prodampi.testing.mpi import MpiJobRunner

    return MpiJobRunner(cwd=REPO)


@pytest.fixture(scope="session")
def mpi_runner(job_runner):
    """Like ``job_runner``, but the test is skipped when no ``mpiexec`` is found."""
    if job_runner.mpiexec is None:
        pytest.skip("no mpiexec found (set PRODAMPI_MPIEXEC or run tools/setup_env.sh)")
    return job_runner
