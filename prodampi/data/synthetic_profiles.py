"""WoSIS-like synthetic soil profiles of the embedded world (``world.md`` §8).

Sites are drawn as a clustered point process over the valid cells (parents with 5-50 children within
10-50 km), weighted towards North America and Europe and towards cropland; a separate ~2 % permafrost set
(> 55 N) mimics the NCSCD/Mishra pedons.  Each profile has 3-10 layers (thickness growing with depth, first
layer from 0 cm in > 95 %, occasional gaps), its deepest bottom at 30-200 cm (about a third not deeper than
50 cm, so the paper's screen keeps ~60-70 %), and is truncated by shallow bedrock.

Observation model::

    obs = truth x exp(eps_site + eps_layer + eps_shape - is_pedo x eps_bd)

with eps_site ~ N(0, 0.3^2) per profile (point versus cell), eps_layer ~ N(0, 0.2^2) per layer, eps_shape a
horizon anomaly in ~12 % of the profiles (a buried organic horizon or an eluvial depletion), and eps_bd ~
N(0, 0.176^2) the PTF error that enters where bulk density was not measured.  Records carry SOC content
(g C kg-1), bulk density (g cm-3; measured for ~17 % of profiles, else the PTF), coarse fragments (% vol,
from the cell covariates), the SOC density (g C m-3) recomputed from them exactly as the original, and ~2 %
zero or NaN layers to exercise cleaning.  All arrays are padded to :data:`MAX_LAYERS` layers with NaN.

Recovery variants (paper §2.6, ``compas.md`` §9), options of :func:`draw_profiles`:

* ``layers="nodes"``: every profile has the 20 CLM layers (interfaces ``zisoi``, 0-8.60 m; node depths
  0.01-8.03 m, the paper's 20 synthetic data points) down to its bedrock (at least 3 layers), padded to
  :data:`N_NODE_LAYERS`; ``"realistic"`` (default) is the WoSIS-like geometry above.
* ``noise=False``: records are the noise-free truth (all noise terms 0, no zero/NaN layers, BD = the PTF of
  the true content), as the authors' recovery experiment; the recorded density equals the truth to round-off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .profiles import ptf_bulk_density
from .random_fields import rng_for

MAX_LAYERS = 10
#: padded layer count of ``layers="nodes"`` profiles (the 20 CLM layers)
N_NODE_LAYERS = 20
#: layer geometries of :func:`draw_profiles`
LAYER_CHOICES: tuple[str, ...] = ("realistic", "nodes")
#: site placements of :func:`draw_profiles`
SITE_CHOICES: tuple[str, ...] = ("clustered", "cells")
KM_PER_DEG = 111.195

#: region -> share of the WoSIS-like (non-permafrost) sites (``world.md`` §8)
REGION_SHARES: dict[str, float] = {"north_america": 0.45, "europe": 0.125, "africa": 0.125,
                                   "latin_america": 0.10, "asia": 0.10, "oceania": 0.065}
REGIONS = tuple(REGION_SHARES)
PERMAFROST_SHARE = 0.02
#: first profile id of the WoSIS-like set (ids > 10000) and of the permafrost set (ids < 10000)
WOSIS_ID0, PERMAFROST_ID0 = 10001, 1

#: probabilities of 3..10 layers
_NLAYER_P = np.array([0.14, 0.20, 0.20, 0.16, 0.12, 0.09, 0.06, 0.03])


def region_of(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Region index into :data:`REGIONS` of points (degrees) by simple lon/lat boxes."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    na = (lon < -50) & (lat >= 15) | (lon < -100) & (lat >= 7)
    la = (lon < -30) & ~na
    eu = (lon >= -30) & (lon < 45) & (lat >= 36) & ~((lon > 26) & (lat < 42))
    af = (lon >= -30) & (lon < 52) & (lat < 36) & ~((lon > 34) & (lat > 12))
    oc = (lon >= 110) & (lat < -10) | (lon >= 140) & (lat < 0)
    reg = np.full(lat.shape, 4)  # asia
    reg[oc] = 5
    reg[af] = 2
    reg[eu] = 1
    reg[la] = 3
    reg[na] = 0
    return reg


def _clusters(rng: np.random.Generator, n: int, cand: np.ndarray, weight: np.ndarray,
              children: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Parents (candidate positions) and child counts summing to ``n``."""
    if n <= 0 or cand.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    counts = []
    total = 0
    while total < n:
        c = int(rng.integers(children[0], children[1] + 1))
        c = min(c, n - total)
        counts.append(c)
        total += c
    p = weight / weight.sum()
    parents = rng.choice(cand, size=len(counts), replace=True, p=p)
    return parents.astype(np.int64), np.array(counts, dtype=np.int64)


def sample_sites(seed: int, n_profiles: int, lat: np.ndarray, lon: np.ndarray, dlat: float, dlon: float,
                 area: np.ndarray, crop: np.ndarray, permafrost: np.ndarray,
                 locate: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
    """Clustered profile sites over the valid cells.

    Parameters
    ----------
    seed : int
        World seed.
    n_profiles : int
        Number of profiles (WoSIS-like + permafrost set).
    lat, lon : (n,) arrays
        Valid-cell centres (degrees).
    dlat, dlon : float
        Cell size (degrees).
    area : (n,) array
        Cell area (m^2).
    crop : (n,) array
        Cropland fraction (sites are 3x denser on cropland).
    permafrost : (n,) bool array
        Permafrost cells (the permafrost set is drawn from those north of 55 N).
    locate : callable
        ``locate(lat, lon) -> valid-cell position or -1`` for points.

    Returns
    -------
    dict
        ``cell`` (P,) valid-cell position, ``lat``/``lon`` (P,) site coordinates (degrees), ``source`` (P,)
        0 = WoSIS-like, 1 = permafrost set, ``region`` (P,), ``cluster`` (P,) cluster id.
    """
    rng = rng_for(seed, "profiles:sites")
    reg = region_of(lat, lon)
    pf_cand = np.flatnonzero(permafrost & (lat > 55.0))
    n_pf = int(round(PERMAFROST_SHARE * n_profiles)) if pf_cand.size else 0
    n_w = n_profiles - n_pf
    shares = np.array([REGION_SHARES[r] for r in REGIONS])
    present = np.array([np.any(reg == k) for k in range(len(REGIONS))])
    shares = np.where(present, shares, 0.0)
    n_reg = np.floor(shares / shares.sum() * n_w).astype(np.int64)
    n_reg[np.argmax(shares)] += n_w - n_reg.sum()
    parents, counts, source = [], [], []
    for k in range(len(REGIONS)):
        cand = np.flatnonzero(reg == k)
        p, c = _clusters(rng, int(n_reg[k]), cand, area[cand] * (1.0 + 2.0 * crop[cand]), (5, 50))
        parents.append(p)
        counts.append(c)
        source.append(np.zeros(p.size, dtype=np.int64))
    p, c = _clusters(rng, n_pf, pf_cand, area[pf_cand], (3, 10))
    parents.append(p)
    counts.append(c)
    source.append(np.ones(p.size, dtype=np.int64))
    parents = np.concatenate(parents)
    counts = np.concatenate(counts)
    source = np.concatenate(source)
    n_cl = parents.size
    # parent point: uniform within the parent cell
    plat = lat[parents] + (rng.random(n_cl) - 0.5) * dlat
    plon = lon[parents] + (rng.random(n_cl) - 0.5) * dlon
    radius = rng.uniform(10.0, 50.0, n_cl)  # km
    cl = np.repeat(np.arange(n_cl), counts)
    r = radius[cl] * np.sqrt(rng.random(cl.size))
    th = rng.uniform(0.0, 2 * np.pi, cl.size)
    slat = np.clip(plat[cl] + r * np.sin(th) / KM_PER_DEG, -89.9, 89.9)
    slon = plon[cl] + r * np.cos(th) / (KM_PER_DEG * np.maximum(np.cos(np.radians(slat)), 0.05))
    slon = (slon + 180.0) % 360.0 - 180.0
    cell = np.asarray(locate(slat, slon), dtype=np.int64)
    off = cell < 0  # child fell outside the valid cells: put it at the parent point
    slat[off], slon[off] = plat[cl[off]], plon[cl[off]]
    cell[off] = parents[cl[off]]
    return {"cell": cell, "lat": slat, "lon": slon, "source": source[cl], "region": reg[cell], "cluster": cl}


def sample_cells(seed: int, n_profiles: int, lat: np.ndarray, lon: np.ndarray) -> dict[str, np.ndarray]:
    """One site at the centre of each of ``n_profiles`` distinct valid cells drawn uniformly (without
    replacement while there are enough cells): the authors' recovery experiment, which draws grid cells
    (``randsample`` of valid cells, ``compas.md`` §9), so that every site has its own true parameters.

    Returns the keys of :func:`sample_sites` (``source`` 0, ``cluster`` = the site index)."""
    rng = rng_for(seed, "profiles:cells")
    n = lat.size
    cell = rng.choice(n, size=n_profiles, replace=n_profiles > n).astype(np.int64)
    return {"cell": cell, "lat": lat[cell].astype(np.float64), "lon": lon[cell].astype(np.float64),
            "source": np.zeros(n_profiles, dtype=np.int64), "region": region_of(lat, lon)[cell],
            "cluster": np.arange(n_profiles, dtype=np.int64)}


def layer_geometry(seed: int, n: int, dtb_cm: np.ndarray, source: np.ndarray) -> dict[str, np.ndarray]:
    """Layer bounds of ``n`` profiles, padded (n, :data:`MAX_LAYERS`) with NaN.

    Parameters
    ----------
    seed : int
        World seed.
    n : int
        Number of profiles.
    dtb_cm : (n,) array
        Depth to bedrock at the site (cm); profiles stop at rock (not shallower than 30 cm).
    source : (n,) array
        0 = WoSIS-like, 1 = permafrost set (deeper, 100-200 cm).

    Returns
    -------
    dict
        ``top_cm``, ``bottom_cm`` (n, 10); ``n_layers`` (n,) int.
    """
    rng = rng_for(seed, "profiles:layers")
    shallow = rng.random(n) < 0.34
    bottom = np.where(shallow, rng.uniform(30.0, 50.0, n),
                      np.clip(np.exp(np.log(125.0) + 0.33 * rng.standard_normal(n)), 51.0, 200.0))
    bottom = np.where(source == 1, rng.uniform(100.0, 200.0, n), bottom)
    bottom = np.round(np.clip(np.minimum(bottom, np.maximum(dtb_cm, 30.0)), 30.0, 200.0))
    nl = 3 + rng.choice(_NLAYER_P.size, size=n, p=_NLAYER_P)
    nl = np.minimum(nl, np.maximum(3, (bottom // 8).astype(np.int64)))
    growth = rng.uniform(1.05, 1.5, n)
    j = np.arange(MAX_LAYERS)[None, :]
    w = np.where(j < nl[:, None], growth[:, None] ** j, 0.0)
    w = w * (1.0 + 0.25 * (rng.random((n, MAX_LAYERS)) - 0.5))
    cum = np.cumsum(w, axis=1) / w.sum(axis=1, keepdims=True)
    bot = np.round(cum * bottom[:, None])
    bot = np.maximum(bot, 2.0 * (j + 1))  # at least 2 cm per layer
    bot = np.maximum.accumulate(bot + 0 * j, axis=1)
    bot = np.where(j < nl[:, None], bot, np.nan)
    bot[np.arange(n), nl - 1] = bottom
    # strictly increasing bottoms (>= 2 cm thick)
    for k in range(1, MAX_LAYERS):
        bot[:, k] = np.where(np.isfinite(bot[:, k]), np.maximum(bot[:, k], bot[:, k - 1] + 2.0), np.nan)
    top = np.concatenate([np.zeros((n, 1)), bot[:, :-1]], axis=1)
    top = np.where(j < nl[:, None], top, np.nan)
    # first layer not from 0 cm in ~4 %: litter layer removed
    off = (rng.random(n) < 0.04) & (bot[:, 0] > 4.0)
    top[off, 0] = np.minimum(rng.integers(1, 4, n)[off], bot[off, 0] - 2.0)
    # gaps between consecutive layers in ~6 % of pairs: the lower layer starts deeper
    gap = rng.uniform(5.0, 25.0, (n, MAX_LAYERS))
    thick = bot - top
    has_gap = (rng.random((n, MAX_LAYERS)) < 0.06) & (j >= 1) & (thick > gap + 2.0)
    top = np.where(has_gap, np.round(top + gap), top)
    return {"top_cm": top, "bottom_cm": bot, "n_layers": nl.astype(np.int64)}


def observation_noise(seed: int, top_cm: np.ndarray, n_layers: np.ndarray) -> dict[str, np.ndarray]:
    """Log-space observation noise terms (dimensionless), padded like the layers.

    Returns
    -------
    dict
        ``eps_site`` (P,), ``eps_layer`` (P, 10), ``eps_shape`` (P, 10), ``eps_bd`` (P, 10).
    """
    rng = rng_for(seed, "profiles:noise")
    p, lmax = top_cm.shape
    j = np.arange(lmax)[None, :]
    inside = j < n_layers[:, None]
    eps_site = 0.3 * rng.standard_normal(p)
    eps_layer = np.where(inside, 0.2 * rng.standard_normal((p, lmax)), np.nan)
    eps_bd = np.where(inside, np.clip(0.176 * rng.standard_normal((p, lmax)), -0.45, 0.45), np.nan)
    # irregular shapes: buried horizon (+) below 30 cm or an eluvial (E) depletion (-) in layer 2
    kind = rng.random(p)
    pick = rng.integers(1, np.maximum(n_layers, 2), p)
    shape = np.zeros((p, lmax))
    buried = (kind < 0.07) & (np.take_along_axis(top_cm, pick[:, None], 1)[:, 0] >= 30.0)
    shape[buried, pick[buried]] = rng.uniform(0.5, 1.0, p)[buried]
    elu = (kind >= 0.07) & (kind < 0.12)
    shape[elu, 1] = -rng.uniform(0.3, 0.7, p)[elu]
    return {"eps_site": eps_site, "eps_layer": eps_layer, "eps_shape": np.where(inside, shape, np.nan),
            "eps_bd": eps_bd}


def content_from_density(density_g_m3: np.ndarray, coarse_pct: np.ndarray, bd_factor: np.ndarray,
                         n_iter: int = 30) -> np.ndarray:
    """Invert ``density = c x PTF(c) x bd_factor x 1000 x (1 - G/100)`` for SOC content c (g C kg-1).

    ``c PTF(c)`` is strictly increasing, so Newton iterations from c = density / 1300 converge.
    """
    d = np.asarray(density_g_m3, dtype=np.float64)
    target = d / (1000.0 * np.maximum(1.0 - coarse_pct / 100.0, 0.05) * bd_factor)  # = c * PTF(c), g cm-3 g kg-1
    k = 0.0089 * 1.724
    c = np.maximum(target / 1.3, 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        for _ in range(n_iter):
            ptf = ptf_bulk_density(c)
            f = c * ptf - target
            fp = ptf - 1.30 * k * c * np.exp(-k * c)
            c = np.maximum(c - f / fp, 0.0)
    return c


def node_layer_geometry(n: int, dtb_cm: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The 20 CLM layers (``prodampi.soil.layers``) as the layers of ``n`` profiles (cm), (n, 20).

    With ``dtb_cm`` (n,) (depth to bedrock, cm) a profile keeps only the layers that start above its bedrock
    (at least 3): below it the models hold no soil (CLM5 values ~1e-100 g C m-3), which no survey samples and
    which would dominate CLM5's relative-error cost.  Padding beyond ``n_layers`` is NaN."""
    from ..soil.layers import layer_bounds_m

    top, bot = layer_bounds_m()
    t = np.repeat(np.round(top * 100.0, 6)[None, :], n, axis=0)
    b = np.repeat(np.round(bot * 100.0, 6)[None, :], n, axis=0)
    if dtb_cm is None:
        nl = np.full(n, top.size, dtype=np.int64)
    else:
        nl = np.clip(np.sum(t < np.asarray(dtb_cm, dtype=np.float64)[:, None], axis=1), 3, top.size)
    inside = np.arange(top.size)[None, :] < nl[:, None]
    return {"top_cm": np.where(inside, t, np.nan), "bottom_cm": np.where(inside, b, np.nan),
            "n_layers": nl.astype(np.int64)}


def no_noise(top_cm: np.ndarray, n_layers: np.ndarray) -> dict[str, np.ndarray]:
    """Noise terms of :func:`observation_noise` all 0 inside the layers (NaN padded): noise-free records."""
    p, lmax = top_cm.shape
    inside = np.arange(lmax)[None, :] < n_layers[:, None]
    z = np.where(inside, 0.0, np.nan)
    return {"eps_site": np.zeros(p), "eps_layer": z.copy(), "eps_shape": z.copy(), "eps_bd": z.copy()}


def build_records(seed: int, truth_g_m3: np.ndarray, top_cm: np.ndarray, bottom_cm: np.ndarray,
                  n_layers: np.ndarray, coarse_pct: np.ndarray, noise: dict[str, np.ndarray],
                  zero_nan_layers: bool = True) -> dict[str, np.ndarray]:
    """WoSIS-like layer records from the noise-free truth (g C m-3) and the noise terms.

    Parameters
    ----------
    seed : int
        World seed.
    truth_g_m3 : (P, 10) array
        Noise-free SOC density at the layer mid-depths (g C m-3), NaN padded.
    top_cm, bottom_cm : (P, 10) arrays
        Layer bounds (cm).
    n_layers : (P,) int array
        Layers per profile.
    coarse_pct : (P, 10) array
        Coarse fragments (% vol) of each layer (cell covariates).
    noise : dict
        Output of :func:`observation_noise` (or :func:`no_noise`).
    zero_nan_layers : bool
        Mark ~1 % of the layers zero and ~1 % NaN (default; False: none, the noise-free recovery records).

    Returns
    -------
    dict
        ``soc_density_g_m3`` recorded density (= content x BD x 1000 x (1 - G/100)); ``soc_g_per_kg``;
        ``bd_g_cm3``; ``bd_from_ptf`` (bool); ``coarse_pct``; ``log_noise`` (recorded / truth, natural log);
        ``layer_flag`` (0 ok, 1 zero, 2 NaN, -1 padding); all (P, 10).
    """
    rng = rng_for(seed, "profiles:records")
    p, lmax = truth_g_m3.shape
    inside = np.arange(lmax)[None, :] < n_layers[:, None]
    measured = rng.random(p) < 0.17
    pedo = inside & ~measured[:, None]
    eps = noise["eps_site"][:, None] + noise["eps_layer"] + noise["eps_shape"]
    sample_density = truth_g_m3 * np.exp(eps)  # true density of the sample
    bd_factor = np.exp(noise["eps_bd"])
    content = content_from_density(sample_density, coarse_pct, bd_factor)
    bd_true = ptf_bulk_density(content) * bd_factor
    bd = np.where(pedo, ptf_bulk_density(content), bd_true)
    density = content * bd * 1000.0 * (1.0 - coarse_pct / 100.0)
    log_noise = np.log(density / truth_g_m3)
    flag = np.where(inside, 0, -1)
    u = rng.random((p, lmax))
    zero = inside & (u < 0.01) & zero_nan_layers
    nan = inside & (u >= 0.01) & (u < 0.02) & zero_nan_layers
    flag[zero], flag[nan] = 1, 2
    content = np.where(zero, 0.0, np.where(nan, np.nan, content))
    density = np.where(zero, 0.0, np.where(nan, np.nan, density))
    nanpad = ~inside
    for a in (content, density, bd, log_noise):
        a[nanpad] = np.nan
    return {"soc_density_g_m3": density, "soc_g_per_kg": content, "bd_g_cm3": bd,
            "bd_from_ptf": pedo, "coarse_pct": np.where(inside, coarse_pct, np.nan), "log_noise": log_noise,
            "layer_flag": flag.astype(np.int8)}


#: truth sampled by the profiles -> the per-layer noise-free SOC array of the world's profiles (g C m-3)
PROFILE_TRUTH_KEYS: dict[str, str] = {"shared": "truth_g_m3", "clm5": "truth_clm5_g_m3",
                                      "compas": "truth_compas_g_m3"}


def draw_profiles(seed: int, n_profiles: int, grid: Any, *, valid_cell_id: np.ndarray,
                  valid_land_index: np.ndarray, lat: np.ndarray, lon: np.ndarray, area_m2: np.ndarray,
                  crop: np.ndarray, permafrost: np.ndarray, dtb_m: np.ndarray, coarse_pct: np.ndarray,
                  soc_shared_g_m3: np.ndarray, soc_by_model: dict[str, np.ndarray], truth: str = "shared",
                  layers: str = "realistic", noise: bool = True, sites: str = "clustered",
                  ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The world's profile step: sites, layers, noise-free truths at the layer mid-depths and noisy records.

    Per-cell inputs are over the n valid cells, in valid order.

    Parameters
    ----------
    seed : int
        World seed.
    n_profiles : int
        Raw profiles to draw (WoSIS-like + permafrost set).
    grid : Grid
        The world's grid (``locate``, ``dlat``, ``dlon``, ``n_cells``).
    valid_cell_id : (n,) int array
        Flat grid index of each valid cell.
    valid_land_index : (n,) int array
        Position of each valid cell in the world's land arrays (stored as ``land_cell``).
    lat, lon : (n,) arrays
        Cell centres (degrees).
    area_m2 : (n,) array
        Cell area (m2).
    crop : (n,) array
        Cropland fraction (0-1).
    permafrost : (n,) bool array
        Permafrost cells.
    dtb_m : (n,) array
        Depth to bedrock (m).
    coarse_pct : (n, 3) array
        Coarse fragments (% vol) at 0/30/100 cm: layers with node < 0.15 m take the first, < 0.65 m the
        second, deeper the third.
    soc_shared_g_m3 : (n, 20) array
        Shared truth T at the 20 layer nodes (g C m-3).
    soc_by_model : dict
        Model name -> (n, 20) true-parameter SOC (g C m-3); models absent from it get NaN truths.
    truth : {"shared", "clm5", "compas"}
        The truth the records sample (:data:`PROFILE_TRUTH_KEYS`).
    layers : {"realistic", "nodes"}
        WoSIS-like layers (default) or the 20 CLM layers for every profile (module docstring); with
        ``"nodes"`` the per-layer arrays are (P, 20).
    noise : bool
        Noisy WoSIS-like records (default) or the noise-free truth (module docstring).
    sites : {"clustered", "cells"}
        WoSIS-like clustered sites (default, :func:`sample_sites`) or one site in each of ``n_profiles``
        distinct valid cells (:func:`sample_cells`, the authors' recovery experiment).

    Returns
    -------
    profiles : dict of arrays
        See :class:`prodampi.data.world.World` (``profiles``); WoSIS-like rows first, the permafrost set after.
    info : dict
        ``regions``, ``n_profiles``, ``n_profiles_wosis``, ``n_profiles_permafrost``.
    """
    from ..soil.observe import pchip_at

    if layers not in LAYER_CHOICES:
        raise ValueError(f"layers must be one of {LAYER_CHOICES}, got {layers!r}")
    nv = valid_cell_id.size
    pos_of_flat = np.full(grid.n_cells, -1, dtype=np.int64)
    pos_of_flat[valid_cell_id] = np.arange(nv)

    def locate(la: np.ndarray, lo: np.ndarray) -> np.ndarray:
        return pos_of_flat[grid.locate(la, lo)]

    if sites not in SITE_CHOICES:
        raise ValueError(f"sites must be one of {SITE_CHOICES}, got {sites!r}")
    site_mode = sites
    if site_mode == "cells":
        sites = sample_cells(seed, n_profiles, lat, lon)
    else:
        sites = sample_sites(seed, n_profiles, lat, lon, grid.dlat, grid.dlon, area_m2, crop, permafrost, locate)
    vc = sites["cell"]
    if layers == "nodes":
        geom = node_layer_geometry(vc.size, dtb_m[vc] * 100.0)
    else:
        geom = layer_geometry(seed, vc.size, dtb_m[vc] * 100.0, sites["source"])
    top, bot, nl = geom["top_cm"], geom["bottom_cm"], geom["n_layers"]
    node = (top + bot) / 200.0
    nz = observation_noise(seed, top, nl) if noise else no_noise(top, nl)
    cf_v = coarse_pct[vc]  # (P, 3)
    cf_layer = np.where(node < 0.15, cf_v[:, :1], np.where(node < 0.65, cf_v[:, 1:2], cf_v[:, 2:3]))
    if layers == "nodes":  # the layers are the model's: the truth is the node values (identity operator)
        def at_layers(soc: np.ndarray) -> np.ndarray:
            return np.array(soc[vc], dtype=np.float64)
    else:
        def at_layers(soc: np.ndarray) -> np.ndarray:
            return pchip_at(soc[vc], node) if vc.size else np.zeros((0, top.shape[1]))
    t_shared = at_layers(soc_shared_g_m3)
    t_models = {m: (at_layers(soc_by_model[m]) if m in soc_by_model and vc.size
                    else np.full(node.shape, np.nan)) for m in PROFILE_TRUTH_KEYS if m != "shared"}
    t_obs = {"shared": t_shared, **t_models}[truth]
    rec = build_records(seed, t_obs, top, bot, nl, cf_layer, nz, zero_nan_layers=noise)
    wosis = sites["source"] == 0
    n_w = int(wosis.sum())
    pid = np.where(wosis, WOSIS_ID0 + np.cumsum(wosis) - 1, PERMAFROST_ID0 + np.cumsum(sites["source"] == 1) - 1)
    order = np.lexsort((np.arange(vc.size), sites["source"]))  # WoSIS rows first, permafrost appended
    profiles = {
        "profile_id": pid, "valid_cell": vc, "land_cell": valid_land_index[vc], "lat": sites["lat"],
        "lon": sites["lon"], "source": sites["source"], "region": sites["region"], "cluster": sites["cluster"],
        "n_layers": nl, "top_cm": top, "bottom_cm": bot, "node_m": node, "truth_g_m3": t_shared,
        "truth_clm5_g_m3": t_models["clm5"], "truth_compas_g_m3": t_models["compas"],
        "eps_site": nz["eps_site"], "eps_layer": nz["eps_layer"], "eps_shape": nz["eps_shape"],
        "eps_bd": nz["eps_bd"], **rec,
    }
    profiles = {k: v[order] for k, v in profiles.items()}
    info = {"regions": ",".join(REGIONS), "n_profiles": int(vc.size), "n_profiles_wosis": n_w,
            "n_profiles_permafrost": int(vc.size - n_w)}
    if layers != "realistic" or not noise or site_mode != "clustered":  # variants only: default attrs unchanged
        info.update({"profile_layers": layers, "profile_noise": bool(noise), "profile_sites": site_mode})
    return profiles, info


def synthetic_profile_table(p: dict[str, np.ndarray]) -> Any:
    """The world's padded profile arrays as a :class:`~prodampi.io.readers.ProfileTable`.

    Synthetic and real profiles then go through the same screening and SOC-density code.  Layers are the
    first ``n_layers`` of each padded row; BD the world marked as unmeasured (``bd_from_ptf``) becomes NaN so
    the screening's pedo-transfer function fills it.

    Parameters
    ----------
    p : dict of arrays
        ``World.to_arrays()["profiles"]`` (or :attr:`World.profiles`): ``profile_id``, ``lat``, ``lon`` (P,);
        ``n_layers`` (P,); ``top_cm``, ``bottom_cm`` (cm), ``soc_g_per_kg`` (g C kg-1), ``bd_g_cm3`` (g cm-3),
        ``bd_from_ptf`` (bool), ``coarse_pct`` (% vol), all (P, Lmax) padded.

    Returns
    -------
    ProfileTable
        Source ``"synthetic"``, profile ids ``syn%07d`` of ``profile_id``, one profile per row in row order,
        ``layer_row`` the flat position of each layer in the padded (P, Lmax) arrays.
    """
    from ..io.readers import ProfileTable

    n = p["n_layers"].astype(np.int64)
    n_prof, lmax = p["top_cm"].shape
    mask = np.arange(lmax)[None, :] < n[:, None]
    layer_profile = np.repeat(np.arange(n_prof), n)
    ids = np.array([f"syn{int(i):07d}" for i in p["profile_id"]])
    bd = np.where(p["bd_from_ptf"], np.nan, p["bd_g_cm3"])  # the PTF fills BD the world marked as unmeasured
    layers = {
        "top_cm": p["top_cm"][mask], "bottom_cm": p["bottom_cm"][mask],
        "soc_g_per_kg": p["soc_g_per_kg"][mask], "bd_g_cm3": bd[mask], "coarse_pct": p["coarse_pct"][mask],
    }
    return ProfileTable(source="synthetic", files=("<embedded world>",), profile_id=ids, lat=p["lat"],
                        lon=p["lon"], layer_profile=layer_profile, layers=layers,
                        layer_row=np.flatnonzero(mask.ravel()).astype(np.int64), rejections=[],
                        input_profile_ids=list(ids), profile_row=np.arange(n_prof, dtype=np.int64))
