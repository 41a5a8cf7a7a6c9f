"""The ``ensemble.h5`` contract: what stage **learn** writes and stage **map** reads.

One file per run directory (``<run_dir>/ensemble.h5``), written by :func:`write_ensemble` (atomically: a
private temporary file in the same folder, fsynced and renamed when complete; every dataset carries its
:func:`~prodampi.io.h5file.content_hash` in the attribute ``blake2b``), checked by :func:`check_ensemble`
(the whole reuse decision) and read back by :func:`read_ensemble`.  The network weights are files beside
it, ``<run_dir>/ensemble.weights/<model>/<member>.pt``; the file records each one's path (relative to the
run directory) and its :func:`weights_digest`, so a replaced or damaged weights file is caught.

Text is UTF-8 bytes (``dtype S``), flags are ``uint8`` (0/1), the predictions ``float32``.

Root attributes
---------------
``format_version`` (int, :data:`FORMAT_VERSION`), ``complete`` (1, set last), ``learn_key`` (hash of the deck
parts that determine the file; reuse check), ``models`` (JSON list of model names, one group each),
``summary`` (JSON: the stage summary), ``provenance`` (JSON: versions, git revision, deck hash, seed, ranks,
host, time), ``config`` (JSON: the learn settings).

Per model: the group ``<model>/``
---------------------------------
Members are best-guess (``bg_01`` ..., trained on every non-held-out site) or bootstrap (``bs_001`` ...,
trained on a resample with replacement) networks.  ``split/*`` says which sites each member saw:
``train_count`` counts a site's copies among the member's training rows (bootstrap draws repeat), ``val``
marks its validation sites, ``oob`` the sites it never drew (out of bag: never trained on, never
validated), ``holdout`` the sites held out of every member.  ``pred/*`` are the network outputs
(normalised parameters, not clipped) of every member at every site and every valid grid cell;
``best_guess/*`` their median over the best-guess members (computed by :func:`write_ensemble`).
``scaling/*`` is the min-max covariate scaling ``(x - min) / (max - min)`` fitted on the grid, part of the
model.  The dimensions may differ between models.  Paths below are relative to ``<model>/``:

"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..errors import InputDataError
from .h5file import (
    HASH_ATTR,
    Dataset,
    check_file,
    check_layout,
    content_hash,
    file_index,
    h5_atomic,
    layout_text,
    to_bytes,
    verify_file,
)

__all__ = ["FORMAT_VERSION", "FILE_NAME", "WEIGHTS_DIR", "MADE_BY", "KINDS", "LAYOUT", "DIMS", "layout",
           "ModelEnsemble", "weights_digest", "write_ensemble", "check_ensemble", "read_ensemble"]

#: version of the layout below; bump it when a dataset is added, removed or changes meaning
FORMAT_VERSION = 1

#: the file's name in the run directory
FILE_NAME = "ensemble.h5"

#: the folder (in the run directory) of the weights files, one subfolder per model
WEIGHTS_DIR = "ensemble.weights"

#: the command that makes the file (for messages)
MADE_BY = "learn"

#: the member kinds
KINDS = ("best_guess", "bootstrap")

#: (ModelEnsemble field or None when the writer computes it, path, dims, dtype, unit, doc)
_ROWS: tuple[tuple[str | None, str, tuple[str, ...], str, str, str], ...] = (
    ("param_name", "param_name", ("param",), "S", "", "parameter names, in the model's table order"),
    ("member_name", "member/name", ("member",), "S", "", "member name (bg_01 ..., bs_001 ...)"),
    ("member_kind", "member/kind", ("member",), "S", "", "best_guess | bootstrap"),
    ("member_seed", "member/seed", ("member",), "i8", "", "the member's key seed"),
    ("member_epochs_run", "member/epochs_run", ("member",), "i8", "", "epochs trained"),
    ("member_best_epoch", "member/best_epoch", ("member",), "i8", "", "epoch of the kept (lowest val_loss) weights"),
    ("member_best_val_loss", "member/best_val_loss", ("member",), "f8", "1", "validation loss of the kept weights"),
    ("member_stopped_early", "member/stopped_early", ("member",), "u1", "1", "stopped by early stopping"),
    ("member_weights_file", "member/weights_file", ("member",), "S", "",
     f"weights file, relative to the run dir ({WEIGHTS_DIR}/<model>/<member>.pt)"),
    ("member_weights_blake2b", "member/weights_blake2b", ("member",), "S", "",
     "weights_digest of that file's bytes (hex)"),
    ("train_loss", "history/train_loss", ("member", "epoch"), "f8", "1", "training loss per epoch (NaN after last)"),
    ("val_loss", "history/val_loss", ("member", "epoch"), "f8", "1", "validation loss per epoch (NaN after last)"),
    ("train_count", "split/train_count", ("member", "site"), "i8", "", "copies of the site among the training rows"),
    ("val", "split/val", ("member", "site"), "u1", "1", "site in the member's validation set"),
    ("oob", "split/oob", ("member", "site"), "u1", "1", "site never drawn by the member (out of bag)"),
    ("holdout", "split/holdout", ("site",), "u1", "1", "site held out of every member (evaluation)"),
    ("profile_id", "site/profile_id", ("site",), "S", "", "profile id of the site"),
    ("site_row", "site/row", ("site",), "i8", "", "row of the profile in inputs.h5"),
    ("site_target", "site/target", ("site", "param"), "f8", "1", "training target: posterior means, normalised"),
    ("site_lat", "site/lat", ("site",), "f8", "degree_north", "site latitude"),
    ("site_lon", "site/lon", ("site",), "f8", "degree_east", "site longitude"),
    ("cell_index", "cell/index", ("cell",), "i8", "", "row of the cell among the grid's valid cells in inputs.h5"),
    ("cell_lat", "cell/lat", ("cell",), "f8", "degree_north", "cell centre latitude"),
    ("cell_lon", "cell/lon", ("cell",), "f8", "degree_east", "cell centre longitude"),
    ("pred_site", "pred/site", ("member", "site", "param"), "f4", "1",
     "predicted normalised parameters at the sites (not clipped)"),
    ("pred_cell", "pred/cell", ("member", "cell", "param"), "f4", "1",
     "predicted normalised parameters at the cells (not clipped)"),
    (None, "best_guess/site_median", ("site", "param"), "f4", "1", "median of pred/site over the best-guess members"),
    (None, "best_guess/cell_median", ("cell", "param"), "f4", "1", "median of pred/cell over the best-guess members"),
    ("scaling_min", "scaling/min", ("K",), "f8", "see scaling/names", "covariate minimum over the grid"),
    ("scaling_max", "scaling/max", ("K",), "f8", "see scaling/names", "covariate maximum over the grid"),
    ("scaling_names", "scaling/names", ("K",), "S", "", "covariate names (the network's input order)"),
    ("scaling_categorical", "scaling/categorical", ("K",), "u1", "1", "categorical covariate"),
)

_NP = {"f8": np.float64, "f4": np.float32, "i8": np.int64, "u1": np.uint8}
_FINITE = {"site_target", "site_lat", "site_lon", "cell_lat", "cell_lon", "pred_site", "pred_cell",
           "scaling_min", "scaling_max"}
_HEX = re.compile(r"[0-9a-f]{32}")


def layout(model: str = "") -> tuple[Dataset, ...]:
    """The datasets of one model group, paths prefixed by ``"<model>/"`` (unprefixed for ``model=""``)."""
    prefix = f"{model}/" if model else ""
    return tuple(Dataset(prefix + p, d, t, u, doc) for _f, p, d, t, u, doc in _ROWS)


#: every dataset of one ``<model>/`` group (paths relative to it)
LAYOUT: tuple[Dataset, ...] = layout()

#: what the dimension names stand for (sizes per model)
DIMS: dict[str, str] = {"member": "members (best guess, then bootstrap)", "site": "sites (profiles) of the model",
                        "cell": "valid cells", "param": "parameters of the model", "epoch": "epochs (most run)",
                        "K": "covariates"}

__doc__ += layout_text(LAYOUT, DIMS) + "\n"


# ------------------------------------------------------------------------------------------------ the data
@dataclass
class ModelEnsemble:
    """Everything ``ensemble.h5`` holds for one model (see the module's layout: field ``a_b`` is ``a/b``).

    Shapes: ``M`` members, ``S`` sites, ``C`` cells, ``P`` parameters, ``E`` epochs, ``K`` covariates.
    Text fields take str or bytes, flags bool or 0/1; ``pred_site`` (M, S, P) and ``pred_cell`` (M, C, P)
    are stored as float32 (pass float32 to avoid a copy at paper scale).  The best-guess medians are not
    fields: :func:`write_ensemble` computes them.
    """

    param_name: Any          # (P,) str
    member_name: Any         # (M,) str
    member_kind: Any         # (M,) str, best_guess | bootstrap
    member_seed: Any         # (M,) int
    member_epochs_run: Any   # (M,) int
    member_best_epoch: Any   # (M,) int
    member_best_val_loss: Any  # (M,) float
    member_stopped_early: Any  # (M,) flag
    member_weights_file: Any   # (M,) str, relative to the run directory
    member_weights_blake2b: Any  # (M,) str, weights_digest of the file
    train_loss: Any          # (M, E) float, NaN after the last epoch
    val_loss: Any            # (M, E) float, NaN after the last epoch
    train_count: Any         # (M, S) int >= 0
    val: Any                 # (M, S) flag
    oob: Any                 # (M, S) flag
    holdout: Any             # (S,) flag
    profile_id: Any          # (S,) str
    site_row: Any            # (S,) int
    site_target: Any         # (S, P) float
    site_lat: Any            # (S,) degree_north
    site_lon: Any            # (S,) degree_east
    cell_index: Any          # (C,) int
    cell_lat: Any            # (C,) degree_north
    cell_lon: Any            # (C,) degree_east
    pred_site: Any           # (M, S, P) float32
    pred_cell: Any           # (M, C, P) float32
    scaling_min: Any         # (K,) float
    scaling_max: Any         # (K,) float
    scaling_names: Any       # (K,) str
    scaling_categorical: Any  # (K,) flag

    def sizes(self) -> dict[str, int]:
        """The size of every dimension, from the field that first names it (checked by :meth:`validate`)."""
        out: dict[str, int] = {}
        for f, _p, dims, *_ in _ROWS:
            if f is not None:
                for n, d in zip(np.shape(getattr(self, f)), dims):
                    out.setdefault(d, int(n))
        return out

    def validate(self) -> None:
        """Raise ValueError naming the field when the arrays do not fit together.

        Checked: the rank, dimensions (equal names, equal sizes) and dtype kind of every field; M, S, P >= 1;
        finite values in ``pred_*``, ``site_target``, coordinates and scaling (the loss histories and
        ``member_best_val_loss`` may hold NaN); flags 0/1; unique, non-empty member names and profile ids;
        kinds in :data:`KINDS` with at least one best guess; ``0 <= epochs_run <= E``, ``0 <= best_epoch <=
        epochs_run``; ``train_count >= 0``; an out-of-bag site has ``train_count == 0`` and is not in ``val``;
        a held-out site is in no member's training or validation rows; ``scaling_max >= scaling_min``;
        weights paths relative, inside the run directory; digests 32 lowercase hex digits.
        """
        sizes: dict[str, tuple[int, str]] = {}
        for f, _p, dims, dtype, *_ in _ROWS:
            if f is None:
                continue
            a = np.asarray(getattr(self, f))
            if a.ndim != len(dims):
                raise ValueError(f"ModelEnsemble.{f}: has shape {a.shape}, want ({', '.join(dims)})")
            for n, d in zip(a.shape, dims):
                if d in sizes and sizes[d][0] != n:
                    raise ValueError(f"ModelEnsemble.{f}: has shape {a.shape} ({d} = {n}), but {sizes[d][1]} "
                                     f"gives {d} = {sizes[d][0]}")
                sizes.setdefault(d, (int(n), f))
            k = a.dtype.kind
            ok = {"S": k in "SU" or (k == "O" and all(isinstance(x, (str, bytes)) for x in a.ravel())),
                  "i8": k in "iu", "u1": k in "biu", "f8": k in "fiu", "f4": k in "fiu"}[dtype]
            if not ok:
                raise ValueError(f"ModelEnsemble.{f}: dtype {a.dtype} does not fit {dtype}")
            if dtype == "u1" and a.size and not np.isin(a, (0, 1)).all():
                raise ValueError(f"ModelEnsemble.{f}: a flag must be 0 or 1")
            if f in _FINITE and a.size and not np.isfinite(a).all():
                raise ValueError(f"ModelEnsemble.{f}: holds {int((~np.isfinite(a)).sum())} non-finite values")
        for d in ("member", "site", "param"):
            if sizes[d][0] < 1:
                raise ValueError(f"ModelEnsemble.{sizes[d][1]}: dimension {d} is empty")
        txt = {f: [x.decode() if isinstance(x, bytes) else str(x) for x in np.asarray(getattr(self, f)).ravel()]
               for f in ("member_name", "member_kind", "profile_id", "member_weights_file", "member_weights_blake2b")}
        for f in ("member_name", "profile_id"):
            if "" in txt[f] or len(set(txt[f])) != len(txt[f]):
                raise ValueError(f"ModelEnsemble.{f}: empty or repeated names")
        bad = sorted(set(txt["member_kind"]) - set(KINDS))
        if bad:
            raise ValueError(f"ModelEnsemble.member_kind: unknown kinds {bad} (known: {KINDS})")
        if "best_guess" not in txt["member_kind"]:
            raise ValueError("ModelEnsemble.member_kind: no best_guess member (the medians need one)")
        run, best = np.asarray(self.member_epochs_run), np.asarray(self.member_best_epoch)
        if ((run < 0) | (run > sizes["epoch"][0])).any():
            raise ValueError(f"ModelEnsemble.member_epochs_run: outside 0..{sizes['epoch'][0]} (the history length)")
        if ((best < 0) | (best > run)).any():
            raise ValueError("ModelEnsemble.member_best_epoch: outside 0..epochs_run")
        count = np.asarray(self.train_count)
        val, oob = np.asarray(self.val).astype(bool), np.asarray(self.oob).astype(bool)
        if (count < 0).any():
            raise ValueError("ModelEnsemble.train_count: negative counts")
        if (oob & ((count > 0) | val)).any():
            raise ValueError("ModelEnsemble.oob: an out-of-bag site is among the member's training or validation rows")
        hold = np.asarray(self.holdout).astype(bool)
        if (hold[None, :] & ((count > 0) | val)).any():
            raise ValueError("ModelEnsemble.holdout: a held-out site is among a member's training or validation rows")
        for f in ("site_row", "cell_index"):
            a = np.asarray(getattr(self, f))
            if (a < 0).any() or np.unique(a).size != a.size:
                raise ValueError(f"ModelEnsemble.{f}: negative or repeated rows")
        if (np.asarray(self.scaling_max, float) < np.asarray(self.scaling_min, float)).any():
            raise ValueError("ModelEnsemble.scaling_max: below scaling_min")
        for w in txt["member_weights_file"]:
            if _bad_relpath(w):
                raise ValueError(f"ModelEnsemble.member_weights_file: {w!r} is not a path inside the run directory")
        if not all(_HEX.fullmatch(h) for h in txt["member_weights_blake2b"]):
            raise ValueError("ModelEnsemble.member_weights_blake2b: want 32 lowercase hex digits (weights_digest)")


def _bad_relpath(w: str) -> bool:
    p = PurePosixPath(w)
    return not w or p.is_absolute() or ".." in p.parts or "\\" in w or "\x00" in w


def weights_digest(path: str | os.PathLike) -> str:
    """blake2b (128 bit, hex) of a file's bytes: the digest ``member/weights_blake2b`` records."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------ writing
def _medians(pred: Any, bg: np.ndarray) -> np.ndarray:
    """Median over the best-guess members (rows ``bg``) of the float32 values the file stores."""
    a = np.asarray(pred)
    sub = a[bg] if a.dtype == np.float32 else a[bg].astype(np.float32)
    return np.median(sub, axis=0).astype(np.float32)


def _put(g: Any, name: str, a: np.ndarray) -> None:
    ds = g.create_dataset(name, data=a)
    ds.attrs[HASH_ATTR] = content_hash(a)


def _put_by_member(g: Any, name: str, src: Any) -> None:
    """Write an (M, ...) float32 dataset member by member (no whole-array copy); its checksum equals
    :func:`content_hash` of the whole float32 array (same prefix, the bytes fed in C order)."""
    shape = tuple(int(n) for n in np.shape(src))
    ds = g.create_dataset(name, shape=shape, dtype=np.float32)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{np.dtype(np.float32).str}|{shape}|".encode())
    for m in range(shape[0]):
        row = np.ascontiguousarray(src[m], dtype=np.float32)
        ds[m] = row
        h.update(row.data)
    ds.attrs[HASH_ATTR] = h.hexdigest()


def _stored(f: str, dtype: str, v: Any) -> np.ndarray:
    if dtype == "S":
        return to_bytes(v)
    return np.asarray(v, dtype=_NP[dtype])


def _attr_json(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, default=str)


def write_ensemble(path: str | os.PathLike, models: Mapping[str, ModelEnsemble], attrs: Mapping[str, Any],
                   before_replace: Callable[[], None] | None = None) -> None:
    """Write ``ensemble.h5`` atomically.

    Parameters
    ----------
    path : the target (``<run_dir>/ensemble.h5``); the weights files must already exist beside it
    models : per model name its :class:`ModelEnsemble` (validated here)
    attrs : root attributes: ``learn_key`` (required, str), ``summary``, ``provenance``, ``config`` (dicts are
        JSON-encoded); ``format_version``, ``models`` and ``complete`` (last) are set here
    before_replace : called between the fsync and the rename (fault-injection tests)

    ``pred/*`` are written member by member; the best-guess medians are computed here.

    Raises
    ------
    ValueError
        naming the model and field of inconsistent data (see :meth:`ModelEnsemble.validate`), no models or no
        ``learn_key``.
    InputDataError
        not enough free space (naming the folder).
    """
    path = Path(path)
    if not models:
        raise ValueError(f"{path}: no models to write")
    if not isinstance(attrs.get("learn_key"), str) or not attrs["learn_key"]:
        raise ValueError(f"{path}: attrs need a non-empty str learn_key")
    for name, ens in models.items():
        if not name or "/" in name:
            raise ValueError(f"unusable model name {name!r}")
        try:
            ens.validate()
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    per = {"f4": 4, "S": 64}  # bytes per value (text: a generous guess); 8 for the rest
    need = (1 << 20) + sum(int(np.asarray(getattr(e, f)).size) * per.get(t, 8)
                           for e in models.values() for f, _p, _d, t, *_ in _ROWS if f is not None)
    need += sum(4 * int(np.asarray(e.site_target).size) + 4 * int(np.shape(e.pred_cell)[1]) * int(np.shape(
        e.pred_cell)[2]) for e in models.values())  # the medians
    root = {k: (v if k == "learn_key" else _attr_json(v)) for k, v in attrs.items()
            if k not in ("format_version", "models", "complete")}
    with h5_atomic(path, need, before_replace) as fh:
        for name, ens in models.items():
            g = fh.create_group(name)
            kinds = [x.decode() if isinstance(x, bytes) else str(x) for x in np.asarray(ens.member_kind)]
            bg = np.flatnonzero(np.array(kinds) == "best_guess")
            for f, p, _d, dtype, *_ in _ROWS:
                if f in ("pred_site", "pred_cell"):
                    _put_by_member(g, p, getattr(ens, f))
                elif f is None:
                    src = ens.pred_site if p.endswith("site_median") else ens.pred_cell
                    _put(g, p, _medians(src, bg))
                else:
                    _put(g, p, _stored(f, dtype, getattr(ens, f)))
        for k, v in root.items():
            fh.attrs[k] = v
        fh.attrs["models"] = json.dumps(list(models))
        fh.attrs["format_version"] = FORMAT_VERSION


# ------------------------------------------------------------------------------------------------ reading
def _hash(v: np.ndarray) -> str:
    """:func:`~prodampi.io.h5file.content_hash` without its copy of the bytes (``pred/cell`` is large)."""
    v = np.ascontiguousarray(v)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{v.dtype.str}|{v.shape}|".encode())
    h.update(v.reshape(-1).view(np.uint8) if v.size else b"")
    return h.hexdigest()


def _decode(v: np.ndarray) -> np.ndarray:
    return np.char.decode(v, "utf-8") if v.size else np.zeros(v.shape, dtype="U1")


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _models(f: Any) -> list[str]:
    ms = json.loads(_text(f.attrs.get("models", "")))
    if not isinstance(ms, list) or not ms or not all(isinstance(m, str) and m for m in ms):
        raise ValueError("root attribute models is not a non-empty JSON list of names")
    return ms


def _weights_problems(path: Path, f: Any, model: str, verify: bool) -> list[str]:
    files = [_text(x) for x in f[f"{model}/member/weights_file"][()]]
    digests = [_text(x) for x in f[f"{model}/member/weights_blake2b"][()]]
    names = [_text(x) for x in f[f"{model}/member/name"][()]]
    out: list[str] = []
    for name, w, want in zip(names, files, digests):
        where = f"weights file {w} of member {name} (/{model}/member/weights_file)"
        if _bad_relpath(w):
            out.append(f"{where} is not a path inside the run directory")
            continue
        p = path.parent / w
        if not p.is_file():
            out.append(f"{where} is missing")
        elif verify and weights_digest(p) != want:
            out.append(f"{where} differs from the digest /{model}/member/weights_blake2b records")
    return out


def check_ensemble(path: str | os.PathLike, key: str | None = None, verify: bool = True) -> str | None:
    """Why ``ensemble.h5`` at ``path`` cannot be used, or None when it can: the whole reuse decision.

    In order: ``"missing"``, ``"incomplete ..."``, another format version, made by another deck (root
    ``learn_key`` differs from ``key``, when given), a model group whose datasets do not fit the layout (the
    reason names the dataset path), a weights file missing (or, with ``verify``, whose digest differs); with
    ``verify`` (default) also a dataset whose values fail their stored checksum.  ``verify=False`` reads
    metadata only (and the small ``member/`` datasets)."""
    import h5py

    path = Path(path)
    why = check_file(path, FORMAT_VERSION, "ensemble")
    if why is not None:
        return why
    problems: list[str] = []
    try:
        with h5py.File(path, "r") as f:
            if key is not None and _text(f.attrs.get("learn_key", "")) != key:
                return "made by another deck (its learn_key differs)"
            index = file_index(f)
            for m in _models(f):
                lay = layout(m)
                problems += check_layout(index, lay, set())
                problems += [f"dataset /{d.path} has dtype {f[d.path].dtype}, the layout says {d.dtype}"
                             for d in lay if d.dtype == "f4" and d.path in index and f[d.path].dtype != np.float32]
                if not problems:
                    problems += _weights_problems(path, f, m, verify)
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"not a readable ensemble file ({e})"
    if not problems and verify:
        problems = [p.split(": ", 1)[1] for p in verify_file(path)]
    if problems:
        return problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
    return None


def read_ensemble(path: str | os.PathLike, model: str, names: Iterable[str] | None = None,
                  key: str | None = None) -> dict[str, np.ndarray]:
    """Datasets of one model group, after :func:`check_ensemble` (``verify=False``) and verifying the
    checksum of every dataset read.

    Parameters
    ----------
    path : the file
    model : the model group
    names : dataset paths relative to ``<model>/`` (e.g. ``("pred/cell", "cell/index")``); None: all
    key : the expected ``learn_key`` (None: not checked)

    Returns
    -------
    dict
        ``{relative path: array}`` as stored (flags uint8, predictions float32), text decoded to str
        (``dtype U``) arrays.

    Raises
    ------
    InputDataError
        naming the file and the problem (see :func:`check_ensemble`), the model when the file has no such
        group, or the dataset path whose checksum fails.
    ValueError
        a name the layout does not declare (a caller bug).
    """
    import h5py

    path = Path(path)
    known = {d.path: d for d in LAYOUT}
    want = list(known) if names is None else list(names)
    unknown = [n for n in want if n not in known]
    if unknown:
        raise ValueError(f"not datasets of an ensemble.h5 model group: {unknown}")
    remake = f"; make it again with: prodampi {MADE_BY} DECK"
    why = check_ensemble(path, key=key, verify=False)
    if why is not None:
        raise InputDataError(f"{path}: ensemble file is {why}{remake}")
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        if model not in _models(f):
            raise InputDataError(f"{path}: no model {model!r} (models: {_models(f)})")
        for n in want:
            ds = f[f"{model}/{n}"]
            v = ds[()]
            if _hash(v) != _text(ds.attrs.get(HASH_ATTR, "")):
                raise InputDataError(f"{path}: dataset /{model}/{n} fails its checksum{remake}")
            out[n] = _decode(v) if known[n].dtype == "S" else v
    return out
