"""What every HDF5 run file shares: one atomic writer and one checking reader.

A run file (``inputs.h5``, later ``posterior.h5``, ``ensemble.h5``) is a tree of plain datasets with a few
root attributes.  Every contract module in :mod:`prodampi.io` (one per run file) declares its layout as a
tuple of :class:`Dataset` entries and uses

* :func:`write_h5_atomic` to write it: the file is written under a fresh temporary name in the same folder
  (created exclusively), flushed to disk and renamed over the target, so a crash leaves the previous file or
  none; the root attribute ``complete = 1`` is set last, inside the temporary file;
* :func:`check_file` (cheap: root attributes only) and :func:`read_checked` (every declared dataset present
  with the declared dimensions) to read it back, raising :class:`~prodampi.errors.InputDataError` that names
  the file and the dataset path.

Text is stored as UTF-8 bytes (``dtype S``), flags as ``uint8``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputDataError

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ layout
@dataclass(frozen=True)
class Dataset:
    """One dataset of a run-file layout.

    Attributes
    ----------
    path : str
        Path inside the file, e.g. ``"sites/forcing/tsoi_k"``.
    dims : tuple of str
        Dimension names (``"P"``, ``"L"``, ...), fixed sizes as digits (``"20"``) or ``"P+1"``; ``()`` for a
        scalar.  Equal names must have equal sizes within one file.
    dtype : str
        ``"f8"``, ``"f4"`` (float32), ``"i8"``, ``"u1"`` (flag 0/1), ``"i1"``, ``"bool"`` or ``"S"`` (UTF-8
        bytes).
    unit : str
        Physical unit (``"g C m-3"``, ``"cm"``, ``"1"`` for dimensionless, ``""`` for text/ids).
    doc : str
        One line: what it holds.
    when : str
        ``"always"`` or the name of a condition the contract module defines (e.g. ``"synthetic"``); a
        dataset is required only when its condition holds for the file at hand.
    """

    path: str
    dims: tuple[str, ...]
    dtype: str
    unit: str
    doc: str
    when: str = "always"


_KIND = {"f8": "f", "f4": "f", "i8": "i", "i1": "i", "u1": "u", "bool": "b", "S": "S"}


def layout_text(layout: Iterable[Dataset], dims_doc: Mapping[str, str] | None = None) -> str:
    """The layout as a reStructuredText table (appended to each contract module's docstring)."""
    rows = [(d.path, "(" + ", ".join(d.dims) + (",)" if len(d.dims) == 1 else ")"), d.dtype, d.unit or "-",
             d.doc + ("" if d.when == "always" else f" [{d.when}]")) for d in layout]
    head = ("dataset", "shape", "dtype", "unit", "meaning [present when]")
    w = [max(len(r[i]) for r in [*rows, head]) for i in range(5)]
    rule = "  ".join("=" * x for x in w)
    lines = [rule, "  ".join(h.ljust(x) for h, x in zip(head, w)).rstrip(), rule]
    lines += ["  ".join(c.ljust(x) for c, x in zip(r, w)).rstrip() for r in rows]
    lines.append(rule)
    if dims_doc:
        lines += ["", "Dimensions: " + "; ".join(f"``{k}`` {v}" for k, v in dims_doc.items()) + "."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ writing
def to_bytes(xs: Any) -> np.ndarray:
    """Strings (str, bytes or a numpy array of them) as a 1-D UTF-8 bytes array (``dtype S``)."""
    xs = [x.decode() if isinstance(x, bytes) else str(x) for x in np.asarray(xs).ravel()]
    return np.array([x.encode("utf-8") for x in xs], dtype=bytes) if xs else np.zeros(0, dtype="S1")


def h5able(v: Any) -> Any:
    """``v`` as an array HDF5 can store: unicode and object arrays become UTF-8 bytes."""
    v = np.asarray(v)
    if v.dtype.kind == "U":
        return to_bytes(v)
    if v.dtype.kind == "O":
        return to_bytes([str(x) for x in v.ravel()])
    return v


def write_group(g: Any, d: Mapping[str, Any]) -> None:
    """Write a nested dict into the h5py group ``g``: dicts become groups, everything else datasets."""
    for k, v in d.items():
        if isinstance(v, Mapping):
            write_group(g.create_group(k), v)
        else:
            a = h5able(v)
            ds = g.create_dataset(k, data=a)
            ds.attrs[HASH_ATTR] = content_hash(a)


#: dataset attribute holding :func:`content_hash` of the dataset's values (integrity check before reuse)
HASH_ATTR = "blake2b"


def content_hash(a: Any) -> str:
    """blake2b (128 bit) of an array's dtype, shape and raw bytes (the per-dataset checksum of a run file)."""
    a = np.ascontiguousarray(np.asarray(a))
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def verify_file(path: str | os.PathLike) -> list[str]:
    """Checksum problems of a run file: one line per dataset whose values do not match the hash stored with
    it (or that has none), each naming ``file: dataset /path``; empty when every dataset checks out.

    Reads every dataset (a 30 MB file takes a fraction of a second)."""
    import h5py

    path = Path(path)
    problems: list[str] = []
    try:
        with h5py.File(path, "r") as f:
            def visit(name: str, obj: Any) -> None:
                if not isinstance(obj, h5py.Dataset):
                    return
                want = obj.attrs.get(HASH_ATTR)
                if want is None:
                    problems.append(f"{path}: dataset /{name} has no checksum")
                    return
                want = want.decode() if isinstance(want, bytes) else str(want)
                try:
                    got = content_hash(obj[()])
                except (OSError, ValueError) as e:
                    problems.append(f"{path}: dataset /{name} cannot be read ({e})")
                    return
                if got != want:
                    problems.append(f"{path}: dataset /{name} fails its checksum")

            f.visititems(visit)
    except OSError as e:
        problems.append(f"{path}: not a readable HDF5 file ({e})")
    return problems


def file_digest(path: str | os.PathLike, key_attr: str = "") -> str | None:
    """One digest of a run file's stored per-dataset checksums (and root attribute ``key_attr``), or None
    when the file cannot be read.  Cheap (attributes only); pair it with :func:`verify_file`."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            items: list[str] = []
            f.visititems(lambda n, o: items.append(f"{n}={o.attrs.get(HASH_ATTR)!r}")
                         if isinstance(o, h5py.Dataset) else None)
            key = f.attrs.get(key_attr) if key_attr else None
    except OSError:
        return None
    h = hashlib.blake2b(digest_size=16)
    h.update(("\n".join(sorted(items)) + f"\nkey={key!r}").encode())
    return h.hexdigest()


def _nbytes(groups: Mapping[str, Any]) -> int:
    """Bytes of array data in a nested dict of arrays (what the file will hold, before HDF5 overhead)."""
    n = 0
    for v in groups.values():
        n += _nbytes(v) if isinstance(v, Mapping) else int(np.asarray(v).nbytes)
    return n


@contextlib.contextmanager
def h5_atomic(path: str | os.PathLike, need_bytes: int,
              before_replace: Callable[[], None] | None = None) -> Iterator[Any]:
    """``with h5_atomic(path, need) as f:`` -- an open, writable h5py file that becomes ``path`` atomically.

    The free space is checked first against ``need_bytes`` (HDF5 cannot always recover from a full disk
    mid-write), so a full disk is one clear :class:`~prodampi.errors.InputDataError` naming the folder.  The
    data go to a file in a private temporary folder inside the target's folder
    (:func:`prodampi.io.safefile.atomic_output`: never a predictable name, never through a symlink); after the
    body the root attribute ``complete = 1`` is set, the file is flushed, fsynced and renamed over ``path``
    (``before_replace`` is called just before the rename: fault-injection tests).  On any failure the
    temporary folder is removed and the previous ``path`` (if any) is left untouched.
    """
    import shutil

    import h5py

    from .safefile import atomic_output

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path.parent).free
    if free < need_bytes:
        raise InputDataError(f"{path.parent}: not enough free space to write {path.name} "
                             f"(needs about {need_bytes / 2**20:.1f} MiB, {free / 2**20:.1f} MiB free)")
    try:
        with atomic_output(path, before_replace=before_replace) as tmp:
            with h5py.File(tmp, "w") as f:
                yield f
                f.attrs["complete"] = 1
                f.flush()
    except OSError as e:
        if getattr(e, "errno", None) == errno.ENOSPC or "No space left" in str(e):
            raise InputDataError(f"{path.parent}: no space left on device while writing {path.name}") from None
        raise


def write_h5_atomic(path: str | os.PathLike, groups: Mapping[str, Any], attrs: Mapping[str, Any],
                    before_replace: Callable[[], None] | None = None) -> None:
    """Write a run file atomically (:func:`h5_atomic`).

    Parameters
    ----------
    path : the target file; its folder is created if missing
    groups : nested dict of arrays (see :func:`write_group`)
    attrs : root attributes; ``complete = 1`` is added after everything else is written
    before_replace : called between the flush and the rename (fault-injection tests)
    """
    need = _nbytes(groups) + (1 << 20)  # data + 1 MiB for metadata and attributes
    with h5_atomic(path, need, before_replace) as f:
        write_group(f, groups)
        for k, v in attrs.items():
            f.attrs[k] = v


# ------------------------------------------------------------------------------------------------ reading
def check_file(path: str | os.PathLike, format_version: int, what: str) -> str | None:
    """Why the run file at ``path`` cannot be used, or None when it is present, complete and of this version.

    Reads the root attributes only (cheap; used by the stage registry before a stage starts).

    Parameters
    ----------
    path : the run file
    format_version : the version this prodampi reads
    what : the kind of file, for messages (``"inputs"``)
    """
    import h5py

    path = Path(path)
    if not path.exists():
        return "missing"
    if not path.is_file():
        return "not a file"
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
    except OSError as e:
        return f"not a readable HDF5 file ({e})"
    if not attrs.get("complete"):
        return "incomplete (its writer did not finish)"
    v = attrs.get("format_version")
    if v is None or int(v) != int(format_version):
        return f"written in {what} format version {v} (this prodampi reads version {format_version})"
    return None


def tree_index(tree: Mapping[str, Any], prefix: str = "") -> dict[str, tuple[tuple[int, ...], str]]:
    """``{dataset path: (shape, dtype kind)}`` of a nested dict of arrays (as given to :func:`write_group`)."""
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    for k, v in tree.items():
        p = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(tree_index(v, p + "/"))
        else:
            a = h5able(v)
            out[p] = (tuple(a.shape), a.dtype.kind)
    return out


def file_index(f: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{dataset path: (shape, dtype kind)}`` of an open h5py file."""
    import h5py

    out: dict[str, tuple[tuple[int, ...], str]] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            out[name] = (tuple(obj.shape), obj.dtype.kind)

    f.visititems(visit)
    return out


def check_layout(index: Mapping[str, tuple[tuple[int, ...], str]], layout: Iterable[Dataset], held: set[str],
                 strict: bool = False) -> list[str]:
    """Problems of a file (given by its :func:`file_index` or :func:`tree_index`) against a layout.

    Parameters
    ----------
    index : dataset path -> (shape, dtype kind)
    layout : the declared datasets
    held : conditions that hold for this file; datasets whose ``when`` is ``"always"`` or in ``held`` are
        required
    strict : also report datasets the layout does not declare

    Returns
    -------
    list of str
        One line per problem, each naming the dataset path (``/group/name``); empty when the file fits.
    """
    problems: list[str] = []
    sizes: dict[str, tuple[int, str]] = {}
    layout = list(layout)
    for d in layout:
        if d.when != "always" and d.when not in held:
            continue
        if d.path not in index:
            problems.append(f"dataset /{d.path} is missing")
            continue
        shape, kind = index[d.path]
        want = "(" + ", ".join(d.dims) + ")"
        if len(shape) != len(d.dims):
            problems.append(f"dataset /{d.path} has shape {shape}, the layout says {want}")
            continue
        for n, dim in zip(shape, d.dims):
            base, _, plus = dim.partition("+")
            n_base = n - int(plus or 0)
            if base.isdigit():
                if n_base != int(base):
                    problems.append(f"dataset /{d.path} has shape {shape}, the layout says {want}")
            elif base in sizes:
                if sizes[base][0] != n_base:
                    problems.append(f"dataset /{d.path} has shape {shape} ({dim} = {n}), but /{sizes[base][1]} "
                                    f"gives {base} = {sizes[base][0]}")
            else:
                sizes[base] = (n_base, d.path)
        if kind != _KIND[d.dtype] and not (d.dtype == "f8" and kind in "iu"):
            problems.append(f"dataset /{d.path} has dtype kind {kind!r}, the layout says {d.dtype}")
    if strict:
        declared = {d.path for d in layout}
        problems += [f"dataset /{p} is not declared in the layout" for p in sorted(index) if p not in declared]
    return problems


def _load(g: Any) -> dict[str, Any]:
    import h5py

    return {k: (_load(v) if isinstance(v, h5py.Group) else v[()]) for k, v in g.items()}


def read_checked(path: str | os.PathLike, layout: Iterable[Dataset], format_version: int, what: str,
                 conditions: Callable[[Mapping[str, Any], set[str]], set[str]] | None = None,
                 remake: str = "") -> tuple[dict, dict]:
    """Read a whole run file after checking it against its layout.

    Parameters
    ----------
    path : the run file
    layout : its declared datasets
    format_version : the version this prodampi reads
    what : kind of file, for messages (``"inputs"``)
    conditions : ``conditions(root attrs, dataset paths) -> condition names`` that hold for this file
        (datasets with ``when`` in that set, or ``"always"``, are required)
    remake : hint appended to every message, e.g. ``"make it again with: prodampi prepare DECK"``

    Returns
    -------
    (data, attrs) : the nested dict of every group and dataset, and the root attributes

    Raises
    ------
    InputDataError
        naming the file and the problem: missing, incomplete, another format version, a missing dataset
        (with its path) or a dataset whose shape or dtype disagrees with the layout.
    """
    import h5py

    path = Path(path)
    hint = f"; {remake}" if remake else ""
    why = check_file(path, format_version, what)
    if why is not None:
        raise InputDataError(f"{path}: {what} file is {why}{hint}")
    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
        index = file_index(f)
        held = conditions(attrs, set(index)) if conditions is not None else set()
        problems = check_layout(index, layout, held)
        if not problems:
            problems = [p.split(": ", 1)[1] for p in verify_file(path)]
        if problems:
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            raise InputDataError(f"{path}: {problems[0]}{more}{hint}")
        data = {k: (_load(f[k]) if isinstance(f[k], h5py.Group) else f[k][()]) for k in f}
    return data, attrs
