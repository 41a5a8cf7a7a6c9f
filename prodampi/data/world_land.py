"""Land-side steps of the synthetic world (``world.md`` §1-5): domain, climate, cover, soils, forcing, covariates.

:func:`prodampi.data.world.make_world` composes these steps in ``world.md`` §1 order; so does
:func:`prodampi.data.world.synthetic_land_climate`, which stops before the forcing, the truth and the profiles.
Each step is a pure function of the seed and the outputs of earlier steps.  Everything random is keyed by
(seed, field name, flat cell id) (:func:`~prodampi.data.random_fields.cell_noise`,
:class:`~prodampi.data.random_fields.SmoothField`), so the order in which steps draw does not matter and a
cell's values never depend on which other cells are computed.

Arrays are over the *land domain* (n = ``LandDomain.n`` cells, no Antarctica, no Greenland, >= 50 % land)
unless named ``*_valid`` (the valid cells, ``valid`` mask of :func:`valid_mask`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..soil.forcing import Forcing
from ..soil.layers import N_LAYERS
from . import climate as clim
from . import covariates as cov
from .forcing_synth import NOISE_KEYS, forest_fraction, nbedrock_from_depth, npp_miami, synth_forcing
from .grid import Grid, domain_mask, land_fraction, regular_grid
from .profiles import ptf_bulk_density
from .random_fields import SmoothField, cell_noise

__all__ = ["LandDomain", "land_domain", "model_climate", "npp_field", "arid_mask", "valid_mask", "land_use",
           "soil_fields", "valid_forcing", "permafrost_flags", "observed_climate", "soil_covariates",
           "covariate_matrix", "land_fields", "VALID_FRACTION", "MAX_COASTAL_SCORE", "NPP_SCALE"]

#: fraction of the land domain kept valid (PRODA n = 45,230 of the 58,959 ice-free non-Antarctic,
#: non-Greenland cells with >= 50 % land)
VALID_FRACTION = 45230.0 / 58959.0
#: coastal cells (land fraction + interior index below this) may be dropped to reach VALID_FRACTION
MAX_COASTAL_SCORE = 1.5
#: NPP re-scaling of the Miami NPP (world.md §9 re-scales through NPP) so the litter total is ~53-55 Pg/yr
NPP_SCALE = 1.2
#: seconds per (365-day) year: NPP covariates are in g C m-2 s-1 like CESM2's
SEC_PER_YR = 365.0 * 86400.0


# ------------------------------------------------------------------------------------------------ domain
@dataclass(frozen=True)
class LandDomain:
    """The grid and its land domain for one world seed.

    Attributes
    ----------
    seed : int
        World seed (keys every random field).
    grid : Grid
        The covariate/output grid.
    land_fraction_grid : (n_lat, n_lon) array
        GLOBE land fraction (0-1) of every grid cell.
    cell_id : (n,) int array
        Flat grid index of each land-domain cell (increasing).
    lat, lon : (n,) arrays
        Cell centres (degrees).
    area_m2 : (n,) array
        Cell area (m2).
    land_fraction : (n,) array
        Land fraction of the domain cells (0-1).
    geo : dict of (n,) arrays
        :func:`prodampi.data.climate.geography` at the domain cells (``fetch_west``, ``fetch_east``,
        ``interior``, ``continentality``; dimensionless).
    """

    seed: int
    grid: Grid
    land_fraction_grid: np.ndarray
    cell_id: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    area_m2: np.ndarray
    land_fraction: np.ndarray
    geo: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        """Number of land-domain cells."""
        return int(self.cell_id.size)

    def noise(self, name: str, k: int = 1, kind: str = "normal") -> np.ndarray:
        """Per-cell noise ``(n,)`` or ``(n, k)`` keyed by (seed, ``name``, cell id) (:func:`cell_noise`)."""
        return cell_noise(self.seed, name, self.cell_id, self.grid.n_cells, k=k, kind=kind)

    def smooth(self, name: str, length_km: float) -> np.ndarray:
        """Smooth unit-variance field ``(n,)`` of length scale ``length_km`` (km) at the cell centres."""
        return SmoothField(self.seed, name, length_km)(self.lat, self.lon)


def land_domain(resolution_deg: float, seed: int) -> LandDomain:
    """Grid, GLOBE land fraction and land domain (``world.md`` §2).

    Parameters
    ----------
    resolution_deg : float
        Grid spacing (degrees).
    seed : int
        World seed.

    Returns
    -------
    LandDomain
    """
    grid = regular_grid(resolution_deg)
    lf = land_fraction(grid)
    dom = domain_mask(grid, lf)
    geo_full = clim.geography(grid, lf)
    cells = np.flatnonzero(dom.ravel())
    lat, lon = grid.centres(cells)
    return LandDomain(seed=int(seed), grid=grid, land_fraction_grid=lf, cell_id=cells, lat=lat, lon=lon,
                      area_m2=grid.area_m2().ravel()[cells], land_fraction=lf.ravel()[cells],
                      geo={k: v.ravel()[cells] for k, v in geo_full.items()})


# ------------------------------------------------------------------------------------------------ climate
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


def model_climate(d: LandDomain) -> dict[str, np.ndarray]:
    """Elevation, slope and the model ("CESM2") climate of the land cells (``world.md`` §2-3).

    Returns
    -------
    dict
        ``elevation_m`` (n,) m; ``slope_m_km`` (n,) m km-1; ``ta_c`` (n, 12) monthly air temperature (C);
        ``pr_mm`` (n, 12) precipitation (mm month-1); ``dtr_k`` (n,) diurnal range (K); ``half_range_k`` (n,)
        seasonal half-range (K); ``pet_mm`` (n, 12) Thornthwaite PET (mm month-1); ``aridity`` (n,) P/PET;
        ``t_mean_c`` (n,) annual mean (C); ``p_ann_mm`` (n,) annual precipitation (mm yr-1); ``n_warm`` (n,)
        months above 5 C.
    """
    elev = clim.elevation_m(d.lat, d.lon, d.geo["interior"], d.seed)
    slope = _slope_m_per_km(d.grid, d.cell_id, elev)
    c = clim.climate_backbone(d.lat, d.lon, elev, d.geo, d.seed, d.cell_id, d.grid.n_cells)
    ta, pr = c["ta"], c["pr"]
    pet = clim.pet_thornthwaite(ta, d.lat)
    return {"elevation_m": elev, "slope_m_km": slope, "ta_c": ta, "pr_mm": pr, "dtr_k": c["dtr"],
            "half_range_k": c["half_range"], "pet_mm": pet, "aridity": clim.aridity_index(pr, pet),
            "t_mean_c": ta.mean(axis=1), "p_ann_mm": pr.sum(axis=1), "n_warm": (ta > 5.0).sum(axis=1)}


# ------------------------------------------------------------------------------------------------ cover
def npp_field(d: LandDomain, c: dict[str, np.ndarray]) -> np.ndarray:
    """NPP (g C m-2 yr-1), (n,): :data:`NPP_SCALE` x Miami NPP x smooth and cell log-noise (``world.md`` §4.7)."""
    return NPP_SCALE * npp_miami(c["t_mean_c"], c["p_ann_mm"], c["ta_c"].max(axis=1)) * np.exp(
        0.15 * d.smooth("npp", 300.0) + 0.13 * d.noise("npp") - 0.02)


def arid_mask(c: dict[str, np.ndarray], npp: np.ndarray) -> np.ndarray:
    """Hyper-arid or bare cells, (n,) bool: annual P < 100 mm or NPP < 20 g C m-2 yr-1."""
    return (c["p_ann_mm"] < 100.0) | (npp < 20.0)


def valid_mask(p_ann: np.ndarray, npp: np.ndarray, land_frac: np.ndarray, interior: np.ndarray,
               ) -> tuple[np.ndarray, dict[str, Any]]:
    """Valid cells (``world.md`` §2): drop hyper-arid and bare cells (P < 100 mm or NPP < 20 g C m-2 yr-1),
    then the most coastal cells down to :data:`VALID_FRACTION` of the domain.

    Coastal cells are ranked by ``land fraction + interior index`` (lowest first, ties by position) and only
    cells with a score below :data:`MAX_COASTAL_SCORE` may go: small islands and coastal cells, standing in for
    the 0.5-degree cells whose nearest CESM2 f05 cell is ocean (NaN litter input) in PRODA.

    Parameters
    ----------
    p_ann : (n,) array
        Annual precipitation (mm yr-1).
    npp : (n,) array
        NPP (g C m-2 yr-1).
    land_frac, interior : (n,) arrays
        Land fraction and interior index (0-1).

    Returns
    -------
    valid : (n,) bool array
    info : dict
        ``invalid_arid``, ``invalid_coastal`` (cell counts) and ``coastal_score_threshold``.
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


def land_use(d: LandDomain, c: dict[str, np.ndarray], valid: np.ndarray) -> dict[str, np.ndarray]:
    """Forest, cropland, wetland/peat and urban cover of the land cells (``world.md`` §4.7, §5).

    Cropland is the top 17 % of a climate-shaped score among valid cells (a third of it mosaic, fraction 0.5);
    wetlands the top 7 % of the rest; urban ~0.6 % of the remaining valid cells.

    Returns
    -------
    dict of (n,) arrays
        ``forest``, ``crop``, ``wetland``, ``organic`` (fractions / indices 0-1); ``crop_flag``, ``mosaic``,
        ``wet_flag``, ``urban`` (bool); ``crop_score`` (dimensionless).
    """
    t_mean, p_ann, ai = c["t_mean_c"], c["p_ann_mm"], c["aridity"]
    elev, slope, lat = c["elevation_m"], c["slope_m_km"], d.lat
    forest = np.clip(forest_fraction(t_mean, ai, c["n_warm"]) + 0.08 * d.noise("forest"), 0.0, 1.0)
    crop_score = (d.smooth("crop", 400.0)
                  - ((t_mean - 14.0) / 9.0) ** 2 - ((np.log(np.maximum(p_ann, 1.0)) - np.log(800.0)) / 0.6) ** 2)
    crop_flag = _quantile_flag(crop_score, valid, 0.17)
    mosaic = np.zeros_like(crop_flag)
    if crop_flag.any():
        mosaic = crop_flag & (crop_score < np.quantile(crop_score[crop_flag], 0.33))
    crop = np.where(crop_flag, np.where(mosaic, 0.5, 1.0), 0.0)
    wet_score = (1.2 * np.log(np.maximum(ai, 0.05)) - elev / 400.0 - slope / 3.0
                 + 0.8 * d.smooth("wetland", 300.0)
                 + 1.0 * ((lat > 50) & (elev < 400)) + 0.8 * ((t_mean > 22) & (ai > 1.2) & (elev < 400)))
    wet_flag = _quantile_flag(wet_score, valid & ~crop_flag, 0.07 / (1 - 0.17))
    wetland = np.where(wet_flag, 0.5 + 0.5 * np.clip(d.noise("wet_int", kind="uniform"), 0, 1), 0.0)
    organic = np.where(wet_flag, 1.0 / (1.0 + np.exp(-(5.0 - t_mean) / 3.0)), 0.0)
    urban = valid & ~crop_flag & ~wet_flag & (d.noise("urban", kind="uniform") < 0.006) & (crop_score > -1.0)
    return {"forest": forest, "crop": crop, "wetland": wetland, "organic": organic, "crop_flag": crop_flag,
            "mosaic": mosaic, "wet_flag": wet_flag, "urban": urban, "crop_score": crop_score}


def soil_fields(d: LandDomain, c: dict[str, np.ndarray]) -> dict[str, Any]:
    """Soil texture, the shield index and depth to bedrock (``world.md`` §4.6, §5).

    Returns
    -------
    dict
        ``texture``: ``sand``/``silt``/``clay`` (n, 3) in % at 0/30/100 cm (:func:`covariates.soil_texture`);
        ``shield`` (n,) smooth index (SD ~1); ``dtb_m`` (n,) depth to bedrock (m).
    """
    tex = cov.soil_texture(d.smooth("sand", 600.0), d.smooth("clay", 600.0),
                           np.clip(0.5 + 0.35 * d.smooth("argillic", 800.0), 0, 1), c["aridity"], c["t_mean_c"],
                           d.noise("texture", 2))
    shield = d.smooth("shield", 800.0)
    dtb = cov.depth_to_bedrock_m(c["slope_m_km"], c["elevation_m"], shield, d.noise("dtb"))
    return {"texture": tex, "shield": shield, "dtb_m": dtb}


# ------------------------------------------------------------------------------------------------ forcing
def valid_forcing(d: LandDomain, c: dict[str, np.ndarray], npp: np.ndarray, cover: dict[str, np.ndarray],
                  dtb_m: np.ndarray, valid: np.ndarray, chunk_cells: int = 4096,
                  ) -> tuple[Forcing | None, dict[str, np.ndarray]]:
    """Monthly 20-layer forcing of the valid cells, in chunks (:func:`~prodampi.data.forcing_synth.synth_forcing`).

    Returns
    -------
    forcing : Forcing or None
        n_valid sites in valid-cell order (``prodampi.soil.forcing`` units); None without valid cells.
    details : dict of (n_valid, ...) arrays
        The per-site intermediates of ``synth_forcing`` (empty without valid cells).
    """
    vidx = np.flatnonzero(valid)
    nz_all = {k: d.noise("forcing:" + k) for k in NOISE_KEYS}
    ta, pr, lat = c["ta_c"], c["pr_mm"], d.lat
    parts, details = [], []
    for i in range(0, vidx.size, chunk_cells):
        j = vidx[i:i + chunk_cells]
        f, det = synth_forcing(lat[j], ta[j], pr[j], npp=npp[j], forest=cover["forest"][j], crop=cover["crop"][j],
                               wetland=cover["wetland"][j], organic=cover["organic"][j], dtb_m=dtb_m[j],
                               noise={k: v[j] for k, v in nz_all.items()})
        parts.append(f)
        details.append(det)
    forcing = Forcing.concatenate(parts) if parts else None
    fdet = {k: np.concatenate([x[k] for x in details]) for k in details[0]} if details else {}
    return forcing, fdet


def permafrost_flags(c: dict[str, np.ndarray], valid: np.ndarray, permafrost_valid: np.ndarray) -> np.ndarray:
    """Permafrost flag of every land cell, (n,) bool.

    Valid cells take ``permafrost_valid`` (the forcing's rule, mean soil temperature < -1 C); invalid cells
    (taxonomy only) the same rule on air temperature with a +3 K offset.
    """
    vidx = np.flatnonzero(valid)
    pf_land = np.zeros(valid.size, dtype=bool)
    pf_land[vidx] = permafrost_valid
    pf_land[~valid] = (c["t_mean_c"][~valid] + 3.0) < -1.0
    return pf_land


# ------------------------------------------------------------------------------------------------ covariates
def observed_climate(d: LandDomain, c: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """WorldClim-like "observed" climate = model climate + independent errors (CESM2 and WorldClim differ).

    BIO1-19 are then mutually consistent but not collinear with the forcing.

    Returns
    -------
    bio : (n, 19) array
        BIO1-19 (:data:`prodampi.data.climate.BIO_UNITS`).
    koppen : (n,) int array
        Koppen-Geiger class code (1-30).
    """
    ta, pr = c["ta_c"], c["pr_mm"]
    t_bias = 0.8 * d.smooth("wc_tbias", 400.0) + 0.5 * d.noise("wc_tbias")
    ta_obs = ta + t_bias[:, None] + 0.3 * d.noise("wc_tmon", 12)
    ta_obs_mean = ta_obs.mean(axis=1)
    ta_obs += (clim.soft_ceiling(ta_obs_mean, 26.5, 2.0) - ta_obs_mean)[:, None]
    p_bias = 0.2 * d.smooth("wc_pbias", 400.0) + 0.1 * d.noise("wc_pbias")
    pr_obs = pr * np.exp(p_bias[:, None] + 0.12 * d.noise("wc_pmon", 12))
    dtr_obs = np.clip(c["dtr_k"] + 0.5 * d.noise("wc_dtr"), 4.0, 20.0)
    return clim.bioclim(ta_obs, pr_obs, dtr_obs), clim.koppen_geiger(ta_obs, pr_obs, d.lat)


def soil_covariates(d: LandDomain, c: dict[str, np.ndarray], cover: dict[str, np.ndarray], soil: dict[str, Any],
                    permafrost: np.ndarray) -> dict[str, np.ndarray]:
    """Soil covariates of the land cells at 0/30/100 cm (``world.md`` §5).

    Returns
    -------
    dict
        (n, 3): ``bd_kg_m3`` bulk density (kg m-3), ``cec`` (cmol+ kg-1), ``ph_x10`` (pH x 10), ``wwp_pct``
        wilting point (% vol), ``coarse_pct`` coarse fragments (% vol), ``texture_class`` (USDA 1-12);
        (n,): ``usda``, ``wrb`` (class codes), ``acid`` (ordinal), ``occ_r_pct`` R-horizon occurrence (%),
        ``dtb_cm`` covariate depth to bedrock (cm).
    """
    t_mean, ai, slope, elev = c["t_mean_c"], c["aridity"], c["slope_m_km"], c["elevation_m"]
    tex, shield, dtb = soil["texture"], soil["shield"], soil["dtb_m"]
    wetland, organic = cover["wetland"], cover["organic"]
    soc_c = cov.soc_content_proxy(t_mean, ai, tex["clay"][:, 0], wetland, organic)
    bd = 1000.0 * ptf_bulk_density(soc_c) * np.exp(0.07 * d.noise("bd", 3)) + np.array([0.0, 50.0, 110.0])
    cec = np.maximum(0.5 * tex["clay"] + 2.0 * soc_c / 10.0 + 2.0 * d.noise("cec", 3), 1.0)
    boreal = np.clip((5.0 - t_mean) / 8.0, 0.0, 1.0) * np.clip(ai - 0.6, 0.0, 1.0)
    humid_trop = np.clip((t_mean - 20.0) / 4.0, 0.0, 1.0) * np.clip(ai - 1.0, 0.0, 1.0)
    ph0 = 8.3 - 3.0 * (1.0 - np.exp(-1.1 * ai)) - 0.8 * boreal - 0.6 * humid_trop + 0.35 * d.noise("ph")
    ph = 10.0 * np.clip(ph0[:, None] + np.array([0.0, 0.1, 0.25])[None, :]
                        + 0.4 * np.clip(0.4 - ai, 0, None)[:, None] * np.array([0, 1, 2])[None, :], 3.5, 9.5)
    wwp = np.clip(2.0 + 0.35 * tex["clay"] + 0.6 * d.noise("wwp", 3), 0.5, None)
    upland = np.clip(slope / 8.0, 0.0, 2.0) + 0.5 * np.clip(shield, 0.0, None)
    cf_on = d.noise("cf_on", kind="uniform") < 1.0 / (1.0 + np.exp(-(-0.3 + 1.5 * upland)))
    cf = np.where(cf_on[:, None], 100.0 / (1.0 + np.exp(-(-2.6 + 1.3 * upland[:, None]
                                                       + 1.2 * d.noise("cf")[:, None]
                                                       + np.array([0.0, 0.25, 0.5])[None, :]))), 0.0)
    tex_cls = np.column_stack([cov.usda_texture_class(tex["sand"][:, k], tex["silt"][:, k], tex["clay"][:, k])
                               for k in range(3)])
    andic = (d.noise("andic", kind="uniform") < 0.4) & (slope > 6.0) & (elev > 800.0)
    usda, wrb = cov.soil_taxonomy(t_mean, ai, tex["sand"][:, 0], tex["clay"][:, 0], ph[:, 0], cf[:, 0], dtb,
                                  permafrost, cover["wet_flag"], organic, cover["forest"], andic)
    occ_r = np.clip(100.0 / (1.0 + np.exp(-((np.log(2.0) - np.log(dtb)) / 0.6 + 0.4 * d.noise("occ_r")))), 0, 100)
    return {"bd_kg_m3": bd, "cec": cec, "ph_x10": ph, "wwp_pct": wwp, "coarse_pct": cf, "texture_class": tex_cls,
            "usda": usda, "wrb": wrb, "acid": cov.acid_grade(ph[:, 1]), "occ_r_pct": occ_r,
            "dtb_cm": np.clip(dtb * 100.0 * np.exp(0.25 * d.noise("dtb_cov")), 1.0, 50000.0)}


def covariate_matrix(d: LandDomain, c: dict[str, np.ndarray], npp: np.ndarray, cover: dict[str, np.ndarray],
                     soil: dict[str, Any], soil_cov: dict[str, np.ndarray], valid: np.ndarray,
                     nbedrock_valid: np.ndarray) -> np.ndarray:
    """The 60 NN covariates of every land cell, (n, 60), in :data:`covariates.COVARIATE_NAMES` order and units.

    Invalid cells get NaN where PRODA's inputs have none: CESM2 NPP (and, in hyper-arid cells, NPP SD and
    vegetation C) everywhere, the soil grids in the coastal ones, so the NN stage drops them (``world.md`` §2).

    Parameters
    ----------
    nbedrock_valid : (n_valid,) int array
        Bedrock layer index (1-20) of the valid cells (the forcing's); invalid cells use
        :func:`~prodampi.data.forcing_synth.nbedrock_from_depth` of ``soil["dtb_m"]``.
    """
    t_mean, p_ann, ai, elev = c["t_mean_c"], c["p_ann_mm"], c["aridity"], c["elevation_m"]
    forest, dtb, tex = cover["forest"], soil["dtb_m"], soil["texture"]
    bio, koppen = observed_climate(d, c)
    lc = cov.land_cover(t_mean, bio[:, 9], p_ann, ai, forest, c["half_range_k"], cover["crop_flag"],
                        cover["mosaic"], cover["wet_flag"], cover["urban"])
    npp_sd_frac = (0.05 + 0.10 * np.clip(1.0 - ai, 0.0, 1.0)) * np.exp(0.1 * d.noise("npp_sd"))
    vegc = np.clip(npp * (1.5 + forest * (16.0 + 14.0 / (1.0 + np.exp(-(5.0 - t_mean) / 5.0))))
                   * np.exp(0.15 * d.noise("vegc")), 0.0, 25000.0)
    nb_land = np.full(d.n, N_LAYERS, dtype=np.float64)
    nb_land[np.flatnonzero(valid)] = nbedrock_valid
    nb_land[~valid] = nbedrock_from_depth(dtb[~valid])
    s = soil_cov

    def by_depth(prefix: str, x: np.ndarray) -> dict[str, np.ndarray]:
        return {f"{prefix}_{dep}": x[:, k] for k, dep in enumerate(cov._DEPTHS)}

    columns = {
        "Lon": d.lon, "Lat": d.lat, "ESA_Land_Cover": lc.astype(float),
        **{n: bio[:, i] for i, n in enumerate(clim.BIO_NAMES)},
        "Abs_Depth_to_Bedrock": s["dtb_cm"],
        **by_depth("Bulk_Density", s["bd_kg_m3"]), **by_depth("CEC", s["cec"]),
        **by_depth("Clay_Content", tex["clay"]), **by_depth("Coarse_Fragments_v", s["coarse_pct"]),
        "Garde_Acid": s["acid"].astype(float), "Occurrence_R_Horizon": s["occ_r_pct"],
        **by_depth("pH_Water", s["ph_x10"]), **by_depth("Sand_Content", tex["sand"]),
        **by_depth("Silt_Content", tex["silt"]), **by_depth("SWC_v_Wilting_Point", s["wwp_pct"]),
        **by_depth("Texture_USDA", s["texture_class"].astype(float)),
        "USDA_Suborder": s["usda"].astype(float), "WRB_Subgroup": s["wrb"].astype(float), "Elevation": elev,
        "Koppen_Climate_2018": koppen.astype(float), "cesm2_npp": npp / SEC_PER_YR,
        "cesm2_npp_std": npp * npp_sd_frac / SEC_PER_YR, "cesm2_vegc": vegc, "nbedrock": nb_land,
    }
    covs = np.column_stack([columns[n] for n in cov.COVARIATE_NAMES])
    # invalid cells: CESM2 has no litter input (NaN NPP/vegetation); coastal cells also lack soil grids
    arid = arid_mask(c, npp)
    inv = ~valid
    for n in ("cesm2_npp", "cesm2_npp_std", "cesm2_vegc"):
        covs[inv & arid, cov.COVARIATE_NAMES.index(n)] = np.nan
    for n in cov.COVARIATE_NAMES:
        if n.startswith(("Bulk_Density", "CEC_", "Clay", "Sand", "Silt")):
            covs[inv & ~arid, cov.COVARIATE_NAMES.index(n)] = np.nan
    covs[inv, cov.COVARIATE_NAMES.index("cesm2_npp")] = np.nan
    return covs


def land_fields(d: LandDomain, c: dict[str, np.ndarray], npp: np.ndarray, cover: dict[str, np.ndarray],
                soil: dict[str, Any], permafrost: np.ndarray) -> dict[str, np.ndarray]:
    """The per-land-cell fields stored as :attr:`prodampi.data.world.World.land` (units there), in that order."""
    return {
        "lat": d.lat, "lon": d.lon, "area_m2": d.area_m2, "land_fraction": d.land_fraction,
        "elevation_m": c["elevation_m"], "slope_m_km": c["slope_m_km"], "ta_c": c["ta_c"], "pr_mm": c["pr_mm"],
        "dtr_k": c["dtr_k"], "pet_mm": c["pet_mm"], "aridity": c["aridity"], "npp_gc_m2_yr": npp,
        "forest": cover["forest"], "crop": cover["crop"], "wetland": cover["wetland"], "organic": cover["organic"],
        "dtb_m": soil["dtb_m"], "permafrost": permafrost, "continentality": d.geo["continentality"],
    }
