"""The profile target (prodampi.inference.targets): cleaning, rank weights, costs, likelihood, real models."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.interpolate import PchipInterpolator

from prodampi.data.profiles import clean_observations as screening_clean
from prodampi.inference.targets import (
    DEFAULT_COST,
    ProfileTarget,
    SiteObservations,
    clean_observations,
    cost_terms,
    default_cost,
    rank_weights,
    site_prechecks,
)
from prodampi.soil import get_model
from prodampi.soil.base import INVALID_RATIO, OK, SINGULAR
from prodampi.soil.layers import nodes_m
from prodampi.testing.forcing import random_forcing

Z = nodes_m()


# ------------------------------------------------------------------------------------------------ rank weights
def _ref_weights(z, y):
    """Independent reference: Python's stable sorted() on the descending key, ranks by position."""
    n = len(y)

    def ranks(x):
        m = sum(x) / n
        order = sorted(range(n), key=lambda i: -abs(x[i] - m))
        r = [0] * n
        for pos, i in enumerate(order):
            r[i] = pos + 1
        return r

    ry, rd = ranks(list(y)), ranks(list(z))
    return np.array([max(1.0, 10.0 * np.exp(-((a + b) / 2 - 1))) for a, b in zip(ry, rd)])


def test_rank_weights_hand_cases():
    # distinct deviations: ranks y (1: 100, 2: 10, 3: 40, 4: 50), depth (1: 0.9, 2: 0.1, 3: 0.2, 4: 0.3)
    z = np.array([[0.1, 0.2, 0.3, 0.9]])
    y = np.array([[100.0, 50.0, 40.0, 10.0]])
    w = rank_weights(z, y, np.ones((1, 4), bool))[0]
    np.testing.assert_allclose(w, [10 * np.exp(-0.5), 1.0, 1.0, 10 * np.exp(-0.5)], rtol=1e-15)
    assert round(w[0], 2) == 6.07
    # ties everywhere (binary-exact deviations): stable order decides
    z = np.array([[0.25, 0.5, 0.75, 1.0]])
    y = np.array([[10.0, 30.0, 10.0, 30.0]])
    w = rank_weights(z, y, np.ones((1, 4), bool))[0]
    # y ranks 1,2,3,4 (all tied); depth ranks: 1 (layer 0), 3, 4, 2 (layer 3)
    np.testing.assert_allclose(w, [10.0, 10 * np.exp(-1.5), 1.0, 10 * np.exp(-2.0)], rtol=1e-15)
    assert [round(v, 2) for v in w] == [10.0, 2.23, 1.0, 1.35]
    # rank 2 exactly -> 3.68
    z = np.array([[0.0, 1.0, 3.0]])
    y = np.array([[0.0, 1.0, 3.0]])
    w = rank_weights(z, y, np.ones((1, 3), bool))[0]
    assert [round(v, 2) for v in w] == [3.68, 1.35, 10.0]


def test_rank_weights_random_vs_reference_and_padding():
    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(2, 9))
        z = np.sort(rng.choice([0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 1.6], n, replace=False))
        y = rng.choice([5.0, 10.0, 20.0, 40.0, 80.0], n)  # many ties
        if np.all(y == y[0]):
            continue  # all equal: the cleaning skips the site (tested below)
        ref = _ref_weights(z, y)
        got = rank_weights(z[None], y[None], np.ones((1, n), bool))[0]
        np.testing.assert_allclose(got, ref, rtol=1e-14)
        # the same layers with invalid ones interleaved (a NaN and a zero layer): same weights after cleaning
        zz = np.insert(z, [1, n], [0.15, 2.0])
        yy = np.insert(y, [1, n], [np.nan, 0.0])
        o = SiteObservations.from_padded(zz[None], yy[None])
        np.testing.assert_allclose(o.weights[0, :n], ref, rtol=1e-14)
        assert o.valid[0].sum() == n and o.n_layers_raw[0] == n + 2


# ------------------------------------------------------------------------------------------------ cleaning
def test_cleaning_rules_each():
    nan = np.nan
    y = np.array([
        [0.0, 0.0, 0.0, 0.0],          # 0 all zero
        [10.0, 0.0, nan, 5.0],         # 1 some zero -> keep > 0 (drops the NaN too)
        [10.0, 8.0, 3.0, nan],         # 2 NaN obs dropped
        [10.0, 8.0, 3.0, 1.0],         # 3 NaN depth dropped (below)
        [10.0, 0.0, nan, nan],         # 4 one layer left
        [7.0, 7.0, 7.0, nan],          # 5 all equal
        [10.0, np.inf, 3.0, 1.0],      # 6 infinite value
        [10.0, -1.0, 3.0, 1.0],        # 7 negative value
        [nan, nan, nan, nan],          # 8 all NaN
        [10.0, 5.0, 3.0, 9.0],         # 9 only 3 layers (padding)
        [10.0, 5.0, 3.0, 9.0],         # 10 no layer
    ])
    z = np.tile([0.05, 0.2, 0.4, 0.8], (y.shape[0], 1))
    z[3, 1] = nan
    nl = np.array([4, 4, 4, 4, 4, 4, 4, 4, 4, 3, 0])
    valid, reasons = clean_observations(z, y, nl)
    assert reasons[0] == "bad_data: all observations zero"
    assert reasons[1] == "" and valid[1].tolist() == [True, False, False, True]
    assert reasons[2] == "" and valid[2].tolist() == [True, True, True, False]
    assert reasons[3] == "" and valid[3].tolist() == [True, False, True, True]
    assert reasons[4] == "bad_data: fewer than 2 usable layers (1)"
    assert reasons[5] == "bad_data: all observed values equal (NSE undefined)"
    assert reasons[6].startswith("bad_data: non-finite observation")
    assert reasons[7] == "bad_data: negative observation"
    assert reasons[8] == "bad_data: fewer than 2 usable layers (0)"
    assert reasons[9] == "" and valid[9].tolist() == [True, True, True, False]
    assert reasons[10] == "bad_data: no observed layers"
    bad = np.array([r != "" for r in reasons])
    assert not valid[bad].any()
    # the authors' rules agree with the screening's implementation wherever no prodampi rule fires
    for i in (0, 1, 2, 3, 4, 8, 9):
        m, why = screening_clean(z[i, :nl[i]], y[i, :nl[i]])
        assert (why == "") == (reasons[i] == ""), i
        assert m.tolist() == valid[i, :nl[i]].tolist(), i


def test_from_profiles_ragged_equals_padded():
    off = np.array([0, 3, 3, 7])
    z = np.array([0.05, 0.2, 0.5, 0.01, 0.1, 0.3, 1.0])
    y = np.array([100.0, 50.0, 20.0, 0.0, 80.0, np.nan, 30.0])
    o = SiteObservations.from_profiles(off, z, y)
    assert o.n_sites == 3 and o.n_obs == 3
    assert o.n_layers_raw.tolist() == [3, 0, 4]
    assert o.reason.tolist() == ["", "bad_data: no observed layers", ""]
    np.testing.assert_array_equal(o.obs[2, :2], [80.0, 30.0])
    np.testing.assert_array_equal(o.depth_m[2, :2], [0.1, 1.0])
    assert np.isnan(o.obs[2, 2]) and not o.valid[2, 2] and o.weights[2, 2] == 0.0
    # usable flag applied on top
    o2 = SiteObservations.from_profiles(off, z, y, usable=np.array([1, 1, 0, 1, 1, 1, 1], bool))
    assert o2.valid[0].sum() == 2 and o2.depth_m[0, :2].tolist() == [0.05, 0.2]


# ------------------------------------------------------------------------------------------------ costs
def _node_target(model_name, obs_rows, depth_idx, cost=None, sigma=0.5, **model_kw):
    """Target whose observations sit exactly on node depths (PCHIP = the node value, no model run)."""
    z = Z[np.asarray(depth_idx)]
    o = SiteObservations.from_padded(np.tile(z, (len(obs_rows), 1)), np.array(obs_rows, dtype=float))
    return ProfileTarget(get_model(model_name, **model_kw), None, o, cost=cost, obs_sigma_log=sigma)


def test_costs_hand_computed():
    y = np.array([100.0, 50.0, 10.0])
    idx = [0, 5, 12]
    soc = np.full((1, 20), 30.0)
    soc[0, idx] = [110.0, 40.0, 10.0]
    # CLM5 weights: |y - 53.3| ranks 1 (100), 3 (50), 2 (10); |z - 0.99| ranks 2 (0.01), 3 (0.40), 1 (2.50)
    w = np.array([10 * np.exp(-0.5), 10 * np.exp(-2.0), 10 * np.exp(-0.5)])
    j_clm5 = w[0] * 100 / (2 * 60.0 ** 2) + w[1] * 100 / (2 * 30.0 ** 2) + 0.0
    t = _node_target("clm5", [y], idx)
    assert t.cost_name == "clm5_weighted_relerr"
    np.testing.assert_allclose(t.weights[0], w, rtol=1e-15)
    e = t.score(soc, np.zeros(1, np.int8), np.array([0]))
    np.testing.assert_allclose(e.cost, [j_clm5], rtol=1e-13)
    np.testing.assert_allclose(e.soc[0], [110.0, 40.0, 10.0], rtol=1e-15)
    np.testing.assert_allclose(-t.cost_terms(e.soc, [0]).sum(), -j_clm5, rtol=1e-13)
    # paper pseudo-likelihood: pointwise = -J_i, summing to -J
    tp = ProfileTarget(get_model("clm5"), None, t.observations, pointwise="cost")
    ep = tp.score(soc, np.zeros(1, np.int8), np.array([0]))
    np.testing.assert_allclose(ep.pointwise[0], -w * np.array([100 / (2 * 60.0 ** 2), 100 / (2 * 30.0 ** 2), 0]),
                               rtol=1e-13)
    np.testing.assert_allclose(ep.pointwise.sum(), -ep.cost[0], rtol=1e-13)
    np.testing.assert_allclose(ep.loglik, e.loglik, rtol=1e-15)
    # COMPAS: 5 (1 - NSE)
    ss = ((y - y.mean()) ** 2).sum()
    tc = _node_target("compas", [y], idx)
    assert tc.cost_name == "compas_nse"
    ec = tc.score(soc, np.zeros(1, np.int8), np.array([0]))
    np.testing.assert_allclose(ec.cost, [5 * 200.0 / ss], rtol=1e-13)
    nse = 1 - ((soc[0, idx] - y) ** 2).sum() / ss
    np.testing.assert_allclose(ec.cost, 5 * (1 - nse), rtol=1e-13)
    # selected by name, overriding the default
    assert _node_target("compas", [y], idx, cost="clm5_weighted_relerr").cost_name == "clm5_weighted_relerr"
    with pytest.raises(ValueError, match="unknown cost"):
        _node_target("clm5", [y], idx, cost="rmse")


def test_default_cost_table_and_attribute():
    assert default_cost(get_model("clm5")) == DEFAULT_COST["clm5"] == "clm5_weighted_relerr"
    assert default_cost(get_model("compas")) == "compas_nse"
    m = get_model("clm5")
    m.cost = "compas_nse"
    assert default_cost(m) == "compas_nse"


def test_cost_nansum_skips_nan_terms():
    t = cost_terms("compas_nse", np.array([[1.0, np.nan, 3.0]]), np.array([[2.0, 2.0, 2.0]]),
                   np.ones((1, 3), bool), np.ones((1, 3)), np.array([2.0]))
    assert np.isnan(t[0, 1]) and np.nansum(t) == pytest.approx(5.0)


def test_nonfinite_and_status_failures():
    y = np.array([100.0, 50.0, 10.0])
    idx = [0, 5, 12]
    t = _node_target("compas", [y, y, y, y, y, y], idx)
    soc = np.full((6, 20), 30.0)
    soc[4, 18] = np.nan        # NaN at a node no observation touches: still a failure
    soc[5, 5] = np.inf         # Inf at an observed layer
    st = np.array([OK, SINGULAR, INVALID_RATIO, OK, OK, OK], np.int8)
    soc[3, 2] = -5.0           # finite negative node: not a failure
    e = t.score(soc, st, np.arange(6))
    assert e.failed.tolist() == [False, True, False, False, True, True]  # paper COMPAS scores invalid states
    assert np.isnan(e.cost[e.failed]).all() and np.isfinite(e.cost[~e.failed]).all()
    assert np.isneginf(e.loglik[e.failed]).all()
    assert np.isnan(e.pointwise[e.failed]).all()
    assert e.status.tolist() == st.tolist()
    # textbook COMPAS (invalid="nan") fails invalid states
    tt = _node_target("compas", [y, y, y], idx, preset="textbook")
    assert tt.score(soc[:3], st[:3], np.arange(3)).failed.tolist() == [False, True, True]
    # CLM5: any non-finite node fails too
    tc = _node_target("clm5", [y], idx)
    assert tc.score(soc[4:5], st[4:5], np.array([0])).failed.tolist() == [True]


def test_textbook_loglik_vs_scipy():
    rng = np.random.default_rng(1)
    idx = [1, 3, 6, 9]
    obs = rng.uniform(50, 5000, (3, 4))
    obs[2, 3] = np.nan  # a dropped layer
    t = _node_target("clm5", obs, idx, sigma=0.37)
    soc = rng.uniform(50, 5000, (3, 20))
    sidx = np.array([0, 1, 2])
    e = t.score(soc, np.zeros(3, np.int8), sidx)
    for b in range(3):
        ok = np.isfinite(obs[b])
        yh = soc[b, idx][ok]
        ref = stats.norm.logpdf(np.log(obs[b][ok]), np.log(yh), 0.37) - np.log(obs[b][ok])
        np.testing.assert_allclose(e.pointwise[b, :ok.sum()], ref, rtol=1e-12)
        np.testing.assert_allclose(e.pointwise[b, :ok.sum()],
                                   stats.lognorm.logpdf(obs[b][ok], s=0.37, scale=yh), rtol=1e-12)
        np.testing.assert_allclose(e.loglik[b], ref.sum(), rtol=1e-12)
    assert np.isnan(e.pointwise[2, 3])
    # a non-positive modelled value has zero likelihood (not a solver failure)
    soc[0, idx[0]] = -1.0
    e = t.score(soc, np.zeros(3, np.int8), sidx)
    assert np.isneginf(e.loglik[0]) and not e.failed[0] and np.isfinite(e.cost[0])


def test_node_depths_take_the_node_value_exactly():
    # a steep deep profile (CLM5 below bedrock): PCHIP's Hermite form at the far end of the last interval
    # cancels; an observation on a node must see the node value itself
    soc = (4.6e4 * 10.0 ** -(5.0 * np.arange(20)))[None, :]
    z = (np.round(np.concatenate([[0.0], [2, 6, 12, 20, 32, 48, 68, 92, 120, 152, 188, 228, 272, 326, 390,
                                             464, 548, 642, 746]]), 6) + np.array(
        [2, 6, 12, 20, 32, 48, 68, 92, 120, 152, 188, 228, 272, 326, 390, 464, 548, 642, 746, 860.0])) / 200.0
    o = SiteObservations.from_padded(z[None], soc.copy())
    t = ProfileTarget(get_model("clm5"), None, o)
    e = t.score(soc, np.zeros(1, np.int8), np.array([0]))
    np.testing.assert_array_equal(e.soc[0], soc[0])
    assert e.cost[0] == 0.0
    # off-node depths still interpolate (PCHIP, SciPy reference)
    o2 = SiteObservations.from_padded(np.array([[0.03, 0.5, 2.0]]), np.array([[3.0, 2.0, 1.0]]))
    soc2 = np.linspace(5e4, 1e3, 20)[None, :]
    e2 = ProfileTarget(get_model("clm5"), None, o2).score(soc2, np.zeros(1, np.int8), np.array([0]))
    np.testing.assert_allclose(e2.soc[0], PchipInterpolator(Z, soc2[0])([0.03, 0.5, 2.0]), rtol=1e-13)


# ------------------------------------------------------------------------------------------------ real models
def _ok_truth(model, prep, rng, n_sites, n_try=64):
    """Per site a normalised parameter vector whose solve is OK with positive SOC."""
    kp = np.empty((n_sites, len(model.params)))
    for s in range(n_sites):
        for _ in range(n_try):
            k = rng.uniform(0.2, 0.8, (1, len(model.params)))
            st = model.steady_state(model.params.to_physical(k), prep, np.array([s]))
            if st.status[0] == OK and np.all(st.soc > 0):
                kp[s] = k[0]
                break
        else:
            raise RuntimeError(f"no OK parameter vector for site {s}")
    return kp


@pytest.mark.parametrize("name", ["clm5", "compas"])
def test_evaluate_real_models(name):
    rng = np.random.default_rng(11)
    forcing = random_forcing(rng, 5, zero_input_frac=0.0, shallow_bedrock_frac=0.0)
    model = get_model(name)
    prep = model.prepare(forcing)
    kp_true = _ok_truth(model, prep, rng, 5)
    st = model.steady_state(model.params.to_physical(kp_true), prep, np.arange(5))
    depths = np.sort(rng.uniform(0.02, 1.8, (5, 6)), axis=1)
    depths[1, 4:] = np.nan  # a shorter profile
    # synthetic noise-free observations by SciPy's PCHIP (independent of the target's interpolation)
    obs = np.array([PchipInterpolator(Z, st.soc[s], extrapolate=True)(depths[s]) for s in range(5)])
    nl = np.array([6, 4, 6, 6, 6])
    o = SiteObservations.from_padded(depths, obs, nl)
    assert (o.reason == "").all()
    target = ProfileTarget(model, prep, o)
    assert (target.n_params, target.n_sites, target.n_obs) == (len(model.params), 5, 6)
    sidx = np.array([3, 0, 0, 1, 4, 2, 2, 2])
    e = target.evaluate(kp_true[sidx], sidx)
    assert not e.failed.any()
    np.testing.assert_allclose(e.cost, 0.0, atol=1e-20)
    np.testing.assert_allclose(e.soc[o.valid[sidx]], o.obs[sidx][o.valid[sidx]], rtol=1e-12)
    # NSE = 1 - J/5 = 1 under the COMPAS cost for any model
    e2 = ProfileTarget(model, prep, o, cost="compas_nse").evaluate(kp_true[sidx], sidx)
    np.testing.assert_allclose(1 - e2.cost / 5, 1.0, atol=1e-12)
    ly = np.log(o.obs[sidx])
    np.testing.assert_allclose(e.loglik, np.nansum(-np.log(0.5) - 0.5 * np.log(2 * np.pi) - ly, axis=1),
                               rtol=1e-12)

    # random parameters, every item against a one-at-a-time recomputation
    kp = rng.uniform(0.02, 0.98, (sidx.size, len(model.params)))
    e = target.evaluate(kp, sidx)
    for b, s in enumerate(sidx):
        one = model.steady_state(model.params.to_physical(kp[b:b + 1]), prep, np.array([s]))
        assert one.status[0] == e.status[b]
        v = o.valid[s]
        if not np.isfinite(one.soc).all():
            assert e.failed[b]
            continue
        yh = PchipInterpolator(Z, one.soc[0], extrapolate=True)(o.depth_m[s, v])
        y = o.obs[s, v]
        if name == "clm5":
            ref = (o.weights[s, v] * (yh - y) ** 2 / (2 * (0.6 * y) ** 2)).sum()
        else:
            ref = 5 * ((yh - y) ** 2).sum() / ((y - y.mean()) ** 2).sum()
        if e.failed[b]:
            assert one.status[0] != OK
            assert np.isnan(e.cost[b])
        else:
            np.testing.assert_allclose(e.cost[b], ref, rtol=1e-9)
            np.testing.assert_allclose(e.soc[b, v], yh, rtol=1e-10, atol=1e-9)


def test_site_prechecks():
    rng = np.random.default_rng(5)
    forcing = random_forcing(rng, 4, zero_input_frac=0.0)
    model = get_model("clm5")
    prep = model.prepare(forcing)
    y = np.array([[100.0, 50.0, 10.0], [100.0, 50.0, 10.0], [0.0, 0.0, 0.0], [100.0, 50.0, 10.0]])
    o = SiteObservations.from_padded(np.tile([0.05, 0.3, 0.9], (4, 1)), y)
    ok = np.array([True, False, True, True])
    r = site_prechecks(model, prep, o, ok, ["", "tsoi_k[(0, 0)] = nan is non-finite", "", ""])
    assert r[1] == "bad_data: forcing tsoi_k[(0, 0)] = nan is non-finite"
    assert r[2] == "bad_data: all observations zero"
    st = model.steady_state(model.params.to_physical(np.full((4, len(model.params)), 0.5)), prep, np.arange(4))
    for i in (0, 3):
        if st.status[i] == SINGULAR:
            assert r[i].startswith("solver_failure: singular")
        elif not np.isfinite(st.soc[i, 0]):
            assert r[i].startswith("solver_failure: layer-1")
        else:
            assert r[i] == ""
    # a singular run at kp0 is a solver failure: force one through a fake model
    class Singular:
        params = model.params

        def steady_state(self, theta, prepared, site_index):
            from prodampi.soil.base import SteadyState
            n = theta.shape[0]
            soc = np.ones((n, 20))
            soc[2, 0] = np.nan
            return SteadyState(np.ones((n, 20, 1)), soc, np.array([SINGULAR, OK, OK, OK], np.int8))

    r = site_prechecks(Singular(), None, o, np.ones(4, bool))
    assert r[0] == "solver_failure: singular at kp0 = 0.5"
    assert r[1] == "" and r[3] == ""
    assert r[2].startswith("solver_failure: layer-1 SOC not finite")  # the run comes before the cleaning
