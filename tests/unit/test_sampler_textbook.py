"""The ``textbook`` kernel (Haario adaptive Metropolis): statistical correctness and mechanics.

Statistical tests (issue 10, acceptance point 2) run many independent replicate chains as sites of one
batch and compare against analytic references:

* correlated 21-D Gaussian (SDs 0.02-0.05 around 0.5: the box truncation is ~1e-20): mean and covariance
  within Monte-Carlo error (across-replicate SEs, and ESS-based SEs from ArviZ);
* Haario's twisted Gaussian ("banana") scaled into the box: exact mean and covariance;
* simulation-based calibration (Talts et al. 2018) on a 2-parameter linear-Gaussian problem with data
  simulated from the uniform prior on the box (posteriors reach the box edges, so the prior bound matters);
* the flat target: the chain must sample the uniform prior (KS);
* the adapted proposal equals s (cov(full history) + eps I) recomputed from the recorded history.

Mechanics: checkpoint round-trip, batch-composition independence, failures, result fields.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy import stats

from prodampi.inference.rng import stream_keys
from prodampi.inference.sampler import RESULT_FIELDS, SamplerConfig, SamplerState, get_kernel, textbook
from prodampi.inference.sampler.textbook import TextbookKernel
from prodampi.testing.targets import BananaTarget, FlatTarget, GaussianTarget, LinearGaussianTarget, correlated_cov

arviz = pytest.importorskip("arviz")


def _keys(n_sites: int, chains: int, seed: int = 7, offset: int = 0) -> np.ndarray:
    sites = np.repeat(np.arange(offset, offset + n_sites), chains)
    return stream_keys(seed, "test", list(sites), np.tile(np.arange(chains), n_sites)).reshape(n_sites, chains, 2)


def _run(kernel: TextbookKernel, cfg: SamplerConfig, target, keys: np.ndarray, record: bool = False):
    state = kernel.init(cfg, target, keys)
    hist = [state.arrays["x"].copy()] if record else None
    while not kernel.done(state).all():
        state, _ = kernel.step(state, target)
        if record:
            hist.append(state.arrays["x"].copy())
    res = kernel.finalize(state, target)
    return (res, state, np.stack(hist, axis=1)) if record else (res, state)


def _across_replicates_z(est: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """z of the replicate average of ``est`` (K, ...) against ``truth``, SE from the spread across replicates."""
    k = est.shape[0]
    return (est.mean(axis=0) - truth) / (est.std(axis=0, ddof=1) / np.sqrt(k))


# ---------------------------------------------------------------- correlated 21-D Gaussian
P21 = 21
COV21 = correlated_cov(P21, 0.02, 0.05, rho=0.9, seed=3)
MU21 = np.linspace(0.4, 0.6, P21)
CFG21 = SamplerConfig(chains=2, test_iterations=12000, iterations=8000, adapt_start=500, draws=800,
                      am_initial_sd=0.005)


@pytest.fixture(scope="module")
def gauss21():
    n_s = 16
    target = GaussianTarget(MU21, COV21, n_sites=n_s)
    res, state = _run(TextbookKernel(start_halfwidth=0.05), CFG21, target, _keys(n_s, CFG21.chains))
    return res, state


def test_gaussian21_is_strongly_correlated():
    corr = COV21 / np.sqrt(np.outer(np.diag(COV21), np.diag(COV21)))
    off = np.abs(corr[np.triu_indices(P21, 1)])
    assert off.max() > 0.85 and (off > 0.5).mean() > 0.3
    assert np.linalg.cond(corr) > 50


def test_gaussian21_mean_and_covariance(gauss21):
    res, _ = gauss21
    draws = res["draws"]  # (S, C, D, P): each chain is an independent replicate
    chains = draws.reshape(-1, draws.shape[2], P21)
    means = chains.mean(axis=1)
    covs = np.stack([np.cov(c.T) for c in chains])
    z_mean = _across_replicates_z(means, MU21)
    iu = np.triu_indices(P21)
    z_cov = _across_replicates_z(covs[:, iu[0], iu[1]], COV21[iu])
    assert np.abs(z_mean).max() < 4.0, z_mean
    assert np.abs(z_cov).max() < 4.5, np.abs(z_cov).max()
    # and the pooled covariance is close in absolute terms (relative to the SDs)
    pooled = covs.mean(axis=0)
    sd = np.sqrt(np.diag(COV21))
    assert np.abs((pooled - COV21) / np.outer(sd, sd)).max() < 0.15


def test_gaussian21_ess_based_errors(gauss21):
    """Per site, (mean - mu) / MCSE with ArviZ's ESS must look standard normal."""
    res, _ = gauss21
    draws = res["draws"]
    z = []
    for s in range(draws.shape[0]):
        ess = arviz.ess(arviz.convert_to_dataset(draws[s]), method="mean")["x"].values  # (P,)
        mcse = draws[s].reshape(-1, P21).std(axis=0, ddof=1) / np.sqrt(ess)
        z.append((res["mean"][s] - MU21) / mcse)
    z = np.asarray(z)
    rms = np.sqrt((z ** 2).mean())
    assert 0.6 < rms < 1.6, rms
    assert np.abs(z).max() < 5.0


def test_gaussian21_acceptance_near_optimal(gauss21):
    """With 2.4^2/d scaling and a well-adapted covariance, acceptance is near 0.23-0.3 for a 21-D Gaussian."""
    res, _ = gauss21
    acc = res["acceptance"]
    assert 0.18 < acc.mean() < 0.36, acc.mean()
    assert res["ok"].all() and (res["n_failed_evals"] == 0).all()


# ---------------------------------------------------------------- banana
def test_banana_mean_and_covariance():
    n_s, cfg = 64, SamplerConfig(chains=1, test_iterations=4000, iterations=16000, adapt_start=500, draws=1600,
                                 am_initial_sd=0.02)
    target = BananaTarget(n_s, a=10.0, b=0.03, center=(0.5, 0.6), scale=0.01)
    res, _ = _run(TextbookKernel(start_halfwidth=0.05), cfg, target, _keys(n_s, 1, seed=11))
    mu, cov = target.moments()
    chains = res["draws"][:, 0]
    means = chains.mean(axis=1)
    covs = np.stack([np.cov(c.T) for c in chains])
    assert np.abs(_across_replicates_z(means, mu)).max() < 4.0
    zc = _across_replicates_z(covs.reshape(n_s, 4)[:, [0, 1, 3]], cov.reshape(4)[[0, 1, 3]])
    assert np.abs(zc).max() < 4.0, zc
    assert np.allclose(covs.mean(axis=0), cov, rtol=0.15, atol=0.1 * cov[0, 0])


# ---------------------------------------------------------------- simulation-based calibration
def test_sbc_ranks_uniform():
    n_s, chains, d = 400, 2, 15
    rng = np.random.default_rng(2018)
    truth = rng.uniform(size=(n_s, 2))
    design = np.stack([np.ones(5), np.linspace(-1.0, 1.0, 5)], axis=1)  # obs = x1 + z x2
    target = LinearGaussianTarget.simulate(truth, design, sigma=0.15, seed=5)
    cfg = SamplerConfig(chains=chains, test_iterations=1000, iterations=200 * d, adapt_start=200, draws=d)
    res, _ = _run(TextbookKernel(), cfg, target, _keys(n_s, chains, seed=3))
    draws = res["draws"].reshape(n_s, chains * d, 2)
    assert ((draws > 0) & (draws < 1)).all()
    ranks = (draws < truth[:, None, :]).sum(axis=1)  # 0 .. chains * d
    n_rank = chains * d + 1
    for j in range(2):
        # ranks in 0..30 -> 6 bins of ~5 ranks (31 = 5 * 6 + 1: the last bin takes 6)
        counts = np.bincount(np.minimum(ranks[:, j] * 6 // n_rank, 5), minlength=6)
        expected = np.array([np.sum(np.minimum(np.arange(n_rank) * 6 // n_rank, 5) == b) for b in range(6)])
        expected = expected / expected.sum() * n_s
        p_chi2 = stats.chisquare(counts, expected).pvalue
        p_ks = stats.kstest((ranks[:, j] + rng.uniform(size=n_s)) / n_rank, "uniform").pvalue
        assert p_chi2 > 0.01 and p_ks > 0.01, (j, p_chi2, p_ks, counts)


def test_flat_target_samples_the_uniform_prior():
    """No likelihood: the stored chain must be uniform on the box (a kernel that redraws or clips proposals
    outside the box, or ignores the bound, is not)."""
    n_s = 60
    cfg = SamplerConfig(chains=1, test_iterations=300, iterations=4000, adapt_start=100, draws=40)
    target = FlatTarget(n_s, 2)
    res, _ = _run(TextbookKernel(), cfg, target, _keys(n_s, 1, seed=5))
    x = res["draws"].reshape(-1, 2)
    assert ((x > 0) & (x < 1)).all()
    for j in range(2):
        assert stats.kstest(x[:, j], "uniform").pvalue > 0.01


# ---------------------------------------------------------------- adaptation, white box
@pytest.mark.parametrize("k", [1, 7, 10])
def test_proposal_is_haario_covariance_of_full_history(k):
    """The proposal equals s (cov(X_0..X_t) + eps I), recomputed from the recorded history, at every refresh
    (t = t0, t0 + k, ..., and t = W), is unchanged between refreshes and frozen through the stored chain."""
    n_s, p = 3, 4
    cov = correlated_cov(p, 0.03, 0.06, rho=0.8, seed=1)
    target = GaussianTarget(np.full(p, 0.5), cov, n_sites=n_s)
    cfg = SamplerConfig(chains=2, test_iterations=300, iterations=200, adapt_start=50, draws=50,
                        am_initial_sd=0.02)
    kernel = TextbookKernel(adapt_every=k)
    state = kernel.init(cfg, target, _keys(n_s, 2))
    hist = [state.arrays["x"].copy()]
    prev = state.arrays["chol"].copy()
    w, t0 = cfg.test_iterations, cfg.adapt_start
    for t in range(1, w + cfg.iterations + 1):
        state, _ = kernel.step(state, target)
        hist.append(state.arrays["x"].copy())
        chol = state.arrays["chol"]
        if t <= w and t >= t0 and ((t - t0) % k == 0 or t == w):
            h = np.stack(hist, axis=1)
            for r in range(h.shape[0]):
                want = cfg.am_scale / p * (np.cov(h[r].T) + cfg.am_epsilon * np.eye(p))
                np.testing.assert_allclose(chol[r] @ chol[r].T, want, rtol=1e-9, atol=1e-15)
            assert not np.array_equal(chol, prev)
        else:
            np.testing.assert_array_equal(chol, prev)
        prev = chol.copy()
    # stored draws are the states at iterations W + k * thin, repeats included
    res = kernel.finalize(state, target)
    h = np.stack(hist, axis=1)
    idx = w + cfg.thin * np.arange(1, cfg.n_draws + 1)
    np.testing.assert_array_equal(res["draws"].reshape(n_s * 2, -1, p), h[:, idx])


def test_initial_proposal_before_adapt_start():
    target = GaussianTarget(np.full(3, 0.5), np.eye(3) * 0.01, n_sites=2)
    cfg = SamplerConfig(chains=1, test_iterations=100, iterations=10, adapt_start=40, draws=5, am_initial_sd=0.03)
    kernel = TextbookKernel()
    state = kernel.init(cfg, target, _keys(2, 1))
    for _ in range(39):
        state, _ = kernel.step(state, target)
    np.testing.assert_array_equal(state.arrays["chol"], np.broadcast_to(0.03 * np.eye(3), (2, 3, 3)))
    state, _ = kernel.step(state, target)
    assert not np.array_equal(state.arrays["chol"][0], 0.03 * np.eye(3))


# ---------------------------------------------------------------- mechanics
def _lg_target(n_s: int, seed: int = 0, fail_below: float | None = None) -> LinearGaussianTarget:
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.3, 0.7, size=(n_s, 3))
    design = rng.uniform(0.5, 2.0, size=(6, 3))
    t = LinearGaussianTarget.simulate(truth, design, sigma=0.2, seed=seed + 1)
    t.obs[:, 5] = np.nan  # a padded layer
    t.fail_below = fail_below
    return t


CFG_SMALL = SamplerConfig(chains=3, test_iterations=120, iterations=200, adapt_start=30, draws=20)


def test_checkpoint_roundtrip_is_bit_identical():
    target = _lg_target(4, fail_below=0.2)
    kernel = get_kernel("textbook")
    keys = _keys(4, 3)
    ref, _ = _run(kernel, CFG_SMALL, target, keys)
    for cut in (1, 77, 121, 250):  # warm-up, end of warm-up, stored chain
        state = kernel.init(CFG_SMALL, target, keys)
        for _ in range(cut):
            state, _ = kernel.step(state, target)
        snap = copy.deepcopy(state.to_arrays())
        del state
        state = SamplerState.from_arrays("textbook", snap)
        while not kernel.done(state).all():
            state, _ = kernel.step(state, target)
        res = kernel.finalize(state, target)
        for k in RESULT_FIELDS:
            np.testing.assert_array_equal(res[k], ref[k], err_msg=f"{k} after a restart at {cut}")


@pytest.mark.parametrize("small_block", [False, True])
def test_site_alone_equals_site_in_batch(small_block, monkeypatch):
    """Same bits for a site alone and in a batch (and whatever the RNG buffer size, which depends on R)."""
    target = _lg_target(5, seed=3)
    kernel = TextbookKernel()
    keys = _keys(5, 3)
    full, _ = _run(kernel, CFG_SMALL, target, keys)
    if small_block:
        monkeypatch.setattr(textbook, "_block_len", lambda p, r: 4 * -(-(p + 1) // 4))
    for j in (0, 3):
        alone_t = LinearGaussianTarget(target.obs[j:j + 1], target.design, target.sigma)
        alone, st = _run(kernel, CFG_SMALL, alone_t, keys[j:j + 1])
        assert st.streams.block == (4 if small_block else 1024)
        for k in RESULT_FIELDS:
            np.testing.assert_array_equal(alone[k][0], full[k][j], err_msg=k)


def test_results_fields_and_estimators():
    n_s = 3
    target = _lg_target(n_s, seed=9)
    kernel = TextbookKernel()
    cfg = CFG_SMALL
    state = kernel.init(cfg, target, _keys(n_s, cfg.chains))
    soc_it = []
    while not kernel.done(state).all():
        state, info = kernel.step(state, target)
        if state.arrays["it"][0] > cfg.test_iterations:
            soc_it.append(state.arrays["soc"].copy())
        assert set(info) >= {"n_evals", "n_accepted", "n_failed", "failed_status", "done"}
    res = kernel.finalize(state, target)
    s, c, d, p, n_l = n_s, cfg.chains, cfg.n_draws, 3, target.n_obs
    shapes = {"draws": (s, c, d, p), "cost": (s, c, d), "lp": (s, c, d), "accepted": (s, c, d),
              "pointwise": (s, c, d, n_l), "n_accepted": (s, c), "acceptance": (s, c), "mean": (s, p),
              "sd": (s, p), "mode": (s, p), "chain_mean": (s, c, p), "chain_ss": (s, c, p), "chain_n": (s, c),
              "n_last": (s,), "soc_mod": (s, n_l), "soc_sd": (s, n_l), "chain_r2_legacy": (s, c),
              "chain_rmse": (s, c), "best_chain": (s,), "restarts": (s, 3), "n_failed_evals": (s,), "ok": (s,),
              "reason": (s,)}
    assert set(res) == set(RESULT_FIELDS)
    for k, shp in shapes.items():
        assert res[k].shape == shp, k
    x = res["draws"]
    np.testing.assert_allclose(res["mean"], x.reshape(s, -1, p).mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(res["sd"], x.reshape(s, -1, p).std(axis=1, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(res["chain_ss"], ((x - x.mean(axis=2, keepdims=True)) ** 2).sum(axis=2),
                               rtol=1e-10)
    np.testing.assert_array_equal(res["cost"], -res["lp"])
    assert np.isnan(res["mode"]).all() and (res["restarts"] == 0).all() and res["ok"].all()
    # lp and pointwise of the stored states, recomputed
    ev = target.evaluate(x.reshape(-1, p), np.repeat(np.arange(s), c * d))
    np.testing.assert_allclose(res["lp"].reshape(-1), ev.loglik, rtol=1e-12)
    np.testing.assert_allclose(res["pointwise"].reshape(-1, n_l), ev.pointwise, rtol=1e-12)
    assert np.isnan(res["pointwise"][..., 5]).all()
    # SOC over every stored iteration (chains pooled) and the per-chain profile statistics
    soc_it = np.stack(soc_it, axis=1).reshape(s, c, cfg.iterations, n_l)
    np.testing.assert_allclose(res["soc_mod"], soc_it.reshape(s, -1, n_l).mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(res["soc_sd"], soc_it.reshape(s, -1, n_l).std(axis=1, ddof=1), rtol=1e-9)
    prof = soc_it.mean(axis=2)[..., :5]
    obs = target.obs[:, None, :5]
    rmse = np.sqrt(((obs - prof) ** 2).mean(axis=2))
    r2 = 1 - ((obs - prof) ** 2).sum(axis=2) / ((obs - prof.mean(axis=2, keepdims=True)) ** 2).sum(axis=2)
    np.testing.assert_allclose(res["chain_rmse"], rmse, rtol=1e-10)
    np.testing.assert_allclose(res["chain_r2_legacy"], r2, rtol=1e-10)
    np.testing.assert_array_equal(res["best_chain"], rmse.argmin(axis=1))
    # accepted flags and counts
    assert (res["n_accepted"] > 0).all()
    np.testing.assert_allclose(res["acceptance"], res["n_accepted"] / cfg.iterations)
    assert res["accepted"].any()


def test_failures_are_rejections():
    """A failed forward solve is a rejection: the chain samples the posterior restricted to x0 >= 0.45."""
    n_s = 20
    target = GaussianTarget(np.full(2, 0.5), np.diag([0.05 ** 2, 0.05 ** 2]), n_sites=n_s, fail_below=0.45)
    cfg = SamplerConfig(chains=1, test_iterations=500, iterations=3000, adapt_start=100, draws=300)
    res, _ = _run(TextbookKernel(start_halfwidth=0.0), cfg, target, _keys(n_s, 1))
    x = res["draws"][:, 0].reshape(-1, 2)
    assert (x[:, 0] >= 0.45).all()
    assert (res["n_failed_evals"] > 0).all() and res["ok"].all()
    # truncated normal mean of x0: mu + sd * phi(a) / (1 - Phi(a)), a = -1
    want = 0.5 + 0.05 * stats.norm.pdf(-1.0) / stats.norm.sf(-1.0)
    assert abs(x[:, 0].mean() - want) < 0.01


def test_site_that_always_fails_is_reported():
    target = FlatTarget(2, 2, fail_below=2.0)  # every evaluation fails
    cfg = SamplerConfig(chains=2, test_iterations=20, iterations=20, adapt_start=5, draws=5)
    kernel = TextbookKernel()
    state = kernel.init(cfg, target, _keys(2, 2))
    while not kernel.done(state).all():
        state, info = kernel.step(state, target)
    assert info["failed_status"][2] > 0 or info["n_outside"] > 0
    res = kernel.finalize(state, target)
    assert not res["ok"].any() and all(r for r in res["reason"])
    assert (res["n_failed_evals"] > 0).all() and (res["n_accepted"] == 0).all()


def test_bad_keys_shape_rejected():
    target = FlatTarget(2, 2)
    with pytest.raises(ValueError):
        TextbookKernel().init(SamplerConfig(chains=3), target, _keys(2, 2))
