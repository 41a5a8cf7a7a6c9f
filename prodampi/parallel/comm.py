"""The MPI world for the rest of prodampi: rank/size, collective helpers, logging, abort-on-error.

Rules every stage follows:

* Any uncaught exception on any rank ends the **whole job** promptly: the rank logs the traceback to its
  log file, prints ``prodampi: rank R/N: <Type>: <message>`` to stderr and calls ``MPI_Abort`` (never a
  hang in a collective call that the failed rank will not reach).
* Errors that every rank sees at the same time (a bad deck, read on rank 0 and broadcast) exit cleanly
  with status 2 and one line per problem, printed once by rank 0.
* Rank 0 prints concise progress to the console; every rank can write ``<run_dir>/logs/<stage>_p<rank>.log``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ProdampiError

log = logging.getLogger(__name__)


class World:
    """Thin wrapper around an mpi4py communicator (``MPI.COMM_WORLD`` by default).

    Parameters
    ----------
    comm : mpi4py communicator or None
    """

    def __init__(self, comm: Any = None) -> None:
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank: int = self.comm.Get_rank()
        self.size: int = self.comm.Get_size()

    @property
    def is_root(self) -> bool:
        """True on rank 0."""
        return self.rank == 0

    def barrier(self) -> None:
        """Collective barrier."""
        self.comm.Barrier()

    def bcast(self, obj: Any, root: int = 0) -> Any:
        """Broadcast a picklable object from ``root``."""
        return self.comm.bcast(obj, root=root)

    def gather(self, obj: Any, root: int = 0) -> list | None:
        """Gather picklable objects on ``root`` (None elsewhere)."""
        return self.comm.gather(obj, root=root)

    def allgather(self, obj: Any) -> list:
        """Gather picklable objects on every rank."""
        return self.comm.allgather(obj)

    def allreduce_sum(self, value: Any) -> Any:
        """Sum of ``value`` over ranks (for counts; floating totals are summed in rank order by callers)."""
        return self.comm.allreduce(value, op=self.MPI.SUM)

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now."""
        for s in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                s.flush()
        logging.shutdown()
        # MPICH's launcher can drop the failing rank's last stderr line when MPI_Abort kills the job at once;
        # a short pause lets the one-line error summary reach the terminal first.
        time.sleep(0.5)
        self.comm.Abort(code)

    def run_collective(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on rank 0, broadcast its result, or re-raise its :class:`ProdampiError` on every rank.

        Used for work whose failure every rank must see at once (deck loading), so that the job can exit
        cleanly instead of aborting.
        """
        res: tuple[str, Any]
        if self.is_root:
            try:
                res = ("ok", fn(*args, **kwargs))
            except ProdampiError as e:
                res = ("err", e)
        else:
            res = ("", None)
        res = self.bcast(res)
        if res[0] == "err":
            err = res[1]
            err.collective = True
            raise err
        return res[1]


def setup_logging(world: World, run_dir: str | os.PathLike | None = None, stage: str = "prodampi",
                  level: str = "INFO", per_rank_files: bool = True) -> Path | None:
    """Configure the ``prodampi`` logger: console on rank 0 (others: warnings), optional per-rank files.

    Returns the path of this rank's log file, or None.
    """
    root = logging.getLogger("prodampi")
    root.setLevel(logging.DEBUG)
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    root.propagate = False
    tag = f"{world.rank}/{world.size}"
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(getattr(logging, level) if world.is_root else logging.WARNING)
    console.setFormatter(logging.Formatter(f"%(asctime)s {tag} %(levelname)s %(message)s", "%H:%M:%S"))
    root.addHandler(console)
    path = None
    if run_dir is not None and per_rank_files:
        logdir = Path(run_dir) / "logs"
        logdir.mkdir(parents=True, exist_ok=True)
        path = logdir / f"{stage}_p{world.rank}.log"
        fh = logging.StreamHandler(_open_log(path))  # appended on restart: earlier attempts are kept
        fh.setLevel(logging.DEBUG if level == "DEBUG" else logging.INFO)
        fh.setFormatter(logging.Formatter(f"%(asctime)s {tag} %(name)s %(levelname)s %(message)s"))
        root.addHandler(fh)
    return path


def _open_log(path: Path) -> Any:
    """Open a log file for appending without following a symlink: a symlink (or anything not a regular
    file) at ``path`` is removed and replaced by a fresh file, never written through."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError:
        if not path.is_symlink() and (not path.exists() or path.is_dir()):
            raise
        path.unlink()
        fd = os.open(path, flags | os.O_EXCL, 0o644)
    return os.fdopen(fd, "a", buffering=1)


@contextlib.contextmanager
def abort_on_error(world: World) -> Iterator[None]:
    """Turn any exception on this rank into a prompt, job-wide exit with the exception's text.

    * :class:`ProdampiError` raised collectively (see :meth:`World.run_collective`): rank 0 prints its
      lines, every rank exits with its ``exit_code`` (no traceback, no abort).
    * :class:`ProdampiError` on one rank: that rank prints its lines and aborts the job.
    * any other exception: traceback to the log, one line to stderr, ``MPI_Abort(1)``.
    """
    try:
        yield
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print(f"prodampi: rank {world.rank}/{world.size}: interrupted", file=sys.stderr, flush=True)
        if world.size > 1:
            world.abort(130)
        raise SystemExit(130) from None
    except ProdampiError as e:
        collective = getattr(e, "collective", False)
        if world.is_root or not collective:
            prefix = "prodampi: error: " if world.size == 1 or collective else \
                f"prodampi: rank {world.rank}/{world.size}: error: "
            if getattr(e, "signum", None) is not None:  # signals.Interrupted
                prefix = "prodampi: " if world.size == 1 else f"prodampi: rank {world.rank}/{world.size}: "
            for line in e.problems:
                print(prefix + line, file=sys.stderr)
            sys.stderr.flush()
        log.debug("error", exc_info=True)
        if world.size > 1 and not collective:
            world.abort(e.exit_code)
        raise SystemExit(e.exit_code) from None
    except BaseException as e:  # noqa: BLE001 - every failure must end the job
        log.error("uncaught exception on rank %d:\n%s", world.rank, traceback.format_exc())
        print(f"prodampi: rank {world.rank}/{world.size}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        if world.size > 1:
            world.abort(1)
        raise SystemExit(1) from None


class Progress:
    """Rate-limited progress heartbeat: done/total, rate and ETA, logged at most every ``every_s`` seconds."""

    def __init__(self, total: int, what: str, every_s: float = 30.0, logger: logging.Logger | None = None):
        self.total, self.what, self.every_s = int(total), what, float(every_s)
        self.t0 = self.t_last = time.monotonic()
        self.log = logger or log

    def update(self, done: int, force: bool = False, extra: str = "") -> None:
        """Report ``done`` units finished (logged when due or ``force``)."""
        now = time.monotonic()
        if not force and now - self.t_last < self.every_s:
            return
        self.t_last = now
        el = now - self.t0
        rate = done / el if el > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        self.log.info("%s: %d/%d (%.1f%%), %.3g/s, ETA %.0f s%s", self.what, done, self.total,
                      100.0 * done / max(self.total, 1), rate, eta, f", {extra}" if extra else "")
