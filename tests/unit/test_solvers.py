"""Batched Thomas and block-Thomas solvers against dense LAPACK solves."""

from __future__ import annotations

import numpy as np
import pytest

from prodampi.soil.solvers import (
    BlockTridiagonalLU,
    TridiagonalLU,
    inv3,
    solve_block_tridiagonal,
    solve_tridiagonal,
)


def _dense_tri(a, b, c):
    bsz, n = b.shape
    m = np.zeros((bsz, n, n))
    i = np.arange(n)
    m[:, i, i] = b
    m[:, i[1:], i[:-1]] = a[:, 1:]
    m[:, i[:-1], i[1:]] = c[:, :-1]
    return m


def _dense_block(lo, d, up):
    bsz, n = d.shape[:2]
    m = np.zeros((bsz, 3 * n, 3 * n))
    for j in range(n):
        m[:, 3 * j:3 * j + 3, 3 * j:3 * j + 3] = d[:, j]
        if j > 0:
            m[:, 3 * j:3 * j + 3, 3 * j - 3:3 * j] = lo[:, j]
        if j < n - 1:
            m[:, 3 * j:3 * j + 3, 3 * j + 3:3 * j + 6] = up[:, j]
    return m


def _random_tri(rng, bsz=64, n=20):
    a = -rng.uniform(0, 1, (bsz, n)) * 10.0 ** rng.uniform(-6, 0, (bsz, 1))
    c = -rng.uniform(0, 1, (bsz, n)) * 10.0 ** rng.uniform(-6, 0, (bsz, 1))
    b = -a - c + 10.0 ** rng.uniform(-8, 0, (bsz, n))  # M-matrix, widely scaled diagonals
    return a, b, c


def test_tridiagonal_matches_dense():
    rng = np.random.default_rng(0)
    a, b, c = _random_tri(rng)
    m = _dense_tri(a, b, c)
    d = rng.normal(size=(64, 20, 3))
    x, ok = solve_tridiagonal(a, b, c, d)
    ref = np.linalg.solve(m, d)
    assert ok.all()
    np.testing.assert_allclose(x, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
    x1, _ = solve_tridiagonal(a, b, c, d[:, :, 0])
    np.testing.assert_allclose(x1, x[:, :, 0], rtol=1e-14)
    xt, okt = solve_tridiagonal(a, b, c, d, transposed=True)
    reft = np.linalg.solve(np.swapaxes(m, 1, 2), d)
    assert okt.all()
    np.testing.assert_allclose(xt, reft, rtol=1e-9, atol=1e-9 * np.abs(reft).max())
    # residual check independent of LAPACK
    np.testing.assert_allclose(np.einsum("bij,bjk->bik", m, x), d, atol=1e-10 * np.abs(d).max())


def test_tridiagonal_failure_flags_do_not_raise():
    rng = np.random.default_rng(1)
    a, b, c = _random_tri(rng, bsz=5, n=6)
    b[1, 0] = 0.0  # zero first pivot
    b[2, 3] = np.nan
    a[3, 2] = np.inf
    d = np.ones((5, 6))
    x, ok = solve_tridiagonal(a, b, c, d)
    np.testing.assert_array_equal(ok, [True, False, False, False, True])
    assert np.all(np.isfinite(x[ok]))
    lu = TridiagonalLU.factor(a, b, c)
    np.testing.assert_array_equal(lu.ok, [True, False, False, False, True])


def test_inv3():
    rng = np.random.default_rng(2)
    m = rng.normal(size=(100, 3, 3))
    inv, det = inv3(np.moveaxis(m, 0, -1))
    np.testing.assert_allclose(np.moveaxis(inv, -1, 0), np.linalg.inv(m), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(det, np.linalg.det(m), rtol=1e-10)


def test_block_tridiagonal_matches_dense():
    rng = np.random.default_rng(3)
    bsz, n = 40, 20
    lo = rng.normal(size=(bsz, n, 3, 3))
    up = rng.normal(size=(bsz, n, 3, 3))
    d = rng.normal(size=(bsz, n, 3, 3)) + 8 * np.eye(3)
    r = rng.normal(size=(bsz, n, 3))
    m = _dense_block(lo, d, up)
    for transposed in (False, True):
        x, ok = solve_block_tridiagonal(lo, d, up, r, transposed=transposed)
        mm = np.swapaxes(m, 1, 2) if transposed else m
        ref = np.linalg.solve(mm, r.reshape(bsz, -1, 1))[..., 0].reshape(bsz, n, 3)
        assert ok.all()
        np.testing.assert_allclose(x, ref, rtol=1e-10, atol=1e-12)


def test_block_scalar_offdiagonal_and_shifted_forms():
    """The CLM5 structure: D_j = main_j I + scale_j R, off-diagonal blocks a_j I, c_j I."""
    rng = np.random.default_rng(4)
    bsz, n = 30, 20
    a, b, c = _random_tri(rng, bsz, n)
    scale = 10.0 ** rng.uniform(-8, 0, (bsz, n))
    k = 10.0 ** rng.uniform(-5, -1, (bsz, 3))
    f = rng.uniform(0, 0.45, (bsz, 5))
    rm = np.zeros((bsz, 3, 3))
    rm[:, 0, 0], rm[:, 1, 1], rm[:, 2, 2] = k[:, 0], k[:, 1], k[:, 2]
    rm[:, 0, 1], rm[:, 0, 2] = -f[:, 0] * k[:, 1], -f[:, 1] * k[:, 2]
    rm[:, 1, 0], rm[:, 2, 0], rm[:, 2, 1] = -f[:, 2] * k[:, 0], -f[:, 3] * k[:, 0], -f[:, 4] * k[:, 1]
    eye = np.eye(3)
    d = b[:, :, None, None] * eye + scale[:, :, None, None] * rm[:, None]
    lo = a[:, :, None, None] * eye
    up = c[:, :, None, None] * eye
    r = rng.uniform(0, 1, (bsz, n, 3))
    m = _dense_block(lo, d, up)
    ref = np.linalg.solve(m, r.reshape(bsz, -1, 1))[..., 0].reshape(bsz, n, 3)
    reft = np.linalg.solve(np.swapaxes(m, 1, 2), r.reshape(bsz, -1, 1))[..., 0].reshape(bsz, n, 3)

    def lf(x):
        return np.ascontiguousarray(np.moveaxis(x, 0, -1))

    d_lf = np.ascontiguousarray(np.moveaxis(d, (0, 1), (3, 0)))  # (n, 3, 3, B)
    lus = [
        BlockTridiagonalLU.factor_layer_first(np.ascontiguousarray(a.T), d_lf, np.ascontiguousarray(c.T),
                                              scalar_offdiag=True),
        BlockTridiagonalLU.factor_shifted_layer_first(
            np.ascontiguousarray(a.T), np.ascontiguousarray(b.T), np.ascontiguousarray(c.T),
            np.ascontiguousarray(scale.T), lf(rm)),
    ]
    rl = np.ascontiguousarray(np.moveaxis(r, 0, -1))
    for lu in lus:
        assert lu.ok.all()
        x = np.moveaxis(lu.solve_layer_first(rl), -1, 0)
        xt = np.moveaxis(lu.solve_transposed_layer_first(rl), -1, 0)
        np.testing.assert_allclose(x, ref, rtol=1e-9, atol=1e-12 * np.abs(ref).max())
        np.testing.assert_allclose(xt, reft, rtol=1e-9, atol=1e-12 * np.abs(reft).max())
        assert np.all(x >= 0)  # M-matrix with nonnegative right-hand side


def test_block_singular_flag():
    bsz, n = 3, 4
    d = np.tile(np.eye(3), (bsz, n, 1, 1))
    d[1, 2] = 0.0
    d[2, 0, 1, 1] = np.nan
    z = np.zeros((bsz, n, 3, 3))
    x, ok = solve_block_tridiagonal(z, d, z, np.ones((bsz, n, 3)))
    np.testing.assert_array_equal(ok, [True, False, False])
    np.testing.assert_allclose(x[0], 1.0)


@pytest.mark.parametrize("n", [2, 3])
def test_short_systems(n):
    rng = np.random.default_rng(n)
    a, b, c = _random_tri(rng, bsz=4, n=n)
    d = rng.normal(size=(4, n))
    x, ok = solve_tridiagonal(a, b, c, d)
    np.testing.assert_allclose(x, np.linalg.solve(_dense_tri(a, b, c), d[..., None])[..., 0], rtol=1e-10)
