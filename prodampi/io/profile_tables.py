"""Mapping-driven readers of WoSIS-like profile tables: a *sites* table and a *horizons* table (GSIF ISIS, AfSP).

:func:`read_profile_table` reads a *sites* table (one row per profile: id, latitude, longitude) and a
*horizons* table (one row per layer) into a :class:`~prodampi.io.tables.ProfileTable`.  How the source
columns map onto the canonical columns is declared as data (:data:`ISIS_MAPPING`, :data:`AFSP_MAPPING`), so
another WoSIS-like table needs only a new mapping dict.  Canonical columns and units are those of
:mod:`prodampi.io.tables`: depths in cm, SOC content g C kg-1, bulk density g cm-3, coarse fragments % of
volume, texture % of weight, pH, CEC cmol(+) kg-1; latitude/longitude in degrees (WGS84).

*Negative depths.*  In the ISRIC/GSIF horizon tables depths are counted from the mineral-soil surface, and
organic (O/litter) horizons lying above it carry negative depths (e.g. ISIS ``SE15``: -5 to 0 cm, 325 g C
kg-1).  They are real layers, so a mapping may allow depths down to ``min_depth_cm`` (GSIF mappings: -50 cm);
a depth below that is rejected as a negative depth.  The default for a new mapping is 0 cm (any negative
depth rejected).  A layer whose bottom is not below its top (inverted or zero thickness) is always rejected.
Keeping the organic layers and dropping the inverted ones is what reproduces the screening counts documented
with the data (ISIS 646 profiles / 3,804 layers, AfSP 8,830 / 37,358); rejecting every negative depth would
give 646 / 3,798 and 8,829.

Deck entry points: :func:`read_isis_deck` and :func:`read_afsp_deck` take the resolved ``prepare.profiles``
deck section (keys ``sites`` and ``horizons``: paths of the two files) and are registered in
:mod:`prodampi.io.formats`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .tables import ProfileTable, ReaderError, Rejection, _build_table, _iter_csv, _repeated_id, _row_id, _RowParser

logger = logging.getLogger(__name__)

__all__ = [
    "AFSP_MAPPING",
    "ISIS_MAPPING",
    "read_afsp",
    "read_afsp_deck",
    "read_isis",
    "read_isis_deck",
    "read_profile_table",
]

_GSIF_HORIZON_COLUMNS = {
    "profile_id": "SOURCEID",
    "top_cm": "UHDICM",
    "bottom_cm": "LHDICM",
    "soc_g_per_kg": "ORCDRC",
    "bd_g_cm3": "BLD",
    "coarse_pct": "CRFVOL",
    "sand_pct": "SNDPPT",
    "silt_pct": "SLTPPT",
    "clay_pct": "CLYPPT",
    "ph_h2o": "PHIHOX",
    "cec_cmol_per_kg": "CEC",
}


def _gsif_mapping(name: str, sites_file: str, horizons_file: str) -> dict[str, Any]:
    """A GSIF-packaged profile table pair: SOURCEID, WGS84 coordinates, horizon codes of
    :data:`_GSIF_HORIZON_COLUMNS` (ORCDRC g/kg, BLD g/cm3, CRFVOL volume %, depths cm)."""
    return {
        "name": name,
        "sites": {
            "file": sites_file,
            "columns": {"profile_id": "SOURCEID", "lon": "LONWGS84", "lat": "LATWGS84"},
        },
        "horizons": {"file": horizons_file, "columns": dict(_GSIF_HORIZON_COLUMNS)},
        "factors": {},  # source unit -> canonical unit multipliers (none needed: BLD already g/cm3)
        "min_depth_cm": -50.0,  # organic horizons above the mineral surface are negative
        "max_depth_cm": 1.0e4,
    }


#: ISRIC ISIS reference profiles as packaged in GSIF (``gsif_isis_global_profiles``).  ORCDRC g/kg, BLD
#: g/cm3, CRFVOL volume %, depths cm (organic horizons above the mineral surface negative).
ISIS_MAPPING: dict[str, Any] = _gsif_mapping("isis", "isis_sites.csv", "isis_horizons.csv")

#: Africa Soil Profiles + AfSIS as packaged in GSIF (``gsif_afsp_africa_profiles``); same codes and units.
AFSP_MAPPING: dict[str, Any] = _gsif_mapping("afsp", "afsp_sites.csv.gz", "afsp_horizons.csv.gz")


def read_profile_table(directory: str | Path, mapping: Mapping[str, Any]) -> ProfileTable:
    """Read a WoSIS-like sites + horizons table pair into a :class:`ProfileTable`.

    Parameters
    ----------
    directory : path
        Folder holding ``mapping["sites"]["file"]`` and ``mapping["horizons"]["file"]`` (``.gz`` is read
        transparently).
    mapping : dict
        Column mapping declared as data; see :data:`ISIS_MAPPING` for the keys.  ``sites.columns`` must map
        ``profile_id``, ``lat``, ``lon``; ``horizons.columns`` must map ``profile_id``, ``top_cm``,
        ``bottom_cm`` and may map any other canonical layer column; ``factors`` converts source units to
        canonical ones; ``min_depth_cm`` (default 0) / ``max_depth_cm`` bound accepted depths.

    Returns
    -------
    ProfileTable
        Sites that loaded, with their loaded layers; all rejections.

    Raises
    ------
    ReaderError
        When a file or a mapped column is missing.

    Notes
    -----
    Row-scope problems (the row is dropped): missing/bad id, latitude, longitude, top or bottom depth; a depth
    below ``min_depth_cm`` or above ``max_depth_cm``; bottom <= top; a bad (text, non-finite, out-of-range)
    SOC content; a duplicate site id (the later row is dropped); a horizon whose profile has no loaded site
    row.  Value-scope problems (value set to NaN, row kept): bad bulk density, coarse fragments, texture, pH,
    CEC.  A missing SOC value is not a problem: the layer loads with NaN SOC (screening ignores it).
    """
    directory = Path(directory)
    name = str(mapping.get("name", directory.name))
    smap, hmap = mapping["sites"], mapping["horizons"]
    sites_path, hor_path = directory / smap["file"], directory / hmap["file"]
    factors = dict(mapping.get("factors", {}))
    enc = mapping.get("encoding", "utf-8")
    delim = mapping.get("delimiter", ",")
    for key in ("profile_id", "lat", "lon"):
        if key not in smap["columns"]:
            raise ReaderError(f"{sites_path}: mapping {name!r} names no column for {key}")
    for key in ("profile_id", "top_cm", "bottom_cm"):
        if key not in hmap["columns"]:
            raise ReaderError(f"{hor_path}: mapping {name!r} names no column for {key}")
    rejections: list[Rejection] = []
    input_ids: dict[str, None] = {}

    # ---- sites
    site_parser = _RowParser(str(sites_path), smap["columns"], factors, frozenset({"lat", "lon"}),
                             frozenset({"lat", "lon"}), rejections)
    site_ids: list[str] = []
    site_rows: list[int] = []
    lats: list[float] = []
    lons: list[float] = []
    first_row: dict[str, int] = {}
    site_reject_row: dict[str, int] = {}
    for line, raw in _iter_csv(sites_path, smap["columns"], encoding=enc, delimiter=delim,
                               rejections=rejections):
        pid = _row_id(raw, str(sites_path), line, smap["columns"]["profile_id"], rejections)
        if pid is None:
            continue
        input_ids.setdefault(pid)
        if _repeated_id(pid, str(sites_path), line, smap["columns"]["profile_id"], first_row, rejections):
            continue
        vals = site_parser.parse(line, raw, pid)
        if vals is None:
            site_reject_row[pid] = line
            continue
        site_ids.append(pid)
        site_rows.append(line)
        lats.append(vals["lat"])
        lons.append(vals["lon"])
    pindex = {p: i for i, p in enumerate(site_ids)}

    # ---- horizons
    lo = float(mapping.get("min_depth_cm", 0.0))
    hi = float(mapping.get("max_depth_cm", 1.0e4))
    hcols = hmap["columns"]
    hor_parser = _RowParser(
        str(hor_path), hcols, factors, frozenset({"top_cm", "bottom_cm"}),
        frozenset({"top_cm", "bottom_cm", "soc_g_per_kg"}), rejections,
        limits={"top_cm": (lo, hi), "bottom_cm": (lo, hi)})
    layer_pidx: list[int] = []
    layer_vals: list[dict[str, float]] = []
    layer_rows: list[int] = []
    for line, raw in _iter_csv(hor_path, hcols, encoding=enc, delimiter=delim, rejections=rejections):
        pid = _row_id(raw, str(hor_path), line, hcols["profile_id"], rejections)
        if pid is None:
            continue
        input_ids.setdefault(pid)
        vals = hor_parser.parse(line, raw, pid)
        if vals is None:
            continue
        if not vals["bottom_cm"] > vals["top_cm"]:
            rejections.append(Rejection(
                str(hor_path), line, hcols["bottom_cm"], raw["bottom_cm"],
                f"inverted depths: bottom {vals['bottom_cm']:g} cm is not below top {vals['top_cm']:g} cm "
                f"(column {hcols['top_cm']!r})", pid))
            continue
        if pid not in pindex:
            why = (f"site row rejected ({sites_path}, row {site_reject_row[pid]})" if pid in site_reject_row
                   else f"profile id has no row in {sites_path.name}")
            rejections.append(Rejection(str(hor_path), line, hcols["profile_id"], pid, why, pid))
            continue
        layer_pidx.append(pindex[pid])
        layer_vals.append(vals)
        layer_rows.append(line)

    table = _build_table(name, (str(sites_path), str(hor_path)), site_ids, lats, lons, site_rows, layer_pidx,
                         layer_vals, layer_rows, rejections, list(input_ids))
    n_row = len({(r.file, r.row) for r in rejections if r.scope == "row"})
    n_val = sum(r.scope == "value" for r in rejections)
    logger.info("%s: %d sites, %d layers loaded; %d rows rejected, %d values dropped", name,
                table.n_profiles, table.n_layers, n_row, n_val)
    return table


def read_isis(directory: str | Path) -> ProfileTable:
    """Read the ISIS reference profiles (``gsif_isis_global_profiles`` folder); see
    :func:`read_profile_table`."""
    return read_profile_table(directory, ISIS_MAPPING)


def read_afsp(directory: str | Path) -> ProfileTable:
    """Read the AfSP/AfSIS profiles (``gsif_afsp_africa_profiles`` folder); see :func:`read_profile_table`."""
    return read_profile_table(directory, AFSP_MAPPING)


def _read_deck(section: Mapping[str, Any], mapping: Mapping[str, Any]) -> ProfileTable:
    """Read the two files the deck names (resolved to absolute paths) with ``mapping``'s columns."""
    sites, horizons = Path(section["sites"]).resolve(), Path(section["horizons"]).resolve()
    m = {**mapping, "sites": {**mapping["sites"], "file": str(sites)},
         "horizons": {**mapping["horizons"], "file": str(horizons)}}
    return read_profile_table(sites.parent, m)


def read_isis_deck(section: Mapping[str, Any]) -> ProfileTable:
    """ISIS profiles from the deck section ``prepare.profiles`` (keys ``sites``, ``horizons``: file paths).

    Parameters
    ----------
    section : dict
        The resolved ``prepare.profiles`` section; the two files may have any names and folders.

    Returns
    -------
    ProfileTable
        As :func:`read_profile_table` with :data:`ISIS_MAPPING`; ``files`` holds the absolute paths.
    """
    return _read_deck(section, ISIS_MAPPING)


def read_afsp_deck(section: Mapping[str, Any]) -> ProfileTable:
    """AfSP profiles from the deck section ``prepare.profiles`` (keys ``sites``, ``horizons``: file paths).

    See :func:`read_isis_deck`; the mapping is :data:`AFSP_MAPPING`.
    """
    return _read_deck(section, AFSP_MAPPING)
