"""True parameters and true SOC of the synthetic world (``world.md`` §7): model runs, calibration, resampling.

:func:`true_fields` is the truth step of :func:`prodampi.data.world.make_world`: for each model it builds the
frozen truth map (:mod:`prodampi.data.truth`) on the valid cells' covariates and a hidden field, calibrates the
logit centre of the dominant turnover parameter(s) so the true SOC total (0-1 m) hits its target, runs the
model to steady state, redraws failed cells (:func:`resample_failures`) and records everything per model;
:func:`shared_truth` forms the shared truth T (``world.md`` §7.1).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..soil.forcing import Forcing
from ..soil.layers import N_LAYERS, overlap_weights, thickness_m
from . import covariates as cov
from .random_fields import SmoothField, rng_for
from .truth import UNIDENTIFIABLE, build_truth_map, driver_matrix

logger = logging.getLogger(__name__)

__all__ = ["MAP_OPTIONS", "CALIBRATION_PARAMS", "TRUE_TOTAL_TARGET_PG", "get_map_model", "run_model",
           "soc_stock_g_m2", "calibration_shift", "resample_failures", "true_fields", "shared_truth",
           "customary_u"]

#: model options for the world's maps: COMPAS as PRODA's global-map forward function ``fun_var_decom``
#: (invalid = a negative pool; no 10:1 soil-C/MIC rule, ``compas.md`` §5.5 / Q7)
MAP_OPTIONS: dict[str, dict[str, Any]] = {"compas": {"validity": "negative"}}
#: calibration parameter per model (logit centre shifted so the true SOC total hits its target)
CALIBRATION_PARAMS: dict[str, tuple[str, ...]] = {"clm5": ("tau4s3", "tau4s2"), "compas": ("mm_const_decom",)}
#: true-parameter SOC totals (0-1 m, Pg C) per 1.0e14 m2 of valid area (``world.md`` §9)
TRUE_TOTAL_TARGET_PG: dict[str, float] = {"clm5": 1469.0, "compas": 1507.0}


def get_map_model(name: str, **options: Any) -> Any:
    """The soil model ``name`` with the world's map options (:data:`MAP_OPTIONS`), ``options`` winning."""
    from ..soil import get_model

    return get_model(name, **{**MAP_OPTIONS.get(name, {}), **options})


def soc_stock_g_m2(soc_g_m3: np.ndarray, top_m: float = 0.0, bottom_m: float = 1.0) -> np.ndarray:
    """SOC stock (g C m-2) between two depths from layer densities (g C m-3), (B, 20) -> (B,).

    Layers are treated as constant within their bounds (``proda_nn_maps.md`` §7.4: the 0-1 m stock takes
    layers 1-8 whole and 0.08/0.28 of layer 9).
    """
    w = overlap_weights(top_m, bottom_m) * thickness_m()
    return np.asarray(soc_g_m3, dtype=np.float64) @ w


def run_model(model: Any, theta: np.ndarray, forcing: Forcing, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Steady-state SOC of ``model`` for per-site physical parameters, in chunks of sites.

    Parameters
    ----------
    model : SoilModel
        A :mod:`prodampi.soil` model.
    theta : (S, P) array
        Physical parameters per site.
    forcing : Forcing
        S sites.
    chunk : int
        Sites per prepare/solve call (bounds memory).

    Returns
    -------
    soc : (S, 20) array
        SOC (g C m-3) at the layer nodes; NaN where the solve failed.
    status : (S,) int8 array
        Model status codes (0 = ok).
    """
    s = forcing.n_sites
    soc = np.full((s, N_LAYERS), np.nan)
    status = np.zeros(s, dtype=np.int8)
    for i in range(0, s, chunk):
        sl = slice(i, min(s, i + chunk))
        prep = model.prepare(forcing.take(sl))
        res = model.steady_state(theta[sl], prep)
        soc[sl] = res.soc
        status[sl] = res.status
    soc[status != 0] = np.nan
    return soc, status


def calibration_shift(model: Any, tmap: Any, z: np.ndarray, forcing: Forcing, area: np.ndarray, seed: int,
                      name: str, chunk: int, n_sample: int = 1500) -> np.ndarray:
    """Logit shift (P,) of the calibration parameters so the true SOC total (0-1 m) hits its target.

    The total is estimated on a fixed random sample of valid cells (area-weighted sum scaled to the full
    valid area, ``area`` (n_valid,) in m2); the target is :data:`TRUE_TOTAL_TARGET_PG` x (valid area /
    1.0e14 m2); the shift is found by bisection in [-6, 6] (SOC increases with the turnover times).
    """
    names = list(model.params.names)
    idx = [names.index(p) for p in CALIBRATION_PARAMS.get(name, ()) if p in names]
    shift = np.zeros(len(names))
    if not idx:
        return shift
    n = area.size
    rng = rng_for(seed, f"calibrate:{name}")
    sample = np.sort(rng.choice(n, size=min(n, n_sample), replace=False))
    f_s = forcing.take(sample)
    z_s = z[sample]
    scale = area.sum() / area[sample].sum()
    target = TRUE_TOTAL_TARGET_PG[name] * area.sum() / 1.0e14  # Pg C, proportional to the valid area

    def total(delta: float) -> float:
        sh = np.zeros(len(names))
        sh[idx] = delta
        theta = model.params.to_physical(tmap.normalized(z_s, shift=sh))
        soc, _ = run_model(model, theta, f_s, chunk)
        stock = soc_stock_g_m2(soc)
        ok = np.isfinite(stock)
        return float((stock[ok] * area[sample][ok]).sum() / max(area[sample][ok].sum(), 1.0)
                     * area[sample].sum() * scale / 1e15)

    lo, hi = -6.0, 6.0
    t_lo, t_hi = total(lo), total(hi)
    if not (t_lo <= target <= t_hi):
        best = lo if abs(t_lo - target) < abs(t_hi - target) else hi
        shift[idx] = best
        logger.warning("%s: true SOC total cannot reach %.0f Pg (range %.0f-%.0f); shift %.1f", name, target,
                       t_lo, t_hi, best)
        return shift
    for _ in range(22):
        mid = 0.5 * (lo + hi)
        if total(mid) < target:
            lo = mid
        else:
            hi = mid
    shift[idx] = 0.5 * (lo + hi)
    return shift


def resample_failures(model: Any, tmap: Any, z: np.ndarray, shift: np.ndarray, u: np.ndarray, theta: np.ndarray,
                      soc: np.ndarray, status: np.ndarray, forcing: Forcing,
                      shrink: tuple[float, ...] = (0.75, 0.5, 0.25, 0.0)) -> tuple:
    """Redraw the true parameters of cells whose steady state failed (``world.md`` §7 validity rule).

    A failed cell's standardised field g is shrunk towards the field's centre, g -> lambda g for lambda in
    ``shrink`` in turn, until the model solves (the centre vectors of :mod:`prodampi.data.truth` are valid in
    nearly every cell).  Deterministic; cells still failing keep status != 0 and NaN SOC.  ``u``, ``theta``,
    ``soc`` and ``status`` are updated in place.

    Returns
    -------
    (u, theta, soc, status, n_resampled)
    """
    bad = np.flatnonzero(status != 0)
    n_res = bad.size
    for lam in shrink:
        if bad.size == 0:
            break
        g = (tmap.raw_g(z[bad]) - tmap.g_mean) / tmap.g_sd
        u_new = 0.05 + 0.9 / (1.0 + np.exp(-(tmap.a + shift + tmap.b * lam * g)))
        th_new = model.params.to_physical(u_new)
        s_new, st_new = run_model(model, th_new, forcing.take(bad))
        u[bad], theta[bad], soc[bad], status[bad] = u_new, th_new, s_new, st_new
        bad = bad[st_new != 0]
    return u, theta, soc, status, n_res


def true_fields(seed: int, models: tuple[str, ...] | None, covariates_valid: np.ndarray, lat_valid: np.ndarray,
                lon_valid: np.ndarray, area_valid_m2: np.ndarray, forcing: Forcing | None, *,
                calibrate: bool = True, chunk_cells: int = 4096,
                ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """True parameters and true-parameter SOC of every model on the valid cells (``world.md`` §7).

    Parameters
    ----------
    seed : int
        World seed.
    models : tuple of str or None
        Models to run; a model whose module cannot be imported is skipped with a warning.
    covariates_valid : (n_valid, 60) array
        The valid cells' covariates (:data:`prodampi.data.covariates.COVARIATE_NAMES` order).
    lat_valid, lon_valid : (n_valid,) arrays
        Valid-cell centres (degrees; the hidden field is evaluated there).
    area_valid_m2 : (n_valid,) array
        Valid-cell areas (m2; calibration target).
    forcing : Forcing
        Forcing of the valid cells.
    calibrate : bool
        Calibrate the :data:`CALIBRATION_PARAMS` (:func:`calibration_shift`).
    chunk_cells : int
        Sites per model call.

    Returns
    -------
    truth : dict
        ``hidden_field`` (n_valid,); per model m: [``da_valid_compas`` (bool)], ``u_<m>``/``theta_<m>``
        (n_valid, P) normalised / physical, ``soc_<m>_g_m3`` (n_valid, 20) g C m-3, ``status_<m>`` (int8),
        ``soc_1m_<m>_g_m2`` (g C m-2), ``param_names_<m>``, ``calibration_shift_<m>`` (P,) logit units;
        then ``soc_truth_g_m3`` / ``soc_1m_truth_g_m2`` (the shared truth, :func:`shared_truth`).
    soc_by_model : dict
        Model name -> (n_valid, 20) true-parameter SOC (g C m-3) of the models that ran.
    info : dict
        Provenance: per model [``da_invalid_compas``], ``resampled_<m>``, ``failed_<m>``,
        ``unidentifiable_<m>``; then ``models_run``, ``models_missing``.
    """
    cov_valid = {n: covariates_valid[:, k] for k, n in enumerate(cov.COVARIATE_NAMES)}
    hidden = SmoothField(seed, "hidden", 800.0)(lat_valid, lon_valid)
    z = driver_matrix(cov_valid, hidden)
    truth_d: dict[str, np.ndarray] = {"hidden_field": hidden}
    info: dict[str, Any] = {}
    missing = []
    soc_by: dict[str, np.ndarray] = {}
    for name in (models or ()):
        try:
            model = get_map_model(name)
        except ImportError as exc:  # pragma: no cover - depends on the tree
            logger.warning("model %s unavailable (%s): its truth is skipped", name, exc)
            missing.append(name)
            continue
        tmap = build_truth_map(name, model.params.names, seed)
        tmap.fit_standardisation(z)
        shift = np.zeros(len(model.params))
        if calibrate and forcing is not None:
            shift = calibration_shift(model, tmap, z, forcing, area_valid_m2, seed, name, chunk_cells)
        u = tmap.normalized(z, shift=shift)
        theta = model.params.to_physical(u)
        soc, status = run_model(model, theta, forcing, chunk_cells)
        u, theta, soc, status, n_resampled = resample_failures(model, tmap, z, shift, u, theta, soc, status,
                                                               forcing)
        if name == "compas":  # does the truth satisfy the DA's validity rule (10:1 soil C / MIC)?
            _, st_da = run_model(get_map_model(name, validity="da", invalid="nan"), theta, forcing, chunk_cells)
            truth_d["da_valid_compas"] = st_da == 0
            info["da_invalid_compas"] = int((st_da != 0).sum())
        truth_d.update({
            f"u_{name}": u, f"theta_{name}": theta, f"soc_{name}_g_m3": soc, f"status_{name}": status,
            f"soc_1m_{name}_g_m2": soc_stock_g_m2(soc), f"param_names_{name}": np.array(model.params.names),
            f"calibration_shift_{name}": shift,
        })
        info[f"resampled_{name}"] = int(n_resampled)
        info[f"failed_{name}"] = int((status != 0).sum())
        info[f"unidentifiable_{name}"] = ",".join(UNIDENTIFIABLE.get(name, ()))
        soc_by[name] = soc
    shared = shared_truth(soc_by, int(covariates_valid.shape[0]))
    truth_d["soc_truth_g_m3"] = shared
    truth_d["soc_1m_truth_g_m2"] = soc_stock_g_m2(shared)
    info["models_run"] = ",".join(soc_by)
    info["models_missing"] = ",".join(missing)
    return truth_d, soc_by, info


def shared_truth(soc_by_model: dict[str, np.ndarray], n_valid: int) -> np.ndarray:
    """The shared truth T (``world.md`` §7.1), (n_valid, 20) g C m-3.

    ``sqrt(max(SOC_clm5, 0) max(SOC_compas, 0))`` when both models ran, else the one model's SOC, else NaN.
    """
    if "clm5" in soc_by_model and "compas" in soc_by_model:
        return np.sqrt(np.maximum(soc_by_model["clm5"], 0.0) * np.maximum(soc_by_model["compas"], 0.0))
    if soc_by_model:
        return next(iter(soc_by_model.values()))
    return np.full((n_valid, N_LAYERS), np.nan)


def customary_u(u_true: np.ndarray, profile_valid_cell: np.ndarray) -> np.ndarray:
    """Customary analogue (P,) for models without table values: mean normalised truth over the profile sites.

    ``u_true`` (n_valid, P); ``profile_valid_cell`` (n_profiles,) valid-cell positions (all cells when empty).
    """
    return u_true[profile_valid_cell].mean(axis=0) if profile_valid_cell.size else u_true.mean(axis=0)
