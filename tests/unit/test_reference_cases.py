"""Regression against the authors' own forward functions, case by case (``authors_reference_subset``).

``../shared/data/authors_reference_subset/{clm5,compas}_cases.json`` hold eight cases per model of PRODA's
``matrix_fun.m`` run unmodified under GNU Octave (README of that folder): the inputs in MATLAB shapes, the
parameters, the steady-state pools, SOC per layer and column, and SOC at the observed depths (pchip).  Each
case is its own test, on the fast path and on the dense reference path, with the ``paper`` preset:

* pools, SOC per layer and column stocks agree to 1e-9 relative, element by element (a NaN where the
  authors' function returns NaN counts as agreement);
* SOC at the observation and extra depths agrees to 1e-9 of the profile's largest value (the README's
  comparison note: at the exact last node Octave's cubic has cancellation noise relative to tiny deep values);
* the intermediate quantities the reference dumped (input profile, transport block, and for CLM5 the
  month-averaged K diagonal and the input vector) agree to 1e-12, which localises a regression;
* the 1-norm rcond agrees with Octave's and the status is OK (no case raised a warning).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from prodampi.soil import get_model
from prodampi.soil.base import OK
from prodampi.soil.compas import COMPAS_PARAMS, enzyme_turnover_time
from prodampi.soil.forcing import Forcing
from prodampi.soil.layers import DZ_M, N_LAYERS, overlap_weights
from prodampi.soil.options import RCOND_MIN
from prodampi.soil.transport import input_profile, thawed_all_year, transport_matrix_reference

REFERENCE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "authors_reference_subset"
DZ = DZ_M[:N_LAYERS]
RTOL = 1e-9
#: column of ``soc_layer`` holding total SOC, and the pool indices of the other columns
SOC_COLUMNS = {"clm5": (4, 5, 6), "compas": (4, 5, 6, 7)}
N_CASES = 8  # per model (README: cases 026-033)


def _load(model: str) -> list[dict]:
    path = REFERENCE_DIR / f"{model}_cases.json"
    if not path.is_file():
        return []
    with path.open() as fh:
        return json.load(fh)


CASES = {m: _load(m) for m in ("clm5", "compas")}
PARAMS = [pytest.param(m, c, id=c["case_id"]) for m in CASES for c in CASES[m]] or [
    pytest.param(None, None, id="missing", marks=pytest.mark.skip(reason=f"{REFERENCE_DIR} not present"))]


def forcing_from_case(case: dict) -> Forcing:
    """The 13 MATLAB-shaped forcing arguments of one case as a one-site :class:`Forcing`.

    20 x 12 arrays are [layer, month] as ours; 12 x 1 vectors are flattened; nbedrock is constant over months;
    the four 1 x 12 monthly column inputs are summed to the annual inputs (g C m-2 yr-1) as ``matrix_fun.m``
    does.
    """
    inp = case["inputs"]
    shapes = case["input_shapes"]
    arr = {k: np.asarray(v, dtype=np.float64) for k, v in inp.items()}
    for k, a in arr.items():
        assert list(a.shape) == shapes[k], k  # the README's MATLAB shapes
    nb = arr["nbedrock_layer_index"][:, 0]
    assert np.all(nb == nb[0])
    litter = np.array([arr[k].sum() for k in ("litter_input_cwd_monthly", "litter_input_metabolic_monthly",
                                              "litter_input_cellulose_monthly", "litter_input_lignin_monthly")])
    return Forcing(tsoi_k=arr["soil_temperature_K"][None], w_scalar=arr["w_scalar"][None],
                   o_scalar=arr["o_scalar"][None], fpi=arr["n_scalar_fpi"][None],
                   altmax_m=arr["altmax_current_m"][:, 0][None],
                   altmax_lastyear_m=arr["altmax_lastyear_m"][:, 0][None], nbedrock=nb[:1].copy(),
                   litter_input=litter[None])


def assert_agree(actual, desired, rtol: float = RTOL, what: str = "") -> None:
    """Element-wise ``|a - d| <= rtol |d|``; NaN must face NaN (agreement), exact zeros must stay ~zero."""
    a = np.asarray(actual, dtype=np.float64)
    d = np.asarray(desired, dtype=np.float64)
    assert a.shape == d.shape, (what, a.shape, d.shape)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(d), err_msg=f"{what}: NaN pattern")
    fin = ~np.isnan(d)
    err = np.abs(a[fin] - d[fin])
    bound = rtol * np.abs(d[fin]) + 1e-300
    assert np.all(err <= bound), f"{what}: max relative error {np.max(err / np.maximum(np.abs(d[fin]), 1e-300)):.3g}"


def test_all_sixteen_cases_are_present():
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f"{REFERENCE_DIR} not present")
    assert [len(CASES[m]) for m in ("clm5", "compas")] == [N_CASES, N_CASES]
    ids = [c["case_id"] for m in CASES for c in CASES[m]]
    assert len(set(ids)) == 2 * N_CASES


@pytest.mark.parametrize("path", ["fast", "dense"])
@pytest.mark.parametrize(("model_name", "case"), PARAMS)
def test_reference_case(model_name, case, path):
    model = get_model(model_name)  # the paper preset reproduces matrix_fun.m
    forcing = forcing_from_case(case)
    kp = np.asarray(case["kp"], dtype=np.float64)
    theta = model.params.to_physical(kp[None])
    out = case["outputs"]

    # parameters: kp -> physical as matrix_fun.m (COMPAS #11 is listed as the kp13-driven tau_ENZ)
    phys = np.array(list(case["params_physical"].values()))
    if model_name == "compas":
        i11 = COMPAS_PARAMS.index("tau4s3")
        np.testing.assert_allclose(enzyme_turnover_time(theta[0]), phys[i11], rtol=1e-13)
        phys[i11] = theta[0, i11]
    np.testing.assert_allclose(theta[0], phys, rtol=1e-13)

    st = (model.steady_state(theta, model.prepare(forcing)) if path == "fast"
          else model.steady_state_reference(theta, forcing))
    assert out["octave_warning_id"] == "" and st.status[0] == OK

    # pools, SOC per layer, stocks
    cpools = np.asarray(out["cpools_layer_by_pool_gC_m3"])
    np.testing.assert_array_equal(np.asarray(out["steady_state_vector_gC_m3"]), cpools.ravel(order="F"))
    assert_agree(st.pools[0], cpools, what="pools")
    cols = SOC_COLUMNS[model_name]
    soc_layer = np.column_stack([st.pools[0][:, list(cols)], st.soc[0]])
    assert_agree(soc_layer, np.asarray(out["soc_layer_gC_m3"]), what="soc_layer")
    stock = soc_layer.T @ DZ
    ref_stock = np.atleast_1d(np.asarray(out["soc_stock_gC_m2"], dtype=np.float64))
    assert_agree(stock if model_name == "compas" else stock[-1:], ref_stock, what="soc_stock")
    if model_name == "compas":
        assert_agree(st.diagnostics["soc_stock"], ref_stock[-1:], what="diagnostic soc_stock")
    top1m = st.soc[0] @ (overlap_weights(0.0, 1.0) * DZ) / 1000.0
    assert_agree(top1m, case["derived_check"]["total_soil_C_0_1m_kgC_m2"], what="0-1 m stock")

    # SOC at the observed and extra depths (pchip with extrapolation), scaled by the profile's maximum
    scale = np.abs(st.soc[0]).max()
    for dkey, vkey in (("obs_depths_m", "soc_at_obs_depths_gC_m3"),
                       ("extra_depths_m", "soc_at_extra_depths_gC_m3")):
        got = model.observe(st.soc, np.asarray(out[dkey])[None])[0]
        want = np.asarray(out[vkey])
        assert np.all(np.isfinite(got) == np.isfinite(want))
        assert np.all(np.abs(got - want) <= RTOL * scale), (dkey, np.abs(got - want).max() / scale)

    # conditioning: same 1-norm rcond as Octave's LAPACK estimate, above the rejection threshold
    diag = out["diagnostics"]
    assert st.diagnostics["rcond"][0] == pytest.approx(diag["system_rcond"], rel=1e-6)
    assert diag["system_rcond"] > RCOND_MIN

    # intermediates dumped by the instrumented reference copy
    beta = theta[0, model.params.index("beta")]
    prof = input_profile(np.array([beta]), thawed_all_year(forcing))[0]
    assert_agree(prof, np.asarray(diag["vertical_input"]), rtol=1e-12, what="vertical_input")
    bio_name = "diffus" if model_name == "clm5" else "bio"
    tri = transport_matrix_reference(theta[0, model.params.index(bio_name)], theta[0, model.params.index("cryo")],
                                     forcing.altmax_m[0], forcing.altmax_lastyear_m[0], int(forcing.nbedrock[0]))
    ref_tri = np.asarray(diag["tri_block"])
    np.testing.assert_allclose(tri, ref_tri, rtol=1e-12, atol=1e-12 * np.abs(ref_tri).max())
    if model_name == "clm5":
        _mat, rhs, _amat, kbar, _vmat, _total = model.dense_system(theta[0], forcing, 0)
        assert_agree(kbar, np.asarray(diag["kk_diag"]), rtol=1e-12, what="kk_diag")
        assert_agree(-rhs, np.asarray(diag["matrix_in"]), rtol=1e-12, what="matrix_in")
