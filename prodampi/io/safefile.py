"""The one safe way to write a run file or a summary.

Every writer goes through here: the new content is written to a temporary file created **exclusively**
(``O_CREAT | O_EXCL | O_NOFOLLOW``, mode 0600) under a random, unguessable name with the recognisable prefix
``.prodampi-tmp-<pid>-<random>-<name>`` in the target's own folder, fsync'ed, renamed over the target with
``os.replace`` (which replaces a symlink at the target itself, never the file it points to), and the folder is
fsync'ed.  Writers such as h5py that open paths themselves get a path inside a private 0700 directory made with
``tempfile.mkdtemp`` in the target's folder (:func:`atomic_output`).  On any failure (an exception, including
:class:`prodampi.parallel.signals.Interrupted`) the temporary file is removed and the previous target is left
untouched.  Temporary files of dead runs are removed by :func:`clean_stale_temps` when a stage starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["TMP_PREFIX", "atomic_output", "write_bytes_atomic", "write_json_atomic", "fsync_dir",
           "clean_stale_temps", "temp_name"]

#: every temporary file or directory prodampi makes starts with this
TMP_PREFIX = ".prodampi-tmp-"
_TMP_RE = re.compile(r"^\.prodampi-tmp-(\d+)-")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def temp_name(final_name: str) -> str:
    """A fresh temporary name for ``final_name``: ``.prodampi-tmp-<pid>-<random>-<final_name>``."""
    return f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}-{final_name}"


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a directory (makes a rename in it durable); errors are ignored (not every filesystem allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _excl_opener(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)


def _check_target(path: Path) -> None:
    """The target may be missing, a regular file or a symlink (replaced itself); never a directory."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"{path}: is a directory, cannot be replaced by a file")


def _replace(tmp: Path, path: Path, before_replace: Callable[[], None] | None) -> None:
    if before_replace is not None:
        before_replace()
    _check_target(path)
    os.replace(tmp, path)  # renames onto the name: a symlink there is replaced, not followed
    fsync_dir(path.parent)


def write_bytes_atomic(path: str | os.PathLike, data: bytes,
                       before_replace: Callable[[], None] | None = None) -> None:
    """Write ``data`` to ``path`` atomically and durably (see the module docstring).

    ``before_replace``, if given, is called between the fsync and the rename (fault-injection tests).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(temp_name(path.name))
    try:
        with open(tmp, "xb", opener=_excl_opener) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _replace(tmp, path, before_replace)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_json_atomic(path: str | os.PathLike, obj: Any, before_replace: Callable[[], None] | None = None,
                      default: Callable[[Any], Any] | None = None) -> None:
    """``obj`` as indented JSON (plus a newline) through :func:`write_bytes_atomic`."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=default) + "\n"
    write_bytes_atomic(path, text.encode(), before_replace=before_replace)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, before_replace: Callable[[], None] | None = None) -> Iterator[Path]:
    """``with atomic_output(final) as tmp:`` write ``tmp`` (by path, e.g. with h5py); on success it is fsync'ed
    and renamed over ``final``.  ``tmp`` lies in a private 0700 directory (``.prodampi-tmp-<pid>-...``) in
    ``final``'s folder, removed afterwards whatever happens.  ``before_replace`` runs just before the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", suffix=f"-{path.name}",
                                    dir=path.parent))
    tmp = private / path.name
    try:
        yield tmp
        st = os.lstat(tmp)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{tmp}: the writer did not leave a regular file")
        fd = os.open(tmp, os.O_RDONLY | _NOFOLLOW)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _replace(tmp, path, before_replace)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(run_dir: str | os.PathLike, older_than: float | None = None,
                      recursive: bool = True) -> list[Path]:
    """Remove temporary files and directories of dead runs under ``run_dir``; returns what was removed.

    An entry named ``.prodampi-tmp-<pid>-...`` is stale when ``<pid>`` is not a live process on this host,
    or when it is older than ``older_than`` (a ``time.time()`` value: the lock holder's start; the lock
    guarantees that no other live job writes here).  Entries of this process are kept.  Symlinks are removed
    as links, never followed.
    """
    removed: list[Path] = []
    root = Path(run_dir)
    dirs = [root]
    while dirs:
        d = dirs.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            m = _TMP_RE.match(e.name)
            if m is None:
                if recursive and e.is_dir(follow_symlinks=False):
                    dirs.append(Path(e.path))
                continue
            pid = int(m.group(1))
            if pid == os.getpid():
                continue
            try:
                mtime = e.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            if _pid_alive(pid) and (older_than is None or mtime >= older_than):
                continue
            p = Path(e.path)
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            removed.append(p)
    return removed
