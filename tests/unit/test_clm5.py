"""CLM5 model: structured fast path vs the as-coded dense reference, ODE, mass balance, parameters, §10."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from prodampi.soil import get_model
from prodampi.soil.base import BAD_FORCING, NEGATIVE, NONFINITE, OK, SINGULAR
from prodampi.soil.clm5 import CLM5_PARAMS, CLM5_RELEASE_VALUES, CLM5Model, fs1s2_clm5_default
from prodampi.soil.forcing import Forcing
from prodampi.soil.layers import DZ_M, N_LAYERS, ZSOI_M, overlap_weights
from prodampi.testing.forcing import random_forcing, random_theta, uniform_forcing

DZ = DZ_M[:N_LAYERS]
DAYS = 365.0


# ---------------------------------------------------------------------------------------- parameters
def test_param_table_order_and_bounds():
    names = ["diffus", "cryo", "q10", "efolding", "taucwd", "taul1", "taul2", "tau4s1", "tau4s2", "tau4s3",
             "fl1s1", "fl2s1", "fl3s2", "fs1s2", "fs1s3", "fs2s1", "fs2s3", "fs3s1", "fcwdl2", "w-scaling",
             "beta"]
    assert CLM5_PARAMS.names == names
    lo = [3e-5, 3e-5, 1.2, 0, 1, 0, 0.1, 0, 1, 200, 0.1, 0.2, 0.2, 0, 0, 0.1, 0, 0, 0.5, 0, 0.5]
    hi = [5e-4, 1.6e-3, 3, 1, 6, 0.11, 0.3, 1, 50, 1000, 0.8, 0.8, 0.8, 0.4, 0.05, 0.74, 0.1, 0.9, 1, 5,
          0.9999]
    np.testing.assert_array_equal(CLM5_PARAMS.lo, lo)
    np.testing.assert_array_equal(CLM5_PARAMS.hi, hi)
    m = get_model("clm5")
    assert isinstance(m, CLM5Model) and m.soc_pools == (4, 5, 6) and len(m.pool_names) == 7


def test_normalized_physical_round_trip():
    rng = np.random.default_rng(0)
    kp = rng.random((1000, 21))
    back = CLM5_PARAMS.to_normalized(CLM5_PARAMS.to_physical(kp))
    assert np.abs(back - kp).max() <= 4 * np.finfo(float).eps
    np.testing.assert_array_equal(CLM5_PARAMS.to_physical(np.zeros(21)), CLM5_PARAMS.lo)
    np.testing.assert_array_equal(CLM5_PARAMS.to_physical(np.ones(21)), CLM5_PARAMS.hi)
    # spec §10: kp = 0.5 gives these physical values
    half = CLM5_PARAMS.to_physical(np.full(21, 0.5))
    np.testing.assert_allclose(half[[0, 1, 2, 3, 9, 20]], [2.65e-4, 8.15e-4, 2.1, 0.5, 600, 0.74995],
                               rtol=1e-14)


def test_customary_values_are_the_release_file_values(shared_data):
    netCDF4 = pytest.importorskip("netCDF4")
    path = shared_data / "clm5_params" / "clm5_params.c171117.nc"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    with netCDF4.Dataset(path) as ds:
        file_vals = {k: float(np.asarray(ds.variables[k][:]).ravel()[0]) for k in CLM5_RELEASE_VALUES}
    for k, v in CLM5_RELEASE_VALUES.items():
        assert v == file_vals[k], k
    c = dict(zip(CLM5_PARAMS.names, CLM5_PARAMS.customary, strict=True))
    spy = 365 * 86400
    expect = {
        "diffus": file_vals["som_diffus"] * spy, "cryo": file_vals["cryoturb_diffusion_k"] * spy,
        "q10": file_vals["q10_hr"], "efolding": file_vals["decomp_depth_efolding"],
        "taucwd": file_vals["tau_cwd"], "taul1": file_vals["tau_l1"], "taul2": file_vals["tau_l2_l3"],
        "tau4s1": file_vals["tau_s1"], "tau4s2": file_vals["tau_s2"], "tau4s3": file_vals["tau_s3"],
        "fl1s1": 1 - file_vals["rf_l1s1_bgc"], "fl2s1": 1 - file_vals["rf_l2s1_bgc"],
        "fl3s2": 1 - file_vals["rf_l3s2_bgc"], "fs2s1": 0.42 / 0.45 * (1 - file_vals["rf_s2s1_bgc"]),
        "fs2s3": 0.03 / 0.45 * (1 - file_vals["rf_s2s3_bgc"]), "fs3s1": 1 - file_vals["rf_s3s1_bgc"],
        "fcwdl2": 1 - file_vals["cwd_flig"],
    }
    for k, v in expect.items():
        assert c[k] == pytest.approx(v, rel=1e-15), k
    # documented orientation values of clm5.md §2
    quoted = {"diffus": 1e-4, "cryo": 5e-4, "q10": 1.5, "taucwd": 3.3333, "taul1": 0.0541, "taul2": 0.2041,
              "tau4s1": 0.1370, "tau4s2": 5, "tau4s3": 222.222, "fl1s1": 0.45, "fs2s1": 0.42, "fs2s3": 0.03,
              "fs3s1": 0.45, "fcwdl2": 0.76, "fs1s3": 0.004, "w-scaling": 1.0, "beta": 0.95}
    for k, v in quoted.items():
        assert c[k] == pytest.approx(v, rel=1e-3), k  # the spec quotes 3-5 significant digits
    assert np.isnan(c["fs1s2"])


# ---------------------------------------------------------------------------------- fast vs reference
def _compare(st, rf, tol=1e-9, well=1e-13):
    """Statuses agree (except items whose rcond sits at the threshold); OK pools agree to ``tol``.

    The dense LU is itself only accurate to about eps/rcond (MATLAB accepts rcond down to 2.2e-16): pools are
    required to agree to ``tol`` where rcond >= ``well`` and to 1e-6 below that.  Returns the OK mask and
    the well-conditioned mask.
    """
    rc_f, rc_r = st.diagnostics["rcond"], rf.diagnostics["rcond"]
    near = np.abs(np.log(np.maximum(rc_r, 1e-300) / np.finfo(float).eps)) < 0.05
    assert np.all((st.status == rf.status) | near)
    ok = (st.status == OK) & (rf.status == OK)
    assert np.all(np.abs(rc_f[ok] / rc_r[ok] - 1.0) <= 1e-6)
    good = ok & (rc_r >= well)
    for mask, t in ((good, tol), (ok & ~good, 1e-6)):
        xf, xr = st.pools[mask], rf.pools[mask]
        scale = np.abs(xr).max(axis=(1, 2))
        err = np.abs(xf - xr).max(axis=(1, 2))
        assert np.all(err <= t * scale), np.max(err / np.where(scale > 0, scale, 1))
        # per pool (litter pools are much smaller than SOM); a pool that is rounding noise in the dense
        # solve (e.g. zero input, ~1e-17) is measured against 1e-12 of the item's largest pool
        pool_scale = np.maximum(np.abs(xr).max(axis=1, keepdims=True), 1e-12 * scale[:, None, None])
        assert np.all(np.abs(xf - xr) <= t * pool_scale + 1e-300)
    np.testing.assert_array_equal(np.isnan(st.pools), np.isnan(rf.pools))
    return ok, good


def _residual_ok(model, theta, forc, st, mask, rtol=1e-12):
    """Backward error of the fast solution in the as-coded dense system (independent of the dense solve)."""
    for i in np.flatnonzero(mask):
        mat, rhs, *_ = model.dense_system(theta[i], forc, i)
        x = st.pools[i].T.ravel()
        r = np.abs(mat @ x - rhs).max()
        assert r <= rtol * np.abs(mat).sum(axis=1).max() * np.abs(x).max() + 1e-300, i


@pytest.mark.parametrize("bedrock", ["compat", "conservative"])
def test_fast_path_equals_dense_reference(bedrock):
    rng = np.random.default_rng(42 if bedrock == "compat" else 43)
    s = 360
    forc = random_forcing(rng, s, permafrost_frac=0.35, shallow_bedrock_frac=0.35, zero_input_frac=0.06,
                          nan_month_frac=0.02)
    theta = random_theta(rng, CLM5_PARAMS, s, lo=0.005, hi=0.995)
    # two thirds with efolding >= 0.3 m: small e-folding depths are mostly rejected by the rcond check
    ef = CLM5_PARAMS.index("efolding")
    theta[s // 3:, ef] = rng.uniform(0.3, 0.995, s - s // 3)
    model = CLM5Model(bedrock=bedrock)
    st = model.steady_state(theta, model.prepare(forc))
    rf = model.steady_state_reference(theta, forc)
    ok, good = _compare(st, rf)
    assert good.sum() >= 250  # >= 500 well-conditioned draws over both modes agree to 1e-9
    _residual_ok(model, theta, forc, st, ok)
    # the draws cover the edge cases
    alt = np.fmax(forc.altmax_m, forc.altmax_lastyear_m)
    perm = np.any((alt > 0) & (alt <= 2), axis=1)
    assert (ok & perm).sum() >= 40 and (ok & (forc.nbedrock < 20)).sum() >= 40
    assert (ok & np.any(alt == 0, axis=1)).sum() >= 10
    zero = forc.litter_input.sum(axis=1) == 0
    assert zero.sum() >= 5 and np.all(st.pools[zero & ok] == 0.0)
    assert 0 < (st.status == SINGULAR).sum() < s // 2  # rcond failures exist (small efolding), most pass
    # mass balance of the fast path and the reference: respiration + bottom leak = input
    for res in (st, rf):
        d = res.diagnostics
        good = ok & ~zero
        np.testing.assert_allclose(d["respiration"][good] + d["bottom_leak"][good], d["input"][good],
                                   rtol=1e-9)
    np.testing.assert_allclose(st.diagnostics["bottom_leak"][ok], rf.diagnostics["bottom_leak"][ok],
                               rtol=1e-7, atol=1e-9 * st.diagnostics["input"][ok].max())
    leak_frac = st.diagnostics["bottom_leak"][ok & ~zero] / st.diagnostics["input"][ok & ~zero]
    if bedrock == "conservative":
        assert np.abs(leak_frac).max() <= 1e-9
    else:
        assert leak_frac.max() > 1e-3  # PRODA's bedrock sink is real in compat mode
        deep = ok & ~zero & (forc.nbedrock >= 19)
        assert np.abs(st.diagnostics["bottom_leak"][deep] / st.diagnostics["input"][deep]).max() <= 1e-9


def test_site_index_and_reference_site_index():
    rng = np.random.default_rng(5)
    forc = random_forcing(rng, 6)
    model = CLM5Model()
    prep = model.prepare(forc)
    idx = np.array([0, 3, 3, 5, 1, 0, 2, 4])
    theta = random_theta(rng, CLM5_PARAMS, idx.size, lo=0.3, hi=0.9)
    st = model.steady_state(theta, prep, idx)
    for i, s in enumerate(idx):
        one = model.steady_state(theta[i:i + 1], model.prepare(forc.take([s])))
        np.testing.assert_allclose(st.pools[i], one.pools[0], rtol=1e-13, atol=0)
        assert st.status[i] == one.status[0]
    ok, good = _compare(st, model.steady_state_reference(theta, forc, idx))
    assert good.all()
    with pytest.raises(ValueError):
        model.steady_state(theta, prep)  # B != S without site_index


# ------------------------------------------------------------------------------------- dynamics (ODE)
def _fast_theta(n=1):
    kp = np.full((n, 21), 0.5)
    kp[:, 3] = 1.0  # efolding 1 m
    kp[:, 9] = 0.0  # tau4s3 200 yr
    kp[:, 8] = 0.1  # tau4s2 ~ 6 yr
    return CLM5_PARAMS.to_physical(kp)


@pytest.mark.parametrize("case", ["bio", "cryo", "shallow"])
def test_steady_state_is_a_fixed_point_of_the_ode(case):
    alt, nb = {"bio": (10.0, 20), "cryo": (1.2, 20), "shallow": (10.0, 9)}[case]
    forc = uniform_forcing(1, tsoi=290.0, w=0.6, alt=alt, nb=nb)
    model = CLM5Model()
    theta = CLM5_PARAMS.to_physical(np.full((1, 21), 0.5))
    st = model.steady_state(theta, model.prepare(forc))
    assert st.status[0] == OK
    mat, rhs, *_ = model.dense_system(theta[0], forc, 0)
    x0 = st.pools[0].T.ravel()  # pool-major
    sol = solve_ivp(lambda t, x: mat @ x - rhs, (0.0, 1e4 * DAYS), x0, method="BDF", jac=lambda t, x: mat,
                    rtol=1e-10, atol=1e-12 * np.abs(x0).max())
    assert sol.success
    drift = np.abs(sol.y[:, -1] - x0).max() / np.abs(x0).max()
    assert drift <= 1e-6


@pytest.mark.parametrize("bedrock", ["compat", "conservative"])
def test_ode_from_zero_converges_to_the_steady_state(bedrock):
    forc = uniform_forcing(1, tsoi=298.15, w=1.0, fpi=1.0, alt=10.0, nb=6)
    model = CLM5Model(bedrock=bedrock)
    theta = _fast_theta()
    st = model.steady_state(theta, model.prepare(forc))
    assert st.status[0] == OK
    mat, rhs, *_ = model.dense_system(theta[0], forc, 0)
    slowest = np.min(np.abs(np.linalg.eigvals(mat).real))
    t_end = 40.0 / slowest
    assert t_end < 1e10  # the slowest mode decays within reach (a few 10^7 yr at most)
    xs = st.pools[0].T.ravel()
    sol = solve_ivp(lambda t, x: mat @ x - rhs, (0.0, t_end), np.zeros(140), method="BDF",
                    jac=lambda t, x: mat, rtol=1e-9, atol=1e-12 * np.abs(xs).max())
    assert sol.success
    assert np.abs(sol.y[:, -1] - xs).max() / np.abs(xs).max() <= 1e-6
    # carbon conservation along the trajectory: d(stock)/dt = input - respiration - leak, checked at the end
    d = st.diagnostics
    assert d["respiration"][0] + d["bottom_leak"][0] == pytest.approx(d["input"][0], rel=1e-9)


# ------------------------------------------------------------------------------ worked example (§10)
def test_worked_numerical_check_clm5_md_section_10():
    forc = uniform_forcing(3, alt=[10.0, 1.0, 10.0], nb=np.array([20, 20, 10]))
    model = CLM5Model()
    theta = CLM5_PARAMS.to_physical(np.full((3, 21), 0.5))
    st = model.steady_state(theta, model.prepare(forc))
    assert np.all(st.status == OK)
    soc = st.soc
    np.testing.assert_allclose(soc @ DZ, [259561, 108042, 39246.6], rtol=5e-6)
    np.testing.assert_allclose((soc * overlap_weights(0.0, 0.3) * DZ).sum(1), [18478.1, 16776.6, 15551.1],
                               rtol=5e-6)
    np.testing.assert_allclose((soc * overlap_weights(0.0, 1.0) * DZ).sum(1), [43501.2, 45924.9, 31598.8],
                               rtol=5e-6)
    stocks = np.einsum("bzp,z->bp", st.pools, DZ)
    np.testing.assert_allclose(stocks[0], [1061, 41.777, 171.82, 57.274, 511.29, 12807, 246240], rtol=5e-4)
    np.testing.assert_allclose(stocks[1, 4:], [487.34, 15790, 91765], rtol=5e-5)
    np.testing.assert_allclose(stocks[2, 4:], [401.12, 9353.2, 29492], rtol=5e-5)
    np.testing.assert_allclose(soc[:, [0, 2, 4, 7, 9]],
                               [[82452.1, 69070.0, 48663.4, 32678.3, 29532.1],
                                [65025.9, 59618.3, 49765.4, 39523.5, 36833.5],
                                [72965.1, 59511.4, 38598.0, 18803.5, 9641.55]], rtol=5e-6)
    np.testing.assert_allclose(soc[0, [12, 19]], [28376.5, 28254.4], rtol=5e-6)
    obs = model.observe(soc, np.tile([0.05, 0.30, 1.00], (3, 1)))
    np.testing.assert_allclose(obs, [[76844.8, 46011.1, 31041.4], [62946.2, 48283.5, 38217.8],
                                     [67338.1, 35758.3, 15199.8]], rtol=5e-6)
    np.testing.assert_allclose(st.diagnostics["respiration"], [500.0, 500.0, 496.276], rtol=2e-6)
    np.testing.assert_allclose(1.0 / st.diagnostics["rcond"], [7.4e8, 1.6e11, 1.3e11], rtol=0.05)


# ----------------------------------------------------------------------------------- status handling
def test_failures_are_per_item_and_never_raise():
    forc = uniform_forcing(4)
    tsoi = forc.tsoi_k.copy()
    tsoi[2, 5, :] = np.nan  # a layer with 12 NaN months -> bad forcing
    forc = Forcing(**{**forc.as_dict(), "tsoi_k": tsoi})
    kp = np.full((4, 21), 0.5)
    kp[1, 3] = 0.02  # efolding 2 cm: rcond far below eps
    theta = CLM5_PARAMS.to_physical(kp)
    theta[3, 2] = np.nan  # NaN q10
    model = CLM5Model()
    st = model.steady_state(theta, model.prepare(forc))
    assert st.status[0] == OK
    assert st.status[1] == SINGULAR
    assert st.status[2] == BAD_FORCING
    assert st.status[3] in (NONFINITE, SINGULAR)
    assert np.all(np.isnan(st.pools[1:])) and np.all(np.isfinite(st.pools[0]))
    rf = model.steady_state_reference(theta, forc)
    np.testing.assert_array_equal(rf.status[:3], st.status[:3])
    # without the rcond check the small-efolding item solves (the structured solve is fine there)
    loose = CLM5Model(singular="pivot")
    st2 = loose.steady_state(theta, loose.prepare(forc))
    assert st2.status[1] == OK and np.all(np.isfinite(st2.pools[1]))
    assert st2.diagnostics["respiration"][1] == pytest.approx(500.0, rel=1e-6)


def test_negative_pools_clip_or_flag():
    """Outside the prior (fcwdl2 > 1) the L3 pool goes negative: compat clips it, strict flags it."""
    forc = uniform_forcing(1, inputs=(100.0, 200.0, 150.0, 0.0))
    kp = np.full((1, 21), 0.5)
    theta = CLM5_PARAMS.to_physical(kp)
    theta[0, CLM5_PARAMS.index("fcwdl2")] = 1.5
    for clip, expect in ((True, OK), (False, NEGATIVE)):
        model = CLM5Model(negative_pools="clip" if clip else "fail")
        st = model.steady_state(theta, model.prepare(forc))
        rf = model.steady_state_reference(theta, forc)
        assert st.status[0] == expect and rf.status[0] == expect
        if clip:
            assert np.all(st.pools[0, :, 3] == 0.0) and np.all(st.pools >= 0.0)
            np.testing.assert_allclose(st.pools, rf.pools, rtol=1e-9, atol=1e-9 * np.abs(rf.pools).max())


def test_constructor_options():
    with pytest.raises(ValueError, match=r"bedrock='open'.*'compat', 'conservative'"):
        CLM5Model(bedrock="open")
    m = get_model("clm5", bedrock="conservative", negative_pools="fail", singular="pivot")
    o = m.options
    assert (o.bedrock, o.negative_pools, o.singular) == ("conservative", "fail", "pivot")
    assert m.preset == "paper" and m.provenance()["overrides"] == {
        "bedrock": "conservative", "negative_pools": "fail", "singular": "pivot"}
    # the old switches are gone; using one says what replaced it
    with pytest.raises(ValueError, match="rcond_check.*replaced by singular"):
        get_model("clm5", rcond_check=False)
    with pytest.raises(ValueError, match="clip_negative.*replaced by negative_pools"):
        CLM5Model(clip_negative=False)
    # the textbook preset is clm5.md §11's clean mode
    t = get_model("clm5", "textbook").options
    assert (t.bedrock, t.singular, t.negative_pools) == ("conservative", "pivot", "fail")


# ------------------------------------------------------------------------------ CLM5 default branch
def test_fs1s2_clm5_default_is_the_clm5_formula():
    """S1 -> S2 / S1 -> S3 transfer fractions of CLM5's default branch, written from CTSM's decomposition
    cascade (SoilBiogeochemDecompCascadeBGCMod): t = 0.85 - 0.68 * 0.01 * (100 - sand), respired fractions
    rf_s1s2 = rf_s1s3 = t, pathway fractions f_s1s2 = 1 - 0.004 / (1 - t), f_s1s3 = 0.004 / (1 - t); the
    transfer fraction is (1 - rf) f (clm5.md §4.1)."""
    sand = np.array([0.0, 5.0, 12.5, 33.3, 50.0, 71.0, 90.0, 100.0])
    t = 0.85 - 0.68 * 0.01 * (100.0 - sand)
    expect_s2 = (1.0 - t) * (1.0 - 0.004 / (1.0 - t))
    expect_s3 = (1.0 - t) * (0.004 / (1.0 - t))
    fs1s2, fs1s3 = fs1s2_clm5_default(sand)
    np.testing.assert_allclose(fs1s2, expect_s2, rtol=1e-13)
    np.testing.assert_allclose(fs1s3, expect_s3, rtol=1e-13)
    # hand values: sand 0 % -> t = 0.17, 50 % -> 0.51, 100 % -> 0.85
    np.testing.assert_allclose(fs1s2_clm5_default(np.array([0.0, 50.0, 100.0]))[0], [0.826, 0.486, 0.146],
                               rtol=1e-13)
    # sand outside [0, 100] % is clipped; any shape
    lo, hi = fs1s2_clm5_default(np.array([[-20.0], [140.0]]))[0]
    assert lo.shape == (1,) and lo[0] == pytest.approx(0.826, rel=1e-13) and hi[0] == pytest.approx(0.146,
                                                                                                      rel=1e-13)
    # every value is a valid transfer fraction (the S1 respired fraction 1 - fs1s2 - fs1s3 = t stays in (0, 1))
    assert np.all((fs1s2 > 0) & (fs1s2 + fs1s3 < 1))


# ---------------------------------------------------------------------------------------- components
def test_components_against_direct_formulas():
    rng = np.random.default_rng(9)
    forc = random_forcing(rng, 12, zero_input_frac=0.0)
    model = CLM5Model(singular="pivot")
    prep = model.prepare(forc)
    theta = random_theta(rng, CLM5_PARAMS, 12, lo=0.3, hi=0.9)
    st = model.steady_state(theta, prep)
    comp = model.components(theta, prep, state=st)
    p = {n: theta[:, i] for i, n in enumerate(CLM5_PARAMS.names)}
    for i in range(12):
        x = st.pools[i]
        xit = (p["q10"][i] ** ((forc.tsoi_k[i] - 298.15) / 10)).mean(axis=1)
        xiw = np.minimum(1.0, p["w-scaling"][i] * forc.w_scalar[i]).mean(axis=1)
        xi = xit * xiw * np.exp(-ZSOI_M[:N_LAYERS] / p["efolding"][i])
        tau = {1: p["taul1"][i], 2: p["taul2"][i], 3: p["taul2"][i], 4: p["tau4s1"][i], 5: p["tau4s2"][i],
               6: p["tau4s3"][i]}
        flux = {j: np.sum(x[:, j] * xi * DZ) / tau[j] for j in range(1, 7)}
        frac = {1: p["fl1s1"][i], 2: p["fl2s1"][i], 3: p["fl3s2"][i], 4: p["fs1s2"][i] + p["fs1s3"][i],
                5: p["fs2s1"][i] + p["fs2s3"][i], 6: p["fs3s1"][i]}
        cte = sum(frac[j] * flux[j] for j in flux) / sum(flux.values())
        assert comp["cte"][i] == pytest.approx(cte, rel=1e-10)
        stock = x[:, 4:7].T @ DZ
        kk = np.array([1 / tau[4], 1 / tau[5], 1 / tau[6]])
        assert comp["k_system"][i] == pytest.approx((stock * kk).sum() / stock.sum(), rel=1e-12)
        w = x[:, 4:7].sum(1) * DZ / np.sum(x[:, 4:7].sum(1) * DZ)
        assert comp["xi_system"][i] == pytest.approx(np.sum(xi * w), rel=1e-10)
        assert comp["input"][i] == pytest.approx(forc.litter_input[i].sum(), rel=1e-14)
        assert 0.0 <= comp["cte"][i] <= 1.0 and comp["v_system"][i] > 0
    np.testing.assert_allclose(comp["b_system"], comp["b"] ** 5, rtol=1e-14)
    # b estimates beta where the profile is the beta profile: beta^(zbottom/znode) averaged, close to beta
    thawed = prep.thawed
    assert np.all(np.isnan(comp["b"][~thawed]))
    assert np.all(np.abs(comp["b"][thawed] - p["beta"][thawed]) < 0.1)


def test_chunking_and_pickling_do_not_change_results():
    import pickle

    rng = np.random.default_rng(12)
    forc = random_forcing(rng, 37)
    theta = random_theta(rng, CLM5_PARAMS, 37)
    whole = CLM5Model()
    st = whole.steady_state(theta, whole.prepare(forc))
    chunked = pickle.loads(pickle.dumps(CLM5Model(chunk_size=8)))
    st2 = chunked.steady_state(theta, chunked.prepare(forc))
    np.testing.assert_array_equal(st.status, st2.status)
    np.testing.assert_array_equal(st.pools, st2.pools)
    np.testing.assert_array_equal(st.soc, st2.soc)
    for k in st.diagnostics:
        np.testing.assert_array_equal(st.diagnostics[k], st2.diagnostics[k])
