"""PCHIP observation operator against SciPy's PchipInterpolator (same slopes as MATLAB pchip)."""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator

from prodampi.soil.layers import nodes_m
from prodampi.soil.observe import pchip_at, pchip_locate, pchip_slopes

X = nodes_m()


def _profiles(rng, b=400):
    """``b`` profiles drawn from a mix of shapes (b <= 400)."""
    y = np.exp(rng.normal(0, 2, (400, 20))) * 1e3
    y[:50] = np.round(rng.normal(0, 2, (50, 20)))  # flat stretches, zeros and sign changes
    y[50:100] = np.cumsum(rng.random((50, 20)), axis=1)  # monotone
    y[100:150] = -np.sort(rng.random((50, 20)), axis=1)
    y[150:160] = 7.0  # constant
    y[160:200] = rng.normal(size=(40, 20))  # oscillating
    return y[np.sort(rng.permutation(400)[:b])]


def test_matches_scipy_with_extrapolation():
    rng = np.random.default_rng(0)
    y = _profiles(rng)
    q = rng.uniform(-1.0, 11.0, (y.shape[0], 25))
    q[:, 0] = X[4]  # exactly on nodes and on the ends
    q[:, 1] = X[0]
    q[:, 2] = X[-1]
    q[:, 3] = 0.0
    got = pchip_at(y, q)
    ref = np.stack([PchipInterpolator(X, y[i], extrapolate=True)(q[i]) for i in range(y.shape[0])])
    scale = np.maximum(np.abs(ref), np.abs(y).max(axis=1, keepdims=True))
    assert np.max(np.abs(got - ref) / np.where(scale > 0, scale, 1)) <= 1e-12
    d_ref = np.stack([PchipInterpolator(X, y[i])(X, 1) for i in range(y.shape[0])])
    np.testing.assert_allclose(pchip_slopes(y, X), d_ref, rtol=1e-11, atol=1e-11 * np.abs(d_ref).max())


def test_nan_depths_and_broadcast_and_reuse():
    rng = np.random.default_rng(1)
    y = _profiles(rng, 8)
    q = np.array([0.05, np.nan, 0.3, 1.0, 9.0])
    out = pchip_at(y, q)
    assert out.shape == (8, 5)
    assert np.all(np.isnan(out[:, 1])) and np.all(np.isfinite(out[:, [0, 2, 3, 4]]))
    qb = np.tile(q, (8, 1))
    np.testing.assert_array_equal(pchip_at(y, qb, located=pchip_locate(qb)), pchip_at(y, qb))


def test_nan_node_only_spoils_adjacent_intervals():
    """A NaN node gives zero slopes next to it (MATLAB semantics); other intervals stay finite."""
    rng = np.random.default_rng(2)
    y = np.exp(rng.normal(size=(1, 20)))
    y[0, 8] = np.nan
    mid = 0.5 * (X[:-1] + X[1:])
    out = pchip_at(y, mid[None])[0]
    bad = np.zeros(19, dtype=bool)
    bad[[7, 8]] = True  # the two intervals touching node 8
    assert np.all(np.isnan(out[bad])) and np.all(np.isfinite(out[~bad]))
    d = pchip_slopes(y, X)[0]
    assert d[7] == 0.0 and d[9] == 0.0
    # away from the NaN the interpolant is the PCHIP of the finite part with those zero end slopes:
    # interval 0..6 only depends on nodes 0..7 and slopes there
    left = slice(0, 7)
    ref_left = PchipInterpolator(X[:9], np.r_[y[0, :8], 0.0])(mid[left])  # slopes 0..6 unaffected by node 8
    np.testing.assert_allclose(out[left], ref_left, rtol=1e-12)


def test_model_observe_uses_pchip():
    from prodampi.soil import get_model

    rng = np.random.default_rng(3)
    y = _profiles(rng, 5)
    q = rng.uniform(0, 3, (5, 4))
    np.testing.assert_array_equal(get_model("clm5").observe(y, q), pchip_at(y, q))
