"""The ``paper`` kernel (authors' MCMC as coded) on small analytic targets.

References are independent: a scalar re-implementation of the first iterations from the row's stream, numpy.cov
of the stored formal history, recomputation of the estimators from the stored chain, and bit comparisons
between runs (checkpoint round-trip, batch composition, a failing neighbour).
"""

from __future__ import annotations

import numpy as np

from prodampi.inference.rng import BlockStreams
from prodampi.inference.sampler import RESULT_FIELDS, get_kernel
from prodampi.inference.sampler.base import Evaluation, SamplerConfig, SamplerState

SHORT = dict(test_iterations=300, iterations=600, adapt_start=100, draws=600, max_attempts=3)


class Quad:
    """cost = scale * sum((kp - c_s)^2); soc_l = 100 (1 + kp_l) (g C m-3) at L layers; obs per site."""

    def __init__(self, c, scale=5.0, L=3, fail_sites=(), fail_region=None, fail_except_kp0=()):
        self.c = np.asarray(c, dtype=float)
        self.n_sites, self.n_params = self.c.shape
        self.n_obs = L
        self.scale = scale
        self.fail_sites = set(fail_sites)
        self.fail_except_kp0 = set(fail_except_kp0)
        self.fail_region = fail_region
        rng = np.random.default_rng(42)
        self.obs = 100.0 * (1.0 + self.c[:, np.arange(L) % self.n_params]) + rng.normal(0, 5, (self.n_sites, L))
        self.obs[:, -1] = np.where(np.arange(self.n_sites) % 2 == 0, np.nan, self.obs[:, -1])  # padded layer
        self.n_layers_raw = np.isfinite(self.obs).sum(axis=1) + 1  # "pre-cleaning" count

    def soc_of(self, kp):
        return 100.0 * (1.0 + kp[:, np.arange(self.n_obs) % self.n_params])

    def evaluate(self, kp, site_index):
        si = np.asarray(site_index)
        d = kp - self.c[si]
        cost = self.scale * (d * d).sum(axis=1)
        failed = np.isin(si, list(self.fail_sites))
        at0 = np.all(kp == 0.5, axis=1)
        failed |= np.isin(si, list(self.fail_except_kp0)) & ~at0
        if self.fail_region is not None:
            failed |= kp[:, 0] > self.fail_region
        soc = self.soc_of(kp)
        soc[~np.isfinite(self.obs[si])] = np.nan
        pw = -cost[:, None] / self.n_obs * np.ones((1, self.n_obs))
        return Evaluation(np.where(failed, np.nan, cost), -cost, np.where(failed[:, None], np.nan, pw),
                          np.where(failed[:, None], np.nan, soc), failed, failed.astype(np.int8))


class Counter:
    """Per-site call counter: the k-th call of a site succeeds with cost -k when k <= n_ok and (k = 1 or k is
    a multiple of ``period``); every other call fails."""

    def __init__(self, S, P, n_ok, period=1):
        self.n_sites, self.n_params, self.n_obs = S, P, 2
        self.k = np.zeros(S, np.int64)
        self.n_ok, self.period = n_ok, period

    def evaluate(self, kp, site_index):
        si = np.asarray(site_index)
        self.k[si] += 1
        k = self.k[si].astype(float)
        failed = (self.k[si] > self.n_ok) | ((self.k[si] != 1) & (self.k[si] % self.period != 0))
        soc = np.stack([k, k + 0.5], axis=1)
        return Evaluation(np.where(failed, np.nan, -k), k, np.zeros((si.size, 2)),
                          np.where(failed[:, None], np.nan, soc), failed, failed.astype(np.int8))


def _keys(S, C=3, seed=0):
    return np.random.default_rng(seed).integers(0, 2 ** 63, (S, C, 2)).astype(np.uint64)


def _centres(S, P, seed=1):
    return np.random.default_rng(seed).uniform(0.3, 0.7, (S, P))


def _run(cfg, target, keys, max_steps=200_000):
    k = get_kernel("paper")
    st = k.init(cfg, target, keys)
    n = 0
    while not k.done(st).all():
        st, info = k.step(st, target)
        n += 1
        assert n < max_steps
    return k, st, k.finalize(st, target)


def _same(a, b):
    assert set(a) == set(b)
    for name in a:
        x, y = np.asarray(a[name]), np.asarray(b[name])
        assert x.shape == y.shape, name
        if x.dtype.kind == "f":
            assert np.array_equal(x, y, equal_nan=True), name
        else:
            assert np.array_equal(x, y), name


def _row(res, s):
    return {k: np.asarray(v)[s] for k, v in res.items()}


# ------------------------------------------------------------------------------------------------ the rule
def test_first_iterations_replicate_the_tempered_rule_from_the_stream():
    S, P, n = 40, 3, 30
    tg = Quad(np.full((S, P), 0.5), scale=60.0)
    cfg = SamplerConfig(**SHORT)
    keys = _keys(S)
    k = get_kernel("paper")
    st = k.init(cfg, tg, keys)
    ref = BlockStreams(keys[:, 0], block=st.streams.block)
    kp = np.full((S, P), 0.5)
    J = tg.evaluate(kp, np.arange(S)).cost
    nacc = np.zeros(S, int)
    for t in range(1, n + 1):
        st, info = k.step(st, tg)
        u = ref.uniform(None, P + 1)
        prop = kp + (u[:, :P] - 0.5) / 5.0
        assert ((prop > 0) & (prop < 1)).all()
        Jn = tg.evaluate(prop, np.arange(S)).cost
        acc = u[:, P] < np.minimum(1.0, (t + 2.0) ** -(Jn - J))
        kp = np.where(acc[:, None], prop, kp)
        J = np.where(acc, Jn, J)
        nacc += acc
        assert info["n_accepted"] == acc.sum() and info["n_evals"] == S
    np.testing.assert_array_equal(st.arrays["kp"], kp)
    np.testing.assert_array_equal(st.arrays["J"], J)
    np.testing.assert_array_equal(st.arrays["n_acc"], nacc)
    assert 0 < nacc.sum() < S * n  # mixed decisions: the rule is actually exercised
    # test-run record: the running moments hold every state, repeats included
    assert (st.arrays["mom_n"] == n).all()


def test_formal_covariance_equals_full_recomputation():
    S, P = 3, 4
    tg = Quad(_centres(S, P), scale=5.0)
    cfg = SamplerConfig(test_iterations=300, iterations=900, adapt_start=100, draws=900, max_attempts=3)
    k = get_kernel("paper")
    st = k.init(cfg, tg, _keys(S, seed=3))
    checked = 0
    for _ in range(300 + 700):
        st, _ = k.step(st, tg)
        A = st.arrays
        for s in range(S):
            t = int(A["t"][s])
            if A["phase"][s] == 1 and t in (101, 102, 250, 600):
                lt = A["lt"][:, :, s]
                C = A["lscale"][s] ** 2 * lt @ lt.T
                hist = A["draws"][s, A["chain"][s], :t]
                ref = A["sigma"][s] / P * np.cov(hist.T)
                np.testing.assert_allclose(C, ref, rtol=1e-9, atol=1e-14)
                checked += 1
    assert checked >= 6


# ------------------------------------------------------------------------------------------------ results
def _reference_estimators(res, st, tg, cfg, s):
    """Recompute a site's paper estimators from the stored (thin = 1) chain."""
    A = st.arrays
    C, K = res["draws"].shape[1], A["buf_kp"].shape[1]
    rmse, r2, means, sds = [], [], [], []
    for c in range(C):
        acc = res["draws"][s, c][res["accepted"][s, c]]
        n = acc.shape[0]
        assert n == res["n_accepted"][s, c]
        m, stride = 0, 1
        for i in range(n):  # the buffer rule
            if i % stride == 0:
                m += 1
                if m == K:
                    m, stride = K // 2, stride * 2
        keep = np.arange(n) % stride == 0
        h = int(np.floor(n / 2 + 0.5))
        xs = acc[keep & (np.arange(n) >= h)]
        ys = tg.soc_of(acc[keep & (np.arange(n) >= h - 1)])
        mu = xs.mean(axis=0)
        means.append(mu)
        sds.append(xs.std(axis=0, ddof=1))
        np.testing.assert_allclose(res["chain_mean"][s, c], mu, rtol=1e-12)
        assert res["chain_n"][s, c] == n - h
        ssr = ((xs - mu) ** 2).sum(axis=0) * ((n - h - 1) / (xs.shape[0] - 1) if stride > 1 else 1.0)
        np.testing.assert_allclose(res["chain_ss"][s, c], ssr, rtol=1e-10)
        prof = ys.mean(axis=0)
        v = np.isfinite(tg.obs[s])
        sst = ((prof[v] - prof[v].mean()) ** 2).sum()
        ssres = ((prof[v] - tg.obs[s, v]) ** 2).sum()
        r2.append(1 - ssres / sst)
        rmse.append(np.sqrt(ssres / tg.n_layers_raw[s]))
    np.testing.assert_allclose(res["chain_r2_legacy"][s], r2, rtol=1e-10)
    np.testing.assert_allclose(res["chain_rmse"][s], rmse, rtol=1e-10)
    b = int(np.argmin(rmse))
    assert res["best_chain"][s] == b
    np.testing.assert_allclose(res["mean"][s], means[b], rtol=1e-12)
    np.testing.assert_allclose(res["sd"][s], sds[b], rtol=1e-10)
    return b


def test_results_fill_every_field_and_match_recomputation():
    S, P = 3, 3
    tg = Quad(_centres(S, P), scale=5.0)
    for cap in (4096, 16):  # exact, and thinned accepted buffer
        cfg = SamplerConfig(**{**SHORT, "accepted_capacity": cap})
        k, st, res = _run(cfg, tg, _keys(S, seed=5))
        assert set(res) == set(RESULT_FIELDS)
        assert res["ok"].all() and (res["reason"] == "").all()
        assert res["draws"].shape == (S, 3, 600, P) and res["pointwise"].shape == (S, 3, 600, 3)
        assert np.isfinite(res["draws"]).all()
        assert (res["n_last"] == res["n_accepted"][:, -1]).all()
        for s in range(S):
            _reference_estimators(res, st, tg, cfg, s)
        np.testing.assert_array_equal(res["lp"], -res["cost"])
        if cap == 16:
            assert (st.arrays["ch_stride"] > 1).all()
    # the tempered chain concentrates near the cost minimum
    assert np.abs(res["mean"] - tg.c).max() < 0.15


def test_mode_is_gev_mode_of_best_chain_sample():
    from prodampi.inference.diagnostics import gev_mode

    S, P = 2, 3
    tg = Quad(_centres(S, P))
    cfg = SamplerConfig(**SHORT)
    k, st, res = _run(cfg, tg, _keys(S, seed=8))
    for s in range(S):
        b = res["best_chain"][s]
        acc = res["draws"][s, b][res["accepted"][s, b]]
        h = int(np.floor(acc.shape[0] / 2 + 0.5))
        np.testing.assert_allclose(res["mode"][s], gev_mode(acc[h:].T, method="lmoments"), rtol=1e-12)


# ------------------------------------------------------------------------------------------------ bits
def test_checkpoint_roundtrip_continues_bit_identically():
    S, P = 3, 3
    tg = Quad(_centres(S, P), fail_region=0.75)
    cfg = SamplerConfig(**SHORT)
    k = get_kernel("paper")
    ref_state = k.init(cfg, tg, _keys(S, seed=11))
    st = k.init(cfg, tg, _keys(S, seed=11))
    for n_steps in (150, 300):  # checkpoint mid test run (step 150), then mid formal run (step 450)
        for _ in range(n_steps):
            st, _ = k.step(st, tg)
        assert (st.arrays["phase"] == (0 if n_steps == 150 else 1)).any()
        data = {key: np.array(v, copy=True) for key, v in st.to_arrays().items()}
        st = SamplerState.from_arrays("paper", data)
    while not k.done(st).all():
        st, _ = k.step(st, tg)
    while not k.done(ref_state).all():
        ref_state, _ = k.step(ref_state, tg)
    _same(k.finalize(st, tg), k.finalize(ref_state, tg))
    for name, v in ref_state.arrays.items():
        assert np.array_equal(v, st.arrays[name], equal_nan=v.dtype.kind == "f"), name


def test_a_site_alone_equals_the_site_in_a_batch_of_seven():
    S, P = 7, 3
    c = _centres(S, P)
    keys = _keys(S, seed=13)
    cfg = SamplerConfig(**SHORT)
    _, _, res7 = _run(cfg, Quad(c, fail_region=0.8), keys)
    for s in (0, 4):
        alone = Quad(c[s:s + 1], fail_region=0.8)
        alone.obs, alone.n_layers_raw = Quad(c).obs[s:s + 1], Quad(c).n_layers_raw[s:s + 1]
        _, _, res1 = _run(cfg, alone, keys[s:s + 1])
        _same(_row(res1, 0), _row(res7, s))


def test_site_bits_do_not_depend_on_the_mat_vec_path():
    # in the batch the other six sites fail early, so the one formal row takes the gathered-subset path;
    # alone it takes the whole-array path: both must give the same bits (P = 6: summation order matters)
    S, P = 7, 6
    c = _centres(S, P, seed=2)
    keys = _keys(S, seed=41)
    cfg = SamplerConfig(**{**SHORT, "max_attempts": 0, "chains": 1})
    full = Quad(c, fail_except_kp0=range(1, S))
    _, _, res7 = _run(cfg, full, keys[:, :1])
    assert res7["ok"].tolist() == [True] + [False] * 6
    alone = Quad(c[:1])
    alone.obs, alone.n_layers_raw = full.obs[:1], full.n_layers_raw[:1]
    _, _, res1 = _run(cfg, alone, keys[:1, :1])
    _same(_row(res1, 0), _row(res7, 0))


def test_failing_site_is_recorded_and_neighbours_are_unchanged():
    S, P = 5, 3
    c = _centres(S, P)
    keys = _keys(S, seed=17)
    cfg = SamplerConfig(**SHORT)
    # site 1 fails everywhere (kp0 included); site 3 everywhere except kp0
    _, _, res = _run(cfg, Quad(c, fail_sites=[1], fail_except_kp0=[3]), keys)
    assert res["ok"].tolist() == [True, False, True, False, True]
    assert res["reason"][1] == "initial evaluation at kp0 failed"
    # site 3: no acceptance ever -> three width restarts, is_second_time, then zero test covariance (not PD)
    # -> uncounted restarts until the cap
    assert res["reason"][3].startswith("uncounted restarts > 3")
    assert res["restarts"][3].tolist() == [3, 0, 4]
    assert res["n_failed_evals"][3] > 0 and res["best_chain"][3] == -1 and np.isnan(res["mean"][3]).all()
    keep = [0, 2, 4]
    tg = Quad(c[keep])
    full = Quad(c)
    tg.obs, tg.n_layers_raw = full.obs[keep], full.n_layers_raw[keep]
    _, _, ref = _run(cfg, tg, keys[keep])
    for i, s in enumerate(keep):
        _same(_row(ref, i), _row(res, s))


def test_failures_in_a_region_never_raise():
    S, P = 3, 3
    tg = Quad(_centres(S, P), fail_region=0.55)
    _, _, res = _run(SamplerConfig(**SHORT), tg, _keys(S, seed=19))
    assert res["n_failed_evals"].min() > 0
    assert (res["draws"][res["ok"]][..., 0] <= 0.55).all()  # a +100 penalty is never accepted here


# ------------------------------------------------------------------------------------------------ restarts
def test_acceptance_above_band_doubles_sigma_until_the_site_fails():
    S, P = 2, 1
    tg = Quad(np.full((S, P), 0.5), scale=0.0, L=1)  # flat: every move accepted, coef = 1 > 0.5
    # no adaptation: on a flat target an adapted s = 2.4 * 2**k / P proposal widens without bound
    cfg = SamplerConfig(test_iterations=200, iterations=150, adapt_start=10 ** 6, draws=150)
    k, st, res = _run(cfg, tg, _keys(S, seed=23))
    assert not res["ok"].any()
    assert (res["reason"] == "formal-run restarts > 5").all()
    assert (res["restarts"][:, 1] == 6).all() and (res["restarts"][:, 2] == 0).all()
    np.testing.assert_allclose(st.arrays["sigma"], 2.4 * 2.0 ** 6)
    assert (st.arrays["chain"] == 0).all() and (st.arrays["attempt"] == 5).all()


def test_acceptance_below_band_shrinks_sigma_until_the_site_fails():
    S, P = 2, 3
    tg = Counter(S, P, n_ok=10 ** 9, period=20)  # only every 20th call succeeds: acceptance ~ 5 %
    cfg = SamplerConfig(test_iterations=200, iterations=200, adapt_start=10 ** 6, draws=200, test_min_accept=0)
    k, st, res = _run(cfg, tg, _keys(S, seed=37))
    assert (res["reason"] == "formal-run restarts > 5").all()
    assert (res["restarts"][:, 1] == 6).all()
    np.testing.assert_allclose(st.arrays["sigma"], 2.4 * 0.7 ** 6)
    assert (st.arrays["coef"] < 0.1).all()


def test_acceptance_within_band_needs_no_restart_and_sigma_carries_over():
    S, P = 2, 3
    tg = Quad(_centres(S, P), scale=5.0)
    k, st, res = _run(SamplerConfig(**SHORT), tg, _keys(S, seed=29))
    acc = res["acceptance"]
    assert res["ok"].all()
    # sigma changed exactly by the counted formal restarts (x0.7 or x2 each)
    c2 = res["restarts"][:, 1]
    ratio = np.log(st.arrays["sigma"] / 2.4)
    for s in range(S):
        assert any(np.isclose(ratio[s], a * np.log(0.7) + (c2[s] - a) * np.log(2.0)) for a in range(c2[s] + 1))
    assert ((acc >= 0.05) & (acc <= 0.6)).all()


def test_no_formal_acceptance_fails_with_reason_penalty_vs_stale():
    S, P, n1 = 1, 3, 200
    base = dict(test_iterations=n1, iterations=100, adapt_start=1000, draws=100, test_min_accept=0)
    # penalty: formal-run failures get dJ = +100 -> never accepted -> coef undefined
    k, st, res = _run(SamplerConfig(**base), Counter(S, P, n_ok=1 + n1), _keys(S, seed=31))
    assert res["reason"].tolist() == ["no formal-run acceptance (coef undefined)"]
    assert st.arrays["n_acc"][0] == 0 and st.arrays["t"][0] == 99
    # stale (the authors' CLM5 bug): a failure reuses the last dJ (-1 here) -> accepted, J = J_old + 100 and
    # the stored profile is the last successful one
    tg = Counter(S, P, n_ok=1 + n1)
    k = get_kernel("paper")
    st = k.init(SamplerConfig(**base, failure_dj="stale"), tg, _keys(S, seed=31))
    for _ in range(n1 + 3):
        st, _ = k.step(st, tg)
    A = st.arrays
    assert A["phase"][0] == 1 and A["t"][0] == 3 and A["n_acc"][0] == 3
    np.testing.assert_allclose(A["J"][0], A["J0"][0] + 300.0)
    np.testing.assert_array_equal(A["soc"][0], [1 + n1, 1.5 + n1])
