"""Forcing of the soil models for a batch of sites or grid cells (``clm5.md`` §3, ``compas.md`` §3).

Both models read the same fields.  A :class:`Forcing` holds them as arrays with a leading batch axis ``S``
(sites or cells).  It can be built directly from the per-profile fields the authors' forward functions take
(:meth:`Forcing.from_proda_fields`), so a user can run a site from the same inputs PRODA used.

Shapes and units
----------------
==================  ============  ==========================  =========================================
field               shape         unit                         meaning
==================  ============  ==========================  =========================================
tsoi_k              (S, 20, 12)   K                            soil temperature (TSOI), monthly by layer
w_scalar            (S, 20, 12)   1 (0-1)                      CLM5 water scalar (W_SCALAR)
o_scalar            (S, 20, 12)   1 (0-1)                      oxygen scalar (O_SCALAR)
fpi                 (S, 20, 12)   1 (0-1)                      N-limitation scalar (FPI_vr), litter only
altmax_m            (S, 12)       m                            active-layer thickness this year (ALTMAX)
altmax_lastyear_m   (S, 12)       m                            last year's (ALTMAX_LASTYEAR)
nbedrock            (S,)          layer index 1..20            bedrock layer (20 = no shallow bedrock)
litter_input        (S, 4)        g C m-2 yr-1                 annual column input: CWD, L1, L2, L3
==================  ============  ==========================  =========================================

Litter pools are named L1/L2/L3 (CLM5: metabolic, cellulose, lignin) = ML/CL/LL in COMPAS.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .layers import DZ_M, N_LAYERS

N_MONTHS = 12
INPUT_POOLS = ("cwd", "l1", "l2", "l3")

#: field name -> (trailing shape, unit, allowed closed range or None)
FIELD_SPEC: dict[str, tuple[tuple[int, ...], str, tuple[float, float] | None]] = {
    "tsoi_k": ((N_LAYERS, N_MONTHS), "K", (150.0, 350.0)),
    "w_scalar": ((N_LAYERS, N_MONTHS), "1", (0.0, 1.0)),
    "o_scalar": ((N_LAYERS, N_MONTHS), "1", (0.0, 1.0)),
    "fpi": ((N_LAYERS, N_MONTHS), "1", (0.0, 1.0)),
    "altmax_m": ((N_MONTHS,), "m", (0.0, 1.0e3)),
    "altmax_lastyear_m": ((N_MONTHS,), "m", (0.0, 1.0e3)),
    "nbedrock": ((), "layer index", (1, N_LAYERS)),
    "litter_input": ((len(INPUT_POOLS),), "g C m-2 yr-1", (0.0, 1.0e5)),
}


class ForcingError(ValueError):
    """A forcing array has the wrong shape or type (a programming/input-format error, not a per-site one)."""


@dataclass(frozen=True)
class Forcing:
    """Forcing for ``S`` sites; see the module docstring for shapes and units."""

    tsoi_k: np.ndarray
    w_scalar: np.ndarray
    o_scalar: np.ndarray
    fpi: np.ndarray
    altmax_m: np.ndarray
    altmax_lastyear_m: np.ndarray
    nbedrock: np.ndarray
    litter_input: np.ndarray

    def __post_init__(self) -> None:
        n = None
        for f in fields(self):
            trailing, _unit, _rng = FIELD_SPEC[f.name]
            a = np.asarray(getattr(self, f.name))
            if f.name == "nbedrock":
                if a.ndim == 2 and a.shape[1] == N_MONTHS:  # CLM5 stores one value per month
                    a = a[:, 0]
                if np.issubdtype(a.dtype, np.floating):
                    fin = np.isfinite(a)
                    if np.any(np.abs(a[fin] - np.round(a[fin])) > 0):
                        raise ForcingError("forcing field 'nbedrock' must hold whole layer indices 1..20")
                    a = np.where(fin, np.round(a), -1).astype(np.int64)
                a = a.astype(np.int64)
            else:
                a = np.asarray(a, dtype=np.float64)
            if a.ndim != 1 + len(trailing) or a.shape[1:] != trailing:
                raise ForcingError(
                    f"forcing field {f.name!r} has shape {a.shape}, expected (S, {', '.join(map(str, trailing))})"
                    .replace(", )", ")")
                )
            if n is None:
                n = a.shape[0]
            elif a.shape[0] != n:
                raise ForcingError(f"forcing field {f.name!r} has {a.shape[0]} sites, other fields have {n}")
            object.__setattr__(self, f.name, a)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_proda_fields(
        cls,
        *,
        tsoi: np.ndarray,
        w_scalar: np.ndarray,
        o_scalar: np.ndarray,
        fpi_vr: np.ndarray,
        altmax: np.ndarray,
        altmax_lastyear: np.ndarray,
        nbedrock: np.ndarray,
        cwd_input_acc_vector: np.ndarray,
        litr1_input_acc_vector: np.ndarray,
        litr2_input_acc_vector: np.ndarray,
        litr3_input_acc_vector: np.ndarray,
    ) -> Forcing:
        """Build from the CESM2 fields PRODA's forward functions take, per site (``clm5.md`` §3.1-3.2).

        Arrays may be given for one site (no batch axis) or for ``S`` sites.  The four ``*_INPUT_ACC_VECTOR``
        fields are (S, 20, 12) per-layer monthly values; as in PRODA each level is multiplied by its ``dz`` (m),
        summed over the 20 levels and over the 12 months to an annual column input treated as g C m-2 yr-1.
        ``nbedrock`` may be (S,) or (S, 12) (CLM5 repeats it every month).
        """
        one = np.ndim(tsoi) == 2

        def b(x: np.ndarray) -> np.ndarray:
            x = np.asarray(x, dtype=np.float64)
            return x[None] if one else x

        acc = [b(v) for v in (cwd_input_acc_vector, litr1_input_acc_vector,
                              litr2_input_acc_vector, litr3_input_acc_vector)]
        for name, v in zip(INPUT_POOLS, acc):
            if v.ndim != 3 or v.shape[1:] != (N_LAYERS, N_MONTHS):
                raise ForcingError(f"{name} input ACC_VECTOR has shape {v.shape}, expected (S, 20, 12)")
        inputs = np.stack([np.einsum("szm,z->s", v, DZ_M[:N_LAYERS]) for v in acc], axis=1)
        nb = np.asarray(nbedrock)
        if one:
            nb = nb[None]
        return cls(
            tsoi_k=b(tsoi), w_scalar=b(w_scalar), o_scalar=b(o_scalar), fpi=b(fpi_vr),
            altmax_m=b(altmax), altmax_lastyear_m=b(altmax_lastyear), nbedrock=nb, litter_input=inputs,
        )

    # ------------------------------------------------------------------ batch helpers
    @property
    def n_sites(self) -> int:
        """Number of sites/cells ``S``."""
        return int(self.litter_input.shape[0])

    def take(self, index: np.ndarray | slice) -> Forcing:
        """Sub-batch (numpy indexing along the site axis)."""
        return Forcing(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concatenate(parts: list[Forcing]) -> Forcing:
        """Join batches along the site axis."""
        return Forcing(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Forcing)})

    def as_dict(self) -> dict[str, np.ndarray]:
        """Field name -> array (for writing to HDF5/netCDF)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, np.ndarray]) -> Forcing:
        """Inverse of :meth:`as_dict` (extra keys are ignored)."""
        return cls(**{f.name: np.asarray(d[f.name]) for f in fields(cls)})

    # ------------------------------------------------------------------ validation
    def check(self) -> tuple[np.ndarray, list[str]]:
        """Per-site validity: (ok (S,) bool, reason per site, '' where ok).

        A site is bad when a field is non-finite (NaN in *all* 12 months of a layer; PRODA ignores a NaN month),
        or outside the documented physical range in :data:`FIELD_SPEC`.  Never raises for bad values.
        """
        s = self.n_sites
        reasons = [""] * s
        for name, (trailing, unit, rng) in FIELD_SPEC.items():
            a = getattr(self, name).astype(np.float64)
            if name == "nbedrock":
                a = np.where(a < 0, np.nan, a)
            flat = a.reshape(s, -1) if a.ndim > 1 else a[:, None]
            if a.ndim == 3:  # a NaN month is ignored by PRODA's averages; a layer with 12 NaN months is not
                allnan = np.all(~np.isfinite(a), axis=2).any(axis=1)
            else:
                allnan = (~np.isfinite(flat)).any(axis=1)
            lo, hi = rng if rng is not None else (-np.inf, np.inf)
            with np.errstate(invalid="ignore"):
                out = ((flat < lo) | (flat > hi)).any(axis=1)
            for i in np.flatnonzero(allnan | out):
                if not reasons[i]:
                    j = int(np.flatnonzero(~np.isfinite(flat[i]) | (flat[i] < lo) | (flat[i] > hi))[0])
                    what = "non-finite" if allnan[i] else f"outside [{lo}, {hi}] {unit}"
                    reasons[i] = f"forcing {name}[{np.unravel_index(j, trailing) if trailing else ''}] " \
                                 f"= {flat[i, j]!r} is {what}"
        ok = np.array([r == "" for r in reasons], dtype=bool)
        return ok, reasons
