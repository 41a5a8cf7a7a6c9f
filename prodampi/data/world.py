"""The embedded synthetic world: a seeded, physically plausible stand-in for PRODA's global inputs.

:func:`make_world` builds, for one seed and grid resolution (``world.md``), in ``world.md`` §1 order:

1. the grid, land mask (``global-land-mask``) and land domain (no Antarctica, no Greenland, >= 50 % land):
   :func:`~prodampi.data.world_land.land_domain`;
2. elevation, slope and the climate backbone (monthly air temperature and precipitation):
   :func:`~prodampi.data.world_land.model_climate`;
3. NPP, the valid mask (hyper-arid and bare cells, then the most coastal cells dropped: ~77 % of the domain
   kept), forest, cropland, wetlands and urban cover, soil texture and depth to bedrock
   (:func:`~prodampi.data.world_land.npp_field`, :func:`~prodampi.data.world_land.valid_mask`,
   :func:`~prodampi.data.world_land.land_use`, :func:`~prodampi.data.world_land.soil_fields`);
4. the monthly 20-layer forcing of every valid cell (:func:`~prodampi.data.world_land.valid_forcing`);
5. the 60 covariates of every land cell, with NaN in at least one covariate of every invalid cell
   (:func:`~prodampi.data.world_land.soil_covariates`, :func:`~prodampi.data.world_land.covariate_matrix`);
6. true parameter fields of both models (:func:`prodampi.data.world_truth.true_fields`), calibrated so the
   true-parameter SOC totals (0-1 m) match ``world.md`` §9, and the true SOC of every valid cell by each model
   and their geometric mean (the shared truth T of ``world.md`` §7.1);
7. WoSIS-like profiles sampling the chosen truth, with noise-free values and noisy records
   (:func:`prodampi.data.synthetic_profiles.draw_profiles`).

:func:`synthetic_land_climate` runs steps 1-3 and 5 only (no forcing, truth or profiles): the land climate and
covariates the prepare stage needs to derive forcing for real profiles.

Everything random is keyed by (seed, field, cell id or profile) - per-cell arrays never depend on how cells are
chunked.  ``World.to_arrays()`` returns plain nested dicts of numpy arrays (for HDF5 writing).

Units: see the attributes of :class:`World`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..soil import MODELS
from ..soil.forcing import Forcing
from . import covariates as cov
from . import synthetic_profiles as sp
from .forcing_synth import nbedrock_from_depth, permafrost_from_climate
from .grid import Grid
from .world_land import (
    MAX_COASTAL_SCORE,
    NPP_SCALE,
    VALID_FRACTION,
    LandDomain,
    covariate_matrix,
    land_domain,
    land_fields,
    land_use,
    model_climate,
    npp_field,
    permafrost_flags,
    soil_covariates,
    soil_fields,
    valid_forcing,
    valid_mask,
)
from .world_truth import (
    CALIBRATION_PARAMS,
    MAP_OPTIONS,
    TRUE_TOTAL_TARGET_PG,
    customary_u,
    get_map_model,
    run_model,
    soc_stock_g_m2,
    true_fields,
)

logger = logging.getLogger(__name__)

__all__ = ["World", "make_world", "synthetic_land_climate", "MODEL_NAMES", "TARGETS", "soc_stock_g_m2",
           "run_model", "world_integrals", "customary_theta",
           # re-exported from the step modules
           "VALID_FRACTION", "MAX_COASTAL_SCORE", "NPP_SCALE", "CALIBRATION_PARAMS", "TRUE_TOTAL_TARGET_PG",
           "MAP_OPTIONS"]

MODEL_NAMES: tuple[str, ...] = tuple(MODELS)  # the soil registry owns the names
#: truths the profiles can sample (``world.md`` §7.1)
TRUTH_CHOICES = tuple(sp.PROFILE_TRUTH_KEYS)

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

#: default raw profiles per valid cell (110k raw profiles over 45k cells at 0.5 degree)
PROFILES_PER_CELL = 2.43
#: provenance text per profile truth (``attrs["profile_truth"]``)
PROFILE_TRUTH_TEXT: dict[str, str] = {"shared": "geometric mean of the CLM5 and COMPAS true-parameter SOC",
                                      "clm5": "CLM5 with its true parameters",
                                      "compas": "COMPAS with its true parameters"}


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
        key = sp.PROFILE_TRUTH_KEYS[t]
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


# ------------------------------------------------------------------------------------------------ customary
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
def _land_side(resolution_deg: float, seed: int) -> tuple[LandDomain, dict, np.ndarray, np.ndarray, dict,
                                                           dict, dict]:
    """Steps 1-3 of :func:`make_world`: domain, climate, NPP, valid mask, cover and soils."""
    d = land_domain(resolution_deg, seed)
    c = model_climate(d)
    npp = npp_field(d, c)
    valid, vinfo = valid_mask(c["p_ann_mm"], npp, d.land_fraction, d.geo["interior"])
    cover = land_use(d, c, valid)
    soil = soil_fields(d, c)
    return d, c, npp, valid, vinfo, cover, soil


def make_world(resolution_deg: float = 2.0, seed: int = 0, *, n_profiles: int | None = None,
               truth: str = "shared", models: tuple[str, ...] | None = MODEL_NAMES, calibrate: bool = True,
               chunk_cells: int = 4096, layers: str = "realistic", noise: bool = True,
               sites: str = "clustered") -> World:
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
    layers : {"realistic", "nodes"}
        Profile layers: WoSIS-like (default) or the 20 CLM layers at the node depths for every profile
        (the paper's recovery experiment; :func:`prodampi.data.synthetic_profiles.draw_profiles`).
    noise : bool
        Noisy records (default) or the noise-free truth (recovery experiment).
    sites : {"clustered", "cells"}
        WoSIS-like clustered sites (default) or one site in each of ``n_profiles`` distinct valid cells (the
        authors' recovery experiment draws grid cells).

    Returns
    -------
    World
    """
    if truth not in TRUTH_CHOICES:
        raise ValueError(f"truth must be one of {TRUTH_CHOICES}, got {truth!r}")
    if layers not in sp.LAYER_CHOICES:
        raise ValueError(f"layers must be one of {sp.LAYER_CHOICES}, got {layers!r}")
    seed = int(seed)
    d, c, npp, valid, vinfo, cover, soil = _land_side(resolution_deg, seed)
    vidx = np.flatnonzero(valid)
    forcing, fdet = valid_forcing(d, c, npp, cover, soil["dtb_m"], valid, chunk_cells)
    permafrost_v = fdet.get("permafrost", np.zeros(0, bool))
    pf_land = permafrost_flags(c, valid, permafrost_v)
    soil_cov = soil_covariates(d, c, cover, soil, pf_land)
    nb_valid = forcing.nbedrock if forcing is not None else np.zeros(0, dtype=np.int64)
    covs = covariate_matrix(d, c, npp, cover, soil, soil_cov, valid, nb_valid)
    land = land_fields(d, c, npp, cover, soil, pf_land)
    attrs: dict[str, Any] = {
        "seed": seed, "resolution_deg": float(resolution_deg), "truth": truth, "generator": "prodampi.data.world",
        "temperature_unit": "degC (not WorldClim's degC x 10)", "n_land": d.n,
        "n_valid": int(valid.sum()), **vinfo,
        "forcing_grid": "covariate grid (the world's forcing is generated per valid cell, not on CESM2 f05)",
        "customary_compas": "mean normalised true parameters over the profile sites (no DA)",
        "customary_clm5": "release-file values; fs1s2 from the cell's 0-1 m mean sand; beta profile 0.95",
    }

    truth_d, soc_by, tinfo = true_fields(seed, models, covs[valid], d.lat[valid], d.lon[valid], d.area_m2[valid],
                                         forcing, calibrate=calibrate, chunk_cells=chunk_cells)
    attrs.update(tinfo)

    n_prof = int(round(PROFILES_PER_CELL * vidx.size)) if n_profiles is None else int(n_profiles)
    profiles, pinfo = sp.draw_profiles(
        seed, n_prof, d.grid, valid_cell_id=d.cell_id[vidx], valid_land_index=vidx, lat=d.lat[vidx],
        lon=d.lon[vidx], area_m2=d.area_m2[vidx], crop=cover["crop"][vidx], permafrost=permafrost_v,
        dtb_m=soil["dtb_m"][vidx], coarse_pct=soil_cov["coarse_pct"][vidx], soc_shared_g_m3=truth_d["soc_truth_g_m3"],
        soc_by_model=soc_by, truth=truth, layers=layers, noise=bool(noise), sites=sites)
    attrs.update({**pinfo, "profile_truth": PROFILE_TRUTH_TEXT[truth]})
    for name in soc_by:
        truth_d[f"u_customary_{name}"] = customary_u(truth_d[f"u_{name}"], profiles["valid_cell"])

    return World(seed=seed, grid=d.grid, land_fraction=d.land_fraction_grid, cell_id=d.cell_id, valid=valid,
                 land=land, covariates=covs, forcing=forcing, forcing_details=fdet, truth=truth_d,
                 profiles=profiles, attrs=attrs)


def synthetic_land_climate(resolution_deg: float, seed: int) -> dict[str, np.ndarray]:
    """The synthetic world's land climate and covariates, without its forcing, truth or profiles.

    Every array equals the one :func:`make_world` gives for the same ``(resolution_deg, seed)`` (whatever its
    other options): the valid cells' permafrost flag and bedrock layer are computed by the forcing's own rules
    (:func:`~prodampi.data.forcing_synth.permafrost_from_climate`,
    :func:`~prodampi.data.forcing_synth.nbedrock_from_depth`) instead of from a generated forcing.

    Parameters
    ----------
    resolution_deg : float
        Grid spacing (degrees).
    seed : int
        World seed.

    Returns
    -------
    dict
        Over the n land-domain cells: ``cell_id`` (n,) flat grid index, ``valid`` (n,) bool, the
        :attr:`World.land` fields - ``lat``/``lon`` (degrees), ``area_m2`` (m2), ``ta_c`` (n, 12) monthly air
        temperature (C), ``pr_mm`` (n, 12) precipitation (mm month-1), ``npp_gc_m2_yr`` (g C m-2 yr-1),
        ``forest``/``crop``/``wetland``/``organic`` (0-1), ``dtb_m`` depth to bedrock (m), ``permafrost``
        (bool), ... - and ``covariates`` (n, 60) in ``covariate_names`` order (K = 60 names, str array;
        :data:`prodampi.data.covariates.COVARIATE_UNITS` units; NaN in at least one column of every invalid
        cell).
    """
    seed = int(seed)
    d, c, npp, valid, _, cover, soil = _land_side(resolution_deg, seed)
    vidx = np.flatnonzero(valid)
    pf_valid = permafrost_from_climate(d.lat[vidx], c["ta_c"][vidx], c["pr_mm"][vidx],
                                       d.noise("forcing:delta_t")[vidx])
    pf_land = permafrost_flags(c, valid, pf_valid)
    soil_cov = soil_covariates(d, c, cover, soil, pf_land)
    covs = covariate_matrix(d, c, npp, cover, soil, soil_cov, valid, nbedrock_from_depth(soil["dtb_m"][vidx]))
    return {"cell_id": d.cell_id, "valid": valid, **land_fields(d, c, npp, cover, soil, pf_land),
            "covariates": covs, "covariate_names": np.array(cov.COVARIATE_NAMES)}


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
            model = get_map_model(m)
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
