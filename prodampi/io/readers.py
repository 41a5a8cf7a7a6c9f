"""Readers for the real input data of prodampi: soil profiles, permafrost pedons, CESM2 forcing, covariates.

Every reader here follows the same rules:

* A **bad value** (a number that is missing where it is required, text in a numeric column, a non-finite or
  out-of-range number, a negative or inverted depth, a duplicate id, an out-of-range latitude/longitude) never
  crashes the reader.  It is recorded as a :class:`Rejection` naming the **file, row and column**, and either
  the whole row is dropped (``scope="row"``: the value is needed to use the row at all) or only the value is
  dropped and set to NaN (``scope="value"``: auxiliary columns such as texture or pH).  Everything else loads.
* A **missing file or missing column** is not a per-row problem: it raises :class:`ReaderError` whose message
  names the file and the column (or variable).
* Rows are numbered as 1-based line numbers of the (decompressed) text file; the header is line 1, so the
  first data row is row 2.  A record spanning several lines (quoted newline, or an unbalanced quote that
  swallows the following lines) is reported at its first line.  A completely blank line is skipped silently.

Profile tables ("WoSIS-like" horizon tables)
--------------------------------------------
:func:`read_profile_table` reads a *sites* table (one row per profile: id, latitude, longitude) and a
*horizons* table (one row per layer) into a :class:`ProfileTable`.  How the source columns map onto the
canonical columns is declared as data (:data:`ISIS_MAPPING`, :data:`AFSP_MAPPING`), so another WoSIS-like
table needs only a new mapping dict.  Canonical layer columns and units:

=================  ==================  ==========================================================
column             unit                notes
=================  ==================  ==========================================================
top_cm, bottom_cm  cm                  below the mineral-soil surface (see *negative depths*)
soc_g_per_kg       g C kg-1            organic-carbon content (= permille); NaN when not measured
bd_g_cm3           g cm-3 (= t m-3)    bulk density of the fine earth; NaN when not measured
coarse_pct         % of volume         coarse fragments (> 2 mm); NaN when not measured
sand/silt/clay_pct % of weight         texture
ph_h2o             pH units            pH in water
cec_cmol_per_kg    cmol(+) kg-1        cation-exchange capacity
=================  ==================  ==========================================================

*Negative depths.*  In the ISRIC/GSIF horizon tables depths are counted from the mineral-soil surface, and
organic (O/litter) horizons lying above it carry negative depths (e.g. ISIS ``SE15``: -5 to 0 cm, 325 g C
kg-1).  They are real layers, so a mapping may allow depths down to ``min_depth_cm`` (GSIF mappings: -50 cm);
a depth below that is rejected as a negative depth.  The default for a new mapping is 0 cm (any negative
depth rejected).  A layer whose bottom is not below its top (inverted or zero thickness) is always rejected.
Keeping the organic layers and dropping the inverted ones is what reproduces the screening counts documented
with the data (ISIS 646 profiles / 3,804 layers, AfSP 8,830 / 37,358); rejecting every negative depth would
give 646 / 3,798 and 8,829.

Other readers
-------------
* :func:`read_ncscd_pedons` - the NCSCD pedon table (Hugelius et al. 2013): SOC *stocks* by depth interval ->
  layers carrying the interval-mean SOC density (g C m-3).
* :func:`read_bd_oc_layers` - the global BD/OC layer table used to fit the pedo-transfer function.
* :func:`read_covariate_grid` - the African 20-km covariate grid, with nearest-cell lookup for sites.
* :func:`read_cesm2_fields`, :func:`read_cesm2_forcing` - CESM2/CLM5 monthly history netCDF -> per-site fields
  / :class:`~prodampi.soil.forcing.Forcing`, by nearest-cell lookup (``compas.md`` §3);
  :func:`write_cesm2_history` writes such a file (tests, synthetic forcing).
"""

from __future__ import annotations

import csv
import gzip
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputDataError
from ..soil.forcing import Forcing
from ..soil.layers import N_LAYERS

logger = logging.getLogger(__name__)

__all__ = [
    "AFSP_MAPPING",
    "AFGRID20_MAPPING",
    "CESM2_VARIABLES",
    "ISIS_MAPPING",
    "LAYER_COLUMNS",
    "NCSCD_MAPPING",
    "WOSIS_BD_OC_MAPPING",
    "BdOcLayers",
    "CovariateGrid",
    "ProfileTable",
    "ReaderError",
    "Rejection",
    "nearest_cell_indices",
    "nearest_on_sphere",
    "read_afsp",
    "read_bd_oc_layers",
    "read_cesm2_fields",
    "read_cesm2_forcing",
    "read_covariate_grid",
    "read_isis",
    "read_ncscd_pedons",
    "read_profile_table",
    "sphere_tree",
    "write_cesm2_history",
]


# ====================================================================================== errors and rejections
class ReaderError(InputDataError):
    """A file is missing or unreadable, or lacks a required column/variable/dimension (message names both)."""


@dataclass(frozen=True)
class Rejection:
    """One bad value found by a reader.

    Attributes
    ----------
    file : str
        The file it was found in.
    row : int
        1-based line number in the (decompressed) text file; the header is row 1.  For netCDF: 0.
    column : str or None
        The source column (as spelled in the file) holding the bad value; None when the whole row is bad
        (e.g. wrong number of fields).
    value : str
        The offending text as read.
    reason : str
        Why it was rejected.
    profile_id : str or None
        The profile (site) the row belongs to, when known.
    scope : str
        ``"row"``: the whole row was dropped; ``"value"``: only this value was dropped (set to NaN).
    """

    file: str
    row: int
    column: str | None
    value: str
    reason: str
    profile_id: str | None = None
    scope: str = "row"

    def message(self) -> str:
        """Human-readable one-line description naming file, row and column."""
        col = f", column {self.column!r}" if self.column is not None else ""
        what = "row dropped" if self.scope == "row" else "value dropped"
        return f"{self.file}, row {self.row}{col}: {self.reason} (value {self.value!r}; {what})"

    def __str__(self) -> str:
        return self.message()


# ====================================================================================== canonical columns
@dataclass(frozen=True)
class ColumnSpec:
    """Unit and valid range of a canonical numeric column (range in canonical units, closed unless noted)."""

    unit: str
    lo: float
    hi: float
    lo_open: bool = False


#: Canonical numeric columns of profile/layer tables: unit and accepted range (depth ranges come from the
#: mapping's ``min_depth_cm``/``max_depth_cm``).
LAYER_COLUMNS: dict[str, ColumnSpec] = {
    "lat": ColumnSpec("degrees_north", -90.0, 90.0),
    "lon": ColumnSpec("degrees_east", -180.0, 180.0),
    "top_cm": ColumnSpec("cm", -math.inf, math.inf),
    "bottom_cm": ColumnSpec("cm", -math.inf, math.inf),
    "depth_cm": ColumnSpec("cm", -math.inf, math.inf),
    "soc_g_per_kg": ColumnSpec("g C kg-1", 0.0, 1000.0),
    "bd_g_cm3": ColumnSpec("g cm-3", 0.0, 3.0, lo_open=True),
    "coarse_pct": ColumnSpec("% vol", 0.0, 100.0),
    "sand_pct": ColumnSpec("% weight", 0.0, 100.0),
    "silt_pct": ColumnSpec("% weight", 0.0, 100.0),
    "clay_pct": ColumnSpec("% weight", 0.0, 100.0),
    "ph_h2o": ColumnSpec("pH", 0.0, 14.0),
    "cec_cmol_per_kg": ColumnSpec("cmol(+) kg-1", 0.0, 1000.0),
    "basal_depth_cm": ColumnSpec("cm", 0.0, 1.0e4),
    "thaw_depth_cm": ColumnSpec("cm", 0.0, 1.0e4),
}

#: Numeric layer columns every :class:`ProfileTable` carries (NaN where the source has no such column).
PROFILE_LAYER_COLUMNS: tuple[str, ...] = (
    "top_cm", "bottom_cm", "soc_g_per_kg", "bd_g_cm3", "coarse_pct", "sand_pct", "silt_pct", "clay_pct",
    "ph_h2o", "cec_cmol_per_kg", "soc_density_g_m3",
)

_MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})

# ====================================================================================== source mappings
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

#: ISRIC ISIS reference profiles as packaged in GSIF (``gsif_isis_global_profiles``).  ORCDRC g/kg, BLD
#: g/cm3, CRFVOL volume %, depths cm (organic horizons above the mineral surface negative).
ISIS_MAPPING: dict[str, Any] = {
    "name": "isis",
    "sites": {
        "file": "isis_sites.csv",
        "columns": {"profile_id": "SOURCEID", "lon": "LONWGS84", "lat": "LATWGS84"},
    },
    "horizons": {"file": "isis_horizons.csv", "columns": dict(_GSIF_HORIZON_COLUMNS)},
    "factors": {},  # source unit -> canonical unit multipliers (none needed: BLD already g/cm3)
    "min_depth_cm": -50.0,
    "max_depth_cm": 1.0e4,
}

#: Africa Soil Profiles + AfSIS as packaged in GSIF (``gsif_afsp_africa_profiles``); same codes and units.
AFSP_MAPPING: dict[str, Any] = {
    "name": "afsp",
    "sites": {
        "file": "afsp_sites.csv.gz",
        "columns": {"profile_id": "SOURCEID", "lon": "LONWGS84", "lat": "LATWGS84"},
    },
    "horizons": {"file": "afsp_horizons.csv.gz", "columns": dict(_GSIF_HORIZON_COLUMNS)},
    "factors": {},
    "min_depth_cm": -50.0,
    "max_depth_cm": 1.0e4,
}

#: Global BD/OC layer table of the GSIF soil-carbon tutorial (``wosis_bd_oc_layers``): BLD in **kg m-3**
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

#: African 20-km covariate grid (``afgrid20_africa_covariates``): coordinate columns, and per covariate its
#: unit; categorical (text) covariates are coded as integers 0..n-1 in sorted order of their labels.
AFGRID20_MAPPING: dict[str, Any] = {
    "name": "afgrid20",
    "file": "afgrid20_covariates_20km.csv.gz",
    "coordinates": {"lat": "lat", "lon": "lon", "x_laea_m": "x_laea", "y_laea_m": "y_laea"},
    "units": {
        "SMKMOD0x": "1 (soil mask)",
        "DEMSRE0a": "m",
        "EVMMOD0a": "EVI x 10000",
        "EVSMOD0a": "EVI x 10000",
        **{f"G{i:02d}ESA0a": "%" for i in range(1, 23)},
        "IFLGRE0a": "1 (0/1)",
        "L3POBI0a": "category code",
        "LMTGSH0a": "category code",
        "PREGSM0a": "mm yr-1",
        "SLPSRT0a": "unknown (WorldGrids slope)",
        "TDHMOD0a": "degC",
        "TDMMOD0a": "degC",
        "TDSMOD0a": "degC",
        "TNMMOD0a": "degC",
        "TNSMOD0a": "degC",
        "TWISRE0x": "1 (index)",
        "SGEUSG0x": "category code",
    },
    "categorical": ("L3POBI0a", "SGEUSG0x"),
}


# ====================================================================================== low-level CSV helpers
def _open_text(path: Path, encoding: str) -> Any:
    """Open a (possibly gzip-compressed) text file; undecodable bytes become U+FFFD (then fail parsing)."""
    if not path.is_file():
        raise ReaderError(f"{path}: file not found")
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding=encoding, errors="replace", newline="")
    return open(path, encoding=encoding, errors="replace", newline="")  # noqa: SIM115


def _iter_csv(
    path: Path, wanted: Mapping[str, str], *, encoding: str = "utf-8", delimiter: str = ",",
    rejections: list[Rejection], id_key: str | None = "profile_id",
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(row, {canonical: raw text})`` for each data row of a delimited text file.

    ``wanted`` maps canonical names to source column names (matched after stripping whitespace).  A missing
    column raises :class:`ReaderError`; a row with the wrong number of fields or a csv parse error becomes a
    row-scope :class:`Rejection`.
    """
    try:
        fh = _open_text(path, encoding)
    except OSError as exc:
        raise ReaderError(f"{path}: cannot open ({exc})") from exc
    with fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise ReaderError(f"{path}: file is empty (no header row)") from None
        except (csv.Error, OSError, EOFError) as exc:
            raise ReaderError(f"{path}: cannot read header ({exc})") from exc
        names = [h.strip().lstrip("\ufeff") for h in header]
        index: dict[str, int] = {}
        for canon, src in wanted.items():
            s = src.strip()
            if s not in names:
                raise ReaderError(
                    f"{path}: required column {s!r} (for {canon}) not found; columns are {names}")
            index[canon] = names.index(s)
        ncol = len(names)
        id_col = index.get(id_key) if id_key else None
        while True:
            start = reader.line_num + 1  # first line of the next record
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                rejections.append(Rejection(str(path), start, None, "", f"unparsable row: {exc}"))
                continue
            except (OSError, EOFError) as exc:  # e.g. truncated gzip stream
                raise ReaderError(f"{path}: read error after row {reader.line_num} ({exc})") from exc
            line, end = start, reader.line_num
            if not any(f.strip() for f in row):
                continue
            if len(row) != ncol:
                pid = row[id_col].strip() if id_col is not None and id_col < len(row) else None
                span = f" (one record spans rows {line}-{end}: unbalanced quote?)" if end > line else ""
                rejections.append(Rejection(
                    str(path), line, None, delimiter.join(row)[:80],
                    f"row has {len(row)} fields, header has {ncol}{span}", profile_id=pid or None))
                continue
            yield line, {canon: row[i] for canon, i in index.items()}


def _parse_number(text: str) -> tuple[float, str | None]:
    """Parse a numeric field: (value, None) on success, (nan, None) when missing, (nan, reason) when bad."""
    s = text.strip()
    if s.lower() in _MISSING_TOKENS:
        return math.nan, None
    try:
        v = float(s)
    except ValueError:
        return math.nan, "text in numeric column"
    if math.isnan(v):
        return math.nan, None
    if not math.isfinite(v):
        return math.nan, "non-finite value"
    return v, None


def _range_reason(v: float, spec: ColumnSpec, lo: float | None = None, hi: float | None = None) -> str | None:
    lo = spec.lo if lo is None else lo
    hi = spec.hi if hi is None else hi
    if (v <= lo if spec.lo_open else v < lo) or v > hi:
        return f"value {v:g} outside {'(' if spec.lo_open else '['}{lo:g}, {hi:g}] {spec.unit}"
    return None


@dataclass
class _RowParser:
    """Parses the raw fields of one row into canonical floats, recording rejections."""

    file: str
    columns: Mapping[str, str]
    factors: Mapping[str, float]
    required: frozenset[str]
    row_critical: frozenset[str]
    rejections: list[Rejection]
    limits: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def parse(self, line: int, raw: Mapping[str, str], pid: str | None) -> dict[str, float] | None:
        """Return canonical values, or None when the row is rejected (the rejections are recorded)."""
        out: dict[str, float] = {}
        pending: list[Rejection] = []
        bad_row = False
        for canon, text in raw.items():
            if canon in ("profile_id", "name"):
                continue
            src = self.columns[canon]
            v, why = _parse_number(text)
            if why is None and math.isnan(v) and canon in self.required:
                why = "missing value in required column"
            if why is None and not math.isnan(v):
                v *= self.factors.get(canon, 1.0)
                spec = LAYER_COLUMNS.get(canon)
                if spec is not None:
                    lo, hi = self.limits.get(canon, (spec.lo, spec.hi))
                    why = _range_reason(v, spec, lo, hi)
                    if why is not None and canon in ("top_cm", "bottom_cm", "depth_cm") and v < lo:
                        why = f"negative depth {v:g} cm below the allowed minimum {lo:g} cm"
            if why is not None:
                row_scope = canon in self.row_critical or canon in self.required
                bad_row |= row_scope
                scope = "row" if row_scope else "value"
                pending.append(Rejection(self.file, line, src, text, why, pid, scope))
                v = math.nan
            out[canon] = v
        if bad_row:  # report every bad value of a dropped row, all with row scope
            self.rejections.extend(Rejection(r.file, r.row, r.column, r.value, r.reason, r.profile_id, "row")
                                   for r in pending)
            return None
        self.rejections.extend(pending)
        return out


# ====================================================================================== profile tables
@dataclass
class ProfileTable:
    """Profiles (sites) and their layers as read from a source, before screening.

    Layers are grouped by profile (``layer_profile`` is non-decreasing) and keep their file order inside a
    profile.  ``layers[c]`` holds canonical column ``c`` (see :data:`PROFILE_LAYER_COLUMNS` and the module
    docstring for units; NaN where the source lacks the column or the value).

    Attributes
    ----------
    source : str
        Mapping name (``"isis"``, ``"afsp"``, ``"ncscd"`` ...).
    files : tuple of str
        Files read.
    profile_id : ndarray of str, (P,)
        Profile ids of the profiles whose site row loaded.
    lat, lon : ndarray of float, (P,)
        Site latitude / longitude, degrees north / east (WGS84).
    layer_profile : ndarray of int64, (L,)
        Index into the profile arrays for each layer.
    layers : dict of str to ndarray of float, (L,)
        Canonical layer columns.
    layer_row : ndarray of int64, (L,)
        Source row (line number) of each layer.
    profile_row : ndarray of int64, (P,)
        Source row (line number in the sites/pedon file) of each profile.
    rejections : list of Rejection
        Every bad value met, in file order.
    input_profile_ids : list of str
        Every distinct profile id met in any input row (loaded or rejected), in first-seen order; the
        screening ledger must account for each of them.
    profile_extra : dict of str to ndarray, (P,)
        Source-specific per-profile columns (e.g. NCSCD ``basal_depth_cm``).
    layer_flags : dict of str to ndarray of bool, (L,)
        Source-specific per-layer flags (e.g. NCSCD ``below_basal_depth``).
    not_loaded : dict of str to str
        For every id of ``input_profile_ids`` that is not a loaded profile: ``"code: detail"`` saying why
        (``site_rejected`` - its site row was dropped, ``no_site`` - only horizon rows name it).
    """

    source: str
    files: tuple[str, ...]
    profile_id: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    layer_profile: np.ndarray
    layers: dict[str, np.ndarray]
    layer_row: np.ndarray
    rejections: list[Rejection]
    input_profile_ids: list[str]
    profile_row: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    profile_extra: dict[str, np.ndarray] = field(default_factory=dict)
    layer_flags: dict[str, np.ndarray] = field(default_factory=dict)
    not_loaded: dict[str, str] = field(default_factory=dict)

    @property
    def n_profiles(self) -> int:
        """Number of profiles with a loaded site row."""
        return int(self.profile_id.shape[0])

    @property
    def n_layers(self) -> int:
        """Number of loaded layers."""
        return int(self.layer_profile.shape[0])

    @property
    def offsets(self) -> np.ndarray:
        """(P+1,) int64: layers of profile ``i`` are ``offsets[i]:offsets[i+1]``."""
        return np.searchsorted(self.layer_profile, np.arange(self.n_profiles + 1)).astype(np.int64)

    @property
    def node_depth_cm(self) -> np.ndarray:
        """(L,) layer node depth ``(top + bottom) / 2``, cm."""
        return (self.layers["top_cm"] + self.layers["bottom_cm"]) / 2.0

    @property
    def layer_profile_id(self) -> np.ndarray:
        """(L,) profile id of each layer."""
        return self.profile_id[self.layer_profile]

    def rejections_by_profile(self) -> dict[str, list[Rejection]]:
        """Rejections grouped by the profile id of their row (rows without a readable id are left out)."""
        out: dict[str, list[Rejection]] = {}
        for r in self.rejections:
            if r.profile_id:
                out.setdefault(r.profile_id, []).append(r)
        return out


def _build_table(
    source: str, files: tuple[str, ...], site_ids: list[str], site_lat: list[float], site_lon: list[float],
    site_rows: list[int], layer_pidx: list[int], layer_vals: list[dict[str, float]], layer_rows: list[int],
    rejections: list[Rejection], input_ids: list[str],
    profile_extra: dict[str, np.ndarray] | None = None, layer_flags: dict[str, list[bool]] | None = None,
) -> ProfileTable:
    loaded = set(site_ids)
    by_pid: dict[str, list[Rejection]] = {}
    for r in rejections:
        if r.profile_id and r.profile_id not in loaded:
            by_pid.setdefault(r.profile_id, []).append(r)
    not_loaded: dict[str, str] = {}
    for pid in input_ids:
        if pid in loaded:
            continue
        rj = by_pid.get(pid, [])
        site = [r for r in rj if r.file == files[0]]
        if site:
            not_loaded[pid] = "site_rejected: " + " | ".join(r.message() for r in site)
        elif len(files) > 1:
            not_loaded[pid] = f"no_site: profile id has no row in {files[0]}"
        else:
            not_loaded[pid] = "site_rejected: " + (" | ".join(r.message() for r in rj) or "not loaded")
    order = np.argsort(np.asarray(layer_pidx, dtype=np.int64), kind="stable")
    layers = {c: np.array([v.get(c, math.nan) for v in layer_vals], dtype=np.float64)[order]
              if layer_vals else np.zeros(0) for c in PROFILE_LAYER_COLUMNS}
    flags = {k: np.asarray(v, dtype=bool)[order] for k, v in (layer_flags or {}).items()}
    return ProfileTable(
        source=source, files=files,
        profile_id=np.array(site_ids, dtype=str) if site_ids else np.zeros(0, dtype="<U1"),
        lat=np.array(site_lat, dtype=np.float64), lon=np.array(site_lon, dtype=np.float64),
        layer_profile=np.asarray(layer_pidx, dtype=np.int64)[order],
        layers=layers, layer_row=np.asarray(layer_rows, dtype=np.int64)[order],
        rejections=rejections, input_profile_ids=input_ids,
        profile_row=np.asarray(site_rows, dtype=np.int64), profile_extra=profile_extra or {},
        layer_flags=flags, not_loaded=not_loaded,
    )


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
        pid = raw["profile_id"].strip()
        if not pid:
            rejections.append(Rejection(str(sites_path), line, smap["columns"]["profile_id"],
                                        raw["profile_id"], "missing value in required column"))
            continue
        input_ids.setdefault(pid)
        if pid in first_row:
            rejections.append(Rejection(str(sites_path), line, smap["columns"]["profile_id"], pid,
                                        f"duplicate profile id (first at row {first_row[pid]})", pid))
            continue
        first_row[pid] = line
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
        pid = raw["profile_id"].strip()
        if not pid:
            rejections.append(Rejection(str(hor_path), line, hcols["profile_id"], raw["profile_id"],
                                        "missing value in required column"))
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


# ====================================================================================== NCSCD pedons
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
        pid = raw["profile_id"].strip()
        if not pid:
            rejections.append(Rejection(str(path), line, cols["profile_id"], raw["profile_id"],
                                        "missing value in required column"))
            continue
        input_ids.setdefault(pid)
        if pid in first_row:
            rejections.append(Rejection(str(path), line, cols["profile_id"], pid,
                                        f"duplicate profile id (first at row {first_row[pid]})", pid))
            continue
        first_row[pid] = line
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


# ====================================================================================== BD/OC layer table
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
        pid = raw["profile_id"].strip()
        if not pid:
            rejections.append(Rejection(str(path), line, cols["profile_id"], raw["profile_id"],
                                        "missing value in required column"))
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


# ====================================================================================== covariate grid
@dataclass
class CovariateGrid:
    """Covariates on grid cells, with nearest-cell lookup.

    Attributes
    ----------
    lat, lon : ndarray, (N,)
        Cell-centre latitude / longitude, degrees (WGS84).
    x_laea_m, y_laea_m : ndarray, (N,)
        Cell-centre projected coordinates, m (NaN when the source has none).
    values : ndarray, (N, K)
        Covariates (NaN where missing or rejected); categorical ones as integer codes (float).
    names, units : tuple of str, (K,)
    categories : dict of str to tuple of str
        For a categorical covariate, ``categories[name][code]`` is the label.
    rejections : list of Rejection
    """

    lat: np.ndarray
    lon: np.ndarray
    x_laea_m: np.ndarray
    y_laea_m: np.ndarray
    values: np.ndarray
    names: tuple[str, ...]
    units: tuple[str, ...]
    categories: dict[str, tuple[str, ...]]
    rejections: list[Rejection]
    _tree: Any = field(default=None, repr=False, compare=False)

    @property
    def n_cells(self) -> int:
        """Number of cells."""
        return int(self.lat.shape[0])

    def nearest(self, lat: np.ndarray, lon: np.ndarray,
                max_distance_km: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Nearest cell (great-circle distance on a sphere of radius 6371 km) for each site.

        Parameters
        ----------
        lat, lon : array_like, (S,)
            Site coordinates, degrees.
        max_distance_km : float, optional
            Sites farther than this from every cell centre get index -1.

        Returns
        -------
        index : ndarray of int64, (S,)
            Cell index, or -1 (no cell within ``max_distance_km``, or non-finite site coordinates).
        distance_km : ndarray, (S,)
            Great-circle distance to that cell centre, km (NaN for non-finite coordinates).
        """
        if self._tree is None:
            self._tree = sphere_tree(self.lat, self.lon)
        idx, dist = nearest_on_sphere(self._tree, lat, lon)
        if max_distance_km is not None:
            idx[~(dist <= max_distance_km)] = -1
        return idx, dist

    def at_sites(self, lat: np.ndarray, lon: np.ndarray, max_distance_km: float | None = None) -> np.ndarray:
        """(S, K) covariates of the nearest cell of each site (NaN rows where no cell qualifies)."""
        idx, _ = self.nearest(lat, lon, max_distance_km)
        out = np.full((idx.shape[0], len(self.names)), np.nan)
        good = idx >= 0
        out[good] = self.values[idx[good]]
        return out


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def sphere_tree(cell_lat: np.ndarray, cell_lon: np.ndarray) -> Any:
    """k-d tree of cell centres (degrees) as unit vectors, for :func:`nearest_on_sphere`."""
    from scipy.spatial import cKDTree

    return cKDTree(_unit_vectors(np.asarray(cell_lat, dtype=np.float64), np.asarray(cell_lon, dtype=np.float64)))


def nearest_on_sphere(tree: Any, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest cell of ``tree`` (great circle, sphere of radius 6371 km) for each site (degrees).

    Returns (index (S,) int64, -1 for non-finite coordinates; distance (S,) km, NaN there).
    """
    lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    ok = np.isfinite(lat) & np.isfinite(lon)
    idx = np.full(lat.shape, -1, dtype=np.int64)
    dist = np.full(lat.shape, np.nan)
    if ok.any():
        chord, j = tree.query(_unit_vectors(lat[ok], lon[ok]))
        idx[ok] = j
        dist[ok] = 2.0 * 6371.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))
    return idx, dist


def read_covariate_grid(path: str | Path, mapping: Mapping[str, Any] = AFGRID20_MAPPING) -> CovariateGrid:
    """Read a covariate grid table (default: the African 20-km grid).

    Parameters
    ----------
    path : path
        The ``.csv(.gz)`` file or the folder holding ``mapping["file"]``.
    mapping : dict
        See :data:`AFGRID20_MAPPING`: ``coordinates`` (lat/lon required, x/y optional), ``units`` (every
        other column is a covariate; a column without a declared unit gets ``"unknown"``), ``categorical``.

    Returns
    -------
    CovariateGrid

    Notes
    -----
    A bad or out-of-range latitude/longitude, or a repeated (lat, lon) cell centre, drops the row; a bad
    covariate value (text in a numeric column, non-finite) is dropped to NaN (value scope).
    """
    path = Path(path)
    if path.is_dir():
        path = path / mapping["file"]
    coords = dict(mapping["coordinates"])
    units_map = dict(mapping.get("units", {}))
    categorical = set(mapping.get("categorical", ()))
    with _open_text(path, "utf-8") as fh:
        try:
            header = [h.strip() for h in next(csv.reader(fh))]
        except (StopIteration, csv.Error, OSError, EOFError) as exc:
            raise ReaderError(f"{path}: cannot read header ({exc})") from exc
    for canon in ("lat", "lon"):
        if canon not in coords:
            raise ReaderError(f"{path}: mapping names no column for {canon}")
    coord_src = set(coords.values())
    names = tuple(h for h in header if h and h not in coord_src)
    wanted = {**coords, **{f"cov:{n}": n for n in names}}
    rejections: list[Rejection] = []
    parser = _RowParser(str(path), coords, {}, frozenset({"lat", "lon"}), frozenset({"lat", "lon"}),
                        rejections)
    rows: list[tuple[int, dict[str, float], dict[str, str]]] = []
    seen: dict[tuple[float, float], int] = {}
    for line, raw in _iter_csv(path, wanted, rejections=rejections, id_key=None):
        craw = {k: raw[k] for k in coords}
        vals = parser.parse(line, craw, None)
        if vals is None:
            continue
        key = (vals["lat"], vals["lon"])
        if key in seen:
            rejections.append(Rejection(str(path), line, coords["lat"], raw["lat"],
                                        f"duplicate cell centre (first at row {seen[key]})"))
            continue
        seen[key] = line
        rows.append((line, vals, {n: raw[f"cov:{n}"] for n in names}))
    cats: dict[str, tuple[str, ...]] = {}
    for n in names:
        if n in categorical:
            labels = sorted({r[2][n].strip() for r in rows} - {""})
            cats[n] = tuple(labels)
    values = np.full((len(rows), len(names)), np.nan)
    for k, n in enumerate(names):
        texts = [r[2][n].strip() for r in rows]
        if n in cats:
            code = {lab: float(c) for c, lab in enumerate(cats[n])}
            values[:, k] = [code.get(t, np.nan) for t in texts]
            continue
        try:  # fast path: a clean numeric column
            col = np.array([t if t else "nan" for t in texts], dtype=np.float64)
            if np.all(np.isfinite(col) | np.isnan(col)):
                values[:, k] = col
                continue
        except ValueError:
            pass
        for i, text in enumerate(texts):  # slow path: find and report the bad values
            v, why = _parse_number(text)
            if why is not None:
                rejections.append(Rejection(str(path), rows[i][0], n, text, why, None, "value"))
            values[i, k] = v
    lat = np.array([r[1]["lat"] for r in rows], dtype=np.float64)
    lon = np.array([r[1]["lon"] for r in rows], dtype=np.float64)
    x = np.array([r[1].get("x_laea_m", math.nan) for r in rows], dtype=np.float64)
    y = np.array([r[1].get("y_laea_m", math.nan) for r in rows], dtype=np.float64)
    units = tuple(units_map.get(n, "unknown") for n in names)
    logger.info("%s: %d cells x %d covariates; %d rejections", path.name, len(rows), len(names),
                len(rejections))
    return CovariateGrid(lat, lon, x, y, values, names, units, cats, rejections)


# ====================================================================================== CESM2 / CLM5 history
_DIMLESS = frozenset({"", "1", "-", "unitless", "none", "proportion", "fraction", "dimensionless"})
_LEVEL_DIMS = ("levgrnd", "levdcmp", "levsoi")
_TIME_DIMS = ("time", "month")

#: CESM2 variable -> (kind, Forcing.from_proda_fields keyword, accepted units -> (scale, offset)).
#: kind: "level" (time, level, lat, lon), "surface" (time, lat, lon), "index" ((time,) lat, lon).
#: ``None`` for units: any units attribute is accepted (the ACC_VECTOR unit is undocumented, clm5.md §3.2).
CESM2_VARIABLES: dict[str, tuple[str, str, dict[str, tuple[float, float]] | None]] = {
    "TSOI": ("level", "tsoi", {"K": (1.0, 0.0), "degC": (1.0, 273.15), "C": (1.0, 273.15)}),
    "W_SCALAR": ("level", "w_scalar", {u: (1.0, 0.0) for u in _DIMLESS}),
    "O_SCALAR": ("level", "o_scalar", {u: (1.0, 0.0) for u in _DIMLESS}),
    "FPI_vr": ("level", "fpi_vr", {u: (1.0, 0.0) for u in _DIMLESS}),
    "ALTMAX": ("surface", "altmax", {"m": (1.0, 0.0), "cm": (0.01, 0.0)}),
    "ALTMAX_LASTYEAR": ("surface", "altmax_lastyear", {"m": (1.0, 0.0), "cm": (0.01, 0.0)}),
    "nbedrock": ("index", "nbedrock", {u: (1.0, 0.0) for u in _DIMLESS | {"index"}}),
    "CWD_INPUT_ACC_VECTOR": ("level", "cwd_input_acc_vector", None),
    "LITR1_INPUT_ACC_VECTOR": ("level", "litr1_input_acc_vector", None),
    "LITR2_INPUT_ACC_VECTOR": ("level", "litr2_input_acc_vector", None),
    "LITR3_INPUT_ACC_VECTOR": ("level", "litr3_input_acc_vector", None),
}

#: Units attribute written by :func:`write_cesm2_history`.
CESM2_WRITE_UNITS: dict[str, str] = {
    "TSOI": "K", "W_SCALAR": "unitless", "O_SCALAR": "unitless", "FPI_vr": "proportion",
    "ALTMAX": "m", "ALTMAX_LASTYEAR": "m", "nbedrock": "index",
    "CWD_INPUT_ACC_VECTOR": "gC/m^3/month", "LITR1_INPUT_ACC_VECTOR": "gC/m^3/month",
    "LITR2_INPUT_ACC_VECTOR": "gC/m^3/month", "LITR3_INPUT_ACC_VECTOR": "gC/m^3/month",
}
_WRITE_LEVEL_DIM = {"TSOI": "levgrnd"}  # others on levdcmp, as in CLM5 history files


def nearest_cell_indices(grid_lat: np.ndarray, grid_lon: np.ndarray, lat: np.ndarray,
                         lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest grid cell per site, latitude and longitude searched independently (``compas.md`` §3).

    Parameters
    ----------
    grid_lat, grid_lon : array_like
        1-D cell-centre coordinates, degrees (either order; longitudes may be -180..180 or 0..360).
    lat, lon : array_like, (S,)
        Site coordinates, degrees.

    Returns
    -------
    ilat, ilon : ndarray of int64, (S,)
        Index of the closest latitude and of the closest longitude (longitude distance taken around the
        circle); on a tie the first (lowest) index.  Non-finite site coordinates give -1.
    """
    glat = np.asarray(grid_lat, dtype=np.float64).ravel()
    glon = np.asarray(grid_lon, dtype=np.float64).ravel()
    lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    ilat = np.zeros(lat.shape, dtype=np.int64)
    ilon = np.zeros(lon.shape, dtype=np.int64)
    for a in range(0, lat.size, 4096):  # bounded memory for many sites
        b = slice(a, a + 4096)
        ilat[b] = np.argmin(np.abs(lat[b, None] - glat[None, :]), axis=1)
        ilon[b] = np.argmin(np.abs(np.mod(lon[b, None] - glon[None, :] + 180.0, 360.0) - 180.0), axis=1)
    bad = ~(np.isfinite(lat) & np.isfinite(lon))
    ilat[bad] = -1
    ilon[bad] = -1
    return ilat, ilon


def _open_nc(path: Path) -> Any:
    try:
        import netCDF4
    except ImportError as exc:  # pragma: no cover - environment problem
        raise ReaderError(f"{path}: reading netCDF needs the netCDF4 package") from exc
    if not path.is_file():
        raise ReaderError(f"{path}: file not found")
    try:
        return netCDF4.Dataset(str(path), "r")
    except OSError as exc:
        raise ReaderError(f"{path}: not a readable netCDF file ({exc})") from exc


def _coord(ds: Any, path: Path, name: str) -> np.ndarray:
    if name not in ds.variables:
        raise ReaderError(f"{path}: coordinate variable {name!r} not found")
    return np.ma.filled(np.ma.asarray(ds.variables[name][:], dtype=np.float64), np.nan).ravel()


def read_cesm2_fields(paths: str | Path | Sequence[str | Path], lat: np.ndarray,
                      lon: np.ndarray) -> dict[str, np.ndarray]:
    """Per-site CESM2/CLM5 forcing fields from monthly history netCDF file(s), by nearest cell.

    Parameters
    ----------
    paths : path or sequence of paths
        One history file holding all variables of :data:`CESM2_VARIABLES`, or several (e.g. one per
        variable, as the authors stored them); each variable is taken from the first file that has it.
    lat, lon : array_like, (S,)
        Site coordinates, degrees.

    Returns
    -------
    dict
        Keyword arguments for :meth:`Forcing.from_proda_fields`: level fields (S, 20, 12) [layer, month],
        ``altmax``/``altmax_lastyear`` (S, 12) in m, ``nbedrock`` (S,) or (S, 12); TSOI in K.  Fill values
        become NaN.

    Raises
    ------
    ReaderError
        A file is missing; a variable is in none of the files; a variable lacks a required dimension (time
        of length 12; levgrnd/levdcmp with at least 20 levels, of which the first 20 are used; lat; lon); a
        units attribute is not one accepted for that variable; the lat/lon coordinates differ between files.
    """
    plist = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not plist:
        raise ReaderError("no CESM2 history file given")
    lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    datasets = [(p, _open_nc(p)) for p in plist]
    try:
        out: dict[str, np.ndarray] = {}
        grid: tuple[np.ndarray, np.ndarray] | None = None
        cells: tuple[np.ndarray, np.ndarray] | None = None
        for var, (kind, kw, units) in CESM2_VARIABLES.items():
            found = [(p, ds) for p, ds in datasets if var in ds.variables]
            if not found:
                raise ReaderError(
                    f"{', '.join(map(str, plist))}: variable {var!r} not found (needed for the forcing)")
            path, ds = found[0]
            glat, glon = _coord(ds, path, "lat"), _coord(ds, path, "lon")
            if grid is None:
                grid = (glat, glon)
                cells = nearest_cell_indices(glat, glon, lat, lon)
            elif glat.shape != grid[0].shape or glon.shape != grid[1].shape or not (
                    np.allclose(glat, grid[0]) and np.allclose(glon, grid[1])):
                raise ReaderError(f"{path}: variable {var!r} is on a different lat/lon grid than the others")
            assert cells is not None
            out[kw] = _extract(ds, path, var, kind, units, cells)
        return out
    finally:
        for _p, ds in datasets:
            ds.close()


def _extract(ds: Any, path: Path, var: str, kind: str, units: dict[str, tuple[float, float]] | None,
             cells: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    v = ds.variables[var]
    dims = tuple(v.dimensions)

    def find(cands: Sequence[str], what: str, required: bool = True) -> str | None:
        hit = [d for d in dims if d in cands]
        if not hit:
            if required:
                raise ReaderError(f"{path}: variable {var!r} has dimensions {dims}, lacks a {what} dimension "
                                  f"(one of {tuple(cands)})")
            return None
        return hit[0]

    tdim = find(_TIME_DIMS, "time", required=(kind != "index"))
    ldim = find(_LEVEL_DIMS, "level") if kind == "level" else None
    ydim, xdim = find(("lat",), "lat"), find(("lon",), "lon")
    used = [d for d in (tdim, ldim, ydim, xdim) if d is not None]
    extra = [d for d in dims if d not in used]
    if extra:
        raise ReaderError(f"{path}: variable {var!r} has unexpected dimension(s) {extra} (dimensions {dims})")
    if tdim is not None and ds.dimensions[tdim].size != 12:
        raise ReaderError(f"{path}: variable {var!r}: dimension {tdim!r} has length "
                          f"{ds.dimensions[tdim].size}, expected 12 (monthly climatology)")
    if ldim is not None and ds.dimensions[ldim].size < N_LAYERS:
        raise ReaderError(f"{path}: variable {var!r}: dimension {ldim!r} has {ds.dimensions[ldim].size} "
                          f"levels, need at least {N_LAYERS}")
    scale, offset = 1.0, 0.0
    u = getattr(v, "units", None)
    if u is not None and units is not None:
        key = str(u).strip()
        if key not in units:
            raise ReaderError(f"{path}: variable {var!r} has units {key!r}, expected one of "
                              f"{sorted(k for k in units if k)}")
        scale, offset = units[key]
    ilat, ilon = cells
    s = ilat.shape[0]
    tshape = [12] if tdim is not None else []
    lshape = [N_LAYERS] if ldim is not None else []
    res = np.full((s, *tshape, *lshape), np.nan)
    good = ilat >= 0
    for j in np.unique(ilat[good]):
        sel = np.flatnonzero(good & (ilat == j))
        index: list[Any] = []
        for d in dims:
            if d == ydim:
                index.append(int(j))
            elif d == ldim:
                index.append(slice(0, N_LAYERS))
            else:
                index.append(slice(None))
        block = np.ma.filled(np.ma.asarray(v[tuple(index)], dtype=np.float64), np.nan)
        # block dims = dims without ydim; move to (time?, level?, lon)
        rem = [d for d in dims if d != ydim]
        block = np.transpose(block, [rem.index(d) for d in used if d != ydim])
        res[sel] = np.moveaxis(block[..., ilon[sel]], -1, 0)
    res = res * scale + offset
    if kind == "level":
        res = np.swapaxes(res, 1, 2)  # (S, 12, 20) -> (S, 20, 12)
    return res


def read_cesm2_forcing(paths: str | Path | Sequence[str | Path], lat: np.ndarray, lon: np.ndarray) -> Forcing:
    """:class:`~prodampi.soil.forcing.Forcing` at sites from CESM2/CLM5 history file(s) (nearest cell).

    See :func:`read_cesm2_fields`; the ACC_VECTOR fields become annual column inputs via
    :meth:`Forcing.from_proda_fields` (sum over 20 levels of value x dz, summed over 12 months).
    """
    return Forcing.from_proda_fields(**read_cesm2_fields(paths, lat, lon))


def write_cesm2_history(path: str | Path, lat: np.ndarray, lon: np.ndarray, fields: Mapping[str, np.ndarray],
                        *, units: Mapping[str, str] | None = None, fill_value: float = 1.0e36,
                        dtype: str = "f8") -> Path:
    """Write a CESM2/CLM5-style monthly history netCDF file.

    Parameters
    ----------
    path : path
        Output file (netCDF-4).
    lat, lon : array_like
        1-D cell-centre coordinates, degrees north / east.
    fields : dict
        CESM2 variable name -> array in CESM2 dimension order: level variables (12, nlev, nlat, nlon) with
        nlev >= 20 (all level variables must share nlev), ALTMAX/ALTMAX_LASTYEAR (12, nlat, nlon),
        ``nbedrock`` (nlat, nlon) or (12, nlat, nlon).  Any subset of :data:`CESM2_VARIABLES` may be written
        (tests write incomplete files on purpose).  NaN is written as the fill value.
    units : dict, optional
        Override of the units attribute per variable (default :data:`CESM2_WRITE_UNITS`).
    fill_value : float
        ``_FillValue`` of the data variables (CESM uses 1e36).
    dtype : str
        netCDF type of the data variables (``"f8"`` keeps values exact; CESM itself writes ``"f4"``).

    Returns
    -------
    Path
        The file written.
    """
    import netCDF4

    path = Path(path)
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    ulist = dict(CESM2_WRITE_UNITS)
    ulist.update(units or {})
    nlevs = {np.shape(a)[1] for k, a in fields.items() if CESM2_VARIABLES.get(k, ("",))[0] == "level"}
    if len(nlevs) > 1:
        raise ValueError(f"level variables have different level counts {sorted(nlevs)}")
    nlev = nlevs.pop() if nlevs else N_LAYERS
    with netCDF4.Dataset(str(path), "w", format="NETCDF4") as ds:
        ds.createDimension("time", 12)
        ds.createDimension("levgrnd", nlev)
        ds.createDimension("levdcmp", nlev)
        ds.createDimension("lat", lat.size)
        ds.createDimension("lon", lon.size)
        ds.title = "CESM2/CLM5-style monthly climatology (written by prodampi.io.readers.write_cesm2_history)"
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 0001-01-01 00:00:00"
        t.long_name = "month of the climatological year (mid-month)"
        t[:] = np.arange(12) * 365.0 / 12.0 + 15.0
        y = ds.createVariable("lat", "f8", ("lat",))
        y.units = "degrees_north"
        y[:] = lat
        x = ds.createVariable("lon", "f8", ("lon",))
        x.units = "degrees_east"
        x[:] = lon
        for name, arr in fields.items():
            a = np.asarray(arr, dtype=np.float64)
            kind = CESM2_VARIABLES[name][0] if name in CESM2_VARIABLES else None
            if kind == "level":
                dims: tuple[str, ...] = ("time", _WRITE_LEVEL_DIM.get(name, "levdcmp"), "lat", "lon")
            elif kind == "surface" or (kind == "index" and a.ndim == 3):
                dims = ("time", "lat", "lon")
            elif kind == "index":
                dims = ("lat", "lon")
            else:
                dims = {4: ("time", "levdcmp", "lat", "lon"), 3: ("time", "lat", "lon"),
                        2: ("lat", "lon")}[a.ndim]
            expect = tuple(ds.dimensions[d].size for d in dims)
            if a.shape != expect:
                raise ValueError(f"field {name!r} has shape {a.shape}, expected {expect} for dims {dims}")
            v = ds.createVariable(name, dtype, dims, fill_value=np.dtype(dtype).type(fill_value))
            if name in ulist:
                v.units = ulist[name]
            v[:] = np.ma.masked_invalid(a)
    return path
