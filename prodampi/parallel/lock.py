"""The run-directory lock: one prodampi job per run directory.

Rank 0 takes an advisory ``fcntl.flock`` on ``<run_dir>/.prodampi.lock`` (opened without following a
symlink) when the first stage starts and holds it until the process ends (``prodampi run`` holds it across
all its stages; the kernel releases it on any exit, SIGKILL included).  The holder's host, pid, start time and
command are written into the lock file, so that a second job stops at once with one line naming the holder.

A run directory that already holds files prodampi did not make is refused unless it is marked as a prodampi
run directory by the marker file ``.prodampi-run`` (written when prodampi first uses the directory).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from ..errors import StageError

LOCK_NAME = ".prodampi.lock"
MARKER_NAME = ".prodampi-run"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

#: locks held by this process: resolved run dir -> (fd, start time)
_HELD: dict[str, tuple[int, float]] = {}


def _prodampi_name(name: str, stems: set[str]) -> bool:
    """Names prodampi itself puts in a run directory (accepted in an unmarked directory of an older version)."""
    if name.startswith(".prodampi") or name == "logs" or name.endswith(".ledger.json"):
        return True
    if name.startswith(".") and ".tmp" in name:  # temp files of older versions
        return True
    return any(name in (f"{s}.json", f"{s}.h5") for s in stems | {"inputs", "selftest"})


def check_run_dir(run_dir: str | os.PathLike, known_stems: Iterable[str] = ()) -> None:
    """Refuse a run directory that is not one (a file, a symlink) or holds foreign files without a marker."""
    d = Path(run_dir)
    if d.is_symlink() and not d.is_dir():
        raise StageError(f"{d}: run directory is a dangling symlink")
    if d.exists() and not d.is_dir():
        raise StageError(f"{d}: run directory exists and is not a directory")
    if not d.exists() or (d / MARKER_NAME).is_file():
        return
    stems = set(known_stems)
    foreign = sorted(n for n in os.listdir(d) if not _prodampi_name(n, stems))
    if foreign:
        raise StageError(f"{d}: run directory holds files prodampi did not make ({', '.join(foreign[:3])}"
                         f"{', ...' if len(foreign) > 3 else ''}) and no {MARKER_NAME} marker; "
                         "use an empty or new directory")


def holder_text(info: dict) -> str:
    """``host H, pid P, started T, command C`` from the lock file's record."""
    return (f"host {info.get('host', '?')}, pid {info.get('pid', '?')}, started {info.get('started', '?')}, "
            f"command {info.get('command', '?')}")


def acquire(run_dir: str | os.PathLike, known_stems: Iterable[str] = ()) -> float:
    """Take (or keep, when this process holds it) the lock of ``run_dir``; returns the holder's start time.

    Creates the directory and its marker.  ``known_stems``: stage names whose ``<stem>.json``/``.h5`` count
    as prodampi's own in a directory without a marker.  Raises :class:`StageError` naming the holder when another job
    holds the lock, or when the directory is refused by :func:`check_run_dir`.
    """
    d = Path(run_dir)
    key = str(d.resolve())
    if key in _HELD:
        return _HELD[key][1]
    check_run_dir(d, known_stems)
    d.mkdir(parents=True, exist_ok=True)
    lp = d / LOCK_NAME
    try:
        fd = os.open(lp, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o644)
    except OSError as e:
        raise StageError(f"{lp}: cannot open the run-directory lock ({e.strerror or e})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            info = json.loads(os.pread(fd, 65536, 0).decode() or "{}")
        except (OSError, ValueError):
            info = {}
        os.close(fd)
        raise StageError(f"{d}: run directory is in use by another prodampi job ({holder_text(info)})") from None
    now = time.time()
    info = {"host": socket.gethostname(), "pid": os.getpid(),
            "started": _dt.datetime.fromtimestamp(now, _dt.UTC).isoformat(timespec="seconds"),
            "started_epoch": now, "command": " ".join(sys.argv)}
    data = (json.dumps(info) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    _HELD[key] = (fd, now)
    marker = d / MARKER_NAME
    if not marker.is_file():
        from ..io.safefile import write_bytes_atomic

        write_bytes_atomic(marker, b"prodampi run directory\n")
    return now


def release(run_dir: str | os.PathLike) -> None:
    """Release the lock of ``run_dir`` if this process holds it."""
    held = _HELD.pop(str(Path(run_dir).resolve()), None)
    if held is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(held[0], fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(held[0])


def release_all() -> None:
    """Release every lock this process holds (also done by the kernel on exit)."""
    for key in list(_HELD):
        release(key)
