"""MCMC convergence diagnostics and fit statistics, vectorised over leading "site" axes.

Pure numpy/scipy (no ArviZ import): arrays in, arrays out.  Shapes: ``...`` any leading (site, param) axes,
``C`` chains, ``N`` draws per chain, ``P`` parameters, ``L`` observed layers.

Two families (``conventions.md`` B.2, ``compas.md`` 7.3):

* **Textbook** (Vehtari et al. 2021): :func:`rhat_rank` (rank-normalised split R-hat, max of bulk and
  folded), :func:`rhat_split`, :func:`rhat_classic` (Gelman-Rubin on the stored, unsplit chains),
  :func:`ess_bulk`, :func:`ess_tail`; :func:`convergence_summary` computes all of them in one pass.  They
  reproduce ArviZ's ``rhat(method="rank"|"split"|"identity")`` and ``ess(method="bulk"|"tail",
  prob=(0.05, 0.95))`` (same split, average-tie ranks with Blom's 3/8 offset, FFT autocovariance, Geyer's
  initial positive and monotone sequences, including ArviZ's loop bounds) to round-off, without a Python loop
  over sites: the sequential Geyer loops are rewritten as a first-failure index and a cumulative minimum over
  the pair sums.  Sites are processed in blocks of rows to bound memory.
* **The authors'** (PRODA ``compat``): :func:`gelman_rubin_paper` with their mismatched ``n``,
  :func:`chain_moments` to feed it from padded accepted-only draws, :func:`burnin_half_mask` (their burn-in:
  the first half of the accepted states), :func:`r2_legacy`, :func:`rmse_legacy`, :func:`gev_mode`
  (``para_es``).  :func:`nse` is paper Eq. 1.

Stuck chains
------------
A site whose draws are all equal (a chain that never moved, or all chains stuck at one value) has no defined
R-hat or ESS.  R-hat is NaN (0/0, as in ArviZ).  ArviZ returns the draw count as the ESS of a constant
array; prodampi returns **NaN** there by default (``constant="nan"``; ``posterior``'s ``ess_bulk``
convention, ``conventions.md`` B.2) so that "stuck chain" is one failure class; ``constant="arviz"`` gives
ArviZ's value.  :func:`stuck_chains` flags single constant chains.  Any NaN among a site's draws, fewer than 4
draws, or (R-hat) fewer than 2 chains give NaN, as in ArviZ.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import special, stats

__all__ = [
    "acceptance_rate", "burnin_half_mask", "chain_moments", "convergence_summary", "ess_bulk", "ess_tail",
    "gelman_rubin_paper", "gev_fit", "gev_from_lmoments", "gev_mode", "gev_mode_from_params", "lmoments", "nse",
    "r2_legacy", "rhat_classic", "rhat_rank", "rhat_split", "rmse_legacy", "stuck_chains",
]

_RESOLUTION = float(np.finfo(float).resolution)  # ArviZ's constant-array threshold (1e-15)
_BLOCK_ELEMENTS = 1 << 21  # draws per processing block (~16 MiB of float64 per intermediate)


# --- building blocks (rows = flattened leading axes) ---

def _next_fast_len(target: int) -> int:
    """Smallest 5-smooth integer >= target (``scipy.fftpack.next_fast_len``, which ArviZ uses)."""
    if target <= 6 or not (target & (target - 1)):
        return target
    best = 1 << (target - 1).bit_length()
    p5 = 1
    while p5 < target:
        p35 = p5
        while p35 < target:
            quotient = -(-target // p35)
            cand = p35 * (1 << (quotient - 1).bit_length())
            if cand == target:
                return cand
            best = min(best, cand)
            p35 *= 3
        best = min(best, p35)
        p5 *= 5
    return min(best, p5)


def _split(x: np.ndarray) -> np.ndarray:
    """(R, C, N) -> (R, 2C, N // 2): first and last halves as separate chains (odd N drops the middle draw)."""
    n = x.shape[-1]
    half = n // 2
    return np.concatenate((x[..., :half], x[..., n - half:]), axis=-2)


def _z_ranked(v: np.ndarray, order: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Rank-normalised values of rows ``a`` given sorted ``v = a[order]`` (R, M); result reshaped to ``shape``.

    ArviZ's ``_z_scale``: average (mid) ranks of ties (``scipy.stats.rankdata(method="average")``), Blom's
    offset ``(rank - 3/8) / (M - 3/4 + 1)``, then the normal quantile.  Without ties the z-value of sorted
    position ``j`` is the same in every row (one table, scattered back through ``order``); tie groups, found
    sparsely, get the z-value of their mid rank.
    """
    r, m = v.shape
    denom = m - 0.75 + 1.0
    out = np.empty((r, m))
    np.put_along_axis(out, order, special.ndtri((np.arange(1, m + 1) - 0.375) / denom)[None, :], axis=-1)
    dup = np.flatnonzero((v[:, 1:] == v[:, :-1]).ravel())  # flat index (in R x (M-1)) of "equals previous"
    if dup.size:
        dup = dup + dup // (m - 1) + 1  # -> flat index in R x M of the repeated element (never position 0)
        brk = np.flatnonzero(np.diff(dup) != 1) + 1
        first = np.concatenate(([0], brk))
        last = np.concatenate((brk, [dup.size])) - 1
        lo, hi = dup[first] - 1, dup[last]  # flat indices of each tie group's ends (same row)
        mid_rank = ((lo % m) + (hi % m)) * 0.5 + 1.0
        zg = special.ndtri((mid_rank - 0.375) / denom)
        members = np.concatenate((dup, lo))
        zm = np.concatenate((np.repeat(zg, last - first + 1), zg))
        flat_order = order.ravel()
        out.ravel()[(members // m) * m + flat_order[members]] = zm
    return out.reshape(shape)


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank-normalise each row of (R, C, N) over all its chains and draws (ArviZ ``_z_scale``)."""
    flat = x.reshape(x.shape[0], -1)
    order = np.argsort(flat, axis=-1)
    return _z_ranked(np.take_along_axis(flat, order, axis=-1), order, x.shape)


def _z_bulk_and_folded(split: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank-normalised split draws and rank-normalised folded split draws ``|x - median|``, sharing one sort.

    The folded values in sorted order are V-shaped (down to the median, then up), so their sort is cheap.
    """
    flat = split.reshape(split.shape[0], -1)
    order = np.argsort(flat, axis=-1)
    v = np.take_along_axis(flat, order, axis=-1)
    m = v.shape[1]  # even: 2 C (N // 2)
    med = (v[:, m // 2 - 1] + v[:, m // 2]) / 2  # np.median of an even count
    fv = np.abs(v - med[:, None])
    perm = np.argsort(fv, axis=-1)
    zb = _z_ranked(v, order, split.shape)
    zf = _z_ranked(np.take_along_axis(fv, perm, axis=-1), np.take_along_axis(order, perm, axis=-1), split.shape)
    return zb, zf


def _rhat_core(x: np.ndarray) -> np.ndarray:
    """Potential scale reduction of (R, C, N) chains (BDA3 form, as ArviZ's ``_rhat``) -> (R,)."""
    n = x.shape[-1]
    chain_mean = x.mean(axis=-1)
    chain_var = x.var(axis=-1, ddof=1)
    between = n * chain_mean.var(axis=-1, ddof=1)
    within = chain_var.mean(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def _autocov(x: np.ndarray) -> np.ndarray:
    """Autocovariance at every lag along the last axis by zero-padded FFT (biased, divided by N)."""
    n = x.shape[-1]
    m = _next_fast_len(2 * n)
    x = x - x.mean(axis=-1, keepdims=True)
    f = np.fft.rfft(x, n=m, axis=-1)
    f *= np.conjugate(f)
    cov = np.fft.irfft(f, n=m, axis=-1)[..., :n]
    cov /= n
    return cov


def _ess_core(x: np.ndarray) -> np.ndarray:
    """ESS of (R, C, N) chains (Geyer's initial monotone sequence, ArviZ/Stan ``_ess``) -> (R,).

    The loop "while t < N-3 and the last pair sum > 0" stops at the first pair ``P_k = rho_2k + rho_2k+1``
    that is not positive (``K`` pairs used, the last even lag ``rho_2K`` as a half term); the monotone
    correction replaces each pair sum by the running minimum.  Constant rows return ``C * N`` (ArviZ).
    """
    r, c, n = x.shape
    x = np.asarray(x, dtype=float)
    const = (x.max(axis=(-2, -1)) - x.min(axis=(-2, -1))) < _RESOLUTION
    acov = _autocov(x)
    mean_var = acov[..., 0].mean(axis=-1) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if c > 1:
        var_plus = var_plus + x.mean(axis=-1).var(axis=-1, ddof=1)
    k_lim = max(0, (n - 1) // 2 - 1)  # number of loop iterations allowed by "t < N - 3"
    npair = k_lim + 1
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var[:, None] - acov[..., : 2 * npair].mean(axis=-2)) / var_plus[:, None]
    rho[:, 0] = 1.0
    pairs = rho[:, 0: 2 * npair: 2] + rho[:, 1: 2 * npair: 2]  # (R, npair)
    fail = ~(pairs[:, :k_lim] > 0.0)
    kk = np.where(fail.any(axis=1), np.argmax(fail, axis=1), k_lim) if k_lim else np.zeros(r, dtype=np.intp)
    used = np.arange(k_lim)[None, :] < kk[:, None]
    mono = np.minimum.accumulate(pairs[:, :k_lim], axis=1) if k_lim else np.zeros((r, 0))
    sum_pairs = np.where(used, mono, 0.0).sum(axis=1)
    rows = np.arange(r)
    last_even = rho[rows, 2 * kk]
    last_pair = pairs[rows, kk]
    tail = np.where(kk == 0, 1.0, np.where((last_pair >= 0.0) | (last_even > 0.0), last_even, 0.0))
    tau = -1.0 + 2.0 * sum_pairs + tail
    size = c * n
    tau = np.maximum(tau, 1.0 / np.log10(size))
    ess = size / tau
    bad = np.isnan(rho[:, 1]) | np.isnan(sum_pairs) | np.isnan(tail) | np.isnan(tau)
    ess = np.where(bad, np.nan, ess)
    return np.where(const, float(size), ess)


def _rows(x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    x = np.asarray(x, dtype=float)
    if x.ndim < 2:
        raise ValueError(f"expected (..., chain, draw) draws, got shape {x.shape}")
    return x.reshape((-1,) + x.shape[-2:]), x.shape[:-2]


def _blocks(n_rows: int, per_row: int):
    step = max(1, _BLOCK_ELEMENTS // max(per_row, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _diagnose_block(x: np.ndarray, want: set[str], prob: tuple[float, float], constant: str) -> dict:
    """All requested diagnostics for one block of valid-or-not rows (R, C, N)."""
    r, c, n = x.shape
    nan_row = np.isnan(x).any(axis=(-2, -1))
    x = np.where(nan_row[:, None, None], 0.0, x)
    stuck = (x.max(axis=(-2, -1)) - x.min(axis=(-2, -1))) < _RESOLUTION
    out = {}
    ok_draws = n >= 4
    split = _split(x) if ok_draws else None
    zb = zf = None
    if ok_draws and "rhat" in want and c >= 2:
        zb, zf = _z_bulk_and_folded(split)
    elif ok_draws and "ess_bulk" in want:
        zb = _z_scale(split)
    if "rhat" in want:
        if ok_draws and c >= 2:
            bulk = _rhat_core(zb)
            tail = _rhat_core(zf)
            out["rhat"] = np.where(tail > bulk, tail, bulk)  # Python max(bulk, tail), as ArviZ
        else:
            out["rhat"] = np.full(r, np.nan)
    if "rhat_split" in want:
        out["rhat_split"] = _rhat_core(split) if ok_draws and c >= 2 else np.full(r, np.nan)
    if "rhat_classic" in want:
        out["rhat_classic"] = _rhat_core(x) if ok_draws and c >= 2 else np.full(r, np.nan)
    if "ess_bulk" in want:
        out["ess_bulk"] = _ess_core(zb) if ok_draws else np.full(r, np.nan)
    if "ess_tail" in want:
        if ok_draws:
            q = np.quantile(x.reshape(r, -1), list(prob), axis=-1)  # (2, R), type 7 (linear)
            lo = _ess_core(_split((x <= q[0][:, None, None]).astype(float)))
            hi = _ess_core(_split((x <= q[1][:, None, None]).astype(float)))
            out["ess_tail"] = np.where(hi < lo, hi, lo)  # Python min(lo, hi), as ArviZ
        else:
            out["ess_tail"] = np.full(r, np.nan)
    for key, val in out.items():
        val = np.where(nan_row, np.nan, val)
        if key.startswith("ess") and constant == "nan":
            val = np.where(stuck, np.nan, val)
        out[key] = val
    return out


def _diagnose(x: np.ndarray, want: set[str], prob: Sequence[float] = (0.05, 0.95),
              constant: str = "nan") -> dict[str, np.ndarray]:
    if constant not in ("nan", "arviz"):
        raise ValueError("constant must be 'nan' or 'arviz'")
    pr = np.atleast_1d(np.asarray(prob, dtype=float))
    if pr.size == 1:  # a single probability p means (p, 1 - p), as ArviZ
        pr = np.sort([pr[0], 1.0 - pr[0]])
    prob = (float(pr[0]), float(pr[1]))
    rows, lead = _rows(x)
    res = {k: np.empty(rows.shape[0]) for k in want}
    for sl in _blocks(rows.shape[0], rows.shape[1] * rows.shape[2]):
        for k, v in _diagnose_block(rows[sl], want, prob, constant).items():
            res[k][sl] = v
    return {k: v.reshape(lead) for k, v in res.items()}


# --- public: textbook diagnostics ---

def rhat_rank(x: np.ndarray) -> np.ndarray:
    """Rank-normalised split R-hat, the maximum of bulk and folded R-hat (Vehtari et al. 2021).

    Parameters
    ----------
    x : (..., C, N) array_like
        Draws (any unit; R-hat is unitless), every stored iteration of each chain.

    Returns
    -------
    (...,) float64
        ArviZ ``rhat(method="rank")``; NaN for stuck (constant) sites, sites with a NaN draw, N < 4, C < 2.
    """
    return _diagnose(x, {"rhat"})["rhat"]


def rhat_split(x: np.ndarray) -> np.ndarray:
    """Split R-hat on the raw draws (ArviZ ``rhat(method="split")``), (..., C, N) -> (...,)."""
    return _diagnose(x, {"rhat_split"})["rhat_split"]


def rhat_classic(x: np.ndarray) -> np.ndarray:
    """Classic Gelman-Rubin potential scale reduction on the stored, unsplit chains, (..., C, N) -> (...,).

    ``sqrt(((N-1)/N W + B/N) / W)`` with ``B = N var(chain means)``, ``W = mean(chain variances)``; equal to
    ArviZ ``rhat(method="identity")``.  NaN for constant sites, NaN draws, N < 4 or C < 2.
    """
    return _diagnose(x, {"rhat_classic"})["rhat_classic"]


def ess_bulk(x: np.ndarray, constant: str = "nan") -> np.ndarray:
    """Bulk effective sample size (rank-normalised split chains), (..., C, N) -> (...,) draws.

    Equal to ArviZ ``ess(method="bulk")`` except at constant sites: NaN ("stuck chain") with
    ``constant="nan"`` (default), ArviZ's draw count with ``constant="arviz"``.
    """
    return _diagnose(x, {"ess_bulk"}, constant=constant)["ess_bulk"]


def ess_tail(x: np.ndarray, prob: Sequence[float] | float = (0.05, 0.95), constant: str = "nan") -> np.ndarray:
    """Tail effective sample size: min of the quantile-indicator ESS at ``prob``, (..., C, N) -> (...,) draws.

    Equal to ArviZ ``ess(method="tail", prob=prob)`` (quantiles of type 7 over all chains, indicators
    ``x <= q`` on split chains, not rank-normalised); constant sites as in :func:`ess_bulk`.
    """
    return _diagnose(x, {"ess_tail"}, prob=prob, constant=constant)["ess_tail"]


def convergence_summary(x: np.ndarray, prob: Sequence[float] = (0.05, 0.95),
                        constant: str = "nan") -> dict[str, np.ndarray]:
    """All textbook diagnostics in one pass (shared split and ranks), (..., C, N) -> dict of (...,) arrays.

    Keys: ``rhat`` (:func:`rhat_rank`), ``rhat_split``, ``rhat_classic``, ``ess_bulk``, ``ess_tail``,
    ``stuck`` (bool, all draws of the site equal).
    """
    out = _diagnose(x, {"rhat", "rhat_split", "rhat_classic", "ess_bulk", "ess_tail"}, prob=prob,
                    constant=constant)
    xr = np.asarray(x, dtype=float)
    out["stuck"] = (xr.max(axis=(-2, -1)) - xr.min(axis=(-2, -1))) < _RESOLUTION
    return out


def stuck_chains(x: np.ndarray) -> np.ndarray:
    """Chains whose draws are all equal (never moved), (..., C, N) -> (..., C) bool."""
    x = np.asarray(x, dtype=float)
    return (x.max(axis=-1) - x.min(axis=-1)) < _RESOLUTION


def acceptance_rate(accepted: np.ndarray, axis: int = -1) -> np.ndarray:
    """Fraction of accepted proposals along ``axis`` (bool or 0/1 array, unitless); NaN for an empty axis."""
    a = np.asarray(accepted, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return a.sum(axis=axis) / a.shape[axis]


# --- public: the authors' estimators ---

def burnin_half_mask(n_accepted: np.ndarray, n_slots: int) -> np.ndarray:
    """The authors' post-burn-in selection among accepted states (``compas.md`` 7.3), (...,) -> (..., n_slots).

    Accepted states ``round(n/2)+1 .. n`` (MATLAB, 1-based, round half away from zero) of a chain with
    ``n_accepted`` = n accepted states, as a bool mask over slots ``0 .. n_slots-1`` of the padded
    accepted-state array.
    """
    n = np.asarray(n_accepted, dtype=np.int64)
    start = (n + 1) // 2  # round(n/2) for n >= 0
    j = np.arange(n_slots)
    return (j >= start[..., None]) & (j < n[..., None])


def chain_moments(samples: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-chain mean, sum of squared deviations and count of the masked draws.

    Parameters
    ----------
    samples : (..., C, N, P) float
        Padded draws (normalised parameters); values outside ``mask`` are ignored (may be NaN).
    mask : (..., C, N) bool
        Which draws count (e.g. :func:`burnin_half_mask` over accepted states).

    Returns
    -------
    mean : (..., C, P)   NaN for a chain with no draws
    ss : (..., C, P)     sum over draws of ``(x - mean)**2`` (two-pass)
    count : (..., C) int
    """
    x = np.asarray(samples, dtype=float)
    m = np.broadcast_to(np.asarray(mask, dtype=bool), x.shape[:-1])
    lead, (n, p) = x.shape[:-2], x.shape[-2:]
    xr, mr = x.reshape(-1, n, p), m.reshape(-1, n, 1)
    count = mr[..., 0].sum(axis=-1)
    mean = np.empty((xr.shape[0], p))
    ss = np.empty((xr.shape[0], p))
    for sl in _blocks(xr.shape[0], n * p):  # bounded temporaries
        xb, mb = xr[sl], mr[sl]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean[sl] = np.sum(xb, axis=-2, where=mb) / count[sl, None]
            ss[sl] = np.sum((xb - mean[sl, None, :]) ** 2, axis=-2, where=mb)
    ss[count == 0] = np.nan
    return mean.reshape(lead + (p,)), ss.reshape(lead + (p,)), count.reshape(lead)


def gelman_rubin_paper(chain_mean: np.ndarray, chain_ss: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The authors' Gelman-Rubin statistic per parameter, as coded (``compas.md`` 7.3).

    ``B = n/(m-1) sum_c (mean_c - mean)^2``, ``W = sum_c SS_c / (m (n-1))``,
    ``GR = sqrt(((n-1)/n W + B/n) / W)``, with ``m`` chains, ``mean`` the mean of the chain means and ``n``
    the **total accepted count of the last chain** (not the post-burn-in count: the authors' mismatch, which
    makes ``GR**2 - 1`` about twice the textbook excess).  The paper keeps sites with mean GR < 1.05.

    Parameters
    ----------
    chain_mean, chain_ss : (..., C, P) float
        Per-chain mean and centred sum of squares of the post-burn-in accepted draws (:func:`chain_moments`).
    n : (...,) int or float
        The ``n`` of the formula (pass ``n_accepted[..., -1]`` to reproduce the authors).

    Returns
    -------
    (..., P) float64
    """
    mean = np.asarray(chain_mean, dtype=float)
    ss = np.asarray(chain_ss, dtype=float)
    m = mean.shape[-2]
    nn = np.asarray(n, dtype=float)[..., None]
    grand = mean.mean(axis=-2)
    b = nn / (m - 1) * ((mean - grand[..., None, :]) ** 2).sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = ss.sum(axis=-2) / (m * (nn - 1.0))
        return np.sqrt(((nn - 1.0) / nn * w + b / nn) / w)


def _fit_terms(obs: np.ndarray, mod: np.ndarray, axis: int):
    obs, mod = np.broadcast_arrays(np.asarray(obs, dtype=float), np.asarray(mod, dtype=float))
    valid = np.isfinite(obs) & np.isfinite(mod)
    cnt = valid.sum(axis=axis)
    res = np.where(valid, mod - obs, 0.0)
    ss_res = (res * res).sum(axis=axis)
    return obs, mod, valid, cnt, ss_res


def _ss_about_mean(v: np.ndarray, valid: np.ndarray, cnt: np.ndarray, axis: int) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(valid, v, 0.0).sum(axis=axis, keepdims=True) / np.expand_dims(cnt, axis)
    d = np.where(valid, v - mu, 0.0)
    return (d * d).sum(axis=axis)


def nse(obs: np.ndarray, mod: np.ndarray, axis: int = -1) -> np.ndarray:
    """Nash-Sutcliffe efficiency, paper Eq. 1: ``1 - sum (mod-obs)^2 / sum (obs - mean(obs))^2``.

    Parameters
    ----------
    obs, mod : broadcastable arrays (g C m-3), layers along ``axis``; NaN/inf layers (padding, failed model
        layers) are left out of every sum.

    Returns
    -------
    float64, ``axis`` removed; NaN where fewer than 2 valid layers or the observations have zero variance.
    """
    obs, mod, valid, cnt, ss_res = _fit_terms(obs, mod, axis)
    ss_tot = _ss_about_mean(obs, valid, cnt, axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = 1.0 - ss_res / ss_tot
    return np.where((cnt >= 2) & (ss_tot > 0), out, np.nan)


def r2_legacy(obs: np.ndarray, mod: np.ndarray, axis: int = -1) -> np.ndarray:
    """The authors' "R^2" (``stat_r2``): ``1 - sum (mod-obs)^2 / sum (mod - mean(mod))^2``.

    The total sum of squares is taken around the **modelled** mean (not paper Eq. 1; ``proda_nn_maps.md``
    section 3).  Same masking as :func:`nse`; NaN where fewer than 2 valid layers or a constant modelled
    profile (MATLAB would give -Inf; both fail the authors' ``> 0`` filter).
    """
    obs, mod, valid, cnt, ss_res = _fit_terms(obs, mod, axis)
    ss_tot = _ss_about_mean(mod, valid, cnt, axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = 1.0 - ss_res / ss_tot
    return np.where((cnt >= 2) & (ss_tot > 0), out, np.nan)


def rmse_legacy(obs: np.ndarray, mod: np.ndarray, n_layers: np.ndarray, axis: int = -1) -> np.ndarray:
    """The authors' RMSE: ``sqrt(SS_res / n_layers)`` (g C m-3), SS_res over valid layers.

    ``n_layers`` (broadcastable to the result) is the layer count **before** cleaning, as coded (a minor bug
    when layers were dropped).  NaN where no layer is valid.
    """
    _, _, _, cnt, ss_res = _fit_terms(obs, mod, axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sqrt(ss_res / np.asarray(n_layers, dtype=float))
    return np.where(cnt > 0, out, np.nan)


# --- GEV mode (the authors' para_es) ---

_LN2, _LN3 = np.log(2.0), np.log(3.0)


def _lngamma1p(kappa: np.ndarray) -> np.ndarray:
    """log Gamma(1 + kappa), with the Taylor series near 0 (relative accuracy kept as kappa -> 0)."""
    z2, z3, z4 = np.pi ** 2 / 6, special.zeta(3.0), np.pi ** 4 / 90
    small = np.abs(kappa) < 1e-3
    ks = np.where(small, kappa, 0.0)
    series = ks * (-np.euler_gamma + ks * (z2 / 2 - ks * (z3 / 3 - ks * z4 / 4)))
    return np.where(small, series, special.gammaln(1.0 + np.where(small, 1.0, kappa)))


def _one_minus_gamma_over_k(kappa: np.ndarray, lg: np.ndarray) -> np.ndarray:
    """(1 - Gamma(1 + kappa)) / kappa given ``lg = log Gamma(1 + kappa)``; Euler's gamma at kappa = 0."""
    z2, z3, z4 = np.pi ** 2 / 6, special.zeta(3.0), np.pi ** 4 / 90
    small = np.abs(kappa) < 1e-3
    ks = np.where(small, kappa, 0.0)
    q = -np.euler_gamma + ks * (z2 / 2 - ks * (z3 / 3 - ks * z4 / 4))  # lg / kappa near 0
    y = np.where(small, lg, 0.0)
    near = -q * (1.0 + y / 2 + y * y / 6 + y ** 3 / 24)  # -(lg/kappa) expm1(lg)/lg
    far = -np.expm1(lg) / np.where(small, 1.0, kappa)
    return np.where(small, near, far)


def _one_minus_pow(base_log: float, kappa: np.ndarray) -> np.ndarray:
    """(1 - base**-kappa) / kappa, continuous at kappa = 0."""
    safe = np.where(kappa == 0.0, 1.0, kappa)
    return np.where(kappa == 0.0, base_log, -np.expm1(-kappa * base_log) / safe)


def lmoments(samples: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unbiased sample L-moments ``l1``, ``l2`` and L-skewness ``t3 = l3/l2`` from PWMs (Hosking 1990).

    NaN entries are left out (per-row count ``n``); NaN where ``n < 3`` or ``l2 <= 0``.  Units: ``l1``, ``l2``
    those of the samples; ``t3`` unitless.
    """
    x = np.moveaxis(np.asarray(samples, dtype=float), axis, -1)
    shape, size = x.shape[:-1], x.shape[-1]
    x = x.reshape(-1, size)
    j = np.arange(size, dtype=float)  # j = rank - 1
    weights = np.stack([np.ones(size), j, j * (j - 1.0)], axis=1)  # (N, 3): PWM numerators
    sums = np.empty((x.shape[0], 3))
    n = np.empty(x.shape[0])
    for sl in _blocks(x.shape[0], size):
        xs = np.sort(x[sl], axis=-1)  # NaN last
        n[sl] = size - np.isnan(xs).sum(axis=-1)
        xs[j[None, :] >= n[sl, None]] = 0.0
        sums[sl] = xs @ weights
    with np.errstate(invalid="ignore", divide="ignore"):
        b0 = sums[:, 0] / n
        b1 = sums[:, 1] / (n * (n - 1.0))
        b2 = sums[:, 2] / (n * (n - 1.0) * (n - 2.0))
        l1, l2, l3 = b0, 2.0 * b1 - b0, 6.0 * b2 - 6.0 * b1 + b0
        t3 = l3 / l2
    bad = (n < 3) | ~(l2 > 0)
    return tuple(np.where(bad, np.nan, v).reshape(shape) for v in (l1, l2, t3))


def _kappa_from_t3(t3: np.ndarray) -> np.ndarray:
    """Hosking's GEV shape kappa solving ``t3 = 2 (1 - 3^-k)/(1 - 2^-k) - 3`` (monotone; bisection)."""
    t3 = np.asarray(t3, dtype=float)
    lo = np.full(t3.shape, -1.0 + 1e-12)
    hi = np.full(t3.shape, 60.0)
    for _ in range(110):
        mid = 0.5 * (lo + hi)
        f = 2.0 * _one_minus_pow(_LN3, mid) / _one_minus_pow(_LN2, mid) - 3.0
        go_up = f > t3  # f decreases with kappa
        lo = np.where(go_up, mid, lo)
        hi = np.where(go_up, hi, mid)
    return np.where(np.isfinite(t3), 0.5 * (lo + hi), np.nan)


def gev_from_lmoments(l1: np.ndarray, l2: np.ndarray, t3: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GEV ``(k, sigma, mu)`` (MATLAB parametrisation) with the given L-moments (Hosking et al. 1985).

    Hosking's shape ``kappa = -k`` solves ``t3 = 2 (1 - 3^-kappa)/(1 - 2^-kappa) - 3`` exactly (bisection,
    instead of the 1985 polynomial approximation), then ``sigma = l2 kappa / ((1 - 2^-kappa) Gamma(1+kappa))``
    and ``mu = l1 - sigma (1 - Gamma(1+kappa))/kappa`` (Gumbel limits at ``kappa = 0``).
    """
    l1, l2 = np.asarray(l1, dtype=float), np.asarray(l2, dtype=float)
    kappa = _kappa_from_t3(t3)
    with np.errstate(over="ignore", invalid="ignore"):
        lg = _lngamma1p(kappa)
        alpha = l2 / _one_minus_pow(_LN2, kappa) * np.exp(-lg)
        xi = l1 - alpha * _one_minus_gamma_over_k(kappa, lg)
    return -kappa, alpha, xi


def gev_fit(samples: np.ndarray, method: str = "lmoments", axis: int = -1
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit a GEV per row; MATLAB ``fitdist(..., 'gev')`` parametrisation ``(k, sigma, mu)``.

    ``F(x) = exp(-(1 + k (x - mu)/sigma)^(-1/k))``; Hosking's kappa and scipy's ``c`` are ``-k``.

    Parameters
    ----------
    samples : (..., N) float, NaN entries ignored.
    method : ``"lmoments"`` (default; Hosking et al. 1985 PWM/L-moment estimator, vectorised, the shape solved
        exactly from ``t3``) or ``"mle"`` (``scipy.stats.genextreme.fit`` per row, started from the L-moment
        fit; the authors' MATLAB ``fitdist`` is an MLE; one Python call per row, slow at 70k sites x 21).

    Returns
    -------
    k, sigma, mu : (...,) float64 (``sigma``, ``mu`` in the samples' unit); NaN where fewer than 3 valid
        samples or no spread.
    """
    k, sigma, mu = gev_from_lmoments(*lmoments(samples, axis=axis))
    if method == "lmoments":
        return k, sigma, mu
    if method != "mle":
        raise ValueError("method must be 'lmoments' or 'mle'")
    x = np.moveaxis(np.asarray(samples, dtype=float), axis, -1)
    flat = x.reshape(-1, x.shape[-1])
    k0, s0, m0 = (np.ravel(v) for v in (k, sigma, mu))
    out = np.full((flat.shape[0], 3), np.nan)
    for i, row in enumerate(flat):  # the optional, slow path: one optimisation per row
        row = row[np.isfinite(row)]
        if row.size < 3 or not np.isfinite(s0[i]):
            continue
        c, loc, scale = stats.genextreme.fit(row, -k0[i], loc=m0[i], scale=s0[i])
        out[i] = (-c, scale, loc)
    shape = x.shape[:-1]
    return out[:, 0].reshape(shape), out[:, 1].reshape(shape), out[:, 2].reshape(shape)


def gev_mode_from_params(k: np.ndarray, sigma: np.ndarray, mu: np.ndarray,
                         negative_base: str = "real") -> np.ndarray:
    """Mode of a GEV (MATLAB parametrisation): ``mu + sigma ((1+k)^(-k) - 1)/k``, ``mu`` at ``k = 0``.

    For ``k < -1`` the base ``1+k`` is negative and MATLAB's power is complex; ``negative_base`` says what to
    return there: ``"real"`` (default) the real part of MATLAB's value, ``|1+k|^(-k) cos(pi k)`` for the power,
    which is what the authors' downstream code uses (``real(para_mle)``, ``clm5.md`` item 13); ``"endpoint"``
    the true mode, the upper end of the support ``mu - sigma/k`` (the density increases up to it); ``"nan"``.
    ``k = -1`` gives ``mu + sigma`` in all three.
    """
    k, sigma, mu = (np.asarray(v, dtype=float) for v in (k, sigma, mu))
    base = 1.0 + k
    ks = np.where(k == 0.0, 1.0, k)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        # ((1+k)^(-k) - 1)/k = expm1(-k log(1+k))/k for 1+k > 0
        pos = np.expm1(-k * np.log(np.where(base > 0, base, 1.0))) / ks
        powneg = np.abs(base) ** (-k) * np.cos(np.pi * k)
        neg = (np.where(base < 0, powneg, 0.0) - 1.0) / ks
    z = np.where(k == 0.0, 0.0, np.where(base > 0, pos, np.where(base == 0, 1.0, neg)))
    mode = mu + sigma * z
    if negative_base == "real":
        return mode
    if negative_base == "endpoint":
        return np.where(base < 0, mu - sigma / ks, mode)
    if negative_base == "nan":
        return np.where(base < 0, np.nan, mode)
    raise ValueError("negative_base must be 'real', 'endpoint' or 'nan'")


def gev_mode(samples: np.ndarray, method: str = "lmoments", axis: int = -1,
             negative_base: str = "real") -> np.ndarray:
    """The authors' ``para_es``: the mode of a GEV fitted per row, (..., N) -> (...,) in the samples' unit.

    See :func:`gev_fit` for ``method`` and :func:`gev_mode_from_params` for ``negative_base``.
    """
    k, sigma, mu = gev_fit(samples, method=method, axis=axis)
    return gev_mode_from_params(k, sigma, mu, negative_base=negative_base)
