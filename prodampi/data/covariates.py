"""The 60 NN covariates of the synthetic world (``proda_nn_maps.md`` §4.1, ``world.md`` §5).

Names, order and units follow the NN input list ``var4nn`` of PRODA.  Categorical covariates are integer codes
(min-max scaled by the pipeline like the original, not one-hot).  Codes that mimic external products
(ESA land cover, USDA suborder, WRB subgroup, acidity grade) use the synthetic code tables of this module,
documented in :data:`CODE_TABLES`; they are stable across seeds.

Soil and vegetation properties are generated here too (texture, bulk density, pH, CEC, coarse fragments,
bedrock depth, land cover), as pure functions of per-cell arrays and seeded noise.  The bulk-density
covariates use the paper's pedo-transfer function :func:`prodampi.data.profiles.ptf_bulk_density` (the one
implementation; re-exported here for existing callers).
"""

from __future__ import annotations

import numpy as np

from .climate import BIO_NAMES, BIO_UNITS

# ---------------------------------------------------------------------------------------------- names
_DEPTHS = ("0cm", "30cm", "100cm")

COVARIATE_NAMES: tuple[str, ...] = (
    ("Lon", "Lat", "ESA_Land_Cover") + BIO_NAMES + ("Abs_Depth_to_Bedrock",)
    + tuple(f"Bulk_Density_{d}" for d in _DEPTHS)
    + tuple(f"CEC_{d}" for d in _DEPTHS)
    + tuple(f"Clay_Content_{d}" for d in _DEPTHS)
    + tuple(f"Coarse_Fragments_v_{d}" for d in _DEPTHS)
    + ("Garde_Acid", "Occurrence_R_Horizon")
    + tuple(f"pH_Water_{d}" for d in _DEPTHS)
    + tuple(f"Sand_Content_{d}" for d in _DEPTHS)
    + tuple(f"Silt_Content_{d}" for d in _DEPTHS)
    + tuple(f"SWC_v_Wilting_Point_{d}" for d in _DEPTHS)
    + tuple(f"Texture_USDA_{d}" for d in _DEPTHS)
    + ("USDA_Suborder", "WRB_Subgroup", "Elevation", "Koppen_Climate_2018", "cesm2_npp", "cesm2_npp_std",
       "cesm2_vegc", "nbedrock")
)
"""The 60 NN inputs in PRODA's order (``proda_nn_maps.md`` §4.1)."""

COVARIATE_UNITS: dict[str, str] = {
    "Lon": "degrees_east", "Lat": "degrees_north", "ESA_Land_Cover": "class code 1-22",
    **dict(zip(BIO_NAMES, BIO_UNITS)),
    "Abs_Depth_to_Bedrock": "cm",
    **{f"Bulk_Density_{d}": "kg m-3" for d in _DEPTHS},
    **{f"CEC_{d}": "cmol+ kg-1" for d in _DEPTHS},
    **{f"Clay_Content_{d}": "%" for d in _DEPTHS},
    **{f"Coarse_Fragments_v_{d}": "% vol" for d in _DEPTHS},
    "Garde_Acid": "ordinal grade 1-4", "Occurrence_R_Horizon": "% probability",
    **{f"pH_Water_{d}": "pH x 10" for d in _DEPTHS},
    **{f"Sand_Content_{d}": "%" for d in _DEPTHS},
    **{f"Silt_Content_{d}": "%" for d in _DEPTHS},
    **{f"SWC_v_Wilting_Point_{d}": "% vol" for d in _DEPTHS},
    **{f"Texture_USDA_{d}": "USDA class 1-12" for d in _DEPTHS},
    "USDA_Suborder": "class code", "WRB_Subgroup": "class code", "Elevation": "m",
    "Koppen_Climate_2018": "class 1-30", "cesm2_npp": "g C m-2 s-1", "cesm2_npp_std": "g C m-2 s-1",
    "cesm2_vegc": "g C m-2", "nbedrock": "layer index 1-20",
}
"""Unit of each covariate (temperatures in degrees C, not WorldClim's C x 10)."""

CATEGORICAL: tuple[str, ...] = (
    "ESA_Land_Cover", "Koppen_Climate_2018", "Garde_Acid", "USDA_Suborder", "WRB_Subgroup",
    *(f"Texture_USDA_{d}" for d in _DEPTHS), "nbedrock",
)
"""Covariates that are integer codes or ordinal classes."""

assert len(COVARIATE_NAMES) == 60 and set(COVARIATE_UNITS) == set(COVARIATE_NAMES)

# ---------------------------------------------------------------------------------------------- code tables
ESA_CLASSES = (
    "cropland rainfed", "cropland irrigated", "mosaic cropland", "mosaic natural vegetation",
    "tree broadleaved evergreen", "tree broadleaved deciduous", "tree needleleaved evergreen",
    "tree needleleaved deciduous", "tree mixed", "mosaic tree and shrub", "mosaic herbaceous", "shrubland",
    "grassland", "lichens and mosses", "sparse vegetation", "tree flooded fresh water",
    "tree flooded saline water", "shrub or herbaceous flooded", "urban", "bare areas", "water bodies",
    "permanent snow and ice",
)
"""ESA CCI land-cover classes 10, 20, ..., 220 recoded 1..22 (code = position + 1)."""

TEXTURE_CLASSES = ("clay", "silty clay", "sandy clay", "clay loam", "silty clay loam", "sandy clay loam",
                   "loam", "silt loam", "sandy loam", "silt", "loamy sand", "sand")
"""USDA texture classes in the SoilGrids TEXMHT numbering 1..12."""

USDA_SUBORDERS = ("Histels", "Turbels", "Orthels", "Fibrists", "Hemists", "Saprists", "Orthods", "Humods",
                  "Udands", "Udox", "Ustox", "Usterts", "Xererts", "Argids", "Calcids", "Cambids", "Gypsids",
                  "Udults", "Ustults", "Udolls", "Ustolls", "Xerolls", "Udalfs", "Ustalfs", "Xeralfs",
                  "Cryalfs", "Cryepts", "Udepts", "Ustepts", "Aquepts", "Psamments", "Orthents", "Fluvents")
"""Synthetic USDA suborder codes 1..33 (code = position + 1)."""

WRB_GROUPS = ("Cryosols", "Histosols", "Podzols", "Andosols", "Ferralsols", "Vertisols", "Calcisols",
              "Gypsisols", "Acrisols", "Chernozems", "Kastanozems", "Phaeozems", "Luvisols", "Cambisols",
              "Arenosols", "Leptosols", "Gleysols", "Regosols", "Fluvisols", "Solonchaks")
"""Synthetic WRB reference groups; WRB_Subgroup code = 3 (group index) + qualifier (1 haplic, 2 dystric/
eutric by pH, 3 skeletic/calcaric by coarse fragments) giving 1..60."""

ACID_GRADES = ("none (pH >= 6.5)", "weak (5.5-6.5)", "moderate (4.5-5.5)", "strong (< 4.5)")
"""Garde_Acid ordinal grades 1..4 from the sub-soil (30 cm) pH."""

CODE_TABLES: dict[str, tuple[str, ...]] = {
    "ESA_Land_Cover": ESA_CLASSES, "Texture_USDA": TEXTURE_CLASSES, "USDA_Suborder": USDA_SUBORDERS,
    "WRB_Group": WRB_GROUPS, "Garde_Acid": ACID_GRADES,
}


def _sig(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# ---------------------------------------------------------------------------------------------- texture
def usda_texture_class(sand: np.ndarray, silt: np.ndarray, clay: np.ndarray) -> np.ndarray:
    """USDA texture class 1..12 (:data:`TEXTURE_CLASSES`) from sand, silt and clay (%; summing to 100)."""
    sa, si, cl = (np.asarray(a, dtype=np.float64) for a in (sand, silt, clay))
    conds = [
        si + 1.5 * cl < 15,                                                            # sand
        (si + 1.5 * cl >= 15) & (si + 2 * cl < 30),                                    # loamy sand
        (cl >= 40) & (si >= 40),                                                       # silty clay
        (cl >= 35) & (sa > 45),                                                        # sandy clay
        (cl >= 40) & (sa <= 45) & (si < 40),                                           # clay
        (cl >= 27) & (cl < 40) & (sa <= 20),                                           # silty clay loam
        (cl >= 27) & (cl < 40) & (sa > 20) & (sa <= 45),                               # clay loam
        (cl >= 20) & (cl < 35) & (si < 28) & (sa > 45),                                # sandy clay loam
        (si >= 80) & (cl < 12),                                                        # silt
        ((si >= 50) & (cl >= 12) & (cl < 27)) | ((si >= 50) & (si < 80) & (cl < 12)),  # silt loam
        (cl >= 7) & (cl < 27) & (si >= 28) & (si < 50) & (sa <= 52),                   # loam
        ((cl >= 7) & (cl < 20) & (sa > 52) & (si + 2 * cl >= 30))
        | ((cl < 7) & (si < 50) & (si + 2 * cl >= 30)),                                # sandy loam
    ]
    codes = [12, 11, 2, 3, 1, 5, 4, 6, 10, 8, 7, 9]
    return np.select(conds, codes, default=7).astype(np.int64)


def soil_texture(sand_latent: np.ndarray, clay_latent: np.ndarray, argillic: np.ndarray, aridity: np.ndarray,
                 t_air_c: np.ndarray, noise: np.ndarray) -> dict[str, np.ndarray]:
    """Sand, silt and clay (%) at 0, 30 and 100 cm.

    Parameters
    ----------
    sand_latent, clay_latent : (n,) arrays
        Smooth standard-normal "parent material" fields.
    argillic : (n,) array
        Clay-illuviation strength in [0, 1] (clay rises by 0-30 % of its surface value down to 1 m).
    aridity : (n,) array
        P / PET (deserts sandier).
    t_air_c : (n,) array
        Annual mean air temperature (C) (warm humid soils more weathered, more clay).
    noise : (n, 2) array
        Standard-normal cell noise.

    Returns
    -------
    dict
        ``sand``, ``silt``, ``clay``: (n, 3) % at 0/30/100 cm, each row summing to 100.
    """
    arid = np.clip(1.0 - aridity / 0.4, 0.0, 1.0)
    weathered = np.clip((t_air_c - 18.0) / 6.0, 0.0, 1.0) * np.clip(aridity - 0.8, 0.0, 1.0)
    sand0 = 100.0 * _sig(-0.35 + 1.0 * sand_latent + 1.3 * arid - 0.6 * weathered + 0.45 * noise[:, 0])
    r = _sig(-0.55 + 0.6 * clay_latent + 1.0 * weathered + 0.35 * noise[:, 1])  # clay share of the fines
    clay0 = (100.0 - sand0) * r
    mult = 1.0 + np.array([0.0, 0.15, 0.30])[None, :] * argillic[:, None]
    clay = np.minimum(clay0[:, None] * mult, 85.0)
    fines0 = 100.0 - clay0
    sand = sand0[:, None] * (100.0 - clay) / np.maximum(fines0, 1e-9)[:, None]
    silt = 100.0 - sand - clay
    return {"sand": sand, "silt": np.maximum(silt, 0.0), "clay": clay}


def soc_content_proxy(t_air_c: np.ndarray, aridity: np.ndarray, clay0: np.ndarray, wetland: np.ndarray,
                      organic: np.ndarray) -> np.ndarray:
    """Climate-based expected SOC content (g C kg-1) at 0/30/100 cm, (n, 3); used for BD and CEC covariates.

    Cooler, wetter and clayey soils hold more; peat reaches 200-400 g kg-1 at the surface.
    """
    base = 14.0 * np.exp(-0.04 * (t_air_c - 10.0)) * np.sqrt(np.clip(aridity, 0.1, 2.0)) * (1 + 0.01 * clay0)
    base = base * (1.0 + 0.8 * wetland) + 300.0 * organic
    return np.minimum(base[:, None] * np.array([1.0, 0.45, 0.18])[None, :], 450.0)


# ---------------------------------------------------------------------------------------------- bedrock
def depth_to_bedrock_m(slope: np.ndarray, elev_m: np.ndarray, shield: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Depth to bedrock (m), lognormal around a slope/elevation/shield-driven median (``world.md`` §4.6).

    Parameters
    ----------
    slope : (n,) array
        Mean slope (m km-1).
    elev_m : (n,) array
        Elevation (m).
    shield : (n,) array
        Smooth standard-normal field; positive values mark old shields with thin regolith.
    noise : (n,) array
        Standard-normal cell noise.

    Returns
    -------
    numpy.ndarray
        (n,) DTB (m), in [0.05, 500].
    """
    raw = np.clip(slope / 8.0, 0.0, 2.0) + 0.7 * np.clip(shield, 0.0, None) + 0.5 * np.clip(
        (elev_m - 1500.0) / 1500.0, 0.0, 1.0)
    upland = 1.0 / (1.0 + np.exp(-(raw - 0.5) / 0.12))  # ~0 in lowlands and basins, ~1 on uplands/shields
    ln_med = np.log(40.0) - np.log(40.0 / 1.2) * upland  # 40 m in lowlands, 1.2 m on steep uplands and shields
    return np.clip(np.exp(ln_med + (1.0 - 0.2 * upland) * noise), 0.05, 500.0)


# ---------------------------------------------------------------------------------------------- land cover
def land_cover(t_air_c: np.ndarray, t_warm_q: np.ndarray, p_ann: np.ndarray, aridity: np.ndarray,
               forest: np.ndarray, half_range: np.ndarray, crop: np.ndarray, crop_mosaic: np.ndarray,
               wetland: np.ndarray, urban: np.ndarray) -> np.ndarray:
    """ESA CCI land-cover class recoded 1..22 (:data:`ESA_CLASSES`) from climate and vegetation fields.

    Parameters
    ----------
    t_air_c, t_warm_q : (n,) arrays
        Annual mean and warmest-quarter air temperature (C).
    p_ann : (n,) array
        Annual precipitation (mm).
    aridity : (n,) array
        P / PET.
    forest : (n,) array
        Tree cover fraction in [0, 1].
    half_range : (n,) array
        Seasonal air-temperature half-range (K).
    crop, crop_mosaic, wetland, urban : (n,) bool arrays
        Cropland, mosaic cropland, wetland and urban flags.

    Returns
    -------
    numpy.ndarray of int64
    """
    trop_wet = (t_air_c > 20.0) & (aridity > 1.1)
    conds = [
        urban,
        crop & crop_mosaic,
        crop & (p_ann < 500.0),
        crop,
        wetland & (forest >= 0.5),
        wetland,
        t_warm_q < 6.0,
        t_warm_q < 10.0,
        p_ann < 120.0,
        p_ann < 250.0,
        (forest >= 0.6) & trop_wet,
        (forest >= 0.6) & (t_air_c > 20.0),
        (forest >= 0.6) & (t_air_c < 2.0) & (half_range > 21.0),
        (forest >= 0.6) & (t_air_c < 4.0),
        (forest >= 0.6) & (t_air_c < 10.0),
        forest >= 0.6,
        forest >= 0.4,
        forest >= 0.25,
        aridity < 0.3,
        aridity < 0.8,
    ]
    codes = [19, 3, 2, 1, 16, 18, 15, 14, 20, 15, 5, 6, 8, 7, 9, 6, 10, 4, 12, 13]
    return np.select(conds, codes, default=11).astype(np.int64)


# ---------------------------------------------------------------------------------------------- taxonomy
def soil_taxonomy(t_air_c: np.ndarray, aridity: np.ndarray, sand0: np.ndarray, clay0: np.ndarray,
                  ph0: np.ndarray, coarse0: np.ndarray, dtb_m: np.ndarray, permafrost: np.ndarray,
                  wetland: np.ndarray, organic: np.ndarray, forest: np.ndarray, andic: np.ndarray,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic USDA suborder (1..33) and WRB subgroup (1..60) codes from soil-forming factors.

    Returns
    -------
    usda : (n,) int64
        Code of :data:`USDA_SUBORDERS`.
    wrb : (n,) int64
        ``3 * group + qualifier`` with group from :data:`WRB_GROUPS` and qualifier 1..3.
    """
    moist = np.select([aridity < 0.2, aridity < 0.5, aridity < 1.0], [0, 1, 2], default=3)  # aridic..udic
    warm = t_air_c > 20.0
    mediterranean = (aridity < 0.8) & (aridity >= 0.3) & (t_air_c > 10.0) & (t_air_c < 20.0)
    u_conds = [
        permafrost & (organic > 0.5), permafrost & (t_air_c < -8.0), permafrost,
        (organic > 0.5) & (t_air_c < 0.0), organic > 0.5, wetland & (organic > 0.2),
        (t_air_c < 6.0) & (aridity > 0.9) & (sand0 > 50.0), (t_air_c < 6.0) & (aridity > 1.3) & (forest > 0.6),
        andic,
        warm & (aridity > 1.3), warm & (aridity > 0.9) & (clay0 > 30.0),
        (clay0 > 45.0) & (moist <= 2) & ~mediterranean, (clay0 > 45.0),
        (moist == 0) & (clay0 > 20.0), (moist == 0) & (ph0 > 78.0), (moist == 0) & (sand0 < 60.0), moist == 0,
        (t_air_c > 12.0) & (aridity > 1.0) & (ph0 < 58.0), (t_air_c > 12.0) & (aridity > 0.8) & (ph0 < 58.0),
        (moist == 2) & (forest < 0.3) & (t_air_c < 15.0) & (t_air_c > 0.0),
        (moist == 1) & (t_air_c < 15.0), mediterranean & (forest < 0.3),
        (moist >= 2) & (forest >= 0.5) & (t_air_c > 4.0), (moist == 1) & (forest >= 0.2), mediterranean,
        (t_air_c < 4.0) & (forest >= 0.5), t_air_c < 4.0,
        wetland, sand0 > 80.0, dtb_m < 0.5, moist >= 3,
    ]
    u_codes = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27,
               30, 31, 32, 28]
    usda = np.select(u_conds, u_codes, default=29).astype(np.int64)
    # WRB reference group (0-based index into WRB_GROUPS)
    g_conds = [
        permafrost, organic > 0.5, (t_air_c < 6.0) & (aridity > 0.9) & (sand0 > 50.0), andic,
        warm & (aridity > 1.3), clay0 > 45.0, (moist == 0) & (ph0 > 78.0), (moist == 0) & (ph0 > 75.0),
        (t_air_c > 12.0) & (aridity > 0.8) & (ph0 < 58.0), (moist == 2) & (forest < 0.3) & (t_air_c < 12.0),
        (moist == 1) & (forest < 0.3), (moist >= 2) & (forest < 0.3), (forest >= 0.5) & (t_air_c > 4.0),
        dtb_m < 0.4, sand0 > 80.0, wetland, moist == 0,
    ]
    g_idx = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 14, 16, 19]
    group = np.select(g_conds, g_idx, default=13)
    qual = np.where(coarse0 > 35.0, 3, np.where((ph0 < 55.0) | (ph0 > 72.0), 2, 1))
    return usda, (3 * group + qual).astype(np.int64)


def acid_grade(ph30: np.ndarray) -> np.ndarray:
    """Garde_Acid ordinal grade 1..4 (:data:`ACID_GRADES`) from pH x 10 at 30 cm."""
    return np.select([ph30 >= 65.0, ph30 >= 55.0, ph30 >= 45.0], [1, 2, 3], default=4).astype(np.int64)
