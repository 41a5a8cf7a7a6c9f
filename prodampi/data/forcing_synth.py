"""Monthly 20-layer soil-model forcing derived from climate (``world.md`` §4).

The synthetic world and the prepare stage (profiles that come without CESM2 forcing, label ``derived``) use the
same code path: :func:`synth_forcing` turns per-site monthly air temperature and precipitation (plus optional
NPP, forest fraction, bedrock depth, wetland and peat indices, and noise) into a
:class:`~prodampi.soil.forcing.Forcing`; :func:`forcing_from_climate` builds the monthly climate from annual
summaries first.

Fields and units (per site; layer nodes z of ``prodampi.soil.layers``; months 1..12 = Jan..Dec):

* ``tsoi_k`` (K): ``T_s + A_s exp(-z/d) cos(2 pi (m - m_max)/12 - z/d)`` (Hillel 1982), with the soil-air offset
  ``T_s - T_air`` = +1 K, up to +2 K under snow, +0.5 K in the wet tropics; ``A_s = 0.9 A_air``; damping
  depth d = 1.7-2.4 m (smaller in dry and organic soils; keeps layer 20 within 1 K of T_s); winter cooling of
  layers 1-5 capped at 10-15 K below T_s under snow; in permafrost (``T_s < -1 C``) every layer below the
  active layer is held at <= 271.9 K (frozen all year).
* ``altmax_lastyear_m`` (m): Stefan rule ``E sqrt(TDD)`` (E = 0.02-0.04 m (C d)^-1/2, TDD thawing degree-days of
  air) in permafrost, deepened up to 2.5x where T_s is within 1 K of -1 C; 8.6 m elsewhere.  ``altmax_m``
  rises from ~0 after the coldest month to that maximum (running maximum, reset yearly).
* ``w_scalar`` (0-1): annual layer-1 mean ``0.1 + 0.85 (1 - exp(-1.5 AI))`` (AI = P/PET, Thornthwaite),
  relaxing below the surface (e-folding 0.05 m) to a sub-surface level ``0.05 + 0.5 W1`` (~0.48 in humid
  soils, near field capacity; wetter than the surface in deserts), a seasonal anomaly following P - PET
  (half-month lag) damped with depth, 0.05-0.15 in frozen months (T < 272 K), floor 0.05.
* ``o_scalar`` (0-1): 1, except below a seasonal water table in wetlands (0.3-0.8 below 0.3 m), floor 0.2.
* ``fpi`` (0-1): 0.4-1.0 rising with temperature (and in cropland), +0.1 towards 1 m depth, slightly lower in
  the growing season, floor 0.05.
* ``nbedrock``: first layer whose bottom interface is >= the depth to bedrock, capped at 20.
* ``litter_input`` (g C m-2 yr-1): NPP (Miami model unless given) minus 3-10 % fire/harvest loss, split into CWD
  (1-30 % by forest fraction) and L1:L2:L3 = 0.25:0.50:0.25 (+- noise) of the rest.
"""

from __future__ import annotations

import numpy as np

from ..soil.forcing import Forcing
from ..soil.layers import N_LAYERS, ZISOI_M, ZSOI_M
from .climate import (
    MONTH_DAYS,
    annual_cycle,
    aridity_index,
    pet_thornthwaite,
    seasonal_half_range_k,
)

T0_K = 273.15
_MONTHS = np.arange(1, 13, dtype=np.float64)
_Z = ZSOI_M[:N_LAYERS]
#: g C per g dry matter (Miami NPP conversion)
C_PER_DRY_MATTER = 0.5
#: default L1:L2:L3 split of non-woody litter (CLM5 lf_flab/lf_fcel/lf_flig = fr_* for all PFTs)
LITTER_SPLIT = np.array([0.25, 0.50, 0.25])
#: non-permafrost ALTMAX (m): the full CLM column
NO_PERMAFROST_ALT_M = 8.6

NOISE_KEYS = ("delta_t", "alt", "w", "fpi", "o", "loss", "split1", "split2")
"""Names of the optional per-site standard-normal noise arrays :func:`synth_forcing` accepts."""


def npp_miami(t_air_c: np.ndarray, precip_mm: np.ndarray, t_warm_c: np.ndarray | None = None) -> np.ndarray:
    """Net primary production from the Miami model (Lieth 1975), g C m-2 yr-1.

    ``NPP = min(3000 / (1 + exp(1.315 - 0.119 T)), 3000 (1 - exp(-0.000664 P)))`` g dry matter m-2 yr-1, times
    0.5 g C per g dry matter, times a growing-season factor ``clip((T_warm + 1) / 6, 0, 1)`` for cold
    climates when the warmest-month temperature ``t_warm_c`` is given (polar deserts and ice: NPP -> 0).

    Parameters
    ----------
    t_air_c : array_like
        Annual mean air temperature (C).
    precip_mm : array_like
        Annual precipitation (mm yr-1).
    t_warm_c : array_like, optional
        Mean air temperature of the warmest month (C).

    Returns
    -------
    numpy.ndarray
        NPP (g C m-2 yr-1).
    """
    t = np.asarray(t_air_c, dtype=np.float64)
    p = np.maximum(np.asarray(precip_mm, dtype=np.float64), 0.0)
    f_t = 3000.0 / (1.0 + np.exp(1.315 - 0.119 * t))
    f_p = 3000.0 * (1.0 - np.exp(-0.000664 * p))
    npp = np.minimum(f_t, f_p) * C_PER_DRY_MATTER
    if t_warm_c is not None:
        npp = npp * np.clip((np.asarray(t_warm_c, dtype=np.float64) + 1.0) / 6.0, 0.0, 1.0)
    return npp


def forest_fraction(t_air_c: np.ndarray, aridity: np.ndarray, months_above_5c: np.ndarray) -> np.ndarray:
    """Woody (tree) cover fraction in [0, 1] from climate: needs water (P/PET > ~0.6) and >= 3 warm months."""
    ai = np.asarray(aridity, dtype=np.float64)
    gs = np.asarray(months_above_5c, dtype=np.float64)
    return (1.0 / (1.0 + np.exp(-(ai - 0.65) / 0.12))) * (1.0 / (1.0 + np.exp(-(gs - 3.0) / 0.7)))


def nbedrock_from_depth(dtb_m: np.ndarray) -> np.ndarray:
    """CLM5 bedrock layer index (1..20): the first layer whose bottom interface is >= the depth to bedrock (m)."""
    d = np.asarray(dtb_m, dtype=np.float64)
    idx = np.searchsorted(ZISOI_M[:N_LAYERS], np.where(np.isfinite(d), d, np.inf), side="left") + 1
    return np.minimum(idx, N_LAYERS).astype(np.int64)


def _harmonic(ta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, half-range (first harmonic amplitude) and month of maximum (1..12, fractional) of (S, 12) data."""
    ang = 2 * np.pi * _MONTHS / 12.0
    c1 = (ta * np.cos(ang)).sum(axis=1) / 6.0
    s1 = (ta * np.sin(ang)).sum(axis=1) / 6.0
    m_max = (np.arctan2(s1, c1) * 12.0 / (2 * np.pi)) % 12.0
    m_max = np.where(m_max == 0, 12.0, m_max)
    return ta.mean(axis=1), np.hypot(c1, s1), m_max


#: permafrost threshold on the mean soil temperature T_s (C)
PERMAFROST_T_SOIL_C = -1.0


def _thermal_regime(lat: np.ndarray, ta: np.ndarray, pr: np.ndarray, delta_t_noise: np.ndarray,
                    ) -> dict[str, np.ndarray]:
    """Annual thermal regime of S sites (the first step of :func:`synth_forcing`; inputs already cleaned).

    ``lat`` (S,) degrees, ``ta`` (S, 12) C, ``pr`` (S, 12) mm month-1 (>= 0), ``delta_t_noise`` (S,) standard
    normal.  Returns ``pet_mm`` (S, 12), ``aridity`` (P/PET), ``t_air_mean_c``, ``a_air`` (K, first-harmonic
    half-range), ``m_max`` (month of maximum), ``snow_index`` (0-1), ``delta_t_k`` (soil-air offset, K),
    ``t_soil_mean_c`` (T_s, C) and ``permafrost`` (bool, T_s < -1 C).
    """
    pet = pet_thornthwaite(ta, lat)
    ai = aridity_index(pr, pet)
    t_mean, a_air, m_max = _harmonic(ta)
    frozen = ta < 0.0
    snow = np.clip(frozen.sum(axis=1) / 4.0, 0.0, 1.0) * np.clip((pr * frozen).sum(axis=1) / 80.0, 0.0, 1.0)
    wet_tropics = np.clip((t_mean - 18.0) / 4.0, 0.0, 1.0) * np.clip(ai - 0.8, 0.0, 1.0)
    delta_t = 1.0 + 1.0 * snow - 0.5 * wet_tropics + 0.3 * delta_t_noise
    t_soil = t_mean + delta_t
    return {"pet_mm": pet, "aridity": ai, "t_air_mean_c": t_mean, "a_air": a_air, "m_max": m_max,
            "snow_index": snow, "delta_t_k": delta_t, "t_soil_mean_c": t_soil,
            "permafrost": t_soil < PERMAFROST_T_SOIL_C}


def permafrost_from_climate(lat: np.ndarray, ta: np.ndarray, pr: np.ndarray,
                            delta_t_noise: np.ndarray | None = None) -> np.ndarray:
    """Permafrost flag of S sites exactly as :func:`synth_forcing` sets it, without building the forcing.

    Parameters
    ----------
    lat : (S,) array
        Latitude (degrees).
    ta : (S, 12) array
        Monthly mean air temperature (C).
    pr : (S, 12) array
        Monthly precipitation (mm month-1; negative values count as 0).
    delta_t_noise : (S,) array, optional
        The standard-normal ``noise["delta_t"]`` given to :func:`synth_forcing` (default none).

    Returns
    -------
    (S,) bool array
        Mean soil temperature T_s = T_air + offset below -1 C (``details["permafrost"]`` of
        :func:`synth_forcing`).
    """
    lat = np.asarray(lat, dtype=np.float64).ravel()
    ta = np.asarray(ta, dtype=np.float64).reshape(lat.size, 12)
    pr = np.maximum(np.asarray(pr, dtype=np.float64).reshape(lat.size, 12), 0.0)
    nz = (np.zeros(lat.size) if delta_t_noise is None
          else np.asarray(delta_t_noise, dtype=np.float64).ravel())
    return _thermal_regime(lat, ta, pr, nz)["permafrost"]


def synth_forcing(lat: np.ndarray, ta: np.ndarray, pr: np.ndarray, *, npp: np.ndarray | None = None,
                  forest: np.ndarray | None = None, crop: np.ndarray | None = None,
                  wetland: np.ndarray | None = None, organic: np.ndarray | None = None,
                  dtb_m: np.ndarray | None = None, noise: dict[str, np.ndarray] | None = None,
                  ) -> tuple[Forcing, dict[str, np.ndarray]]:
    """Soil-model forcing for S sites from their monthly climate (see the module docstring).

    Parameters
    ----------
    lat : (S,) array
        Latitude (degrees).
    ta : (S, 12) array
        Monthly mean air temperature (C).
    pr : (S, 12) array
        Monthly precipitation (mm month-1).
    npp : (S,) array, optional
        Net primary production (g C m-2 yr-1); default :func:`npp_miami`.
    forest : (S,) array, optional
        Tree-cover fraction in [0, 1] (sets the CWD share); default :func:`forest_fraction`.
    crop : (S,) array, optional
        Cropland fraction in [0, 1] (harvest loss, N fertilisation); default 0.
    wetland : (S,) array, optional
        Wetland intensity in [0, 1] (0 = well drained); default 0.
    organic : (S,) array, optional
        Peat/organic-soil index in [0, 1] (shallower thaw and damping); default 0.
    dtb_m : (S,) array, optional
        Depth to bedrock (m); default: none within the column (nbedrock = 20).
    noise : dict of (S,) arrays, optional
        Standard-normal draws keyed by :data:`NOISE_KEYS`; a missing key means no noise for that term.

    Returns
    -------
    forcing : Forcing
        The S-site forcing.
    details : dict of arrays
        Per-site intermediates: ``t_air_mean_c``, ``t_soil_mean_c`` (T_s), ``half_range_air_k``,
        ``delta_t_k``, ``snow_index``, ``aridity`` (P/PET), ``pet_mm`` (S, 12), ``tdd_c_days``, ``permafrost``
        (bool), ``alt_m``, ``npp_gc_m2_yr``, ``forest``, ``cwd_share``, ``loss_fraction``.
    """
    lat = np.asarray(lat, dtype=np.float64).ravel()
    ta = np.asarray(ta, dtype=np.float64).reshape(lat.size, 12)
    pr = np.maximum(np.asarray(pr, dtype=np.float64).reshape(lat.size, 12), 0.0)
    s = lat.size
    zeros = np.zeros(s)
    nz = {k: (np.asarray(noise[k], dtype=np.float64).ravel() if noise and k in noise else zeros)
          for k in NOISE_KEYS}
    crop = zeros if crop is None else np.clip(np.asarray(crop, dtype=np.float64).ravel(), 0.0, 1.0)
    wet = zeros if wetland is None else np.clip(np.asarray(wetland, dtype=np.float64).ravel(), 0.0, 1.0)
    org = zeros if organic is None else np.clip(np.asarray(organic, dtype=np.float64).ravel(), 0.0, 1.0)

    th = _thermal_regime(lat, ta, pr, nz["delta_t"])
    pet, ai, t_mean, a_air, m_max = th["pet_mm"], th["aridity"], th["t_air_mean_c"], th["a_air"], th["m_max"]
    snow, delta_t, t_soil = th["snow_index"], th["delta_t_k"], th["t_soil_mean_c"]
    p_ann = pr.sum(axis=1)
    n_warm = (ta > 5.0).sum(axis=1)
    tdd = (np.maximum(ta, 0.0) * MONTH_DAYS).sum(axis=1)

    # ---------------------------------------------------------------- soil temperature (K)
    a_soil = 0.9 * a_air
    damp = 1.9 + 0.5 * np.clip(ai, 0.0, 1.0) - 0.2 * org  # m
    zd = _Z[None, :] / damp[:, None]  # (S, 20)
    phase = 2 * np.pi * (_MONTHS[None, None, :] - m_max[:, None, None]) / 12.0 - zd[:, :, None]
    dev = a_soil[:, None, None] * np.exp(-zd)[:, :, None] * np.cos(phase)  # (S, 20, 12)
    cap = 15.0 - 5.0 * snow
    capped = np.maximum(dev[:, :5, :], -cap[:, None, None])
    dev[:, :5, :] = np.where((snow > 0)[:, None, None], capped, dev[:, :5, :])
    tsoi = T0_K + t_soil[:, None, None] + dev

    # ---------------------------------------------------------------- permafrost and active layer (m)
    pf = th["permafrost"]
    e_stefan = (0.03 - 0.01 * org) * np.exp(0.15 * nz["alt"])
    deep = 1.0 + 1.5 * np.clip(1.0 - (-1.0 - t_soil) / 1.0, 0.0, 1.0)
    alt = np.clip(e_stefan * np.sqrt(tdd) * deep, 0.1, NO_PERMAFROST_ALT_M)
    alt = np.where(pf, alt, NO_PERMAFROST_ALT_M)
    below = pf[:, None] & (_Z[None, :] > alt[:, None])
    tsoi = np.where(below[:, :, None], np.minimum(tsoi, T0_K - 1.25), tsoi)
    # thaw progression: cumulative TDD from the month after the coldest month
    start = ta.argmin(axis=1)
    order = (start[:, None] + 1 + np.arange(12)[None, :]) % 12  # months in thaw order
    rows = np.arange(s)[:, None]
    cum = np.empty_like(ta)
    cum[rows, order] = np.cumsum((np.maximum(ta, 0.0) * MONTH_DAYS)[rows, order], axis=1)
    frac = np.sqrt(np.clip(cum / np.where(tdd > 0, tdd, 1.0)[:, None], 0.0, 1.0))
    altmax = np.where(pf[:, None], np.maximum(alt[:, None] * frac, 0.01), NO_PERMAFROST_ALT_M)
    altmax_last = np.repeat(alt[:, None], 12, axis=1)

    # ---------------------------------------------------------------- water scalar (0-1)
    w1 = 0.1 + 0.85 * (1.0 - np.exp(-1.5 * ai)) + 0.03 * nz["w"]
    anom = (pr - pet) / (pr.mean(axis=1) + pet.mean(axis=1) + 1.0)[:, None]
    anom = 0.5 * (anom + np.roll(anom, 1, axis=1))  # half-month lag
    # below the rain-wetted surface the annual mean relaxes (e-folding 0.05 m) to a sub-surface level
    # 0.05 + 0.5 W1 (0.48 in humid soils, i.e. psi ~ -0.04 MPa near field capacity in CLM5's log-psi function;
    # wetter than the surface in deserts), so the soil below a few cm is steadier and, in humid climates,
    # drier than the surface
    w_deep = 0.05 + 0.5 * w1
    w_mean_z = w_deep[:, None] + (w1 - w_deep)[:, None] * np.exp(-np.maximum(_Z[None, :] - _Z[0], 0.0) / 0.05)
    amp_z = 0.25 * (1.0 - 0.5 * w1)[:, None] * np.exp(-_Z[None, :] / 0.8)
    w = w_mean_z[:, :, None] + amp_z[:, :, None] * anom[:, None, :]
    w_frozen = 0.05 + 0.1 * np.clip(w_mean_z, 0.0, 1.0)
    w = np.where(tsoi < T0_K - 1.15, w_frozen[:, :, None], w)
    w = np.clip(w, 0.05, 1.0)

    # ---------------------------------------------------------------- oxygen scalar (0-1)
    z_wt = 0.1 + 0.25 * np.clip(-anom, 0.0, 1.0)  # water table (m), deeper in the dry season, (S, 12)
    o_min = np.clip(0.55 - 0.25 * wet + 0.05 * nz["o"], 0.25, 0.7)
    o_deep = o_min[:, None, None] + (1.0 - o_min[:, None, None]) * np.exp(
        -np.maximum(_Z[None, :, None] - z_wt[:, None, :], 0.0) / 0.25)
    o = np.where((wet >= 0.5)[:, None, None] & (_Z[None, :, None] > z_wt[:, None, :]), o_deep, 1.0)
    o = np.clip(o, 0.2, 1.0)

    # ---------------------------------------------------------------- N limitation (0-1)
    fpi0 = 0.42 + 0.5 / (1.0 + np.exp(-(t_mean - 5.0) / 5.0)) + 0.12 * crop + 0.04 * nz["fpi"]
    fpi0 = np.clip(fpi0, 0.4, 1.0)
    grow = np.clip((ta - t_mean[:, None]) / np.maximum(a_air, 1.0)[:, None], 0.0, 1.0)  # (S, 12)
    fpi = (fpi0[:, None, None] + 0.1 * (1.0 - np.exp(-_Z[None, :, None] / 0.5)) - 0.05 * grow[:, None, :])
    fpi = np.clip(fpi, 0.05, 1.0)

    # ---------------------------------------------------------------- bedrock
    nb = np.full(s, N_LAYERS, dtype=np.int64) if dtb_m is None else nbedrock_from_depth(np.ravel(dtb_m))

    # ---------------------------------------------------------------- litter inputs (g C m-2 yr-1)
    if npp is None:
        npp = npp_miami(t_mean, p_ann, ta.max(axis=1))
    npp = np.maximum(np.asarray(npp, dtype=np.float64).ravel(), 0.0)
    if forest is None:
        forest = forest_fraction(t_mean, ai, n_warm)
    forest = np.clip(np.asarray(forest, dtype=np.float64).ravel(), 0.0, 1.0)
    savanna = np.clip(1.0 - np.abs(forest - 0.35) / 0.35, 0.0, 1.0) * (t_mean > 15.0)
    loss = np.clip(0.03 + 0.04 * savanna + 0.03 * crop + 0.01 * nz["loss"], 0.0, 0.1)
    cwd = np.clip(0.01 + 0.29 * forest, 0.0, 0.35)
    split = LITTER_SPLIT[None, :] + 0.03 * np.stack(
        [np.clip(nz["split1"], -1, 1), -np.clip(nz["split1"], -1, 1) - np.clip(nz["split2"], -1, 1),
         np.clip(nz["split2"], -1, 1)], axis=1)
    total = npp * (1.0 - loss)
    litter = np.column_stack([cwd * total, (1.0 - cwd)[:, None] * split * total[:, None]])

    forcing = Forcing(tsoi_k=tsoi, w_scalar=w, o_scalar=o, fpi=fpi, altmax_m=altmax,
                      altmax_lastyear_m=altmax_last, nbedrock=nb, litter_input=litter)
    details = {
        "t_air_mean_c": t_mean, "t_soil_mean_c": t_soil, "half_range_air_k": a_air, "delta_t_k": delta_t,
        "snow_index": snow, "aridity": ai, "pet_mm": pet, "tdd_c_days": tdd, "permafrost": pf, "alt_m": alt,
        "npp_gc_m2_yr": npp, "forest": forest, "cwd_share": cwd, "loss_fraction": loss,
    }
    return forcing, details


def monthly_precip(annual_mm: np.ndarray, lat: np.ndarray, seasonality: np.ndarray | None = None) -> np.ndarray:
    """Spread annual precipitation over 12 months with a summer-peaked von-Mises shape (mm month-1), (S, 12).

    ``seasonality`` is the shape parameter (0 = even; ~2 = monsoonal; negative = winter peak); by default
    ``0.25 + 1.7 exp(-((|lat| - 14) / 7)^2)`` (single summer peak in the outer tropics, even elsewhere).
    """
    lat = np.asarray(lat, dtype=np.float64).ravel()
    p = np.asarray(annual_mm, dtype=np.float64).ravel()
    k = (0.25 + 1.7 * np.exp(-(((np.abs(lat) - 14.0) / 7.0) ** 2)) if seasonality is None
         else np.asarray(seasonality, dtype=np.float64).ravel())
    m_peak = np.where(lat >= 0, 7.5, 1.5)
    shape = np.exp(k[:, None] * np.cos(2 * np.pi * (_MONTHS[None, :] - m_peak[:, None]) / 12.0))
    return p[:, None] * shape / shape.sum(axis=1, keepdims=True)


def forcing_from_climate(lat: np.ndarray, *, t_air_mean_c: np.ndarray | None = None,
                         precip_mm_yr: np.ndarray | None = None,
                         t_air_half_range_k: np.ndarray | None = None,
                         lst_day_c: np.ndarray | None = None, lst_night_c: np.ndarray | None = None,
                         continentality: np.ndarray | None = None,
                         t_air_monthly_c: np.ndarray | None = None, precip_monthly_mm: np.ndarray | None = None,
                         npp_gc_m2_yr: np.ndarray | None = None, forest_fraction: np.ndarray | None = None,
                         depth_to_bedrock_m: np.ndarray | None = None, wetland: np.ndarray | None = None,
                         organic: np.ndarray | None = None, return_details: bool = False,
                         ) -> Forcing | tuple[Forcing, dict[str, np.ndarray]]:
    """Derive soil-model forcing for sites that have only climate summaries (prepare stage, label ``derived``).

    Give either monthly series (``t_air_monthly_c``, ``precip_monthly_mm``) or annual summaries.  Missing
    pieces are filled in this order: annual mean air temperature from ``t_air_mean_c`` or the mean of the
    day/night land-surface temperatures minus 1 K; the seasonal half-range from ``t_air_half_range_k`` or
    ``1 + 26 sin^2(lat) (0.4 + 0.6 c)`` with continentality c (default 0.6); monthly precipitation from
    :func:`monthly_precip`; NPP by the Miami model; the rest as in :func:`synth_forcing` with no noise.

    Parameters
    ----------
    lat : (S,) array
        Latitude (degrees north).
    t_air_mean_c : (S,) array, optional
        Annual mean air temperature (C).
    precip_mm_yr : (S,) array, optional
        Annual precipitation (mm yr-1).
    t_air_half_range_k : (S,) array, optional
        Half the difference between the warmest and coldest monthly mean (K).
    lst_day_c, lst_night_c : (S,) arrays, optional
        Mean daytime / night-time land-surface temperature (C), used when ``t_air_mean_c`` is missing.
    continentality : (S,) array, optional
        c in [0, 1] for the default half-range.
    t_air_monthly_c : (S, 12) array, optional
        Monthly air temperature (C); overrides the annual summaries.
    precip_monthly_mm : (S, 12) array, optional
        Monthly precipitation (mm month-1); overrides ``precip_mm_yr``.
    npp_gc_m2_yr : (S,) array, optional
        Known NPP (g C m-2 yr-1).
    forest_fraction : (S,) array, optional
        Tree-cover fraction in [0, 1].
    depth_to_bedrock_m : (S,) array, optional
        Depth to bedrock (m).
    wetland, organic : (S,) arrays, optional
        Wetland and peat indices in [0, 1].
    return_details : bool
        Also return the intermediates of :func:`synth_forcing`.

    Returns
    -------
    Forcing, or (Forcing, dict) when ``return_details``.
    """
    lat = np.atleast_1d(np.asarray(lat, dtype=np.float64)).ravel()
    if t_air_monthly_c is not None:
        ta = np.asarray(t_air_monthly_c, dtype=np.float64).reshape(lat.size, 12)
    else:
        if t_air_mean_c is None:
            if lst_day_c is None or lst_night_c is None:
                raise ValueError("give t_air_mean_c, both lst_day_c and lst_night_c, or t_air_monthly_c")
            t_air_mean_c = 0.5 * (np.asarray(lst_day_c) + np.asarray(lst_night_c)) - 1.0
        tm = np.broadcast_to(np.asarray(t_air_mean_c, dtype=np.float64), lat.shape)
        if t_air_half_range_k is None:
            c = 0.6 if continentality is None else continentality
            t_air_half_range_k = seasonal_half_range_k(lat, np.broadcast_to(np.asarray(c, float), lat.shape))
        hr = np.broadcast_to(np.asarray(t_air_half_range_k, dtype=np.float64), lat.shape)
        ta = annual_cycle(tm, hr, lat)
    if precip_monthly_mm is not None:
        pr = np.asarray(precip_monthly_mm, dtype=np.float64).reshape(lat.size, 12)
    else:
        if precip_mm_yr is None:
            raise ValueError("give precip_mm_yr or precip_monthly_mm")
        pr = monthly_precip(np.broadcast_to(np.asarray(precip_mm_yr, dtype=np.float64), lat.shape), lat)

    def opt(x: np.ndarray | None) -> np.ndarray | None:
        return None if x is None else np.broadcast_to(np.asarray(x, dtype=np.float64), lat.shape)

    forcing, details = synth_forcing(lat, ta, pr, npp=opt(npp_gc_m2_yr), forest=opt(forest_fraction),
                                     wetland=opt(wetland), organic=opt(organic), dtb_m=opt(depth_to_bedrock_m))
    return (forcing, details) if return_details else forcing
