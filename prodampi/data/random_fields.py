"""Seeded randomness for the synthetic world that does not depend on chunking.

Two kinds of noise are used, both keyed by ``(seed, field name)``:

* :class:`SmoothField` - a smooth, isotropic Gaussian random field on the sphere (unit variance, squared-
  exponential correlation with a length scale in km), built from random Fourier features of the 3-D unit
  vector.  It is a closed-form function of position, so it can be evaluated at any set of points in any order.
* :func:`cell_noise` - independent standard-normal (or uniform) draws per grid cell, generated for the *whole*
  global grid from ``default_rng(SeedSequence([seed, field id]))`` and indexed by flat cell id, so a chunk or a
  single cell gets exactly the values it would get in a full-grid run.
"""

from __future__ import annotations

import zlib

import numpy as np

from .grid import EARTH_RADIUS_M


def field_id(name: str) -> int:
    """Stable 32-bit integer for a field name (CRC-32), used as a SeedSequence key."""
    return zlib.crc32(name.encode("utf-8")) & 0xFFFFFFFF


def rng_for(seed: int, name: str, *extra: int) -> np.random.Generator:
    """``numpy.random.default_rng`` keyed by ``(seed, field name, *extra)``.

    Parameters
    ----------
    seed : int
        World seed (>= 0).
    name : str
        Field name.
    *extra : int
        Further non-negative integer keys (e.g. a cell id or a parameter index).
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), field_id(name), *map(int, extra)]))


def unit_vectors(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """3-D unit vectors (..., 3) of points given in degrees."""
    la = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lo = np.radians(np.asarray(lon_deg, dtype=np.float64))
    cl = np.cos(la)
    return np.stack([cl * np.cos(lo), cl * np.sin(lo), np.sin(la)], axis=-1)


class SmoothField:
    """Unit-variance smooth random field on the sphere (random Fourier features).

    ``f(x) = sqrt(2 / M) * sum_i cos(w_i . x + b_i)`` with ``x`` the unit vector of the point,
    ``w_i ~ N(0, (R / L)^2 I_3)`` and ``b_i ~ U(0, 2 pi)``.  The covariance is
    ``exp(-d^2 / (2 L^2))`` in chord distance ``d`` (km), i.e. length scale ``L`` (km).

    Parameters
    ----------
    seed : int
        World seed.
    name : str
        Field name (different names give independent fields).
    length_km : float
        Correlation length scale (km).
    n_features : int
        Number of random features ``M``.
    """

    def __init__(self, seed: int, name: str, length_km: float, n_features: int = 256) -> None:
        rng = rng_for(seed, "smooth:" + name)
        scale = EARTH_RADIUS_M / 1000.0 / float(length_km)
        self.w = rng.standard_normal((n_features, 3)) * scale
        self.b = rng.uniform(0.0, 2 * np.pi, n_features)
        self.amp = np.sqrt(2.0 / n_features)
        self.length_km = float(length_km)

    def __call__(self, lat_deg: np.ndarray, lon_deg: np.ndarray, chunk: int = 20000) -> np.ndarray:
        """Field values at points (degrees); dimensionless, mean ~0, SD ~1."""
        x = unit_vectors(lat_deg, lon_deg)
        shape = x.shape[:-1]
        x = x.reshape(-1, 3)
        out = np.empty(x.shape[0], dtype=np.float64)
        for i in range(0, x.shape[0], chunk):
            out[i:i + chunk] = np.cos(x[i:i + chunk] @ self.w.T + self.b).sum(axis=1) * self.amp
        return out.reshape(shape)


def cell_noise(seed: int, name: str, cell_id: np.ndarray, n_cells_total: int, k: int = 1,
               kind: str = "normal") -> np.ndarray:
    """Per-cell independent noise keyed by ``(seed, name, cell id)``.

    The draws for all ``n_cells_total`` cells of the global grid are generated from one generator and the
    requested cells are picked out, so the result for a cell never depends on which other cells are asked for.

    Parameters
    ----------
    seed : int
        World seed.
    name : str
        Field name.
    cell_id : (n,) int array
        Flat cell indices (0 <= id < n_cells_total).
    n_cells_total : int
        Cells in the global grid.
    k : int
        Draws per cell (columns).
    kind : {"normal", "uniform"}
        Standard normal or U(0, 1).

    Returns
    -------
    numpy.ndarray
        (n,) when ``k == 1`` else (n, k).
    """
    rng = rng_for(seed, "cell:" + name)
    if kind == "normal":
        allv = rng.standard_normal((n_cells_total, k))
    elif kind == "uniform":
        allv = rng.random((n_cells_total, k))
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    out = allv[np.asarray(cell_id, dtype=np.int64)]
    return out[:, 0] if k == 1 else out
