"""Real ``mpiexec`` jobs for tests and benchmarks: find the launcher, build a clean environment, run a job.

One implementation of what the end-to-end tests need to start prodampi (or any Python script) under a real
MPI launcher, pySDC style: the job is a child process, its return code, stdout and stderr are returned as a
:class:`subprocess.CompletedProcess`, and a hung job is ended by a wall-clock ``timeout``.

The launcher is, in order: ``$PRODAMPI_MPIEXEC``; the one ``tools/setup_env.sh`` recorded for this venv in
``<sys.prefix>/.prodampi-mpiexec``; ``mpiexec.mpich``; ``mpiexec`` on ``PATH``.  The job environment is the
caller's with the repository first on ``PYTHONPATH``, one BLAS/OpenMP thread per rank and no inherited
``PRODAMPI_FAULT`` (a test sets it explicitly when it injects a fault).

The pytest fixtures ``job_runner`` and ``mpi_runner`` in ``tests/conftest.py`` hand out a
:class:`MpiJobRunner` rooted at the repository.  Nothing here imports mpi4py: the parent process stays serial.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["find_mpiexec", "job_env", "MpiJobRunner", "NoMpiexecError"]

log = logging.getLogger(__name__)

#: the environment variables a job must not inherit from the test process
_DROPPED = ("PRODAMPI_FAULT",)


class NoMpiexecError(RuntimeError):
    """No MPI launcher was found but a job with more than one rank was asked for."""


def find_mpiexec() -> str | None:
    """The MPI launcher to use, or None when there is none (see the module docstring for the order)."""
    env = os.environ.get("PRODAMPI_MPIEXEC")
    if env:
        return env
    recorded = Path(sys.prefix) / ".prodampi-mpiexec"
    try:
        name = recorded.read_text().strip()
    except OSError:
        name = ""
    if name and shutil.which(name):
        return name
    return shutil.which("mpiexec.mpich") or shutil.which("mpiexec")


def job_env(repo: str | os.PathLike | None = None, **extra: str) -> dict[str, str]:
    """Environment of a job: ``os.environ`` + ``repo`` first on ``PYTHONPATH``, one thread, no fault spec.

    Parameters
    ----------
    repo : path or None
        Directory put first on ``PYTHONPATH`` (the repository root, so the job imports this checkout).
    **extra : str
        Variables set last (e.g. ``PRODAMPI_FAULT="raise:selftest@1"``).

    Returns
    -------
    dict
        The environment mapping for :func:`subprocess.run`.
    """
    e = dict(os.environ)
    for k in _DROPPED:
        e.pop(k, None)
    if repo is not None:
        rest = e.get("PYTHONPATH", "")
        e["PYTHONPATH"] = str(repo) + (os.pathsep + rest if rest else "")
    e["OMP_NUM_THREADS"] = "1"
    e["OPENBLAS_NUM_THREADS"] = "1"
    e.update({k: str(v) for k, v in extra.items()})
    return e


@dataclass
class MpiJobRunner:
    """Start Python jobs, under ``mpiexec -n N`` or serially, from a fixed working directory.

    Parameters
    ----------
    cwd : path
        Working directory of every job (and the directory put first on ``PYTHONPATH``).
    mpiexec : str or None
        Launcher; default :func:`find_mpiexec`.  None: only serial jobs can run.
    python : str
        Interpreter of the job (default: the current one, i.e. the test venv).
    default_timeout : float
        Wall-clock limit (s) when a call gives none.
    """

    cwd: Path
    mpiexec: str | None = field(default_factory=find_mpiexec)
    python: str = sys.executable
    default_timeout: float = 120.0

    def env(self, **extra: str) -> dict[str, str]:
        """:func:`job_env` rooted at :attr:`cwd`."""
        return job_env(self.cwd, **extra)

    def command(self, n: int | None, args: Sequence[str]) -> list[str]:
        """The command line: ``[mpiexec, -n, N, python, *args]``, or ``[python, *args]`` when ``n`` is None."""
        cmd = [self.python, *map(str, args)]
        if n is None:
            return cmd
        if self.mpiexec is None:
            raise NoMpiexecError("no mpiexec found (set PRODAMPI_MPIEXEC or run tools/setup_env.sh)")
        return [self.mpiexec, "-n", str(int(n)), *cmd]

    def run(self, n: int | None, args: Sequence[str], timeout: float | None = None,
            **extra: str) -> subprocess.CompletedProcess:
        """Run ``python *args`` on ``n`` ranks (``n=None``: serially, without the launcher).

        Parameters
        ----------
        n : int or None
            Number of ranks passed to ``mpiexec -n``; None runs the interpreter directly.
        args : sequence of str
            Interpreter arguments, e.g. ``["-m", "prodampi", "selftest", "--run-dir", d]``.
        timeout : float or None
            Wall-clock limit (s); :class:`subprocess.TimeoutExpired` when exceeded.
        **extra : str
            Extra environment variables (see :func:`job_env`).

        Returns
        -------
        subprocess.CompletedProcess
            With text ``stdout`` and ``stderr``.
        """
        cmd = self.command(n, args)
        log.debug("job: %s", " ".join(cmd))
        return subprocess.run(cmd, capture_output=True, text=True, env=self.env(**extra),
                              timeout=self.default_timeout if timeout is None else timeout, cwd=self.cwd)

    def python_serial(self, args: Sequence[str], timeout: float | None = None,
                      **extra: str) -> subprocess.CompletedProcess:
        """``run(None, args, ...)``: one serial interpreter in the job environment."""
        return self.run(None, args, timeout=timeout, **extra)

    def prodampi(self, args: Sequence[str], n: int = 1, timeout: float | None = None,
                 **extra: str) -> subprocess.CompletedProcess:
        """``python -m prodampi *args``: serially for ``n == 1``, else under ``mpiexec -n n``."""
        return self.run(None if n == 1 else n, ["-m", "prodampi", *args], timeout=timeout, **extra)
