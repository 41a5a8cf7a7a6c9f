"""Nearest-cell lookup for sites given in degrees: great-circle nearest cell, and PRODA's per-axis grid rule.

Two rules, each written once:

* :class:`SphereIndex` / :func:`nearest_cell` - the **great-circle** nearest cell centre, for scattered cells
  (covariate-table cells, the land cells of a grid).  Cell centres become unit vectors in a k-d tree; the
  nearest unit vector in Euclidean (chord) distance is the nearest on the sphere, and the chord ``c`` gives the
  great-circle distance ``2 R arcsin(c / 2)`` on the sphere of radius
  :data:`~prodampi.data.grid.EARTH_RADIUS_M` (R = 6,371,008.8 m, the one Earth radius of prodampi).  Works
  across the antimeridian and at the poles; longitudes may be given in -180..180 or 0..360.
* :func:`nearest_cell_indices` - the rule of PRODA's forcing lookup on a **regular lat/lon grid**
  (``compas.md`` §3, ``proda_nn_maps.md`` §7.1): latitude and longitude are searched independently
  (longitude distance taken around the circle), ties go to the first (lowest) index.  Near the poles this is
  not the great-circle nearest cell; it is kept because results must match the authors' lookup.

Units: coordinates in degrees north / east; distances in metres.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .grid import EARTH_RADIUS_M

__all__ = ["SphereIndex", "nearest_cell", "nearest_cell_indices", "unit_vectors"]


def unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Unit vectors of points on the sphere.

    Parameters
    ----------
    lat, lon : array_like, (N,)
        Latitude / longitude, degrees.

    Returns
    -------
    ndarray, (N, 3)
        ``(cos lat cos lon, cos lat sin lon, sin lat)``.
    """
    la = np.radians(np.asarray(lat, dtype=np.float64))
    lo = np.radians(np.asarray(lon, dtype=np.float64))
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


class SphereIndex:
    """Cell centres in a k-d tree of unit vectors, for repeated great-circle nearest-cell queries.

    Parameters
    ----------
    cell_lat, cell_lon : array_like, (N,)
        Cell-centre latitude / longitude, degrees (finite).
    radius_m : float
        Sphere radius for the distances, m (default :data:`~prodampi.data.grid.EARTH_RADIUS_M`).
    """

    def __init__(self, cell_lat: np.ndarray, cell_lon: np.ndarray, radius_m: float = EARTH_RADIUS_M) -> None:
        from scipy.spatial import cKDTree

        xyz = unit_vectors(np.ravel(cell_lat), np.ravel(cell_lon))
        self.n_cells = int(xyz.shape[0])
        self.radius_m = float(radius_m)
        self._tree: Any = cKDTree(xyz)

    def query(self, lat: np.ndarray, lon: np.ndarray,
              max_distance_m: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Nearest cell of each site.

        Parameters
        ----------
        lat, lon : array_like, (S,)
            Site coordinates, degrees.
        max_distance_m : float, optional
            Sites farther than this from every cell centre get index -1 (their distance is still returned).

        Returns
        -------
        index : ndarray of int64, (S,)
            Cell index; -1 for non-finite site coordinates, when there are no cells, or beyond
            ``max_distance_m``.  Of two cells at the same distance either may be returned.
        distance_m : ndarray of float64, (S,)
            Great-circle distance to that cell centre, m; NaN where the index is -1 for want of a cell or of
            finite coordinates.
        """
        lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
        lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
        ok = np.isfinite(lat) & np.isfinite(lon)
        idx = np.full(lat.shape, -1, dtype=np.int64)
        dist = np.full(lat.shape, np.nan)
        if ok.any() and self.n_cells:
            chord, j = self._tree.query(unit_vectors(lat[ok], lon[ok]))
            idx[ok] = j
            dist[ok] = 2.0 * self.radius_m * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))
        if max_distance_m is not None:
            idx[~(dist <= max_distance_m)] = -1
        return idx, dist


def nearest_cell(cell_lat: np.ndarray, cell_lon: np.ndarray, lat: np.ndarray, lon: np.ndarray, *,
                 max_distance_m: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Great-circle nearest cell centre of each site (one-off :class:`SphereIndex` query).

    Parameters
    ----------
    cell_lat, cell_lon : array_like, (N,)
        Cell-centre coordinates, degrees.
    lat, lon : array_like, (S,)
        Site coordinates, degrees.
    max_distance_m : float, optional
        See :meth:`SphereIndex.query`.

    Returns
    -------
    index : ndarray of int64, (S,)
    distance_m : ndarray of float64, (S,)
        As :meth:`SphereIndex.query`; distances in m on the sphere of radius
        :data:`~prodampi.data.grid.EARTH_RADIUS_M`.
    """
    return SphereIndex(cell_lat, cell_lon).query(lat, lon, max_distance_m)


def nearest_cell_indices(grid_lat: np.ndarray, grid_lon: np.ndarray, lat: np.ndarray,
                         lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest cell of a regular lat/lon grid per site, latitude and longitude searched independently.

    This is PRODA's forcing lookup (``compas.md`` §3), not the great-circle nearest cell (see
    :func:`nearest_cell`).

    Parameters
    ----------
    grid_lat, grid_lon : array_like
        1-D cell-centre coordinates, degrees (either order; longitudes may be -180..180 or 0..360).
    lat, lon : array_like, (S,)
        Site coordinates, degrees.

    Returns
    -------
    ilat, ilon : ndarray of int64, (S,)
        Index of the closest latitude and of the closest longitude (longitude distance taken around the
        circle); on a tie the first (lowest) index.  Non-finite site coordinates give -1.
    """
    glat = np.asarray(grid_lat, dtype=np.float64).ravel()
    glon = np.asarray(grid_lon, dtype=np.float64).ravel()
    lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    ilat = np.zeros(lat.shape, dtype=np.int64)
    ilon = np.zeros(lon.shape, dtype=np.int64)
    for a in range(0, lat.size, 4096):  # bounded memory for many sites
        b = slice(a, a + 4096)
        ilat[b] = np.argmin(np.abs(lat[b, None] - glat[None, :]), axis=1)
        ilon[b] = np.argmin(np.abs(np.mod(lon[b, None] - glon[None, :] + 180.0, 360.0) - 180.0), axis=1)
    bad = ~(np.isfinite(lat) & np.isfinite(lon))
    ilat[bad] = -1
    ilon[bad] = -1
    return ilat, ilon
