"""Regular latitude/longitude grids, spherical cell areas, the land mask and latitude-band decomposition.

Conventions (``proda_nn_maps.md`` §7.1-7.2)
--------------------------------------------
* Rows run **north to south**, columns **west to east**; the 0.5 degree grid has 360 x 720 cells with centres
  at longitude -179.75 + 0.5 i and latitude 89.75 - 0.5 j.
* A cell's *flat index* is ``row * n_lon + col`` (row-major, C order).  It is the stable "cell id" that keys
  every random draw of the synthetic world, so results do not depend on how cells are chunked over ranks.
* Areas use the sphere of radius :data:`EARTH_RADIUS_M` = 6,371,008.8 m (the mean Earth radius PRODA uses).
  The exact area of a cell is ``R**2 * dlon * (sin(phi_north) - sin(phi_south))`` (radians); PRODA's own
  code uses a trapezoid that differs by ~1e-5 relative, available as ``method="trapezoid"``.
* The land mask comes from the PyPI package ``global-land-mask`` (1-km GLOBE ocean mask).  The land fraction
  of a cell is the mean of the 1-km mask over the cell (exact block average when the grid is aligned with the
  1/120 degree mask grid, otherwise the mean over ``n_sub x n_sub`` sub-sampled points).  Nothing is cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EARTH_RADIUS_M: float = 6_371_008.8
"""Mean Earth radius (m) used for all areas."""

#: resolution of the GLOBE mask of ``global-land-mask`` (cells per degree)
_MASK_CELLS_PER_DEG = 120

#: Greenland as a (lon, lat) polygon (degrees).  It separates Greenland from Baffin Island, Ellesmere Island
#: and Iceland at 0.5 degree resolution.
GREENLAND_POLYGON: np.ndarray = np.array(
    [(-55.0, 59.0), (-42.0, 59.0), (-10.0, 70.0), (-10.0, 84.5), (-60.0, 84.5), (-66.0, 81.0),
     (-73.0, 78.5), (-74.0, 76.0), (-60.0, 66.0), (-55.0, 59.0)]
)
GREENLAND_POLYGON.setflags(write=False)


# ---------------------------------------------------------------------------------------------------- grids
@dataclass(frozen=True)
class Grid:
    """A regular latitude/longitude grid (rows north to south, columns west to east).

    Attributes
    ----------
    lat : (n_lat,) float
        Cell-centre latitudes (degrees north), decreasing.
    lon : (n_lon,) float
        Cell-centre longitudes (degrees east), increasing, in [-180, 180).
    dlat, dlon : float
        Cell size (degrees).
    name : str
        Short label, e.g. ``"0.5deg"`` or ``"f05"``.
    """

    lat: np.ndarray
    lon: np.ndarray
    dlat: float
    dlon: float
    name: str = ""

    # ------------------------------------------------------------------ shape and indices
    @property
    def shape(self) -> tuple[int, int]:
        """``(n_lat, n_lon)``."""
        return int(self.lat.size), int(self.lon.size)

    @property
    def n_cells(self) -> int:
        """Number of cells ``n_lat * n_lon``."""
        return int(self.lat.size * self.lon.size)

    @property
    def lat_bounds(self) -> np.ndarray:
        """(n_lat, 2) latitude bounds (degrees): column 0 the northern, column 1 the southern edge."""
        return np.stack([self.lat + self.dlat / 2, self.lat - self.dlat / 2], axis=1).clip(-90.0, 90.0)

    @property
    def lon_bounds(self) -> np.ndarray:
        """(n_lon, 2) longitude bounds (degrees): western and eastern edge."""
        return np.stack([self.lon - self.dlon / 2, self.lon + self.dlon / 2], axis=1)

    def rowcol(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of flat cell indices."""
        flat = np.asarray(flat, dtype=np.int64)
        return flat // self.lon.size, flat % self.lon.size

    def flat(self, row: np.ndarray, col: np.ndarray) -> np.ndarray:
        """Flat cell index ``row * n_lon + col``."""
        return np.asarray(row, dtype=np.int64) * self.lon.size + np.asarray(col, dtype=np.int64)

    def centres(self, flat: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Latitude and longitude (degrees) of the centres of ``flat`` cells (all cells when ``None``)."""
        if flat is None:
            flat = np.arange(self.n_cells)
        r, c = self.rowcol(flat)
        return self.lat[r], self.lon[c]

    def locate(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Flat index of the nearest cell centre to each point, latitude and longitude searched independently.

        On a tie (a point exactly on a cell edge) the first index wins, i.e. the northern-most row and the
        western-most column, as in PRODA's lookup (``proda_nn_maps.md`` §7.1).

        Parameters
        ----------
        lat, lon : array_like
            Point coordinates (degrees north, degrees east; longitudes are wrapped into [-180, 180)).

        Returns
        -------
        numpy.ndarray of int64
            Flat cell indices, same shape as the inputs.
        """
        lat = np.asarray(lat, dtype=np.float64)
        lon = (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0
        return self.flat(nearest_index(lat, self.lat), nearest_index(lon, self.lon))

    # ------------------------------------------------------------------ areas
    def row_area_m2(self, method: str = "exact") -> np.ndarray:
        """Area (m^2) of one cell in each row, shape (n_lat,); see :func:`cell_area_m2`."""
        return cell_area_m2(self.lat, self.dlat, self.dlon, method=method)

    def area_m2(self, method: str = "exact") -> np.ndarray:
        """Cell areas (m^2), shape (n_lat, n_lon)."""
        return np.repeat(self.row_area_m2(method)[:, None], self.lon.size, axis=1)


def regular_grid(resolution_deg: float = 0.5) -> Grid:
    """Global regular grid with square cells of ``resolution_deg`` degrees.

    Parameters
    ----------
    resolution_deg : float
        Cell size in degrees; 180 / resolution must be a whole number (0.5 gives the 360 x 720 PRODA grid).

    Returns
    -------
    Grid
        Centres at ``-180 + res (i + 1/2)`` east and ``90 - res (j + 1/2)`` north.
    """
    res = float(resolution_deg)
    n_lat = 180.0 / res
    if res <= 0 or abs(n_lat - round(n_lat)) > 1e-9:
        raise ValueError(f"resolution {resolution_deg} deg does not divide 180 deg")
    n_lat = int(round(n_lat))
    lat = 90.0 - res * (np.arange(n_lat) + 0.5)
    lon = -180.0 + res * (np.arange(2 * n_lat) + 0.5)
    return Grid(lat=lat, lon=lon, dlat=res, dlon=res, name=f"{res:g}deg")


def f05_grid() -> Grid:
    """The CESM2 f05 forcing grid: 384 x 576 cells of 0.46875 x 0.625 degrees (``proda_nn_maps.md`` §7.1)."""
    dlat, dlon = 180.0 / 384, 360.0 / 576
    lat = 90.0 - dlat / 2 - dlat * np.arange(384)
    lon = -180.0 + dlon / 2 + dlon * np.arange(576)
    return Grid(lat=lat, lon=lon, dlat=dlat, dlon=dlon, name="f05")


def nearest_index(values: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest of ``centres`` (monotone) for each value; ties go to the first (lowest) index.

    Parameters
    ----------
    values : array_like
        Query coordinates (degrees).
    centres : (n,) array
        Monotone (increasing or decreasing) cell-centre coordinates (degrees).

    Returns
    -------
    numpy.ndarray of int64
        Indices into ``centres``, same shape as ``values``.
    """
    values = np.asarray(values, dtype=np.float64)
    c = np.asarray(centres, dtype=np.float64)
    decreasing = c.size > 1 and c[0] > c[-1]
    cs = c[::-1] if decreasing else c
    j = np.searchsorted(cs, values, side="left").clip(1, cs.size - 1) if cs.size > 1 else np.zeros(
        values.shape, dtype=np.int64)
    if cs.size == 1:
        return j
    lo, hi = j - 1, j
    d_lo = np.abs(values - cs[lo])
    d_hi = np.abs(cs[hi] - values)
    if decreasing:  # original index of hi is smaller, so hi wins ties
        pick = np.where(d_hi <= d_lo, hi, lo)
        return (cs.size - 1 - pick).astype(np.int64)
    return np.where(d_lo <= d_hi, lo, hi).astype(np.int64)


# ---------------------------------------------------------------------------------------------------- areas
def cell_area_m2(lat_deg: np.ndarray, dlat_deg: float, dlon_deg: float, method: str = "exact",
                 radius_m: float = EARTH_RADIUS_M) -> np.ndarray:
    """Area of lat/lon cells on the sphere (m^2).

    Parameters
    ----------
    lat_deg : array_like
        Cell-centre latitudes (degrees).
    dlat_deg, dlon_deg : float
        Cell size (degrees).
    method : {"exact", "trapezoid"}
        ``"exact"``: ``R**2 * dlon * (sin(phi_n) - sin(phi_s))`` with edges clipped to the poles;
        ``"trapezoid"``: PRODA's formula ``(L_top + L_bot) * H / 2`` (``proda_nn_maps.md`` §7.2).
    radius_m : float
        Sphere radius (m).

    Returns
    -------
    numpy.ndarray
        Areas (m^2), same shape as ``lat_deg``.
    """
    phi = np.asarray(lat_deg, dtype=np.float64)
    if method == "exact":
        north = np.radians(np.clip(phi + dlat_deg / 2, -90.0, 90.0))
        south = np.radians(np.clip(phi - dlat_deg / 2, -90.0, 90.0))
        return radius_m**2 * np.radians(dlon_deg) * (np.sin(north) - np.sin(south))
    if method == "trapezoid":
        l_top = 2 * np.pi * radius_m * np.abs(np.cos(np.radians(phi + dlat_deg / 2))) / 360.0 * dlon_deg
        l_bot = 2 * np.pi * radius_m * np.abs(np.cos(np.radians(phi - dlat_deg / 2))) / 360.0 * dlon_deg
        h = np.pi * radius_m / 180.0 * dlat_deg
        return (l_top + l_bot) * h / 2.0
    raise ValueError(f"unknown area method {method!r}; use 'exact' or 'trapezoid'")


# ---------------------------------------------------------------------------------------------------- land mask
def _globe():
    """The ``global_land_mask.globe`` module (imported lazily: it loads a ~1 GB boolean mask)."""
    try:
        from global_land_mask import globe
    except ImportError as exc:  # pragma: no cover - environment problem
        raise ImportError("the land mask needs the PyPI package 'global-land-mask' "
                          "(pip install global-land-mask)") from exc
    return globe


def land_fraction(grid: Grid, n_sub: int | None = None, row_chunk: int = 16) -> np.ndarray:
    """Fraction of each cell that is land in the 1-km GLOBE mask of ``global-land-mask``.

    Parameters
    ----------
    grid : Grid
        Target grid.
    n_sub : int, optional
        Sub-samples per cell side.  ``None`` (default): the exact block mean of the 1-km mask when the grid
        is aligned with it (cell sizes multiples of 1/120 degree, edges at 90 N and 180 W), otherwise 8.
    row_chunk : int
        Grid rows processed at once in the sub-sampling path (bounds the memory of the point arrays).

    Returns
    -------
    numpy.ndarray
        (n_lat, n_lon) land fraction in [0, 1].  Lakes count as land (GLOBE convention).
    """
    globe = _globe()
    k_lat, k_lon = grid.dlat * _MASK_CELLS_PER_DEG, grid.dlon * _MASK_CELLS_PER_DEG
    aligned = (abs(k_lat - round(k_lat)) < 1e-9 and abs(k_lon - round(k_lon)) < 1e-9
               and abs(grid.lat[0] + grid.dlat / 2 - 90.0) < 1e-9 and abs(grid.lon[0] - grid.dlon / 2 + 180.0) < 1e-9)
    mask = getattr(globe, "_mask", None)
    if n_sub is None and aligned and mask is not None and mask.shape == (180 * _MASK_CELLS_PER_DEG,
                                                                          360 * _MASK_CELLS_PER_DEG):
        kl, kn = int(round(k_lat)), int(round(k_lon))
        n_lat, n_lon = grid.shape
        ocean = np.empty((n_lat, n_lon), dtype=np.float64)
        rows_per = max(1, 2400 // kl)  # ~100 MB of mask per step
        for r0 in range(0, n_lat, rows_per):
            r1 = min(n_lat, r0 + rows_per)
            block = mask[r0 * kl:r1 * kl].reshape(r1 - r0, kl, n_lon, kn)
            ocean[r0:r1] = block.sum(axis=(1, 3), dtype=np.int64) / float(kl * kn)
        return 1.0 - ocean
    n = int(n_sub or 8)
    off = (np.arange(n) + 0.5) / n - 0.5
    n_lat, n_lon = grid.shape
    frac = np.empty((n_lat, n_lon), dtype=np.float64)
    lon_pts = (grid.lon[:, None] + off[None, :] * grid.dlon).ravel()  # (n_lon * n,)
    lon_pts = np.clip(lon_pts, -180.0, 180.0)
    for r0 in range(0, n_lat, row_chunk):
        r1 = min(n_lat, r0 + row_chunk)
        lat_pts = np.clip((grid.lat[r0:r1, None] + off[None, :] * grid.dlat).ravel(), -90.0, 90.0)
        la, lo = np.meshgrid(lat_pts, lon_pts, indexing="ij")  # (rows * n, n_lon * n)
        land = ~np.asarray(globe.is_ocean(la, lo), dtype=bool)
        frac[r0:r1] = land.reshape(r1 - r0, n, n_lon, n).mean(axis=(1, 3))
    return frac


def points_in_polygon(lon: np.ndarray, lat: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd ray-casting test of points against a (lon, lat) polygon (degrees, no date-line crossing).

    Parameters
    ----------
    lon, lat : array_like
        Point coordinates (degrees).
    polygon : (n, 2) array
        Vertices (lon, lat); closing the ring is optional.

    Returns
    -------
    numpy.ndarray of bool
        True inside, same shape as ``lon``.
    """
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    inside = np.zeros(np.broadcast(x, y).shape, dtype=bool)
    px, py = polygon[:, 0], polygon[:, 1]
    for i in range(len(polygon)):
        x1, y1, x2, y2 = px[i - 1], py[i - 1], px[i], py[i]
        if y1 == y2:
            continue
        cond = (y1 > y) != (y2 > y)
        xc = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= cond & (x < xc)
    return inside


def domain_mask(grid: Grid, land_frac: np.ndarray, min_land_fraction: float = 0.5,
                exclude_antarctica: bool = True, exclude_greenland: bool = True) -> np.ndarray:
    """Cells of the synthetic world's land domain (``world.md`` §2).

    Parameters
    ----------
    grid : Grid
        The grid.
    land_frac : (n_lat, n_lon) array
        Land fraction from :func:`land_fraction`.
    min_land_fraction : float
        Minimum land fraction (0.5 = "cells with >= 50 % land").
    exclude_antarctica : bool
        Drop cells whose centre lies south of 60 S.
    exclude_greenland : bool
        Drop cells whose centre lies inside :data:`GREENLAND_POLYGON`.

    Returns
    -------
    numpy.ndarray of bool
        (n_lat, n_lon) domain mask.
    """
    m = np.asarray(land_frac) >= min_land_fraction
    la, lo = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    if exclude_antarctica:
        m &= la >= -60.0
    if exclude_greenland:
        m &= ~points_in_polygon(lo, la, GREENLAND_POLYGON)
    return m


# ---------------------------------------------------------------------------------------------------- bands
@dataclass(frozen=True)
class LatitudeBands:
    """Contiguous latitude bands of land cells, one per rank (rank 0 northern-most).

    Attributes
    ----------
    rank_of_cell : (n_cells,) int
        Rank owning each land cell (same order as the input).
    row_start, row_stop : (n_ranks,) int
        Half-open range of grid rows of each band; ``row_start == row_stop`` for an empty band.
    counts : (n_ranks,) int
        Land cells per band.
    """

    rank_of_cell: np.ndarray
    row_start: np.ndarray
    row_stop: np.ndarray
    counts: np.ndarray

    @property
    def n_ranks(self) -> int:
        """Number of bands (= ranks)."""
        return int(self.counts.size)

    def cells(self, rank: int) -> np.ndarray:
        """Positions (into the input array) of the land cells of ``rank``, in input order."""
        return np.flatnonzero(self.rank_of_cell == rank)


def latitude_bands(land_lat_index: np.ndarray, n_ranks: int) -> LatitudeBands:
    """Split land cells into ``n_ranks`` contiguous latitude bands balanced by land-cell count.

    Rows (latitudes) are never split, so a band holds whole grid rows; the split points are the rows whose
    cumulative land-cell count is nearest to ``k * N / n_ranks``.  When there are more ranks than rows with land
    (or one row outweighs a share), some ranks get an empty band - callers must handle zero cells.

    Parameters
    ----------
    land_lat_index : (N,) int array
        Grid row (latitude index, 0 = northern-most) of every land cell, any order.
    n_ranks : int
        Number of ranks (>= 1).

    Returns
    -------
    LatitudeBands
    """
    if n_ranks < 1:
        raise ValueError("n_ranks must be >= 1")
    rows = np.asarray(land_lat_index, dtype=np.int64).ravel()
    n = rows.size
    if n == 0:
        z = np.zeros(n_ranks, dtype=np.int64)
        return LatitudeBands(np.zeros(0, dtype=np.int64), z.copy(), z.copy(), z.copy())
    urows, ucount = np.unique(rows, return_counts=True)
    cum = np.concatenate([[0], np.cumsum(ucount)])  # cum[j] = cells in rows urows[:j]
    # split position (0..len(urows)) for every interior boundary k = 1..n_ranks-1
    targets = np.arange(1, n_ranks) * n / n_ranks
    j = np.searchsorted(cum, targets, side="left").clip(1, urows.size)
    # choose the nearer of cum[j-1] and cum[j]
    lower_closer = (targets - cum[j - 1]) <= (cum[j] - targets)
    split = np.where(lower_closer, j - 1, j)
    split = np.maximum.accumulate(np.concatenate([[0], split, [urows.size]]))
    # band k owns unique rows [split[k], split[k+1])
    row_start = np.empty(n_ranks, dtype=np.int64)
    row_stop = np.empty(n_ranks, dtype=np.int64)
    for k in range(n_ranks):
        a, b = split[k], split[k + 1]
        if b > a:
            row_start[k], row_stop[k] = urows[a], urows[b - 1] + 1
        else:  # empty band: a zero-length range at the boundary
            edge = urows[a] if a < urows.size else urows[-1] + 1
            row_start[k] = row_stop[k] = edge
    rank_of_urow = np.searchsorted(split[1:], np.arange(urows.size), side="right")
    rank_of_cell = rank_of_urow[np.searchsorted(urows, rows)]
    counts = np.bincount(rank_of_cell, minlength=n_ranks).astype(np.int64)
    return LatitudeBands(rank_of_cell.astype(np.int64), row_start, row_stop, counts)
