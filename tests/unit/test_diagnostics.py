"""Tests of prodampi.inference.diagnostics against independent references.

* R-hat / ESS: ArviZ on the same draws (to 1e-10), via ``arviz_stats.base.array_stats`` (ArviZ >= 1.0) or a
  per-site loop over ``arviz.rhat`` / ``arviz.ess`` on (chain, draw) arrays (ArviZ 0.x).
* The authors' Gelman-Rubin: a per-site, per-parameter loop written from the formula in ``compas.md`` 7.3.
* NSE / legacy R^2 / RMSE: hand-computed values.
* GEV: population L-moments by quadrature of scipy's quantile function, brute-force U-statistic L-moments,
  the numerical argmax of scipy's density, MATLAB's complex power, and scipy's MLE.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
from scipy import integrate, special, stats

from prodampi.inference import diagnostics as D

logging.getLogger("arviz").setLevel(logging.ERROR)  # ArviZ 0.x logs every short-chain shape check

RTOL = 1e-10


# ----------------------------------------------------------------------------------------------------------
# draws
# ----------------------------------------------------------------------------------------------------------

def _ar1(shape, phi, rng, innov=None):
    """AR(1) chains along the last axis, stationary start; ``innov`` draws the innovations."""
    e = rng.standard_normal(shape) if innov is None else innov(shape)
    x = np.empty(shape)
    x[..., 0] = e[..., 0] / np.sqrt(1.0 - phi ** 2)
    for t in range(1, shape[-1]):
        x[..., t] = phi * x[..., t - 1] + e[..., t]
    return x


def _metropolis(shape, step, rng):
    """Random-walk Metropolis on N(0, 1), every iteration stored (repeats -> tied values)."""
    s, c, n = shape
    x = np.empty(shape)
    cur = rng.standard_normal((s, c))
    for t in range(n):
        prop = cur + step * rng.standard_normal((s, c))
        acc = np.log(rng.random((s, c))) < 0.5 * (cur ** 2 - prop ** 2)
        cur = np.where(acc, prop, cur)
        x[..., t] = cur
    return x


def _cases():
    rng = np.random.default_rng(20240611)
    out = {}
    for phi in (-0.6, 0.0, 0.5, 0.9, 0.99):
        for c, n in ((3, 200), (4, 1000), (3, 501)):
            out[f"ar1_phi{phi}_C{c}_N{n}"] = _ar1((5, c, n), phi, rng)
    out["heavy_t1.5_C4_N800"] = _ar1((5, 4, 800), 0.7, rng, innov=lambda s: rng.standard_t(1.5, size=s))
    off = _ar1((5, 3, 600), 0.8, rng)
    off[:, 0] += np.array([0.5, 1.0, 2.0, 4.0, 8.0])[:, None]  # one chain offset per site: R-hat >> 1
    out["offset_C3_N600"] = off
    out["metropolis_ties_C4_N400"] = _metropolis((5, 4, 400), 3.0, rng)
    out["short_C3_N4"] = _ar1((5, 3, 4), 0.3, rng)
    out["short_C2_N7"] = _ar1((5, 2, 7), 0.3, rng)
    out["one_chain_C1_N300"] = _ar1((5, 1, 300), 0.5, rng)
    return out


CASES = _cases()


# ----------------------------------------------------------------------------------------------------------
# ArviZ reference
# ----------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def arviz_ref():
    """``ref(x, kind)`` for x (S, C, N) -> (S,), kind in rhat_rank/rhat_split/rhat_classic/ess_bulk/ess_tail."""
    try:
        from arviz_stats.base import array_stats  # ArviZ >= 1.0
    except ImportError:
        array_stats = None
    if array_stats is None:
        try:
            import arviz as az
        except ImportError:
            pytest.skip("neither arviz_stats nor arviz is importable: no reference for R-hat/ESS")

    calls = {
        "rhat_rank": ("rhat", {"method": "rank"}),
        "rhat_split": ("rhat", {"method": "split"}),
        "rhat_classic": ("rhat", {"method": "identity"}),
        "ess_bulk": ("ess", {"method": "bulk"}),
        "ess_tail": ("ess", {"method": "tail", "prob": (0.05, 0.95)}),
    }

    def ref(x, kind):
        name, kw = calls[kind]
        if array_stats is not None:
            return np.asarray(getattr(array_stats, name)(x, chain_axis=-2, draw_axis=-1, **kw), dtype=float)
        return np.array([float(getattr(az, name)(x[s], **kw)) for s in range(x.shape[0])])

    return ref


KINDS = ("rhat_rank", "rhat_split", "rhat_classic", "ess_bulk", "ess_tail")


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_arviz(case, arviz_ref):
    x = CASES[case]
    got_sep = {k: getattr(D, k)(x, constant="arviz") if k.startswith("ess") else getattr(D, k)(x) for k in KINDS}
    summ = D.convergence_summary(x, constant="arviz")
    got_sum = {"rhat_rank": summ["rhat"], "rhat_split": summ["rhat_split"], "rhat_classic": summ["rhat_classic"],
               "ess_bulk": summ["ess_bulk"], "ess_tail": summ["ess_tail"]}
    for kind in KINDS:
        ref = arviz_ref(x, kind)
        assert got_sep[kind].shape == (x.shape[0],)
        np.testing.assert_allclose(got_sep[kind], ref, rtol=RTOL, atol=0, equal_nan=True, err_msg=kind)
        np.testing.assert_allclose(got_sum[kind], ref, rtol=RTOL, atol=0, equal_nan=True, err_msg=kind)
    if x.shape[-2] == 1:  # R-hat needs two chains
        assert np.isnan(got_sep["rhat_rank"]).all() and np.isfinite(got_sep["ess_bulk"]).all()


def test_offset_chain_is_flagged():
    x = CASES["offset_C3_N600"]
    r, classic = D.rhat_rank(x), D.rhat_classic(x)
    assert np.all(r > 1.05) and r[-1] > 1.5  # rank normalisation bounds R-hat of a fully separated chain
    assert classic[-1] > 2.0 and classic[-1] > classic[0]
    assert np.all(D.rhat_rank(CASES["ar1_phi0.0_C4_N1000"]) < 1.01)


def test_leading_axes_and_arviz_dataset(arviz_ref):
    """(site, param, chain, draw) input; and ArviZ's own Dataset route returns per-site values."""
    rng = np.random.default_rng(3)
    x = _ar1((4, 3, 3, 300), 0.6, rng)  # site, param, chain, draw
    got = D.convergence_summary(x)
    assert got["rhat"].shape == (4, 3) and got["ess_tail"].shape == (4, 3)
    flat = x.reshape(12, 3, 300)
    np.testing.assert_allclose(got["ess_bulk"].ravel(), arviz_ref(flat, "ess_bulk"), rtol=RTOL)
    np.testing.assert_allclose(got["rhat"].ravel(), arviz_ref(flat, "rhat_rank"), rtol=RTOL)
    az = pytest.importorskip("arviz")
    xr = pytest.importorskip("xarray")
    ds = xr.Dataset({"theta": (("chain", "draw", "site"), np.moveaxis(x[:, 0], 0, -1))},
                    coords={"chain": np.arange(3), "draw": np.arange(300), "site": np.arange(4)})
    r = az.rhat(ds, method="rank")["theta"]
    assert r.dims == ("site",)
    np.testing.assert_allclose(D.rhat_rank(x[:, 0]), r.values, rtol=RTOL)


def test_blocking_does_not_change_values(monkeypatch):
    x = CASES["metropolis_ties_C4_N400"]
    whole = D.convergence_summary(x)
    monkeypatch.setattr(D, "_BLOCK_ELEMENTS", 1)  # one row per block
    per_row = D.convergence_summary(x)
    for k in whole:
        np.testing.assert_array_equal(whole[k], per_row[k])


def test_rank_normalisation_with_ties_is_arviz_z_scale():
    """The sparse tie handling equals ArviZ's z-scale (scipy average ranks, Blom 3/8, normal quantile)."""
    rng = np.random.default_rng(4)
    x = np.round(rng.normal(0, 1.5, (7, 4, 60)))  # heavy ties, incl. groups at row ends
    x[0] = 1.0
    x[1, :, :] = np.arange(60.0)  # ties across chains only
    x[2, -1, -5:] = 99.0  # a tie group at the very end of a row

    def ref_z(a):
        r = stats.rankdata(a.reshape(a.shape[0], -1), method="average", axis=-1)
        return stats.norm.ppf((r - 0.375) / (r.shape[-1] - 0.75 + 1)).reshape(a.shape)

    np.testing.assert_array_equal(D._z_scale(x), ref_z(x))
    split = D._split(x)
    zb, zf = D._z_bulk_and_folded(split)
    np.testing.assert_array_equal(zb, ref_z(split))
    med = np.median(split.reshape(7, -1), axis=-1)[:, None, None]
    np.testing.assert_array_equal(zf, ref_z(np.abs(split - med)))


def test_next_fast_len_matches_scipy_fftpack():
    from scipy.fftpack import next_fast_len
    for n in range(1, 3000):
        assert D._next_fast_len(n) == next_fast_len(n), n


# ----------------------------------------------------------------------------------------------------------
# stuck chains, NaN, short chains
# ----------------------------------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_constant_site_is_nan_stuck(arviz_ref):
    rng = np.random.default_rng(5)
    x = _ar1((3, 3, 200), 0.5, rng)
    x[1] = 0.25  # every chain stuck at one value
    x[2, 1] = x[2, 1, 0]  # one chain stuck, others move
    s = D.convergence_summary(x)
    for k in ("rhat", "rhat_split", "rhat_classic", "ess_bulk", "ess_tail"):
        assert np.isnan(s[k][1]), k
        assert np.isfinite(s[k][[0, 2]]).all(), k
    np.testing.assert_array_equal(s["stuck"], [False, True, False])
    np.testing.assert_array_equal(D.stuck_chains(x)[:, 1], [False, True, True])
    assert D.stuck_chains(x)[1].all() and not D.stuck_chains(x)[0].any()
    # ArviZ: NaN R-hat, but the draw count as ESS of a constant array; constant="arviz" reproduces it
    assert np.isnan(arviz_ref(x, "rhat_rank")[1])
    for k in ("ess_bulk", "ess_tail"):
        arv = getattr(D, k)(x, constant="arviz")
        np.testing.assert_allclose(arv, arviz_ref(x, k), rtol=RTOL)
        assert arv[1] == 3 * 200


def test_tail_prob_forms():
    x = CASES["ar1_phi0.5_C4_N1000"]
    ref = D.ess_tail(x, prob=(0.1, 0.9))
    np.testing.assert_array_equal(D.ess_tail(x, prob=0.1), ref)
    np.testing.assert_array_equal(D.ess_tail(x, prob=np.array([0.1, 0.9])), ref)
    assert not np.allclose(ref, D.ess_tail(x))


def test_nan_draw_and_too_short():
    rng = np.random.default_rng(6)
    x = _ar1((2, 3, 100), 0.5, rng)
    x[0, 2, 50] = np.nan
    s = D.convergence_summary(x)
    for k in ("rhat", "ess_bulk", "ess_tail", "rhat_classic"):
        assert np.isnan(s[k][0]) and np.isfinite(s[k][1]), k
    short = _ar1((2, 3, 3), 0.5, rng)
    assert np.isnan(D.rhat_rank(short)).all() and np.isnan(D.ess_bulk(short)).all()


def test_acceptance_rate():
    acc = np.array([[1, 0, 0, 1], [1, 1, 1, 1]], dtype=bool)
    np.testing.assert_allclose(D.acceptance_rate(acc), [0.5, 1.0])
    np.testing.assert_allclose(D.acceptance_rate(acc, axis=0), [1.0, 0.5, 0.5, 1.0])
    assert np.isnan(D.acceptance_rate(np.zeros((2, 0), dtype=bool))).all()


# ----------------------------------------------------------------------------------------------------------
# the authors' Gelman-Rubin
# ----------------------------------------------------------------------------------------------------------

def _gr_loop(samples, n_acc):
    """Per site and parameter, from compas.md 7.3: post-burn-in accepted states round(n_c/2)+1..n_c,
    B and W with n = total accepted count of the last chain."""
    s_, m, _, p_ = samples.shape
    out = np.empty((s_, p_))
    for s in range(s_):
        n = float(n_acc[s, -1])
        for p in range(p_):
            draws = []
            for c in range(m):
                nc = int(n_acc[s, c])
                start = int(np.floor(nc / 2 + 0.5))  # MATLAB round, 1-based start round(nc/2)+1
                draws.append(samples[s, c, start:nc, p])
            means = [float(np.mean(d)) for d in draws]
            grand = sum(means) / m
            b = n / (m - 1) * sum((mc - grand) ** 2 for mc in means)
            w = sum(float(np.sum((d - mc) ** 2)) for d, mc in zip(draws, means)) / (m * (n - 1))
            out[s, p] = np.sqrt(((n - 1) / n * w + b / n) / w)
    return out


def test_gelman_rubin_paper_matches_loop():
    rng = np.random.default_rng(7)
    s_, m, nmax, p_ = 6, 3, 300, 4
    samples = rng.standard_normal((s_, m, nmax, p_)) + rng.normal(0, 0.3, (s_, m, 1, p_))
    n_acc = rng.integers(40, nmax + 1, size=(s_, m))
    n_acc[0] = [41, 57, 99]  # odd counts: MATLAB rounds half away from zero
    slots = np.arange(nmax)
    samples = np.where(slots[None, None, :, None] < n_acc[..., None, None], samples, np.nan)  # padding
    mask = D.burnin_half_mask(n_acc, nmax)
    mean, ss, cnt = D.chain_moments(samples, mask)
    np.testing.assert_array_equal(cnt, n_acc - (n_acc + 1) // 2)
    gr = D.gelman_rubin_paper(mean, ss, n_acc[:, -1])
    np.testing.assert_allclose(gr, _gr_loop(samples, n_acc), rtol=1e-12)
    assert gr.shape == (s_, p_)


def test_burnin_half_mask_matlab_round():
    mask = D.burnin_half_mask(np.array([0, 1, 2, 4, 5, 7]), 8)
    assert [list(np.flatnonzero(r)) for r in mask] == [[], [], [1], [2, 3], [3, 4], [4, 5, 6]]


def test_gelman_rubin_paper_with_true_n_is_classic_rhat():
    """With equal counts and n = the per-chain sample size the formula is the classic PSRF."""
    rng = np.random.default_rng(8)
    x = _ar1((5, 3, 400), 0.7, rng)
    x[:, 0] += 0.3
    mean, ss, cnt = D.chain_moments(x[..., None], np.ones(x.shape, dtype=bool))
    gr = D.gelman_rubin_paper(mean, ss, cnt[:, -1])[:, 0]
    np.testing.assert_allclose(gr, D.rhat_classic(x), rtol=1e-12)
    # the authors' n ~ 2x the sample size roughly doubles the excess of GR^2 over 1
    gr2 = D.gelman_rubin_paper(mean, ss, 2 * cnt[:, -1])[:, 0]
    excess = (gr2 ** 2 - 1) / (gr ** 2 - 1)
    assert np.all((excess > 1.5) & (excess < 2.5))


# ----------------------------------------------------------------------------------------------------------
# NSE, legacy R^2, RMSE
# ----------------------------------------------------------------------------------------------------------

def test_nse_r2_rmse_by_hand():
    obs = np.array([1.0, 2.0, 3.0, 4.0, np.nan, np.nan])
    mod = np.array([1.5, 2.0, 2.5, 5.0, 7.0, np.nan])
    # SS_res = 0.25 + 0 + 0.25 + 1 = 1.5; SS_tot(obs) = 5; SS_tot(mod) = 7.25 (mean 2.75)
    assert D.nse(obs, mod) == pytest.approx(1 - 1.5 / 5)
    assert D.r2_legacy(obs, mod) == pytest.approx(1 - 1.5 / 7.25)
    assert D.rmse_legacy(obs, mod, n_layers=6) == pytest.approx(np.sqrt(1.5 / 6))
    assert D.rmse_legacy(obs, mod, n_layers=4) == pytest.approx(np.sqrt(1.5 / 4))


def test_nse_batched_and_degenerate():
    rng = np.random.default_rng(9)
    obs = rng.random((4, 7)) * 1000
    obs[1, 3:] = np.nan  # 3 valid layers
    obs[2] = np.nan
    obs[2, 0] = 5.0  # one valid layer
    obs[3] = 2.0  # constant observations
    mod = obs[:, None, :] + rng.normal(0, 50, (4, 3, 7))  # three chains
    got = D.nse(obs[:, None, :], mod)
    assert got.shape == (4, 3)
    for c in range(3):
        v = np.isfinite(obs[0])
        o, mm = obs[0, v], mod[0, c, v]
        assert got[0, c] == pytest.approx(1 - np.sum((mm - o) ** 2) / np.sum((o - o.mean()) ** 2), rel=1e-12)
        o, mm = obs[1, :3], mod[1, c, :3]
        assert got[1, c] == pytest.approx(1 - np.sum((mm - o) ** 2) / np.sum((o - o.mean()) ** 2), rel=1e-12)
    assert np.isnan(got[2]).all() and np.isnan(got[3]).all()
    assert np.isnan(D.r2_legacy(obs[2], mod[2, 0]))
    assert np.isnan(D.r2_legacy(np.arange(3.0), np.ones(3)))  # constant modelled profile
    assert D.nse(obs[0], obs[0]) == 1.0


# ----------------------------------------------------------------------------------------------------------
# GEV mode
# ----------------------------------------------------------------------------------------------------------

def _population_lmoments(k, mu, sigma):
    q = lambda u: stats.genextreme.ppf(u, -k, loc=mu, scale=sigma)  # noqa: E731
    l1 = integrate.quad(q, 0, 1, limit=200)[0]
    l2 = integrate.quad(lambda u: q(u) * (2 * u - 1), 0, 1, limit=200)[0]
    l3 = integrate.quad(lambda u: q(u) * (6 * u * u - 6 * u + 1), 0, 1, limit=200)[0]
    return l1, l2, l3


@pytest.mark.parametrize("k", [-2.0, -0.9, -0.4, 0.0, 1e-6, 0.3, 0.8])
def test_gev_lmoment_inversion_exact(k):
    """Population L-moments (quadrature of scipy's quantile function) -> the true (k, sigma, mu)."""
    mu, sigma = 0.4, 0.07
    l1, l2, l3 = _population_lmoments(k, mu, sigma)
    kk, ss, mm = D.gev_from_lmoments(l1, l2, l3 / l2)
    assert kk == pytest.approx(k, abs=1e-7)
    assert ss == pytest.approx(sigma, rel=1e-7)
    assert mm == pytest.approx(mu, abs=1e-8)


def test_gev_from_lmoments_gumbel_limit():
    """t3 of the Gumbel: sigma = l2/ln 2, mu = l1 - euler_gamma sigma (Hosking 1990 Table 1), continuous."""
    l1, l2 = 0.3, 0.05
    t3 = 2 * np.log(3) / np.log(2) - 3
    k, sigma, mu = D.gev_from_lmoments(np.array([l1, l1]), np.array([l2, l2]), np.array([t3, t3 + 1e-9]))
    np.testing.assert_allclose(k, 0.0, atol=1e-8)
    np.testing.assert_allclose(sigma, l2 / np.log(2), rtol=1e-8)
    np.testing.assert_allclose(mu, l1 - np.euler_gamma * l2 / np.log(2), rtol=1e-9)
    kap = np.array([0.0, 1e-12, -1e-7, 5e-4, -2e-3])
    direct = np.array([np.euler_gamma, np.euler_gamma, np.nan, np.nan, np.nan])
    direct[2:] = (1 - special.gamma(1 + kap[2:])) / kap[2:]
    np.testing.assert_allclose(D._one_minus_gamma_over_k(kap, D._lngamma1p(kap)), direct, rtol=1e-8)


def test_sample_lmoments_are_the_u_statistics():
    rng = np.random.default_rng(10)
    x = rng.gamma(2.0, size=(3, 9))
    x[2, 6:] = np.nan  # padded row: 6 values
    l1, l2, t3 = D.lmoments(x)
    for r in range(3):
        v = np.sort(x[r][np.isfinite(x[r])])
        pairs = [(b - a) / 2 for a, b in itertools.combinations(v, 2)]
        trip = [(c - 2 * b + a) / 3 for a, b, c in itertools.combinations(v, 3)]
        assert l1[r] == pytest.approx(v.mean(), rel=1e-12)
        assert l2[r] == pytest.approx(np.mean(pairs), rel=1e-12)
        assert t3[r] == pytest.approx(np.mean(trip) / np.mean(pairs), rel=1e-10)
    assert np.isnan(D.lmoments(np.array([1.0, 2.0, np.nan]))[1])
    assert np.isnan(D.lmoments(np.full(10, 3.0))[2])


def test_gev_mode_formula_is_the_density_argmax():
    for k in (-0.8, -0.3, 0.0, 0.25, 0.6):
        grid = np.linspace(-3, 6, 900001)
        pdf = stats.genextreme.pdf(grid, -k, loc=0.5, scale=0.8)
        assert D.gev_mode_from_params(k, 0.8, 0.5) == pytest.approx(grid[np.argmax(pdf)], abs=2e-5)


def test_gev_mode_negative_base_conventions():
    k = np.array([-3.0, -1.5, -1.2, -1.0])
    sigma, mu = 0.2, 0.6
    matlab = mu + sigma * (((1 + k).astype(complex) ** (-k) - 1) / k).real  # principal branch, as MATLAB
    np.testing.assert_allclose(D.gev_mode_from_params(k, sigma, mu), matlab, rtol=1e-13)
    endpoint = D.gev_mode_from_params(k, sigma, mu, negative_base="endpoint")
    np.testing.assert_allclose(endpoint, mu - sigma / k, rtol=1e-13)
    assert np.isnan(D.gev_mode_from_params(k, sigma, mu, negative_base="nan")[:3]).all()
    assert D.gev_mode_from_params(-1.0, sigma, mu, negative_base="nan") == pytest.approx(mu + sigma)


@pytest.mark.parametrize("k", [-0.3, 0.0, 0.2])
def test_gev_recovery_and_mle_agree(k):
    rng = np.random.default_rng(11)
    mu, sigma = 0.5, 0.1
    x = stats.genextreme.rvs(-k, loc=mu, scale=sigma, size=(3, 20000), random_state=rng)
    kk, ss, mm = D.gev_fit(x)
    # L-moment sampling SDs at n = 20000 are ~0.01 (k), ~0.001 (sigma, mu): 4-5 SD tolerances
    np.testing.assert_allclose(kk, k, atol=0.05)
    np.testing.assert_allclose(ss, sigma, rtol=0.05)
    np.testing.assert_allclose(mm, mu, atol=0.005)
    true_mode = D.gev_mode_from_params(k, sigma, mu)
    lm = D.gev_mode(x)
    np.testing.assert_allclose(lm, true_mode, atol=0.006)
    mle = D.gev_mode(x[:, :5000], method="mle")
    np.testing.assert_allclose(mle, true_mode, atol=0.01)
    np.testing.assert_allclose(mle, D.gev_mode(x[:, :5000]), atol=0.01)
    # NaN padding is ignored
    pad = np.concatenate([x[:, :5000], np.full((3, 100), np.nan)], axis=1)
    np.testing.assert_allclose(D.gev_mode(pad), D.gev_mode(x[:, :5000]), rtol=1e-12)
