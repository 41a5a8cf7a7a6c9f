"""Analytic sampler targets for tests and benchmarks (the :class:`~prodampi.inference.sampler.base.Target`
protocol).

Every target works in the normalised box (0, 1)^P, for ``S`` sites, and returns an
:class:`~prodampi.inference.sampler.base.Evaluation` for a batch of ``B`` parameter vectors (row ``i`` for
site ``site_index[i]``).  Each row is computed on its own (no reduction across rows), so results do not
depend on batch composition.  The densities are those of the ``textbook`` kernel: uniform prior on the box
times ``exp(loglik)``; ``loglik`` omits normalising constants.

* :class:`GaussianTarget` -- correlated multivariate normal, per-site means, one covariance
  (use SDs far from the box edges, e.g. 0.02-0.05 around 0.5, for an untruncated reference);
  :func:`correlated_cov` builds a strongly correlated covariance.
* :class:`BananaTarget` -- Haario et al. (2001)'s twisted Gaussian, affinely mapped into the box; its exact
  mean and covariance are :meth:`BananaTarget.moments`.
* :class:`LinearGaussianTarget` -- observations ``obs = G x + noise`` (Gaussian, known SD) with ``n_obs``
  layers, ``soc`` = the modelled ``G x``: for simulation-based calibration (Talts et al. 2018) and for the
  kernels' per-layer outputs.
* :class:`FlatTarget` -- ``loglik = 0`` (the posterior is the uniform prior): a trivial target for speed
  measurements and for the prior-bound check.

``cost`` is ``-loglik`` everywhere; ``status`` is 0 (OK) or 2 (NONFINITE) where ``failed``.  Any target
takes ``fail_below``: evaluations with ``x[:, 0] < fail_below`` fail (``failed`` True, ``loglik`` -inf,
NaN cost/soc/pointwise), to exercise failure handling.
"""

from __future__ import annotations

import numpy as np

from ..inference.sampler.base import Evaluation

__all__ = ["BananaTarget", "FlatTarget", "GaussianTarget", "LinearGaussianTarget", "correlated_cov"]


def correlated_cov(p: int, sd_low: float = 0.02, sd_high: float = 0.05, rho: float = 0.9,
                   seed: int = 0) -> np.ndarray:
    """A (p, p) covariance with SDs spread over [sd_low, sd_high] (normalised units) and strong correlations.

    The correlation matrix is ``rho`` * (a random correlation matrix of rank-2 structure) + ``(1 - rho) I``:
    ``R = (1 - rho) I + rho V V^T`` with unit-norm rows of a random (p, 2) ``V`` (deterministic in ``seed``),
    giving correlations up to about ``±rho`` and a condition number of order ``p rho / (1 - rho)``.
    """
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((p, 2))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    corr = (1.0 - rho) * np.eye(p) + rho * (v @ v.T)
    sd = np.linspace(sd_low, sd_high, p)
    rng.shuffle(sd)
    return corr * np.outer(sd, sd)


class _Base:
    n_params: int
    n_sites: int
    n_obs: int = 0
    fail_below: float | None = None

    def _finish(self, kp: np.ndarray, ll: np.ndarray, pointwise: np.ndarray, soc: np.ndarray) -> Evaluation:
        failed = np.zeros(kp.shape[0], dtype=bool)
        if self.fail_below is not None:
            failed = kp[:, 0] < self.fail_below
            ll = np.where(failed, -np.inf, ll)
            pointwise = np.where(failed[:, None], np.nan, pointwise)
            soc = np.where(failed[:, None], np.nan, soc)
        return Evaluation(cost=np.where(failed, np.nan, -ll), loglik=ll, pointwise=pointwise, soc=soc,
                          failed=failed, status=np.where(failed, 2, 0).astype(np.int8))

    def _check(self, kp: np.ndarray, site_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kp = np.asarray(kp, dtype=np.float64)
        site_index = np.asarray(site_index, dtype=np.intp)
        if kp.ndim != 2 or kp.shape[1] != self.n_params or site_index.shape != (kp.shape[0],):
            raise ValueError(f"kp {kp.shape} / site_index {site_index.shape} do not fit P={self.n_params}")
        return kp, site_index


class GaussianTarget(_Base):
    """``loglik = -0.5 (x - mu_s)^T Sigma^-1 (x - mu_s)``.

    Parameters
    ----------
    mean : (S, P) or (P,) float
        Per-site means (normalised units); (P,) is shared by ``n_sites`` sites.
    cov : (P, P) float
        Covariance (normalised units**2), shared by all sites.
    n_sites : int, optional
        Number of sites when ``mean`` is (P,).
    fail_below : float, optional
        See the module docstring.
    """

    def __init__(self, mean: np.ndarray, cov: np.ndarray, n_sites: int | None = None,
                 fail_below: float | None = None) -> None:
        mean = np.asarray(mean, dtype=np.float64)
        if mean.ndim == 1:
            mean = np.broadcast_to(mean, (n_sites or 1, mean.size)).copy()
        self.mean = mean
        self.cov = np.asarray(cov, dtype=np.float64)
        self.n_sites, self.n_params = mean.shape
        self.prec = np.linalg.inv(self.cov)
        self.fail_below = fail_below

    def evaluate(self, kp: np.ndarray, site_index: np.ndarray) -> Evaluation:
        kp, site_index = self._check(kp, site_index)
        dx = kp - self.mean[site_index]
        ll = -0.5 * np.einsum("bi,ij,bj->b", dx, self.prec, dx)
        return self._finish(kp, ll, np.zeros((kp.shape[0], 0)), np.zeros((kp.shape[0], 0)))


class BananaTarget(_Base):
    """Haario et al. (2001)'s twisted Gaussian, mapped into the box.

    In latent coordinates ``theta`` (2-D): ``theta_1 ~ N(0, a**2)``, ``theta_2 + b (theta_1**2 - a**2) ~
    N(0, 1)`` (Haario: a = 10, b = 0.03 "moderately" or 0.1 "strongly" twisted).  Normalised coordinates
    ``x = center + scale * theta``.  Exact moments (latent): ``E theta = 0``, ``Var theta_1 = a**2``,
    ``Var theta_2 = 1 + 2 b**2 a**4``, ``Cov = 0``.

    Parameters
    ----------
    n_sites : int
    a, b : float
        Latent width and twist.
    center : (2,) float
        Normalised position of the latent origin.
    scale : float
        Normalised units per latent unit.
    """

    def __init__(self, n_sites: int, a: float = 10.0, b: float = 0.03, center: tuple[float, float] = (0.5, 0.6),
                 scale: float = 0.01, fail_below: float | None = None) -> None:
        self.n_sites, self.n_params = int(n_sites), 2
        self.a, self.b, self.scale = float(a), float(b), float(scale)
        self.center = np.asarray(center, dtype=np.float64)
        self.fail_below = fail_below

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact mean (2,) and covariance (2, 2) in normalised units."""
        var = np.array([self.a ** 2, 1.0 + 2.0 * self.b ** 2 * self.a ** 4])
        return self.center.copy(), np.diag(var) * self.scale ** 2

    def evaluate(self, kp: np.ndarray, site_index: np.ndarray) -> Evaluation:
        kp, site_index = self._check(kp, site_index)
        th = (kp - self.center) / self.scale
        t2 = th[:, 1] + self.b * (th[:, 0] ** 2 - self.a ** 2)
        ll = -0.5 * (th[:, 0] ** 2 / self.a ** 2 + t2 ** 2)
        return self._finish(kp, ll, np.zeros((kp.shape[0], 0)), np.zeros((kp.shape[0], 0)))


class LinearGaussianTarget(_Base):
    """Observations ``obs[s] = G x_s + e``, ``e ~ N(0, sigma**2 I)``, ``n_obs = L`` layers.

    ``loglik = -0.5 sum_l ((obs_l - (G x)_l) / sigma)**2`` (``pointwise`` the per-layer terms), ``soc = G x``
    (the "modelled profile", arbitrary units); NaN observations are padded layers (NaN pointwise and soc,
    left out of ``loglik``).  With a uniform prior on the box, :meth:`simulate` gives data whose posterior
    is known to be calibrated (simulation-based calibration).

    Parameters
    ----------
    obs : (S, L) float
    design : (L, P) float
        ``G``.
    sigma : float
        Observation SD.
    """

    def __init__(self, obs: np.ndarray, design: np.ndarray, sigma: float,
                 fail_below: float | None = None) -> None:
        self.obs = np.asarray(obs, dtype=np.float64)
        self.design = np.asarray(design, dtype=np.float64)
        self.sigma = float(sigma)
        self.n_sites, self.n_obs = self.obs.shape
        self.n_params = self.design.shape[1]
        self.fail_below = fail_below

    @classmethod
    def simulate(cls, truth: np.ndarray, design: np.ndarray, sigma: float, seed: int) -> LinearGaussianTarget:
        """Data from true parameters ``truth`` (S, P) (e.g. prior draws, uniform on the box)."""
        rng = np.random.default_rng(seed)
        mod = np.asarray(truth) @ np.asarray(design).T
        return cls(mod + sigma * rng.standard_normal(mod.shape), design, sigma)

    def evaluate(self, kp: np.ndarray, site_index: np.ndarray) -> Evaluation:
        kp, site_index = self._check(kp, site_index)
        mod = np.einsum("lp,bp->bl", self.design, kp)
        obs = self.obs[site_index]
        pw = -0.5 * ((obs - mod) / self.sigma) ** 2
        ll = np.where(np.isnan(pw), 0.0, pw).sum(axis=1)
        soc = np.where(np.isnan(obs), np.nan, mod)
        return self._finish(kp, ll, pw, soc)


class FlatTarget(_Base):
    """``loglik = 0``: the posterior is the uniform prior on (0, 1)^P (cost of an evaluation ~ nothing)."""

    def __init__(self, n_sites: int, n_params: int, fail_below: float | None = None) -> None:
        self.n_sites, self.n_params = int(n_sites), int(n_params)
        self.fail_below = fail_below

    def evaluate(self, kp: np.ndarray, site_index: np.ndarray) -> Evaluation:
        kp, site_index = self._check(kp, site_index)
        b = kp.shape[0]
        return self._finish(kp, np.zeros(b), np.zeros((b, 0)), np.zeros((b, 0)))
