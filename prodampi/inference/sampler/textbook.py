"""The ``textbook`` kernel: adaptive Metropolis (Haario, Saksman & Tamminen 2001) on a proper posterior.

Target density (normalised parameters ``x`` in (0, 1)^P)::

    pi(x) ∝ 1[x in (0, 1)^P] * exp(Evaluation.loglik(x))

i.e. a uniform prior on the normalised box times the target's likelihood (for soil models: the Gaussian
likelihood of log SOC with SD ``obs_sigma_log``, built by the target).  This is a proper Metropolis–Hastings
kernel (``compas.md`` §11 Q13, "fixed mode"):

* a proposal outside the box is **rejected** (the chain repeats its state; it is *not* redrawn, which would
  change the stationary distribution), and so is a failed or non-finite forward solve
  (``Evaluation.failed`` or a non-finite ``loglik``), which is therefore never a crash;
* acceptance: ``log u < loglik(y) - loglik(x)``, ``u ~ U(0, 1)``;
* every iteration is part of the chain: rejected moves repeat the state (repeats are stored).

Adaptation (Haario 2001).  Iterations are counted per row from 0 (the start state ``X_0``).  The proposal
is ``N(x, C_t)`` with ``C_t = am_initial_sd**2 I`` for ``t <= adapt_start`` and
``C_t = s (Sigma_t + am_epsilon I)``, ``s = am_scale / P`` (2.4**2 / d), afterwards, where ``Sigma_t`` is the
unbiased covariance of the whole history ``X_0 .. X_{t-1}`` (repeats included), kept recursively
(:class:`~prodampi.inference.covariance.RunningMoments`, O(P^2) per step).  **Adaptation stops at the start
of the stored chain**: the history is ``X_0 .. X_W`` (``W = test_iterations``, the warm-up) and the
proposal of the ``iterations`` stored-chain iterations ``W+1 .. W+N`` is frozen at ``C_{W+1}``, so the
stored chain is a time-homogeneous Markov chain with invariant density ``pi`` (Haario's continued
adaptation is only asymptotically valid).  If ``adapt_start >= W`` the chain never adapts.

Refresh schedule: the history's moments take every state, but the states are buffered and merged
(Chan et al.) every ``adapt_every = k`` iterations (constructor, default 10), and the proposal factor is
recomputed at those merges only -- at ``t = t0``, then every ``k`` iterations, and at ``t = W`` -- instead of
every iteration (``k = 1``: Haario's schedule).  A batched Cholesky of 12,288 21x21 matrices costs ~0.2 s,
so an every-iteration refresh would dominate the warm-up; the stored chain is unaffected (its proposal is
frozen from the whole history ``X_0 .. X_W`` either way).

Start states: **dispersed**, ``X_0 = clip(init + h (2 v - 1), 1e-3, 1 - 1e-3)`` with ``v ~ U(0, 1)^P`` the
first ``P`` uniforms of the row stream and ``h = start_halfwidth`` (constructor, default 0.25: for
``init = 0.5`` a uniform start in [0.25, 0.75]^P), so that R-hat can see chains that have not mixed.
``h = 0`` starts every chain at ``init`` (the numbers are drawn anyway: the stream positions do not depend
on ``h``).  A start where the forward model fails is redrawn from the row's stream (up to
:data:`START_TRIES` times), so a chain does not begin in a region it cannot leave.

Random numbers: row ``r = s * C + c`` (site ``s``, chain ``c``) draws from the keyed stream ``keys[s, c]``
(attempt 0; the kernel never restarts a chain): ``P`` uniforms at ``init``, then ``P + 1`` per iteration
(``P`` normals by ``ndtri``, one uniform for the MH test).  No state is shared between rows, so a site's
chains give the same bits whatever batch, slot or restart they run in.

State arrays (``R = S C`` rows, ``D`` stored draws, ``L`` observed layers) -- the checkpoint:

==============  ==================  ===========================================================
``conf_i``      (8,) int64          W, N, thin, D, adapt_start, C, S, adapt_every
``conf_f``      (3,) float64        s = am_scale / P, am_epsilon, am_initial_sd
``site``        (R,) int64          site index of the row
``it``          (R,) int64          iterations done (0 .. W + N)
``x``           (R, P)              current state (normalised)
``ll``          (R,)                its log-likelihood (-inf if it failed)
``pw``, ``soc``  (R, L)             its pointwise log-likelihood and modelled SOC (g C m-3)
``mom_n``...    (R,), (R, P), (R, P, P)  history moments (count, mean, M2)
``chol``        (R, P, P)           lower Cholesky factor of the current proposal covariance
``hbuf``...     (R, k, P), (R,)     history states not yet merged into the moments, and their count
``n_acc``       (R,) int64          accepted moves in the stored chain
``n_fail``      (R,) int64          failed forward solves (whole run); ``n_out``: proposals outside the box
``soc_n``...    (R,), (R, L), (R, L)  Welford moments of the modelled SOC over the stored iterations
``d_x`` ...     (R, D, P), (R, D), (R, D), (R, D, L)  stored draws, lp, accepted, pointwise
==============  ==================  ===========================================================

``soc_mod`` / ``soc_sd`` are accumulated online at **every** stored-chain iteration (not only the thinned
draws), per chain, and pooled over the chains in :meth:`TextbookKernel.finalize`.

``step`` updates the state's arrays in place and returns the same object.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import ndtri

from ...soil.base import STATUS_NAMES
from ..covariance import RunningMoments, cholesky_rows
from ..rng import BlockStreams
from .base import RESULT_FIELDS, SamplerConfig, SamplerState, Target

__all__ = ["TextbookKernel"]

_N_CODES = max(STATUS_NAMES) + 1
_EDGE = 1e-3


def _block_len(p: int, r: int) -> int:
    """Uniforms buffered per row (a multiple of 4): up to 256 iterations' worth, at most ~64 MB for all ``r``
    rows, at least one iteration's worth.  The numbers a row draws do not depend on it (block ``b`` is the
    stream's counter range ``[b block / 4, (b + 1) block / 4)``), only the refill frequency does."""
    n = max(p + 1, min(256 * (p + 1), 2 ** 23 // max(r, 1)))
    return int(4 * -(-n // 4))


def _clean(ev_loglik: np.ndarray, ev_failed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood with failures (flagged or non-finite) set to -inf, and the failure mask."""
    ll = np.asarray(ev_loglik, dtype=np.float64)
    bad = np.asarray(ev_failed, dtype=bool) | ~np.isfinite(ll)
    return np.where(bad, -np.inf, ll), bad


def _ix(rows: np.ndarray, n_rows: int) -> slice | np.ndarray:
    """``rows`` as an index: a slice when it is every row in order (views, no gather / scatter copies)."""
    if rows.size == n_rows:  # rows are sorted and unique
        return slice(None)
    return rows


def _merge_block(a: dict[str, np.ndarray], ix: slice | np.ndarray, xs: np.ndarray) -> None:
    """Merge a block of states ``xs`` (n, T, P) into the history moments ``mom_*`` of rows ``ix``.

    Chan et al.'s pairwise merge, as :meth:`RunningMoments.add_many` (equal to round-off), with the
    block's scatter matrix by batched ``matmul`` and in-place updates when ``ix`` is a slice (the
    ``RunningMoments`` version gathers and scatters the (R, P, P) M2 array and is ~5x slower at R = 12,288).
    """
    nb = xs.shape[1]
    mb = xs.mean(axis=1)
    cb = xs - mb[:, None, :]
    m2b = np.matmul(cb.transpose(0, 2, 1), cb)
    na = a["mom_n"][ix]
    n = na + nb
    d = mb - a["mom_mean"][ix]
    w = na * nb / n
    m2b += w[:, None, None] * (d[:, :, None] * d[:, None, :])
    if isinstance(ix, slice):
        a["mom_m2"] += m2b
        a["mom_mean"] += d * (nb / n)[:, None]
    else:
        a["mom_m2"][ix] += m2b
        a["mom_mean"][ix] += d * (nb / n)[:, None]
    a["mom_n"][ix] = n


#: dispersed starts tried per chain until one where the forward model does not fail
START_TRIES = 50


class TextbookKernel:
    """Adaptive Metropolis, batched over (site, chain) rows in lock-step; see the module docstring.

    Parameters
    ----------
    start_halfwidth : float
        Half-width ``h`` of the dispersed start box around ``config.init`` (normalised units); 0: every chain
        starts at ``init``.
    adapt_every : int
        ``k``: the proposal is refreshed every ``k`` warm-up iterations (see the module docstring); 1 is
        Haario's every-iteration schedule.
    """

    name = "textbook"

    def __init__(self, start_halfwidth: float = 0.25, adapt_every: int = 10) -> None:
        if adapt_every < 1:
            raise ValueError("adapt_every must be >= 1")
        self.start_halfwidth = float(start_halfwidth)
        self.adapt_every = int(adapt_every)

    # ------------------------------------------------------------------ init
    def init(self, config: SamplerConfig, target: Target, keys: np.ndarray) -> SamplerState:
        """Start state for every (site, chain) of ``target``.

        Parameters
        ----------
        config : SamplerConfig
            Uses ``chains, test_iterations (W), iterations (N), draws, adapt_start, init, am_scale,
            am_epsilon, am_initial_sd``.
        target : Target
            ``n_sites`` S, ``n_params`` P, ``n_obs`` L.
        keys : (S, C, 2) uint64
            Chain keys of attempt 0 (:func:`prodampi.inference.rng.stream_keys`).
        """
        keys = np.asarray(keys, dtype=np.uint64)
        if keys.ndim != 3 or keys.shape[2] != 2:
            raise ValueError(f"keys must be (S, C, 2), got {keys.shape}")
        n_s, n_c = keys.shape[:2]
        if n_s != target.n_sites or n_c != config.chains:
            raise ValueError(f"keys {keys.shape[:2]} do not match (n_sites, chains) = "
                             f"({target.n_sites}, {config.chains})")
        p, n_l = int(target.n_params), int(target.n_obs)
        r = n_s * n_c
        w, n, thin, d = int(config.test_iterations), int(config.iterations), config.thin, config.n_draws
        streams = BlockStreams(keys.reshape(r, 2), _block_len(p, r))
        site = np.repeat(np.arange(n_s, dtype=np.int64), n_c)
        v = streams.uniform(None, p)
        x0 = np.clip(config.init + self.start_halfwidth * (2.0 * v - 1.0), _EDGE, 1.0 - _EDGE)
        ev = target.evaluate(x0, site)
        ll, bad = _clean(ev.loglik, ev.failed)
        pw0 = np.array(ev.pointwise, dtype=np.float64).reshape(r, n_l)
        soc0 = np.array(ev.soc, dtype=np.float64).reshape(r, n_l)
        for _ in range(START_TRIES):  # a start where the model fails: draw another (from the row's stream)
            rows = np.flatnonzero(bad)
            if rows.size == 0:
                break
            v = streams.uniform(rows, p)
            x0[rows] = np.clip(config.init + self.start_halfwidth * (2.0 * v - 1.0), _EDGE, 1.0 - _EDGE)
            e2 = target.evaluate(x0[rows], site[rows])
            ll[rows], bad[rows] = _clean(e2.loglik, e2.failed)
            pw0[rows] = np.asarray(e2.pointwise, dtype=np.float64).reshape(rows.size, n_l)
            soc0[rows] = np.asarray(e2.soc, dtype=np.float64).reshape(rows.size, n_l)
        mom = RunningMoments(r, p)
        mom.add(np.arange(r), x0)
        chol = np.zeros((r, p, p))
        chol[:, np.arange(p), np.arange(p)] = config.am_initial_sd
        arrays: dict[str, np.ndarray] = {
            "conf_i": np.array([w, n, thin, d, config.adapt_start, n_c, n_s, self.adapt_every], dtype=np.int64),
            "conf_f": np.array([config.am_scale / p, config.am_epsilon, config.am_initial_sd]),
            "site": site,
            "it": np.zeros(r, dtype=np.int64),
            "x": x0,
            "ll": ll,
            "pw": pw0,
            "soc": soc0,
            "mom_n": mom.n, "mom_mean": mom.mean, "mom_m2": mom.m2,
            "chol": chol,
            "hbuf": np.zeros((r, self.adapt_every, p)),
            "hbuf_n": np.zeros(r, dtype=np.int64),
            "n_acc": np.zeros(r, dtype=np.int64),
            "n_fail": bad.astype(np.int64),
            "n_out": np.zeros(r, dtype=np.int64),
            "soc_n": np.zeros(r, dtype=np.int64),
            "soc_mean": np.zeros((r, n_l)),
            "soc_m2": np.zeros((r, n_l)),
            "d_x": np.full((r, d, p), np.nan),
            "d_lp": np.full((r, d), np.nan),
            "d_acc": np.zeros((r, d), dtype=bool),
            "d_pw": np.full((r, d, n_l), np.nan),
        }
        return SamplerState(self.name, arrays, streams, {"config": config})

    # ------------------------------------------------------------------ step
    def done(self, state: SamplerState) -> np.ndarray:
        """(S,) bool: every chain of the site has run its W + N iterations."""
        a = state.arrays
        w, n, _, _, _, n_c, n_s, _ = (int(v) for v in a["conf_i"])
        return (a["it"] >= w + n).reshape(n_s, n_c).all(axis=1)

    def progress(self, state: SamplerState) -> np.ndarray:
        """(S,) float in [0, 1]: share of the site's W + N iterations done (mean over its chains)."""
        a = state.arrays
        w, n, _, _, _, n_c, n_s, _ = (int(v) for v in a["conf_i"])
        return np.clip(a["it"] / max(w + n, 1), 0.0, 1.0).reshape(n_s, n_c).mean(axis=1)

    def step(self, state: SamplerState, target: Target) -> tuple[SamplerState, dict[str, Any]]:
        """One AM iteration for every unfinished row (one batched ``target.evaluate`` of the in-box
        proposals).  Returns the (mutated) state and ``info`` (see :class:`~.base.Kernel`; also
        ``n_outside``, proposals rejected by the prior bound)."""
        a = state.arrays
        w, n, thin, d_max, t0, _, _, k_ad = (int(v) for v in a["conf_i"])
        s_scale, eps = float(a["conf_f"][0]), float(a["conf_f"][1])
        it = a["it"]
        r_all = it.shape[0]
        act = np.flatnonzero(it < w + n)
        info: dict[str, Any] = {"n_evals": 0, "n_accepted": 0, "n_failed": 0, "n_outside": 0,
                                "failed_status": np.zeros(_N_CODES, dtype=np.int64)}
        if act.size == 0:
            info["done"] = self.done(state)
            return state, info
        full = act.size == r_all
        sel: slice | np.ndarray = slice(None) if full else act
        p = a["x"].shape[1]

        u = state.streams.uniform(None if full else act, p + 1)
        z = ndtri(u[:, :p])
        x = a["x"][sel]
        y = x + np.einsum("rij,rj->ri", a["chol"][sel], z)
        inside = ((y > 0.0) & (y < 1.0)).all(axis=1)
        ll_old = a["ll"][sel]
        ll_new = np.full(act.size, -np.inf)
        i_in = np.flatnonzero(inside)
        ev = None
        bad = np.zeros(0, dtype=bool)
        if i_in.size:
            ev = target.evaluate(y[i_in], a["site"][act[i_in]])
            ll_new[i_in], bad = _clean(ev.loglik, ev.failed)
        with np.errstate(invalid="ignore"):
            acc = np.log(u[:, p]) < ll_new - ll_old  # NaN (-inf - -inf) -> reject
        rows_acc = act[acc]
        if rows_acc.size:
            j = np.flatnonzero(acc[i_in])  # accepted ones among the evaluated
            a["x"][rows_acc] = y[acc]
            a["ll"][rows_acc] = ll_new[acc]
            a["pw"][rows_acc] = np.asarray(ev.pointwise)[j]
            a["soc"][rows_acc] = np.asarray(ev.soc)[j]
        a["n_fail"][act[i_in[bad]]] += 1
        a["n_out"][act[~inside]] += 1
        it_new = it[act] + 1
        it[act] = it_new

        # adaptation through the warm-up: history X_0 .. X_W (buffered, merged every k_ad states), proposal
        # refreshed from X_0 .. X_t at the flushes with t >= t0
        hist = it_new <= w
        if hist.any():
            rows_h = act[hist]
            t_h = it_new[hist]
            slot = a["hbuf_n"][rows_h]
            a["hbuf"][rows_h, slot] = a["x"][rows_h]
            a["hbuf_n"][rows_h] = slot + 1
            flush = (slot + 1 >= k_ad) | (t_h == w) | (t_h == t0)
            rows_f = rows_h[flush]
            if rows_f.size:
                nb = a["hbuf_n"][rows_f]
                for m in np.unique(nb):  # one group when the rows run in lock-step
                    rows_m = rows_f[nb == m]
                    _merge_block(a, _ix(rows_m, r_all), a["hbuf"][_ix(rows_m, r_all), :m])
                a["hbuf_n"][rows_f] = 0
            rows_a = rows_f[t_h[flush] >= max(t0, 1)]
            if rows_a.size:
                ia = _ix(rows_a, r_all)
                nf = a["mom_n"][ia].astype(np.float64)
                cov = a["mom_m2"][ia] * (s_scale / (nf - 1.0))[:, None, None]
                cov[:, np.arange(p), np.arange(p)] += s_scale * eps
                lf, ok = cholesky_rows(cov)
                if ok.all():
                    a["chol"][ia] = lf
                else:  # not positive definite: keep the previous proposal
                    a["chol"][rows_a[ok]] = lf[ok]

        # the stored chain: iterations W+1 .. W+N
        chain = it_new > w
        if chain.any():
            rows_c = act[chain]
            k = it_new[chain] - w
            a["n_acc"][rows_c] += acc[chain]
            sn = a["soc_n"][rows_c] + 1
            sm = a["soc_mean"][rows_c]
            sc = a["soc"][rows_c]
            delta = sc - sm
            sm = sm + delta / sn[:, None]
            a["soc_m2"][rows_c] += delta * (sc - sm)
            a["soc_mean"][rows_c] = sm
            a["soc_n"][rows_c] = sn
            store = (k % thin == 0) & (k // thin <= d_max)
            if store.any():
                rows_s = rows_c[store]
                di = k[store] // thin - 1
                a["d_x"][rows_s, di] = a["x"][rows_s]
                a["d_lp"][rows_s, di] = a["ll"][rows_s]
                a["d_acc"][rows_s, di] = acc[chain][store]
                a["d_pw"][rows_s, di] = a["pw"][rows_s]

        info["n_evals"] = int(i_in.size)
        info["n_accepted"] = int(acc.sum())
        info["n_failed"] = int(bad.sum())
        info["n_outside"] = int((~inside).sum())
        if ev is not None and bad.any():
            info["failed_status"] = np.bincount(np.asarray(ev.status, dtype=np.int64)[bad].clip(0, _N_CODES - 1),
                                                minlength=_N_CODES)
        info["done"] = self.done(state)
        return state, info

    # ------------------------------------------------------------------ results
    def finalize(self, state: SamplerState, target: Target) -> dict[str, np.ndarray]:
        """Per-site results, every :data:`~.base.RESULT_FIELDS` entry.

        ``mean``/``sd`` (ddof 1) and ``chain_mean``/``chain_ss``/``chain_n`` are over the stored draws;
        ``n_last`` = draws of the last chain; ``soc_mod``/``soc_sd`` = mean / SD (ddof 1) of the modelled SOC
        over every stored-chain iteration of all chains; ``chain_rmse`` = sqrt(mean over the valid layers of
        (obs - chain mean profile)^2) and ``chain_r2_legacy`` = 1 - SS_res / SS_tot with SS_tot around the
        mean of the modelled profile (the authors' definition, ``compas.md`` §7.3, but over the valid layers
        only), both NaN without ``target.obs`` (S, L); ``best_chain`` = argmin RMSE (ties: lowest index;
        all NaN: 0); ``restarts`` zeros (the kernel never restarts); ``ok`` False where a chain is unfinished
        or still in a failed state."""
        a = state.arrays
        w, n, _, d, _, n_c, n_s, _ = (int(v) for v in a["conf_i"])
        p, n_l = a["x"].shape[1], a["pw"].shape[1]
        draws = a["d_x"].reshape(n_s, n_c, d, p)
        lp = a["d_lp"].reshape(n_s, n_c, d)
        pooled = draws.reshape(n_s, n_c * d, p)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = pooled.mean(axis=1)
            sd = pooled.std(axis=1, ddof=1) if n_c * d > 1 else np.full((n_s, p), np.nan)
            chain_mean = draws.mean(axis=2)
            chain_ss = ((draws - chain_mean[:, :, None, :]) ** 2).sum(axis=2)
            # SOC over the stored iterations, chains pooled (Chan et al. merge)
            cn = a["soc_n"].reshape(n_s, n_c).astype(np.float64)
            cm = a["soc_mean"].reshape(n_s, n_c, n_l)
            cm2 = a["soc_m2"].reshape(n_s, n_c, n_l)
            ntot = cn.sum(axis=1)
            soc_mod = (cn[:, :, None] * cm).sum(axis=1) / ntot[:, None]
            m2 = (cm2 + cn[:, :, None] * (cm - soc_mod[:, None, :]) ** 2).sum(axis=1)
            soc_sd = np.sqrt(m2 / (ntot - 1.0)[:, None])
            obs = getattr(target, "obs", None)
            rmse = np.full((n_s, n_c), np.nan)
            r2 = np.full((n_s, n_c), np.nan)
            if obs is not None and n_l > 0:
                obs = np.asarray(obs, dtype=np.float64).reshape(n_s, 1, n_l)
                valid = np.isfinite(obs) & np.isfinite(cm)
                nv = valid.sum(axis=2)
                res = np.where(valid, obs - cm, 0.0)
                ss_res = (res ** 2).sum(axis=2)
                mod_mean = np.where(valid, cm, 0.0).sum(axis=2) / nv
                ss_tot = (np.where(valid, obs - mod_mean[:, :, None], 0.0) ** 2).sum(axis=2)
                has = nv > 0
                rmse = np.where(has, np.sqrt(ss_res / nv), np.nan)
                r2 = np.where(has, 1.0 - ss_res / ss_tot, np.nan)
        best = np.argmin(np.where(np.isfinite(rmse), rmse, np.inf), axis=1).astype(np.int64)
        finished = (a["it"] >= w + n).reshape(n_s, n_c)
        stuck = ~np.isfinite(a["ll"]).reshape(n_s, n_c)
        reason = np.full(n_s, "", dtype="<U64")
        reason[stuck.any(axis=1)] = "a chain never left a failed state"
        reason[~finished.all(axis=1)] = "unfinished chains"
        n_acc = a["n_acc"].reshape(n_s, n_c)
        out = {
            "draws": draws.copy(),
            "cost": -lp,
            "lp": lp.copy(),
            "accepted": a["d_acc"].reshape(n_s, n_c, d).copy(),
            "pointwise": a["d_pw"].reshape(n_s, n_c, d, n_l).copy(),
            "n_accepted": n_acc.copy(),
            "acceptance": n_acc / max(n, 1),
            "mean": mean,
            "sd": sd,
            "mode": np.full((n_s, p), np.nan),
            "chain_mean": chain_mean,
            "chain_ss": chain_ss,
            "chain_n": np.full((n_s, n_c), d, dtype=np.int64),
            "n_last": np.full(n_s, d, dtype=np.int64),
            "soc_mod": soc_mod,
            "soc_sd": soc_sd,
            "chain_r2_legacy": r2,
            "chain_rmse": rmse,
            "best_chain": best,
            "restarts": np.zeros((n_s, 3), dtype=np.int64),
            "n_failed_evals": a["n_fail"].reshape(n_s, n_c).sum(axis=1),
            "ok": reason == "",
            "reason": reason,
        }
        assert set(out) == set(RESULT_FIELDS)
        return out
