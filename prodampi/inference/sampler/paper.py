"""The ``paper`` kernel: the authors' site-level MCMC as coded, batched over sites in lock-step.

Reference: ``compas.md`` §7.1-7.4 (the CLM5 differences in ``clm5.md`` §7), quirks Q13-Q15.  One row per
site; a site's chains run **sequentially** (chain 0, then 1, then 2) as in the authors' ``while iparallel``
loop, so ``sigma``, the formal-restart counter ``c2``, the ``is_second_time`` flag and ``coef`` carry over
between a site's chains.  Every row has its own phase (test / formal / done), counters and stream, and each
:meth:`PaperKernel.step` makes exactly one batched ``target.evaluate`` for the rows that propose.

Per iteration of a row (within-phase counter ``t = 1, 2, ...``):

* proposal: test run ``kp + (U - 0.5) / a`` (U uniform (P,)); formal run ``kp + L z`` with ``L L^T = C``,
  ``z`` standard normal.  The whole vector is redrawn until strictly inside (0, 1), looping over the rows
  still outside, at most ``redraw_limit`` times (then an uncounted chain restart: replaces the authors'
  60-s wall-clock guard, which only covered the formal run before its first acceptance);
* cost: ``J_new = Evaluation.cost``; a failed (or non-finite) evaluation gives ``J_new = J_old + penalty``
  and ``dJ = penalty``, or with ``failure_dj="stale"`` in the formal run the previous iteration's ``dJ``
  (the authors' CLM5 bug, ``clm5.md`` §7);
* tempered acceptance ``u < min(1, (t + 2) ** -dJ)``;
* the current state is recorded (repeats included) into :class:`~prodampi.inference.covariance.RunningMoments`.

Test run (``n1 = test_iterations``): after ``n1 - 1`` iterations, fewer than ``test_min_accept``
acceptances and ``is_second_time`` off -> counters and records reset, ``a *= test_width_growth``, state
kept (the *same* chain attempt: no new stream); the third such restart sets ``is_second_time`` (never
reset) and starts a fresh chain attempt from ``kp0`` with ``a = test_width``.  After ``n1`` iterations:
``C = (sigma / P) cov(test states)``; the formal run starts from the last test state with ``J_old = J0``.

Formal run (``n2 = iterations``): for ``t > adapt_start`` ``C = (sigma / P) cov(formal states 1..t)``
every iteration.  The kernel keeps the Cholesky factor of the running M2 (factorised once at
``t = adapt_start + 1``, then updated by rank 1 per step, :func:`~prodampi.inference.covariance.chol_update_t`)
and scales it by ``sqrt(s / (n - 1))``: the same matrix as refactorising ``s cov`` to round-off (tested).
After ``n2 - 1`` iterations ``coef`` (accepted / t at the last acceptance, never reset, as the authors'
workspace variable) is checked: undefined -> the site fails; ``< accept_low`` -> ``sigma *= sigma_down``,
``> accept_high`` -> ``sigma *= sigma_up``, and the chain restarts (test run included), ``c2 += 1``;
``c2 > formal_max_restarts`` -> the site fails.  A non positive-definite ``C`` restarts the chain uncounted;
more than ``max_attempts`` uncounted restarts in one chain fail the site.

Streams: the row's stream is keyed by ``keys[s, c]`` for chain ``c``, attempt 0; every fresh chain attempt
(second-time restart, formal-run restart, non-PD / redraw-limit restart) rekeys it with
:func:`~prodampi.inference.rng.attempt_keys` so its numbers depend only on (site, chain, attempt).  Each
iteration draws ``P + 1`` uniforms (proposal, then the acceptance ``u``; formal proposals are ``ndtri`` of
the first ``P``).  Redraws come in rounds of 1, 2, 4, ... candidate vectors per row still outside (``P``
numbers each, the first inside candidate in stream order wins): the same law as one-at-a-time redraws with
few Python iterations; a row's schedule depends only on its own history.  The redraw count is the number of
candidates examined.

Not the authors' (documented deviations): a singular but PSD ``C`` (MATLAB ``mvnrnd`` would sample in its
subspace) counts as not positive definite; the redraw guard applies in both phases at every iteration; an
evaluation whose cost is not finite counts as failed.  ``mom_m2`` is not updated for adapted formal rows
while every proposing row is adapted (they use the factor ``lt``); it is stale, unused, for them.

Storage: the formal states every ``thin`` iterations (repeats included) with J, ``-J``, the acceptance flag
and the current state's pointwise terms -> ``draws`` (S, C, D, P).  Accepted formal states and their
modelled SOC (the authors' ``soc_mod_trace``: the last *successful* profile) go into a per-chain buffer of
``accepted_capacity``; when it fills, every second entry is kept and the stride doubles (recorded), so the
``paper`` estimators are exact up to ``accepted_capacity`` acceptances and computed from an evenly thinned
subset beyond.  At each chain's end its estimator statistics are reduced (burn-in = first half of the
accepted states, ``compas.md`` §7.3) so only one chain's buffer is held.

State arrays (``S`` sites, ``C`` chains, ``P`` params, ``L`` obs layers, ``D`` draws, ``K`` capacity):
see :meth:`PaperKernel.init`; all are numpy arrays, so ``SamplerState.to_arrays`` is the whole checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import numpy as np
from scipy.special import ndtri

from ..covariance import RunningMoments, chol_update_t, cholesky_rows
from ..rng import BlockStreams, attempt_keys
from .base import RESULT_FIELDS, SamplerConfig, SamplerState, Target

__all__ = ["PaperKernel", "REASONS"]

_TEST, _FORMAL, _DONE = 0, 1, 2
_N_STATUS = 8
#: failure reason codes -> text (format fields from the config)
REASONS: dict[int, str] = {
    0: "",
    1: "initial evaluation at kp0 failed",
    2: "formal-run restarts > {formal_max_restarts}",
    3: "no formal-run acceptance (coef undefined)",
    4: "uncounted restarts > {max_attempts} (last: covariance not positive definite)",
    5: "uncounted restarts > {max_attempts} (last: bound-redraw limit)",
}


def _config_bytes(cfg: SamplerConfig) -> np.ndarray:
    return np.frombuffer(json.dumps(asdict(cfg), sort_keys=True).encode(), dtype=np.uint8).copy()


def _mround_half(n: np.ndarray) -> np.ndarray:
    """MATLAB ``round(n / 2)`` for integers n >= 0 (half away from zero)."""
    return (np.asarray(n, dtype=np.int64) + 1) // 2


def _gev_mode(samples: np.ndarray) -> np.ndarray:
    """GEV mode per parameter of ``samples`` (P, N); NaN when the diagnostics module is absent."""
    try:
        from ..diagnostics import gev_mode
    except ImportError:  # written in parallel; absent -> NaN (documented)
        return np.full(samples.shape[0], np.nan)
    if samples.shape[-1] < 3:
        return np.full(samples.shape[0], np.nan)
    return np.asarray(gev_mode(samples, method="lmoments"), dtype=np.float64)


class PaperKernel:
    """The authors' MCMC (``compas.md`` §7) as a batched lock-step kernel; see the module docstring."""

    name = "paper"

    # ------------------------------------------------------------------ protocol
    def init(self, config: SamplerConfig, target: Target, keys: np.ndarray) -> SamplerState:
        """Start state: one row per site, chain 0, attempt 0; evaluates ``J0 = J(kp0)`` once per site.

        Parameters
        ----------
        config : SamplerConfig
        target : Target with ``n_sites`` S, ``n_params`` P, ``n_obs`` L
        keys : (S, C, 2) uint64 attempt-0 chain keys
        """
        if config.failure_dj not in ("penalty", "stale"):
            raise ValueError(f"failure_dj must be 'penalty' or 'stale', not {config.failure_dj!r}")
        S, P, L = int(target.n_sites), int(target.n_params), int(target.n_obs)
        C, D = int(config.chains), int(config.n_draws)
        K = max(2, int(config.accepted_capacity) // 2 * 2)
        keys = np.asarray(keys, dtype=np.uint64).reshape(S, C, 2)
        rows = np.arange(S)
        kp0 = np.full((S, P), float(config.init))
        ev = target.evaluate(kp0.copy(), rows)
        failed0 = np.asarray(ev.failed, dtype=bool) | ~np.isfinite(ev.cost)
        nan = np.nan
        A: dict[str, np.ndarray] = {
            "config_json": _config_bytes(config),
            "keys0": keys.copy(),
            "kp0": kp0,
            "J0": np.where(failed0, nan, ev.cost).astype(np.float64),
            "soc0": np.array(ev.soc, dtype=np.float64).reshape(S, L),
            "pw0": np.array(ev.pointwise, dtype=np.float64).reshape(S, L),
            # per-row machine state
            "phase": np.where(failed0, _DONE, _TEST).astype(np.int8),
            "chain": np.zeros(S, np.int64),
            "attempt": np.zeros(S, np.int64),
            "t": np.zeros(S, np.int64),
            "kp": kp0.copy(),
            "J": np.where(failed0, nan, ev.cost).astype(np.float64),
            "soc": np.array(ev.soc, dtype=np.float64).reshape(S, L),
            "soc_last": np.array(ev.soc, dtype=np.float64).reshape(S, L),
            "pw": np.array(ev.pointwise, dtype=np.float64).reshape(S, L),
            "a": np.full(S, float(config.test_width)),
            "c1": np.zeros(S, np.int64),
            "second": np.zeros(S, bool),
            "sigma": np.full(S, float(config.sigma0)),
            "c2": np.zeros(S, np.int64),
            "uncounted": np.zeros(S, np.int64),
            "n_test_restarts": np.zeros(S, np.int64),
            "n_uncounted": np.zeros(S, np.int64),
            "n_acc": np.zeros(S, np.int64),
            "coef": np.full(S, nan),
            "dj_prev": np.zeros(S),
            "n_failed": np.zeros(S, np.int64),
            "ok": ~failed0,
            "reason": np.where(failed0, 1, 0).astype(np.int64),
            # covariance: running moments of the current phase, proposal factor (row-last) and scale
            "mom_n": np.zeros(S, np.int64),
            "mom_mean": np.zeros((S, P)),
            "mom_m2": np.zeros((S, P, P)),
            "lt": np.broadcast_to(np.eye(P)[:, :, None], (P, P, S)).copy(),
            "lscale": np.zeros(S),
            # stored chain
            "draws": np.full((S, C, D, P), nan),
            "d_cost": np.full((S, C, D), nan),
            "d_acc": np.zeros((S, C, D), bool),
            "d_pw": np.full((S, C, D, L), nan),
            # accepted buffer of the current chain
            "buf_kp": np.full((S, K, P), nan),
            "buf_soc": np.full((S, K, L), nan),
            "buf_m": np.zeros(S, np.int64),
            "buf_stride": np.ones(S, np.int64),
            # per-chain reductions
            "ch_nacc": np.zeros((S, C), np.int64),
            "ch_n": np.zeros((S, C), np.int64),
            "ch_stride": np.zeros((S, C), np.int64),
            "ch_mean": np.full((S, C, P), nan),
            "ch_sd": np.full((S, C, P), nan),
            "ch_ss": np.full((S, C, P), nan),
            "ch_mode": np.full((S, C, P), nan),
            "ch_soc_mean": np.full((S, C, L), nan),
            "ch_soc_sd": np.full((S, C, L), nan),
        }
        block = max(4, -(-8 * (P + 1) // 4) * 4, 2048)
        streams = BlockStreams(keys[:, 0, :], block=block)
        state = SamplerState(self.name, A, streams, {"config": config})
        return state

    def done(self, state: SamplerState) -> np.ndarray:
        """(S,) bool: every chain of the site finished, or the site failed."""
        return state.arrays["phase"] == _DONE

    def progress(self, state: SamplerState) -> np.ndarray:
        """(S,) float in [0, 1]: share of the site's planned iterations done (restarts make it go back)."""
        A, cfg = state.arrays, self._cfg(state)
        n1, n2, c = cfg.test_iterations, cfg.iterations, cfg.chains
        within = np.where(A["phase"] == _FORMAL, n1 + A["t"], A["t"])
        frac = (A["chain"] * (n1 + n2) + np.minimum(within, n1 + n2)) / max(c * (n1 + n2), 1)
        return np.where(A["phase"] == _DONE, 1.0, np.clip(frac, 0.0, 1.0))

    def step(self, state: SamplerState, target: Target) -> tuple[SamplerState, dict[str, Any]]:
        """One iteration for every unfinished row (one batched ``target.evaluate``); see the module doc."""
        A, cfg, st = state.arrays, self._cfg(state), state.streams
        phase = A["phase"]
        S, P = A["kp"].shape
        info: dict[str, Any] = {"n_evals": 0, "n_accepted": 0, "n_failed": 0,
                                "failed_status": np.zeros(_N_STATUS, np.int64)}
        act = np.flatnonzero(phase != _DONE)
        if act.size == 0:
            info["done"] = self.done(state)
            return state, info
        all_rows = act.size == S
        u = st.uniform(act, P + 1)
        u_acc = u[:, P]
        is_f = phase[act] == _FORMAL
        prop = self._propose(A, act, is_f, u[:, :P], 4 * int(is_f.sum()) > S)
        # bound redraws: whole vector, only the rows still outside
        out = np.flatnonzero(((prop <= 0.0) | (prop >= 1.0)).any(axis=1))
        n_cand, rnd = 1, 0
        while out.size and n_cand <= cfg.redraw_limit:
            # k candidate vectors at once per row still outside; the first inside one (stream order) wins:
            # the same law as one-at-a-time redraws, and a row's schedule depends only on its own history
            k = min(1 << rnd, max(1, st.block // P), cfg.redraw_limit + 1 - n_cand)
            n_cand += k
            rnd += 1
            uu = st.uniform(act[out], k * P).reshape(out.size, k, P)
            cand = self._propose(A, np.repeat(act[out], k), np.repeat(is_f[out], k),
                                 uu.reshape(-1, P), False).reshape(out.size, k, P)
            inside = ((cand > 0.0) & (cand < 1.0)).all(axis=2)
            found = inside.any(axis=1)
            first = np.argmax(inside, axis=1)
            prop[out[found]] = cand[found, first[found]]
            out = out[~found]
        if out.size:  # redraw limit: uncounted restart, no evaluation this step
            keep = np.ones(act.size, bool)
            keep[out] = False
            self._restart(A, st, act[out], cfg, uncounted=5)
            act, prop, u_acc, is_f = act[keep], prop[keep], u_acc[keep], is_f[keep]
            all_rows = False
            if act.size == 0:
                info["done"] = self.done(state)
                return state, info

        ev = target.evaluate(prop, act)
        failed = np.asarray(ev.failed, dtype=bool) | ~np.isfinite(ev.cost)
        J_old = A["J"][act]
        J_new = np.where(failed, J_old + cfg.failure_penalty, ev.cost)
        dJ = J_new - J_old
        if cfg.failure_dj == "stale":
            stale = failed & is_f
            dJ = np.where(stale, A["dj_prev"][act], dJ)
            A["dj_prev"][act] = np.where(stale, A["dj_prev"][act], dJ)
        t = A["t"][act] + 1
        with np.errstate(over="ignore", invalid="ignore"):
            acc = u_acc < np.exp(-dJ * np.log(t + 2.0))
        ok_ev = ~failed
        if ok_ev.any():  # the authors' optimize_profile_soc: the last successful profile
            A["soc_last"][act[ok_ev]] = ev.soc[ok_ev]
        ra = act[acc]
        A["kp"][ra] = prop[acc]
        A["J"][ra] = J_new[acc]
        A["pw"][ra] = ev.pointwise[acc]
        A["soc"][ra] = A["soc_last"][ra]
        A["n_acc"][ra] += 1
        A["t"][act] = t
        A["n_failed"][act] += failed
        info["n_evals"] = int(act.size)
        info["n_accepted"] = int(acc.sum())
        info["n_failed"] = int(failed.sum())
        if failed.any():
            codes = np.clip(np.asarray(ev.status)[failed].astype(np.int64), 0, _N_STATUS - 1)
            info["failed_status"] = np.bincount(codes, minlength=_N_STATUS)

        # formal-run bookkeeping before recording: coef, accepted buffer, stored draws
        fa = acc & is_f
        if fa.any():
            rf = act[fa]
            A["coef"][rf] = A["n_acc"][rf] / A["t"][rf]
            self._buffer_add(A, rf)
        self._record_draws(A, act[is_f], acc[is_f], cfg)

        # record the current state into the running moments (and the factor for adapted formal rows)
        mom = RunningMoments.from_arrays(A["mom_n"], A["mom_mean"], A["mom_m2"])
        adapt = np.zeros(S, bool)
        adapt[act[is_f & (t > cfg.adapt_start + 1)]] = True
        x = None
        if adapt.any():
            x = (A["kp"] - mom.mean).T  # (P, S) delta before the update
        # M2 is needed in the test run and up to t = adapt_start + 1; adapted rows keep the factor instead,
        # so when every proposing row is adapted M2 is skipped (it is then stale for them, and unused)
        need_m2 = not adapt[act].all()
        if all_rows:
            mom.add_masked(None, A["kp"], second_moment=need_m2)
        else:
            mask = np.zeros(S, bool)
            mask[act] = True
            mom.add_masked(mask, A["kp"], second_moment=need_m2)
        if x is not None:
            n = mom.n.astype(np.float64)
            w = np.where(adapt, np.sqrt(np.maximum(n - 1.0, 0.0) / np.maximum(n, 1.0)), 0.0)
            x *= w
            chol_update_t(A["lt"], x)
            ra = np.flatnonzero(adapt)
            A["lscale"][ra] = np.sqrt(A["sigma"][ra] / P / (n[ra] - 1.0))
        first = act[is_f & (t == cfg.adapt_start + 1)]
        if first.size:
            self._factor(A, st, first, cfg, P)

        # phase ends and restarts (rare events, handled per event over the rows concerned)
        n1, n2 = cfg.test_iterations, cfg.iterations
        te = act[~is_f]
        tt = A["t"][te]
        chk = te[(tt == n1 - 1) & ~A["second"][te] & (A["n_acc"][te] < cfg.test_min_accept)]
        if chk.size:
            self._width_restart(A, st, chk, cfg)
        tr = te[tt == n1]
        if tr.size:
            self._to_formal(A, st, tr, cfg, P)
        fo = act[is_f]
        tf = A["t"][fo]
        if n2 > 1:
            self._rate_check(A, st, fo[(tf == n2 - 1) & (A["phase"][fo] == _FORMAL)], cfg)
        fin = fo[(tf >= n2) & (A["phase"][fo] == _FORMAL)]
        if fin.size:
            self._next_chain(A, st, fin, cfg)
        info["done"] = self.done(state)
        return state, info

    # ------------------------------------------------------------------ pieces of a step
    @staticmethod
    def _cfg(state: SamplerState) -> SamplerConfig:
        cfg = state.meta.get("config")
        if cfg is None:
            cfg = SamplerConfig(**json.loads(state.arrays["config_json"].tobytes().decode()))
            state.meta["config"] = cfg
        return cfg

    @staticmethod
    def _propose(A: dict, rows: np.ndarray, is_f: np.ndarray, u: np.ndarray, all_rows: bool) -> np.ndarray:
        """Proposals for ``rows`` from uniforms ``u`` (n, P); ``all_rows``: rows are unique and many, so the
        formal mat-vec runs on whole arrays (no gather).  Both paths sum in the same order (same bits)."""
        kp = A["kp"][rows]
        prop = np.empty_like(kp)
        te = ~is_f
        if te.any():
            prop[te] = kp[te] + (u[te] - 0.5) / A["a"][rows[te]][:, None]
        if is_f.any():
            rf = rows[is_f]
            lt = A["lt"]
            P = lt.shape[0]
            if all_rows:  # unique rows, most of the batch: whole-array triangular mat-vec, zeros elsewhere
                z = np.zeros((P, lt.shape[2]))
                z[:, rf] = ndtri(u[is_f]).T
                y = np.zeros_like(z)
                for j in range(P):
                    y[j:] += lt[j:, j] * z[j]
                step = y[:, rf].T
            else:  # the same summation order on a gathered subset: identical bits per row
                ls = lt[:, :, rf]
                z = ndtri(u[is_f]).T
                y = np.zeros_like(z)
                for j in range(P):
                    y[j:] += ls[j:, j] * z[j]
                step = y.T
            prop[is_f] = kp[is_f] + A["lscale"][rf][:, None] * step
        return prop

    @staticmethod
    def _buffer_add(A: dict, rows: np.ndarray) -> None:
        """Accepted formal state of ``rows`` into the chain buffer (thinned by the row's stride)."""
        i = A["n_acc"][rows] - 1  # 0-based accepted index
        take = rows[i % A["buf_stride"][rows] == 0]
        if take.size == 0:
            return
        m = A["buf_m"][take]
        A["buf_kp"][take, m] = A["kp"][take]
        A["buf_soc"][take, m] = A["soc"][take]
        A["buf_m"][take] = m + 1
        K = A["buf_kp"].shape[1]
        for r in take[m + 1 == K]:  # full: keep every 2nd, double the stride
            A["buf_kp"][r, :K // 2] = A["buf_kp"][r, 0::2].copy()
            A["buf_soc"][r, :K // 2] = A["buf_soc"][r, 0::2].copy()
            A["buf_kp"][r, K // 2:] = np.nan
            A["buf_soc"][r, K // 2:] = np.nan
            A["buf_m"][r] = K // 2
            A["buf_stride"][r] *= 2

    @staticmethod
    def _record_draws(A: dict, rows: np.ndarray, acc: np.ndarray, cfg: SamplerConfig) -> None:
        """Stored chain: the formal state of ``rows`` after every ``thin``-th iteration (repeats included)."""
        if rows.size == 0:
            return
        t = A["t"][rows]
        thin, D = cfg.thin, A["draws"].shape[2]
        sel = (t % thin == 0) & (t // thin <= D)
        if not sel.any():
            return
        r = rows[sel]
        d = t[sel] // thin - 1
        c = A["chain"][r]
        A["draws"][r, c, d] = A["kp"][r]
        A["d_cost"][r, c, d] = A["J"][r]
        A["d_acc"][r, c, d] = acc[sel]
        A["d_pw"][r, c, d] = A["pw"][r]

    @staticmethod
    def _factor(A: dict, st: BlockStreams, rows: np.ndarray, cfg: SamplerConfig, P: int) -> bool:
        """Factor ``M2`` of the running moments for ``rows`` (proposal factor); non-PD -> uncounted restart."""
        L, ok = cholesky_rows(A["mom_m2"][rows])
        n = A["mom_n"][rows].astype(np.float64)
        good = rows[ok]
        A["lt"][:, :, good] = L[ok].transpose(1, 2, 0)
        A["lscale"][good] = np.sqrt(A["sigma"][good] / P / (n[ok] - 1.0))
        bad = rows[~ok]
        if bad.size:
            PaperKernel._restart(A, st, bad, cfg, uncounted=4)
        return bool(ok.all())

    @staticmethod
    def _reset_moments(A: dict, rows: np.ndarray) -> None:
        A["mom_n"][rows] = 0
        A["mom_mean"][rows] = 0.0
        A["mom_m2"][rows] = 0.0

    @staticmethod
    def _width_restart(A: dict, st: BlockStreams, rows: np.ndarray, cfg: SamplerConfig) -> None:
        """< test_min_accept acceptances after n1 - 1 test iterations: the same attempt goes on with
        ``a *= test_width_growth`` (narrower steps); the ``test_max_restarts``-th sets ``is_second_time``."""
        A["c1"][rows] += 1
        A["n_test_restarts"][rows] += 1
        A["t"][rows] = 0
        A["n_acc"][rows] = 0
        A["a"][rows] *= cfg.test_width_growth
        PaperKernel._reset_moments(A, rows)
        third = rows[A["c1"][rows] >= cfg.test_max_restarts]
        if third.size:  # is_second_time: a fresh chain attempt from kp0
            A["second"][third] = True
            PaperKernel._restart(A, st, third, cfg, uncounted=0)

    @staticmethod
    def _to_formal(A: dict, st: BlockStreams, rows: np.ndarray, cfg: SamplerConfig, P: int) -> None:
        """End of the test run: C from the test states, J_old <- J0, counters reset."""
        L, ok = cholesky_rows(A["mom_m2"][rows])
        good, bad = rows[ok], rows[~ok]
        if bad.size:
            PaperKernel._restart(A, st, bad, cfg, uncounted=4)
        if good.size == 0:
            return
        n = A["mom_n"][good].astype(np.float64)
        A["lt"][:, :, good] = L[ok].transpose(1, 2, 0)
        A["lscale"][good] = np.sqrt(A["sigma"][good] / P / (n - 1.0))
        A["phase"][good] = _FORMAL
        A["t"][good] = 0
        A["n_acc"][good] = 0
        A["J"][good] = A["J0"][good]
        A["buf_m"][good] = 0
        A["buf_stride"][good] = 1
        PaperKernel._reset_moments(A, good)

    @staticmethod
    def _rate_check(A: dict, st: BlockStreams, rows: np.ndarray, cfg: SamplerConfig) -> None:
        """Acceptance-rate control after n2 - 1 formal iterations (``coef`` at the last acceptance)."""
        if rows.size == 0:
            return
        coef = A["coef"][rows]
        undef = rows[np.isnan(coef)]
        if undef.size:
            PaperKernel._fail(A, undef, 3)
        low = rows[coef < cfg.accept_low]
        high = rows[coef > cfg.accept_high]
        A["sigma"][low] *= cfg.sigma_down
        A["sigma"][high] *= cfg.sigma_up
        redo = np.sort(np.concatenate([low, high]))
        if redo.size:
            A["c2"][redo] += 1
            over = redo[A["c2"][redo] > cfg.formal_max_restarts]
            PaperKernel._fail(A, over, 2)
            redo = redo[A["c2"][redo] <= cfg.formal_max_restarts]
            PaperKernel._restart(A, st, redo, cfg, uncounted=0)

    @staticmethod
    def _fail(A: dict, rows: np.ndarray, code: int) -> None:
        if rows.size:
            A["phase"][rows] = _DONE
            A["ok"][rows] = False
            A["reason"][rows] = code

    @staticmethod
    def _start_chain(A: dict, st: BlockStreams, rows: np.ndarray, cfg: SamplerConfig) -> None:
        """A fresh chain attempt from kp0 for ``rows`` (chain and attempt already set): rekey, reset."""
        c = A["chain"][rows]
        st.rekey(rows, attempt_keys(A["keys0"][rows, c], A["attempt"][rows]))
        A["phase"][rows] = _TEST
        A["t"][rows] = 0
        A["kp"][rows] = A["kp0"][rows]
        A["J"][rows] = A["J0"][rows]
        A["soc"][rows] = A["soc0"][rows]
        A["pw"][rows] = A["pw0"][rows]
        A["a"][rows] = cfg.test_width
        A["c1"][rows] = 0
        A["n_acc"][rows] = 0
        A["buf_m"][rows] = 0
        A["buf_stride"][rows] = 1
        PaperKernel._reset_moments(A, rows)

    @staticmethod
    def _restart(A: dict, st: BlockStreams, rows: np.ndarray, cfg: SamplerConfig, uncounted: int) -> None:
        """Abandon the current attempt of ``rows``' chain; ``uncounted``: 0 (counted restart) or the reason
        code (4 non-PD, 5 redraw limit) charged against ``max_attempts``."""
        if rows.size == 0:
            return
        if uncounted:
            A["uncounted"][rows] += 1
            A["n_uncounted"][rows] += 1
            over = rows[A["uncounted"][rows] > cfg.max_attempts]
            PaperKernel._fail(A, over, uncounted)
            rows = rows[A["uncounted"][rows] <= cfg.max_attempts]
            if rows.size == 0:
                return
        A["attempt"][rows] += 1
        PaperKernel._start_chain(A, st, rows, cfg)

    def _next_chain(self, A: dict, st: BlockStreams, rows: np.ndarray, cfg: SamplerConfig) -> None:
        """The formal run of ``rows`` finished: reduce the chain, then start the next one (or finish)."""
        self._reduce_chain(A, rows)
        C = A["keys0"].shape[1]
        last = A["chain"][rows] + 1 >= C
        A["phase"][rows[last]] = _DONE  # ``chain`` stays C - 1
        nxt = rows[~last]
        if nxt.size:
            A["chain"][nxt] += 1
            A["attempt"][nxt] = 0
            A["uncounted"][nxt] = 0
            self._start_chain(A, st, nxt, cfg)

    @staticmethod
    def _reduce_chain(A: dict, rows: np.ndarray) -> None:
        """Per-chain estimator statistics from the accepted buffer (``compas.md`` §7.3)."""
        for r in rows:
            c = int(A["chain"][r])
            n = int(A["n_acc"][r])
            stride = int(A["buf_stride"][r])
            m = int(A["buf_m"][r])
            idx = np.arange(m) * stride  # 0-based accepted indices held
            h = int(_mround_half(n))
            A["ch_nacc"][r, c] = n
            A["ch_stride"][r, c] = stride
            n_est = n - h
            A["ch_n"][r, c] = n_est
            xs = A["buf_kp"][r, :m][idx >= h]  # accepted round(n/2)+1 .. n (1-based)
            if xs.shape[0] >= 1:
                mu = xs.mean(axis=0)
                ss = ((xs - mu) ** 2).sum(axis=0)
                A["ch_mean"][r, c] = mu
                if xs.shape[0] >= 2:
                    A["ch_sd"][r, c] = np.sqrt(ss / (xs.shape[0] - 1))
                    A["ch_ss"][r, c] = ss if stride == 1 else ss * (n_est - 1) / (xs.shape[0] - 1)
                A["ch_mode"][r, c] = _gev_mode(xs.T)
            if n >= 1:
                ys = A["buf_soc"][r, :m][idx >= h - 1]  # accepted round(n/2) .. n for the profile
                A["ch_soc_mean"][r, c] = ys.mean(axis=0)
                if ys.shape[0] >= 2:
                    A["ch_soc_sd"][r, c] = ys.std(axis=0, ddof=1)

    # ------------------------------------------------------------------ results
    def finalize(self, state: SamplerState, target: Target) -> dict[str, np.ndarray]:
        """Per-site results (every :data:`RESULT_FIELDS` entry).

        The legacy R^2 and RMSE need the observations: ``target.obs`` (S, L) g C m-3 (NaN padded); without
        it (analytic targets) they are NaN and the best chain is chain 0.  The RMSE divides by
        ``target.n_layers_raw`` (S,) (the authors' pre-cleaning layer count) when the target has it, else by
        the number of finite observations.  Sites that failed get ``best_chain = -1`` and NaN estimators.
        """
        A, cfg = state.arrays, self._cfg(state)
        S, C, D, P = A["draws"].shape
        L = A["soc0"].shape[1]
        ok = A["ok"].copy()
        obs = getattr(target, "obs", None)
        soc_m = A["ch_soc_mean"]
        if obs is not None and L > 0:
            obs = np.asarray(obs, dtype=np.float64).reshape(S, 1, L)
            valid = np.isfinite(obs)
            nval = valid.sum(axis=2)
            nlr = getattr(target, "n_layers_raw", None)
            nl = (np.asarray(nlr, dtype=np.float64).reshape(S, 1) if nlr is not None
                  else nval.astype(np.float64))
            with np.errstate(invalid="ignore", divide="ignore"):
                mm = np.where(valid, soc_m, 0.0).sum(axis=2) / nval
                ss_tot = np.where(valid, (soc_m - mm[..., None]) ** 2, 0.0).sum(axis=2)
                ss_res = np.where(valid, (soc_m - obs) ** 2, 0.0).sum(axis=2)
                r2 = 1.0 - ss_res / ss_tot
                rmse = np.sqrt(ss_res / nl)
        else:
            r2 = np.full((S, C), np.nan)
            rmse = np.full((S, C), np.nan)
        best = np.argmin(np.where(np.isnan(rmse), np.inf, rmse), axis=1).astype(np.int64)
        best = np.where(ok, best, -1)
        bi = np.maximum(best, 0)
        rr = np.arange(S)
        sel = ok[:, None]
        res: dict[str, np.ndarray] = {
            "draws": A["draws"].copy(),
            "cost": A["d_cost"].copy(),
            "lp": -A["d_cost"],
            "accepted": A["d_acc"].copy(),
            "pointwise": A["d_pw"].copy(),
            "n_accepted": A["ch_nacc"].copy(),
            "acceptance": A["ch_nacc"] / float(cfg.iterations),
            "mean": np.where(sel, A["ch_mean"][rr, bi], np.nan),
            "sd": np.where(sel, A["ch_sd"][rr, bi], np.nan),
            "mode": np.where(sel, A["ch_mode"][rr, bi], np.nan),
            "chain_mean": A["ch_mean"].copy(),
            "chain_ss": A["ch_ss"].copy(),
            "chain_n": A["ch_n"].copy(),
            "n_last": A["ch_nacc"][:, C - 1].copy(),
            "soc_mod": np.where(sel, soc_m[rr, bi], np.nan),
            "soc_sd": np.where(sel, A["ch_soc_sd"][rr, bi], np.nan),
            "chain_r2_legacy": r2,
            "chain_rmse": rmse,
            "best_chain": best,
            "restarts": np.stack([A["n_test_restarts"], A["c2"], A["n_uncounted"]], axis=1).astype(np.int64),
            "n_failed_evals": A["n_failed"].copy(),
            "ok": ok,
            "reason": np.array([REASONS[int(k)].format(**asdict(cfg)) for k in A["reason"]], dtype=str),
        }
        assert set(res) == set(RESULT_FIELDS)
        return res
