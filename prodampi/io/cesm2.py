"""CESM2/CLM5 monthly history netCDF: per-site forcing by nearest grid cell, and a writer of such files.

:func:`read_cesm2_fields` takes the forcing variables of :data:`CESM2_VARIABLES` from one or several
monthly-climatology history files (dimensions time = 12, levgrnd/levdcmp >= 20 levels, lat, lon) at the
nearest cell of each site, by PRODA's rule (:func:`prodampi.data.geo.nearest_cell_indices`: latitude and
longitude searched independently, ``compas.md`` §3).  Units: TSOI K (degC accepted and converted), scalars
and FPI_vr dimensionless, ALTMAX/ALTMAX_LASTYEAR m (cm accepted), nbedrock a layer index, the litter-input
ACC_VECTOR fields as stored (treated as g C m-3 month-1; the unit is undocumented, ``clm5.md`` §3.2).
:func:`read_cesm2_forcing` turns them into a :class:`~prodampi.soil.forcing.Forcing`;
:func:`write_cesm2_history` writes such a file (tests, synthetic forcing).  Problems with a file raise
:class:`~prodampi.io.tables.ReaderError` naming the file and the variable.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.geo import nearest_cell_indices
from ..soil.forcing import Forcing
from ..soil.layers import N_LAYERS
from .tables import ReaderError

logger = logging.getLogger(__name__)

__all__ = [
    "CESM2_VARIABLES",
    "CESM2_WRITE_UNITS",
    "read_cesm2_fields",
    "read_cesm2_forcing",
    "write_cesm2_history",
]

_DIMLESS = frozenset({"", "1", "-", "unitless", "none", "proportion", "fraction", "dimensionless"})
_LEVEL_DIMS = ("levgrnd", "levdcmp", "levsoi")
_TIME_DIMS = ("time", "month")

#: CESM2 variable -> (kind, Forcing.from_proda_fields keyword, accepted units -> (scale, offset)).
#: kind: "level" (time, level, lat, lon), "surface" (time, lat, lon), "index" ((time,) lat, lon).
#: ``None`` for units: any units attribute is accepted (the ACC_VECTOR unit is undocumented, clm5.md §3.2).
CESM2_VARIABLES: dict[str, tuple[str, str, dict[str, tuple[float, float]] | None]] = {
    "TSOI": ("level", "tsoi", {"K": (1.0, 0.0), "degC": (1.0, 273.15), "C": (1.0, 273.15)}),
    "W_SCALAR": ("level", "w_scalar", {u: (1.0, 0.0) for u in _DIMLESS}),
    "O_SCALAR": ("level", "o_scalar", {u: (1.0, 0.0) for u in _DIMLESS}),
    "FPI_vr": ("level", "fpi_vr", {u: (1.0, 0.0) for u in _DIMLESS}),
    "ALTMAX": ("surface", "altmax", {"m": (1.0, 0.0), "cm": (0.01, 0.0)}),
    "ALTMAX_LASTYEAR": ("surface", "altmax_lastyear", {"m": (1.0, 0.0), "cm": (0.01, 0.0)}),
    "nbedrock": ("index", "nbedrock", {u: (1.0, 0.0) for u in _DIMLESS | {"index"}}),
    "CWD_INPUT_ACC_VECTOR": ("level", "cwd_input_acc_vector", None),
    "LITR1_INPUT_ACC_VECTOR": ("level", "litr1_input_acc_vector", None),
    "LITR2_INPUT_ACC_VECTOR": ("level", "litr2_input_acc_vector", None),
    "LITR3_INPUT_ACC_VECTOR": ("level", "litr3_input_acc_vector", None),
}

#: Units attribute written by :func:`write_cesm2_history`.
CESM2_WRITE_UNITS: dict[str, str] = {
    "TSOI": "K", "W_SCALAR": "unitless", "O_SCALAR": "unitless", "FPI_vr": "proportion",
    "ALTMAX": "m", "ALTMAX_LASTYEAR": "m", "nbedrock": "index",
    "CWD_INPUT_ACC_VECTOR": "gC/m^3/month", "LITR1_INPUT_ACC_VECTOR": "gC/m^3/month",
    "LITR2_INPUT_ACC_VECTOR": "gC/m^3/month", "LITR3_INPUT_ACC_VECTOR": "gC/m^3/month",
}
_WRITE_LEVEL_DIM = {"TSOI": "levgrnd"}  # others on levdcmp, as in CLM5 history files


def _open_nc(path: Path) -> Any:
    try:
        import netCDF4
    except ImportError as exc:  # pragma: no cover - environment problem
        raise ReaderError(f"{path}: reading netCDF needs the netCDF4 package") from exc
    if not path.is_file():
        raise ReaderError(f"{path}: file not found")
    try:
        return netCDF4.Dataset(str(path), "r")
    except OSError as exc:
        raise ReaderError(f"{path}: not a readable netCDF file ({exc})") from exc


def _coord(ds: Any, path: Path, name: str) -> np.ndarray:
    if name not in ds.variables:
        raise ReaderError(f"{path}: coordinate variable {name!r} not found")
    return np.ma.filled(np.ma.asarray(ds.variables[name][:], dtype=np.float64), np.nan).ravel()


def read_cesm2_fields(paths: str | Path | Sequence[str | Path], lat: np.ndarray,
                      lon: np.ndarray) -> dict[str, np.ndarray]:
    """Per-site CESM2/CLM5 forcing fields from monthly history netCDF file(s), by nearest cell.

    Parameters
    ----------
    paths : path or sequence of paths
        One history file holding all variables of :data:`CESM2_VARIABLES`, or several (e.g. one per
        variable, as the authors stored them); each variable is taken from the first file that has it.
    lat, lon : array_like, (S,)
        Site coordinates, degrees.

    Returns
    -------
    dict
        Keyword arguments for :meth:`Forcing.from_proda_fields`: level fields (S, 20, 12) [layer, month],
        ``altmax``/``altmax_lastyear`` (S, 12) in m, ``nbedrock`` (S,) or (S, 12); TSOI in K.  Fill values
        become NaN.

    Raises
    ------
    ReaderError
        A file is missing; a variable is in none of the files; a variable lacks a required dimension (time
        of length 12; levgrnd/levdcmp with at least 20 levels, of which the first 20 are used; lat; lon); a
        units attribute is not one accepted for that variable; the lat/lon coordinates differ between files.
    """
    plist = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not plist:
        raise ReaderError("no CESM2 history file given")
    lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    datasets = [(p, _open_nc(p)) for p in plist]
    try:
        out: dict[str, np.ndarray] = {}
        grid: tuple[np.ndarray, np.ndarray] | None = None
        cells: tuple[np.ndarray, np.ndarray] | None = None
        for var, (kind, kw, units) in CESM2_VARIABLES.items():
            found = [(p, ds) for p, ds in datasets if var in ds.variables]
            if not found:
                raise ReaderError(
                    f"{', '.join(map(str, plist))}: variable {var!r} not found (needed for the forcing)")
            path, ds = found[0]
            glat, glon = _coord(ds, path, "lat"), _coord(ds, path, "lon")
            if grid is None:
                grid = (glat, glon)
                cells = nearest_cell_indices(glat, glon, lat, lon)
            elif glat.shape != grid[0].shape or glon.shape != grid[1].shape or not (
                    np.allclose(glat, grid[0]) and np.allclose(glon, grid[1])):
                raise ReaderError(f"{path}: variable {var!r} is on a different lat/lon grid than the others")
            assert cells is not None
            out[kw] = _extract(ds, path, var, kind, units, cells)
        return out
    finally:
        for _p, ds in datasets:
            ds.close()


def _extract(ds: Any, path: Path, var: str, kind: str, units: dict[str, tuple[float, float]] | None,
             cells: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    v = ds.variables[var]
    dims = tuple(v.dimensions)

    def find(cands: Sequence[str], what: str, required: bool = True) -> str | None:
        hit = [d for d in dims if d in cands]
        if not hit:
            if required:
                raise ReaderError(f"{path}: variable {var!r} has dimensions {dims}, lacks a {what} dimension "
                                  f"(one of {tuple(cands)})")
            return None
        return hit[0]

    tdim = find(_TIME_DIMS, "time", required=(kind != "index"))
    ldim = find(_LEVEL_DIMS, "level") if kind == "level" else None
    ydim, xdim = find(("lat",), "lat"), find(("lon",), "lon")
    used = [d for d in (tdim, ldim, ydim, xdim) if d is not None]
    extra = [d for d in dims if d not in used]
    if extra:
        raise ReaderError(f"{path}: variable {var!r} has unexpected dimension(s) {extra} (dimensions {dims})")
    if tdim is not None and ds.dimensions[tdim].size != 12:
        raise ReaderError(f"{path}: variable {var!r}: dimension {tdim!r} has length "
                          f"{ds.dimensions[tdim].size}, expected 12 (monthly climatology)")
    if ldim is not None and ds.dimensions[ldim].size < N_LAYERS:
        raise ReaderError(f"{path}: variable {var!r}: dimension {ldim!r} has {ds.dimensions[ldim].size} "
                          f"levels, need at least {N_LAYERS}")
    scale, offset = 1.0, 0.0
    u = getattr(v, "units", None)
    if u is not None and units is not None:
        key = str(u).strip()
        if key not in units:
            raise ReaderError(f"{path}: variable {var!r} has units {key!r}, expected one of "
                              f"{sorted(k for k in units if k)}")
        scale, offset = units[key]
    ilat, ilon = cells
    s = ilat.shape[0]
    tshape = [12] if tdim is not None else []
    lshape = [N_LAYERS] if ldim is not None else []
    res = np.full((s, *tshape, *lshape), np.nan)
    good = ilat >= 0
    for j in np.unique(ilat[good]):
        sel = np.flatnonzero(good & (ilat == j))
        index: list[Any] = []
        for d in dims:
            if d == ydim:
                index.append(int(j))
            elif d == ldim:
                index.append(slice(0, N_LAYERS))
            else:
                index.append(slice(None))
        block = np.ma.filled(np.ma.asarray(v[tuple(index)], dtype=np.float64), np.nan)
        # block dims = dims without ydim; move to (time?, level?, lon)
        rem = [d for d in dims if d != ydim]
        block = np.transpose(block, [rem.index(d) for d in used if d != ydim])
        res[sel] = np.moveaxis(block[..., ilon[sel]], -1, 0)
    res = res * scale + offset
    if kind == "level":
        res = np.swapaxes(res, 1, 2)  # (S, 12, 20) -> (S, 20, 12)
    return res


def read_cesm2_forcing(paths: str | Path | Sequence[str | Path], lat: np.ndarray, lon: np.ndarray) -> Forcing:
    """:class:`~prodampi.soil.forcing.Forcing` at sites from CESM2/CLM5 history file(s) (nearest cell).

    See :func:`read_cesm2_fields`; the ACC_VECTOR fields become annual column inputs via
    :meth:`Forcing.from_proda_fields` (sum over 20 levels of value x dz, summed over 12 months).
    """
    return Forcing.from_proda_fields(**read_cesm2_fields(paths, lat, lon))


def write_cesm2_history(path: str | Path, lat: np.ndarray, lon: np.ndarray, fields: Mapping[str, np.ndarray],
                        *, units: Mapping[str, str] | None = None, fill_value: float = 1.0e36,
                        dtype: str = "f8") -> Path:
    """Write a CESM2/CLM5-style monthly history netCDF file.

    Parameters
    ----------
    path : path
        Output file (netCDF-4).
    lat, lon : array_like
        1-D cell-centre coordinates, degrees north / east.
    fields : dict
        CESM2 variable name -> array in CESM2 dimension order: level variables (12, nlev, nlat, nlon) with
        nlev >= 20 (all level variables must share nlev), ALTMAX/ALTMAX_LASTYEAR (12, nlat, nlon),
        ``nbedrock`` (nlat, nlon) or (12, nlat, nlon).  Any subset of :data:`CESM2_VARIABLES` may be written
        (tests write incomplete files on purpose).  NaN is written as the fill value.
    units : dict, optional
        Override of the units attribute per variable (default :data:`CESM2_WRITE_UNITS`).
    fill_value : float
        ``_FillValue`` of the data variables (CESM uses 1e36).
    dtype : str
        netCDF type of the data variables (``"f8"`` keeps values exact; CESM itself writes ``"f4"``).

    Returns
    -------
    Path
        The file written.
    """
    import netCDF4

    path = Path(path)
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    ulist = dict(CESM2_WRITE_UNITS)
    ulist.update(units or {})
    nlevs = {np.shape(a)[1] for k, a in fields.items() if CESM2_VARIABLES.get(k, ("",))[0] == "level"}
    if len(nlevs) > 1:
        raise ValueError(f"level variables have different level counts {sorted(nlevs)}")
    nlev = nlevs.pop() if nlevs else N_LAYERS
    with netCDF4.Dataset(str(path), "w", format="NETCDF4") as ds:
        ds.createDimension("time", 12)
        ds.createDimension("levgrnd", nlev)
        ds.createDimension("levdcmp", nlev)
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        ds.title = "CESM2/CLM5-style monthly climatology (written by prodampi.io.cesm2.write_cesm2_history)"
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 0001-01-01 00:00:00"
        t.long_name = "month of the climatological year (mid-month)"
        t[:] = np.arange(12) * 365.0 / 12.0 + 15.0
        y = ds.createVariable("lat", "f8", ("lat",))
        y.units = "degrees_north"
        y[:] = lat
        x = ds.createVariable("lon", "f8", ("lon",))
        x.units = "degrees_east"
        x[:] = lon
        for name, arr in fields.items():
            a = np.asarray(arr, dtype=np.float64)
            kind = CESM2_VARIABLES[name][0] if name in CESM2_VARIABLES else None
            if kind == "level":
                dims: tuple[str, ...] = ("time", _WRITE_LEVEL_DIM.get(name, "levdcmp"), "lat", "lon")
            elif kind == "surface" or (kind == "index" and a.ndim == 3):
                dims = ("time", "lat", "lon")
            elif kind == "index":
                dims = ("lat", "lon")
            else:
                dims = {4: ("time", "levdcmp", "lat", "lon"), 3: ("time", "lat", "lon"),
                        2: ("lat", "lon")}[a.ndim]
            expect = tuple(ds.dimensions[d].size for d in dims)
            if a.shape != expect:
                raise ValueError(f"field {name!r} has shape {a.shape}, expected {expect} for dims {dims}")
            v = ds.createVariable(name, dtype, dims, fill_value=np.dtype(dtype).type(fill_value))
            if name in ulist:
                v.units = ulist[name]
            v[:] = np.ma.masked_invalid(a)
    return path

