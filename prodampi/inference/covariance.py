"""Recursive (Welford) mean and covariance of chain histories, batched over rows, and a batched Cholesky.

The authors recompute ``cov(all recorded states 1..t)`` from the whole history every iteration (O(t d^2) per
step, ``compas.md`` §12.2).  :class:`RunningMoments` keeps the same quantity with an O(d^2) rank-1 update per
step; it equals the full recomputation to round-off (``tests/unit/test_covariance.py``).

Shapes: ``R`` rows (site-chains), ``P`` parameters.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RunningMoments", "cholesky_rows", "chol_update_t"]


class RunningMoments:
    """Running count, mean (R, P) and centred second-moment sum M2 (R, P, P) per row.

    ``cov = M2 / (n - 1)`` is the unbiased sample covariance of the states added so far (MATLAB ``cov``).
    The three arrays are plain attributes so that a kernel can keep them in its checkpointed state.
    """

    def __init__(self, n_rows: int, n_params: int) -> None:
        self.n = np.zeros(n_rows, dtype=np.int64)
        self.mean = np.zeros((n_rows, n_params))
        self.m2 = np.zeros((n_rows, n_params, n_params))

    @classmethod
    def from_arrays(cls, n: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> RunningMoments:
        obj = cls.__new__(cls)
        obj.n, obj.mean, obj.m2 = n, mean, m2
        return obj

    def reset(self, rows: np.ndarray) -> None:
        """Forget the history of ``rows``."""
        self.n[rows] = 0
        self.mean[rows] = 0.0
        self.m2[rows] = 0.0

    def add(self, rows: np.ndarray, x: np.ndarray) -> None:
        """Add one state ``x`` (len(rows), P) to each of ``rows`` (Welford's update, O(P^2) per row)."""
        rows = np.asarray(rows, dtype=np.intp)
        if rows.size == 0:
            return
        if rows.size == self.n.size and rows[0] == 0 and np.array_equal(rows, np.arange(rows.size)):
            self.add_masked(None, x)  # every row in order: in-place views, no gather/scatter
            return
        n = self.n[rows] + 1
        mean = self.mean[rows]
        delta = x - mean
        mean = mean + delta / n[:, None]
        delta2 = x - mean
        self.m2[rows] += delta[:, :, None] * delta2[:, None, :]
        self.mean[rows] = mean
        self.n[rows] = n

    def add_masked(self, mask: np.ndarray | None, x: np.ndarray, second_moment: bool = True) -> None:
        """Add one state ``x`` (R, P) to the rows where ``mask`` (R,) bool is set (None: every row).

        Works in place on whole arrays (rows outside the mask get a zero-weight update that leaves them
        bit-identical), which is cheaper than gathering a subset when most rows take part.  ``x`` must be
        finite in every row.  ``second_moment=False`` updates only ``n`` and ``mean`` (``m2`` is then no
        longer that of the rows' states: for a caller that keeps the covariance another way).
        """
        if mask is None:
            self.n += 1
            n = self.n.astype(np.float64)
            delta = x - self.mean
            self.mean += delta / n[:, None]
        else:
            w = mask.astype(np.float64)
            self.n += mask
            n = np.maximum(self.n, 1).astype(np.float64)
            delta = (x - self.mean) * w[:, None]
            self.mean += delta / n[:, None]
        if not second_moment:
            return
        delta2 = x - self.mean
        # the rank-1 update of M2 in row chunks that stay in cache (no (R, P, P) temporary)
        R, P = delta.shape
        ch = max(1, min(R, 32768 // max(1, P * P)))
        tmp = np.empty((ch, P, P))
        for i in range(0, R, ch):
            j = min(R, i + ch)
            t = tmp[:j - i]
            np.multiply(delta[i:j, :, None], delta2[i:j, None, :], out=t)
            self.m2[i:j] += t

    def add_many(self, rows: np.ndarray, xs: np.ndarray) -> None:
        """Add a block of states ``xs`` (len(rows), T, P) per row (merge of two sets, Chan et al.)."""
        rows = np.asarray(rows, dtype=np.intp)
        if rows.size == 0 or xs.shape[1] == 0:
            return
        nb = xs.shape[1]
        mb = xs.mean(axis=1)
        cb = xs - mb[:, None, :]
        m2b = np.einsum("rti,rtj->rij", cb, cb)
        na = self.n[rows]
        n = na + nb
        d = mb - self.mean[rows]
        w = (na * nb / n)[:, None, None]
        self.m2[rows] += m2b + w * d[:, :, None] * d[:, None, :]
        self.mean[rows] += d * (nb / n)[:, None]
        self.n[rows] = n

    def cov(self, rows: np.ndarray) -> np.ndarray:
        """Unbiased sample covariance (len(rows), P, P) of each row's states (NaN where n < 2)."""
        rows = np.asarray(rows, dtype=np.intp)
        n = self.n[rows].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.m2[rows] / np.where(n > 1, n - 1.0, np.nan)[:, None, None]


def cholesky_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower Cholesky factors of a batch of symmetric matrices, row by row failure-tolerant.

    Parameters
    ----------
    a : (R, P, P) array

    Returns
    -------
    L : (R, P, P) array
        Factors; rows that are not positive definite (or not finite) hold NaN.
    ok : (R,) bool
        The row's matrix was positive definite (MATLAB ``mvnrnd`` would have accepted it).
    """
    a = np.asarray(a, dtype=np.float64)
    out = np.full_like(a, np.nan)
    ok = np.isfinite(a).all(axis=(1, 2))
    if not ok.any():
        return out, ok
    idx = np.flatnonzero(ok)
    try:
        out[idx] = np.linalg.cholesky(a[idx])
        return out, ok
    except np.linalg.LinAlgError:
        pass
    for i in idx:  # rare: find the rows that fail
        try:
            out[i] = np.linalg.cholesky(a[i])
        except np.linalg.LinAlgError:
            ok[i] = False
    return out, ok


def chol_update_t(lt: np.ndarray, x: np.ndarray) -> None:
    """In-place rank-1 update of lower Cholesky factors stored row-last: ``L L^T + x x^T``.

    Parameters
    ----------
    lt : (P, P, R) array
        ``lt[i, j, r]`` is ``L_r[i, j]`` (lower triangular, positive diagonal); updated in place.  The
        row-last layout makes every slice of the column loop contiguous over rows.
    x : (P, R) array
        Update vectors; a zero column leaves its factor bit-identical.

    Notes
    -----
    The standard O(P^2) Givens-style update (Golub & Van Loan, 6.5.4): no square root of a difference, so
    it is backward stable; each row's result depends on that row only.
    """
    x = np.array(x, dtype=np.float64, copy=True)
    p = lt.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in range(p):
            lkk = lt[k, k]
            xk = x[k]
            r = np.sqrt(lkk * lkk + xk * xk)
            c = r / lkk
            s = xk / lkk
            lt[k, k] = r
            if k + 1 < p:
                col = lt[k + 1:, k]
                xs = x[k + 1:]
                col += s * xs
                col /= c
                xs *= c
                xs -= s * col
