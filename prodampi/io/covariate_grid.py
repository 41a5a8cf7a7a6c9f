"""Reader of covariate grid tables: one row per grid cell, its centre and its covariates (African 20-km grid).

:func:`read_covariate_grid` reads a table such as ``afgrid20_africa_covariates`` (cell centres in degrees
N / E, optional LAEA x/y in m, 38 covariates whose units are declared in :data:`AFGRID20_MAPPING`, e.g.
elevation m, precipitation mm yr-1, land-surface temperature degC) into a :class:`CovariateGrid`.  Categorical
(text) covariates become integer codes.  Sites find their cell by great-circle distance
(:mod:`prodampi.data.geo`).  Rejections follow the rules of :mod:`prodampi.io.tables`.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.geo import SphereIndex
from .tables import ReaderError, Rejection, _iter_csv, _open_text, _parse_number, _RowParser

logger = logging.getLogger(__name__)

__all__ = ["AFGRID20_MAPPING", "CovariateGrid", "read_covariate_grid"]

#: African 20-km covariate grid (``afgrid20_africa_covariates``): coordinate columns, and per covariate its
#: unit; categorical (text) covariates are coded as integers 0..n-1 in sorted order of their labels.
AFGRID20_MAPPING: dict[str, Any] = {
    "name": "afgrid20",
    "file": "afgrid20_covariates_20km.csv.gz",
    "coordinates": {"lat": "lat", "lon": "lon", "x_laea_m": "x_laea", "y_laea_m": "y_laea"},
    "units": {
        "SMKMOD0x": "1 (soil mask)",
        "DEMSRE0a": "m",
        "EVMMOD0a": "EVI x 10000",
        "EVSMOD0a": "EVI x 10000",
        **{f"G{i:02d}ESA0a": "%" for i in range(1, 23)},
        "IFLGRE0a": "1 (0/1)",
        "L3POBI0a": "category code",
        "LMTGSH0a": "category code",
        "PREGSM0a": "mm yr-1",
        "SLPSRT0a": "unknown (WorldGrids slope)",
        "TDHMOD0a": "degC",
        "TDMMOD0a": "degC",
        "TDSMOD0a": "degC",
        "TNMMOD0a": "degC",
        "TNSMOD0a": "degC",
        "TWISRE0x": "1 (index)",
        "SGEUSG0x": "category code",
    },
    "categorical": ("L3POBI0a", "SGEUSG0x"),
}


@dataclass
class CovariateGrid:
    """Covariates on grid cells, with nearest-cell lookup.

    Attributes
    ----------
    lat, lon : ndarray, (N,)
        Cell-centre latitude / longitude, degrees (WGS84).
    x_laea_m, y_laea_m : ndarray, (N,)
        Cell-centre projected coordinates, m (NaN when the source has none).
    values : ndarray, (N, K)
        Covariates (NaN where missing or rejected); categorical ones as integer codes (float).
    names, units : tuple of str, (K,)
    categories : dict of str to tuple of str
        For a categorical covariate, ``categories[name][code]`` is the label.
    rejections : list of Rejection
    """

    lat: np.ndarray
    lon: np.ndarray
    x_laea_m: np.ndarray
    y_laea_m: np.ndarray
    values: np.ndarray
    names: tuple[str, ...]
    units: tuple[str, ...]
    categories: dict[str, tuple[str, ...]]
    rejections: list[Rejection]
    _index: SphereIndex | None = field(default=None, repr=False, compare=False)

    @property
    def n_cells(self) -> int:
        """Number of cells."""
        return int(self.lat.shape[0])

    def nearest(self, lat: np.ndarray, lon: np.ndarray,
                max_distance_km: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Great-circle nearest cell of each site: :meth:`prodampi.data.geo.SphereIndex.query`, in km.

        ``lat``/``lon`` (S,) in degrees; sites farther than ``max_distance_km`` from every cell centre get
        index -1.  Returns ``index`` (S,) int64 (-1 also for non-finite coordinates) and ``distance_km`` (S,),
        the distance to that cell centre on the sphere of radius :data:`~prodampi.data.grid.EARTH_RADIUS_M`
        (NaN for non-finite coordinates).
        """
        if self._index is None:
            self._index = SphereIndex(self.lat, self.lon)
        max_m = None if max_distance_km is None else 1000.0 * max_distance_km
        idx, dist_m = self._index.query(lat, lon, max_distance_m=max_m)
        return idx, dist_m / 1000.0

    def at_sites(self, lat: np.ndarray, lon: np.ndarray, max_distance_km: float | None = None) -> np.ndarray:
        """(S, K) covariates of the nearest cell of each site (NaN rows where no cell qualifies)."""
        idx, _ = self.nearest(lat, lon, max_distance_km)
        out = np.full((idx.shape[0], len(self.names)), np.nan)
        good = idx >= 0
        out[good] = self.values[idx[good]]
        return out


def read_covariate_grid(path: str | Path, mapping: Mapping[str, Any] = AFGRID20_MAPPING) -> CovariateGrid:
    """Read a covariate grid table (default: the African 20-km grid).

    Parameters
    ----------
    path : path
        The ``.csv(.gz)`` file or the folder holding ``mapping["file"]``.
    mapping : dict
        See :data:`AFGRID20_MAPPING`: ``coordinates`` (lat/lon required, x/y optional), ``units`` (every
        other column is a covariate; a column without a declared unit gets ``"unknown"``), ``categorical``.

    Returns
    -------
    CovariateGrid

    Notes
    -----
    A bad or out-of-range latitude/longitude, or a repeated (lat, lon) cell centre, drops the row; a bad
    covariate value (text in a numeric column, non-finite) is dropped to NaN (value scope).
    """
    path = Path(path)
    if path.is_dir():
        path = path / mapping["file"]
    coords = dict(mapping["coordinates"])
    units_map = dict(mapping.get("units", {}))
    categorical = set(mapping.get("categorical", ()))
    with _open_text(path, "utf-8") as fh:
        try:
            header = [h.strip() for h in next(csv.reader(fh))]
        except (StopIteration, csv.Error, OSError, EOFError) as exc:
            raise ReaderError(f"{path}: cannot read header ({exc})") from exc
    for canon in ("lat", "lon"):
        if canon not in coords:
            raise ReaderError(f"{path}: mapping names no column for {canon}")
    coord_src = set(coords.values())
    names = tuple(h for h in header if h and h not in coord_src)
    wanted = {**coords, **{f"cov:{n}": n for n in names}}
    rejections: list[Rejection] = []
    parser = _RowParser(str(path), coords, {}, frozenset({"lat", "lon"}), frozenset({"lat", "lon"}),
                        rejections)
    rows: list[tuple[int, dict[str, float], dict[str, str]]] = []
    seen: dict[tuple[float, float], int] = {}
    for line, raw in _iter_csv(path, wanted, rejections=rejections, id_key=None):
        craw = {k: raw[k] for k in coords}
        vals = parser.parse(line, craw, None)
        if vals is None:
            continue
        key = (vals["lat"], vals["lon"])
        if key in seen:
            rejections.append(Rejection(str(path), line, coords["lat"], raw["lat"],
                                        f"duplicate cell centre (first at row {seen[key]})"))
            continue
        seen[key] = line
        rows.append((line, vals, {n: raw[f"cov:{n}"] for n in names}))
    cats: dict[str, tuple[str, ...]] = {}
    for n in names:
        if n in categorical:
            labels = sorted({r[2][n].strip() for r in rows} - {""})
            cats[n] = tuple(labels)
    values = np.full((len(rows), len(names)), np.nan)
    for k, n in enumerate(names):
        texts = [r[2][n].strip() for r in rows]
        if n in cats:
            code = {lab: float(c) for c, lab in enumerate(cats[n])}
            values[:, k] = [code.get(t, np.nan) for t in texts]
            continue
        try:  # fast path: a clean numeric column
            col = np.array([t if t else "nan" for t in texts], dtype=np.float64)
            if np.all(np.isfinite(col) | np.isnan(col)):
                values[:, k] = col
                continue
        except ValueError:
            pass
        for i, text in enumerate(texts):  # slow path: find and report the bad values
            v, why = _parse_number(text)
            if why is not None:
                rejections.append(Rejection(str(path), rows[i][0], n, text, why, None, "value"))
            values[i, k] = v
    lat = np.array([r[1]["lat"] for r in rows], dtype=np.float64)
    lon = np.array([r[1]["lon"] for r in rows], dtype=np.float64)
    x = np.array([r[1].get("x_laea_m", math.nan) for r in rows], dtype=np.float64)
    y = np.array([r[1].get("y_laea_m", math.nan) for r in rows], dtype=np.float64)
    units = tuple(units_map.get(n, "unknown") for n in names)
    logger.info("%s: %d cells x %d covariates; %d rejections", path.name, len(rows), len(names),
                len(rejections))
    return CovariateGrid(lat, lon, x, y, values, names, units, cats, rejections)

