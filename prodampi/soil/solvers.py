"""Batched direct solvers for the soil models (pure NumPy, vectorised over a leading batch axis).

* :class:`TridiagonalLU` / :func:`solve_tridiagonal`: Thomas algorithm for ``B`` independent n x n
  tridiagonal systems, with solves for ``M x = d`` and ``M^T x = d`` reusing one factorisation.
* :class:`BlockTridiagonalLU` / :func:`solve_block_tridiagonal`: block Thomas algorithm for ``B``
  independent block-tridiagonal systems with 3 x 3 blocks (n block rows), the CLM5 S1/S2/S3 system.  The
  3 x 3 pivot blocks are inverted with explicit cofactor formulas on whole batch vectors.

No pivoting is done: the algorithms are meant for (block) diagonally dominant / M-matrix systems, which is
what the soil models produce.  Failures never raise; every factorisation carries an ``ok`` (B,) flag, False
where a pivot (block determinant) is zero or non-finite.  Solutions may still be non-finite for badly scaled
items; callers check ``np.isfinite`` as well.

Coefficient conventions (all arrays in whatever consistent units the caller uses)
--------------------------------------------------------------------------------
Row ``j`` of a tridiagonal system reads ``a[j] x[j-1] + b[j] x[j] + c[j] x[j+1] = d[j]``; ``a[0]`` and
``c[n-1]`` are ignored.  Block rows read ``A[j] X[j-1] + D[j] X[j] + C[j] X[j+1] = R[j]`` with 3 x 3 blocks.

Internally the layer axis is put first (``(n, ..., B)``) so that each per-layer step works on contiguous
batch vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "TridiagonalLU",
    "BlockTridiagonalLU",
    "solve_tridiagonal",
    "solve_block_tridiagonal",
    "inv3",
]


# ------------------------------------------------------------------------------------------ tridiagonal
@dataclass
class TridiagonalLU:
    """Thomas factorisation of a batch of tridiagonal matrices, layer axis first.

    Attributes
    ----------
    mult : (n, *batch) array
        Elimination multipliers ``m_j = a_j / w_{j-1}`` (``m_0 = 0``).
    inv_piv : (n, *batch) array
        Reciprocal pivots ``1 / w_j``.
    upper : (n, *batch) array
        Super-diagonal ``c_j``.
    ok : (*batch,) bool array
        False where a pivot is zero or non-finite.
    """

    mult: np.ndarray
    inv_piv: np.ndarray
    upper: np.ndarray
    ok: np.ndarray

    @classmethod
    def factor_layer_first(cls, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> TridiagonalLU:
        """Factor from diagonals with the layer axis first, each ``(n, *batch)``."""
        n = b.shape[0]
        mult = np.empty(b.shape)
        inv_piv = np.empty(b.shape)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            mult[0] = 0.0
            np.divide(1.0, b[0], out=inv_piv[0])
            for j in range(1, n):
                m = np.multiply(a[j], inv_piv[j - 1], out=mult[j])
                w = b[j] - m * c[j - 1]
                np.divide(1.0, w, out=inv_piv[j])
            # a zero pivot gives an infinite reciprocal, a non-finite one NaN or 0 (from inf)
            ok = np.all(np.isfinite(inv_piv) & (inv_piv != 0.0), axis=0)
        return cls(mult=mult, inv_piv=inv_piv, upper=c, ok=ok)

    @classmethod
    def factor(cls, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> TridiagonalLU:
        """Factor ``B`` systems given as (B, n) diagonals (see module conventions)."""
        return cls.factor_layer_first(_layer_first(a), _layer_first(b), _layer_first(c))

    def solve_layer_first(self, d: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Solve ``M x = d`` for ``d`` of shape ``(n, *batch)`` or ``(n, *batch, k)``.

        ``out`` (same shape, may be ``d`` itself for an in-place solve) receives the solution.
        """
        n = d.shape[0]
        extra = d.ndim - self.mult.ndim
        sl = (Ellipsis,) + (None,) * extra
        y = np.empty(d.shape, dtype=np.result_type(d, self.mult)) if out is None else out
        with np.errstate(invalid="ignore", over="ignore"):
            y[0] = d[0]
            for j in range(1, n):
                y[j] = d[j] - self.mult[j][sl] * y[j - 1]
            y[n - 1] *= self.inv_piv[n - 1][sl]
            for j in range(n - 2, -1, -1):
                y[j] = (y[j] - self.upper[j][sl] * y[j + 1]) * self.inv_piv[j][sl]
        return y

    def solve_transposed_layer_first(self, d: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Solve ``M^T x = d`` for ``d`` of shape ``(n, *batch)`` or ``(n, *batch, k)``; ``out`` as in
        :meth:`solve_layer_first`."""
        n = d.shape[0]
        extra = d.ndim - self.mult.ndim
        sl = (Ellipsis,) + (None,) * extra
        z = np.empty(d.shape, dtype=np.result_type(d, self.mult)) if out is None else out
        with np.errstate(invalid="ignore", over="ignore"):
            z[0] = d[0] * self.inv_piv[0][sl]
            for j in range(1, n):
                z[j] = (d[j] - self.upper[j - 1][sl] * z[j - 1]) * self.inv_piv[j][sl]
            for j in range(n - 2, -1, -1):
                z[j] -= self.mult[j + 1][sl] * z[j + 1]
        return z

    def solve(self, d: np.ndarray) -> np.ndarray:
        """Solve ``M x = d``; ``d`` is (B, n) or (B, n, k); returns the same shape."""
        return np.moveaxis(self.solve_layer_first(_layer_first(d)), 0, 1)

    def solve_transposed(self, d: np.ndarray) -> np.ndarray:
        """Solve ``M^T x = d``; ``d`` is (B, n) or (B, n, k); returns the same shape."""
        return np.moveaxis(self.solve_transposed_layer_first(_layer_first(d)), 0, 1)


def _layer_first(d: np.ndarray) -> np.ndarray:
    """(B, n, ...) -> contiguous (n, B, ...)."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(d, dtype=np.float64), 1, 0))


def solve_tridiagonal(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray,
                      transposed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``B`` tridiagonal systems.

    Parameters
    ----------
    a, b, c : (B, n) arrays
        Sub-, main and super-diagonal (``a[:, 0]`` and ``c[:, -1]`` ignored).
    d : (B, n) or (B, n, k) array
        Right-hand side(s).
    transposed : bool
        Solve ``M^T x = d`` instead.

    Returns
    -------
    x : array, shape of ``d``
    ok : (B,) bool array
        False where a pivot was zero or non-finite, or the solution is not finite.
    """
    lu = TridiagonalLU.factor(np.asarray(a, float), np.asarray(b, float), np.asarray(c, float))
    d = np.asarray(d, dtype=np.float64)
    x = lu.solve_transposed(d) if transposed else lu.solve(d)
    ok = lu.ok & np.all(np.isfinite(x.reshape(x.shape[0], -1)), axis=1)
    return x, ok


# ------------------------------------------------------------------------------------- 3x3 blocks
def inv3(m: np.ndarray, out: np.ndarray | None = None,
         det_out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of 3 x 3 matrices stored with the matrix axes first, ``m`` of shape (3, 3, *batch).

    Returns ``(inverse (3, 3, *batch), det (*batch,))`` (written into ``out``/``det_out`` when given);
    entries are inf/NaN where ``det == 0``.
    """
    a, b, c = m[0]
    d, e, f = m[1]
    g, h, i = m[2]
    c00 = e * i - f * h
    c01 = f * g - d * i
    c02 = d * h - e * g
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        det = a * c00 + b * c01 + c * c02
        if det_out is not None:
            det_out[...] = det
            det = det_out
        r = 1.0 / det
        if out is None:
            out = np.empty_like(m)
        out[0, 0] = c00 * r
        out[1, 0] = c01 * r
        out[2, 0] = c02 * r
        out[0, 1] = (c * h - b * i) * r
        out[1, 1] = (a * i - c * g) * r
        out[2, 1] = (b * g - a * h) * r
        out[0, 2] = (b * f - c * e) * r
        out[1, 2] = (c * d - a * f) * r
        out[2, 2] = (a * e - b * d) * r
    return out, det


def _matvec3(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(3, 3, *batch) @ (3, *batch) -> (3, *batch)."""
    return m[:, 0] * v[0] + m[:, 1] * v[1] + m[:, 2] * v[2]


def _matvec3_t(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(3, 3, *batch)^T @ (3, *batch) -> (3, *batch)."""
    return m[0] * v[0] + m[1] * v[1] + m[2] * v[2]


def _matmul3(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(3, 3, *batch) @ (3, 3, *batch)."""
    return np.einsum("ik...,kj...->ij...", p, q)


@dataclass
class BlockTridiagonalLU:
    """Block Thomas factorisation for 3 x 3 blocks, stored layer axis first.

    The factorisation is ``M = L~ U~`` with ``L~`` block lower bidiagonal (diagonal ``W_j``, sub ``A_j``) and
    ``U~`` unit block upper bidiagonal (super ``G_j C_j``), ``G_j = W_j^{-1}``.

    Attributes
    ----------
    ginv : (n, 3, 3, *batch) array
        Inverse pivot blocks ``G_j``.
    lower, upper : (n, 3, 3, *batch) arrays, or (n, *batch) arrays when ``scalar_offdiag``
        Off-diagonal blocks ``A_j`` and ``C_j`` (or their scalar multipliers of the identity).
    scalar_offdiag : bool
        True when the off-diagonal blocks are scalar multiples of the identity.
    ok : (*batch,) bool array
        False where a pivot block has a zero or non-finite determinant.
    """

    ginv: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    scalar_offdiag: bool
    ok: np.ndarray

    @classmethod
    def factor_layer_first(cls, lower: np.ndarray, diag: np.ndarray, upper: np.ndarray,
                           scalar_offdiag: bool = False) -> BlockTridiagonalLU:
        """Factor from blocks with the layer axis first.

        Parameters
        ----------
        lower, upper : (n, 3, 3, *batch) arrays, or (n, *batch) when ``scalar_offdiag``
            Sub-diagonal blocks ``A_j`` (``A_0`` ignored) and super-diagonal blocks ``C_j``
            (``C_{n-1}`` ignored).
        diag : (n, 3, 3, *batch) array
            Diagonal blocks ``D_j``.
        scalar_offdiag : bool
            Off-diagonal blocks are ``lower[j] * I`` and ``upper[j] * I``.
        """
        n = diag.shape[0]
        ginv = np.empty(diag.shape)
        dets = np.empty((n,) + diag.shape[3:])
        with np.errstate(invalid="ignore", over="ignore"):
            for j in range(n):
                if j == 0:
                    w = diag[0]
                elif scalar_offdiag:
                    w = diag[j] - (lower[j] * upper[j - 1]) * ginv[j - 1]
                else:
                    w = diag[j] - _matmul3(lower[j], _matmul3(ginv[j - 1], upper[j - 1]))
                inv3(w, out=ginv[j], det_out=dets[j])
            ok = np.all(np.isfinite(dets) & (dets != 0.0), axis=0)
        return cls(ginv=ginv, lower=lower, upper=upper, scalar_offdiag=scalar_offdiag, ok=ok)

    @classmethod
    def factor_shifted_layer_first(cls, lower: np.ndarray, main: np.ndarray, upper: np.ndarray,
                                   scale: np.ndarray, rmat: np.ndarray) -> BlockTridiagonalLU:
        """Factor systems with diagonal blocks ``D_j = main_j I + scale_j R`` and off-diagonal blocks
        ``lower_j I``, ``upper_j I`` (the CLM5 SOM structure), layer axis first.

        Parameters
        ----------
        lower, main, upper, scale : (n, *batch) arrays
            Scalars of the sub-, diagonal and super-diagonal blocks and the per-layer multiplier of ``R``.
        rmat : (3, 3, *batch) array
            The layer-independent matrix ``R``.
        """
        n = main.shape[0]
        ginv = np.empty((n,) + rmat.shape)
        dets = np.empty(main.shape)
        with np.errstate(invalid="ignore", over="ignore"):
            for j in range(n):
                w = rmat * scale[j]
                if j > 0:
                    w -= (lower[j] * upper[j - 1]) * ginv[j - 1]
                for i in range(3):
                    w[i, i] += main[j]
                inv3(w, out=ginv[j], det_out=dets[j])
            ok = np.all(np.isfinite(dets) & (dets != 0.0), axis=0)
        return cls(ginv=ginv, lower=lower, upper=upper, scalar_offdiag=True, ok=ok)

    @classmethod
    def factor(cls, lower: np.ndarray, diag: np.ndarray, upper: np.ndarray) -> BlockTridiagonalLU:
        """Factor ``B`` systems with blocks given as (B, n, 3, 3) arrays."""
        def lf(x):
            return np.ascontiguousarray(np.moveaxis(np.asarray(x, dtype=np.float64), 0, -1))
        return cls.factor_layer_first(lf(lower), lf(diag), lf(upper))

    def _off(self, blk: np.ndarray, v: np.ndarray, transpose: bool) -> np.ndarray:
        if self.scalar_offdiag:
            return blk * v
        return _matvec3_t(blk, v) if transpose else _matvec3(blk, v)

    def solve_layer_first(self, r: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Solve ``M X = R`` for ``R`` of shape (n, 3, *batch); ``out`` may be ``r`` (in-place solve)."""
        n = r.shape[0]
        g = np.empty_like(r) if out is None else out
        with np.errstate(invalid="ignore", over="ignore"):
            g[0] = _matvec3(self.ginv[0], r[0])
            for j in range(1, n):
                g[j] = _matvec3(self.ginv[j], r[j] - self._off(self.lower[j], g[j - 1], False))
            for j in range(n - 2, -1, -1):
                g[j] -= _matvec3(self.ginv[j], self._off(self.upper[j], g[j + 1], False))
        return g

    def solve_transposed_layer_first(self, r: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Solve ``M^T X = R`` for ``R`` of shape (n, 3, *batch); ``out`` may be ``r`` (in-place solve)."""
        n = r.shape[0]
        z = np.empty_like(r) if out is None else out
        with np.errstate(invalid="ignore", over="ignore"):
            z[0] = r[0]
            for j in range(1, n):
                z[j] = r[j] - self._off(self.upper[j - 1], _matvec3_t(self.ginv[j - 1], z[j - 1]), True)
            z[n - 1] = _matvec3_t(self.ginv[n - 1], z[n - 1])
            for j in range(n - 2, -1, -1):
                z[j] = _matvec3_t(self.ginv[j], z[j] - self._off(self.lower[j + 1], z[j + 1], True))
        return z

    def solve(self, r: np.ndarray) -> np.ndarray:
        """Solve ``M X = R`` for (B, n, 3) right-hand sides; returns (B, n, 3)."""
        rl = np.ascontiguousarray(np.moveaxis(np.asarray(r, dtype=np.float64), 0, -1))
        return np.moveaxis(self.solve_layer_first(rl), -1, 0)

    def solve_transposed(self, r: np.ndarray) -> np.ndarray:
        """Solve ``M^T X = R`` for (B, n, 3) right-hand sides; returns (B, n, 3)."""
        rl = np.ascontiguousarray(np.moveaxis(np.asarray(r, dtype=np.float64), 0, -1))
        return np.moveaxis(self.solve_transposed_layer_first(rl), -1, 0)


def solve_block_tridiagonal(lower: np.ndarray, diag: np.ndarray, upper: np.ndarray, rhs: np.ndarray,
                            transposed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``B`` block-tridiagonal systems with 3 x 3 blocks.

    Parameters
    ----------
    lower, diag, upper : (B, n, 3, 3) arrays
        Sub-diagonal blocks (``lower[:, 0]`` ignored), diagonal blocks, super-diagonal blocks
        (``upper[:, -1]`` ignored).
    rhs : (B, n, 3) array
    transposed : bool
        Solve ``M^T x = rhs`` instead.

    Returns
    -------
    x : (B, n, 3) array
    ok : (B,) bool array
        False where a pivot block was singular/non-finite or the solution is not finite.
    """
    lu = BlockTridiagonalLU.factor(lower, diag, upper)
    x = lu.solve_transposed(rhs) if transposed else lu.solve(rhs)
    ok = lu.ok & np.all(np.isfinite(x.reshape(x.shape[0], -1)), axis=1)
    return x, ok
