"""Signals: SIGTERM and SIGINT end a stage cleanly; SIGUSR1 asks for a checkpoint.

:func:`install` (called by every stage on every rank) makes SIGTERM and SIGINT raise :class:`Interrupted`
in the main thread.  It unwinds like any error: temporary files are removed by their writers
(:mod:`prodampi.io.safefile`), the run-directory lock is released, one line
``prodampi: interrupted by SIGTERM ...`` is printed and the process exits with **143 for SIGTERM and 130 for
SIGINT** (128 + signal number; under MPI the job is aborted with that code after the line is flushed).

SIGUSR1 only sets a flag: a stage that can checkpoint polls :func:`checkpoint_requested` between work units.

**Deferred mode** (:func:`deferred`, used by stages that checkpoint mid-work, e.g. assimilate): SIGTERM,
SIGINT and SIGUSR1 only record the signal (:func:`stop_signal`); the stage finishes the step it is in,
checkpoints, and raises :class:`Requeue` -- exit status **75** (:data:`EXIT_REQUEUE`, ``EX_TEMPFAIL``: "the
work is checkpointed; run the same command again to resume").  This is what Slurm's ``--signal`` warning and a
wall-time SIGTERM get, so a job script can requeue on 75.  A second SIGINT in deferred mode raises at once.
"""

from __future__ import annotations

import signal
import threading

from ..errors import ProdampiError

EXIT_SIGTERM = 128 + signal.SIGTERM  # 143
EXIT_SIGINT = 128 + signal.SIGINT  # 130
EXIT_REQUEUE = 75  # EX_TEMPFAIL: checkpointed, run again to resume


class Interrupted(ProdampiError):
    """The job received SIGTERM or SIGINT; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        name = signal.Signals(self.signum).name
        super().__init__(f"interrupted by {name}; temporary files removed, lock released "
                         f"(exit {self.exit_code})")

    def __reduce__(self) -> tuple:  # broadcast between ranks by World.run_collective
        return (Interrupted, (self.signum,))


class Requeue(ProdampiError):
    """The stage checkpointed its work after a signal and stops; run it again to resume (exit 75)."""

    exit_code = EXIT_REQUEUE

    def __init__(self, signum: int, detail: str = "") -> None:
        self.signum = int(signum)
        name = signal.Signals(self.signum).name
        super().__init__(f"{name} received: work checkpointed{detail}; run the same command again to resume "
                         f"(exit {EXIT_REQUEUE}, requeue)")

    def __reduce__(self) -> tuple:
        return (Requeue, (self.signum,))


_checkpoint = threading.Event()
_installed = False
_deferred = False
_stop: list[int] = []


def _flag(signum: int, frame: object) -> None:
    if _deferred:
        _stop.append(int(signum))
    _checkpoint.set()


def _raise_or_defer(signum: int, frame: object) -> None:
    if _deferred:
        if signum == signal.SIGINT and signal.SIGINT in _stop:
            raise Interrupted(signum)  # a second Ctrl-C: stop now
        _stop.append(int(signum))
        return
    raise Interrupted(signum)


def install() -> bool:
    """Install the handlers (main thread only; returns False elsewhere).  Idempotent."""
    global _installed
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGTERM, _raise_or_defer)
    signal.signal(signal.SIGINT, _raise_or_defer)
    signal.signal(signal.SIGUSR1, _flag)
    _installed = True
    return True


def checkpoint_requested(clear: bool = True) -> bool:
    """True once SIGUSR1 arrived since the last call (with ``clear``, the flag is reset)."""
    hit = _checkpoint.is_set()
    if hit and clear:
        _checkpoint.clear()
    return hit


class deferred:
    """``with deferred(): ...`` -- SIGTERM/SIGINT/SIGUSR1 are recorded, not raised (see module docstring)."""

    def __enter__(self) -> deferred:
        global _deferred
        _stop.clear()
        _deferred = True
        return self

    def __exit__(self, *exc: object) -> None:
        global _deferred
        _deferred = False


def stop_signal() -> int | None:
    """The first signal recorded in deferred mode, or None."""
    return _stop[0] if _stop else None
