"""The input-data readers of prodampi under their old single name (a facade; import from the modules).

The readers live in cohesive modules; this module re-exports their public names so that
``from prodampi.io.readers import X`` keeps working:

* :mod:`prodampi.io.tables` - the CSV/TSV engine and its rules for bad values (:class:`Rejection`,
  :class:`ReaderError`), the canonical columns and their units, :class:`ProfileTable`.
* :mod:`prodampi.io.profile_tables` - WoSIS-like sites + horizons tables (GSIF ISIS, AfSP):
  :func:`read_profile_table`, :func:`read_isis`, :func:`read_afsp` and their mappings.
* :mod:`prodampi.io.ncscd` - the NCSCD pedon table (SOC stocks -> layers of SOC density, g C m-3).
* :mod:`prodampi.io.bd_oc` - the global BD/OC layer table used to fit the pedo-transfer function.
* :mod:`prodampi.io.covariate_grid` - covariate grid tables (African 20-km grid).
* :mod:`prodampi.io.cesm2` - CESM2/CLM5 monthly history netCDF: reader (per-site forcing) and writer.
* :mod:`prodampi.data.geo` - nearest-cell lookups (great circle; PRODA's per-axis grid rule).

:func:`sphere_tree` and :func:`nearest_on_sphere` are the old two-step spelling of
:class:`prodampi.data.geo.SphereIndex` (distances in km), kept for existing callers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.geo import SphereIndex, nearest_cell_indices
from ..errors import InputDataError
from .bd_oc import WOSIS_BD_OC_MAPPING, BdOcLayers, read_bd_oc_layers
from .cesm2 import CESM2_VARIABLES, CESM2_WRITE_UNITS, read_cesm2_fields, read_cesm2_forcing, write_cesm2_history
from .covariate_grid import AFGRID20_MAPPING, CovariateGrid, read_covariate_grid
from .ncscd import NCSCD_MAPPING, read_ncscd_pedons
from .profile_tables import (
    AFSP_MAPPING,
    ISIS_MAPPING,
    read_afsp,
    read_afsp_deck,
    read_isis,
    read_isis_deck,
    read_profile_table,
)
from .tables import LAYER_COLUMNS, PROFILE_LAYER_COLUMNS, ColumnSpec, ProfileTable, ReaderError, Rejection

__all__ = [
    "AFSP_MAPPING",
    "AFGRID20_MAPPING",
    "CESM2_VARIABLES",
    "CESM2_WRITE_UNITS",
    "ISIS_MAPPING",
    "LAYER_COLUMNS",
    "NCSCD_MAPPING",
    "PROFILE_LAYER_COLUMNS",
    "WOSIS_BD_OC_MAPPING",
    "BdOcLayers",
    "ColumnSpec",
    "CovariateGrid",
    "InputDataError",
    "ProfileTable",
    "ReaderError",
    "Rejection",
    "nearest_cell_indices",
    "nearest_on_sphere",
    "read_afsp",
    "read_afsp_deck",
    "read_bd_oc_layers",
    "read_cesm2_fields",
    "read_cesm2_forcing",
    "read_covariate_grid",
    "read_isis",
    "read_isis_deck",
    "read_ncscd_pedons",
    "read_profile_table",
    "sphere_tree",
    "write_cesm2_history",
]


def sphere_tree(cell_lat: np.ndarray, cell_lon: np.ndarray) -> SphereIndex:
    """Cell centres (degrees) indexed for :func:`nearest_on_sphere` (a :class:`~prodampi.data.geo.SphereIndex`)."""
    return SphereIndex(cell_lat, cell_lon)


def nearest_on_sphere(tree: Any, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Great-circle nearest cell of ``tree`` (from :func:`sphere_tree`) for each site (degrees).

    Returns (index (S,) int64, -1 for non-finite coordinates; distance (S,) km on the sphere of radius
    :data:`~prodampi.data.grid.EARTH_RADIUS_M`, NaN there).  See :meth:`prodampi.data.geo.SphereIndex.query`.
    """
    idx, dist_m = tree.query(lat, lon)
    return idx, dist_m / 1000.0
