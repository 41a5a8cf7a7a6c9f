"""Observation operator: shape-preserving cubic Hermite (PCHIP) interpolation from the 20 layer nodes.

PRODA maps modelled SOC (g C m-3) at the node depths ``zsoi_1..20`` (0.01-8.03 m) to observed depths (m) with
MATLAB ``interp1(..., 'pchip')``, extrapolating outside the node range (``clm5.md`` §6.2, ``compas.md`` §6).
This module evaluates the same interpolant (Fritsch-Carlson slopes with the weighted harmonic mean of
Fritsch-Butland, non-centred three-point end slopes with the shape-preserving limits, identical to
``scipy.interpolate.PchipInterpolator(extrapolate=True)`` and MATLAB ``pchip``) directly in cubic Hermite
(power) form, vectorised over a batch of profiles.

NaN handling (``compas.md`` §6): slopes are computed without a finiteness check.  A slope at or next to a
NaN node becomes 0 (its sign comparison fails, as in MATLAB), so only the intervals touching a NaN node give
NaN; the rest of the profile stays finite.  NaN depths give NaN.
"""

from __future__ import annotations

import numpy as np

from .layers import nodes_m

__all__ = ["pchip_slopes", "pchip_locate", "pchip_at"]


def pchip_slopes(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """PCHIP node derivatives for profiles ``y`` (B, n) on nodes ``x`` (n,) (units of y per unit of x).

    Parameters
    ----------
    y : (B, n) array
        Values at the nodes (any units, e.g. g C m-3); may contain NaN.
    x : (n,) array
        Strictly increasing node coordinates (e.g. depth in m), n >= 3.

    Returns
    -------
    (B, n) array
        Derivatives dy/dx at the nodes.
    """
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    h = np.diff(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.diff(y, axis=-1) / h
        sm = np.sign(m)
        # interior: 0 where the secants change sign, one is 0, or a sign is NaN
        zero = (sm[..., 1:] != sm[..., :-1]) | (m[..., 1:] == 0.0) | (m[..., :-1] == 0.0)
        w1 = 2.0 * h[1:] + h[:-1]
        w2 = h[1:] + 2.0 * h[:-1]
        whmean = (w1 / m[..., :-1] + w2 / m[..., 1:]) / (w1 + w2)
        d = np.empty_like(y)
        d[..., 1:-1] = np.where(zero, 0.0, 1.0 / whmean)
        d[..., 0] = _edge(h[0], h[1], m[..., 0], m[..., 1])
        d[..., -1] = _edge(h[-1], h[-2], m[..., -1], m[..., -2])
    return d


def _edge(h0: float, h1: float, m0: np.ndarray, m1: np.ndarray) -> np.ndarray:
    """Shape-preserving non-centred three-point end slope."""
    d = ((2.0 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    s0 = np.sign(m0)
    to_zero = np.sign(d) != s0  # includes NaN
    limit = (s0 != np.sign(m1)) & (np.abs(d) > 3.0 * np.abs(m0))
    return np.where(to_zero, 0.0, np.where(limit, 3.0 * m0, d))


def pchip_locate(depths_m: np.ndarray, x: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Interval index and offset of each query point (reusable across evaluations at fixed depths).

    Parameters
    ----------
    depths_m : array, any shape
        Query depths (m); NaN allowed.
    x : (n,) array or None
        Nodes (m); default the 20 layer node depths.

    Returns
    -------
    k : int array, shape of ``depths_m``
        Interval 0..n-2 (first/last interval for extrapolation).
    s : float array, shape of ``depths_m``
        ``depth - x[k]`` (m); NaN where the depth is NaN.
    """
    x = nodes_m() if x is None else np.asarray(x, dtype=np.float64)
    q = np.asarray(depths_m, dtype=np.float64)
    k = np.clip(np.searchsorted(x, q, side="right") - 1, 0, x.size - 2)
    return k, q - x[k]


def pchip_at(y: np.ndarray, depths_m: np.ndarray, x: np.ndarray | None = None,
             located: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """PCHIP interpolation (with extrapolation) of profiles ``y`` at ``depths_m``.

    Parameters
    ----------
    y : (B, n) array
        Values at the nodes, e.g. SOC (g C m-3) at the 20 layer nodes; NaN tolerated (module docstring).
    depths_m : (B, L) array
        Query depths (m), NaN for padding.  A (L,) array is broadcast to all profiles.
    x : (n,) array or None
        Node depths (m); default the 20 layer node depths ``zsoi`` (0.01-8.03 m).
    located : (k, s) or None
        Output of :func:`pchip_locate` for these depths (skips the interval search).

    Returns
    -------
    (B, L) array
        Interpolated values (units of ``y``); NaN where the depth is NaN.
    """
    x = nodes_m() if x is None else np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    depths_m = np.asarray(depths_m, dtype=np.float64)
    if depths_m.ndim == 1:
        depths_m = np.broadcast_to(depths_m, (y.shape[0], depths_m.size))
    k, s = pchip_locate(depths_m, x) if located is None else located
    k = np.broadcast_to(k, depths_m.shape)
    s = np.broadcast_to(s, depths_m.shape)
    d = pchip_slopes(y, x)
    h = np.diff(x)[k]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        y0 = np.take_along_axis(y, k, axis=1)
        y1 = np.take_along_axis(y, k + 1, axis=1)
        d0 = np.take_along_axis(d, k, axis=1)
        d1 = np.take_along_axis(d, k + 1, axis=1)
        m = (y1 - y0) / h
        c2 = (3.0 * m - 2.0 * d0 - d1) / h
        c3 = (d0 + d1 - 2.0 * m) / (h * h)
        out = y0 + s * (d0 + s * (c2 + s * c3))
    return np.where(np.isnan(depths_m), np.nan, out)
