"""Model forcing derived for sites and cells that have no CESM2/CLM5 history (``prepare.forcing``).

Two derivations, both through :func:`prodampi.data.forcing_synth.forcing_from_climate`:

* from a **covariate table**: land-surface temperature (day and night means, degC) and annual precipitation
  (mm yr-1), read from the columns named in :data:`AFGRID20_FORCING_COLUMNS` (the AfGrid20 codes);
* from the **synthetic world's climate** at the great-circle nearest land cell of each site (monthly air
  temperature and precipitation, NPP, forest fraction, depth to bedrock, wetland and organic indices), given
  as the dict of :func:`prodampi.data.world.synthetic_land_climate`.

Forcing units are those of :mod:`prodampi.soil.forcing`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import InputDataError
from ..soil.forcing import N_MONTHS, Forcing
from ..soil.layers import N_LAYERS
from .forcing_synth import forcing_from_climate
from .geo import nearest_cell

__all__ = ["AFGRID20_FORCING_COLUMNS", "empty_forcing", "forcing_from_covariates", "forcing_from_world_climate"]

#: keyword of :func:`~prodampi.data.forcing_synth.forcing_from_climate` -> AfGrid20 covariate column:
#: MODIS mean day / night land-surface temperature (degC) and GSMaP mean annual precipitation (mm yr-1)
AFGRID20_FORCING_COLUMNS: dict[str, str] = {
    "lst_day_c": "TDMMOD0a",
    "lst_night_c": "TNMMOD0a",
    "precip_mm_yr": "PREGSM0a",
}


def empty_forcing() -> Forcing:
    """A :class:`~prodampi.soil.forcing.Forcing` of zero sites."""
    z = np.zeros
    layered = (0, N_LAYERS, N_MONTHS)
    return Forcing(tsoi_k=z(layered), w_scalar=z(layered), o_scalar=z(layered), fpi=z(layered),
                   altmax_m=z((0, N_MONTHS)), altmax_lastyear_m=z((0, N_MONTHS)), nbedrock=z(0, dtype=np.int64),
                   litter_input=z((0, 4)))


def forcing_from_covariates(lat: np.ndarray, values: np.ndarray, names: Sequence[str],
                            columns: Mapping[str, str] = AFGRID20_FORCING_COLUMNS) -> Forcing:
    """Forcing derived from covariate columns (land-surface temperature and precipitation).

    Parameters
    ----------
    lat : (S,) array
        Latitude of the sites or cells (degrees north).
    values : (S, K) array
        Covariates, columns named by ``names``.
    names : sequence of K str
        Column names.
    columns : dict
        ``forcing_from_climate`` keyword -> column name (default :data:`AFGRID20_FORCING_COLUMNS`).

    Returns
    -------
    Forcing
        S sites.

    Raises
    ------
    InputDataError
        When a needed column is absent (naming it).
    """
    names = list(names)
    missing = [c for c in columns.values() if c not in names]
    if missing:
        raise InputDataError(f"covariate table lacks {', '.join(missing)} needed to derive forcing")
    lat = np.asarray(lat, dtype=np.float64)
    if lat.size == 0:
        return empty_forcing()
    values = np.asarray(values, dtype=np.float64)
    return forcing_from_climate(lat, **{kw: values[:, names.index(c)] for kw, c in columns.items()})


def forcing_from_world_climate(lat: np.ndarray, lon: np.ndarray, climate: Mapping[str, np.ndarray]
                               ) -> tuple[Forcing, np.ndarray, np.ndarray, list[str]]:
    """Forcing from the synthetic world's monthly climate at the great-circle nearest land cell of each site.

    Parameters
    ----------
    lat, lon : (S,) arrays
        Site coordinates (degrees).
    climate : dict
        :func:`prodampi.data.world.synthetic_land_climate`: over n land cells ``lat``/``lon`` (degrees),
        ``ta_c`` (n, 12) degC, ``pr_mm`` (n, 12) mm month-1, ``npp_gc_m2_yr`` (g C m-2 yr-1), ``forest``,
        ``wetland``, ``organic`` (0-1), ``dtb_m`` (m), ``covariates`` (n, K) and ``covariate_names`` (K,).

    Returns
    -------
    forcing : Forcing
        S sites.
    cells : (S,) int64 array
        Land cell of each site.
    covariates : (S, K) array
        The world's covariates at those cells.
    names : list of K str
        Covariate names.
    """
    names = [str(n) for n in climate["covariate_names"]]
    lat = np.asarray(lat, dtype=np.float64)
    if lat.size == 0:
        return empty_forcing(), np.zeros(0, dtype=np.int64), np.zeros((0, 0)), names
    cells, _ = nearest_cell(climate["lat"], climate["lon"], lat, lon)
    c = {k: np.asarray(climate[k])[cells] for k in ("ta_c", "pr_mm", "npp_gc_m2_yr", "forest", "dtb_m", "wetland",
                                                     "organic")}
    forcing = forcing_from_climate(lat, t_air_monthly_c=c["ta_c"], precip_monthly_mm=c["pr_mm"],
                                   npp_gc_m2_yr=c["npp_gc_m2_yr"], forest_fraction=c["forest"],
                                   depth_to_bedrock_m=c["dtb_m"], wetland=c["wetland"], organic=c["organic"])
    return forcing, cells, np.asarray(climate["covariates"])[cells], names
