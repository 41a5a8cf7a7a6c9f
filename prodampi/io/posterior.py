"""The ``posterior.h5`` contract: what stage **assimilate** writes (one file, all models, all profiles).

ArviZ-native: per model a group ``<model>/`` (``clm5``, ``compas``) holding the ArviZ groups as HDF5 groups
whose variables carry **HDF5 dimension scales** (netCDF-4 dimensions), so that::

    xarray.open_dataset("posterior.h5", group="clm5/posterior")       # engine netcdf4 or h5netcdf
    xarray.open_datatree("posterior.h5", group="clm5")                 # every group of one model
    arviz.rhat(xarray.open_dataset("posterior.h5", group="clm5/posterior"))   # per-site R-hat

work with no custom code (ArviZ reduces over the named sample dims ``chain`` and ``draw``; ``site`` stays).

Writing (parallel rules of ``conventions.md`` §C.3)
---------------------------------------------------
1. :func:`create_posterior` -- **collective** under the ``mpio`` driver (every rank calls it with the same
   arguments): every group, dataset, attribute and dimension scale for all sites of all models is created up
   front (contiguous, uncompressed, filled with the fill values below); the coordinates are written.
2. :func:`write_sites` -- **independent**: any rank writes its rows (site indices, any order, need not be
   contiguous) whenever it likes; only data are written, so the metadata never change after step 1.
3. :func:`mark_complete` -- collective: root attribute ``complete = 1`` once every site is written.
4. :func:`add_checksums` -- optional **serial** final pass (one process, file closed elsewhere): a blake2b
   checksum attribute (:data:`~prodampi.io.h5file.HASH_ATTR`) on every dataset, as in ``inputs.h5``; not done
   in parallel because it reads the whole file.  ``check_posterior(path, verify=True)`` then checks them.

Reading: :func:`check_posterior` (why the file cannot be used, or None), :func:`read_summary` (the
``summary`` group as numpy arrays, strings decoded).  xarray/ArviZ need nothing from this module.

Design decisions
----------------
* **Site coordinate.** ``site`` is an integer dimension coordinate (the row 0..S-1 of the model's site list);
  the profile id is the non-dimension coordinate ``profile_id`` (site), named in every variable's CF
  ``coordinates`` attribute, so xarray shows it as a coordinate and ``ds.swap_dims(site="profile_id")`` or
  ``ds.set_xindex("profile_id")`` selects by id.  Why not string ``site`` values: parallel HDF5 cannot write
  variable-length strings ("Parallel IO does not support writing VL ... datatypes"), and fixed-length HDF5
  strings read as ``str`` under netCDF4 but as ``bytes`` under h5netcdf (``_Encoding`` fixes h5netcdf and
  breaks netCDF4).  Text is therefore stored the netCDF way: ``S1`` character arrays with a trailing hidden
  dimension (``id_len``, ``name_len``, ``reason_len``) and ``_Encoding = "utf-8"``, which both engines decode
  to ``str``.  ``reason`` is truncated to :data:`REASON_LEN` bytes (at a character boundary).
* **Booleans** (``accepted``, ``sampler_ok``) are ``int8`` 0/1 with attribute ``dtype = "bool"`` (xarray
  decodes them to bool; netCDF4 sees int8).
* **No ``_FillValue`` attributes**: unwritten rows hold the HDF5 fill value (NaN for floats, -1 for integer
  counts, :data:`STATUS` ``not_run`` for ``status``, 0 for flags, empty text), which xarray does not mask, so
  integers stay integers.
* ``log_likelihood/soc`` is **float32** (:data:`LOGLIK_DTYPE`): the largest per-layer array, used only for
  LOO-type comparisons, for which 7 significant digits suffice; every other float is float64.
* Every ArviZ group holds its own coordinate variables (``site``, ``profile_id``, ``chain``, ``draw``,
  ``obs``), so each opens as a self-contained Dataset.  ``draw`` counts stored draws (thinned by the group
  attribute ``thin``).

Attributes
----------
Root: ``format_version`` (:data:`FORMAT_VERSION`), ``complete`` (0, then 1), ``models`` (JSON list),
``created_at``, ``inference_library = "prodampi"``, ``inference_library_version`` and the caller's ``attrs``
(dicts and lists JSON-encoded, e.g. ``provenance``).  Every ArviZ group of a model: ``created_at``,
``inference_library``, ``inference_library_version``, ``model``, ``n_sites``, ``n_chains``, ``n_draws``,
``n_obs`` and the model's :attr:`PosteriorSpec.attrs` (kernel, thin, chain lengths, ...).

Layout
------
Paths below are relative to ``<model>/``; ``posterior/<param>`` is one variable per parameter of the model's
parameter table.  Coordinates: ``<group>/site`` (site) i8, ``<group>/profile_id`` (site, id_len) text,
``chain``, ``draw``, ``obs`` (i8, 0..n-1) where the group uses them, ``summary/param_name`` (param, name_len)
and ``summary/restart_kind_name`` (restart_kind, name_len).

"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import InputDataError
from .h5file import HASH_ATTR, Dataset, check_file, check_layout, content_hash, file_index, layout_text, verify_file

__all__ = ["FORMAT_VERSION", "STATUS", "STATUS_NAMES", "FIELDS", "LAYOUT", "PosteriorSpec", "create_posterior",
           "write_sites", "mark_complete", "check_posterior", "read_summary", "add_checksums", "model_layout"]

#: version of the layout below; bump it when a dataset is added, removed or changes meaning
FORMAT_VERSION = 1

#: the file's name in the run directory
FILE_NAME = "posterior.h5"

#: per-site ``summary/status`` codes (``summary/reason`` says more); equal to
#: :data:`prodampi.inference.summary.STATUS`.  ``not_run`` is also the fill value of unwritten rows.
STATUS: dict[str, int] = {
    "converged": 0,  # passed every filter: used downstream
    "rejected_gr": 1,  # the Gelman-Rubin filter failed
    "rejected_nse": 2,  # the NSE filter failed
    "solver_failure": 3,  # the forward model failed at the start point or everywhere
    "bad_data": 4,  # degenerate observations or forcing
    "sampler_failure": 5,  # restarts exhausted, no acceptance, ...
    "not_run": 6,  # not assimilated (yet): the fill value
}
STATUS_NAMES: dict[int, str] = {v: k for k, v in STATUS.items()}

#: bytes kept of each ``summary/reason`` (UTF-8, cut at a character boundary)
REASON_LEN = 160
#: bytes of a parameter or restart-kind name
NAME_LEN = 32
#: dtype of ``log_likelihood/soc``
LOGLIK_DTYPE = "f4"
#: names of the three ``summary/restarts`` columns (RESULT_FIELDS ``restarts``)
RESTART_KINDS = ("test_run", "formal_run", "uncounted")
#: the ArviZ groups of each model, in file order
GROUPS = ("posterior", "sample_stats", "log_likelihood", "observed_data", "constant_data", "summary")

_NOTVAR = "This is a netCDF dimension but not a netCDF variable."  # netCDF-4's mark of a hidden dimension
_TEXT_DIM = {"profile_id": "id_len", "param_name": "name_len", "restart_kind_name": "name_len",
             "reason": "reason_len"}
_BOOL = {"sample_stats/accepted", "summary/sampler_ok"}  # int8 0/1 read back as bool
_FILL = {"f8": np.nan, "f4": np.nan, "i8": -1, "i1": 0, "S": b""}


def _var_rows() -> list[tuple[str, tuple[str, ...], str, str, str]]:
    """(path, dims, dtype, unit, doc) of every variable except ``posterior/<param>`` and coordinates."""
    scd, sc, sp, so = ("site", "chain", "draw"), ("site", "chain"), ("site", "param"), ("site", "obs")
    v = [
        ("sample_stats/lp", scd, "f8", "1", "log density of the stored state (nats; paper: pseudo, -J)"),
        ("sample_stats/cost", scd, "f8", "1", "cost J (paper) / -log-likelihood (textbook) of the stored state"),
        ("sample_stats/accepted", scd, "i1", "1", "stored state reached by an accepted move (bool 0/1)"),
        ("log_likelihood/soc", scd + ("obs",), LOGLIK_DTYPE, "1",
         "pointwise log-likelihood per observed layer (nats; paper: pseudo); NaN at padded layers"),
        ("observed_data/soc", so, "f8", "g C m-3", "observed SOC density; NaN at padded layers"),
        ("constant_data/depth", so, "f8", "m", "observation (node) depth; NaN at padded layers"),
        ("constant_data/n_layers_raw", ("site",), "i8", "1", "observed layers of the profile before padding"),
        ("summary/lo", ("param",), "f8", "parameter table units", "lower prior bound (physical)"),
        ("summary/hi", ("param",), "f8", "parameter table units", "upper prior bound (physical)"),
    ]
    for k, unit, doc in [("mean", "1", "posterior mean, normalised"), ("sd", "1", "posterior SD, normalised"),
                         ("mode", "1", "paper estimator: GEV mode of the best chain, normalised (textbook: NaN)")]:
        v.append((f"summary/{k}", sp, "f8", unit, doc))
        v.append((f"summary/{k}_physical", sp, "f8", "parameter table units", doc.replace("normalised", "physical")))
    v += [(f"summary/{k}", sp, "f8", "1", doc) for k, doc in [
        ("gr_paper", "the authors' Gelman-Rubin statistic (accepted states)"),
        ("gr_classic", "classic Gelman-Rubin R-hat on the stored chains"),
        ("rhat", "rank-normalised split R-hat (Vehtari et al. 2021)"),
        ("ess_bulk", "bulk effective sample size"), ("ess_tail", "tail ESS (5 % / 95 % quantiles)")]]
    v += [
        ("summary/chain_mean", sc + ("param",), "f8", "1", "per-chain mean of the estimator sample"),
        ("summary/chain_ss", sc + ("param",), "f8", "1", "per-chain sum of squared deviations of that sample"),
        ("summary/chain_n", sc, "i8", "1", "per-chain size of the estimator sample"),
        ("summary/acceptance", sc, "f8", "1", "acceptance rate of the stored chain"),
        ("summary/n_accepted", sc, "i8", "1", "accepted moves in the stored chain"),
        ("summary/chain_r2_legacy", sc, "f8", "1", "the authors' per-chain 'R2'"),
        ("summary/chain_rmse", sc, "f8", "g C m-3", "the authors' per-chain RMSE"),
        ("summary/nse", ("site",), "f8", "1", "NSE of paper Eq. 1 on the posterior modelled profile"),
        ("summary/nse_legacy", ("site",), "f8", "1", "the authors' NSE filter value (max chain 'R2')"),
        ("summary/soc_mod", so, "f8", "g C m-3", "modelled SOC at the observed layers"),
        ("summary/soc_sd", so, "f8", "g C m-3", "SD of the modelled SOC"),
        ("summary/best_chain", ("site",), "i8", "1", "index of the best chain"),
        ("summary/n_last", ("site",), "i8", "1", "the authors' G-R n (accepted count of the last chain)"),
        ("summary/n_failed_evals", ("site",), "i8", "1", "failed forward solves met while sampling"),
        ("summary/restarts", ("site", "restart_kind"), "i8", "1", "restarts: test run, formal run, uncounted"),
        ("summary/sampler_ok", ("site",), "i1", "1", "the sampler finished every chain (bool 0/1)"),
        ("summary/status", ("site",), "i1", "1", "status code, see STATUS (fill: not_run)"),
        ("summary/reason", ("site", "reason_len"), "S", "", "'' or why the site is not converged"),
    ]
    return v


def _coord_rows(group: str) -> list[tuple[str, tuple[str, ...], str, str, str]]:
    dims = {d for p, ds, *_ in _var_rows() if p.startswith(group + "/") for d in ds}
    if group in ("posterior", "sample_stats", "log_likelihood"):
        dims |= {"site", "chain", "draw"}
    rows = [(f"{group}/site", ("site",), "i8", "", "site row (0..S-1)"),
            (f"{group}/profile_id", ("site", "id_len"), "S", "", "profile id of the site (coordinate)")]
    for d, doc in [("chain", "chain index"), ("draw", "stored draw index"), ("obs", "observed layer index"),
                   ("param", "parameter index"), ("restart_kind", "restart column index")]:
        if d in dims:
            rows.append((f"{group}/{d}", (d,), "i8", "", doc))
    if "param" in dims:
        rows.append((f"{group}/param_name", ("param", "name_len"), "S", "", "parameter name (coordinate)"))
    if "restart_kind" in dims:
        rows.append((f"{group}/restart_kind_name", ("restart_kind", "name_len"), "S", "",
                     "restart column name: " + ", ".join(RESTART_KINDS)))
    return rows


def model_layout(params: Sequence[str] = ("<param>",), prefix: str = "") -> tuple[Dataset, ...]:
    """The datasets of one model group (paths prefixed by ``prefix``, e.g. ``"clm5/"``)."""
    rows = []
    for g in GROUPS:
        rows += _coord_rows(g)
        if g == "posterior":
            rows += [(f"posterior/{p}", ("site", "chain", "draw"), "f8", "1", "parameter, normalised (0, 1)")
                     for p in params]
        rows += [r for r in _var_rows() if r[0].startswith(g + "/")]
    return tuple(Dataset(prefix + p, d, t, u, doc) for p, d, t, u, doc in rows)


#: every dataset of one ``<model>/`` group (``<param>``: one per parameter)
LAYOUT: tuple[Dataset, ...] = model_layout()

#: the field names :func:`write_sites` takes (RESULT_FIELDS + the summary's), each with the datasets it fills
#: (relative to ``<model>/``) and the conversion: ``""`` as is, ``"split"`` last axis -> one variable per
#: parameter, ``"physical"`` / ``"physical_sd"`` also written in physical units (``lo + u (hi - lo)`` /
#: ``u (hi - lo)``) to ``<path>_physical``, ``"bool"`` 0/1, ``"text"`` UTF-8 characters, ``"status"`` code
#: or STATUS name
FIELDS: dict[str, tuple[str, str]] = {
    "draws": ("posterior", "split"), "lp": ("sample_stats/lp", ""), "cost": ("sample_stats/cost", ""),
    "accepted": ("sample_stats/accepted", "bool"), "pointwise": ("log_likelihood/soc", ""),
    "obs_soc": ("observed_data/soc", ""), "obs_depth": ("constant_data/depth", ""),
    "n_layers_raw": ("constant_data/n_layers_raw", ""),
    "mean": ("summary/mean", "physical"), "sd": ("summary/sd", "physical_sd"), "mode": ("summary/mode", "physical"),
    **{k: (f"summary/{k}", "") for k in (
        "chain_mean", "chain_ss", "chain_n", "acceptance", "n_accepted", "chain_r2_legacy", "chain_rmse",
        "n_last", "soc_mod", "soc_sd", "best_chain", "restarts", "n_failed_evals", "gr_paper", "gr_classic",
        "rhat", "ess_bulk", "ess_tail", "nse", "nse_legacy")},
    "ok": ("summary/sampler_ok", "bool"), "reason": ("summary/reason", "text"), "status": ("summary/status", "status"),
}

DIMS = {"site": "sites of the model (rows)", "chain": "chains", "draw": "stored draws per chain",
        "obs": "observed layers (padded)", "param": "parameters", "restart_kind": "3 restart counters",
        "id_len/name_len/reason_len": "bytes of a text value (hidden netCDF dimensions)"}

__doc__ += layout_text(LAYOUT, DIMS) + "\n"


# ------------------------------------------------------------------------------------------------ spec
@dataclass(frozen=True)
class PosteriorSpec:
    """What :func:`create_posterior` needs to preallocate one model group.

    Attributes
    ----------
    site_ids : sequence of str
        Profile id of each site (row order of every ``site`` dimension); unique.
    param_names : sequence of str
        Parameter names in the model's table order (``ParamTable.names``).
    lo, hi : (P,) float
        Prior bounds in physical units (``ParamTable.lo`` / ``.hi``), for the physical summaries.
    n_chains, n_draws, n_obs : int
        Chains per site, stored draws per chain, observed layers (padded width).
    attrs : dict
        Attributes of every ArviZ group of the model (kernel, thin, chain lengths, ...).
    """

    site_ids: Sequence[str]
    param_names: Sequence[str]
    lo: Any
    hi: Any
    n_chains: int
    n_draws: int
    n_obs: int
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        """Size of every dimension of the model group."""
        ids = _utf8(self.site_ids)
        return {"site": len(ids), "chain": int(self.n_chains), "draw": int(self.n_draws), "obs": int(self.n_obs),
                "param": len(self.param_names), "restart_kind": len(RESTART_KINDS),
                "id_len": max([1, *(len(b) for b in ids)]), "name_len": NAME_LEN, "reason_len": REASON_LEN}


# ------------------------------------------------------------------------------------------------ helpers
def _utf8(xs: Any) -> list[bytes]:
    return [x if isinstance(x, bytes) else str(x).encode("utf-8") for x in np.asarray(xs, dtype=object).ravel()]


def _cut(b: bytes, n: int) -> bytes:
    """``b`` cut to at most ``n`` bytes at a UTF-8 character boundary."""
    return b[:n].decode("utf-8", errors="ignore").encode("utf-8") if len(b) > n else b


def _chars(xs: Any, n: int) -> np.ndarray:
    """Strings as an (N, n) ``S1`` character array (UTF-8, NUL-padded, cut at ``n`` bytes)."""
    bs = [_cut(x, n) for x in _utf8(xs)]
    return np.array(bs, dtype=f"S{n}").view("S1").reshape(len(bs), n) if bs else np.zeros((0, n), "S1")


def _unchars(a: np.ndarray) -> np.ndarray:
    """(N, n) ``S1`` characters -> (N,) str (object array)."""
    a = np.ascontiguousarray(a)
    flat = a.view(f"S{a.shape[-1]}").reshape(a.shape[:-1]) if a.shape[-1] else np.zeros(a.shape[:-1], "S1")
    return np.array([x.decode("utf-8") for x in flat.ravel()], dtype=object).reshape(flat.shape)


def _attr(v: Any) -> Any:
    """An attribute value HDF5 and netCDF read back: dicts/lists as JSON, bools as int, None as ''."""
    if isinstance(v, Mapping | list | tuple):
        return json.dumps(v, sort_keys=True, default=str)
    if isinstance(v, bool | np.bool_):
        return int(v)
    if v is None:
        return ""
    return v


def _comm(h5file: Any) -> Any:
    """A duplicate of the MPI communicator of a file opened with the mpio driver (collective; free it), else
    None."""
    if h5file.driver != "mpio":
        return None
    return h5file.id.get_access_plist().get_fapl_mpio()[0]


def _runs(rows: np.ndarray) -> list[tuple[int, int, int]]:
    """Sorted rows as contiguous runs (start, stop, offset into the sorted rows)."""
    if rows.size == 0:
        return []
    br = np.flatnonzero(np.diff(rows) != 1) + 1
    starts, stops = np.concatenate([[0], br]), np.concatenate([br, [rows.size]])
    return [(int(rows[a]), int(rows[b - 1]) + 1, int(a)) for a, b in zip(starts, stops)]


# ------------------------------------------------------------------------------------------------ writing
def create_posterior(h5file: Any, specs: Mapping[str, PosteriorSpec], attrs: Mapping[str, Any] | None = None,
                     created_at: str | None = None) -> None:
    """Create every group, dataset, dimension scale and attribute of ``posterior.h5`` (all sites, all models).

    **Collective** when ``h5file`` uses the ``mpio`` driver: every rank calls it with the same arguments (the
    coordinates are written by rank 0; ``created_at`` is rank 0's clock).  Datasets are contiguous,
    uncompressed and filled with the fill values of the module docstring.  Root ``complete`` is 0.

    Parameters
    ----------
    h5file : h5py.File
        Open for writing, empty (e.g. ``h5py.File(path, "w", driver="mpio", comm=comm)`` or serial).
    specs : dict
        Model name -> :class:`PosteriorSpec`.
    attrs : dict or None
        Extra root attributes (e.g. ``provenance``; dicts/lists are JSON-encoded).
    created_at : str or None
        ISO time stamp of the ArviZ ``created_at`` attributes; None: now (UTC).

    Raises
    ------
    ValueError
        Duplicate or empty site ids, parameter names too long or clashing with a dimension name, ``lo``/``hi``
        of the wrong length, a non-positive size.
    """
    comm = _comm(h5file)
    root = comm is None or comm.Get_rank() == 0
    if created_at is None:
        created_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        if comm is not None:
            created_at = comm.bcast(created_at, root=0)
    if comm is not None:
        comm.Free()  # the fapl hands out a duplicate (collective, like this whole call)
    lib = {"created_at": created_at, "inference_library": "prodampi", "inference_library_version": __version__}
    for k, v in {**(attrs or {}), **lib, "format_version": FORMAT_VERSION, "complete": 0,
                 "models": list(specs)}.items():
        h5file.attrs[k] = _attr(v)
    for model, spec in specs.items():
        _check_spec(model, spec)
        n = spec.sizes()
        mg = h5file.create_group(model, track_order=True)
        gattrs = {**lib, "model": model, "n_sites": n["site"], "n_chains": n["chain"], "n_draws": n["draw"],
                  "n_obs": n["obs"], **dict(spec.attrs)}
        coords = {"site": np.arange(n["site"], dtype=np.int64), "profile_id": _chars(spec.site_ids, n["id_len"]),
                  **{d: np.arange(n[d], dtype=np.int64) for d in ("chain", "draw", "obs", "param", "restart_kind")},
                  "param_name": _chars(spec.param_names, NAME_LEN),
                  "restart_kind_name": _chars(RESTART_KINDS, NAME_LEN)}
        values = {"summary/lo": np.asarray(spec.lo, dtype=np.float64), "summary/hi": np.asarray(spec.hi, np.float64)}
        lay = model_layout(spec.param_names)
        for g in GROUPS:
            grp = mg.create_group(g, track_order=True)
            for k, v in gattrs.items():
                grp.attrs[k] = _attr(v)
            scales: dict[str, Any] = {}
            for d in lay:
                if not d.path.startswith(g + "/"):
                    continue
                name = d.path.split("/", 1)[1]
                for dim in d.dims:  # hidden text dimensions: created on first use
                    if dim.endswith("_len") and dim not in scales:
                        s = grp.create_dataset(dim, shape=(n[dim],), dtype="f4")
                        s.make_scale(f"{_NOTVAR}{n[dim]:10d}")
                        scales[dim] = s
                shape = tuple(n[x] for x in d.dims)
                dt = "S1" if d.dtype == "S" else d.dtype
                fill = STATUS["not_run"] if d.path == "summary/status" else _FILL[d.dtype]
                ds = grp.create_dataset(name, shape=shape, dtype=dt, fillvalue=fill)
                if name in d.dims:  # a dimension coordinate
                    ds.make_scale(name)
                    scales[name] = ds
                if root and (name in coords or d.path in values):
                    ds[...] = coords[name] if name in coords else values[d.path]
                for i, dim in enumerate(d.dims):
                    if dim != name:
                        ds.dims[i].attach_scale(scales[dim])
                ds.attrs["units"] = d.unit
                ds.attrs["long_name"] = d.doc
                if d.dtype == "S":
                    ds.attrs["_Encoding"] = "utf-8"
                if d.path in _BOOL:
                    ds.attrs["dtype"] = "bool"
                if name == "status":
                    ds.attrs["flag_values"] = np.array(list(STATUS.values()), dtype=np.int8)
                    ds.attrs["flag_meanings"] = " ".join(STATUS)
                extra = [c for c, cd in (("profile_id", "site"), ("param_name", "param"),
                                         ("restart_kind_name", "restart_kind")) if cd in d.dims and c != name]
                if extra and name not in d.dims:
                    ds.attrs["coordinates"] = " ".join(extra)
    h5file.flush()


def _check_spec(model: str, spec: PosteriorSpec) -> None:
    ids = _utf8(spec.site_ids)
    if len(set(ids)) != len(ids):
        raise ValueError(f"{model}: duplicate site ids")
    if any(not b for b in ids):
        raise ValueError(f"{model}: empty site id")
    names = list(spec.param_names)
    reserved = {"site", "profile_id", "chain", "draw", "id_len"}
    bad = [p for p in names if p in reserved or "/" in p or len(p.encode()) > NAME_LEN or not p]
    if bad or len(set(names)) != len(names):
        raise ValueError(f"{model}: unusable or duplicate parameter names {bad or names}")
    for k in ("lo", "hi"):
        if np.shape(getattr(spec, k)) != (len(names),):
            raise ValueError(f"{model}: {k} has shape {np.shape(getattr(spec, k))}, want ({len(names)},)")
    if min(len(ids), spec.n_chains, spec.n_draws, spec.n_obs, len(names)) < 1:
        raise ValueError(f"{model}: every size must be >= 1 ({spec.sizes()})")


def write_sites(h5file: Any, model: str, rows: Any, fields: Mapping[str, Any]) -> None:
    """Write the results of some sites of ``model``: independent (no collective call; any rank, any time).

    Parameters
    ----------
    h5file : h5py.File
        The file :func:`create_posterior` made (open ``r+``; mpio or serial).
    model : str
        Model group name.
    rows : (n,) int
        Site rows (positions in :attr:`PosteriorSpec.site_ids`), unique, any order, need not be contiguous.
    fields : dict of arrays
        Field name (:data:`FIELDS`: the sampler's RESULT_FIELDS, the summary's fields, ``obs_soc``,
        ``obs_depth``, ``n_layers_raw``) -> array whose first axis matches ``rows``, e.g. ``draws``
        (n, C, D, P), ``pointwise`` (n, C, D, L) nats, ``soc_mod`` (n, L) g C m-3, ``reason`` (n,) str,
        ``status`` (n,) int codes or STATUS names.  Fields not given are left as they are.

    Raises
    ------
    ValueError
        Unknown field, rows out of range or repeated, an array of the wrong shape (naming field and dataset).
    """
    g = h5file[model]
    rows = np.asarray(rows, dtype=np.int64).ravel()
    n_site = g["summary/site"].shape[0]
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise ValueError(f"{model}: unknown posterior fields {unknown}; known: {sorted(FIELDS)}")
    if rows.size and (rows.min() < 0 or rows.max() >= n_site):
        raise ValueError(f"{model}: site rows outside 0..{n_site - 1}")
    if np.unique(rows).size != rows.size:
        raise ValueError(f"{model}: repeated site rows")
    if rows.size == 0:
        return
    order = np.argsort(rows, kind="stable")
    runs = _runs(rows[order])
    lo = hi = None
    for name, value in fields.items():
        path, how = FIELDS[name]
        a = np.asarray(value)
        if a.shape[:1] != rows.shape:
            raise ValueError(f"{model}: field {name!r} has {a.shape[:1]} rows, want {rows.size}")
        a = a[order]
        if how == "split":
            params = _unchars(g["summary/param_name"][()])
            if a.ndim != 4 or a.shape[-1] != len(params):
                raise ValueError(f"{model}: field 'draws' has shape {a.shape}, want (n, C, D, {len(params)})")
            for i, p in enumerate(params):
                _put(g[f"posterior/{p}"], runs, a[..., i], name)
            continue
        if how == "bool":
            a = a.astype(bool).astype(np.int8)
        elif how == "text":
            a = _chars(a, REASON_LEN)
        elif how == "status":
            a = np.array([STATUS[x] if isinstance(x, str) else int(x) for x in a.ravel()], dtype=np.int8)
        _put(g[path], runs, a, name)
        if how.startswith("physical"):
            if lo is None:
                lo, hi = g["summary/lo"][()], g["summary/hi"][()]
            phys = a * (hi - lo) if how == "physical_sd" else lo + a * (hi - lo)
            _put(g[path + "_physical"], runs, phys, name)


def _put(ds: Any, runs: list[tuple[int, int, int]], a: np.ndarray, name: str) -> None:
    if a.shape[1:] != ds.shape[1:]:
        raise ValueError(f"field {name!r} has shape {a.shape}, dataset {ds.name} wants (n, "
                         + ", ".join(map(str, ds.shape[1:])) + ")")
    a = np.ascontiguousarray(a, dtype=ds.dtype)
    for start, stop, off in runs:
        ds[start:stop] = a[off:off + stop - start]


def mark_complete(h5file: Any) -> None:
    """Set root ``complete = 1`` and flush (collective under mpio: every rank calls it, after its writes)."""
    h5file.attrs["complete"] = 1
    h5file.flush()


def add_checksums(path: str | os.PathLike) -> None:
    """Serial final pass: store :func:`~prodampi.io.h5file.content_hash` of every dataset in its
    :data:`~prodampi.io.h5file.HASH_ATTR` attribute (reads the whole file; no other process may hold it)."""
    import h5py

    with h5py.File(path, "r+") as f:
        found: list[Any] = []
        f.visititems(lambda _n, o: found.append(o) if isinstance(o, h5py.Dataset) else None)
        for ds in found:
            ds.attrs[HASH_ATTR] = content_hash(ds[()])


# ------------------------------------------------------------------------------------------------ reading
def check_posterior(path: str | os.PathLike, verify: bool = False) -> str | None:
    """Why ``posterior.h5`` at ``path`` cannot be used, or None when it can.

    ``"missing"``, ``"incomplete ..."`` (root ``complete`` not 1), another format version, a model group whose
    datasets do not fit the layout (the reason names the dataset path), and -- with ``verify`` -- a dataset
    without or failing its checksum (:func:`add_checksums`).  Metadata only unless ``verify``.
    """
    import h5py

    why = check_file(path, FORMAT_VERSION, "posterior")
    if why is not None:
        return why
    try:
        with h5py.File(path, "r") as f:
            models = json.loads(f.attrs.get("models", "[]"))
            index = file_index(f)
            problems: list[str] = []
            for m in models:
                if f"{m}/summary/param_name" not in index:
                    problems.append(f"dataset /{m}/summary/param_name is missing")
                    continue
                params = list(_unchars(f[f"{m}/summary/param_name"][()]))
                lay = [Dataset(d.path, d.dims, "f8" if d.dtype == "f4" else d.dtype, d.unit, d.doc)
                       for d in model_layout(params, prefix=f"{m}/")]
                problems += check_layout(index, lay, set())
    except (OSError, ValueError, KeyError) as e:
        return f"not a readable posterior file ({e})"
    if not problems and verify:
        problems = [p.split(": ", 1)[1] for p in verify_file(path)]
    if problems:
        return problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
    return None


def read_summary(path: str | os.PathLike, model: str) -> dict[str, np.ndarray]:
    """The ``<model>/summary`` group as numpy arrays, after :func:`check_posterior`.

    Returns
    -------
    dict
        Every summary dataset by name (text -- ``profile_id``, ``param_name``, ``reason``,
        ``restart_kind_name`` -- decoded to object arrays of str; ``sampler_ok`` as bool), plus
        ``status_name`` (site,) str.

    Raises
    ------
    InputDataError
        naming the file: unusable (see :func:`check_posterior`) or without model ``model``.
    """
    import h5py

    path = Path(path)
    why = check_posterior(path)
    if why is not None:
        raise InputDataError(f"{path}: posterior file is {why}")
    with h5py.File(path, "r") as f:
        if model not in f:
            raise InputDataError(f"{path}: no model group /{model} (models: {f.attrs.get('models')})")
        out: dict[str, np.ndarray] = {}
        for k, ds in f[f"{model}/summary"].items():
            if k.endswith("_len"):
                continue
            v = ds[()]
            out[k] = _unchars(v) if k in _TEXT_DIM else v.astype(bool) if k == "sampler_ok" else v
    out["status_name"] = np.array([STATUS_NAMES.get(int(s), f"code {int(s)}") for s in out["status"]],
                                  dtype=object)
    return out
