"""The embedded synthetic world: a seeded, physically plausible stand-in for PRODA's global inputs.

:func:`make_world` builds, for one seed and grid resolution (``world.md``):

1. the grid, land mask (``global-land-mask``), land domain (no Antarctica, no Greenland, >= 50 % land) and the
   valid mask (hyper-arid and bare cells, then the most coastal cells dropped: ~77 % of the domain kept);
2. geography, elevation and the climate backbone (monthly air temperature and precipitation);
3. NPP, vegetation, wetlands, cropland, soil properties and depth to bedrock;
4. the monthly 20-layer forcing of every valid cell (:mod:`prodampi.data.forcing_synth`);
5. the 60 covariates of every land cell, with NaN in at least one covariate of every invalid cell;
6. true parameter fields of both models (:mod:`prodampi.data.truth`), calibrated so the true-parameter SOC
   totals (0-1 m) match ``world.md`` §9, and the true SOC of every valid cell by each model and their
   geometric mean (the shared truth T of ``world.md`` §7.1);
7. WoSIS-like profiles sampling the chosen truth, with noise-free values and noisy records
   (:mod:`prodampi.data.synthetic_profiles`).

Everything random is keyed by (seed, field, cell id or profile) - per-cell arrays never depend on how cells are
chunked.  ``World.to_arrays()`` returns plain nested dicts of numpy arrays (for HDF5 writing).

Units: see the attributes of :class:`World`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..soil.forcing import Forcing
from ..soil.layers import N_LAYERS, overlap_weights, thickness_m
from . import climate as clim
from . import covariates as cov
from . import synthetic_profiles as sp
from .forcing_synth import NOISE_KEYS, forest_fraction, nbedrock_from_depth, npp_miami, synth_forcing
from .grid import Grid, domain_mask, land_fraction, regular_grid
from .random_fields import SmoothField, cell_noise, rng_for
from .truth import UNIDENTIFIABLE, build_truth_map, driver_matrix

logger = logging.getLogger(__name__)

__all__ = ["World", "make_world", "MODEL_NAMES", "TARGETS", "soc_stock_g_m2", "run_model", "world_integrals",
           "customary_theta"]

MODEL_NAMES = ("clm5", "compas")
TRUTH_CHOICES = ("shared", "clm5", "compas")

#: world.md §9 global integral targets (valid mask, 0.5 degree): name -> (target, lo, hi, unit)
TARGETS: dict[str, tuple[float, float, float, str]] = {
    "valid_cells": (45230, 44000, 46500, "cells"),
    "valid_area_1e14_m2": (1.0, 0.95, 1.15, "1e14 m2"),
    "litter_input_pg_yr": (55.0, 45.0, 60.0, "Pg C yr-1"),
    "permafrost_area_1e6_km2": (16.0, 13.0, 20.0, "1e6 km2"),
    "soc_1m_clm5_customary_pg": (1281.0, 1030.0, 1540.0, "Pg C"),
    "soc_1m_compas_customary_pg": (1308.0, 1050.0, 1570.0, "Pg C"),
    "soc_1m_clm5_true_pg": (1469.0, 1469.0 * 0.85, 1469.0 * 1.15, "Pg C"),
    "soc_1m_compas_true_pg": (1507.0, 1507.0 * 0.85, 1507.0 * 1.15, "Pg C"),
    "soc_1m_truth_mean_kg_m2": (14.0, 11.0, 17.0, "kg C m-2"),
    "turnover_truth_yr": (27.0, 18.0, 40.0, "yr"),
}

#: fraction of the land domain kept valid (PRODA n = 45,230 of the 58,959 ice-free non-Antarctic,
#: non-Greenland cells with >= 50 % land)
VALID_FRACTION = 45230.0 / 58959.0
#: coastal cells (land fraction + interior index below this) may be dropped to reach VALID_FRACTION
MAX_COASTAL_SCORE = 1.5
#: NPP re-scaling of the Miami NPP (world.md §9 re-scales through NPP) so the litter total is ~53-55 Pg/yr
NPP_SCALE = 1.2
#: default raw profiles per valid cell (110k raw profiles over 45k cells at 0.5 degree)
PROFILES_PER_CELL = 2.43
#: calibration parameter per model (logit centre shifted so the true SOC total hits its target)
CALIBRATION_PARAMS: dict[str, tuple[str, ...]] = {"clm5": ("tau4s3", "tau4s2"), "compas": ("mm_const_decom",)}
TRUE_TOTAL_TARGET_PG: dict[str, float] = {"clm5": 1469.0, "compas": 1507.0}



# ------------------------------------------------------------------------------------------------ helpers
def soc_stock_g_m2(soc_g_m3: np.ndarray, top_m: float = 0.0, bottom_m: float = 1.0) -> np.ndarray:
    """SOC stock (g C m-2) between two depths from layer densities (g C m-3), (B, 20) -> (B,).

    Layers are treated as constant within their bounds (``proda_nn_maps.md`` §7.4: the 0-1 m stock takes
    layers 1-8 whole and 0.08/0.28 of layer 9).
    """
    w = overlap_weights(top_m, bottom_m) * thickness_m()
    return np.asarray(soc_g_m3, dtype=np.float64) @ w


#: model options for the world's maps: COMPAS as PRODA's global-map forward function ``fun_var_decom``
#: (invalid = a negative pool; no 10:1 soil-C/MIC rule, ``compas.md`` §5.5 / Q7)
MAP_OPTIONS: dict[str, dict[str, Any]] = {"compas": {"validity": "negative"}}


def _get_model(name: str, **options: Any):
    from ..soil import get_model

    return get_model(name, **{**MAP_OPTIONS.get(name, {}), **options})


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


# ------------------------------------------------------------------------------------------------ World
@dataclass
class World:
    """A generated synthetic world (see the module docstring).

    Cell arrays come in two sets: *land* arrays over the land domain (``cell_id``, n_land) and *valid*
    arrays over the valid cells (``valid_index`` positions into the land arrays, n_valid) - forcing, true
    parameters and SOC are valid-only.  Profiles refer to valid cells by ``profiles["valid_cell"]``.

    Attributes
    ----------
    seed : int
        World seed.
    grid : Grid
        The covariate/output grid.
    land_fraction : (n_lat, n_lon) array
        GLOBE land fraction (0-1).
    cell_id : (n_land,) int array
        Flat grid index of each land-domain cell.
    valid : (n_land,) bool array
        Valid cells (all covariates finite, forcing generated).
    land : dict of (n_land, ...) arrays
        ``lat``/``lon`` (degrees), ``area_m2`` (m2), ``land_fraction``, ``elevation_m`` (m), ``slope_m_km``
        (m km-1), ``ta_c`` (n, 12) monthly air temperature (C), ``pr_mm`` (n, 12) precipitation (mm month-1),
        ``dtr_k`` (K), ``pet_mm`` (n, 12) (mm month-1), ``aridity`` (P/PET), ``npp_gc_m2_yr``
        (g C m-2 yr-1), ``forest``/``crop``/``wetland``/``organic`` (0-1), ``dtb_m`` depth to bedrock (m),
        ``permafrost`` (bool), ``continentality`` (0-1).
    covariates : (n_land, 60) array
        The NN covariates in :data:`prodampi.data.covariates.COVARIATE_NAMES` order and units; NaN in at least
        one column of every invalid cell.
    forcing : Forcing
        Forcing of the valid cells (``prodampi.soil.forcing`` units).
    forcing_details : dict of (n_valid, ...) arrays
        Intermediates of :func:`prodampi.data.forcing_synth.synth_forcing` (soil/air temperatures in C,
        ``alt_m`` in m, ``npp_gc_m2_yr`` in g C m-2 yr-1, ...).
    truth : dict
        Per model m: ``u_<m>`` (n_valid, P) normalised and ``theta_<m>`` physical true parameters,
        ``soc_<m>_g_m3`` (n_valid, 20) true-parameter SOC (g C m-3), ``soc_1m_<m>_g_m2`` (g C m-2),
        ``status_<m>``, ``param_names_<m>``, ``calibration_shift_<m>`` (logit units), ``u_customary_<m>``
        (P,); ``soc_truth_g_m3`` / ``soc_1m_truth_g_m2`` the shared truth T; ``hidden_field``;
        ``da_valid_compas`` (bool, the COMPAS truth passes the DA's 10:1 rule).
    profiles : dict of arrays
        Per profile (P,): ``profile_id``, ``valid_cell``, ``land_cell``, ``lat``/``lon`` (degrees), ``source``
        (0 WoSIS-like, 1 permafrost set), ``region``, ``cluster``, ``n_layers``, ``eps_site``; per layer
        (P, 10, NaN padded): ``top_cm``/``bottom_cm`` (cm), ``node_m`` (m), noise-free SOC ``truth_g_m3``
        (shared T), ``truth_clm5_g_m3``, ``truth_compas_g_m3`` (g C m-3), recorded ``soc_density_g_m3``
        (g C m-3), ``soc_g_per_kg`` (g C kg-1), ``bd_g_cm3`` (g cm-3), ``bd_from_ptf`` (bool),
        ``coarse_pct`` (% vol), ``log_noise`` (ln recorded/truth), ``layer_flag`` (0 ok, 1 zero, 2 NaN,
        -1 padding), ``eps_layer``/``eps_shape``/``eps_bd`` (ln units).
    attrs : dict
        Provenance: seed, resolution, truth sampled by the profiles, counts, calibration and mask notes.
    """

    seed: int
    grid: Grid
    land_fraction: np.ndarray
    cell_id: np.ndarray
    valid: np.ndarray
    land: dict[str, np.ndarray]
    covariates: np.ndarray
    forcing: Forcing
    forcing_details: dict[str, np.ndarray]
    truth: dict[str, np.ndarray]
    profiles: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)

    # ---------------------------------------------------------------- views
    @property
    def valid_index(self) -> np.ndarray:
        """Positions (into the land arrays) of the valid cells, in forcing/truth order."""
        return np.flatnonzero(self.valid)

    @property
    def n_valid(self) -> int:
        """Number of valid cells."""
        return int(self.valid.sum())

    @property
    def covariate_names(self) -> tuple[str, ...]:
        """The 60 covariate names (columns of :attr:`covariates`)."""
        return cov.COVARIATE_NAMES

    def covariate(self, name: str, valid_only: bool = True) -> np.ndarray:
        """One covariate column (land or valid cells)."""
        x = self.covariates[:, cov.COVARIATE_NAMES.index(name)]
        return x[self.valid] if valid_only else x

    def area_valid_m2(self) -> np.ndarray:
        """Area (m^2) of the valid cells."""
        return self.land["area_m2"][self.valid]

    def observed(self, truth: str | None = None) -> np.ndarray:
        """Observed SOC density (g C m-3) at the profile layers for a truth ("shared", "clm5", "compas").

        The same noise realisation multiplies each truth; for the truth the world was generated with this
        is the recorded ``soc_density_g_m3`` (before zero/NaN cleaning flags are applied).
        """
        t = truth or self.attrs["truth"]
        key = {"shared": "truth_g_m3", "clm5": "truth_clm5_g_m3", "compas": "truth_compas_g_m3"}[t]
        return self.profiles[key] * np.exp(self.profiles["log_noise"])

    # ---------------------------------------------------------------- export
    def to_arrays(self) -> dict[str, dict[str, np.ndarray] | dict[str, Any]]:
        """Plain nested dicts of numpy arrays, one per group, plus ``attrs`` (JSON-able scalars and strings).

        Text arrays are UTF-8 bytes (``dtype S``) so every array can be written to HDF5 as is.

        Returns
        -------
        dict
            ``grid``: lat/lon centres and bounds (degrees), ``land_fraction`` (n_lat, n_lon), ``row_area_m2``;
            ``land``: per land cell ``cell_id``, ``valid`` and the :attr:`land` fields;
            ``covariates``: ``values`` (n_land, 60), ``names``, ``units``, ``categorical``;
            ``forcing``: :meth:`Forcing.as_dict` of the valid cells plus ``valid_index``;
            ``forcing_details``: per valid cell intermediates of :func:`synth_forcing`;
            ``truth``: :attr:`truth`; ``profiles``: :attr:`profiles`; ``attrs``: :attr:`attrs`.
        """
        g = self.grid
        out: dict[str, Any] = {
            "grid": {"lat": g.lat, "lon": g.lon, "lat_bounds": g.lat_bounds, "lon_bounds": g.lon_bounds,
                     "land_fraction": self.land_fraction, "row_area_m2": g.row_area_m2()},
            "land": {"cell_id": self.cell_id, "valid": self.valid, **self.land},
            "covariates": {"values": self.covariates, "names": np.array(cov.COVARIATE_NAMES),
                           "units": np.array([cov.COVARIATE_UNITS[n] for n in cov.COVARIATE_NAMES]),
                           "categorical": np.array([n in cov.CATEGORICAL for n in cov.COVARIATE_NAMES])},
            "forcing": {"valid_index": self.valid_index, **self.forcing.as_dict()},
            "forcing_details": dict(self.forcing_details),
            "truth": dict(self.truth),
            "profiles": dict(self.profiles),
            "attrs": dict(self.attrs),
        }
        for name, grp in out.items():
            if name != "attrs":
                out[name] = {k: (np.char.encode(v, "utf-8") if isinstance(v, np.ndarray) and v.dtype.kind == "U"
                                 else v) for k, v in grp.items()}
        return out


# ------------------------------------------------------------------------------------------------ pieces
def _slope_m_per_km(grid: Grid, cells: np.ndarray, elev: np.ndarray) -> np.ndarray:
    """Mean terrain slope (m km-1) of land cells from grid differences of elevation (ocean -> own value)."""
    n_lat, n_lon = grid.shape
    e = np.full(grid.n_cells, np.nan)
    e[cells] = elev
    e = e.reshape(n_lat, n_lon)
    r, c = grid.rowcol(cells)

    def nb(dr: int, dc: int) -> np.ndarray:
        rr = np.clip(r + dr, 0, n_lat - 1)
        v = e[rr, (c + dc) % n_lon]
        return np.where(np.isfinite(v), v, elev)

    dx = clim.KM_PER_DEG * grid.dlon * np.maximum(np.cos(np.radians(grid.lat[r])), 0.05)
    dy = clim.KM_PER_DEG * grid.dlat
    gx = (nb(0, 1) - nb(0, -1)) / (2 * dx)
    gy = (nb(-1, 0) - nb(1, 0)) / (2 * dy)
    # the grid gradient of a 0.5-degree field underestimates hillslope steepness: scale to a plausible range
    return np.hypot(gx, gy) * np.sqrt(grid.dlat / 0.5)


def _valid_mask(p_ann: np.ndarray, npp: np.ndarray, land_frac: np.ndarray, interior: np.ndarray,
                ) -> tuple[np.ndarray, dict[str, Any]]:
    """Valid cells (``world.md`` §2): drop hyper-arid and bare cells (P < 100 mm or NPP < 20 g C m-2 yr-1),
    then the most coastal cells down to :data:`VALID_FRACTION` of the domain.

    Coastal cells are ranked by ``land fraction + interior index`` (lowest first, ties by position) and only
    cells with a score below :data:`MAX_COASTAL_SCORE` may go: small islands and coastal cells, standing in for
    the 0.5-degree cells whose nearest CESM2 f05 cell is ocean (NaN litter input) in PRODA.
    """
    n = p_ann.size
    arid = (p_ann < 100.0) | (npp < 20.0)
    valid = ~arid
    target = int(round(VALID_FRACTION * n))
    n_drop = int(valid.sum()) - target
    score = land_frac + interior
    thr = 0.0
    if n_drop > 0:
        cand = np.flatnonzero(valid & (score < MAX_COASTAL_SCORE))
        order = cand[np.lexsort((cand, score[cand]))]
        drop = order[:n_drop]
        valid[drop] = False
        if drop.size:
            thr = float(score[drop].max())
    info = {"invalid_arid": int(arid.sum()), "invalid_coastal": int(n - arid.sum() - valid.sum()),
            "coastal_score_threshold": thr}
    return valid, info


def _quantile_flag(score: np.ndarray, pool: np.ndarray, frac: float) -> np.ndarray:
    """Flag the top ``frac`` of ``score`` among the ``pool`` cells (ties broken by position)."""
    flag = np.zeros(score.size, dtype=bool)
    idx = np.flatnonzero(pool)
    k = int(round(frac * idx.size))
    if k > 0:
        order = idx[np.lexsort((idx, -score[idx]))]
        flag[order[:k]] = True
    return flag


def customary_theta(model_name: str, params: Any, sand_pct: np.ndarray | None = None,
                    u_mean: np.ndarray | None = None) -> np.ndarray:
    """Per-cell physical "customary" parameters of a model, (n, P).

    * CLM5: the release-file values of the parameter table; ``fs1s2`` (sand dependent in CLM5) from
      :func:`prodampi.soil.clm5.fs1s2_clm5_default` with the cell's 0-1 m mean sand content (%), and
      ``fs1s3`` = 0.004.  (PRODA's default branch also uses CESM2's own vertical input profile, which a
      column-total forcing cannot carry; the beta profile with the customary beta = 0.95 is used instead.)
    * Other models (COMPAS): PRODA's customary values are the global mean of the site-level DA posteriors in
      normalised space; the world's analogue is ``u_mean``, the mean normalised true parameter vector over
      the profile sites (``World.truth["u_customary_<model>"]``); finite table customary values win.

    Parameters
    ----------
    model_name : str
        ``"clm5"``, ``"compas"``, ...
    params : ParamTable
        The model's parameter table.
    sand_pct : (n,) array, optional
        0-1 m mean sand content (%) per cell (CLM5; default 50 % and n = 1).
    u_mean : (P,) array, optional
        Normalised customary vector for models without table values.
    """
    cust = np.asarray(params.customary, dtype=np.float64)
    n = 1 if sand_pct is None else np.asarray(sand_pct).size
    if model_name == "clm5":
        from ..soil.clm5 import fs1s2_clm5_default

        th = np.repeat(cust[None, :], n, axis=0)
        sand = np.full(n, 50.0) if sand_pct is None else np.asarray(sand_pct, dtype=np.float64)
        fs12, fs13 = fs1s2_clm5_default(sand)
        names = list(params.names)
        th[:, names.index("fs1s2")] = fs12
        th[:, names.index("fs1s3")] = fs13
        return th
    if np.all(np.isfinite(cust)):
        return np.repeat(cust[None, :], n, axis=0)
    if u_mean is None:
        raise ValueError(f"{model_name} has no customary values: give u_mean (normalised true parameters)")
    th = np.where(np.isfinite(cust), cust, params.to_physical(np.asarray(u_mean, dtype=np.float64)))
    return np.repeat(th[None, :], n, axis=0)


# ------------------------------------------------------------------------------------------------ main
def make_world(resolution_deg: float = 2.0, seed: int = 0, *, n_profiles: int | None = None,
               truth: str = "shared", models: tuple[str, ...] | None = MODEL_NAMES, calibrate: bool = True,
               chunk_cells: int = 4096) -> World:
    """Generate the synthetic world for one seed and resolution (see the module docstring).

    Parameters
    ----------
    resolution_deg : float
        Grid spacing (degrees); 0.5 is PRODA's grid (``full`` scale), 2 or 4 for demos and tests.
    seed : int
        World seed (>= 0); the world is a deterministic function of (seed, resolution, options).
    n_profiles : int, optional
        Raw profiles to draw; default ``round(2.43 x n_valid)`` (~110k at 0.5 degree).
    truth : {"shared", "clm5", "compas"}
        Which truth the profiles sample (``world.md`` §7.1): the geometric mean of both models' true SOC
        (default) or one model's own (recovery experiments).  All three are stored at the profile layers.
    models : tuple of str or None
        Models to run with the true parameters (default both).  ``None`` or ``()`` skips the forward runs
        (true SOC and profile truth are then NaN); a model whose module cannot be imported is skipped with a
        warning and recorded in ``attrs["models_missing"]``.
    calibrate : bool
        Calibrate the logit centre of the dominant turnover parameter(s) (:data:`CALIBRATION_PARAMS`) so the
        true-parameter SOC total (0-1 m) matches :data:`TRUE_TOTAL_TARGET_PG` x (valid area / 1.0e14 m^2).
    chunk_cells : int
        Cells per forcing/model chunk (memory bound; results do not depend on it).

    Returns
    -------
    World
    """
    if truth not in TRUTH_CHOICES:
        raise ValueError(f"truth must be one of {TRUTH_CHOICES}, got {truth!r}")
    seed = int(seed)
    grid = regular_grid(resolution_deg)
    lf = land_fraction(grid)
    dom = domain_mask(grid, lf)
    geo_full = clim.geography(grid, lf)
    cells = np.flatnonzero(dom.ravel())
    n_total = grid.n_cells
    lat, lon = grid.centres(cells)
    geo = {k: v.ravel()[cells] for k, v in geo_full.items()}
    area = grid.area_m2().ravel()[cells]
    lfc = lf.ravel()[cells]

    def noise(name: str, k: int = 1, kind: str = "normal") -> np.ndarray:
        return cell_noise(seed, name, cells, n_total, k=k, kind=kind)

    # ---------------------------------------------------------------- climate backbone (model climate)
    elev = clim.elevation_m(lat, lon, geo["interior"], seed)
    slope = _slope_m_per_km(grid, cells, elev)
    c = clim.climate_backbone(lat, lon, elev, geo, seed, cells, n_total)
    ta, pr, dtr = c["ta"], c["pr"], c["dtr"]
    pet = clim.pet_thornthwaite(ta, lat)
    ai = clim.aridity_index(pr, pet)
    t_mean, p_ann = ta.mean(axis=1), pr.sum(axis=1)
    n_warm = (ta > 5.0).sum(axis=1)

    # ---------------------------------------------------------------- vegetation
    npp = NPP_SCALE * npp_miami(t_mean, p_ann, ta.max(axis=1)) * np.exp(
        0.15 * SmoothField(seed, "npp", 300.0)(lat, lon) + 0.13 * noise("npp") - 0.02)
    valid, vinfo = _valid_mask(p_ann, npp, lfc, geo["interior"])
    forest = np.clip(forest_fraction(t_mean, ai, n_warm) + 0.08 * noise("forest"), 0.0, 1.0)
    crop_score = (SmoothField(seed, "crop", 400.0)(lat, lon)
                  - ((t_mean - 14.0) / 9.0) ** 2 - ((np.log(np.maximum(p_ann, 1.0)) - np.log(800.0)) / 0.6) ** 2)
    crop_flag = _quantile_flag(crop_score, valid, 0.17)
    mosaic = np.zeros_like(crop_flag)
    if crop_flag.any():
        mosaic = crop_flag & (crop_score < np.quantile(crop_score[crop_flag], 0.33))
    crop = np.where(crop_flag, np.where(mosaic, 0.5, 1.0), 0.0)
    wet_score = (1.2 * np.log(np.maximum(ai, 0.05)) - elev / 400.0 - slope / 3.0
                 + 0.8 * SmoothField(seed, "wetland", 300.0)(lat, lon)
                 + 1.0 * ((lat > 50) & (elev < 400)) + 0.8 * ((t_mean > 22) & (ai > 1.2) & (elev < 400)))
    wet_flag = _quantile_flag(wet_score, valid & ~crop_flag, 0.07 / (1 - 0.17))
    wetland = np.where(wet_flag, 0.5 + 0.5 * np.clip(noise("wet_int", kind="uniform"), 0, 1), 0.0)
    organic = np.where(wet_flag, 1.0 / (1.0 + np.exp(-(5.0 - t_mean) / 3.0)), 0.0)
    urban = valid & ~crop_flag & ~wet_flag & (noise("urban", kind="uniform") < 0.006) & (crop_score > -1.0)

    # ---------------------------------------------------------------- soils, bedrock
    tex = cov.soil_texture(SmoothField(seed, "sand", 600.0)(lat, lon), SmoothField(seed, "clay", 600.0)(lat, lon),
                           np.clip(0.5 + 0.35 * SmoothField(seed, "argillic", 800.0)(lat, lon), 0, 1), ai,
                           t_mean, noise("texture", 2))
    shield = SmoothField(seed, "shield", 800.0)(lat, lon)
    dtb = cov.depth_to_bedrock_m(slope, elev, shield, noise("dtb"))

    # ---------------------------------------------------------------- forcing (valid cells, chunked)
    vidx = np.flatnonzero(valid)
    nz_all = {k: noise("forcing:" + k) for k in NOISE_KEYS}
    parts, details = [], []
    for i in range(0, vidx.size, chunk_cells):
        j = vidx[i:i + chunk_cells]
        f, d = synth_forcing(lat[j], ta[j], pr[j], npp=npp[j], forest=forest[j], crop=crop[j], wetland=wetland[j],
                             organic=organic[j], dtb_m=dtb[j], noise={k: v[j] for k, v in nz_all.items()})
        parts.append(f)
        details.append(d)
    forcing = Forcing.concatenate(parts) if parts else None
    fdet = {k: np.concatenate([d[k] for d in details]) for k in details[0]} if details else {}
    permafrost_v = fdet.get("permafrost", np.zeros(0, bool))
    pf_land = np.zeros(cells.size, dtype=bool)
    pf_land[vidx] = permafrost_v
    # permafrost of invalid land cells (taxonomy only) from the same rule on air temperature
    pf_land[~valid] = (t_mean[~valid] + 3.0) < -1.0

    # ---------------------------------------------------------------- covariates (observed climate)
    # WorldClim-like "observed" climate = model climate + independent errors (CESM2 and WorldClim differ),
    # so BIO1-19 are mutually consistent but not collinear with the forcing
    t_bias = 0.8 * SmoothField(seed, "wc_tbias", 400.0)(lat, lon) + 0.5 * noise("wc_tbias")
    ta_obs = ta + t_bias[:, None] + 0.3 * noise("wc_tmon", 12)
    ta_obs_mean = ta_obs.mean(axis=1)
    ta_obs += (clim.soft_ceiling(ta_obs_mean, 26.5, 2.0) - ta_obs_mean)[:, None]
    p_bias = 0.2 * SmoothField(seed, "wc_pbias", 400.0)(lat, lon) + 0.1 * noise("wc_pbias")
    pr_obs = pr * np.exp(p_bias[:, None] + 0.12 * noise("wc_pmon", 12))
    dtr_obs = np.clip(dtr + 0.5 * noise("wc_dtr"), 4.0, 20.0)
    bio = clim.bioclim(ta_obs, pr_obs, dtr_obs)
    koppen = clim.koppen_geiger(ta_obs, pr_obs, lat)
    half_range = c["half_range"]
    lc = cov.land_cover(t_mean, bio[:, 9], p_ann, ai, forest, half_range, crop_flag, mosaic, wet_flag, urban)

    soc_c = cov.soc_content_proxy(t_mean, ai, tex["clay"][:, 0], wetland, organic)
    bd = 1000.0 * cov.ptf_bulk_density(soc_c) * np.exp(0.07 * noise("bd", 3)) + np.array([0.0, 50.0, 110.0])
    cec = np.maximum(0.5 * tex["clay"] + 2.0 * soc_c / 10.0 + 2.0 * noise("cec", 3), 1.0)
    boreal = np.clip((5.0 - t_mean) / 8.0, 0.0, 1.0) * np.clip(ai - 0.6, 0.0, 1.0)
    humid_trop = np.clip((t_mean - 20.0) / 4.0, 0.0, 1.0) * np.clip(ai - 1.0, 0.0, 1.0)
    ph0 = 8.3 - 3.0 * (1.0 - np.exp(-1.1 * ai)) - 0.8 * boreal - 0.6 * humid_trop + 0.35 * noise("ph")
    ph = 10.0 * np.clip(ph0[:, None] + np.array([0.0, 0.1, 0.25])[None, :]
                        + 0.4 * np.clip(0.4 - ai, 0, None)[:, None] * np.array([0, 1, 2])[None, :], 3.5, 9.5)
    wwp = np.clip(2.0 + 0.35 * tex["clay"] + 0.6 * noise("wwp", 3), 0.5, None)
    upland = np.clip(slope / 8.0, 0.0, 2.0) + 0.5 * np.clip(shield, 0.0, None)
    cf_on = noise("cf_on", kind="uniform") < 1.0 / (1.0 + np.exp(-(-0.3 + 1.5 * upland)))
    cf = np.where(cf_on[:, None], 100.0 / (1.0 + np.exp(-(-2.6 + 1.3 * upland[:, None] + 1.2 * noise("cf")[:, None]
                                                       + np.array([0.0, 0.25, 0.5])[None, :]))), 0.0)
    tex_cls = np.column_stack([cov.usda_texture_class(tex["sand"][:, k], tex["silt"][:, k], tex["clay"][:, k])
                               for k in range(3)])
    andic = (noise("andic", kind="uniform") < 0.4) & (slope > 6.0) & (elev > 800.0)
    usda, wrb = cov.soil_taxonomy(t_mean, ai, tex["sand"][:, 0], tex["clay"][:, 0], ph[:, 0], cf[:, 0], dtb,
                                  pf_land, wet_flag, organic, forest, andic)
    acid = cov.acid_grade(ph[:, 1])
    occ_r = np.clip(100.0 / (1.0 + np.exp(-((np.log(2.0) - np.log(dtb)) / 0.6 + 0.4 * noise("occ_r")))), 0, 100)
    dtb_cm = np.clip(dtb * 100.0 * np.exp(0.25 * noise("dtb_cov")), 1.0, 50000.0)
    npp_sd_frac = (0.05 + 0.10 * np.clip(1.0 - ai, 0.0, 1.0)) * np.exp(0.1 * noise("npp_sd"))
    vegc = np.clip(npp * (1.5 + forest * (16.0 + 14.0 / (1.0 + np.exp(-(5.0 - t_mean) / 5.0))))
                   * np.exp(0.15 * noise("vegc")), 0.0, 25000.0)
    nb_land = np.full(cells.size, N_LAYERS, dtype=np.float64)
    if forcing is not None:
        nb_land[vidx] = forcing.nbedrock
    nb_land[~valid] = nbedrock_from_depth(dtb[~valid])
    sec_per_yr = 365.0 * 86400.0
    columns = {
        "Lon": lon, "Lat": lat, "ESA_Land_Cover": lc.astype(float),
        **{n: bio[:, i] for i, n in enumerate(clim.BIO_NAMES)},
        "Abs_Depth_to_Bedrock": dtb_cm,
        **{f"Bulk_Density_{d}": bd[:, k] for k, d in enumerate(cov._DEPTHS)},
        **{f"CEC_{d}": cec[:, k] for k, d in enumerate(cov._DEPTHS)},
        **{f"Clay_Content_{d}": tex["clay"][:, k] for k, d in enumerate(cov._DEPTHS)},
        **{f"Coarse_Fragments_v_{d}": cf[:, k] for k, d in enumerate(cov._DEPTHS)},
        "Garde_Acid": acid.astype(float), "Occurrence_R_Horizon": occ_r,
        **{f"pH_Water_{d}": ph[:, k] for k, d in enumerate(cov._DEPTHS)},
        **{f"Sand_Content_{d}": tex["sand"][:, k] for k, d in enumerate(cov._DEPTHS)},
        **{f"Silt_Content_{d}": tex["silt"][:, k] for k, d in enumerate(cov._DEPTHS)},
        **{f"SWC_v_Wilting_Point_{d}": wwp[:, k] for k, d in enumerate(cov._DEPTHS)},
        **{f"Texture_USDA_{d}": tex_cls[:, k].astype(float) for k, d in enumerate(cov._DEPTHS)},
        "USDA_Suborder": usda.astype(float), "WRB_Subgroup": wrb.astype(float), "Elevation": elev,
        "Koppen_Climate_2018": koppen.astype(float), "cesm2_npp": npp / sec_per_yr,
        "cesm2_npp_std": npp * npp_sd_frac / sec_per_yr, "cesm2_vegc": vegc, "nbedrock": nb_land,
    }
    covs = np.column_stack([columns[n] for n in cov.COVARIATE_NAMES])
    # invalid cells: CESM2 has no litter input (NaN NPP/vegetation); coastal cells also lack soil grids
    arid = (p_ann < 100.0) | (npp < 20.0)
    inv = ~valid
    for n in ("cesm2_npp", "cesm2_npp_std", "cesm2_vegc"):
        covs[inv & arid, cov.COVARIATE_NAMES.index(n)] = np.nan
    for n in cov.COVARIATE_NAMES:
        if n.startswith(("Bulk_Density", "CEC_", "Clay", "Sand", "Silt")):
            covs[inv & ~arid, cov.COVARIATE_NAMES.index(n)] = np.nan
    covs[inv, cov.COVARIATE_NAMES.index("cesm2_npp")] = np.nan

    land = {
        "lat": lat, "lon": lon, "area_m2": area, "land_fraction": lfc, "elevation_m": elev, "slope_m_km": slope,
        "ta_c": ta, "pr_mm": pr, "dtr_k": dtr, "pet_mm": pet, "aridity": ai, "npp_gc_m2_yr": npp,
        "forest": forest, "crop": crop, "wetland": wetland, "organic": organic, "dtb_m": dtb,
        "permafrost": pf_land, "continentality": geo["continentality"],
    }
    attrs: dict[str, Any] = {
        "seed": seed, "resolution_deg": float(resolution_deg), "truth": truth, "generator": "prodampi.data.world",
        "temperature_unit": "degC (not WorldClim's degC x 10)", "n_land": int(cells.size),
        "n_valid": int(valid.sum()), **vinfo,
        "forcing_grid": "covariate grid (the world's forcing is generated per valid cell, not on CESM2 f05)",
        "customary_compas": "mean normalised true parameters over the profile sites (no DA)",
        "customary_clm5": "release-file values; fs1s2 from the cell's 0-1 m mean sand; beta profile 0.95",
    }

    # ---------------------------------------------------------------- true parameters and SOC
    cov_valid = {n: covs[valid, k] for k, n in enumerate(cov.COVARIATE_NAMES)}
    hidden = SmoothField(seed, "hidden", 800.0)(lat[valid], lon[valid])
    z = driver_matrix(cov_valid, hidden)
    truth_d: dict[str, np.ndarray] = {"hidden_field": hidden}
    missing = []
    soc_by = {}
    for name in (models or ()):
        try:
            model = _get_model(name)
        except ImportError as exc:  # pragma: no cover - depends on the tree
            logger.warning("model %s unavailable (%s): its truth is skipped", name, exc)
            missing.append(name)
            continue
        tmap = build_truth_map(name, model.params.names, seed)
        tmap.fit_standardisation(z)
        shift = np.zeros(len(model.params))
        area_v = area[valid]
        if calibrate and forcing is not None:
            shift = _calibrate(model, tmap, z, forcing, area_v, seed, name, chunk_cells)
        u = tmap.normalized(z, shift=shift)
        theta = model.params.to_physical(u)
        soc, status = run_model(model, theta, forcing, chunk_cells)
        u, theta, soc, status, n_resampled = _resample_failures(model, tmap, z, shift, u, theta, soc, status,
                                                                forcing)
        if name == "compas":  # does the truth satisfy the DA's validity rule (10:1 soil C / MIC)?
            _, st_da = run_model(_get_model(name, validity="da", invalid="nan"), theta, forcing, chunk_cells)
            truth_d["da_valid_compas"] = st_da == 0
            attrs["da_invalid_compas"] = int((st_da != 0).sum())
        truth_d.update({
            f"u_{name}": u, f"theta_{name}": theta, f"soc_{name}_g_m3": soc, f"status_{name}": status,
            f"soc_1m_{name}_g_m2": soc_stock_g_m2(soc), f"param_names_{name}": np.array(model.params.names),
            f"calibration_shift_{name}": shift,
        })
        attrs[f"resampled_{name}"] = int(n_resampled)
        attrs[f"failed_{name}"] = int((status != 0).sum())
        attrs[f"unidentifiable_{name}"] = ",".join(UNIDENTIFIABLE.get(name, ()))
        soc_by[name] = soc
    nv = int(valid.sum())
    if "clm5" in soc_by and "compas" in soc_by:
        shared = np.sqrt(np.maximum(soc_by["clm5"], 0.0) * np.maximum(soc_by["compas"], 0.0))
    elif soc_by:
        shared = next(iter(soc_by.values()))
    else:
        shared = np.full((nv, N_LAYERS), np.nan)
    truth_d["soc_truth_g_m3"] = shared
    truth_d["soc_1m_truth_g_m2"] = soc_stock_g_m2(shared)
    attrs["models_run"] = ",".join(soc_by)
    attrs["models_missing"] = ",".join(missing)

    # ---------------------------------------------------------------- profiles
    n_prof = int(round(PROFILES_PER_CELL * nv)) if n_profiles is None else int(n_profiles)
    pos_of_flat = np.full(n_total, -1, dtype=np.int64)
    pos_of_flat[cells[vidx]] = np.arange(nv)

    def locate(la: np.ndarray, lo: np.ndarray) -> np.ndarray:
        return pos_of_flat[grid.locate(la, lo)]

    sites = sp.sample_sites(seed, n_prof, lat[vidx], lon[vidx], grid.dlat, grid.dlon, area[vidx], crop[vidx],
                            permafrost_v, locate)
    vc = sites["cell"]
    geom = sp.layer_geometry(seed, vc.size, dtb[vidx][vc] * 100.0, sites["source"])
    top, bot, nl = geom["top_cm"], geom["bottom_cm"], geom["n_layers"]
    node = (top + bot) / 200.0
    nz = sp.observation_noise(seed, top, nl)
    cf_v = cf[vidx][vc]  # (P, 3)
    cf_layer = np.where(node < 0.15, cf_v[:, :1], np.where(node < 0.65, cf_v[:, 1:2], cf_v[:, 2:3]))
    from ..soil.observe import pchip_at

    t_shared = pchip_at(shared[vc], node) if vc.size else np.zeros((0, sp.MAX_LAYERS))
    t_models = {m: (pchip_at(soc_by[m][vc], node) if m in soc_by and vc.size
                    else np.full(node.shape, np.nan)) for m in MODEL_NAMES}
    t_obs = {"shared": t_shared, **t_models}[truth]
    rec = sp.build_records(seed, t_obs, top, bot, nl, cf_layer, nz)
    n_w = int((sites["source"] == 0).sum())
    pid = np.where(sites["source"] == 0, sp.WOSIS_ID0 + np.cumsum(sites["source"] == 0) - 1,
                   sp.PERMAFROST_ID0 + np.cumsum(sites["source"] == 1) - 1)
    order = np.lexsort((np.arange(vc.size), sites["source"]))  # WoSIS rows first, permafrost appended
    profiles = {
        "profile_id": pid, "valid_cell": vc, "land_cell": vidx[vc], "lat": sites["lat"], "lon": sites["lon"],
        "source": sites["source"], "region": sites["region"], "cluster": sites["cluster"], "n_layers": nl,
        "top_cm": top, "bottom_cm": bot, "node_m": node, "truth_g_m3": t_shared,
        "truth_clm5_g_m3": t_models["clm5"], "truth_compas_g_m3": t_models["compas"],
        "eps_site": nz["eps_site"], "eps_layer": nz["eps_layer"], "eps_shape": nz["eps_shape"],
        "eps_bd": nz["eps_bd"], **rec,
    }
    profiles = {k: v[order] for k, v in profiles.items()}
    attrs.update({"regions": ",".join(sp.REGIONS),
                  "n_profiles": int(vc.size), "n_profiles_wosis": n_w, "n_profiles_permafrost": int(vc.size - n_w),
                  "profile_truth": {"shared": "geometric mean of the CLM5 and COMPAS true-parameter SOC",
                                    "clm5": "CLM5 with its true parameters",
                                    "compas": "COMPAS with its true parameters"}[truth]})
    # customary analogue for models without table values: mean normalised truth over the profile sites
    for name in soc_by:
        u_all = truth_d[f"u_{name}"]
        truth_d[f"u_customary_{name}"] = (u_all[profiles["valid_cell"]].mean(axis=0) if profiles["valid_cell"].size
                                          else u_all.mean(axis=0))

    return World(seed=seed, grid=grid, land_fraction=lf, cell_id=cells, valid=valid, land=land, covariates=covs,
                 forcing=forcing, forcing_details=fdet, truth=truth_d, profiles=profiles, attrs=attrs)


# ------------------------------------------------------------------------------------------------ calibration
def _calibrate(model: Any, tmap: Any, z: np.ndarray, forcing: Forcing, area: np.ndarray, seed: int, name: str,
               chunk: int, n_sample: int = 1500) -> np.ndarray:
    """Logit shift of the calibration parameters so the true SOC total (0-1 m) hits its target.

    The total is estimated on a fixed random sample of valid cells (area-weighted sum scaled to the full
    valid area); the shift is found by bisection in [-6, 6] (SOC increases with the turnover times).
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


def _resample_failures(model: Any, tmap: Any, z: np.ndarray, shift: np.ndarray, u: np.ndarray, theta: np.ndarray,
                       soc: np.ndarray, status: np.ndarray, forcing: Forcing,
                       shrink: tuple[float, ...] = (0.75, 0.5, 0.25, 0.0)) -> tuple:
    """Redraw the true parameters of cells whose steady state failed (``world.md`` §7 validity rule).

    A failed cell's standardised field g is shrunk towards the field's centre, g -> lambda g for lambda in
    ``shrink`` in turn, until the model solves (the centre vectors of :mod:`prodampi.data.truth` are valid in
    nearly every cell).  Deterministic; cells still failing keep status != 0 and NaN SOC.

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


# ------------------------------------------------------------------------------------------------ integrals
def world_integrals(world: World, models: tuple[str, ...] = MODEL_NAMES, customary: bool = True,
                    chunk: int = 4096) -> dict[str, float]:
    """The ``world.md`` §9 global integrals of a world (valid mask).

    Returns
    -------
    dict
        ``valid_cells``, ``valid_area_1e14_m2``, ``litter_input_pg_yr``, ``permafrost_area_1e6_km2`` (cells with
        0 < ALTMAX_LASTYEAR <= 2 m), ``permafrost_north55_frac``, ``permafrost_plateau_frac`` (> 4,000 m),
        ``soc_1m_<model>_true_pg``, ``soc_1m_<model>_customary_pg`` (when ``customary``),
        ``soc_1m_truth_pg``, ``soc_1m_truth_mean_kg_m2``, ``turnover_truth_yr`` (truth stock / input),
        latitude-band medians of the truth stock (kg C m-2) and the cross-model correlation of log SOC (0-1 m)
        for the true and customary parameters.
    """
    a = world.area_valid_m2()
    v = world.valid
    lat = world.land["lat"][v]
    out: dict[str, float] = {"valid_cells": float(v.sum()), "valid_area_1e14_m2": float(a.sum() / 1e14)}
    f = world.forcing
    inp = f.litter_input.sum(axis=1)
    out["litter_input_pg_yr"] = float((inp * a).sum() / 1e15)
    alt = f.altmax_lastyear_m.max(axis=1)
    pf = (alt > 0) & (alt <= 2.0)
    out["permafrost_area_1e6_km2"] = float(a[pf].sum() / 1e12)
    out["permafrost_north55_frac"] = float(a[pf & (lat > 55)].sum() / max(a[pf].sum(), 1.0))
    elev = world.land["elevation_m"][v]
    out["permafrost_plateau_frac"] = float(a[pf & (elev > 4000)].sum() / max(a[pf].sum(), 1.0))
    logs = {}
    for m in models:
        key = f"soc_1m_{m}_g_m2"
        if key not in world.truth:
            continue
        st = world.truth[key]
        ok = np.isfinite(st)
        out[f"soc_1m_{m}_true_pg"] = float((st[ok] * a[ok]).sum() / 1e15)
        logs[f"{m}_true"] = np.log(np.where(ok & (st > 0), st, np.nan))
        if customary:
            model = _get_model(m)
            k0 = cov.COVARIATE_NAMES.index("Sand_Content_0cm")
            sand = np.nanmean(world.covariates[v][:, k0:k0 + 3], axis=1)
            th = customary_theta(m, model.params, sand, world.truth.get(f"u_customary_{m}"))
            soc, _ = run_model(model, th, f, chunk)
            stc = soc_stock_g_m2(soc)
            okc = np.isfinite(stc)
            out[f"soc_1m_{m}_customary_pg"] = float((stc[okc] * a[okc]).sum() / 1e15)
            out[f"customary_failed_{m}"] = float((~okc).sum())
            logs[f"{m}_customary"] = np.log(np.where(okc & (stc > 0), stc, np.nan))
    st = world.truth.get("soc_1m_truth_g_m2")
    if st is not None and np.isfinite(st).any():
        ok = np.isfinite(st)
        out["soc_1m_truth_pg"] = float((st[ok] * a[ok]).sum() / 1e15)
        out["soc_1m_truth_mean_kg_m2"] = float((st[ok] * a[ok]).sum() / a[ok].sum() / 1000.0)
        out["turnover_truth_yr"] = float((st[ok] * a[ok]).sum() / (inp[ok] * a[ok]).sum())
        for lo_, hi_, label in ((60, 90, "north60"), (20, 35, "subtropics"), (-20, 20, "tropics")):
            band = ok & (np.abs(lat) >= lo_) & (np.abs(lat) < hi_) if label == "subtropics" else \
                ok & (lat >= lo_) & (lat < hi_)
            out[f"truth_median_{label}_kg_m2"] = float(np.median(st[band]) / 1000.0) if band.any() else float("nan")
    for kind in ("true", "customary"):
        x, y = logs.get(f"clm5_{kind}"), logs.get(f"compas_{kind}")
        if x is not None and y is not None:
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() > 2:
                out[f"cross_model_r_{kind}"] = float(np.corrcoef(x[ok], y[ok])[0, 1])
    return out
