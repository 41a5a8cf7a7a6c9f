"""Signals: SIGTERM and SIGINT end a stage cleanly; SIGUSR1 asks for a checkpoint.

:func:`install` (called by every stage on every rank) makes SIGTERM and SIGINT raise :class:`Interrupted`
in the main thread.  It unwinds like any error: temporary files are removed by their writers
(:mod:`prodampi.io.safefile`), the run-directory lock is released, one line
``prodampi: interrupted by SIGTERM ...`` is printed and the process exits with **143 for SIGTERM and 130 for
SIGINT** (128 + signal number; under MPI the job is aborted with that code after the line is flushed).

SIGUSR1 only sets a flag: a stage that can checkpoint polls :func:`checkpoint_requested` between work units.
"""

from __future__ import annotations

import signal
import threading

from ..errors import ProdampiError

EXIT_SIGTERM = 128 + signal.SIGTERM  # 143
EXIT_SIGINT = 128 + signal.SIGINT  # 130


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


_checkpoint = threading.Event()
_installed = False


def _raise(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def _flag(signum: int, frame: object) -> None:
    _checkpoint.set()


def install() -> bool:
    """Install the handlers (main thread only; returns False elsewhere).  Idempotent."""
    global _installed
    if threading.current_thread() is not threading.main_thread():
        return False
    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGINT, _raise)
    signal.signal(signal.SIGUSR1, _flag)
    _installed = True
    return True


def checkpoint_requested(clear: bool = True) -> bool:
    """True once SIGUSR1 arrived since the last call (with ``clear``, the flag is reset)."""
    hit = _checkpoint.is_set()
    if hit and clear:
        _checkpoint.clear()
    return hit
