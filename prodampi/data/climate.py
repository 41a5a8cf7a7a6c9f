"""Climate backbone of the synthetic world (``world.md`` §2-3): geography, elevation, monthly air temperature
and precipitation, potential evapotranspiration, WorldClim-style BIO1-19 and Koppen-Geiger classes.

Units: temperatures in degrees C (WorldClim v1 stores C x 10; prodampi stores plain degrees C in grids and
profiles alike), precipitation in mm (per month or per year as named), elevation in m.
Months are 1..12 = January..December; monthly arrays are (n, 12) with column 0 = January.
"""

from __future__ import annotations

import numpy as np

from .grid import Grid
from .random_fields import SmoothField, cell_noise

MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.float64)
_MID_DOY = np.cumsum(MONTH_DAYS) - MONTH_DAYS / 2
_MONTHS = np.arange(1, 13, dtype=np.float64)

# --------------------------------------------------------------------------------------------- geography
KM_PER_DEG = 111.195


def geography(grid: Grid, land_frac: np.ndarray, fetch_km: float = 2500.0,
              interior_km: float = 600.0) -> dict[str, np.ndarray]:
    """Land-sea geometry on the full grid: upwind/downwind land fetch and interior-ness.

    Parameters
    ----------
    grid : Grid
        The grid.
    land_frac : (n_lat, n_lon) array
        Land fraction in [0, 1].
    fetch_km : float
        Along-latitude distance (km) over which the fetch is averaged.
    interior_km : float
        Gaussian smoothing scale (km) of the interior index.

    Returns
    -------
    dict
        ``fetch_west``: land fraction over ``fetch_km`` to the west (0 = ocean upwind, 1 = land);
        ``fetch_east``: the same to the east; ``interior``: 0 at the coast rising to 1 deep inland
        (from the smoothed land fraction); ``continentality`` c in [0, 1] (``world.md`` §3):
        ``0.55 fetch_west + 0.45 interior``, pulled towards 1 poleward of 55 degrees (winter sea ice).  All
        (n_lat, n_lon), dimensionless.
    """
    from scipy.ndimage import gaussian_filter1d

    land = (np.asarray(land_frac) >= 0.5).astype(np.float64)
    n_lat, n_lon = land.shape
    fw = np.zeros_like(land)
    fe = np.zeros_like(land)
    sm = gaussian_filter1d(land, sigma=interior_km / (KM_PER_DEG * grid.dlat), axis=0, mode="nearest")
    for r in range(n_lat):
        coslat = max(np.cos(np.radians(grid.lat[r])), 0.02)
        nw = int(np.clip(round(fetch_km / (KM_PER_DEG * coslat * grid.dlon)), 1, n_lon))
        row = land[r]
        s = np.concatenate([[0.0], np.cumsum(np.concatenate([row, row, row]))])
        c = np.arange(n_lon) + n_lon
        fw[r] = (s[c] - s[c - nw]) / nw  # cells c-nw .. c-1
        fe[r] = (s[c + 1 + nw] - s[c + 1]) / nw  # cells c+1 .. c+nw
        sig = interior_km / (KM_PER_DEG * coslat * grid.dlon)
        sm[r] = gaussian_filter1d(sm[r], sigma=min(sig, n_lon / 4), mode="wrap")
    interior = np.clip((sm - 0.45) / 0.5, 0.0, 1.0)
    cont = np.clip(0.55 * fw + 0.45 * interior, 0.0, 1.0)
    # sea ice makes polar coasts continental in winter: pull c towards 1 poleward of 55 degrees
    polar = np.clip((np.abs(grid.lat)[:, None] - 55.0) / 15.0, 0.0, 1.0)
    cont = cont + (1.0 - cont) * 0.8 * polar
    return {"fetch_west": fw, "fetch_east": fe, "interior": interior, "continentality": cont}


# --------------------------------------------------------------------------------------------- elevation
#: Mountain ridges: (polyline [(lon, lat), ...], crest height m, half-width km)
_RIDGES = [
    ([(73, 35), (78, 32), (84, 28.7), (90, 28.0), (95, 28.7)], 2500.0, 150.0),          # Himalaya
    ([(69, 38), (75, 40), (80, 42), (88, 43)], 2300.0, 160.0),                           # Pamir - Tien Shan
    ([(-75, 10), (-78, 2), (-79, -5), (-75, -13), (-70, -17), (-68, -22), (-69.5, -30), (-70, -35),
      (-71.5, -42), (-73, -50), (-72, -54)], 3300.0, 120.0),                             # Andes
    ([(-106, 33), (-106, 38), (-109, 43), (-114, 48), (-118, 53), (-124, 57), (-132, 60), (-142, 62),
      (-150, 63)], 2000.0, 230.0),                                                       # Rockies - Alaska
    ([(-108, 28), (-104, 23), (-99, 19), (-96, 17)], 1800.0, 200.0),                     # Sierra Madre
    ([(37, 3), (36, -3), (34, -8), (33, -12)], 1400.0, 220.0),                           # East African rift
    ([(6, 45), (10, 46.5), (14, 47)], 1800.0, 100.0),                                    # Alps
    ([(40, 43), (46, 42)], 1800.0, 90.0),                                                # Caucasus
    ([(6, 60), (10, 63), (15, 67), (20, 69)], 800.0, 150.0),                             # Scandes
    ([(60, 50), (59, 56), (60, 62), (63, 67)], 700.0, 110.0),                            # Urals
    ([(-85, 34), (-80, 37), (-77, 40), (-72, 44)], 700.0, 150.0),                        # Appalachians
    ([(130, 60), (140, 63), (150, 65), (165, 66)], 1100.0, 250.0),                       # E Siberian ranges
    ([(146, -38), (150, -32), (148, -25), (145, -17)], 800.0, 150.0),                    # Great Dividing Range
]
#: Plateaus: (centre lon, centre lat, semi-axis lon deg, semi-axis lat deg, height m, flatness power)
_PLATEAUS = [
    (89.0, 33.0, 11.5, 4.5, 3900.0, 4),    # Tibet
    (-67.5, -18.0, 3.0, 5.0, 3700.0, 4),   # Altiplano
    (103.0, 46.0, 15.0, 5.0, 1200.0, 2),   # Mongolian plateau
    (-113.0, 39.0, 8.0, 6.0, 1500.0, 2),   # Great Basin - Colorado plateau
    (39.0, 9.0, 5.0, 5.0, 2200.0, 2),      # Ethiopian highlands
    (25.0, -26.0, 10.0, 8.0, 1100.0, 2),   # southern African plateau
    (55.0, 32.0, 12.0, 5.0, 1200.0, 2),    # Iranian plateau
    (35.0, 39.0, 7.0, 3.0, 1100.0, 2),     # Anatolia
    (-45.0, -18.0, 8.0, 7.0, 700.0, 2),    # Brazilian highlands
    (5.5, 23.0, 3.0, 3.0, 1300.0, 2),      # Ahaggar
    (18.0, 21.0, 3.0, 2.0, 1300.0, 2),     # Tibesti
    (76.0, 18.0, 6.0, 6.0, 500.0, 2),      # Deccan
    (103.0, 26.0, 5.0, 3.0, 1500.0, 2),    # Yunnan-Guizhou
    (22.0, 8.0, 12.0, 10.0, 500.0, 2),     # central African plateau
    (-100.0, 42.0, 8.0, 8.0, 700.0, 2),    # Great Plains
]
#: Regional precipitation anomalies: (centre lon, centre lat, scale lon deg, scale lat deg, change of ln P)
_PRECIP_ANOMALIES = [
    (10.0, 23.0, 22.0, 6.0, -1.1),     # Sahara
    (47.0, 23.0, 9.0, 7.0, -1.5),      # Arabia
    (71.0, 27.0, 4.0, 3.0, -0.8),      # Thar
    (83.0, 39.0, 7.0, 3.0, -1.5),      # Taklamakan
    (103.0, 42.0, 10.0, 4.0, -1.0),    # Gobi
    (-70.0, -23.0, 2.5, 6.0, -1.5),    # Atacama
    (17.0, -24.0, 5.0, 6.0, -0.8),     # Namib - Kalahari
    (131.0, -25.0, 10.0, 7.0, -1.2),   # central Australia
    (-113.0, 31.0, 4.0, 3.0, -0.7),    # Sonoran
    (57.0, 31.0, 7.0, 4.0, -0.7),      # Iran
    (62.0, 43.0, 10.0, 5.0, -0.6),     # Turan / Kazakh steppe
    (78.0, 20.0, 8.0, 8.0, 0.8),       # Indian monsoon
    (105.0, 15.0, 10.0, 8.0, 0.5),     # SE Asian monsoon
]
#: the Tibet-like plateau (index into _PLATEAUS) used to flag alpine permafrost diagnostics
TIBET = _PLATEAUS[0]


def _dist_to_polyline_km(lat: np.ndarray, lon: np.ndarray, pts: list[tuple[float, float]]) -> np.ndarray:
    """Approximate distance (km) from points to a (lon, lat) polyline (local equirectangular projection)."""
    p = np.asarray(pts, dtype=np.float64)
    ref = np.radians(p[:, 1].mean())
    x = lon * np.cos(ref) * KM_PER_DEG
    y = lat * KM_PER_DEG
    best = np.full(lat.shape, np.inf)
    for (lo1, la1), (lo2, la2) in zip(p[:-1], p[1:]):
        x1, y1 = lo1 * np.cos(ref) * KM_PER_DEG, la1 * KM_PER_DEG
        x2, y2 = lo2 * np.cos(ref) * KM_PER_DEG, la2 * KM_PER_DEG
        dx, dy = x2 - x1, y2 - y1
        t = np.clip(((x - x1) * dx + (y - y1) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        best = np.minimum(best, np.hypot(x - x1 - t * dx, y - y1 - t * dy))
    return best


def elevation_m(lat: np.ndarray, lon: np.ndarray, interior: np.ndarray, seed: int) -> np.ndarray:
    """Synthetic surface elevation (m above sea level).

    Smooth noise (length scales 300 and 900 km) raised inland, plus the ridges and plateaus of the module
    tables (Himalaya-Tibet with a plateau > 4,000 m of ~2e12 m^2, Andes, Rockies, East Africa, ...).

    Parameters
    ----------
    lat, lon : (n,) arrays
        Cell centres (degrees).
    interior : (n,) array
        Interior index in [0, 1] (see :func:`geography`).
    seed : int
        World seed.

    Returns
    -------
    numpy.ndarray
        (n,) elevation (m), >= 0.
    """
    f1 = SmoothField(seed, "elev_broad", 900.0)(lat, lon)
    f2 = SmoothField(seed, "elev_fine", 300.0)(lat, lon)
    base = (150.0 + 400.0 * np.sqrt(interior)) * np.exp(0.55 * f1 + 0.3 * f2)
    e = base.copy()
    for pts, h, w in _RIDGES:
        d = _dist_to_polyline_km(lat, lon, pts)
        e += h * np.exp(-0.5 * (d / w) ** 2) * (1.0 + 0.15 * f2)
    for lo0, la0, alo, ala, h, p in _PLATEAUS:
        r2 = ((lon - lo0) / alo) ** 2 + ((lat - la0) / ala) ** 2
        e += h * np.exp(-(r2**p)) * (1.0 + 0.05 * f2)
    return np.maximum(e, 0.0)


# --------------------------------------------------------------------------------------------- climate
def soft_ceiling(t_c: np.ndarray, start: float = 26.0, span: float = 2.5) -> np.ndarray:
    """Annual-mean temperatures (C) above ``start`` saturate smoothly towards ``start + span`` (28.5 C), keeping
    the hottest synthetic cells inside WorldClim's BIO1/BIO6/BIO11 ranges."""
    t = np.asarray(t_c, dtype=np.float64)
    return np.where(t > start, start + span * np.tanh((t - start) / span), t)


def seasonal_half_range_k(lat: np.ndarray, cont: np.ndarray) -> np.ndarray:
    """Half-range A_a (K) of the monthly air-temperature cycle: ``1 + 26 sin^2(lat) (0.4 + 0.6 c)``."""
    s2 = np.sin(np.radians(lat)) ** 2
    return 1.0 + 26.0 * s2 * (0.4 + 0.6 * cont)


def annual_cycle(mean: np.ndarray, half_range: np.ndarray, lat: np.ndarray,
                 peak_month_nh: float = 7.0) -> np.ndarray:
    """Monthly values ``mean + A cos(2 pi (m - m_max) / 12)``, m_max = July (NH) or January (SH); (n, 12)."""
    m_max = np.where(np.asarray(lat) >= 0, peak_month_nh, peak_month_nh - 6.0)
    return mean[:, None] + half_range[:, None] * np.cos(2 * np.pi * (_MONTHS[None, :] - m_max[:, None]) / 12.0)


def climate_backbone(lat: np.ndarray, lon: np.ndarray, elev_m: np.ndarray, geo: dict[str, np.ndarray],
                     seed: int, cell_id: np.ndarray, n_cells_total: int) -> dict[str, np.ndarray]:
    """Monthly air temperature and precipitation of land cells (``world.md`` §3).

    Parameters
    ----------
    lat, lon : (n,) arrays
        Cell centres (degrees).
    elev_m : (n,) array
        Elevation (m).
    geo : dict
        Per-cell ``fetch_west``, ``fetch_east``, ``interior``, ``continentality`` (dimensionless, (n,)).
    seed : int
        World seed.
    cell_id : (n,) int array
        Flat cell ids (key the per-cell noise).
    n_cells_total : int
        Cells in the global grid.

    Returns
    -------
    dict
        ``ta`` (n, 12) monthly mean air temperature (C); ``pr`` (n, 12) monthly precipitation (mm month-1);
        ``dtr`` (n,) mean diurnal temperature range (K); ``half_range`` (n,) A_a (K).
    """
    lat = np.asarray(lat, dtype=np.float64)
    alat = np.abs(lat)
    cont = geo["continentality"]
    fw, fe, interior = geo["fetch_west"], geo["fetch_east"], geo["interior"]
    ekm = elev_m / 1000.0
    # ---- temperature
    # zonal template 28 - 0.0082 lat^2 (flattening poleward of 70 degrees), a continental anomaly of zero mean
    # at the typical high-latitude continentality, a 6 K/km lapse rate (4.5 K/km above 2 km) and smooth noise
    t0 = 28.0 - 0.0082 * np.minimum(lat**2, 4900.0) - 0.6 * np.maximum(alat - 70.0, 0.0)
    s2 = np.sin(np.radians(lat)) ** 2
    cont_t = -16.0 * (cont - 0.7) * s2 * (lat > 0)
    # noise SD 2 K outside the tropics, 1 K in the (spatially uniform) inner tropics
    tnoise = (1.0 + np.clip((alat - 10.0) / 20.0, 0.0, 1.0)) * SmoothField(seed, "bio1", 1000.0)(lat, lon)
    # lapse reference: sea level in the tropics, 0.3 km poleward of 40 degrees (keeps the zonal land means)
    e_ref = 0.3 * np.clip((alat - 20.0) / 20.0, 0.0, 1.0)
    # elevated heating: high plateaus are warmer than the free-air lapse rate implies (+1.5 K per km above 2 km)
    bio1 = t0 + cont_t - 6.0 * (ekm - e_ref) + 1.5 * np.clip(ekm - 2.0, 0.0, None) + tnoise
    bio1 = soft_ceiling(bio1)
    a_a = seasonal_half_range_k(lat, cont) * np.exp(0.05 * cell_noise(seed, "ta_amp", cell_id, n_cells_total))
    ta = annual_cycle(bio1, a_a, lat)
    # ---- precipitation
    p0 = 380.0 + 1600.0 * np.exp(-(((lat - 4.0) / 11.0) ** 2)) + 650.0 * np.exp(-(((alat - 50.0) / 13.0) ** 2))
    w_sub = np.exp(-(((alat - 25.0) / 9.0) ** 2))
    w_mid = np.exp(-(((alat - 50.0) / 12.0) ** 2))
    ln_m = (w_sub * (1.5 * (1.0 - fe) - 1.5 * fe * np.maximum(fw, interior))
            + w_mid * (0.5 * (1.0 - fw) - 0.8 * fw * fe * interior + 0.2)
            - 0.15 * np.clip(ekm - 1.0, 0.0, None))
    for lo0, la0, alo, ala, strength in _PRECIP_ANOMALIES:
        ln_m += strength * np.exp(-(((lon - lo0) / alo) ** 2 + ((lat - la0) / ala) ** 2))
    pnoise = 0.4 * SmoothField(seed, "bio12", 700.0)(lat, lon) + 0.1 * cell_noise(seed, "pr", cell_id,
                                                                                n_cells_total)
    p_ann = p0 * np.exp(ln_m + pnoise - 0.085)
    # seasonality: signed von-Mises amplitude, > 0 summer peak, < 0 winter peak (Mediterranean)
    k_summer = 0.25 + 1.7 * np.exp(-(((alat - 14.0) / 7.0) ** 2)) + 0.8 * cont * w_mid + 0.6 * w_sub * (1 - fe)
    w_med = np.exp(-(((alat - 36.0) / 5.0) ** 2)) * (1.0 - fw)
    k = k_summer - 2.2 * w_med
    k = k * np.exp(0.15 * cell_noise(seed, "pr_season", cell_id, n_cells_total))
    m_peak = np.where(lat >= 0, 7.5, 1.5)
    shape = np.exp(k[:, None] * np.cos(2 * np.pi * (_MONTHS[None, :] - m_peak[:, None]) / 12.0))
    pr = p_ann[:, None] * shape / shape.sum(axis=1, keepdims=True)
    # ---- diurnal range
    dtr = 6.0 + 9.5 * np.exp(-p_ann / 450.0) + 1.0 * cell_noise(seed, "dtr", cell_id, n_cells_total)
    dtr = np.clip(dtr, 4.0, 18.0)
    return {"ta": ta, "pr": pr, "dtr": dtr, "half_range": a_a}


# --------------------------------------------------------------------------------------------- PET
def daylength_h(lat: np.ndarray) -> np.ndarray:
    """Mid-month astronomical day length (h), (n, 12)."""
    decl = np.radians(23.44) * np.sin(2 * np.pi * (284.0 + _MID_DOY) / 365.0)
    x = -np.tan(np.radians(np.clip(np.asarray(lat), -89.9, 89.9)))[:, None] * np.tan(decl)[None, :]
    return 24.0 / np.pi * np.arccos(np.clip(x, -1.0, 1.0))


def pet_thornthwaite(ta: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Monthly potential evapotranspiration (mm month-1) by Thornthwaite (1948).

    Parameters
    ----------
    ta : (n, 12) array
        Monthly mean air temperature (C).
    lat : (n,) array
        Latitude (degrees), for the day length.

    Returns
    -------
    numpy.ndarray
        (n, 12) PET (mm month-1); 0 in months with ta <= 0.
    """
    tp = np.maximum(ta, 0.0)
    heat = ((tp / 5.0) ** 1.514).sum(axis=1, keepdims=True)
    a = 6.75e-7 * heat**3 - 7.71e-5 * heat**2 + 1.792e-2 * heat + 0.49239
    with np.errstate(divide="ignore", invalid="ignore"):
        base = np.where(heat > 0, 16.0 * (10.0 * tp / np.where(heat > 0, heat, 1.0)) ** a, 0.0)
    hot = -415.85 + 32.24 * ta - 0.43 * ta**2
    base = np.where(ta >= 26.5, hot, base)
    return base * (daylength_h(lat) / 12.0) * (MONTH_DAYS[None, :] / 30.0)


def aridity_index(pr: np.ndarray, pet: np.ndarray) -> np.ndarray:
    """Annual aridity index P / PET (dimensionless), (n,); capped at 20 where PET is ~0."""
    return np.minimum(pr.sum(axis=1) / np.maximum(pet.sum(axis=1), 1.0), 20.0)


# --------------------------------------------------------------------------------------------- bioclim
BIO_NAMES = tuple(f"BIO{i}" for i in range(1, 20))
BIO_UNITS = ("degC", "degC", "%", "degC*100", "degC", "degC", "degC", "degC", "degC", "degC", "degC",
             "mm", "mm", "mm", "%", "mm", "mm", "mm", "mm")


def _quarters(x: np.ndarray) -> np.ndarray:
    """Rolling 3-month windows with wrap-around: (n, 12) -> (n, 12) sums; window i = months i, i+1, i+2."""
    return x + np.roll(x, -1, axis=1) + np.roll(x, -2, axis=1)


def bioclim(ta: np.ndarray, pr: np.ndarray, dtr: np.ndarray) -> np.ndarray:
    """WorldClim BIO1-BIO19 from monthly climate (standard definitions, as R ``dismo::biovars``).

    Parameters
    ----------
    ta : (n, 12) array
        Monthly mean air temperature (C); ``T_max/T_min = ta +- dtr/2``.
    pr : (n, 12) array
        Monthly precipitation (mm).
    dtr : (n,) or (n, 12) array
        Diurnal temperature range (K).

    Returns
    -------
    numpy.ndarray
        (n, 19) in the units of :data:`BIO_UNITS` (temperatures in C, BIO4 = SD x 100, BIO3 and BIO15 in %).
        SDs use ``ddof=1`` as R's ``sd``; BIO15 = SD / mean x 100 of monthly P (0 when P is 0).
    """
    dtr = np.broadcast_to(np.asarray(dtr, dtype=np.float64).reshape(ta.shape[0], -1), ta.shape)
    tmax, tmin = ta + dtr / 2, ta - dtr / 2
    b = np.empty((ta.shape[0], 19), dtype=np.float64)
    b[:, 0] = ta.mean(axis=1)
    b[:, 1] = (tmax - tmin).mean(axis=1)
    b[:, 4] = tmax.max(axis=1)
    b[:, 5] = tmin.min(axis=1)
    b[:, 6] = b[:, 4] - b[:, 5]
    b[:, 2] = 100.0 * b[:, 1] / b[:, 6]
    b[:, 3] = 100.0 * ta.std(axis=1, ddof=1)
    tq = _quarters(ta) / 3.0
    pq = _quarters(pr)
    rows = np.arange(ta.shape[0])
    wet, dry = pq.argmax(axis=1), pq.argmin(axis=1)
    warm, cold = tq.argmax(axis=1), tq.argmin(axis=1)
    b[:, 7] = tq[rows, wet]
    b[:, 8] = tq[rows, dry]
    b[:, 9] = tq[rows, warm]
    b[:, 10] = tq[rows, cold]
    b[:, 11] = pr.sum(axis=1)
    b[:, 12] = pr.max(axis=1)
    b[:, 13] = pr.min(axis=1)
    mean_p = pr.mean(axis=1)
    b[:, 14] = np.where(mean_p > 0, 100.0 * pr.std(axis=1, ddof=1) / np.where(mean_p > 0, mean_p, 1.0), 0.0)
    b[:, 15] = pq[rows, wet]
    b[:, 16] = pq[rows, dry]
    b[:, 17] = pq[rows, warm]
    b[:, 18] = pq[rows, cold]
    return b


# --------------------------------------------------------------------------------------------- Koppen
KOPPEN_CLASSES = ("Af", "Am", "Aw", "BWh", "BWk", "BSh", "BSk", "Csa", "Csb", "Csc", "Cwa", "Cwb", "Cwc",
                  "Cfa", "Cfb", "Cfc", "Dsa", "Dsb", "Dsc", "Dsd", "Dwa", "Dwb", "Dwc", "Dwd", "Dfa", "Dfb",
                  "Dfc", "Dfd", "ET", "EF")
"""Koppen-Geiger classes in the numbering 1..30 of Beck et al. (2018)."""


def koppen_geiger(ta: np.ndarray, pr: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Koppen-Geiger class (1..30, Beck et al. 2018 numbering) from monthly climate.

    Thresholds of Beck et al. (2018, Sci. Data 5:180214, Table 1): summer = April-September in the northern
    and October-March in the southern hemisphere; P_threshold = 2 MAT (+28 if >= 70 % of P falls in summer,
    +14 otherwise, +0 if >= 70 % falls in winter), in mm.  Order of tests: E (T_hot <= 10 C) before B, then A,
    C, D.  When both the Cs/Ds and Cw/Dw criteria hold, the season with more precipitation decides.

    Parameters
    ----------
    ta : (n, 12) array
        Monthly mean air temperature (C).
    pr : (n, 12) array
        Monthly precipitation (mm).
    lat : (n,) array
        Latitude (degrees).

    Returns
    -------
    numpy.ndarray of int64
        (n,) class codes 1..30 (see :data:`KOPPEN_CLASSES`).
    """
    n = ta.shape[0]
    mat = ta.mean(axis=1)
    map_ = pr.sum(axis=1)
    t_cold, t_hot = ta.min(axis=1), ta.max(axis=1)
    t10 = (ta > 10.0).sum(axis=1)
    p_dry = pr.min(axis=1)
    nh_summer = np.zeros(12, dtype=bool)
    nh_summer[3:9] = True
    summer = np.where((np.asarray(lat) >= 0)[:, None], nh_summer[None, :], ~nh_summer[None, :])
    p_s = np.where(summer, pr, np.nan)
    p_w = np.where(~summer, pr, np.nan)
    ps_dry, ps_wet = np.nanmin(p_s, axis=1), np.nanmax(p_s, axis=1)
    pw_dry, pw_wet = np.nanmin(p_w, axis=1), np.nanmax(p_w, axis=1)
    p_sum, p_win = np.nansum(p_s, axis=1), np.nansum(p_w, axis=1)
    frac_w = np.where(map_ > 0, p_win / np.where(map_ > 0, map_, 1.0), 0.5)
    p_th = 2 * mat + np.where(frac_w >= 0.7, 0.0, np.where(frac_w <= 0.3, 28.0, 14.0))
    code = np.zeros(n, dtype=np.int64)
    is_e = t_hot <= 10.0
    is_b = ~is_e & (map_ < 10 * p_th)
    is_a = ~is_e & ~is_b & (t_cold >= 18.0)
    is_c = ~is_e & ~is_b & ~is_a & (t_cold > 0.0)
    is_d = ~is_e & ~is_b & ~is_a & ~is_c
    # E
    code[is_e] = np.where(t_hot[is_e] > 0.0, 29, 30)
    # B
    desert = map_ < 5 * p_th
    hot = mat >= 18.0
    code[is_b] = np.where(desert[is_b], np.where(hot[is_b], 4, 5), np.where(hot[is_b], 6, 7))
    # A
    af = p_dry >= 60.0
    am = ~af & (p_dry >= 100.0 - map_ / 25.0)
    code[is_a] = np.where(af[is_a], 1, np.where(am[is_a], 2, 3))
    # C and D: second letter
    s_crit = (ps_dry < 40.0) & (ps_dry < pw_wet / 3.0)
    w_crit = pw_dry < ps_wet / 10.0
    both = s_crit & w_crit
    s_l = s_crit & ~(both & (p_sum > p_win))
    w_l = w_crit & ~s_l
    second = np.where(s_l, 0, np.where(w_l, 1, 2))  # s, w, f
    # third letter: a, b, c, d
    third = np.where(t_hot >= 22.0, 0, np.where(t10 >= 4, 1, np.where(t_cold < -38.0, 3, 2)))
    c_third = np.minimum(third, 2)  # C has no "d"
    code[is_c] = 8 + 3 * second[is_c] + c_third[is_c]
    code[is_d] = 17 + 4 * second[is_d] + third[is_d]
    return code
