"""The profile target: a soil model evaluated against observed SOC profiles (``clm5.md`` §6, ``compas.md`` §6).

A :class:`ProfileTarget` implements :class:`prodampi.inference.sampler.base.Target`: it maps normalised
parameters ``kp`` (B, P) to physical values with the model's :class:`~prodampi.soil.params.ParamTable`, runs
one batched :meth:`~prodampi.soil.base.SoilModel.steady_state`, interpolates the 20 node values to the
observed depths by PCHIP (interval search done once per site; a depth within :data:`NODE_TOL_M` of a node
takes the node value exactly, the identity operator of the authors' 20-node recovery data, where PCHIP's
Hermite form would lose digits to cancellation in steep deep profiles) and returns an
:class:`~prodampi.inference.sampler.base.Evaluation` with both the authors' cost and a proper likelihood.

Observations
------------
:class:`SiteObservations` holds the cleaned observations of ``S`` sites, padded to ``L`` layers: depth (m),
SOC density (g C m-3), a validity mask, the CLM5 rank weights and the layer count *before* cleaning (the
authors' RMSE divides by it, ``compas.md`` §7.3).  :func:`clean_observations` applies the authors' cleaning
in the spec's order (``clm5.md`` §6.1, ``compas.md`` §6) and adds prodampi's degenerate-data reasons:

1. no layer at all -> ``"bad_data: no observed layers"``;
2. every observation exactly 0 -> ``"bad_data: all observations zero"`` (authors: skip);
3. if some observation is 0, only layers with obs > 0 are kept (this also drops NaN obs; authors);
4. layers with NaN depth or NaN obs are dropped (authors, silently);
5. prodampi: a remaining **infinite** depth or observation -> ``"bad_data: non-finite observation"`` (the
   authors test ``isnan`` only, so an Inf would reach their cost and make it Inf/NaN); a remaining negative
   observation -> ``"bad_data: negative observation"`` (a density cannot be negative, log SOC undefined);
6. fewer than 2 layers left -> ``"bad_data: fewer than 2 usable layers (n)"`` (authors: skip);
7. prodampi: all remaining observations equal -> ``"bad_data: all observed values equal (NSE undefined)"``:
   the NSE denominator is 0, so neither the COMPAS cost nor the paper's NSE filter is defined.

NaN values are therefore dropped as the authors drop them (a profile keeping >= 2 layers is usable); only
values the authors would *keep* but cannot score are reasons.  A skipped site has no valid layer.

Costs (the ``paper`` kernel's ``J``; ``"*"`` sums skip NaN terms, MATLAB ``nansum``)
---------------------------------------------------------------------------------------
* ``"clm5_weighted_relerr"`` (``clm5.md`` §6.3): ``J = sum* w_i (yhat_i - y_i)^2 / (2 (0.6 y_i)^2)`` with the
  rank weights ``w_i = max(1, 10 exp(-(r_i - 1)))``, ``r_i`` the mean of the descending ranks of
  ``|y_i - mean(y)|`` and ``|d_i - mean(d)|`` (stable sort: ties keep the layer order, as MATLAB ``sort``).
* ``"compas_nse"`` (``compas.md`` §6): ``J = 5 sum* (yhat_i - y_i)^2 / sum (y_i - mean(y))^2 = 5 (1 - NSE)``.

The default cost comes from the model: its ``cost`` attribute when it has one, else :data:`DEFAULT_COST`
keyed by the model's name (CLM5 -> weighted relative error, COMPAS -> NSE, as the authors' scripts), else
``"compas_nse"``.  ``Evaluation.pointwise`` is the textbook per-layer log-likelihood (below) or, with
``pointwise="cost"`` (the ``paper`` kernel), the per-layer terms ``-J_i`` (a pseudo-likelihood, NaN at
invalid layers; ``Evaluation.cost = nansum_i J_i``).

Failures (prodampi rule, ``clm5.md`` §6.3, ``compas.md`` §6 and Q8)
-------------------------------------------------------------------
An evaluation fails when the model's status is a failure code (every code but ``OK``; with a COMPAS
``invalid="flip"`` record, the PRODA-compatible preset, the invalid-state codes ``INVALID_RATIO`` /
``INVALID_ANALYTIC`` are **scored** on the sign-flipped profile as the authors do, Q6), or when **any** of the
20 modelled nodes or any modelled value at a valid observed layer is non-finite (the authors' COMPAS test is
NaN in the 20 nodes; CLM5 had none and Inf slipped through ``nansum`` in both).  A failed item has cost NaN,
log-likelihood -inf and NaN pointwise terms; what that costs the chain is the kernel's decision.

Textbook observation model
--------------------------
``log y_i ~ N(log yhat_i, sigma^2)`` independently per valid layer, ``sigma = obs_sigma_log`` (default 0.5:
the authors' CLM5 cost assumes a 60 % relative error, ``log 1.6 = 0.47``; the synthetic world's record noise
is ``sqrt(0.3^2 + 0.2^2 + 0.176^2) = 0.40`` in log units before model-structure error).  The pointwise term
is the log *density of y* (g C m-3), i.e. it includes the Jacobian ``-log y_i`` of the log transform
(a log-normal density), so pointwise values of two models on the same observations are comparable (LOO);
the Jacobian does not depend on the parameters and does not change the posterior.  A modelled value
``yhat_i <= 0`` at a valid layer has zero likelihood (pointwise -inf; not a solver failure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..soil.base import BAD_FORCING, INVALID_ANALYTIC, INVALID_RATIO, OK, SINGULAR, SoilModel
from ..soil.layers import nodes_m
from ..soil.observe import pchip_at, pchip_locate
from .sampler.base import Evaluation

__all__ = ["COSTS", "DEFAULT_COST", "DEFAULT_OBS_SIGMA_LOG", "NSE_SCALE", "REL_ERR", "ProfileTarget",
           "SiteObservations", "clean_observations", "cost_terms", "default_cost", "log_lik_terms",
           "rank_weights", "site_prechecks"]

#: cost names (``assimilate`` deck / Evaluation.cost)
COSTS: tuple[str, ...] = ("clm5_weighted_relerr", "compas_nse")
#: default cost per model name (the authors' scripts); a model's own ``cost`` attribute wins
DEFAULT_COST: dict[str, str] = {"clm5": "clm5_weighted_relerr", "compas": "compas_nse"}
#: relative observation error of the CLM5 cost (``clm5.md`` §6.3)
REL_ERR = 0.6
#: scale of the COMPAS cost, J = 5 (1 - NSE)
NSE_SCALE = 5.0
#: an observed depth this close to a node (m) takes the node value (the paper's 20-node recovery data)
NODE_TOL_M = 1e-9
#: default SD of the log-SOC observation error (module docstring)
DEFAULT_OBS_SIGMA_LOG = 0.5
_LOG_2PI = float(np.log(2.0 * np.pi))


def default_cost(model: SoilModel) -> str:
    """The model's default cost name: ``model.cost`` if set, else :data:`DEFAULT_COST`, else ``compas_nse``."""
    c = getattr(model, "cost", None)
    if isinstance(c, str):
        return c
    return DEFAULT_COST.get(getattr(model, "name", ""), "compas_nse")


# ============================================================================================ cleaning
def clean_observations(depth_m: np.ndarray, obs: np.ndarray, n_layers: np.ndarray | None = None,
                       usable: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """The authors' DA cleaning plus prodampi's degenerate-data reasons (module docstring, rules 1-7).

    Parameters
    ----------
    depth_m : (S, L) array
        Observed node depths (m); columns ``>= n_layers`` are padding.
    obs : (S, L) array
        Observed SOC density (g C m-3).
    n_layers : (S,) int array or None
        Layers of each site (the first ``n_layers`` columns); None: every column is a layer.
    usable : (S, L) bool array or None
        An upstream usability flag (``inputs.h5`` ``profiles/obs_usable``); layers it marks False are
        dropped *after* the rules above (it is the same cleaning, so normally it changes nothing).

    Returns
    -------
    valid : (S, L) bool
        Layers the DA uses (all False for a skipped site).
    reasons : list of S str
        ``""`` for a usable site, else ``"bad_data: ..."``.
    """
    z = np.asarray(depth_m, dtype=np.float64)
    y = np.asarray(obs, dtype=np.float64)
    if z.shape != y.shape or z.ndim != 2:
        raise ValueError(f"depth_m and obs must be (S, L) arrays of one shape, got {z.shape} and {y.shape}")
    s, lmax = y.shape
    nl = np.full(s, lmax, np.int64) if n_layers is None else np.asarray(n_layers, dtype=np.int64)
    present = np.arange(lmax)[None, :] < nl[:, None]
    with np.errstate(invalid="ignore"):
        zero = present & (y == 0.0)
        all_zero = present.any(axis=1) & (zero.sum(axis=1) == present.sum(axis=1))
        keep = present & np.where(zero.any(axis=1)[:, None], y > 0.0, True)
        keep &= ~np.isnan(z) & ~np.isnan(y)
        inf = (keep & (np.isinf(z) | np.isinf(y))).any(axis=1)
        neg = (keep & (y < 0.0)).any(axis=1)
    if usable is not None:
        keep &= np.asarray(usable, dtype=bool)
    n = keep.sum(axis=1)
    ym = np.where(keep, y, np.nan)
    with np.errstate(invalid="ignore"):
        lo, hi = np.nanmin(np.where(keep, ym, np.inf), axis=1), np.nanmax(np.where(keep, ym, -np.inf), axis=1)
    equal = (n >= 2) & (lo == hi)
    reasons = []
    for i in range(s):
        if not present[i].any():
            r = "bad_data: no observed layers"
        elif all_zero[i]:
            r = "bad_data: all observations zero"
        elif inf[i]:
            r = "bad_data: non-finite observation (inf depth or value)"
        elif neg[i]:
            r = "bad_data: negative observation"
        elif n[i] < 2:
            r = f"bad_data: fewer than 2 usable layers ({int(n[i])})"
        elif equal[i]:
            r = "bad_data: all observed values equal (NSE undefined)"
        else:
            r = ""
        reasons.append(r)
    bad = np.array([r != "" for r in reasons], dtype=bool)
    keep &= ~bad[:, None]
    return keep, reasons


def rank_weights(depth_m: np.ndarray, obs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """CLM5 layer weights ``w = max(1, 10 exp(-(r - 1)))`` per site (``clm5.md`` §6.3).

    ``r = (r_y + r_d) / 2`` with ``r_y`` the rank (1 = farthest) of ``|y - mean(y)|`` in descending order and
    ``r_d`` the same for depth, over the valid layers; ties by a stable sort (layer order, MATLAB ``sort``).

    Parameters
    ----------
    depth_m, obs : (S, L) arrays
        Depth (m) and observation (g C m-3).
    valid : (S, L) bool
        Cleaned layers.

    Returns
    -------
    (S, L) float64
        Weights (1..10) at valid layers, 0 elsewhere.
    """
    valid = np.asarray(valid, dtype=bool)
    s, lmax = valid.shape
    cols = np.arange(1, lmax + 1, dtype=np.float64)

    def ranks(x: np.ndarray) -> np.ndarray:
        x = np.where(valid, np.asarray(x, dtype=np.float64), 0.0)
        cnt = np.maximum(valid.sum(axis=1, keepdims=True), 1)
        dev = np.abs(x - x.sum(axis=1, keepdims=True) / cnt)
        key = np.where(valid, -dev, np.inf)  # invalid layers sort last
        order = np.argsort(key, axis=1, kind="stable")
        r = np.empty((s, lmax))
        np.put_along_axis(r, order, np.broadcast_to(cols, (s, lmax)), axis=1)
        return r

    r = 0.5 * (ranks(obs) + ranks(depth_m))
    return np.where(valid, np.maximum(1.0, 10.0 * np.exp(-(r - 1.0))), 0.0)


# ============================================================================================ observations
@dataclass
class SiteObservations:
    """Cleaned observations of ``S`` sites, padded to ``L`` layers.

    Attributes
    ----------
    depth_m : (S, L) float64
        Observed node depths (m), NaN at invalid/padded layers.
    obs : (S, L) float64
        Observed SOC density (g C m-3), NaN at invalid/padded layers.
    valid : (S, L) bool
        Layers used by the DA.
    n_layers_raw : (S,) int64
        Layers before cleaning (the authors' RMSE divisor).
    weights : (S, L) float64
        CLM5 rank weights (0 at invalid layers).
    reason : (S,) str
        ``""`` or the cleaning's ``"bad_data: ..."`` reason (:func:`clean_observations`).
    """

    depth_m: np.ndarray
    obs: np.ndarray
    valid: np.ndarray
    n_layers_raw: np.ndarray
    weights: np.ndarray
    reason: np.ndarray

    @property
    def n_sites(self) -> int:
        """Number of sites S."""
        return int(self.obs.shape[0])

    @property
    def n_obs(self) -> int:
        """Padded layer count L."""
        return int(self.obs.shape[1])

    @classmethod
    def from_padded(cls, depth_m: np.ndarray, obs: np.ndarray, n_layers: np.ndarray | None = None,
                    usable: np.ndarray | None = None, n_max: int | None = None) -> SiteObservations:
        """Clean padded (S, L) raw observations (:func:`clean_observations`) and compact the valid layers.

        ``n_max``: padded width of the result (default: the most valid layers of a site, at least 1).
        """
        z = np.asarray(depth_m, dtype=np.float64)
        y = np.asarray(obs, dtype=np.float64)
        s, lmax = y.shape
        nl = np.full(s, lmax, np.int64) if n_layers is None else np.asarray(n_layers, dtype=np.int64)
        keep, reasons = clean_observations(z, y, nl, usable)
        n = keep.sum(axis=1)
        width = max(1, int(n.max()) if s else 1) if n_max is None else int(n_max)
        if s and n.max() > width:
            raise ValueError(f"n_max={width} is smaller than the largest valid layer count {int(n.max())}")
        # compact: valid layers first, in layer order
        order = np.argsort(~keep, axis=1, kind="stable")[:, :width] if lmax else np.zeros((s, 0), np.intp)
        if lmax < width:
            order = np.concatenate([order, np.zeros((s, width - lmax), np.intp)], axis=1)
        val = np.arange(width)[None, :] < n[:, None]
        zc = np.where(val, np.take_along_axis(z, order, 1) if lmax else 0.0, np.nan)
        yc = np.where(val, np.take_along_axis(y, order, 1) if lmax else 0.0, np.nan)
        return cls(depth_m=zc, obs=yc, valid=val, n_layers_raw=nl.copy(), weights=rank_weights(zc, yc, val),
                   reason=np.array(reasons, dtype=str).reshape(s))

    @classmethod
    def from_profiles(cls, offsets: np.ndarray, node_depth_m: np.ndarray, soc_density: np.ndarray,
                      usable: np.ndarray | None = None, n_max: int | None = None) -> SiteObservations:
        """From the ragged ``inputs.h5`` profile table (one site per profile).

        Parameters
        ----------
        offsets : (S+1,) int array
            Layers of site ``i`` are rows ``offsets[i]:offsets[i+1]``.
        node_depth_m : (N,) array
            Layer node depths (m).
        soc_density : (N,) array
            SOC density (g C m-3).
        usable : (N,) bool array or None
            ``profiles/obs_usable`` (same cleaning; applied as well).
        n_max : int or None
            Padded width (default the largest valid count).
        """
        off = np.asarray(offsets, dtype=np.int64)
        nl = np.diff(off)
        s = nl.size
        lmax = max(1, int(nl.max()) if s else 1)
        col = np.arange(int(off[-1]) if s else 0) - np.repeat(off[:-1], nl)
        row = np.repeat(np.arange(s), nl)
        z = np.full((s, lmax), np.nan)
        y = np.full((s, lmax), np.nan)
        z[row, col] = np.asarray(node_depth_m, dtype=np.float64)
        y[row, col] = np.asarray(soc_density, dtype=np.float64)
        u = None
        if usable is not None:
            u = np.zeros((s, lmax), dtype=bool)
            u[row, col] = np.asarray(usable, dtype=bool)
        return cls.from_padded(z, y, nl, u, n_max)

    def take(self, index: np.ndarray | Sequence[int]) -> SiteObservations:
        """Sites ``index`` (same padded width)."""
        i = np.asarray(index, dtype=np.intp)
        return SiteObservations(self.depth_m[i], self.obs[i], self.valid[i], self.n_layers_raw[i],
                                self.weights[i], self.reason[i])


# ============================================================================================ cost and likelihood
def cost_terms(cost: str, yhat: np.ndarray, obs: np.ndarray, valid: np.ndarray, weights: np.ndarray,
               ss_tot: np.ndarray) -> np.ndarray:
    """Per-layer terms ``J_i`` of the authors' cost (``J = nansum_i J_i``), NaN at invalid layers.

    Parameters
    ----------
    cost : {"clm5_weighted_relerr", "compas_nse"}
    yhat, obs : (B, L) arrays
        Modelled and observed SOC (g C m-3).
    valid : (B, L) bool
    weights : (B, L) array
        CLM5 rank weights (unused by ``compas_nse``).
    ss_tot : (B,) array
        ``sum (y - mean y)^2`` over the valid layers (g C m-3)^2 (unused by the CLM5 cost).

    Returns
    -------
    (B, L) float64, dimensionless
    """
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        r2 = (yhat - obs) ** 2
        if cost == "clm5_weighted_relerr":
            t = weights * r2 / (2.0 * (REL_ERR * obs) ** 2)
        elif cost == "compas_nse":
            t = NSE_SCALE * r2 / ss_tot[:, None]
        else:
            raise ValueError(f"unknown cost {cost!r}; allowed: {', '.join(COSTS)}")
    return np.where(valid, t, np.nan)


def log_lik_terms(yhat: np.ndarray, obs: np.ndarray, valid: np.ndarray, sigma_log: float) -> np.ndarray:
    """Per-layer ``log p(y_i | yhat_i)`` of the log-normal observation model (nats), NaN at invalid layers.

    ``log N(log y | log yhat, sigma) - log y``; -inf where ``yhat <= 0`` (module docstring).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        ly = np.log(obs)
        d = (ly - np.log(np.where(yhat > 0, yhat, np.nan))) / sigma_log
        t = -0.5 * d * d - np.log(sigma_log) - 0.5 * _LOG_2PI - ly
        t = np.where(yhat > 0, t, -np.inf)
    return np.where(valid, t, np.nan)


# ============================================================================================ the target
def _failure_codes(model: SoilModel) -> np.ndarray:
    """Status codes that fail an evaluation: all but OK; PRODA-compatible COMPAS scores invalid states."""
    codes = set(range(0, 128)) - {OK}
    if getattr(model.options, "invalid", None) == "flip":
        codes -= {INVALID_RATIO, INVALID_ANALYTIC}
    table = np.zeros(256, dtype=bool)
    table[sorted(codes)] = True
    return table


class ProfileTarget:
    """A soil model evaluated against observed profiles (implements ``sampler.base.Target``).

    Parameters
    ----------
    model : SoilModel
        The model (its options decide the paper/textbook physics).
    prepared : object
        ``model.prepare(forcing)`` of the ``S`` sites (same order as ``obs``).
    obs : SiteObservations
        Cleaned observations of the ``S`` sites.
    cost : str or None
        One of :data:`COSTS`; None: the model's default (:func:`default_cost`).
    obs_sigma_log : float
        SD of the log-SOC observation error (``SamplerConfig.obs_sigma_log``, default 0.5).
    pointwise : {"loglik", "cost"}
        What ``Evaluation.pointwise`` holds: the per-layer log-normal log-likelihood (default; ``textbook``)
        or the per-layer terms of ``-J`` (the ``paper`` kernel's pseudo-likelihood, ``-J = sum_i pointwise``).

    Attributes
    ----------
    n_params, n_sites, n_obs : int
    obs : (S, L) float64, observed SOC (g C m-3), NaN padded (the kernels read it)
    n_layers_raw : (S,) int64, layers before cleaning
    observations : SiteObservations
    cost_name : str
    """

    def __init__(self, model: SoilModel, prepared: object, obs: SiteObservations, cost: str | None = None,
                 obs_sigma_log: float = DEFAULT_OBS_SIGMA_LOG, pointwise: str = "loglik") -> None:
        self.model = model
        self.prepared = prepared
        self.observations = obs
        self.cost_name = default_cost(model) if cost is None else cost
        if self.cost_name not in COSTS:
            raise ValueError(f"unknown cost {self.cost_name!r}; allowed: {', '.join(COSTS)}")
        if not obs_sigma_log > 0:
            raise ValueError(f"obs_sigma_log must be > 0, got {obs_sigma_log!r}")
        self.obs_sigma_log = float(obs_sigma_log)
        if pointwise not in ("loglik", "cost"):
            raise ValueError(f"pointwise must be 'loglik' or 'cost', got {pointwise!r}")
        self.pointwise = pointwise
        self.n_params = len(model.params)
        self.n_sites = obs.n_sites
        self.n_obs = obs.n_obs
        self.obs = obs.obs
        self.n_layers_raw = obs.n_layers_raw
        self.depth_m = obs.depth_m
        self.valid = obs.valid
        self.weights = obs.weights
        with np.errstate(invalid="ignore"):
            cnt = np.maximum(obs.valid.sum(axis=1), 1)
            ym = np.where(obs.valid, obs.obs, 0.0).sum(axis=1) / cnt
            self.ss_tot = np.where(obs.valid, (obs.obs - ym[:, None]) ** 2, 0.0).sum(axis=1)
        self._k, self._s = pchip_locate(obs.depth_m)
        # per-layer constants (NaN at invalid layers): cost weight, log y, log-normal constant
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.cost_name == "clm5_weighted_relerr":
                cw = obs.weights / (2.0 * (REL_ERR * obs.obs) ** 2)
            else:
                cw = np.broadcast_to((NSE_SCALE / self.ss_tot)[:, None], obs.obs.shape)
            self._cost_w = np.where(obs.valid, cw, np.nan)
            self._log_obs = np.where(obs.valid, np.log(obs.obs), np.nan)
            self._ll_c = self._log_obs * -1.0 - np.log(self.obs_sigma_log) - 0.5 * _LOG_2PI
            self._nonpos = np.where(obs.valid, -np.inf, np.nan)
        # depths on a node (within NODE_TOL_M) take the node value itself: PCHIP interpolates the nodes, but
        # its Hermite form at the far end of an interval cancels (y0 >> y1 in a steep deep profile)
        dist = np.abs(obs.depth_m[..., None] - nodes_m())
        with np.errstate(invalid="ignore"):
            hit = np.nan_to_num(dist, nan=np.inf).min(axis=-1) <= NODE_TOL_M
        self._node = np.where(hit, np.nan_to_num(dist, nan=np.inf).argmin(axis=-1), -1)
        self._any_node = bool(hit.any())
        self._fail = _failure_codes(model)

    def modelled(self, soc: np.ndarray, site_index: np.ndarray) -> np.ndarray:
        """Modelled SOC (B, L) g C m-3 at the observed layers of ``site_index`` from node SOC (B, 20)."""
        idx = np.asarray(site_index, dtype=np.intp)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            out = pchip_at(soc, self.depth_m[idx], located=(self._k[idx], self._s[idx]))
        if self._any_node:
            node = self._node[idx]
            at = np.take_along_axis(np.asarray(soc, dtype=np.float64), np.maximum(node, 0), axis=1)
            out = np.where(node >= 0, at, out)
        return out

    def cost_terms(self, yhat: np.ndarray, site_index: np.ndarray) -> np.ndarray:
        """Per-layer terms of the selected cost (B, L) for modelled ``yhat`` (g C m-3) at the sites' layers."""
        i = np.asarray(site_index, dtype=np.intp)
        return cost_terms(self.cost_name, yhat, self.obs[i], self.valid[i], self.weights[i], self.ss_tot[i])

    def score(self, soc: np.ndarray, status: np.ndarray, site_index: np.ndarray) -> Evaluation:
        """Evaluation from node SOC (B, 20) g C m-3 and model status (B,) (everything after the solve)."""
        i = np.asarray(site_index, dtype=np.intp)
        soc = np.asarray(soc, dtype=np.float64)
        status = np.asarray(status).astype(np.int8, copy=False)
        valid = self.valid[i]
        yhat = np.where(valid, self.modelled(soc, i), np.nan)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            failed = self._fail[status.astype(np.uint8)] | ~np.isfinite(soc).all(axis=1) \
                | (valid & ~np.isfinite(yhat)).any(axis=1)
            # same terms as cost_terms / log_lik_terms, with the per-site constants precomputed
            t = (yhat - self.obs[i]) ** 2 * self._cost_w[i]
            cost = np.nansum(t, axis=1)
            r = (self._log_obs[i] - np.log(np.abs(yhat))) * (1.0 / self.obs_sigma_log)
            pw = np.where(yhat > 0, self._ll_c[i] - 0.5 * r * r, self._nonpos[i])  # yhat <= 0: -inf
            ll = np.nansum(pw, axis=1)
            if self.pointwise == "cost":
                pw = -t
        if failed.any():
            cost[failed] = np.nan
            ll[failed] = -np.inf
            pw[failed] = np.nan
        return Evaluation(cost=cost, loglik=ll, pointwise=pw, soc=yhat, failed=failed, status=status)

    def evaluate(self, kp: np.ndarray, site_index: np.ndarray) -> Evaluation:
        """Evaluate (B, P) normalised parameters, row ``b`` for site ``site_index[b]``.

        Returns
        -------
        Evaluation
            ``cost`` the authors' J (NaN if failed), ``loglik`` the log-normal log-likelihood (-inf if failed),
            ``pointwise`` (B, L) its per-layer terms or those of -J (``pointwise="cost"``), NaN padded and
            NaN if failed, ``soc`` (B, L) modelled SOC (g C m-3),
            ``failed``, ``status``.
        """
        theta = self.model.params.to_physical(kp)
        st = self.model.steady_state(theta, self.prepared, np.asarray(site_index, dtype=np.intp))
        return self.score(st.soc, st.status, site_index)


# ============================================================================================ per-site skips
def site_prechecks(model: SoilModel, prepared: object, obs: SiteObservations, forcing_ok: np.ndarray,
                   forcing_reason: Sequence[str] | None = None, kp0: float = 0.5) -> np.ndarray:
    """The authors' per-profile skips before the MCMC (``compas.md`` §7.1, ``clm5.md`` §6.1), in their order.

    1. forcing failed :meth:`Forcing.check` (NaN or out of range) -> ``"bad_data: forcing ..."``;
    2. the run at ``kp = kp0`` (0.5 for every parameter) is singular -> ``"solver_failure: singular at kp0"``,
       or its layer-1 SOC is NaN -> ``"solver_failure: layer-1 SOC not finite at kp0"`` (a negative, flipped
       state is not a reason, as coded);
    3. the observation cleaning's reason (``obs.reason``).

    Parameters
    ----------
    model, prepared : the model and its prepared sites (S, in ``obs`` order)
    obs : SiteObservations
    forcing_ok : (S,) bool
        ``sites/forcing_ok``.
    forcing_reason : sequence of S str or None
        ``sites/forcing_reason`` (added to the message).
    kp0 : float
        Normalised start point.

    Returns
    -------
    (S,) str array, ``""`` for sites to assimilate.
    """
    s = obs.n_sites
    ok = np.asarray(forcing_ok, dtype=bool).reshape(s)
    kp = np.full((s, len(model.params)), float(kp0))
    st = model.steady_state(model.params.to_physical(kp), prepared, np.arange(s))
    out = []
    for i in range(s):
        if not ok[i]:
            why = forcing_reason[i] if forcing_reason is not None and forcing_reason[i] else "failed the check"
            r = f"bad_data: forcing {why}"
        elif st.status[i] == BAD_FORCING:
            r = "bad_data: forcing failed the model's check"
        elif st.status[i] == SINGULAR:
            r = f"solver_failure: singular at kp0 = {kp0:g}"
        elif not np.isfinite(st.soc[i, 0]):
            r = f"solver_failure: layer-1 SOC not finite at kp0 = {kp0:g} (status {int(st.status[i])})"
        else:
            r = str(obs.reason[i])
        out.append(r)
    return np.array(out, dtype=str).reshape(s)
