"""Tests of the COMPAS model (``prodampi.soil.compas``; spec ``compas.md``).

The independent checks below do not use the model's own kernels: the continuous equations of ``compas.md``
§4.1 are written out again here (rates, environmental scalar, input profile, Michaelis-Menten fluxes) and only
the dense as-coded transport matrix is borrowed from :mod:`prodampi.soil.transport`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from prodampi.soil import get_model
from prodampi.soil.base import (
    BAD_FORCING,
    INVALID_ANALYTIC,
    INVALID_RATIO,
    NONFINITE,
    OK,
    SINGULAR,
)
from prodampi.soil.compas import (
    COMPAS_COMMENT_VALUES,
    COMPAS_PARAMS,
    POOL_NAMES,
    COMPASModel,
    comment_theta,
    customary_values,
    enzyme_turnover_time,
    soil_closed_form,
)
from prodampi.soil.forcing import Forcing
from prodampi.soil.layers import DZ_M, N_LAYERS, ZSOI_M, overlap_weights
from prodampi.soil.transport import input_profile, transport_matrix_reference
from prodampi.testing.forcing import frozen_column_forcing, random_forcing

DZ = DZ_M[:N_LAYERS]
ZNODE = ZSOI_M[:N_LAYERS]
P = {n: i for i, n in enumerate(COMPAS_PARAMS.names)}
DAYS = 365.0
YEARS_10K_D = 10_000 * DAYS


# ------------------------------------------------------------------------------------------------ helpers
def _theta(rng: np.random.Generator, n: int, lo: float = 1e-4, hi: float = 1 - 1e-4) -> np.ndarray:
    return COMPAS_PARAMS.to_physical(rng.uniform(lo, hi, (n, len(COMPAS_PARAMS))))


def _one_site(t_top: float = 290.0, t_bottom: float = 280.0, w: float = 0.7, alt: float = 9.0,
              alt_ly: float | None = None, nbedrock: int = 20, inputs=(60.0, 150.0, 120.0, 40.0)) -> Forcing:
    """A simple deterministic single-site forcing (K, 1, m, layer index, g C m-2 yr-1)."""
    tz = np.linspace(t_top, t_bottom, N_LAYERS)[:, None] + 3.0 * np.sin(np.arange(12) / 12 * 2 * np.pi)
    alt_ly = alt if alt_ly is None else alt_ly
    return Forcing(tsoi_k=tz[None], w_scalar=np.full((1, N_LAYERS, 12), w), o_scalar=np.full((1, N_LAYERS, 12), 0.9),
                   fpi=np.full((1, N_LAYERS, 12), 0.8), altmax_m=np.full((1, 12), alt),
                   altmax_lastyear_m=np.full((1, 12), alt_ly), nbedrock=np.array([nbedrock]),
                   litter_input=np.array([inputs], dtype=float))


def _valid_theta(forcing: Forcing, seed: int = 0) -> np.ndarray:
    """A parameter vector (23,) giving a valid (status OK) steady state at site 0 of ``forcing``."""
    rng = np.random.default_rng(seed)
    theta = COMPAS_PARAMS.to_physical(rng.uniform(0.1, 0.9, (400, 23)))
    m = COMPASModel()
    st = m.steady_state(theta, m.prepare(forcing.take(slice(0, 1))), np.zeros(400, dtype=int))
    return theta[np.flatnonzero(st.status == OK)[0]]


def _independent_setup(theta: np.ndarray, forcing: Forcing, s: int, tau_enzyme_yr: float) -> dict:
    """Rates (d-1), environmental scalars and input densities written independently from compas.md §4."""
    q10, w = theta[P["q10"]], theta[P["w_scaling"]]
    xi_t = np.nanmean(q10 ** ((forcing.tsoi_k[s] - 298.15) / 10.0), axis=1)
    xi_w = np.nanmean(np.minimum(1.0, w * forcing.w_scalar[s]), axis=1)
    xi_d = np.exp(-ZNODE / 0.5)
    xi = xi_t * xi_w * np.nanmean(forcing.o_scalar[s], axis=1) * xi_d
    xin = np.nanmean(forcing.fpi[s], axis=1)
    beta = theta[P["beta"]]
    z_bot = np.cumsum(DZ)
    z_top = z_bot - DZ
    if np.all(forcing.altmax_lastyear_m[s] > 0):
        v = beta ** (100 * z_top) - beta ** (100 * z_bot)
        v = v / v.sum()
    else:
        v = np.zeros(N_LAYERS)
        v[0] = 1.0
    tmat = transport_matrix_reference(theta[P["bio"]], theta[P["cryo"]], forcing.altmax_m[s],
                                      forcing.altmax_lastyear_m[s], int(forcing.nbedrock[s]))
    return dict(
        xi=xi, xi_twd=xi_t * xi_w * xi_d, xin=xin, v=v, T=tmat,
        I=forcing.litter_input[s][:, None] * v[None, :] / (DZ * DAYS),
        kcwd=xi / (DAYS * theta[P["tau4cwd"]]), kml=xi * xin / (DAYS * theta[P["tau4l1"]]),
        kcl=xi * xin / (DAYS * theta[P["tau4l2"]]),
        Va=1 / (DAYS * theta[P["tau4s1"]]), Vd=1 / (DAYS * theta[P["tau4s4"]]),
        kdth=1 / (DAYS * theta[P["tau4s2_death"]]), kenz=1 / (DAYS * theta[P["tau4s2_enz"]]),
        kE=1 / (DAYS * tau_enzyme_yr), Ka=theta[P["mm_const_assim"]], Kd=theta[P["mm_const_decom"]],
        f=theta[P["fcwdl2"]], p1=theta[P["pl1s1"]], p2=theta[P["pl2s1"]], p3=theta[P["pl3s4"]],
        c1=theta[P["l1_cue"]], c2=theta[P["l2l3_cue"]], eps=theta[P["mic_cue"]], pd=theta[P["pdeath2soc"]],
        tau=dict(l1=theta[P["tau4l1"]], l2=theta[P["tau4l2"]], s1=theta[P["tau4s1"]], s4=theta[P["tau4s4"]],
                 death=theta[P["tau4s2_death"]], enz=theta[P["tau4s2_enz"]], e=tau_enzyme_yr),
    )


def _ode_terms(x: np.ndarray, c: dict, first_order: bool = False) -> list[list[np.ndarray]]:
    """Terms of dX/dt (g C m-3 d-1) per pool of the continuous system of compas.md §4.1 (8 x 20 state).

    ``first_order=True`` replaces both Michaelis-Menten fluxes by their Km >> substrate limit
    (U = Va MIC DOC / Ka, D = Vd ENZ mSOC / Kd).
    """
    cwd, ml, cl, ll, doc, mic, enz, msoc = x.reshape(8, N_LAYERS)
    xi, tm = c["xi"], c["T"]
    f_cwd, f_ml, f_cl, f_ll = c["kcwd"] * cwd, c["kml"] * ml, c["kcl"] * cl, c["kcl"] * ll
    if first_order:
        up = c["Va"] * mic * doc / c["Ka"]
        dep = c["Vd"] * enz * msoc / c["Kd"]
    else:
        up = c["Va"] * xi * mic * doc / (c["Ka"] * xi + doc)
        dep = c["Vd"] * xi * enz * msoc / (c["Kd"] * xi + msoc)
    u_doc = c["p1"] * f_ml + c["p2"] * f_cl
    u_mic = (1 - c["p1"]) * c["c1"] * f_ml + (1 - c["p2"]) * c["c2"] * f_cl + (1 - c["p3"]) * c["c2"] * f_ll
    u_msoc = c["p3"] * f_ll
    tdiag, toff = np.diag(np.diag(tm)), tm - np.diag(np.diag(tm))
    return [
        [c["I"][0], -f_cwd],
        [c["I"][1], -f_ml, -tdiag @ ml, -toff @ ml],
        [c["I"][2], c["f"] * f_cwd, -f_cl, -tdiag @ cl, -toff @ cl],
        [c["I"][3], (1 - c["f"]) * f_cwd, -f_ll, -tdiag @ ll, -toff @ ll],
        [u_doc, (1 - c["pd"]) * c["kdth"] * xi * mic, c["kE"] * xi * enz, dep, -up],
        [u_mic, c["eps"] * up, -(c["kdth"] + c["kenz"]) * xi * mic],
        [c["kenz"] * xi * mic, -c["kE"] * xi * enz],
        [u_msoc, c["pd"] * c["kdth"] * xi * mic, -dep],
    ]


def _rhs(x: np.ndarray, c: dict, first_order: bool = False) -> np.ndarray:
    return np.concatenate([sum(t) for t in _ode_terms(x, c, first_order)])


def _jacobian_sparsity():
    """Sparsity of d(dX/dt)/dX for the 8 x 20 state (pool-major): tridiagonal litter transport, CWD feeding
    CL/LL, and soil pools depending on litter and soil pools of their own layer."""
    from scipy.sparse import csr_matrix

    pat = np.zeros((8, N_LAYERS, 8, N_LAYERS), dtype=bool)
    z = np.arange(N_LAYERS)
    pat[0, z, 0, z] = True
    for p in (1, 2, 3):
        pat[p, z, p, z] = True
        pat[p, z[1:], p, z[:-1]] = True
        pat[p, z[:-1], p, z[1:]] = True
    pat[2, z, 0, z] = pat[3, z, 0, z] = True
    for p in range(4, 8):
        for q in range(1, 8):
            pat[p, z, q, z] = True
    return csr_matrix(pat.reshape(8 * N_LAYERS, 8 * N_LAYERS).astype(float))


def _soil_jacobian(x: np.ndarray, c: dict) -> np.ndarray:
    """(20, 4, 4) Jacobian of the soil block (DOC, MIC, ENZ, mSOC) per layer (d-1)."""
    doc, mic, enz, msoc = x.reshape(8, N_LAYERS)[4:]
    xi = c["xi"]
    ka, kd = c["Ka"] * xi, c["Kd"] * xi
    u_d = c["Va"] * xi * mic * ka / (ka + doc) ** 2
    u_m = c["Va"] * xi * doc / (ka + doc)
    d_s = c["Vd"] * xi * enz * kd / (kd + msoc) ** 2
    d_e = c["Vd"] * xi * msoc / (kd + msoc)
    j = np.zeros((N_LAYERS, 4, 4))
    j[:, 0, 0], j[:, 0, 1], j[:, 0, 2], j[:, 0, 3] = -u_d, (1 - c["pd"]) * c["kdth"] * xi - u_m, \
        c["kE"] * xi + d_e, d_s
    j[:, 1, 0], j[:, 1, 1] = c["eps"] * u_d, c["eps"] * u_m - (c["kdth"] + c["kenz"]) * xi
    j[:, 2, 1], j[:, 2, 2] = c["kenz"] * xi, -c["kE"] * xi
    j[:, 3, 1], j[:, 3, 2], j[:, 3, 3] = c["pd"] * c["kdth"] * xi, -d_e, -d_s
    return j


@pytest.fixture(scope="module")
def batch():
    """About 600 random (forcing, parameter) draws with permafrost, shallow bedrock, zero input, NaN months."""
    rng = np.random.default_rng(20240517)
    n_sites, n_items = 150, 620
    forcing = random_forcing(rng, n_sites, permafrost_frac=0.3, shallow_bedrock_frac=0.3, zero_input_frac=0.05,
                             nan_month_frac=0.02)
    site = rng.integers(0, n_sites, n_items)
    theta = _theta(rng, n_items)
    theta[:40] = COMPAS_PARAMS.to_physical(rng.uniform(0.3, 0.7, (40, 23)))  # a denser block of valid items
    model = COMPASModel()
    prep = model.prepare(forcing)
    return dict(forcing=forcing, site=site, theta=theta, model=model, prep=prep,
                fast=model.steady_state(theta, prep, site),
                ref=model.steady_state_reference(theta, forcing, site))


@pytest.fixture(scope="module")
def valid_draws():
    """Valid (status OK) items at sites with plant input, for the ODE and property tests."""
    rng = np.random.default_rng(7)
    forcing = random_forcing(rng, 40, permafrost_frac=0.3, shallow_bedrock_frac=0.3, zero_input_frac=0.0)
    theta = COMPAS_PARAMS.to_physical(rng.uniform(0.02, 0.98, (3000, 23)))
    site = rng.integers(0, 40, 3000)
    model = COMPASModel()
    prep = model.prepare(forcing)
    st = model.steady_state(theta, prep, site)
    ok = np.flatnonzero(st.status == OK)
    assert ok.size > 100
    return dict(forcing=forcing, theta=theta[ok], site=site[ok], model=model, prep=prep,
                state=model.steady_state(theta[ok], prep, site[ok]))


# ------------------------------------------------------------------------------------------ parameter table
def test_parameter_table_matches_spec() -> None:
    t = COMPAS_PARAMS
    assert len(t) == 23 and t.model == "compas"
    assert t.names == ["bio", "cryo", "q10", "w_scaling", "tau4cwd", "tau4l1", "tau4l2", "tau4s1", "tau4s2_death",
                       "tau4s2_enz", "tau4s3", "tau4s4", "mm_const_assim", "mm_const_decom", "fcwdl2", "pl1s1",
                       "pl2s1", "pl3s4", "l1_cue", "l2l3_cue", "mic_cue", "pdeath2soc", "beta"]
    kp0, kp1 = t.to_physical(np.zeros(23)), t.to_physical(np.ones(23))
    expect_lo = [3e-5, 3e-5, 1.2, 0, 1, 0, 0.1, 0.001, 0, 15, 0, 0, 300, 1e5, 0.5, 0, 0.05, 0.6, 0.4, 0, 0.01, 0, 0.5]
    expect_hi = [5e-4, 1.6e-3, 3, 5, 6, 0.1, 0.3, 0.03, 2, 30, 0.15, 3e-4, 3000, 1e6, 1, 0.1, 0.3, 0.95, 0.9, 0.4,
                 0.7, 1, 0.9999]
    np.testing.assert_allclose(kp0, expect_lo, rtol=1e-14)
    np.testing.assert_allclose(kp1, expect_hi, rtol=1e-14)
    assert np.all(np.isnan(t.customary))  # customary values come from the DA, never a priori
    assert set(COMPAS_COMMENT_VALUES) == set(t.names)
    ct = comment_theta()
    assert np.all((ct > t.lo) & (ct < t.hi))
    assert ct[P["q10"]] == 1.5 and ct[P["mm_const_assim"]] == 400.0


def test_registry_and_interface() -> None:
    m = get_model("compas", enzyme_tau_source="kp11_log")
    assert isinstance(m, COMPASModel) and m.name == "compas" and m.options.enzyme_tau_source == "kp11_log"
    assert m.pool_names == POOL_NAMES == ("CWD", "ML", "CL", "LL", "DOC", "MIC", "ENZ", "mSOC")
    assert m.soc_pools == (4, 5, 6, 7)
    with pytest.raises(ValueError):
        COMPASModel(bedrock="leaky")
    with pytest.raises(ValueError):
        COMPASModel(cte_donors=("SOIL",))


def test_normalized_physical_round_trip() -> None:
    rng = np.random.default_rng(3)
    kp = rng.uniform(0, 1, (1000, 23))
    kp[0], kp[1], kp[2], kp[3] = 0.0, 1.0, 1e-4, 1 - 1e-4
    np.testing.assert_allclose(COMPAS_PARAMS.to_normalized(COMPAS_PARAMS.to_physical(kp)), kp, rtol=0, atol=4e-16)
    th = COMPAS_PARAMS.to_physical(kp)
    np.testing.assert_allclose(COMPAS_PARAMS.to_physical(COMPAS_PARAMS.to_normalized(th)), th, rtol=4e-16,
                               atol=0)
    # tau_ENZ as coded: 10^(-3 + 3 kp13), recovered from the physical Km,assim
    np.testing.assert_allclose(enzyme_turnover_time(th), 10.0 ** (-3 + 3 * kp[:, P["mm_const_assim"]]), rtol=1e-13)
    np.testing.assert_allclose(enzyme_turnover_time(th, "kp11_log"), 10.0 ** (-3 + 3 * kp[:, P["tau4s3"]]),
                               rtol=1e-13)
    np.testing.assert_array_equal(enzyme_turnover_time(th, "kp11_linear"), th[:, P["tau4s3"]])


def test_customary_values_options() -> None:
    kp = np.array([[0.0] * 23, [1.0] * 23, [np.nan] * 23, [0.5] * 23])
    valid = np.array([False, True, False, True])
    np.testing.assert_allclose(customary_values(kp), COMPAS_PARAMS.to_physical(np.full(23, 0.5)), rtol=1e-15)
    np.testing.assert_allclose(customary_values(kp, valid, customary_set="valid_sites"),
                               COMPAS_PARAMS.to_physical(np.full(23, 0.75)), rtol=1e-15)
    phys = customary_values(kp, average_space="physical")
    np.testing.assert_allclose(phys, COMPAS_PARAMS.to_physical(np.full(23, 0.5)), rtol=1e-15)  # linear maps
    # tau_ENZ as coded follows the normalised mean of kp13: a geometric-type mean
    tau = enzyme_turnover_time(customary_values(kp[[0, 1]]))
    assert np.isclose(tau, 10 ** -1.5) and not np.isclose(tau, np.mean(enzyme_turnover_time(
        COMPAS_PARAMS.to_physical(kp[[0, 1]]))))
    with pytest.raises(ValueError):
        customary_values(kp, customary_set="valid_sites")


# ------------------------------------------------------------------------------ (1) fast path = dense path
def test_fast_equals_dense_reference(batch) -> None:
    fast, ref, f, site = batch["fast"], batch["ref"], batch["forcing"], batch["site"]
    n = len(site)
    assert n >= 500
    np.testing.assert_array_equal(fast.status, ref.status)
    # the draw set must exercise every class and the edge regimes
    counts = np.bincount(fast.status, minlength=7)
    for code in (OK, NONFINITE, INVALID_ANALYTIC, INVALID_RATIO):
        assert counts[code] >= 5, (code, counts)
    ok = fast.status == OK
    alt = np.fmax(f.altmax_m, f.altmax_lastyear_m)[site]
    assert np.sum(ok & np.all((alt > 0) & (alt <= 2), axis=1)) >= 3  # cryoturbation all year
    assert np.sum(ok & (f.nbedrock[site] < 20)) >= 5  # shallow bedrock
    assert np.sum(ok & ~np.all(f.altmax_lastyear_m[site] > 0, axis=1)) >= 3  # all input to layer 1
    zero = f.litter_input[site].sum(axis=1) == 0
    assert zero.sum() >= 5 and np.all(fast.status[zero] == NONFINITE)

    # NONFINITE items keep their finite layers (paper default): NaN exactly where the reference has NaN.
    # Soil pools are compared where no litter pool of the layer is at the edge of the float range (nonzero and
    # below 1e-290, i.e. subnormal or nearly): there (the last layers before litter underflows to 0 at a frozen
    # site) the closed form is rounding noise in either algebraic arrangement (up to ~10 % apart).
    lit = np.abs(ref.pools[..., :4])  # flipped items are <= 0
    normal = ~np.any((lit > 0) & (lit < 1e-290), axis=-1)  # (B, 20)
    assert (~normal).sum() < 0.005 * normal.size  # 25 of 12,400 layers here
    for a, b, keep in ((fast.pools[..., :4], ref.pools[..., :4], True), (fast.pools[..., 4:], ref.pools[..., 4:],
                                                                          normal[..., None]),
                       (fast.soc, ref.soc, normal)):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        fin = np.isfinite(b) & keep
        np.testing.assert_allclose(a[fin], b[fin], rtol=1e-9, atol=1e-290)
    partial = (fast.status == NONFINITE) & np.isfinite(fast.pools).any(axis=(1, 2))
    assert partial.sum() >= 5  # finite layers of NONFINITE items are kept (and checked above)
    assert fast.pools.shape == (n, N_LAYERS, 8) and fast.soc.shape == (n, N_LAYERS)
    for key in ("input", "respiration", "soil_respiration", "soil_input", "soc_stock"):
        a, b = fast.diagnostics[key], ref.diagnostics[key]
        fin = np.isfinite(b)
        np.testing.assert_array_equal(np.isfinite(a), fin)
        np.testing.assert_allclose(a[fin], b[fin], rtol=1e-9)
    leak_diff = np.abs(fast.diagnostics["bottom_leak"] - ref.diagnostics["bottom_leak"])
    assert np.nanmax(leak_diff[ok] / fast.diagnostics["input"][ok]) < 1e-9


def test_fast_equals_dense_reference_textbook_options() -> None:
    rng = np.random.default_rng(11)
    f = random_forcing(rng, 40, permafrost_frac=0.4, shallow_bedrock_frac=0.5, zero_input_frac=0.05)
    site = rng.integers(0, 40, 120)
    theta = _theta(rng, 120, 0.05, 0.95)
    for model in (COMPASModel(preset="textbook"), COMPASModel(validity="negative", nonfinite="nan", chunk_size=7)):
        fast = model.steady_state(theta, model.prepare(f), site)
        ref = model.steady_state_reference(theta, f, site)
        np.testing.assert_array_equal(fast.status, ref.status)
        np.testing.assert_array_equal(np.isnan(fast.pools), np.isnan(ref.pools))
        fin = np.isfinite(ref.pools)
        # atol: values near the subnormal range (< 1e-290, deep layers of frozen sites) lose relative precision
        np.testing.assert_allclose(fast.pools[fin], ref.pools[fin], rtol=1e-9, atol=1e-290)


def test_chunking_and_site_index_do_not_change_results(batch) -> None:
    f, theta, site = batch["forcing"], batch["theta"][:150], np.arange(150)
    a = COMPASModel(chunk_size=512).steady_state(theta, COMPASModel().prepare(f), None)
    m = COMPASModel(chunk_size=13)
    b = m.steady_state(theta, m.prepare(f), site)
    np.testing.assert_array_equal(a.status, b.status)
    np.testing.assert_array_equal(a.pools, b.pools)
    one = m.steady_state(theta[5:6], m.prepare(f.take(slice(5, 6))))
    np.testing.assert_array_equal(one.pools[0], b.pools[5])
    with pytest.raises(ValueError, match="2-D"):  # a 1-D theta is rejected (base rule, both models)
        m.steady_state(theta[5], m.prepare(f.take(slice(5, 6))))


# ---------------------------------------------------------------------- (2) independent ODE integration
def _pick_ode_items(valid_draws, n_items: int, min_fast: int):
    """Valid items whose equilibrium is stable, with at least ``min_fast`` layers relaxing within 10,000/50 yr."""
    out = []
    st, theta, site, f = valid_draws["state"], valid_draws["theta"], valid_draws["site"], valid_draws["forcing"]
    for i in range(len(site)):
        c = _independent_setup(theta[i], f, site[i], float(enzyme_turnover_time(theta[i])))
        x = st.pools[i].T.ravel().copy()
        lam = np.linalg.eigvals(_soil_jacobian(x, c))
        slowest = lam.real.max(axis=1)
        assert np.all(slowest < 1e-9 * np.abs(lam).max(axis=1))  # no unstable equilibrium in any layer
        fast = slowest < -50.0 / YEARS_10K_D
        if fast.sum() >= min_fast:
            out.append((i, c, x, fast))
        if len(out) == n_items:
            return out
    raise AssertionError("not enough suitable parameter sets")


def test_ode_residual_at_closed_form(valid_draws) -> None:
    st, theta, site, f = valid_draws["state"], valid_draws["theta"], valid_draws["site"], valid_draws["forcing"]
    for i in range(0, len(site), max(1, len(site) // 60)):
        c = _independent_setup(theta[i], f, site[i], float(enzyme_turnover_time(theta[i])))
        terms = _ode_terms(st.pools[i].T.ravel(), c)
        net = np.concatenate([sum(t) for t in terms])
        gross = np.concatenate([sum(np.abs(x) for x in t) for t in terms])
        assert np.all(np.abs(net) <= 1e-12 * gross + 1e-300), i


def test_ode_stays_at_steady_state_and_converges_to_it(valid_draws) -> None:
    sparsity = _jacobian_sparsity()
    for i, c, x_ss, fast in _pick_ode_items(valid_draws, n_items=2, min_fast=3):
        scale = x_ss.copy()

        def fy(t, y, c=c, scale=scale):
            return _rhs(y * scale, c) / scale

        # drift from the closed-form steady state over 10,000 yr (stiff solver; sparse LU)
        sol = solve_ivp(fy, (0.0, YEARS_10K_D), np.ones(x_ss.size), method="Radau", rtol=1e-10, atol=1e-12,
                        jac_sparsity=sparsity)
        assert sol.success
        assert np.max(np.abs(sol.y[:, -1] - 1.0)) <= 1e-6, i
        # perturbed and zero soil pools in the layers whose slowest turnover allows convergence
        soil_fast = np.zeros((8, N_LAYERS), dtype=bool)
        soil_fast[4:, fast] = True
        soil_fast = soil_fast.ravel()
        rng = np.random.default_rng(i)
        for start in (rng.uniform(0.3, 2.0, x_ss.size), np.zeros(x_ss.size)):
            y0 = np.where(soil_fast, start, 1.0)
            sol = solve_ivp(fy, (0.0, YEARS_10K_D), y0, method="Radau", rtol=1e-9, atol=1e-12,
                            jac_sparsity=sparsity)
            assert sol.success
            assert np.max(np.abs(sol.y[:, -1] - 1.0)) <= 1e-6, i


def test_mass_balance(batch, valid_draws) -> None:
    for st in (batch["fast"], valid_draws["state"]):
        ok = st.status == OK
        d = st.diagnostics
        np.testing.assert_allclose(d["respiration"][ok] + d["bottom_leak"][ok], d["input"][ok], rtol=1e-9)
        # compas.md §12.5.2: column soil respiration = column soil input
        np.testing.assert_allclose(d["soil_respiration"][ok], d["soil_input"][ok], rtol=1e-10)
    # the compat operator leaks at shallow bedrock; the conservative one does not
    f = _one_site(nbedrock=6, alt=9.0)
    theta = comment_theta()[None]
    theta[0, P["beta"]] = 0.99
    theta[0, P["bio"]] = 4e-4
    leaky = COMPASModel().steady_state(theta, COMPASModel().prepare(f))
    tight = COMPASModel(bedrock="conservative")
    closed = tight.steady_state(theta, tight.prepare(f))
    # the one-sided exchange of layer nbedrock+1 with the layer below is a sink or (deep litter richer) a source
    assert abs(leaky.diagnostics["bottom_leak"][0]) > 1e-6 * leaky.diagnostics["input"][0]
    assert abs(closed.diagnostics["bottom_leak"][0]) < 1e-12 * closed.diagnostics["input"][0]


# ------------------------------------------------------------------------------- (3) first-order limit
def test_michaelis_menten_approaches_first_order_limit() -> None:
    """Growing Km at fixed specificity Vmax/Km drives Km*xi/substrate -> inf and the pools to the linear model."""
    f = _one_site()
    base = comment_theta()
    model = COMPASModel(enzyme_tau_source="kp11_log")  # tau_ENZ must not follow Km,assim here
    prep = model.prepare(f)
    errors, ratios = [], []
    for s in (1.0, 10.0, 100.0, 1e3, 1e4, 1e5):
        th = base.copy()
        th[P["mm_const_assim"]] *= s
        th[P["tau4s1"]] /= s
        th[P["mm_const_decom"]] *= s
        th[P["tau4s4"]] /= s
        st = model.steady_state(th[None], prep)
        assert st.status[0] in (OK, INVALID_RATIO)
        pools = np.abs(st.pools[0])
        c = _independent_setup(th, f, 0, float(enzyme_turnover_time(th, "kp11_log")))
        # first-order (linear-in-substrate) model, same litter: closed form derived here, checked by its ODE
        k_mic = c["kdth"] + c["kenz"]
        fl = [c["kml"] * pools[:, 1], c["kcl"] * pools[:, 2], c["kcl"] * pools[:, 3]]
        u_doc = c["p1"] * fl[0] + c["p2"] * fl[1]
        u_mic = (1 - c["p1"]) * c["c1"] * fl[0] + (1 - c["p2"]) * c["c2"] * fl[1] + (1 - c["p3"]) * c["c2"] * fl[2]
        u_msoc = c["p3"] * fl[2]
        mic = (u_mic + c["eps"] * (u_doc + u_msoc)) / ((1 - c["eps"]) * k_mic * c["xi"])
        enz = c["kenz"] / c["kE"] * mic
        doc = (k_mic * c["xi"] * mic - u_mic) * c["Ka"] / (c["eps"] * c["Va"] * mic)
        msoc = (u_msoc + c["pd"] * c["kdth"] * c["xi"] * mic) * c["Kd"] / (c["Vd"] * enz)
        x_lin = np.concatenate([pools[:, :4].T.ravel(), doc, mic, enz, msoc])
        terms = _ode_terms(x_lin, c, first_order=True)
        gross = np.concatenate([sum(np.abs(x) for x in t) for t in terms])[80:]
        assert np.all(np.abs(_rhs(x_lin, c, first_order=True)[80:]) <= 1e-12 * gross)
        err = max(np.max(np.abs(pools[:, 4] / doc - 1)), np.max(np.abs(pools[:, 7] / msoc - 1)))
        errors.append(err)
        ratios.append(min(np.min(c["Ka"] * c["xi"] / pools[:, 4]), np.min(c["Kd"] * c["xi"] / pools[:, 7])))
        np.testing.assert_allclose(pools[:, 5], mic, rtol=1e-12)  # MIC/ENZ do not depend on the kinetics
    errors, ratios = np.array(errors), np.array(ratios)
    assert errors[0] > 1e-3  # the Michaelis-Menten terms matter at the base point
    assert np.all(np.diff(errors) < 0) and errors[-1] < 1e-4 * errors[0]
    np.testing.assert_allclose(errors[1:] / errors[:-1], 0.1, rtol=0.2)  # O(1/Km) convergence
    assert np.all(np.diff(ratios) > 0) and ratios[-1] > 1e4  # Km*xi >> substrate


# ---------------------------------------------------------------------------- (5) compas.md §12.5 properties
def test_input_scaling_law(valid_draws) -> None:
    """§12.5.3: inputs x c leave DOC and mSOC unchanged, scale MIC, ENZ and litter by c."""
    m, f = valid_draws["model"], valid_draws["forcing"]
    theta, site, base = valid_draws["theta"][:200], valid_draws["site"][:200], valid_draws["state"]
    c = 3.7
    f2 = Forcing(**{**f.as_dict(), "litter_input": f.litter_input * c})
    st = m.steady_state(theta, m.prepare(f2), site)
    ok = (st.status == OK) & (base.status[:200] == OK)
    assert ok.sum() > 100
    a, b = st.pools[ok], base.pools[:200][ok]
    np.testing.assert_allclose(a[..., [4, 7]], b[..., [4, 7]], rtol=1e-11)
    np.testing.assert_allclose(a[..., [0, 1, 2, 3, 5, 6]], c * b[..., [0, 1, 2, 3, 5, 6]], rtol=1e-11)


def test_xi_scaling_law_and_input_fraction_form() -> None:
    """§12.5.4 (xi x c at fixed u: DOC, mSOC x c; MIC, ENZ / c) and §12.5.7 (phi/theta form of §5.3)."""
    rng = np.random.default_rng(5)
    n = 2000
    u = rng.uniform(1e-6, 1e-2, (3, n))
    xi = rng.uniform(1e-4, 1.0, n)
    kw = dict(mic_cue=rng.uniform(0.01, 0.7, n), k_death=1 / (DAYS * rng.uniform(0.05, 2, n)),
              k_enz=1 / (DAYS * rng.uniform(15, 30, n)), k_enzyme_decay=1 / (DAYS * 10 ** rng.uniform(-3, 0, n)),
              v_assim=1 / (DAYS * rng.uniform(0.001, 0.03, n)), v_decom=1 / (DAYS * rng.uniform(1e-6, 3e-4, n)),
              km_assim=rng.uniform(300, 3000, n), km_decom=rng.uniform(1e5, 1e6, n), pdeath2soc=rng.uniform(0, 1, n))
    doc, mic, enz, msoc = soil_closed_form(*u, xi, **kw)
    c = 2.5
    doc2, mic2, enz2, msoc2 = soil_closed_form(*u, c * xi, **kw)
    np.testing.assert_allclose(doc2, c * doc, rtol=1e-12)
    np.testing.assert_allclose(msoc2, c * msoc, rtol=1e-12)
    np.testing.assert_allclose(mic2, mic / c, rtol=1e-12)
    np.testing.assert_allclose(enz2, enz / c, rtol=1e-12)
    # input-fraction form
    u_tot = u.sum(axis=0)
    phi_doc, phi_mic, phi_msoc = u / u_tot
    eps, k_mic = kw["mic_cue"], kw["k_death"] + kw["k_enz"]
    th = (phi_mic + eps * (phi_doc + phi_msoc)) / ((1 - eps) * k_mic)
    doc_f = kw["km_assim"] * xi / (kw["v_assim"] * (phi_mic + eps * (phi_doc + phi_msoc)) / k_mic - 1)
    msoc_f = (kw["km_decom"] * xi * (phi_msoc + kw["pdeath2soc"] * kw["k_death"] * th)
              / (kw["v_decom"] * kw["k_enz"] / kw["k_enzyme_decay"] * th - phi_msoc
                 - kw["pdeath2soc"] * kw["k_death"] * th))
    np.testing.assert_allclose(mic, u_tot * th / xi, rtol=1e-12)
    np.testing.assert_allclose(enz, kw["k_enz"] / kw["k_enzyme_decay"] * mic, rtol=1e-12)
    np.testing.assert_allclose(doc, doc_f, rtol=1e-9)
    np.testing.assert_allclose(msoc, msoc_f, rtol=1e-9)
    # the code's arrangement of matrix_fun.m gives the same numbers
    r = k_mic * xi * mic - u[1]
    doc_code = (r * kw["km_assim"] * xi) / ((eps * kw["v_assim"] * xi - k_mic * xi) * mic + u[1])
    np.testing.assert_allclose(doc, doc_code, rtol=1e-9)
    # validity conditions of §5.4
    np.testing.assert_array_equal(doc > 0, kw["v_assim"] * (phi_mic + eps * (phi_doc + phi_msoc)) > k_mic)


def test_parameter_11_is_dead_as_coded(valid_draws) -> None:
    m, prep = valid_draws["model"], valid_draws["prep"]
    theta, site = valid_draws["theta"][:100].copy(), valid_draws["site"][:100]
    a = m.steady_state(theta, prep, site)
    theta[:, P["tau4s3"]] = COMPAS_PARAMS.to_physical(np.full(23, 0.93))[P["tau4s3"]]
    b = m.steady_state(theta, prep, site)
    np.testing.assert_array_equal(a.pools, b.pools)
    np.testing.assert_array_equal(a.status, b.status)
    fixed = COMPASModel(enzyme_tau_source="kp11_log")
    c = fixed.steady_state(theta, fixed.prepare(valid_draws["forcing"]), site)
    assert not np.allclose(np.nan_to_num(c.pools[..., 6]), np.nan_to_num(b.pools[..., 6]))


def test_km_substrate_ratios_follow_spec_identities(valid_draws) -> None:
    """compas.md §10: K_a xi/DOC = uptake capacity/uptake - 1, K_d xi/mSOC = V_d xi ENZ/Q - 1; Fig 5 ratios."""
    m, prep = valid_draws["model"], valid_draws["prep"]
    theta, site, st = valid_draws["theta"][:50], valid_draws["site"][:50], valid_draws["state"]
    comp = m.components(theta, prep, site)
    for i in range(0, 50, 7):
        c = _independent_setup(theta[i], valid_draws["forcing"], site[i], float(enzyme_turnover_time(theta[i])))
        x = st.pools[i]
        f_ml, f_cl, f_ll = c["kml"] * x[:, 1], c["kcl"] * x[:, 2], c["kcl"] * x[:, 3]
        u = np.array([c["p1"] * f_ml + c["p2"] * f_cl,
                      (1 - c["p1"]) * c["c1"] * f_ml + (1 - c["p2"]) * c["c2"] * f_cl
                      + (1 - c["p3"]) * c["c2"] * f_ll, c["p3"] * f_ll])
        phi = u / u.sum(axis=0)
        k_mic = c["kdth"] + c["kenz"]
        expect_a = c["Va"] * (phi[1] + c["eps"] * (phi[0] + phi[2])) / k_mic - 1
        q = u[2] + c["pd"] * c["kdth"] * c["xi"] * x[:, 5]
        expect_d = c["Vd"] * c["xi"] * x[:, 6] / q - 1
        np.testing.assert_allclose(comp["km_assim_eff_layer"][i], expect_a, rtol=1e-9)
        np.testing.assert_allclose(comp["km_decom_eff_layer"][i], expect_d, rtol=1e-9)
        np.testing.assert_allclose(comp["km_assim_layer"][i], c["Ka"] / x[:, 4], rtol=1e-12)
        w30 = overlap_weights(0.0, 0.3) * DZ
        assert np.isclose(w30[4], 0.1) and np.all(w30[5:] == 0) and np.allclose(w30[:4], DZ[:4])
        np.testing.assert_allclose(comp["km_assim_ratio"][i], c["Ka"] / (np.sum(x[:, 4] * w30) / 0.3), rtol=1e-12)
        np.testing.assert_allclose(comp["km_decom_ratio"][i],
                                   c["Kd"] / (np.sum(x[:, 4:8].sum(axis=1) * w30) / 0.3), rtol=1e-12)


def test_validity_rules_flip_and_status_codes(batch) -> None:
    fast, theta, site, f = batch["fast"], batch["theta"], batch["site"], batch["forcing"]
    inv = (fast.status == INVALID_ANALYTIC) | (fast.status == INVALID_RATIO)
    assert np.all(fast.pools[inv] <= 0) and np.all(fast.soc[inv] <= 0)  # compat sign flip
    ok = fast.status == OK
    d = fast.diagnostics
    assert np.all(fast.pools[ok] >= 0) and np.all(d["mic_ratio"][ok] >= 10)
    np.testing.assert_allclose(fast.soc[ok], fast.pools[ok][..., 4:8].sum(axis=-1), rtol=1e-14)
    ratio = fast.status == INVALID_RATIO
    assert np.all(d["mic_ratio"][ratio] < 10)
    # fun_var_decom semantics: no 10:1 rule; the unflipped pools are returned
    loose = COMPASModel(validity="negative")
    st = loose.steady_state(theta, loose.prepare(f), site)
    assert np.all(st.status[ratio] == OK) and np.all(st.diagnostics["fails_ratio_rule"][ratio])
    np.testing.assert_array_equal(st.pools[ratio], -fast.pools[ratio])
    # textbook handling: invalid items are NaN
    strict = COMPASModel(invalid="nan")
    st = strict.steady_state(theta, strict.prepare(f), site)
    np.testing.assert_array_equal(st.status, fast.status)
    assert np.all(np.isnan(st.pools[inv])) and np.all(np.isnan(st.soc[inv]))


def test_permanently_frozen_site_keeps_finite_layers() -> None:
    """Acceptance (issue 8): at a permanently frozen site (ALT = 0 all year: all input to layer 1, no mixing)
    the default forward function returns what the authors' function returns.  Litter underflows to exactly 0
    a dozen layers down; there, and only there, DOC and mSOC are 0/0 = NaN.  Every other pool is finite,
    SOC at the observed depths is finite, the item is flagged NONFINITE, and the dense reference agrees."""
    f = frozen_column_forcing()
    rng = np.random.default_rng(8)
    n = 60
    theta = COMPAS_PARAMS.to_physical(rng.uniform(0.05, 0.95, (n, 23)))
    site = np.zeros(n, dtype=int)
    model = COMPASModel()  # paper preset
    assert model.options.nonfinite == "keep"
    fast = model.steady_state(theta, model.prepare(f), site)
    ref = model.steady_state_reference(theta, f, site)
    assert np.all(fast.status == NONFINITE) and np.all(ref.status == NONFINITE)

    # where the authors' function divides 0 by 0: layers whose litter (dense solve, written here) is exactly 0
    for i in range(0, n, 6):
        c = _independent_setup(theta[i], f, 0, float(enzyme_turnover_time(theta[i])))
        cwd = c["I"][0] / c["kcwd"]
        ml = np.linalg.solve(np.diag(c["kml"]) + c["T"], c["I"][1])
        cl = np.linalg.solve(np.diag(c["kcl"]) + c["T"], c["I"][2] + c["f"] * c["kcwd"] * cwd)
        ll = np.linalg.solve(np.diag(c["kcl"]) + c["T"], c["I"][3] + (1 - c["f"]) * c["kcwd"] * cwd)
        no_litter = (np.maximum(ml, 0) == 0) & (np.maximum(cl, 0) == 0) & (np.maximum(ll, 0) == 0)
        assert 3 <= no_litter.sum() <= 12 and not no_litter[:8].any()
        expect_nan = np.zeros((N_LAYERS, 8), dtype=bool)
        expect_nan[no_litter, 4] = expect_nan[no_litter, 7] = True  # DOC and mSOC
        np.testing.assert_array_equal(np.isnan(fast.pools[i]), expect_nan)
        np.testing.assert_array_equal(np.isnan(fast.soc[i]), no_litter)
    np.testing.assert_array_equal(np.isnan(fast.pools), np.isnan(ref.pools))
    assert not np.isinf(fast.pools).any()

    # finite values agree with the dense path (away from litter at the edge of the float range, see
    # test_fast_equals_dense_reference)
    lit = np.abs(ref.pools[..., :4])
    normal = ~np.any((lit > 0) & (lit < 1e-290), axis=-1)
    fin = np.isfinite(ref.pools) & normal[..., None]
    assert fin[:, :10].all()  # the top 10 layers (0-1.5 m) are finite and normal
    np.testing.assert_allclose(fast.pools[fin], ref.pools[fin], rtol=1e-9, atol=1e-290)

    # SOC at the observed depths (0.05-1.2 m) is finite, and equal on both paths
    depths = np.tile([0.05, 0.15, 0.3, 0.5, 0.8, 1.2], (n, 1))
    obs_fast, obs_ref = model.observe(fast.soc, depths), model.observe(ref.soc, depths)
    assert np.all(np.isfinite(obs_fast))
    np.testing.assert_allclose(obs_fast, obs_ref, rtol=1e-9)

    # the sign flip follows MATLAB (NaN ignored): flipped exactly where a finite raw pool is negative
    raw = COMPASModel(validity="none").steady_state(theta, model.prepare(f), site)
    has_negative = np.nanmin(raw.pools, axis=(1, 2)) < 0
    assert 0 < has_negative.sum() < n
    np.testing.assert_array_equal(fast.pools[has_negative], -np.abs(raw.pools[has_negative]))
    np.testing.assert_array_equal(fast.pools[~has_negative], raw.pools[~has_negative])

    # the option that blanks the column stays available (and is the textbook choice)
    for blank in (COMPASModel(nonfinite="nan"), COMPASModel(preset="textbook")):
        st = blank.steady_state(theta, blank.prepare(f), site)
        assert np.all(st.status == NONFINITE) and np.all(np.isnan(st.pools)) and np.all(np.isnan(st.soc))


def test_bad_forcing_and_singular_items() -> None:
    f = _one_site()
    bad = Forcing(**{**f.as_dict(), "tsoi_k": np.where(np.arange(N_LAYERS)[None, :, None] == 3, np.nan,
                                                       f.tsoi_k)})
    both = Forcing.concatenate([f, bad])
    theta = np.repeat(_valid_theta(f)[None], 3, axis=0)
    theta[2, P["w_scaling"]] = 0.0  # xi = 0 everywhere: the litter matrix is singular
    m = COMPASModel()
    site = np.array([0, 1, 0])
    for st in (m.steady_state(theta, m.prepare(both), site), m.steady_state_reference(theta, both, site)):
        assert st.status.tolist() == [OK, BAD_FORCING, SINGULAR]
        assert np.all(np.isnan(st.pools[1:])) and np.all(np.isfinite(st.pools[0]))


def test_near_singular_litter_matrix_is_flagged_like_matlab() -> None:
    """Extreme rate contrast (tiny tau4l1, cold deep soil): reciprocal 1-norm condition number < eps."""
    f = _one_site(t_top=300.0, t_bottom=255.0, w=1.0)
    kp = np.full((2, 23), 0.5)
    kp[:, P["tau4l1"]] = [1e-6, 0.5]
    kp[:, P["q10"]] = 1.0
    kp[:, P["tau4cwd"]] = 1.0
    theta = COMPAS_PARAMS.to_physical(kp)
    m = COMPASModel()
    fast = m.steady_state(theta, m.prepare(f), np.zeros(2, dtype=int))
    ref = m.steady_state_reference(theta, f, np.zeros(2, dtype=int))
    assert fast.diagnostics["rcond"][0] < 1e-16 and fast.diagnostics["rcond"][1] > 1e-12
    np.testing.assert_allclose(fast.diagnostics["rcond"], ref.diagnostics["rcond"], rtol=1e-6)
    assert fast.status[0] == SINGULAR and ref.status[0] == SINGULAR
    assert fast.status[1] == ref.status[1] != SINGULAR
    # the structured solve itself is accurate there: without the condition test both paths agree
    piv = COMPASModel(singular="pivot", validity="none")
    a = piv.steady_state(theta, piv.prepare(f), np.zeros(2, dtype=int))
    b = piv.steady_state_reference(theta, f, np.zeros(2, dtype=int))
    assert a.status[0] == OK
    np.testing.assert_allclose(a.pools[0, :, :4], b.pools[0, :, :4], rtol=1e-9)


# --------------------------------------------------------------------------------------------- components
def test_components_against_independent_formulas(valid_draws) -> None:
    m, prep = valid_draws["model"], valid_draws["prep"]
    theta, site, f = valid_draws["theta"][:30], valid_draws["site"][:30], valid_draws["forcing"]
    st = m.steady_state(theta, prep, site)
    comp = m.components(theta, prep, site, state=st)
    legacy = COMPASModel(components_variant="legacy").components(theta, prep, site)
    for key in ("cte", "k_system", "xi_system", "v_system", "b_system", "input"):
        assert comp[key].shape == (30,)
    assert np.all((comp["cte"] >= 0) & (comp["cte"] <= 1))
    np.testing.assert_array_equal(legacy["cte"], comp["cte_legacy"])
    np.testing.assert_array_equal(comp["b_system"], comp["b"] ** 5)
    prof = input_profile(theta[:, P["beta"]], np.all(f.altmax_lastyear_m[site] > 0, axis=1))
    for i in range(0, 30, 3):
        tau_e = float(enzyme_turnover_time(theta[i]))
        c = _independent_setup(theta[i], f, site[i], tau_e)
        x = st.pools[i]
        cwd, ml, cl, ll, doc, mic, enz, msoc = x.T
        tau = c["tau"]
        k = {"ML": 1 / tau["l1"], "CL": 1 / tau["l2"], "LL": 1 / tau["l2"],
             "DOC": mic / tau["s1"] / (c["Ka"] * c["xi"] + doc), "MIC": 1 / tau["death"] + 1 / tau["enz"],
             "ENZ": 1 / tau_e, "mSOC": enz / tau["s4"] / (c["Kd"] * c["xi"] + msoc)}
        eff = {"ML": c["p1"] + (1 - c["p1"]) * c["c1"], "CL": c["p2"] + (1 - c["p2"]) * c["c2"],
               "LL": c["p3"] + (1 - c["p3"]) * c["c2"], "DOC": c["eps"], "MIC": 1.0, "ENZ": 1.0, "mSOC": 1.0}
        pools = {"ML": ml, "CL": cl, "LL": ll, "DOC": doc, "MIC": mic, "ENZ": enz, "mSOC": msoc}
        flux = {p: np.sum(pools[p] * k[p] * c["xi_twd"] * DZ) for p in pools}
        np.testing.assert_allclose(comp["cte"][i], sum(eff[p] * flux[p] for p in pools) / sum(flux.values()),
                                   rtol=1e-10)
        np.testing.assert_allclose(comp["k_system"][i], sum(np.sum(k[p] * pools[p] * DZ) for p in pools)
                                   / sum(np.sum(pools[p] * DZ) for p in pools), rtol=1e-10)
        soil = (doc + mic + enz + msoc) * DZ
        np.testing.assert_allclose(comp["xi_system"][i], np.sum(c["xi_twd"] * soil) / soil.sum(), rtol=1e-10)
        litter = (ml + cl + ll) * DZ
        np.testing.assert_allclose(comp["v_system"][i], 365 * np.sum(np.diag(c["T"]) * litter) / litter.sum(),
                                   rtol=1e-9)
        np.testing.assert_allclose(prof[i], c["v"], rtol=1e-9, atol=1e-300)
        # b is ill-conditioned where Y_z -> 1 (which layers are dropped flips with the last bit of Y_z), so it
        # is evaluated on the model's own profile
        y = np.cumsum(prof[i])
        keep = y < 1
        if keep.any():
            b = np.mean(np.exp(np.log(1 - y[keep]) / (ZNODE[keep] * 100)))
            np.testing.assert_allclose(comp["b"][i], b, rtol=1e-12)
        else:  # all input in layer 1: no layer with Y < 1
            assert np.isnan(comp["b"][i])
        np.testing.assert_allclose(comp["input"][i], f.litter_input[site[i]].sum(), rtol=1e-14)
        # legacy bulk_A, with the (1 - p_j) double count of fun_bulk_process.m
        app = [x[:, 1] * c["xi"] / tau["l1"] * (1 - c["p1"]), x[:, 2] * c["xi"] / tau["l2"] * (1 - c["p2"]),
               x[:, 3] * c["xi"] / tau["l2"] * (1 - c["p3"]),
               doc * c["xi"] / tau["s1"] * mic / (c["Ka"] * c["xi"] + doc)]
        fl = [np.sum(a * DZ) for a in app]
        eta = [(1 - c["p1"]) * c["c1"], (1 - c["p2"]) * c["c2"], (1 - c["p3"]) * c["c2"], c["eps"]]
        np.testing.assert_allclose(legacy["cte"][i], sum(e * v for e, v in zip(eta, fl)) / sum(fl), rtol=1e-10)
        assert math.isclose(comp["mic_cue"][i], c["eps"])



def test_components_of_invalid_items(batch) -> None:
    """Negative-pool items give NaN (fun_bulk_process.m); 10:1-rule items are evaluated unflipped."""
    m, prep, theta, site, st = batch["model"], batch["prep"], batch["theta"], batch["site"], batch["fast"]
    comp = m.components(theta, prep, site, state=st)
    neg = np.isin(st.status, (INVALID_ANALYTIC, NONFINITE))
    ratio = st.status == INVALID_RATIO
    for key in ("cte", "k_system", "xi_system", "v_system", "cte_legacy", "k_system_legacy", "km_assim_ratio"):
        assert np.all(np.isnan(comp[key][neg])), key
        assert np.all(np.isfinite(comp[key][ratio | (st.status == OK)])), key
    np.testing.assert_array_equal(comp["status"], st.status)
    loose = COMPASModel(validity="negative")
    other = loose.components(theta, loose.prepare(batch["forcing"]), site)
    np.testing.assert_allclose(other["cte"][ratio], comp["cte"][ratio], rtol=1e-12)
