"""Recursive moments and Cholesky helpers against full recomputation (numpy.cov, numpy.linalg.cholesky)."""

from __future__ import annotations

import numpy as np
import pytest

from prodampi.inference.covariance import RunningMoments, chol_update_t, cholesky_rows


def _hist(R=5, T=400, P=4, seed=0):
    rng = np.random.default_rng(seed)
    # correlated, offset states (like chain states in (0, 1)) with repeats
    A = rng.normal(size=(R, P, P)) * 0.1
    z = rng.normal(size=(R, T, P))
    x = 0.5 + np.einsum("rij,rtj->rti", A, z)
    x[:, 1::3] = x[:, 0:-1:3][:, : x[:, 1::3].shape[1]]  # repeats, as in a chain with rejections
    return x


def test_add_equals_numpy_cov():
    x = _hist()
    R, T, P = x.shape
    m = RunningMoments(R, P)
    rows = np.arange(R)
    for t in range(T):
        m.add(rows, x[:, t])
        if t in (1, 7, 100, T - 1):
            ref = np.stack([np.cov(x[r, : t + 1].T) for r in range(R)])
            np.testing.assert_allclose(m.cov(rows), ref, rtol=1e-11, atol=1e-15)
            np.testing.assert_allclose(m.mean, x[:, : t + 1].mean(axis=1), rtol=1e-13)
    assert (m.n == T).all()


def test_add_subset_rows_and_nan_before_two():
    x = _hist(R=4, T=50)
    m = RunningMoments(4, x.shape[2])
    assert np.isnan(m.cov(np.arange(4))).all()
    for t in range(50):
        m.add(np.array([1, 3]), x[[1, 3], t])
    np.testing.assert_allclose(m.cov(np.array([3]))[0], np.cov(x[3].T), rtol=1e-11)
    assert m.n.tolist() == [0, 50, 0, 50] and (m.m2[[0, 2]] == 0).all()


def test_add_masked_equals_cov_of_each_rows_own_states():
    x = _hist(R=6, T=300, seed=3)
    R, T, P = x.shape
    rng = np.random.default_rng(9)
    masks = rng.random((T, R)) < 0.6
    m = RunningMoments(R, P)
    for t in range(T):
        m.add_masked(masks[t], x[:, t])
    for r in range(R):
        xs = x[r, masks[:, r]]
        assert m.n[r] == xs.shape[0]
        np.testing.assert_allclose(m.m2[r] / (m.n[r] - 1), np.cov(xs.T), rtol=1e-11, atol=1e-15)


def test_full_rows_fast_path_is_bitwise_the_masked_path():
    x = _hist(R=3, T=60)
    a = RunningMoments(3, x.shape[2])
    b = RunningMoments(3, x.shape[2])
    for t in range(60):
        a.add(np.arange(3), x[:, t])  # fast path
        b.add_masked(np.ones(3, bool), x[:, t])
    assert np.array_equal(a.m2, b.m2) and np.array_equal(a.mean, b.mean)


def test_add_many_merge_equals_numpy_cov():
    x = _hist(R=3, T=200, seed=5)
    m = RunningMoments(3, x.shape[2])
    rows = np.arange(3)
    m.add(rows, x[:, 0])
    m.add_many(rows, x[:, 1:77])
    for t in range(77, 90):
        m.add(rows, x[:, t])
    m.add_many(rows, x[:, 90:])
    ref = np.stack([np.cov(x[r].T) for r in range(3)])
    np.testing.assert_allclose(m.cov(rows), ref, rtol=1e-11)
    np.testing.assert_allclose(m.mean, x.mean(axis=1), rtol=1e-13)


def test_chol_update_t_matches_refactorisation_over_many_steps():
    rng = np.random.default_rng(2)
    R, P = 7, 6
    x = rng.normal(size=(R, 2000, P))
    m2 = np.einsum("rti,rtj->rij", x[:, :20], x[:, :20])
    lt = np.linalg.cholesky(m2).transpose(1, 2, 0).copy()
    for t in range(20, 2000):
        chol_update_t(lt, x[:, t].T)
        m2 += x[:, t, :, None] * x[:, t, None, :]
    ref = np.linalg.cholesky(m2)
    np.testing.assert_allclose(lt.transpose(2, 0, 1), ref, rtol=1e-9, atol=1e-9)


def test_chol_update_t_zero_column_leaves_factor_bitwise():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(5, 4, 4))
    L = np.linalg.cholesky(a @ a.transpose(0, 2, 1) + np.eye(4))
    lt = L.transpose(1, 2, 0).copy()
    before = lt.copy()
    x = rng.normal(size=(4, 5))
    x[:, [1, 3]] = 0.0
    chol_update_t(lt, x)
    assert np.array_equal(lt[:, :, [1, 3]], before[:, :, [1, 3]])
    assert not np.array_equal(lt[:, :, 0], before[:, :, 0])


def test_cholesky_rows_flags_non_pd_and_nan():
    a = np.stack([np.eye(3), np.diag([1.0, -1.0, 1.0]), np.full((3, 3), np.nan), np.zeros((3, 3))])
    L, ok = cholesky_rows(a)
    assert ok.tolist() == [True, False, False, False]
    assert np.array_equal(L[0], np.eye(3)) and np.isnan(L[1:]).all()


@pytest.mark.parametrize("n", [1, 2])
def test_cov_nan_until_two_states(n):
    m = RunningMoments(1, 2)
    for _ in range(n):
        m.add(np.array([0]), np.array([[0.1, 0.2]]))
    assert np.isnan(m.cov(np.array([0]))).all() == (n < 2)
