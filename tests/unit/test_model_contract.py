"""The contract every registered soil model honours, for every preset (a third model gets these for free).

Parametrised over :data:`prodampi.soil.MODELS` x :data:`prodampi.soil.PRESETS`: registry and options record,
batch rules (one implementation in the model base), result shapes and dtypes, NaN pools on failure,
chunk-size and site-index independence, fast path vs dense reference, ``observe`` and ``components`` keys.
Also pins the shared rejection threshold of ill-conditioned solves, behaviourally.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from prodampi.soil import MODELS, PRESETS, SoilModel, get_model
from prodampi.soil.base import (
    BAD_FORCING,
    COMPONENT_KEYS,
    NONFINITE,
    OK,
    SINGULAR,
    STATUS_NAMES,
)
from prodampi.soil.forcing import Forcing
from prodampi.soil.layers import N_LAYERS
from prodampi.soil.observe import pchip_at
from prodampi.soil.options import RCOND_MIN, SoilOptions
from prodampi.testing.forcing import random_forcing, random_theta, uniform_forcing

CASES = [(m, p) for m in MODELS for p in PRESETS]
IDS = [f"{m}-{p}" for m, p in CASES]
#: statuses whose items carry NaN pools in every model and preset
ALWAYS_NAN = (BAD_FORCING, SINGULAR)


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def case(request):
    """A model, a small random batch that contains failures, and its steady state."""
    name, preset = request.param
    model = get_model(name, preset)
    rng = np.random.default_rng(2024)
    n_sites = 24
    forcing = random_forcing(rng, n_sites, permafrost_frac=0.3, shallow_bedrock_frac=0.3, zero_input_frac=0.1)
    tsoi = forcing.tsoi_k.copy()
    tsoi[3, 7, :] = np.nan  # site 3: a layer with no valid month -> BAD_FORCING
    forcing = Forcing(**{**forcing.as_dict(), "tsoi_k": tsoi})
    site = np.concatenate([np.arange(n_sites), rng.integers(0, n_sites, 16)])
    theta = random_theta(rng, model.params, site.size, lo=0.1, hi=0.9)
    theta[30] = np.nan  # an all-NaN parameter vector fails (never raises)
    theta[31] = model.params.lo  # every parameter at its lower bound (zero turnover times): singular
    prep = model.prepare(forcing)
    return dict(name=name, preset=preset, model=model, forcing=forcing, prep=prep, site=site, theta=theta,
                state=model.steady_state(theta, prep, site))


# ------------------------------------------------------------------------------------- registry, options
def test_registry_names():
    assert PRESETS == ("paper", "textbook")
    assert set(MODELS) >= {"clm5", "compas"}
    with pytest.raises(ValueError, match=r"unknown model 'century'.*clm5.*compas"):
        get_model("century")
    for name in MODELS:
        with pytest.raises(ValueError, match=r"unknown preset 'strict'.*paper, textbook"):
            get_model(name, "strict")


@pytest.mark.parametrize(("name", "preset"), CASES, ids=IDS)
def test_options_record(name, preset):
    model = get_model(name, preset)
    assert isinstance(model, SoilModel) and model.name == name and model.preset == preset
    opts = model.options
    assert isinstance(opts, SoilOptions) and isinstance(opts, model.options_class)
    assert dataclasses.is_dataclass(opts) and set(type(opts).presets) == set(PRESETS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.bedrock = "conservative"
    # serialisable for provenance, and it round-trips
    record = dataclasses.asdict(opts)
    assert type(opts)(**json.loads(json.dumps(record))) == opts
    prov = json.loads(json.dumps(model.provenance()))
    assert prov["model"] == name and prov["preset"] == preset and prov["overrides"] == {}
    assert prov["options"] == opts.as_dict()
    assert opts.matching_preset() == preset
    # the shared vocabulary: same fields, same allowed values in every model
    for field, allowed in (("bedrock", ("compat", "conservative")), ("negative_pools", ("clip", "fail")),
                           ("singular", ("rcond", "pivot")), ("nonfinite", ("keep", "nan"))):
        meta = {f.name: f for f in dataclasses.fields(opts)}[field].metadata
        assert meta["choices"] == allowed, field
        assert getattr(opts, field) in allowed
        with pytest.raises(ValueError, match=rf"{name} option {field}='bogus' is not allowed; allowed values: "
                                             + ", ".join(f"'{a}'" for a in allowed)):
            get_model(name, preset, **{field: "bogus"})
    for bad in (0.0, -1.0, float("nan"), "1e-16"):
        with pytest.raises(ValueError, match="rcond_min"):
            get_model(name, preset, rcond_min=bad)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="chunk_size"):
            get_model(name, preset, chunk_size=bad)
    with pytest.raises(ValueError, match=rf"unknown {name} option 'colour'; allowed: bedrock, negative_pools"):
        get_model(name, preset, colour="red")
    # overrides are recorded as such
    other = "conservative" if opts.bedrock == "compat" else "compat"
    m2 = get_model(name, preset, bedrock=other)
    assert m2.options.bedrock == other and m2.provenance()["overrides"] == {"bedrock": other}
    assert type(model)(opts).options == opts  # a record can be passed directly
    with pytest.raises(ValueError):
        type(model)(opts, preset=preset)


def test_paper_is_the_default_preset():
    for name in MODELS:
        assert get_model(name).options == get_model(name, "paper").options
        assert get_model(name).options != get_model(name, "textbook").options


# ------------------------------------------------------------------------------------- batch rules
@pytest.mark.parametrize(("name", "preset"), CASES, ids=IDS)
def test_batch_rules(name, preset):
    """One rule for every model: theta is 2-D (B, P), a 1-D theta is rejected; site_index (B,) integers."""
    model = get_model(name, preset)
    forcing = uniform_forcing(3)
    prep = model.prepare(forcing)
    p = len(model.params)
    theta = random_theta(np.random.default_rng(1), model.params, 3, lo=0.3, hi=0.7)
    for call in (lambda th, idx=None: model.steady_state(th, prep, idx),
                 lambda th, idx=None: model.steady_state_reference(th, forcing, idx),
                 lambda th, idx=None: model.components(th, prep, idx)):
        with pytest.raises(ValueError, match=rf"2-D array \(B, {p}\).*theta\[None, :\]"):
            call(theta[0])  # 1-D: rejected, for a single item pass theta[None, :]
        with pytest.raises(ValueError, match="2-D"):
            call(theta[:, :-1])  # wrong P
        with pytest.raises(ValueError, match="B must equal"):
            call(theta[:2])  # B != S without site_index
        with pytest.raises(ValueError, match="out of range"):
            call(theta[:2], np.array([0, 3]))
        with pytest.raises(ValueError, match="integers"):
            call(theta[:2], np.array([0.0, 1.0]))
        with pytest.raises(ValueError, match="shape"):
            call(theta[:2], np.array([0, 1, 2]))
    one = model.steady_state(theta[1][None, :], prep, np.array([1]))
    assert one.pools.shape == (1, N_LAYERS, len(model.pool_names))
    with pytest.raises(TypeError):
        model.steady_state(theta, object())
    other = get_model(name, preset, bedrock="conservative" if model.options.bedrock == "compat" else "compat")
    with pytest.raises(ValueError, match="bedrock"):
        model.steady_state(theta, other.prepare(forcing))


# ------------------------------------------------------------------------------------- results
def test_shapes_and_dtypes(case):
    model, st, n = case["model"], case["state"], case["site"].size
    npool = len(model.pool_names)
    assert st.pools.shape == (n, N_LAYERS, npool) and st.pools.dtype == np.float64
    assert st.soc.shape == (n, N_LAYERS) and st.soc.dtype == np.float64
    assert st.status.shape == (n,) and st.status.dtype == np.int8
    assert set(np.unique(st.status)) <= set(STATUS_NAMES)
    assert all(0 <= i < npool for i in model.soc_pools)
    for key, val in st.diagnostics.items():
        assert np.shape(val)[0] == n, key
    for key in ("input", "respiration", "bottom_leak", "rcond"):
        assert key in st.diagnostics, key
    ok = st.status == OK
    np.testing.assert_allclose(st.soc[ok], st.pools[ok][..., list(model.soc_pools)].sum(axis=-1), rtol=1e-13)


def test_failures_have_nan_pools(case):
    model, st = case["model"], case["state"]
    assert st.status[3] == BAD_FORCING  # site 3 (NaN layer)
    assert st.status[30] != OK  # all-NaN theta
    assert st.status[31] == SINGULAR  # parameters at the lower bounds
    ok = st.status == OK
    assert ok.sum() >= 5
    assert np.all(np.isfinite(st.pools[ok])) and np.all(np.isfinite(st.soc[ok]))
    for code in ALWAYS_NAN:
        bad = st.status == code
        assert np.all(np.isnan(st.pools[bad])) and np.all(np.isnan(st.soc[bad])), STATUS_NAMES[code]
    nonfin = st.status == NONFINITE
    assert np.all(~np.isfinite(st.pools[nonfin]).all(axis=(1, 2)))
    if model.options.nonfinite == "nan":
        assert np.all(np.isnan(st.pools[nonfin]))
    # any other failure code: pools either all NaN (blanked) or all finite (e.g. a sign-flipped state)
    other = ~ok & ~np.isin(st.status, ALWAYS_NAN + (NONFINITE,))
    for i in np.flatnonzero(other):
        assert np.all(np.isnan(st.pools[i])) or np.all(np.isfinite(st.pools[i])), (i, st.status[i])


def test_chunk_size_does_not_change_results(case):
    """Status, pools and SOC are bit-identical for any chunk size; the diagnostics (column sums done by BLAS,
    whose summation order may depend on the batch width) agree to rounding of the column input."""
    name, preset, theta, site, prep = case["name"], case["preset"], case["theta"], case["site"], case["prep"]
    st = case["state"]
    for chunk in (1, 7):
        small = get_model(name, preset, chunk_size=chunk)
        st2 = small.steady_state(theta, prep, site)
        np.testing.assert_array_equal(st2.status, st.status)
        np.testing.assert_array_equal(st2.pools, st.pools)
        np.testing.assert_array_equal(st2.soc, st.soc)
        assert set(st2.diagnostics) == set(st.diagnostics)
        scale = np.nanmax(st.diagnostics["input"])  # fluxes like bottom_leak are sums that cancel to ~0
        for key in st.diagnostics:
            tol = 1e-12 * scale if key not in ("rcond", "mic_ratio") else 0.0
            np.testing.assert_allclose(st2.diagnostics[key], st.diagnostics[key], rtol=1e-13, atol=tol,
                                       err_msg=key)


def test_site_index_is_a_lookup(case):
    model, forcing, theta, site, st = case["model"], case["forcing"], case["theta"], case["site"], case["state"]
    for i in (0, 5, 27, 39):
        s = int(site[i])
        one = model.steady_state(theta[i:i + 1], model.prepare(forcing.take([s])))
        assert one.status[0] == st.status[i]
        np.testing.assert_array_equal(one.pools[0], st.pools[i])


def test_fast_path_agrees_with_dense_reference(case):
    model, forcing, theta, site, st = case["model"], case["forcing"], case["theta"], case["site"], case["state"]
    rf = model.steady_state_reference(theta, forcing, site)
    assert rf.pools.shape == st.pools.shape and rf.status.dtype == np.int8
    rc = rf.diagnostics["rcond"]
    near = np.abs(np.log(np.maximum(rc, 1e-300) / model.options.rcond_min)) < 0.05
    nan_theta = np.isnan(theta).any(axis=1)  # fails on both paths, possibly with different codes
    assert np.all((rf.status == st.status) | near | nan_theta)
    assert np.all((rf.status[nan_theta] != OK) & (st.status[nan_theta] != OK))
    ok = (rf.status == OK) & (st.status == OK) & (rc > 1e-13)
    assert ok.sum() >= 5
    scale = np.abs(rf.pools[ok]).max(axis=1, keepdims=True)  # per item and pool
    assert np.all(np.abs(st.pools[ok] - rf.pools[ok]) <= 1e-9 * scale)
    np.testing.assert_array_equal(np.isnan(st.pools[ok]), np.isnan(rf.pools[ok]))


def test_observe_and_components(case):
    model, prep, theta, site, st = case["model"], case["prep"], case["theta"], case["site"], case["state"]
    n = site.size
    depths = np.tile([0.05, 0.15, np.nan, 0.5, 1.2], (n, 1))
    obs = model.observe(st.soc, depths)
    assert obs.shape == (n, 5)
    assert np.all(np.isnan(obs[:, 2]))
    ok = st.status == OK
    assert np.all(np.isfinite(obs[ok][:, [0, 1, 3, 4]]))
    np.testing.assert_array_equal(obs, pchip_at(st.soc, depths))
    comp = model.components(theta, prep, site, state=st)
    for key in COMPONENT_KEYS:
        assert key in comp, key
        assert np.shape(comp[key]) == (n,), key
    fed = ok & (case["forcing"].litter_input[site].sum(axis=1) > 0)  # no input: 0/0 ratios
    for key in ("cte", "k_system", "xi_system", "v_system", "input"):
        assert np.all(np.isfinite(comp[key][fed])), key
    np.testing.assert_allclose(comp["input"], case["forcing"].litter_input[site].sum(axis=1), rtol=1e-14)
    again = model.components(theta, prep, site)  # state computed inside
    for key in COMPONENT_KEYS:
        np.testing.assert_array_equal(again[key], comp[key])


# ------------------------------------------------------------------------------------- rcond threshold
#: a parameter that controls the conditioning, and two values putting the 1-norm rcond of the model's matrix
#: (CLM5: 140 x 140; COMPAS: 80 x 80 litter) about 4.5x above and 20x below machine epsilon, at the
#: uniform forcing of clm5.md §10 with all other normalised parameters at 0.5
RCOND_KNOB = {"clm5": ("efolding", 0.266, 0.2308), "compas": ("tau4l1", 2.6e-8, 2.6e-10)}


def test_rcond_threshold_is_pinned():
    assert RCOND_MIN == 2.220446049250313e-16 == np.finfo(np.float64).eps
    for name in MODELS:
        for preset in PRESETS:
            assert get_model(name, preset).options.rcond_min == RCOND_MIN


@pytest.mark.parametrize("name", sorted(RCOND_KNOB))
def test_rcond_threshold_rejects_just_below_and_accepts_just_above(name):
    """A ×100 change of the threshold either way flips one of the two items (behavioural pin)."""
    knob, above, below = RCOND_KNOB[name]
    model = get_model(name)  # paper: singular="rcond"
    forcing = uniform_forcing(2)
    theta = model.params.to_physical(np.full((2, len(model.params)), 0.5))
    theta[:, model.params.index(knob)] = [above, below]
    for st in (model.steady_state(theta, model.prepare(forcing)), model.steady_state_reference(theta, forcing)):
        rc = st.diagnostics["rcond"]
        assert 2.0 * RCOND_MIN < rc[0] < 50.0 * RCOND_MIN  # the cases straddle eps within a factor 100
        assert RCOND_MIN / 50.0 < rc[1] < RCOND_MIN / 2.0
        assert st.status[0] == OK and st.status[1] == SINGULAR
        assert np.all(np.isfinite(st.pools[0])) and np.all(np.isnan(st.pools[1]))
    # without the rcond rule both solve (the structured solve is accurate there)
    pivot = get_model(name, singular="pivot")
    st = pivot.steady_state(theta, pivot.prepare(forcing))
    assert np.all(st.status == OK)
