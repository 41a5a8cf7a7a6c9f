"""The delimited-text table engine of the readers: row rejections, canonical columns, :class:`ProfileTable`.

Every reader of :mod:`prodampi.io` follows the same rules, implemented here:

* A **bad value** (a number that is missing where it is required, text in a numeric column, a non-finite or
  out-of-range number, a negative or inverted depth, a duplicate id, an out-of-range latitude/longitude) never
  crashes the reader.  It is recorded as a :class:`Rejection` naming the **file, row and column**, and either
  the whole row is dropped (``scope="row"``: the value is needed to use the row at all) or only the value is
  dropped and set to NaN (``scope="value"``: auxiliary columns such as texture or pH).  Everything else loads.
* A **missing file or missing column** is not a per-row problem: it raises :class:`ReaderError` whose message
  names the file and the column (or variable).
* Rows are numbered as 1-based line numbers of the (decompressed) text file; the header is line 1, so the
  first data row is row 2.  A record spanning several lines (a quoted newline) is reported at its first
  line; a line with an unbalanced quote is rejected alone and never swallows the following rows.  A
  completely blank line is skipped silently.
* Text files may be gzip-compressed (``.gz``); undecodable bytes become U+FFFD.  The fields ``""``, ``NA``,
  ``N/A``, ``NaN``, ``null`` and ``None`` (any case) are missing values.

Canonical columns and units (:data:`LAYER_COLUMNS`; the accepted range of each is declared there):

=================  ==================  ==========================================================
column             unit                notes
=================  ==================  ==========================================================
lat, lon           degrees N / E       WGS84
top_cm, bottom_cm  cm                  below the mineral-soil surface (organic layers negative)
depth_cm           cm                  layer mid-depth (tables without layer bounds)
soc_g_per_kg       g C kg-1            organic-carbon content (= permille); NaN when not measured
bd_g_cm3           g cm-3 (= t m-3)    bulk density of the fine earth; NaN when not measured
coarse_pct         % of volume         coarse fragments (> 2 mm); NaN when not measured
sand/silt/clay_pct % of weight         texture
ph_h2o             pH units            pH in water
cec_cmol_per_kg    cmol(+) kg-1        cation-exchange capacity
soc_density_g_m3   g C m-3             SOC density, when the source gives stocks (NCSCD)
=================  ==================  ==========================================================

The low-level helpers (``_iter_csv``, ``_parse_number``, ``_RowParser``, ``_build_table``) are shared by
the format readers (:mod:`~prodampi.io.profile_tables`, :mod:`~prodampi.io.ncscd`, :mod:`~prodampi.io.bd_oc`,
:mod:`~prodampi.io.covariate_grid`) and are not part of the public interface.
"""

from __future__ import annotations

import csv
import gzip
import math
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputDataError

__all__ = [
    "LAYER_COLUMNS",
    "PROFILE_LAYER_COLUMNS",
    "ColumnSpec",
    "ProfileTable",
    "ReaderError",
    "Rejection",
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
        for line, _end, row, why in _records(fh, delimiter, ncol, reader.line_num + 1):
            if row is None:
                rejections.append(Rejection(str(path), line, None, "", why))
                continue
            if not any(f.strip() for f in row):
                continue
            if len(row) != ncol:
                pid = row[id_col].strip() if id_col is not None and id_col < len(row) else None
                rejections.append(Rejection(
                    str(path), line, None, delimiter.join(row)[:80],
                    f"row has {len(row)} fields, header has {ncol}", profile_id=pid or None))
                continue
            yield line, {canon: row[i] for canon, i in index.items()}


#: most physical lines one quoted field may span (a quoted newline); beyond that the quote is unbalanced
MAX_RECORD_LINES = 8


def _parse_line(text: str, delimiter: str) -> list[str] | None:
    """The fields of one record's text, or None when the csv module cannot parse it."""
    try:
        return next(csv.reader([text], delimiter=delimiter), [])
    except csv.Error:
        return None


def _records(fh: Any, delimiter: str, ncol: int, first_line: int
             ) -> Iterator[tuple[int, int, list[str] | None, str]]:
    """Split the data lines of ``fh`` into records: ``(first line, last line, fields or None, why not)``.

    A line that holds the header's number of fields is a record on its own.  Otherwise, when it has an odd
    number of ``"``, it may open a quoted field that continues on the next lines (a quoted newline): it is
    joined with up to :data:`MAX_RECORD_LINES` - 1 following lines until the quotes balance *and* the record
    has the header's number of fields.  If that fails the quote is unbalanced: this one line is rejected
    alone (``fields`` None) and reading goes on at the next line, so a stray quote can never swallow rows.
    """
    it = iter(fh)
    ahead: deque[tuple[int, str]] = deque()
    n = first_line - 1

    def take() -> tuple[int, str] | None:
        nonlocal n
        if ahead:
            return ahead.popleft()
        try:
            text = next(it)
        except StopIteration:
            return None
        except (OSError, EOFError) as exc:  # e.g. truncated gzip stream
            raise ReaderError(f"{getattr(fh, 'name', '<table>')}: read error after row {n} ({exc})") from exc
        n += 1
        return n, text

    while (item := take()) is not None:
        line, text = item
        row = _parse_line(text, delimiter)
        if row is not None and (len(row) == ncol or text.count('"') % 2 == 0):
            yield line, line, row, ""
            continue
        taken: list[tuple[int, str]] = []
        joined = text
        while len(taken) < MAX_RECORD_LINES - 1 and (nxt := take()) is not None:
            taken.append(nxt)
            joined += nxt[1]
            if joined.count('"') % 2 == 0:
                break
        whole = _parse_line(joined, delimiter) if joined.count('"') % 2 == 0 else None
        if whole is not None and len(whole) == ncol:
            yield line, taken[-1][0], whole, ""
            continue
        ahead.extendleft(reversed(taken))
        why = "unparsable row" if row is None and text.count('"') % 2 == 0 else \
            "unbalanced quote: row rejected alone (the following rows are read)"
        yield line, line, None, why


def _row_id(raw: Mapping[str, str], file: str, line: int, column: str, rejections: list[Rejection]) -> str | None:
    """The stripped ``profile_id`` of a row; None (and a row rejection in ``column``) when it is empty."""
    pid = raw["profile_id"].strip()
    if not pid:
        rejections.append(Rejection(file, line, column, raw["profile_id"], "missing value in required column"))
        return None
    return pid


def _repeated_id(pid: str, file: str, line: int, column: str, first_row: dict[str, int],
                 rejections: list[Rejection]) -> bool:
    """True (and a row rejection) when ``pid`` was met before in this file; else remember its row."""
    if pid in first_row:
        rejections.append(Rejection(file, line, column, pid, f"duplicate profile id (first at row {first_row[pid]})",
                                    pid))
        return True
    first_row[pid] = line
    return False


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

