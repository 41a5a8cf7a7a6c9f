"""Reader for the WoSIS snapshots 2019-09 and 2023-12 (``../shared/spec/wosis.md``).

Both readers return a :class:`WosisProfileTable`: a :class:`~prodampi.io.readers.ProfileTable` with the
canonical layer columns (``top_cm``, ``bottom_cm``, ``soc_g_per_kg``, ``bd_g_cm3``, ``coarse_pct``, ...), so
:func:`prodampi.data.profiles.screen_profiles` screens WoSIS exactly like ISIS, plus per-layer text labels
(``layer_labels``: ``layer_id``, ``layer_name``, ``bd_source``) and per-profile ledger notes
(``profile_notes``).

Files (``snapshot_dir`` is the folder the snapshot zip was unpacked into; each file may also be ``.tsv.gz``)
--------------------------------------------------------------------------------------------------------
* 2019 (``WoSIS_2019_September.zip``, DOI 10.17027/isric-wdcsoils.20190901): ``wosis_201909_profiles.tsv``
  (one row per profile: ``profile_id``, ``latitude``, ``longitude``, ...), ``wosis_201909_layers_chemical.tsv``
  and ``wosis_201909_layers_physical.tsv`` (one wide row per layer: ``profile_id, profile_layer_id,
  upper_depth, lower_depth, layer_name, litter`` then 7 columns per property code ``xxxx_value``,
  ``xxxx_value_avg``, ``xxxx_method``, ...).  Chemical and physical rows are outer-joined on
  (``profile_id``, ``profile_layer_id``).  Optional: ``wosis_201909_attributes.tsv`` (``code``, ``unit``),
  used to check units.
* 2023 (``WoSIS_2023_December.zip``; layout UNCONFIRMED, so every column is read by name and a missing one
  fails naming file and column): one ``wosis_202312_<code>.tsv`` per property (``profile_id, layer_id,
  upper_depth, lower_depth, layer_name, organic_surface, value, value_avg, ..., longitude, latitude, ...``).
  ``wosis_202312_orgc.tsv`` defines the profiles (coordinates of its rows) and the layers (depths, flag);
  the other property tables add values to those layers by (``profile_id``, ``layer_id``); their rows for
  layers absent from ``orgc`` carry no SOC and are skipped (counted in the log).  The ledger therefore
  covers the profiles that have an ``orgc`` row.  Optional: ``wosis_202312_observations.tsv`` (``code``,
  ``unit``), used to check units.

Properties read (value from ``*_value_avg``; canonical unit; scope of a bad value)
--------------------------------------------------------------------------------
==================================  =====================  ===================================  =========
WoSIS code                          canonical column       unit                                 bad value
==================================  =====================  ===================================  =========
orgc                                ``soc_g_per_kg``       g C kg-1 of fine earth               row
bdfiod, bdfi33, bdfifm, bdfiad      ``bd_g_cm3``           kg dm-3 = g cm-3, fine earth         value
bdwsod, bdws33, bdwsfm, bdwsad      (``bd_g_cm3``)         kg dm-3 = g cm-3, whole soil         value
cfvo                                ``coarse_pct``         cm3 / 100 cm3 of whole soil (% vol)  value
cfgr                                (used with bdws*)      g / 100 g of whole soil (% weight)   value
clay, sand, silt (optional)         ``*_pct``              g / 100 g (% weight)                 value
phaq, cecph7 (optional)             ``ph_h2o``, ``cec_..`` pH; cmol(c) kg-1                     value
==================================  =====================  ===================================  =========

Rules (``wosis.md`` §2, §3, §5)
-------------------------------
* **Encoding**: UTF-8, TAB-separated, header on line 1, text delimited by ``"``.  A row whose field count
  differs from the header's is re-parsed without quoting (method strings carry embedded ``"``); if the count
  still differs the row alone is rejected, naming its line number.  Empty fields (and ``NA``, ``NaN``,
  ``null``) are missing values.
* **Repeated values**: ``xxxx_value`` holds ``{1:5.4,2:8.2}`` (2019) or ``{35.2,36.0}`` (2023); the separator
  may be ``,`` or ``;`` and the text after ``:`` is the value.  ``value_avg`` is documented as their mean
  and is what is used; where ``value_avg`` is empty and ``value`` is not, the mean of the repeats is used
  (the documented rule) and the profile's ledger notes say so.  A ``value_avg`` that disagrees with the mean
  of its repeats by more than rounding is used as given and counted in the log.
* **Layers dropped** (row-scope :class:`~prodampi.io.readers.Rejection` naming file, line and column, in
  this order): missing ids; duplicate (profile, layer) ids in one file; missing or non-numeric depths, or a
  depth beyond 10,000 cm; an unreadable flag (accepted: ``t/f/true/false/1/0/yes/no/empty``); a
  **litter / organic-surface** layer (flag true: "litter layer"); ``lower <= upper`` ("inverted depths");
  ``lower <= 0`` ("negative depth": the pre-1993 litter layers above the surface, e.g. -10 to 0 cm, when not
  flagged); a bad ORGC value.  2019: a layer whose row in the other layer file was dropped, or whose depths
  differ between the two files, is dropped too.  A layer whose upper depth is negative but whose lower
  depth is positive is kept (the spec's rule drops only ``lower <= 0``).
* **Bulk density** (``wosis.md`` §5, a recommendation): the first valid of BDFIOD > BDFI33 > BDFIFM >
  BDFIAD; else a whole-soil BDWS* (OD > 33 > FM > AD) **with CFGR**, converted to the fine-earth density
  ``BD_fine = BDWS (1 - CFGR/100) / (1 - CFVO/100)`` (CFVO 0 where missing) so that the screening's
  ``SOC x BD_fine x 1000 x (1 - CFVO/100)`` equals the spec's ``SOC x BDWS x 1000 x (1 - CFGR/100)``; else
  BD is left missing and the screening fills it with the pedo-transfer function.  The source of every
  layer's BD is recorded in ``layer_labels["bd_source"]`` (``"bdfiod"``, ..., ``"bdws33+cfgr"``, or ``""``;
  the screening turns ``""`` into ``"ptf"``).
* **Coarse fragments**: CFVO; where missing the screening takes 0 and flags the layer (``coarse_missing``).
* **Profiles**: 2019 ``profiles.tsv`` rows with a missing/duplicate id or a missing/bad/out-of-range
  latitude or longitude are dropped; their layers are rejected ("site row rejected"), as are layers naming a
  profile id with no row (ledger reason ``no_site``).  2023: a row's ``longitude``/``latitude`` are
  required; the profile takes those of its first good row, and a later row with other coordinates is
  dropped.
"""

from __future__ import annotations

import csv
import gzip
import logging
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .tables import _MISSING_TOKENS as _MISSING
from .tables import LAYER_COLUMNS, PROFILE_LAYER_COLUMNS, ProfileTable, ReaderError, Rejection
from .tables import _parse_number as _number

logger = logging.getLogger(__name__)

__all__ = [
    "BD_FINE_CODES",
    "BD_WHOLE_CODES",
    "PROPERTIES",
    "SNAPSHOT_2019",
    "SNAPSHOT_2023",
    "WosisProfileTable",
    "parse_repeats",
    "read_wosis2019",
    "read_wosis2019_deck",
    "read_wosis2023",
    "read_wosis2023_deck",
    "select_bulk_density",
]

#: File-name stems of the snapshots.
SNAPSHOT_2019 = "wosis_201909"
SNAPSHOT_2023 = "wosis_202312"

#: Fine-earth bulk densities in order of preference (``wosis.md`` §5).
BD_FINE_CODES: tuple[str, ...] = ("bdfiod", "bdfi33", "bdfifm", "bdfiad")
#: Whole-soil bulk densities in order of preference (used only together with CFGR).
BD_WHOLE_CODES: tuple[str, ...] = ("bdwsod", "bdws33", "bdwsfm", "bdwsad")

_MAX_DEPTH_CM = 1.0e4
_FLAGS = {"t": True, "true": True, "1": True, "yes": True, "y": True,
          "f": False, "false": False, "0": False, "no": False, "n": False, "": False}


@dataclass(frozen=True)
class _Property:
    """A WoSIS property code: canonical column, unit, accepted range, accepted unit spellings."""

    canon: str | None  # canonical ProfileTable layer column (None: used only to derive another)
    unit: str
    lo: float
    hi: float
    lo_open: bool = False
    row_critical: bool = False
    units: Mapping[str, float] = field(default_factory=dict)  # normalised unit text -> factor to ``unit``


_U_BD = {"kg/dm3": 1.0, "kgdm-3": 1.0, "g/cm3": 1.0, "gcm-3": 1.0, "t/m3": 1.0, "tm-3": 1.0, "mg/m3": 1.0,
         "kg/m3": 1.0e-3, "kgm-3": 1.0e-3}
_U_PCT_WEIGHT = {"g/100g": 1.0, "%": 1.0, "%weight": 1.0, "wt%": 1.0, "dag/kg": 1.0, "g/kg": 0.1, "gkg-1": 0.1}

#: Property codes read, with canonical column, unit and accepted range (canonical unit).
PROPERTIES: dict[str, _Property] = {
    "orgc": _Property("soc_g_per_kg", "g C kg-1", 0.0, 1000.0, row_critical=True,
                      units={"g/kg": 1.0, "gkg-1": 1.0, "permille": 1.0, "‰": 1.0, "%": 10.0, "g/100g": 10.0,
                             "dag/kg": 10.0}),
    **{c: _Property(None, "g cm-3", 0.0, 3.0, lo_open=True, units=_U_BD) for c in BD_FINE_CODES + BD_WHOLE_CODES},
    "cfvo": _Property("coarse_pct", "% vol", 0.0, 100.0,
                      units={"cm3/100cm3": 1.0, "%": 1.0, "vol%": 1.0, "%vol": 1.0, "cm3/cm3": 100.0,
                             "m3/m3": 100.0}),
    "cfgr": _Property(None, "% weight", 0.0, 100.0, units=_U_PCT_WEIGHT),
    "clay": _Property("clay_pct", "% weight", 0.0, 100.0, units=_U_PCT_WEIGHT),
    "sand": _Property("sand_pct", "% weight", 0.0, 100.0, units=_U_PCT_WEIGHT),
    "silt": _Property("silt_pct", "% weight", 0.0, 100.0, units=_U_PCT_WEIGHT),
    "phaq": _Property("ph_h2o", "pH", 0.0, 14.0, units={"ph": 1.0, "-": 1.0, "": 1.0, "unitless": 1.0,
                                                       "none": 1.0}),
    "cecph7": _Property("cec_cmol_per_kg", "cmol(+) kg-1", 0.0, 1000.0,
                        units={"cmol(c)/kg": 1.0, "cmolc/kg": 1.0, "cmol(+)/kg": 1.0, "cmol/kg": 1.0,
                               "meq/100g": 1.0, "cmol(c)kg-1": 1.0}),
}

_CHEM_2019_REQUIRED = ("orgc",)
_CHEM_2019_OPTIONAL = ("phaq", "cecph7")
_PHYS_2019_REQUIRED = (*BD_FINE_CODES, *BD_WHOLE_CODES, "cfgr", "cfvo")
_PHYS_2019_OPTIONAL = ("clay", "sand", "silt")
_FILES_2023_REQUIRED = ("orgc", *BD_FINE_CODES, "cfgr", "cfvo")
_FILES_2023_OPTIONAL = (*BD_WHOLE_CODES, "clay", "sand", "silt", "phaq", "cecph7")


# ====================================================================================== result type
@dataclass
class WosisProfileTable(ProfileTable):
    """A :class:`~prodampi.io.readers.ProfileTable` with WoSIS per-layer labels and per-profile notes.

    Attributes
    ----------
    layer_labels : dict of str to ndarray of str, (L,)
        ``layer_id`` (WoSIS ``profile_layer_id`` / ``layer_id``), ``layer_name`` (horizon designation) and
        ``bd_source``: the column the layer's bulk density came from (``"bdfiod"``, ``"bdfi33"``,
        ``"bdfifm"``, ``"bdfiad"``, ``"bdwsod+cfgr"``, ...), ``""`` where no usable BD was given (the
        screening then uses the pedo-transfer function and records ``"ptf"``).
    profile_notes : dict of str to list of str
        Remarks per profile id that do not reject it (e.g. values taken as the mean of repeats); the
        screening copies them into the ledger notes.
    """

    layer_labels: dict[str, np.ndarray] = field(default_factory=dict)
    profile_notes: dict[str, list[str]] = field(default_factory=dict)


# ====================================================================================== value parsing
_SPLIT = re.compile(r"[,;]")


def parse_repeats(text: str) -> list[float]:
    """The values of a WoSIS ``xxxx_value`` field (``wosis.md`` §3, *Repeats*).

    Parameters
    ----------
    text : str
        ``"{1:5.4,2:8.2}"``, ``"{1:22.70}"``, ``"{35.2;36.0}"``, ``""`` ...: items separated by ``,`` or
        ``;``; of an item the text after ``:`` is the value; braces and quotes are ignored.

    Returns
    -------
    list of float
        The values (empty when the field is missing or holds no item).

    Raises
    ------
    ValueError
        An item is not a finite number.
    """
    s = text.strip()
    if s.lower() in _MISSING:
        return []
    if s.startswith("{") and s.endswith("}"):
        s = s[1:-1]
    out: list[float] = []
    for item in _SPLIT.split(s):
        item = item.strip().strip('"').strip()
        if ":" in item:
            item = item.split(":", 1)[1].strip()
        if not item or item.lower() in _MISSING:
            continue
        v = float(item)
        if not math.isfinite(v):
            raise ValueError(f"non-finite repeat {item!r}")
        out.append(v)
    return out


def _norm_unit(u: str) -> str:
    return (u.strip().lower().replace(" ", "").replace("³", "3").replace("⁻¹", "-1").replace("⁻³", "-3")
            .replace("^", ""))


def select_bulk_density(values: Mapping[str, float]) -> tuple[float, str]:
    """Fine-earth bulk density of a layer by the preference of ``wosis.md`` §5.

    Parameters
    ----------
    values : mapping of WoSIS code to float
        The layer's valid values in canonical units (NaN or absent where missing): BD codes in g cm-3,
        ``cfgr`` % weight, ``cfvo`` % vol.

    Returns
    -------
    bd_g_cm3 : float
        Fine-earth bulk density, g cm-3: the first finite of :data:`BD_FINE_CODES`; else the first finite of
        :data:`BD_WHOLE_CODES` converted with CFGR and CFVO (0 where missing),
        ``BDWS (1 - CFGR/100) / (1 - CFVO/100)``; else NaN (no CFGR, or CFVO = 100 %).
    source : str
        The code used (``"bdfi33"``, ``"bdws33+cfgr"``), or ``""`` when NaN.
    """
    for c in BD_FINE_CODES:
        v = values.get(c, math.nan)
        if math.isfinite(v):
            return v, c
    cfgr = values.get("cfgr", math.nan)
    cfvo = values.get("cfvo", math.nan)
    cfvo = cfvo if math.isfinite(cfvo) else 0.0
    if math.isfinite(cfgr) and cfvo < 100.0:
        for c in BD_WHOLE_CODES:
            v = values.get(c, math.nan)
            if math.isfinite(v):
                return v * (1.0 - cfgr / 100.0) / (1.0 - cfvo / 100.0), f"{c}+cfgr"
    return math.nan, ""


# ====================================================================================== TSV engine
def _find(directory: Path, stem: str, required: bool = True) -> Path | None:
    for name in (f"{stem}.tsv", f"{stem}.tsv.gz"):
        p = directory / name
        if p.is_file():
            return p
    if required:
        raise ReaderError(f"{directory / (stem + '.tsv')}: file not found (nor {stem}.tsv.gz) in the WoSIS "
                          f"snapshot folder")
    return None


def _open(path: Path) -> Any:
    try:
        if path.name.endswith(".gz"):
            return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
        return open(path, encoding="utf-8", errors="replace", newline="")  # noqa: SIM115
    except OSError as exc:
        raise ReaderError(f"{path}: cannot open ({exc})") from exc


def _unquote(f: str) -> str:
    return f[1:-1] if len(f) >= 2 and f[0] == '"' and f[-1] == '"' else f


class _Tsv:
    """One TAB-separated WoSIS table: checks its header, yields the wanted fields of each row.

    A missing required column raises :class:`ReaderError` naming file and column.  Rows are numbered by
    line (header = 1).  A row whose quoted parse does not give the header's field count is re-parsed by
    splitting on TAB without quoting; if that fails too, the row is rejected alone (row scope).
    """

    def __init__(self, path: Path, required: Sequence[str], optional: Sequence[str] = (),
                 what: str = "") -> None:
        self.path = path
        self.name = str(path)
        fh = _open(path)
        try:
            first = fh.readline()
        except (OSError, EOFError) as exc:
            fh.close()
            raise ReaderError(f"{path}: cannot read header ({exc})") from exc
        fh.close()
        if not first.strip():
            raise ReaderError(f"{path}: file is empty (no header line)")
        header = self._split(first.rstrip("\r\n"))
        self.header = [h.strip().lstrip("\ufeff").strip() for h in header]
        for c in required:
            if c not in self.header:
                raise ReaderError(f"{path}: required column {c!r}{what} not found; the header has "
                                  f"{len(self.header)} columns: {', '.join(self.header[:12])}"
                                  f"{', ...' if len(self.header) > 12 else ''}")
        self.index = {c: self.header.index(c) for c in (*required, *optional) if c in self.header}
        self.n_reparsed = 0

    @staticmethod
    def _split(line: str) -> list[str]:
        try:
            return next(csv.reader([line], delimiter="\t"))
        except (csv.Error, StopIteration):
            return line.split("\t")

    def has(self, column: str) -> bool:
        return column in self.index

    def rows(self, rejections: list[Rejection], id_column: str = "profile_id") -> Iterator[tuple[int, dict[str, str]]]:
        """Yield ``(line, {column: text})`` for the wanted columns of each data row."""
        ncol = len(self.header)
        id_i = self.index.get(id_column)
        fh = _open(self.path)
        with fh:
            line_no = 0
            try:
                for line_no, line in enumerate(fh, start=1):
                    if line_no == 1:
                        continue
                    text = line.rstrip("\r\n")
                    if not text.strip():
                        continue
                    fields = self._split(text)
                    if len(fields) != ncol:
                        alt = [_unquote(f) for f in text.split("\t")]
                        if len(alt) != ncol:
                            pid = alt[id_i].strip() if id_i is not None and id_i < len(alt) else ""
                            rejections.append(Rejection(
                                self.name, line_no, None, text[:80],
                                f"wrong field count: row has {len(fields)} fields ({len(alt)} without quoting), "
                                f"header has {ncol}", pid or None))
                            continue
                        fields = alt
                        self.n_reparsed += 1
                    yield line_no, {c: fields[i] for c, i in self.index.items()}
            except (OSError, EOFError) as exc:  # truncated gzip stream, ...
                raise ReaderError(f"{self.path}: read error after line {line_no} ({exc})") from exc
        if self.n_reparsed:
            logger.info("%s: %d row(s) re-parsed without quoting (field count differed)", self.path.name,
                        self.n_reparsed)


# ====================================================================================== shared state
@dataclass(slots=True)
class _Layer:
    pid: str
    lid: str
    file: str
    line: int
    top: float
    bottom: float
    name: str
    values: dict[str, float]


@dataclass
class _State:
    """What one read collects: rejections, ids met, notes, unit factors, counters."""

    rejections: list[Rejection] = field(default_factory=list)
    input_ids: dict[str, None] = field(default_factory=dict)
    notes: dict[str, Counter[str]] = field(default_factory=dict)
    factors: dict[str, float] = field(default_factory=dict)
    avg_mismatch: Counter[str] = field(default_factory=Counter)

    def reject(self, file: str, line: int, column: str | None, value: str, reason: str, pid: str | None,
               scope: str = "row") -> None:
        self.rejections.append(Rejection(file, line, column, value, reason, pid or None, scope))

    def layer_key(self, file: str, line: int, raw: Mapping[str, str], layer_col: str,
                  first: dict[tuple[str, str], int]) -> tuple[str, str] | None:
        """``(profile id, layer id)`` of a layer row (the profile id is recorded as read); None, with a row
        rejection, when either id is empty or the pair was seen before (``first``: key -> its first line)."""
        pid = raw["profile_id"].strip()
        if not pid:
            self.reject(file, line, "profile_id", raw["profile_id"], "missing value in required column", None)
            return None
        self.input_ids.setdefault(pid)
        lid = raw[layer_col].strip()
        if not lid:
            self.reject(file, line, layer_col, raw[layer_col], "missing value in required column", pid)
            return None
        key = (pid, lid)
        if key in first:
            self.reject(file, line, layer_col, lid, f"duplicate layer id (first at row {first[key]})", pid)
            return None
        first[key] = line
        return key

    def note(self, pid: str, text: str) -> None:
        self.notes.setdefault(pid, Counter())[text] += 1


def _check_units(path: Path | None, codes: Sequence[str], st: _State) -> None:
    """Unit of each used code from the snapshot's attribute/observation catalogue, if present."""
    st.factors = {c: 1.0 for c in codes}
    if path is None:
        logger.info("no attribute/observation catalogue in the snapshot folder: units assumed as documented")
        return
    tsv = _Tsv(path, ())
    code_col = next((c for c in ("code", "property_code", "observation_code") if c in tsv.header), None)
    unit_col = next((c for c in ("unit", "units", "unit_of_measure") if c in tsv.header), None)
    if code_col is None or unit_col is None:
        logger.warning("%s: no 'code'/'unit' columns (header %s): units not checked, assumed as documented",
                       path, tsv.header)
        return
    tsv.index = {code_col: tsv.header.index(code_col), unit_col: tsv.header.index(unit_col)}
    seen: dict[str, tuple[int, str]] = {}
    for line, raw in tsv.rows([], id_column=code_col):
        code = raw[code_col].strip().lower()
        if code in st.factors and code not in seen:
            seen[code] = (line, raw[unit_col])
    for code, (line, unit) in seen.items():
        prop = PROPERTIES[code]
        factor = prop.units.get(_norm_unit(unit))
        if factor is None:
            raise ReaderError(
                f"{path}, row {line}, column {unit_col!r}: unit {unit!r} of {code!r} is not one prodampi can "
                f"convert to {prop.unit} (accepted: {', '.join(sorted(k for k in prop.units if k))})")
        st.factors[code] = factor
        if factor != 1.0:
            logger.info("%s: %s given in %r: multiplied by %g to %s", path.name, code, unit, factor, prop.unit)


def _property(raw: Mapping[str, str], code: str, avg_col: str, val_col: str | None, file: str, line: int,
              pid: str, st: _State) -> tuple[float, bool]:
    """Value of one property of a row (canonical unit); ``(nan, True)`` when the row must be dropped."""
    text = raw[avg_col]
    vtext = raw.get(val_col, "") if val_col is not None else ""
    if not text and not vtext:  # fast path: most blocks of a wide row are empty
        return math.nan, False
    prop = PROPERTIES[code]
    v, why = _number(text)
    col = avg_col
    reps: list[float] = []
    if vtext and (math.isnan(v) or "," in vtext or ";" in vtext):  # one repeat: nothing to learn from it
        try:
            reps = parse_repeats(vtext)
        except ValueError:
            if math.isnan(v) and why is None:
                why, col, text = "unreadable repeated values", val_col, vtext
    if why is None and math.isnan(v) and reps:
        v = sum(reps) / len(reps)
        st.note(pid, f"{code}: {avg_col} empty, mean of the {val_col} repeats used")
    elif why is None and len(reps) > 1:
        st.note(pid, f"{code}: repeated values, their mean ({avg_col}) used")
        m = sum(reps) / len(reps)
        if abs(m - v) > max(0.01, 1e-3 * abs(v)):
            st.avg_mismatch[f"{Path(file).name}:{code}"] += 1
    if why is None and not math.isnan(v):
        v *= st.factors.get(code, 1.0)
        if (v <= prop.lo if prop.lo_open else v < prop.lo) or v > prop.hi:
            why = (f"value {v:g} outside {'(' if prop.lo_open else '['}{prop.lo:g}, {prop.hi:g}] {prop.unit}")
    if why is not None:
        st.reject(file, line, col, text, why, pid, "row" if prop.row_critical else "value")
        return math.nan, prop.row_critical
    return v, False


def _depths_and_flag(raw: Mapping[str, str], file: str, line: int, pid: str, flag_col: str,
                     st: _State) -> tuple[float, float] | None:
    """Upper and lower depth (cm) of a layer row, or None when the row is dropped (rejection recorded)."""
    vals = []
    for c in ("upper_depth", "lower_depth"):
        v, why = _number(raw[c])
        if why is None and math.isnan(v):
            why = "missing value in required column"
        if why is None and abs(v) > _MAX_DEPTH_CM:
            why = f"depth {v:g} cm beyond {_MAX_DEPTH_CM:g} cm"
        if why is not None:
            st.reject(file, line, c, raw[c], why, pid)
            return None
        vals.append(v)
    top, bot = vals
    flag_text = raw[flag_col].strip().lower()
    if flag_text not in _FLAGS:
        st.reject(file, line, flag_col, raw[flag_col],
                  f"unreadable {flag_col} flag (accepted: t, f, true, false, 1, 0, empty)", pid)
        return None
    if _FLAGS[flag_text]:
        kind = "litter" if flag_col == "litter" else "organic-surface"
        st.reject(file, line, flag_col, raw[flag_col],
                  f"{kind} layer (flagged {flag_col}={raw[flag_col].strip()!r}; depths {top:g} to {bot:g} cm)",
                  pid)
        return None
    if not bot > top:
        st.reject(file, line, "lower_depth", raw["lower_depth"],
                  f"inverted depths (lower {bot:g} cm is not below upper {top:g} cm)", pid)
        return None
    if bot <= 0:
        st.reject(file, line, "lower_depth", raw["lower_depth"],
                  f"negative depth (layer {top:g} to {bot:g} cm lies above the surface)", pid)
        return None
    return top, bot


def _read_layers(tsv: _Tsv, layer_col: str, flag_col: str, codes: Sequence[str], st: _State,
                 blocks: bool) -> tuple[dict[tuple[str, str], _Layer], dict[tuple[str, str], int]]:
    """Layer rows of one file: ``{(pid, layer id): _Layer}`` of the good rows, and the keys of dropped rows.

    ``blocks``: 2019 wide layout (``<code>_value_avg`` columns); else 2023 (``value_avg`` of ``codes[0]``).
    """
    good: dict[tuple[str, str], _Layer] = {}
    dropped: dict[tuple[str, str], int] = {}
    first: dict[tuple[str, str], int] = {}
    cols = [(code, *((f"{code}_value_avg", f"{code}_value") if blocks else ("value_avg", "value"))) for code in codes]
    cols = [(code, a, v) for code, a, v in cols if tsv.has(a)]  # optional blocks may be absent
    for line, raw in tsv.rows(st.rejections):
        key = st.layer_key(tsv.name, line, raw, layer_col, first)
        if key is None:
            continue
        pid, lid = key
        d = _depths_and_flag(raw, tsv.name, line, pid, flag_col, st)
        if d is None:
            dropped[key] = line
            continue
        values: dict[str, float] = {}
        bad = False
        for code, avg_col, val_col in cols:
            v, drop = _property(raw, code, avg_col, val_col, tsv.name, line, pid, st)
            bad |= drop
            if not math.isnan(v):
                values[code] = v
        if bad:
            dropped[key] = line
            continue
        good[key] = _Layer(pid, lid, tsv.name, line, d[0], d[1], raw.get("layer_name", "").strip(), values)
    return good, dropped


def _build(source: str, files: tuple[str, ...], site_file: str, sites: list[tuple[str, float, float, int]],
           layers: list[_Layer], st: _State, profile_extra: dict[str, np.ndarray] | None = None) -> WosisProfileTable:
    """Assemble the table: BD preference per layer, canonical columns, ledger bookkeeping."""
    pindex = {s[0]: i for i, s in enumerate(sites)}
    layers = sorted(layers, key=lambda lay: pindex[lay.pid])  # stable: file order inside a profile
    cols: dict[str, list[float]] = {c: [] for c in PROFILE_LAYER_COLUMNS}
    bd_src: list[str] = []
    for lay in layers:
        bd, how = select_bulk_density(lay.values)
        if how.startswith("bdws") and not (0.0 < bd <= LAYER_COLUMNS["bd_g_cm3"].hi):
            code = how.split("+")[0]
            st.reject(lay.file, lay.line, f"{code}_value_avg", f"{lay.values[code]:g}",
                      f"fine-earth BD {bd:g} g cm-3 derived from {code} with cfgr and cfvo is outside (0, 3]",
                      lay.pid, "value")
            bd, how = math.nan, ""
        row = {"top_cm": lay.top, "bottom_cm": lay.bottom, "bd_g_cm3": bd}
        for code, v in lay.values.items():
            canon = PROPERTIES[code].canon
            if canon is not None:
                row[canon] = v
        for c in PROFILE_LAYER_COLUMNS:
            cols[c].append(row.get(c, math.nan))
        bd_src.append(how)
    # profiles met but not loaded
    loaded = set(pindex)
    site_rej: dict[str, list[Rejection]] = {}
    for r in st.rejections:
        if r.profile_id and r.profile_id not in loaded and r.file == site_file:
            site_rej.setdefault(r.profile_id, []).append(r)
    not_loaded = {}
    for pid in st.input_ids:
        if pid in loaded:
            continue
        if pid in site_rej:
            not_loaded[pid] = "site_rejected: " + " | ".join(r.message() for r in site_rej[pid])
        else:
            not_loaded[pid] = f"no_site: profile id has no row in {Path(site_file).name}"
    for key, n in st.avg_mismatch.items():
        logger.warning("%s: %d value_avg differ from the mean of their repeats; value_avg used", key, n)
    notes = {pid: [f"{t} ({n} layer(s))" for t, n in sorted(c.items())] for pid, c in st.notes.items()}
    n = len(layers)
    table = WosisProfileTable(
        source=source, files=files,
        profile_id=np.array([s[0] for s in sites], dtype=str) if sites else np.zeros(0, dtype="<U1"),
        lat=np.array([s[1] for s in sites], dtype=np.float64), lon=np.array([s[2] for s in sites], dtype=np.float64),
        layer_profile=np.array([pindex[lay.pid] for lay in layers], dtype=np.int64),
        layers={c: np.array(v, dtype=np.float64) if n else np.zeros(0) for c, v in cols.items()},
        layer_row=np.array([lay.line for lay in layers], dtype=np.int64),
        rejections=st.rejections, input_profile_ids=list(st.input_ids),
        profile_row=np.array([s[3] for s in sites], dtype=np.int64), profile_extra=profile_extra or {},
        not_loaded=not_loaded,
        layer_labels={"layer_id": np.array([lay.lid for lay in layers], dtype=str),
                      "layer_name": np.array([lay.name for lay in layers], dtype=str),
                      "bd_source": np.array(bd_src, dtype=str)},
        profile_notes=notes,
    )
    n_row = len({(r.file, r.row) for r in st.rejections if r.scope == "row"})
    n_val = sum(r.scope == "value" for r in st.rejections)
    logger.info("%s: %d profiles, %d layers loaded; %d rows rejected, %d values dropped; BD sources %s",
                source, table.n_profiles, table.n_layers, n_row, n_val, dict(Counter(bd_src)))
    return table


def _coordinates(raw: Mapping[str, str], file: str, line: int, pid: str, st: _State) -> tuple[float, float] | None:
    out = []
    for c, canon in (("latitude", "lat"), ("longitude", "lon")):
        v, why = _number(raw[c])
        spec = LAYER_COLUMNS[canon]
        if why is None and math.isnan(v):
            why = "missing value in required column"
        if why is None and not (spec.lo <= v <= spec.hi):
            why = f"value {v:g} outside [{spec.lo:g}, {spec.hi:g}] {spec.unit}"
        if why is not None:
            st.reject(file, line, c, raw[c], why, pid)
            return None
        out.append(v)
    return out[0], out[1]


# ====================================================================================== 2019
def read_wosis2019(snapshot_dir: str | Path) -> WosisProfileTable:
    """Read the WoSIS 2019-09 snapshot (``wosis.md`` §1-3, §5) into a profile table.

    Parameters
    ----------
    snapshot_dir : path
        Folder holding ``wosis_201909_profiles.tsv``, ``wosis_201909_layers_chemical.tsv`` and
        ``wosis_201909_layers_physical.tsv`` (each may be ``.tsv.gz``), and optionally
        ``wosis_201909_attributes.tsv`` (units are then checked).

    Returns
    -------
    WosisProfileTable
        Source ``"wosis2019"``; every profile of ``profiles.tsv`` with a good row (even without layers, so
        the ledger accounts for it), its kept layers (chemical and physical rows outer-joined) with
        ``soc_g_per_kg`` (g C kg-1), ``bd_g_cm3`` (fine earth, g cm-3; NaN -> PTF), ``coarse_pct`` (CFVO,
        % vol; NaN -> 0 and flagged), depths (cm); ``layer_labels["bd_source"]``; all rejections.
        ``profile_extra`` holds ``dataset_id``, ``country_id`` (str) and ``dsds_cm`` (sampled depth, cm)
        where the columns exist.

    Raises
    ------
    ReaderError
        A file is missing or unreadable, or lacks a required column (message names file and column): in
        ``profiles.tsv`` ``profile_id``, ``latitude``, ``longitude``; in both layer files ``profile_id,
        profile_layer_id, upper_depth, lower_depth, litter``; ``orgc_value_avg`` in the chemical file;
        ``<code>_value_avg`` for every BD code, ``cfgr`` and ``cfvo`` in the physical file; or the attribute
        catalogue gives a unit that cannot be converted.
    """
    d = Path(snapshot_dir)
    if not d.is_dir():
        raise ReaderError(f"{d}: WoSIS snapshot folder not found")
    st = _State()
    p_prof = _find(d, f"{SNAPSHOT_2019}_profiles")
    p_chem = _find(d, f"{SNAPSHOT_2019}_layers_chemical")
    p_phys = _find(d, f"{SNAPSHOT_2019}_layers_physical")
    assert p_prof is not None and p_chem is not None and p_phys is not None
    chem_codes = (*_CHEM_2019_REQUIRED, *_CHEM_2019_OPTIONAL)
    phys_codes = (*_PHYS_2019_REQUIRED, *_PHYS_2019_OPTIONAL)
    _check_units(_find(d, f"{SNAPSHOT_2019}_attributes", required=False), (*chem_codes, *phys_codes), st)
    keys = ("profile_id", "profile_layer_id", "upper_depth", "lower_depth", "litter")

    def block(codes: Sequence[str]) -> list[str]:
        return [f"{c}_value_avg" for c in codes]

    def vals(codes: Sequence[str]) -> list[str]:
        return [f"{c}_value" for c in codes]

    t_prof = _Tsv(p_prof, ("profile_id", "latitude", "longitude"),
                  ("dataset_id", "country_id", "geom_accuracy", "dsds"))
    t_chem = _Tsv(p_chem, (*keys, *block(_CHEM_2019_REQUIRED)),
                  ("layer_name", *vals(chem_codes), *block(_CHEM_2019_OPTIONAL)))
    t_phys = _Tsv(p_phys, (*keys, *block(_PHYS_2019_REQUIRED)),
                  ("layer_name", *vals(phys_codes), *block(_PHYS_2019_OPTIONAL)))

    # ---- profiles
    sites: list[tuple[str, float, float, int]] = []
    extra: dict[str, list[Any]] = {"dataset_id": [], "country_id": [], "dsds_cm": []}
    first: dict[str, int] = {}
    site_dropped: dict[str, int] = {}
    for line, raw in t_prof.rows(st.rejections):
        pid = raw["profile_id"].strip()
        if not pid:
            st.reject(t_prof.name, line, "profile_id", raw["profile_id"], "missing value in required column", None)
            continue
        st.input_ids.setdefault(pid)
        if pid in first:
            st.reject(t_prof.name, line, "profile_id", pid, f"duplicate profile id (first at row {first[pid]})",
                      pid)
            continue
        first[pid] = line
        ll = _coordinates(raw, t_prof.name, line, pid, st)
        if ll is None:
            site_dropped[pid] = line
            continue
        sites.append((pid, ll[0], ll[1], line))
        extra["dataset_id"].append(raw.get("dataset_id", "").strip())
        extra["country_id"].append(raw.get("country_id", "").strip())
        extra["dsds_cm"].append(_number(raw.get("dsds", ""))[0])
    loaded = {s[0] for s in sites}

    # ---- layers: both files, then the outer join
    chem, chem_drop = _read_layers(t_chem, "profile_layer_id", "litter", chem_codes, st, blocks=True)
    phys, phys_drop = _read_layers(t_phys, "profile_layer_id", "litter", phys_codes, st, blocks=True)
    layers: list[_Layer] = []
    for key in dict.fromkeys([*chem, *phys]):
        c, p = chem.get(key), phys.get(key)
        if c is not None and key in phys_drop:
            st.reject(c.file, c.line, "profile_layer_id", key[1],
                      f"layer dropped in the other file ({p_phys.name}, row {phys_drop[key]})", key[0])
            continue
        if p is not None and key in chem_drop:
            st.reject(p.file, p.line, "profile_layer_id", key[1],
                      f"layer dropped in the other file ({p_chem.name}, row {chem_drop[key]})", key[0])
            continue
        if c is not None and p is not None and (c.top != p.top or c.bottom != p.bottom):
            for a, b in ((c, p), (p, c)):
                st.reject(a.file, a.line, "upper_depth", f"{a.top:g}-{a.bottom:g}",
                          f"depths differ between the layer files ({Path(b.file).name}, row {b.line}: "
                          f"{b.top:g} to {b.bottom:g} cm)", key[0])
            continue
        merged = c if c is not None else p
        assert merged is not None
        if c is not None and p is not None:
            merged = _Layer(c.pid, c.lid, c.file, c.line, c.top, c.bottom, c.name or p.name,
                            {**p.values, **c.values})
        if key[0] not in loaded:
            why = (f"site row rejected ({p_prof.name}, row {site_dropped[key[0]]})" if key[0] in site_dropped
                   else f"profile id has no row in {p_prof.name}")
            for lay in (c, p):
                if lay is not None:
                    st.reject(lay.file, lay.line, "profile_id", key[0], why, key[0])
            continue
        layers.append(merged)
    pe = {"dataset_id": np.array(extra["dataset_id"], dtype=str),
          "country_id": np.array(extra["country_id"], dtype=str),
          "dsds_cm": np.array(extra["dsds_cm"], dtype=np.float64)}
    return _build("wosis2019", (str(p_prof), str(p_chem), str(p_phys)), str(p_prof), sites, layers, st, pe)


# ====================================================================================== 2023
def read_wosis2023(snapshot_dir: str | Path) -> WosisProfileTable:
    """Read the WoSIS 2023-12 snapshot's per-property tables (``wosis.md`` §4; layout UNCONFIRMED).

    Parameters
    ----------
    snapshot_dir : path
        Folder holding ``wosis_202312_<code>.tsv`` (or ``.tsv.gz``) for ``orgc``, ``bdfiod``, ``bdfi33``,
        ``bdfifm``, ``bdfiad``, ``cfgr`` and ``cfvo``; optionally ``bdwsod``/``bdws33``/``bdwsfm``/``bdwsad``,
        ``clay``/``sand``/``silt``, ``phaq``, ``cecph7`` and ``wosis_202312_observations.tsv`` (units
        checked when it has ``code`` and ``unit`` columns).

    Returns
    -------
    WosisProfileTable
        Source ``"wosis2023"``: the profiles and layers of ``orgc.tsv`` (see the module docstring), values of
        the other tables joined on (``profile_id``, ``layer_id``).

    Raises
    ------
    ReaderError
        A required file is missing, or lacks a required column (message names file and column): in
        ``orgc.tsv`` ``profile_id, layer_id, upper_depth, lower_depth, organic_surface, value_avg,
        longitude, latitude``; in the other tables ``profile_id, layer_id, value_avg``.
    """
    d = Path(snapshot_dir)
    if not d.is_dir():
        raise ReaderError(f"{d}: WoSIS snapshot folder not found")
    st = _State()
    paths: dict[str, Path] = {}
    for code in (*_FILES_2023_REQUIRED, *_FILES_2023_OPTIONAL):
        p = _find(d, f"{SNAPSHOT_2023}_{code}", required=code in _FILES_2023_REQUIRED)
        if p is not None:
            paths[code] = p
    _check_units(_find(d, f"{SNAPSHOT_2023}_observations", required=False), tuple(paths), st)
    p_orgc = paths["orgc"]
    t_orgc = _Tsv(p_orgc, ("profile_id", "layer_id", "upper_depth", "lower_depth", "organic_surface", "value_avg",
                           "longitude", "latitude"), ("value", "layer_name"))
    others = {code: _Tsv(p, ("profile_id", "layer_id", "value_avg"), ("value",), f" (table of {code})")
              for code, p in paths.items() if code != "orgc"}

    # ---- orgc: profiles (coordinates) and layers
    sites: list[tuple[str, float, float, int]] = []
    coords: dict[str, tuple[float, float, int]] = {}
    layers: dict[tuple[str, str], _Layer] = {}
    first: dict[tuple[str, str], int] = {}
    for line, raw in t_orgc.rows(st.rejections):
        key = st.layer_key(t_orgc.name, line, raw, "layer_id", first)
        if key is None:
            continue
        pid, lid = key
        ll = _coordinates(raw, t_orgc.name, line, pid, st)
        if ll is None:
            continue
        if pid not in coords:  # the profile's site: its first row with good coordinates
            coords[pid] = (ll[0], ll[1], line)
            sites.append((pid, ll[0], ll[1], line))
        elif (coords[pid][0], coords[pid][1]) != ll:
            st.reject(t_orgc.name, line, "latitude", f"{raw['latitude']} {raw['longitude']}",
                      f"coordinates differ from those of the same profile at row {coords[pid][2]}", pid)
            continue
        dd = _depths_and_flag(raw, t_orgc.name, line, pid, "organic_surface", st)
        if dd is None:
            continue
        v, drop = _property(raw, "orgc", "value_avg", "value", t_orgc.name, line, pid, st)
        if drop:
            continue
        layers[key] = _Layer(pid, lid, t_orgc.name, line, dd[0], dd[1], raw.get("layer_name", "").strip(),
                             {"orgc": v})

    # ---- the other properties, joined on (profile_id, layer_id)
    for code, tsv in others.items():
        seen: dict[tuple[str, str], int] = {}
        n_unmatched = 0
        for line, raw in tsv.rows(st.rejections):
            key = (raw["profile_id"].strip(), raw["layer_id"].strip())
            lay = layers.get(key)
            if lay is None:
                n_unmatched += 1
                continue
            if key in seen:
                st.reject(tsv.name, line, "layer_id", key[1], f"duplicate layer id (first at row {seen[key]})",
                          key[0], "value")
                continue
            seen[key] = line
            v, _ = _property(raw, code, "value_avg", "value", tsv.name, line, key[0], st)
            lay.values[code] = v
        if n_unmatched:
            logger.info("%s: %d row(s) name layers without a kept orgc row (skipped)", tsv.path.name, n_unmatched)
    files = (str(p_orgc), *(str(p) for c, p in paths.items() if c != "orgc"))
    return _build("wosis2023", files, str(p_orgc), sites, list(layers.values()), st)


# ====================================================================================== deck entry points
def _snapshot_dir(section: Mapping[str, Any], fmt: str) -> Path:
    p = section.get("snapshot_dir")
    if not p:
        raise ReaderError(f"prepare.profiles.snapshot_dir: required for format {fmt!r} (the folder the "
                          f"snapshot zip was unpacked into)")
    return Path(p)


def read_wosis2019_deck(section: Mapping[str, Any]) -> WosisProfileTable:
    """Deck entry point of ``prepare.profiles.format: wosis2019``: reads ``section["snapshot_dir"]``."""
    return read_wosis2019(_snapshot_dir(section, "wosis2019"))


def read_wosis2023_deck(section: Mapping[str, Any]) -> WosisProfileTable:
    """Deck entry point of ``prepare.profiles.format: wosis2023``: reads ``section["snapshot_dir"]``."""
    return read_wosis2023(_snapshot_dir(section, "wosis2023"))
