"""Reader of the global bulk-density / organic-carbon layer table used to fit the pedo-transfer function.

The GSIF soil-carbon tutorial table (``wosis_bd_oc_layers``) has one row per layer with measured bulk
density (**kg m-3** in the file, returned in g cm-3), organic-carbon content (g C kg-1), texture (% of
weight), pH and the layer mid-depth (cm); no coordinates and no layer bounds.  Rejections follow the rules of
:mod:`prodampi.io.tables`.  The pedo-transfer function itself is :func:`prodampi.data.profiles.fit_ptf` /
:func:`prodampi.data.profiles.ptf_bulk_density`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .tables import Rejection, _iter_csv, _row_id, _RowParser

logger = logging.getLogger(__name__)

__all__ = ["WOSIS_BD_OC_MAPPING", "BdOcLayers", "read_bd_oc_layers"]

#: (converted here to g cm-3), ORCDRC g/kg, DEPTH = layer mid-depth (cm).  No coordinates, no layer bounds.
WOSIS_BD_OC_MAPPING: dict[str, Any] = {
    "name": "wosis_bd_oc",
    "file": "gsif_wosis_tbl_bd_oc_layers.csv.gz",
    "columns": {
        "profile_id": "SOURCEID",
        "bd_g_cm3": "BLD",
        "soc_g_per_kg": "ORCDRC",
        "clay_pct": "CLYPPT",
        "sand_pct": "SNDPPT",
        "ph_h2o": "PHIHOX",
        "depth_cm": "DEPTH",
    },
    "factors": {"bd_g_cm3": 1.0e-3},  # kg m-3 -> g cm-3
    "required": ("profile_id", "bd_g_cm3", "soc_g_per_kg"),
}


@dataclass
class BdOcLayers:
    """Layers with measured bulk density and organic carbon (no coordinates, no bounds).

    Attributes
    ----------
    profile_id : ndarray of str, (L,)
    soc_g_per_kg : ndarray, (L,)     organic-carbon content, g C kg-1
    bd_g_cm3 : ndarray, (L,)         bulk density, g cm-3 (converted from the file's kg m-3)
    depth_cm : ndarray, (L,)         layer mid-depth, cm
    extra : dict of str to ndarray   other mapped columns (clay_pct, sand_pct, ph_h2o)
    rejections : list of Rejection
    """

    profile_id: np.ndarray
    soc_g_per_kg: np.ndarray
    bd_g_cm3: np.ndarray
    depth_cm: np.ndarray
    extra: dict[str, np.ndarray]
    rejections: list[Rejection]

    @property
    def n_layers(self) -> int:
        """Number of loaded layers."""
        return int(self.soc_g_per_kg.shape[0])


def read_bd_oc_layers(path: str | Path, mapping: Mapping[str, Any] = WOSIS_BD_OC_MAPPING) -> BdOcLayers:
    """Read the global BD/OC layer table (for the pedo-transfer function).

    Parameters
    ----------
    path : path
        The ``.csv.gz`` file or the folder holding ``mapping["file"]``.
    mapping : dict
        See :data:`WOSIS_BD_OC_MAPPING` (BLD kg m-3 -> g cm-3 via ``factors``).

    Returns
    -------
    BdOcLayers
        Rows with a valid id, BD and SOC; other rows are rejected with their reason.
    """
    path = Path(path)
    if path.is_dir():
        path = path / mapping["file"]
    cols = dict(mapping["columns"])
    required = frozenset(mapping.get("required", ("profile_id", "bd_g_cm3", "soc_g_per_kg"))) - {"profile_id"}
    rejections: list[Rejection] = []
    parser = _RowParser(str(path), cols, dict(mapping.get("factors", {})), required, required, rejections)
    ids: list[str] = []
    vals: list[dict[str, float]] = []
    for line, raw in _iter_csv(path, cols, rejections=rejections):
        pid = _row_id(raw, str(path), line, cols["profile_id"], rejections)
        if pid is None:
            continue
        v = parser.parse(line, raw, pid)
        if v is not None:
            ids.append(pid)
            vals.append(v)

    def col(c: str) -> np.ndarray:
        return np.array([v.get(c, math.nan) for v in vals], dtype=np.float64)

    extra = {c: col(c) for c in cols if c not in ("profile_id", "soc_g_per_kg", "bd_g_cm3", "depth_cm")}
    out = BdOcLayers(np.array(ids, dtype=str), col("soc_g_per_kg"), col("bd_g_cm3"), col("depth_cm"), extra,
                     rejections)
    logger.info("%s: %d layers loaded, %d rejections", path.name, out.n_layers, len(rejections))
    return out

