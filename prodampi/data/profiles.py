"""Soil-profile pre-processing (``proda_nn_maps.md`` §2): SOC density, pedo-transfer function, screening.

Units
-----
* SOC content ``soc_g_per_kg``: g C kg-1 of fine earth (= permille; GSIF ``ORCDRC``).
* Bulk density ``bd_g_cm3``: g cm-3 (= t m-3 = 1000 kg m-3).
* Coarse fragments ``coarse_pct``: % of soil volume.
* SOC density ``soc_density_g_m3``: g C m-3 of soil (the authors' column ``soc_stock``).

SOC density (``proda_nn_maps.md`` §2.2)::

    density [g C m-3] = SOC [g C kg-1] x BD [g cm-3] x 1000 [(kg m-3) per (g cm-3)] x (1 - coarse/100)

because g C kg-1 x kg m-3 = g C m-3.  Example: 10 g/kg at 1.3 g/cm3 without stones = 13,000 g C m-3
(13 kg C m-3).

Pedo-transfer function (PTF, §2.3), used where BD was not measured::

    BD [g cm-3] = a + b exp(-c OM),  OM = 1.724 x SOC [g kg-1],  (a, b, c) = (0.32, 1.30, 0.0089)

The paper writes SOC "in %", but the authors' code feeds g/kg, and only the g/kg form fits real data: on the
85,427 WoSIS BD/OC layers it gives R² = 0.26, the % form R² < 0 (``data/wosis_bd_oc_layers``).  prodampi
uses g/kg and treats the paper's unit as an erratum.

Screening (§2.4 and ``compas.md`` §6)
-------------------------------------
:func:`screen_profiles` keeps a profile iff it has **more than 2 layers with an SOC observation** and the
**bottom of its deepest such layer is below 50 cm** (strictly).  Layers without SOC are left out first;
layers the reader rejected (inverted depths, ...) never reach it.  This reproduces the counts documented
with the data: ISIS 646 profiles / 3,804 layers, AfSP 8,830 profiles / 37,358 layers.

The per-layer cleaning of ``compas.md`` §6 / ``clm5.md`` §6.1 (all observations 0 -> skip the profile;
otherwise drop layers with observation 0; drop layers with NaN depth or observation; skip the profile if
fewer than 2 layers remain) is what the DA applies *every time it simulates a profile*.  It is recorded for
every kept profile (``Profiles.obs_usable`` per layer, ``Profiles.da_usable`` per profile, and a note in the
ledger), and turns into a rejection only with ``screen_profiles(..., da_cleaning=True)``.  The paper's
counts (and the documented 646 / 8,830) are before that cleaning; with it, 4 of the 8,830 AfSP profiles are
rejected (2 have only zero observations, 2 keep a single non-zero layer).

Coarse fragments: the paper took them from SoilGrids at the profile location; here the horizon's measured
``coarse_pct`` is used, and 0 where it is missing (flag ``coarse_missing``).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from ..errors import InputDataError
from ..io.readers import ProfileTable

logger = logging.getLogger(__name__)

__all__ = [
    "OM_PER_SOC",
    "PAPER_PTF",
    "REASON_CODES",
    "LedgerEntry",
    "PTFFit",
    "Profiles",
    "ScreeningLedger",
    "ScreeningResult",
    "clean_observations",
    "fit_ptf",
    "ptf_bulk_density",
    "ptf_r2",
    "r_squared",
    "screen_profiles",
    "soc_density_g_m3",
]

#: Van Bemmelen factor: organic matter = 1.724 x organic carbon.
OM_PER_SOC: float = 1.724
#: The paper's PTF coefficients (a [g cm-3], b [g cm-3], c [per g OM kg-1]).
PAPER_PTF: tuple[float, float, float] = (0.32, 1.30, 0.0089)


# ====================================================================================== SOC density and PTF
def soc_density_g_m3(soc_g_per_kg: np.ndarray, bd_g_cm3: np.ndarray,
                     coarse_pct: np.ndarray | float = 0.0) -> np.ndarray:
    """SOC density (g C m-3) from content (g C kg-1), bulk density (g cm-3) and coarse fragments (% vol).

    ``density = soc * bd * 1000 * (1 - coarse/100)``; NaN in, NaN out (pass 0 for missing coarse fragments).
    """
    soc = np.asarray(soc_g_per_kg, dtype=np.float64)
    bd = np.asarray(bd_g_cm3, dtype=np.float64)
    cf = np.asarray(coarse_pct, dtype=np.float64)
    return soc * bd * 1000.0 * (1.0 - cf / 100.0)


def ptf_bulk_density(soc_g_per_kg: np.ndarray, a: float = PAPER_PTF[0], b: float = PAPER_PTF[1],
                     c: float = PAPER_PTF[2], om_factor: float = OM_PER_SOC) -> np.ndarray:
    """Bulk density (g cm-3) from SOC content by the PTF ``a + b exp(-c * om_factor * SOC)``.

    Parameters
    ----------
    soc_g_per_kg : array_like
        SOC content, g C kg-1 (pass SOC in % times 10 to use %-data; see the module docstring).
    a, b, c : float
        Coefficients; ``c`` is per g OM kg-1.  Default: the paper's (0.32, 1.30, 0.0089).
    om_factor : float
        OM / SOC ratio (1.724).
    """
    soc = np.asarray(soc_g_per_kg, dtype=np.float64)
    return a + b * np.exp(-c * om_factor * soc)


def r_squared(observed: np.ndarray, predicted: np.ndarray) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` of predictions (can be negative)."""
    y = np.asarray(observed, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - p) ** 2)) / ss_tot if ss_tot > 0 else math.nan


def _ptf_data(soc_g_per_kg: np.ndarray, bd_g_cm3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    soc = np.asarray(soc_g_per_kg, dtype=np.float64).ravel()
    bd = np.asarray(bd_g_cm3, dtype=np.float64).ravel()
    if soc.shape != bd.shape:
        raise ValueError(f"SOC ({soc.shape}) and BD ({bd.shape}) differ in length")
    ok = np.isfinite(soc) & np.isfinite(bd) & (soc >= 0) & (bd > 0)
    return soc[ok], bd[ok]


def ptf_r2(soc_g_per_kg: np.ndarray, bd_g_cm3: np.ndarray,
           coefficients: Sequence[float] = PAPER_PTF, *, soc_unit: str = "g/kg") -> float:
    """R² of the PTF against measured bulk density.

    Parameters
    ----------
    soc_g_per_kg : array_like
        Measured SOC content, g C kg-1.
    bd_g_cm3 : array_like
        Measured bulk density, g cm-3.
    coefficients : (a, b, c)
        PTF coefficients (default: the paper's).
    soc_unit : {"g/kg", "percent"}
        Unit in which SOC is fed to the PTF: ``"percent"`` divides the g/kg values by 10 first (the paper's
        text; gives R² < 0 on real data).

    Returns
    -------
    float
        ``1 - SS_res/SS_tot`` over the layers with finite SOC >= 0 and BD > 0.
    """
    soc, bd = _ptf_data(soc_g_per_kg, bd_g_cm3)
    if soc_unit == "percent":
        soc = soc / 10.0
    elif soc_unit != "g/kg":
        raise ValueError(f"soc_unit must be 'g/kg' or 'percent', not {soc_unit!r}")
    a, b, c = coefficients
    return r_squared(bd, ptf_bulk_density(soc, a, b, c))


@dataclass(frozen=True)
class PTFFit:
    """Result of :func:`fit_ptf`: coefficients (SOC in g/kg), R² and number of layers used."""

    a: float
    b: float
    c: float
    r2: float
    n: int

    @property
    def coefficients(self) -> tuple[float, float, float]:
        """(a, b, c)."""
        return (self.a, self.b, self.c)


def fit_ptf(soc_g_per_kg: np.ndarray, bd_g_cm3: np.ndarray,
            p0: Sequence[float] = (0.3, 1.3, 0.01), om_factor: float = OM_PER_SOC) -> PTFFit:
    """Refit the PTF coefficients by non-linear least squares (``scipy.optimize.curve_fit``).

    Parameters
    ----------
    soc_g_per_kg, bd_g_cm3 : array_like
        Measured SOC content (g C kg-1) and bulk density (g cm-3) of the same layers; pairs with a
        non-finite value, SOC < 0 or BD <= 0 are ignored.
    p0 : (a, b, c)
        Initial guess (``proda_nn_maps.md`` §2.3 suggests (0.3, 1.3, 0.01)).
    om_factor : float
        OM / SOC ratio.

    Returns
    -------
    PTFFit
        Coefficients with OM in g kg-1, their R² on the fitted layers, and the number of layers.
    """
    from scipy.optimize import curve_fit

    soc, bd = _ptf_data(soc_g_per_kg, bd_g_cm3)
    if soc.size < 3:
        raise ValueError(f"need at least 3 layers with SOC and BD to fit the PTF, got {soc.size}")

    def f(s: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
        return ptf_bulk_density(s, a, b, c, om_factor)

    popt, _ = curve_fit(f, soc, bd, p0=list(p0), maxfev=20000)
    a, b, c = (float(x) for x in popt)
    return PTFFit(a, b, c, r_squared(bd, f(soc, a, b, c)), int(soc.size))


# ====================================================================================== DA cleaning
def clean_observations(node_depth_m: np.ndarray, obs_g_m3: np.ndarray) -> tuple[np.ndarray, str]:
    """Per-layer cleaning the DA applies before simulating a profile (``compas.md`` §6, ``clm5.md`` §6.1).

    Parameters
    ----------
    node_depth_m : array_like, (n,)
        Layer node depths, m.
    obs_g_m3 : array_like, (n,)
        Observed SOC density, g C m-3.

    Returns
    -------
    mask : ndarray of bool, (n,)
        Layers the DA uses (all False when the profile is skipped).
    reason : str
        ``""`` when usable, else why the DA skips the profile.
    """
    z = np.asarray(node_depth_m, dtype=np.float64)
    y = np.asarray(obs_g_m3, dtype=np.float64)
    if y.size and np.all(y == 0):
        return np.zeros(y.shape, dtype=bool), "all observations are 0"
    with np.errstate(invalid="ignore"):
        mask = (y > 0) if np.any(y == 0) else np.ones(y.shape, dtype=bool)
    mask &= np.isfinite(z) & np.isfinite(y)
    n = int(mask.sum())
    if n < 2:
        return np.zeros(y.shape, dtype=bool), f"{n} usable observation(s) after dropping zero/NaN layers"
    return mask, ""


# ====================================================================================== Profiles container
_LAYER_FLOAT = ("top_cm", "bottom_cm", "soc_g_per_kg", "bd_g_cm3", "coarse_pct", "soc_density_g_m3")
_LAYER_BOOL = ("bd_from_ptf", "coarse_missing", "obs_usable")
_LAYER_TEXT = ("bd_source",)


@dataclass
class Profiles:
    """Screened profiles as a ragged layer table (CSR-style: ``offsets``).

    Attributes
    ----------
    profile_id : ndarray of str, (P,)
    source : ndarray of str, (P,)
        Data set each profile came from (``"isis"``, ``"afsp"``, ``"ncscd"`` ...).
    lat, lon : ndarray of float64, (P,)
        Degrees north / east.
    offsets : ndarray of int64, (P+1,)
        Layers of profile ``i`` are ``offsets[i]:offsets[i+1]``; inside a profile layers are sorted by top
        then bottom depth.
    top_cm, bottom_cm : ndarray of float64, (L,)
        Layer bounds, cm (negative: organic layer above the mineral surface, ISRIC convention).
    soc_g_per_kg : ndarray of float64, (L,)
        SOC content, g C kg-1 (NaN where the source gives density directly, e.g. NCSCD).
    bd_g_cm3 : ndarray of float64, (L,)
        Bulk density used, g cm-3: measured, or from the PTF where ``bd_from_ptf`` (NaN for NCSCD).
    coarse_pct : ndarray of float64, (L,)
        Coarse fragments used, % vol (0 where ``coarse_missing``).
    soc_density_g_m3 : ndarray of float64, (L,)
        SOC density, g C m-3 (the DA's observation).
    bd_from_ptf, coarse_missing : ndarray of bool, (L,)
        BD came from the PTF (the authors' ``is_pedo``); coarse fragments were missing (taken as 0).
    obs_usable : ndarray of bool, (L,)
        Layer survives the DA cleaning (:func:`clean_observations`).
    bd_source : ndarray of str, (L,), optional
        Where each layer's BD came from: ``"ptf"`` (pedo-transfer function), the source column for readers
        that record it (WoSIS: ``"bdfiod"``, ``"bdfi33"``, ``"bdfifm"``, ``"bdfiad"``, ``"bdws33+cfgr"``,
        ...), ``"measured"`` otherwise, ``""`` where no BD is used (SOC density given directly, NCSCD).
        Default (None): derived from ``bd_from_ptf`` and ``bd_g_cm3`` that way.
    """

    profile_id: np.ndarray
    source: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    offsets: np.ndarray
    top_cm: np.ndarray
    bottom_cm: np.ndarray
    soc_g_per_kg: np.ndarray
    bd_g_cm3: np.ndarray
    coarse_pct: np.ndarray
    soc_density_g_m3: np.ndarray
    bd_from_ptf: np.ndarray
    coarse_missing: np.ndarray
    obs_usable: np.ndarray
    bd_source: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.profile_id = np.asarray(self.profile_id, dtype=str)
        self.source = np.asarray(self.source, dtype=str)
        self.lat = np.asarray(self.lat, dtype=np.float64)
        self.lon = np.asarray(self.lon, dtype=np.float64)
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        for c in _LAYER_FLOAT:
            setattr(self, c, np.asarray(getattr(self, c), dtype=np.float64))
        for c in _LAYER_BOOL:
            setattr(self, c, np.asarray(getattr(self, c), dtype=bool))
        if self.bd_source is None:
            self.bd_source = np.where(self.bd_from_ptf, "ptf",
                                      np.where(np.isfinite(self.bd_g_cm3), "measured", "")).astype(str)
        self.bd_source = np.asarray(self.bd_source, dtype=str)
        p = self.profile_id.shape[0]
        for c in ("source", "lat", "lon"):
            if getattr(self, c).shape != (p,):
                raise ValueError(f"Profiles.{c} has shape {getattr(self, c).shape}, expected ({p},)")
        if self.offsets.shape != (p + 1,) or self.offsets[0] != 0 or np.any(np.diff(self.offsets) < 0):
            raise ValueError("Profiles.offsets must be (P+1,), start at 0 and be non-decreasing")
        n = int(self.offsets[-1])
        for c in _LAYER_FLOAT + _LAYER_BOOL + _LAYER_TEXT:
            if getattr(self, c).shape != (n,):
                raise ValueError(f"Profiles.{c} has shape {getattr(self, c).shape}, expected ({n},)")

    # ------------------------------------------------------------------ sizes and access
    @property
    def n_profiles(self) -> int:
        """Number of profiles ``P``."""
        return int(self.profile_id.shape[0])

    @property
    def n_layers(self) -> int:
        """Total number of layers ``L``."""
        return int(self.offsets[-1])

    @property
    def layers_per_profile(self) -> np.ndarray:
        """(P,) number of layers of each profile."""
        return np.diff(self.offsets)

    @property
    def node_depth_m(self) -> np.ndarray:
        """(L,) layer node depth ``(top + bottom) / 2``, converted from cm to m."""
        return (self.top_cm + self.bottom_cm) / 200.0

    @property
    def layer_profile(self) -> np.ndarray:
        """(L,) index of the profile each layer belongs to."""
        return np.repeat(np.arange(self.n_profiles), self.layers_per_profile)

    @property
    def da_usable(self) -> np.ndarray:
        """(P,) the profile keeps >= 2 layers after the DA cleaning."""
        n_use = np.bincount(self.layer_profile, weights=self.obs_usable.astype(np.float64),
                            minlength=self.n_profiles)
        return n_use >= 2

    def layer_slice(self, i: int) -> slice:
        """Slice of profile ``i``'s layers in the layer arrays."""
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def observations(self, i: int, cleaned: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(node depth m, SOC density g C m-3) of profile ``i``, DA-cleaned unless ``cleaned=False``."""
        s = self.layer_slice(i)
        z, y = self.node_depth_m[s], self.soc_density_g_m3[s]
        if cleaned:
            m = self.obs_usable[s]
            return z[m], y[m]
        return z, y

    def index_of(self, profile_id: str) -> int:
        """Row of a profile id (first match); KeyError if absent."""
        hit = np.flatnonzero(self.profile_id == profile_id)
        if hit.size == 0:
            raise KeyError(profile_id)
        return int(hit[0])

    def take(self, index: np.ndarray | Sequence[int]) -> Profiles:
        """Subset of profiles (in the given order)."""
        idx = np.asarray(index, dtype=np.int64)
        counts = self.layers_per_profile[idx]
        lidx = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in idx]) \
            if idx.size else np.zeros(0, dtype=np.int64)
        return Profiles(
            profile_id=self.profile_id[idx], source=self.source[idx], lat=self.lat[idx], lon=self.lon[idx],
            offsets=np.concatenate([[0], np.cumsum(counts)]),
            **{c: getattr(self, c)[lidx] for c in _LAYER_FLOAT + _LAYER_BOOL + _LAYER_TEXT})

    @staticmethod
    def concatenate(parts: Sequence[Profiles]) -> Profiles:
        """Join profile sets (e.g. ISIS + AfSP + NCSCD)."""
        counts = np.concatenate([p.layers_per_profile for p in parts]) if parts else np.zeros(0, np.int64)
        return Profiles(
            profile_id=np.concatenate([p.profile_id for p in parts]),
            source=np.concatenate([p.source for p in parts]),
            lat=np.concatenate([p.lat for p in parts]), lon=np.concatenate([p.lon for p in parts]),
            offsets=np.concatenate([[0], np.cumsum(counts)]),
            **{c: np.concatenate([getattr(p, c) for p in parts])
               for c in _LAYER_FLOAT + _LAYER_BOOL + _LAYER_TEXT})

    # ------------------------------------------------------------------ plain arrays (HDF5)
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for HDF5: ids as UTF-8 bytes (``S``), flags as uint8, numbers float64/int64.

        Keys: ``profile_id``, ``source``, ``lat``, ``lon`` (P,); ``offsets`` (P+1,); ``top_cm``,
        ``bottom_cm``, ``node_depth_m``, ``soc_g_per_kg``, ``bd_g_cm3``, ``coarse_pct``,
        ``soc_density_g_m3``, ``bd_from_ptf``, ``coarse_missing``, ``obs_usable``, ``bd_source`` (L,).
        """
        out: dict[str, np.ndarray] = {
            "profile_id": np.char.encode(self.profile_id, "utf-8") if self.n_profiles
            else np.zeros(0, dtype="S1"),
            "source": np.char.encode(self.source, "utf-8") if self.n_profiles else np.zeros(0, dtype="S1"),
            "lat": self.lat.copy(), "lon": self.lon.copy(), "offsets": self.offsets.copy(),
            "node_depth_m": self.node_depth_m,
        }
        for c in _LAYER_FLOAT:
            out[c] = getattr(self, c).copy()
        for c in _LAYER_BOOL:
            out[c] = getattr(self, c).astype(np.uint8)
        for c in _LAYER_TEXT:
            out[c] = np.char.encode(getattr(self, c), "utf-8") if self.n_layers else np.zeros(0, dtype="S1")
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Profiles:
        """Inverse of :meth:`to_arrays` (``node_depth_m`` is recomputed, not read; extra keys ignored; without
        ``bd_source``, as in files written before it existed, it is derived as in :class:`Profiles`)."""

        def text(a: np.ndarray) -> np.ndarray:
            a = np.asarray(a)
            if a.dtype.kind == "S":
                return np.char.decode(a, "utf-8") if a.size else np.zeros(0, dtype="<U1")
            if a.dtype.kind == "O":
                return np.array([x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in a], dtype=str)
            return a.astype(str)

        kw = {f.name: np.asarray(arrays[f.name]) for f in fields(cls) if f.name not in _LAYER_TEXT}
        kw["profile_id"] = text(arrays["profile_id"])
        kw["source"] = text(arrays["source"])
        for c in _LAYER_TEXT:
            kw[c] = text(arrays[c]) if c in arrays else None
        for c in _LAYER_BOOL:
            kw[c] = np.asarray(arrays[c]).astype(bool)
        return cls(**kw)


# ====================================================================================== ledger
@dataclass(frozen=True)
class LedgerEntry:
    """Outcome of screening for one input profile.

    ``reasons`` are ``"code: detail"`` strings (why a profile was rejected); ``notes`` are remarks that did
    not reject it (e.g. horizon rows the reader dropped, DA cleaning outcome).
    """

    profile_id: str
    source: str
    outcome: str  # "kept" | "rejected"
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    n_layers_read: int = 0
    n_layers_kept: int = 0

    @property
    def reason_codes(self) -> tuple[str, ...]:
        """The codes of ``reasons`` (text before the first colon)."""
        return tuple(r.split(":", 1)[0] for r in self.reasons)


#: Deepest plausible layer bottom (cm).  Deeper profiles are rejected with ``depth_units`` (depths in mm).
MAX_DEPTH_CM: float = 1500.0
#: A table whose profiles' median deepest bottom lies beyond :data:`MEDIAN_DEPTH_MM_CM` (soil profiles are
#: typically 1-2 m deep: in mm they read 1,000-2,000) or within :data:`MIN_PLAUSIBLE_BOTTOM_CM` of the
#: surface (in m they read 1-2) is an error naming its depth column: depths in mm or m, not cm.
MEDIAN_DEPTH_MM_CM: float = 500.0
MIN_PLAUSIBLE_BOTTOM_CM: float = 5.0

#: Rejection codes used by :func:`screen_profiles`.
REASON_CODES: dict[str, str] = {
    "site_rejected": "the reader dropped the profile's site row (bad/missing coordinates, duplicate id)",
    "no_site": "horizon rows name a profile id that has no site row",
    "too_few_layers": "2 or fewer layers with an SOC observation",
    "too_shallow": "deepest layer with SOC ends at or above the depth limit (50 cm)",
    "depth_units": "a layer with SOC ends below MAX_DEPTH_CM = 1,500 cm: depths in mm, or not in cm",
    "da_skip": "the DA cleaning (compas.md §6) leaves fewer than 2 usable layers (da_cleaning=True only)",
}


@dataclass
class ScreeningLedger:
    """Every input profile with its screening outcome."""

    entries: list[LedgerEntry] = field(default_factory=list)

    @property
    def n_kept(self) -> int:
        """Number of kept profiles."""
        return sum(e.outcome == "kept" for e in self.entries)

    @property
    def n_rejected(self) -> int:
        """Number of rejected profiles."""
        return sum(e.outcome == "rejected" for e in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def ids(self, outcome: str | None = None) -> list[str]:
        """Profile ids, optionally only those with the given outcome."""
        return [e.profile_id for e in self.entries if outcome is None or e.outcome == outcome]

    def entry(self, profile_id: str, source: str | None = None) -> LedgerEntry:
        """The entry of a profile id (KeyError if absent)."""
        for e in self.entries:
            if e.profile_id == profile_id and (source is None or e.source == source):
                return e
        raise KeyError(profile_id)

    def reason_counts(self) -> dict[str, int]:
        """Number of rejected profiles per reason code (a profile may count under several codes)."""
        c: Counter[str] = Counter()
        for e in self.entries:
            c.update(set(e.reason_codes))
        return dict(sorted(c.items()))

    def unaccounted(self, profile_ids: Iterable[str]) -> list[str]:
        """Ids from ``profile_ids`` that have no ledger entry (empty when the ledger is complete)."""
        have = {e.profile_id for e in self.entries}
        return [p for p in profile_ids if p not in have]

    def summary(self) -> str:
        """One-paragraph text summary (counts per outcome and reason)."""
        parts = [f"{len(self)} profiles: {self.n_kept} kept, {self.n_rejected} rejected"]
        parts += [f"  {k}: {v}" for k, v in self.reason_counts().items()]
        return "\n".join(parts)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (UTF-8 bytes; reasons/notes joined with ``"; "``) for HDF5."""

        def b(xs: list[str]) -> np.ndarray:
            return np.array([x.encode("utf-8") for x in xs], dtype=bytes) if xs else np.zeros(0, dtype="S1")

        return {
            "profile_id": b([e.profile_id for e in self.entries]),
            "source": b([e.source for e in self.entries]),
            "kept": np.array([e.outcome == "kept" for e in self.entries], dtype=np.uint8),
            "reasons": b(["; ".join(e.reasons) for e in self.entries]),
            "notes": b(["; ".join(e.notes) for e in self.entries]),
            "n_layers_read": np.array([e.n_layers_read for e in self.entries], dtype=np.int64),
            "n_layers_kept": np.array([e.n_layers_kept for e in self.entries], dtype=np.int64),
        }

    @staticmethod
    def concatenate(parts: Sequence[ScreeningLedger]) -> ScreeningLedger:
        """Join ledgers of several sources."""
        return ScreeningLedger([e for p in parts for e in p.entries])


@dataclass
class ScreeningResult:
    """Output of :func:`screen_profiles`: the kept profiles and the ledger of all input profiles."""

    profiles: Profiles
    ledger: ScreeningLedger


# ====================================================================================== screening
def _check_depth_units(table: ProfileTable, bottom_cm: np.ndarray) -> None:
    """Raise :class:`~prodampi.errors.InputDataError` when most profiles' depths cannot be centimetres.

    Parameters
    ----------
    table : the profile table (its ``files`` name the input in the message)
    bottom_cm : (L,) layer bottoms as read (cm if the table is right)
    """
    fin = np.isfinite(bottom_cm)
    if not fin.any() or table.source == "synthetic":  # the embedded world writes cm by construction
        return
    deepest = np.full(table.profile_id.shape[0], np.nan)
    np.fmax.at(deepest, table.layer_profile[fin], bottom_cm[fin])
    d = deepest[np.isfinite(deepest)]
    files = ", ".join(map(str, table.files)) or table.source
    med = float(np.median(d))
    if med > MEDIAN_DEPTH_MM_CM:
        raise InputDataError(f"{files}: layer bottom depth (bottom_cm): the median profile ends at {med:g} cm "
                             f"(> {MEDIAN_DEPTH_MM_CM:g} cm); the depths look like mm, not cm")
    if med <= MIN_PLAUSIBLE_BOTTOM_CM:
        raise InputDataError(f"{files}: layer bottom depth (bottom_cm): the median profile ends at {med:g} cm "
                             f"(<= {MIN_PLAUSIBLE_BOTTOM_CM:g} cm); the depths look like metres, not cm")


def screen_profiles(
    table: ProfileTable, *, min_layers_exclusive: int = 2, min_max_depth_cm: float = 50.0,
    ptf: Sequence[float] = PAPER_PTF, da_cleaning: bool = False,
) -> ScreeningResult:
    """Screen a :class:`~prodampi.io.readers.ProfileTable` as in Tao et al. (2024) and build SOC densities.

    Parameters
    ----------
    table : ProfileTable
        From :func:`~prodampi.io.readers.read_profile_table` or
        :func:`~prodampi.io.readers.read_ncscd_pedons`.
    min_layers_exclusive : int
        Keep profiles with **more than** this many layers with an SOC observation (paper: 2).
    min_max_depth_cm : float
        Keep profiles whose deepest SOC layer's bottom is **below** this depth, cm (paper: 50).
    ptf : (a, b, c)
        PTF coefficients for layers without measured BD (SOC in g/kg).
    da_cleaning : bool
        Also reject profiles the DA cleaning (:func:`clean_observations`) would skip (reason ``da_skip``).
        Default False: the paper's counts are before that cleaning; the outcome is always recorded in
        ``Profiles.obs_usable`` and in the ledger notes.

    Returns
    -------
    ScreeningResult
        ``profiles``: kept profiles with their SOC layers; ``ledger``: one entry per id in
        ``table.input_profile_ids`` (and per loaded profile), kept or rejected with reasons.

    Notes
    -----
    A layer "has an SOC observation" when its SOC content is finite, or (sources giving density directly)
    its SOC density is finite.  Where BD is missing it comes from the PTF (``bd_from_ptf``); where coarse
    fragments are missing they are taken as 0 (``coarse_missing``).

    Tables that label each layer's BD source (``table.layer_labels["bd_source"]``, the WoSIS readers) pass
    it on to ``Profiles.bd_source`` (``"ptf"`` where the PTF filled it), and each kept profile's ledger notes
    then also count its layers per BD source and its layers without coarse fragments; per-profile remarks of
    the reader (``table.profile_notes``) are copied into the notes.  Tables without them (ISIS, AfSP,
    NCSCD, synthetic) get ``bd_source`` ``"measured"``/``"ptf"``/``""`` and the same ledger as before.
    """
    src = table.source
    t_ids = np.asarray(table.profile_id)
    n_prof = t_ids.shape[0]
    lay = table.layers
    rej_by_pid = table.rejections_by_profile()
    soc_all = lay["soc_g_per_kg"]
    dens_given = lay.get("soc_density_g_m3", np.full(soc_all.shape, np.nan))
    top_all, bot_all = lay["top_cm"], lay["bottom_cm"]

    # ---- the paper's filter, vectorised over profiles
    li = np.flatnonzero(np.isfinite(soc_all) | np.isfinite(dens_given))  # layers with an SOC observation
    lp = table.layer_profile[li]
    n_obs = np.bincount(lp, minlength=n_prof)
    deepest = np.full(n_prof, -np.inf)
    np.maximum.at(deepest, lp, bot_all[li])
    too_few = n_obs <= min_layers_exclusive
    too_shallow = ~(deepest > min_max_depth_cm)
    _check_depth_units(table, bot_all)
    too_deep = deepest > MAX_DEPTH_CM  # an SOC layer deeper than any soil profile: depths in mm
    keep = ~too_few & ~too_shallow & ~too_deep

    # ---- layers of the kept profiles, sorted by (profile, top, bottom)
    sel = li[keep[lp]]
    sel = sel[np.lexsort((bot_all[sel], top_all[sel], table.layer_profile[sel]))]
    sp = table.layer_profile[sel]
    soc = soc_all[sel]
    direct = np.isfinite(dens_given[sel])
    bd_meas = table.layers["bd_g_cm3"][sel]
    from_ptf = ~np.isfinite(bd_meas) & ~direct
    a, b, c = ptf
    bd = np.where(from_ptf, ptf_bulk_density(soc, a, b, c), bd_meas)
    cf_raw = lay["coarse_pct"][sel]
    cf_missing = ~np.isfinite(cf_raw) & ~direct
    cf = np.where(np.isfinite(cf_raw), cf_raw, 0.0)
    dens = np.where(direct, dens_given[sel], soc_density_g_m3(soc, bd, cf))
    node = (top_all[sel] + bot_all[sel]) / 200.0
    labels = getattr(table, "layer_labels", None) or {}
    bd_labels = labels.get("bd_source")
    if bd_labels is not None:
        lab = np.asarray(bd_labels, dtype=str)[sel]
        lab = np.where(lab == "", "measured", lab)
    else:
        lab = np.full(sel.shape, "measured")
    bd_source = np.where(from_ptf, "ptf", np.where(np.isfinite(bd), lab, "")).astype(str)
    reader_notes = getattr(table, "profile_notes", None) or {}
    starts = np.searchsorted(sp, np.arange(n_prof + 1))  # sel is sorted by profile

    # ---- DA cleaning (same rules as clean_observations, vectorised)
    n_sel = np.bincount(sp, minlength=n_prof)
    n_zero = np.bincount(sp, weights=(dens == 0).astype(np.float64), minlength=n_prof)
    all_zero = (n_sel > 0) & (n_zero == n_sel)
    any_zero = n_zero > 0
    with np.errstate(invalid="ignore"):
        usable = np.where(any_zero[sp], dens > 0, True) & np.isfinite(node) & np.isfinite(dens)
    n_use = np.bincount(sp, weights=usable.astype(np.float64), minlength=n_prof).astype(np.int64)
    da_skip = keep & (all_zero | (n_use < 2))
    usable &= ~da_skip[sp]
    if da_cleaning:
        keep_final = keep & ~da_skip
        usable_rows = keep_final[sp]
    else:
        keep_final = keep
        usable_rows = np.ones(sel.shape, dtype=bool)

    # ---- ledger
    entries: dict[str, LedgerEntry] = {}
    n_read = np.diff(table.offsets)
    for i, pid in enumerate(t_ids.tolist()):
        notes = []
        rj = rej_by_pid.get(pid)
        if rj:
            rows_dropped = {(r.file, r.row) for r in rj if r.scope == "row"}
            if rows_dropped:
                notes.append(f"reader dropped {len(rows_dropped)} row(s): " + " | ".join(
                    sorted({r.reason.split(" (")[0] for r in rj if r.scope == "row"})))
        reasons = []
        if too_few[i]:
            reasons.append(f"too_few_layers: {n_obs[i]} layer(s) with SOC (need > {min_layers_exclusive})")
        if too_shallow[i]:
            reasons.append(f"too_shallow: deepest SOC layer ends at {deepest[i]:g} cm "
                           f"(need > {min_max_depth_cm:g} cm)")
        if too_deep[i]:
            reasons.append(f"depth_units: an SOC layer ends at {deepest[i]:g} cm, below the deepest plausible "
                           f"{MAX_DEPTH_CM:g} cm (depths in mm?)")
        if keep[i]:
            if da_skip[i]:
                why = "all observations are 0" if all_zero[i] else \
                    f"{n_use[i]} usable observation(s) after dropping zero/NaN layers"
                notes.append(f"da_cleaning: {why}")
                if da_cleaning:
                    reasons.append(f"da_skip: {why}")
            elif n_use[i] < n_sel[i]:
                notes.append(f"da_cleaning: drops {n_sel[i] - n_use[i]} zero/NaN layer(s)")
        if bd_labels is not None and keep[i]:
            mine = slice(int(starts[i]), int(starts[i + 1]))
            cnt = Counter(bd_source[mine].tolist())
            notes.append("bd_source: " + ", ".join(f"{k} {v}" for k, v in sorted(cnt.items())))
            n_cf = int(cf_missing[mine].sum())
            if n_cf:
                notes.append(f"coarse_missing: {n_cf} layer(s) without coarse fragments, taken as 0")
        notes.extend(reader_notes.get(pid, ()))
        kept = not reasons
        entries[pid] = LedgerEntry(pid, src, "kept" if kept else "rejected", tuple(reasons), tuple(notes),
                                   int(n_read[i]), int(n_sel[i]) if kept else 0)
    # profiles met in the input but not loaded by the reader
    for pid in table.input_profile_ids:
        if pid not in entries:
            why = table.not_loaded.get(pid, "site_rejected: not loaded by the reader")
            n_rows = len({(r.file, r.row) for r in rej_by_pid.get(pid, [])})
            entries[pid] = LedgerEntry(pid, src, "rejected", (why,), tuple(reader_notes.get(pid, ())), n_rows, 0)
    order = dict.fromkeys([*table.input_profile_ids, *t_ids.tolist()])
    ledger = ScreeningLedger([entries[p] for p in order])

    # ---- container
    kidx = np.flatnonzero(keep_final)
    r = usable_rows
    counts = np.bincount(sp[r], minlength=n_prof)[kidx]
    profiles = Profiles(
        profile_id=t_ids[kidx], source=np.full(kidx.size, src), lat=table.lat[kidx], lon=table.lon[kidx],
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        top_cm=top_all[sel][r], bottom_cm=bot_all[sel][r], soc_g_per_kg=soc[r], bd_g_cm3=bd[r],
        coarse_pct=cf[r], soc_density_g_m3=dens[r], bd_from_ptf=from_ptf[r], coarse_missing=cf_missing[r],
        obs_usable=usable[r], bd_source=bd_source[r],
    )
    logger.info("%s screening: %d of %d profiles kept (%d layers); DA cleaning %s %d; reasons %s",
                src, ledger.n_kept, len(ledger), profiles.n_layers,
                "rejected" if da_cleaning else "would skip", int(da_skip.sum()), ledger.reason_counts())
    return ScreeningResult(profiles, ledger)
