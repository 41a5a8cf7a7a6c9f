"""Reader of the NCSCD pedon table (Hugelius et al. 2013, ``ncscd_pedons_hugelius2013``).

The table gives one row per permafrost-region pedon with its coordinates (degrees N / E), basal and thaw
depths (cm) and SOC **stocks** (kg C m-2) over the depth intervals 0-30, 0-100, 100-200 and 200-300 cm.
:func:`read_ncscd_pedons` turns each pedon into a profile whose layers are the intervals, carrying the
interval-mean SOC density in **g C m-3** (``layers["soc_density_g_m3"]``; SOC content and bulk density are
NaN).  Rejections follow the rules of :mod:`prodampi.io.tables`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .tables import ProfileTable, Rejection, _build_table, _iter_csv, _parse_number, _repeated_id, _row_id, _RowParser

logger = logging.getLogger(__name__)

__all__ = ["NCSCD_MAPPING", "read_ncscd_pedons"]

#: NCSCD pedon table (Hugelius et al. 2013): tab separated, Latin-1, one row per pedon, SOC stocks
#: (kg C m-2) by depth interval; the 0-100 cm stock includes the 0-30 cm stock.  ``Pedon_Id_nr`` is the
#: unique id (``Profile_ID`` repeats); the header spells the longitude column ``"Long "`` (matched stripped).
NCSCD_MAPPING: dict[str, Any] = {
    "name": "ncscd",
    "file": "Hugelius_etal_ESSDD_OSM_pedon_database_20130326.txt",
    "encoding": "latin-1",
    "delimiter": "\t",
    "columns": {
        "profile_id": "Pedon_Id_nr",
        "name": "Profile_ID",
        "lat": "Lat",
        "lon": "Long",
        "basal_depth_cm": "Basal_Depth",
        "thaw_depth_cm": "Thaw depth when sampling",
    },
    # (top_cm, bottom_cm) -> column with the SOC stock (kg C m-2) of that interval
    "stocks_kg_m2": {
        (0, 30): "SOCC 0-30 cm (kg C m-2)",
        (0, 100): "SOCC 0-100 cm (kg C m-2)",
        (100, 200): "SOCC 100-200 cm (kg C m-2)",
        (200, 300): "SOCC 200-300 cm (kg C m-2)",
    },
}



def read_ncscd_pedons(path: str | Path, mapping: Mapping[str, Any] = NCSCD_MAPPING) -> ProfileTable:
    """Read the NCSCD pedon table: SOC stocks by depth interval -> layers of mean SOC density.

    Parameters
    ----------
    path : path
        The tab-separated pedon file, or the folder holding ``mapping["file"]``.
    mapping : dict
        See :data:`NCSCD_MAPPING`.

    Returns
    -------
    ProfileTable
        One profile per pedon (id = ``Pedon_Id_nr``); layers 0-30, 30-100, 100-200, 200-300 cm where the
        stocks are given, with ``layers["soc_density_g_m3"]`` = stock (kg C m-2) x 1000 / thickness (m), the
        interval-mean SOC density in g C m-3 (SOC content and BD are NaN).  The 30-100 cm stock is the
        0-100 cm stock minus the 0-30 cm stock; when only one of the two is given that interval (0-30 or
        0-100 cm) becomes the layer.  ``layer_flags["below_basal_depth"]`` marks intervals starting at or
        below the sampled depth (their stocks are extrapolated/gap-filled by the authors).
        ``profile_extra`` holds ``name`` (the authors' Profile_ID), ``basal_depth_cm``, ``thaw_depth_cm``.

    Notes
    -----
    Bad stocks (text, negative, non-finite, 0-100 cm smaller than 0-30 cm) are value-scope rejections (that
    interval is left out); a bad id, latitude or longitude, or a duplicate id, drops the row.
    """
    path = Path(path)
    if path.is_dir():
        path = path / mapping["file"]
    cols = dict(mapping["columns"])
    stocks: dict[tuple[int, int], str] = {tuple(k): v for k, v in mapping["stocks_kg_m2"].items()}
    wanted = dict(cols)
    for (t, b), c in stocks.items():
        wanted[f"stock_{t}_{b}"] = c
    rejections: list[Rejection] = []
    parser = _RowParser(str(path), wanted, {}, frozenset({"lat", "lon"}), frozenset({"lat", "lon"}),
                        rejections)
    input_ids: dict[str, None] = {}
    first_row: dict[str, int] = {}
    ids: list[str] = []
    rows: list[int] = []
    lats: list[float] = []
    lons: list[float] = []
    extra: dict[str, list[Any]] = {"name": [], "basal_depth_cm": [], "thaw_depth_cm": []}
    layer_pidx: list[int] = []
    layer_vals: list[dict[str, float]] = []
    layer_rows: list[int] = []
    below_basal: list[bool] = []
    for line, raw in _iter_csv(path, wanted, encoding=mapping.get("encoding", "latin-1"),
                               delimiter=mapping.get("delimiter", "\t"), rejections=rejections):
        pid = _row_id(raw, str(path), line, cols["profile_id"], rejections)
        if pid is None:
            continue
        input_ids.setdefault(pid)
        if _repeated_id(pid, str(path), line, cols["profile_id"], first_row, rejections):
            continue
        # stocks: negative values are bad; parse with a dedicated range
        raw_stocks = {k: raw.pop(f"stock_{k[0]}_{k[1]}") for k in stocks}
        vals = parser.parse(line, raw, pid)
        if vals is None:
            continue
        st: dict[tuple[int, int], float] = {}
        for k, text in raw_stocks.items():
            v, why = _parse_number(text)
            if why is None and not math.isnan(v) and v < 0:
                why = f"negative SOC stock {v:g} kg C m-2"
            if why is not None:
                rejections.append(Rejection(str(path), line, stocks[k], text, why, pid, "value"))
                v = math.nan
            st[k] = v
        s30, s100 = st.get((0, 30), math.nan), st.get((0, 100), math.nan)
        if math.isfinite(s30) and math.isfinite(s100) and s100 < s30:
            rejections.append(Rejection(str(path), line, stocks[(0, 100)], raw_stocks[(0, 100)],
                                        f"0-100 cm stock {s100:g} is smaller than the 0-30 cm stock {s30:g}",
                                        pid, "value"))
            s100 = math.nan
        intervals: list[tuple[float, float, float]] = []
        if math.isfinite(s30) and math.isfinite(s100):
            intervals += [(0.0, 30.0, s30), (30.0, 100.0, s100 - s30)]
        elif math.isfinite(s100):
            intervals.append((0.0, 100.0, s100))
        elif math.isfinite(s30):
            intervals.append((0.0, 30.0, s30))
        for (t, b), v in st.items():
            if t >= 100 and math.isfinite(v):
                intervals.append((float(t), float(b), v))
        pi = len(ids)
        ids.append(pid)
        rows.append(line)
        lats.append(vals["lat"])
        lons.append(vals["lon"])
        basal = vals.get("basal_depth_cm", math.nan)
        extra["name"].append(raw.get("name", "").strip())
        extra["basal_depth_cm"].append(basal)
        extra["thaw_depth_cm"].append(vals.get("thaw_depth_cm", math.nan))
        for t, b, s in intervals:
            layer_pidx.append(pi)
            layer_rows.append(line)
            layer_vals.append({"top_cm": t, "bottom_cm": b,
                               "soc_density_g_m3": s * 1000.0 / ((b - t) / 100.0)})
            below_basal.append(bool(math.isfinite(basal) and t >= basal))
    profile_extra = {"name": np.array(extra["name"], dtype=str),
                     "basal_depth_cm": np.array(extra["basal_depth_cm"], dtype=np.float64),
                     "thaw_depth_cm": np.array(extra["thaw_depth_cm"], dtype=np.float64)}
    table = _build_table(str(mapping.get("name", "ncscd")), (str(path),), ids, lats, lons, rows, layer_pidx,
                         layer_vals, layer_rows, rejections, list(input_ids), profile_extra,
                         {"below_basal_depth": below_basal})
    logger.info("ncscd: %d pedons, %d interval layers; %d rejections", table.n_profiles, table.n_layers,
                len(rejections))
    return table

