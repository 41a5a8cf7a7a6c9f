"""COMPAS (PRODA ``mic_vr_v22``): microbial soil-carbon model with an analytic steady state.

Specification: ``compas.md`` (main), ``clm5.md`` §1 and §4.5-4.6 (shared grid, transport, input profile) and
``proda_nn_maps.md`` §8.6 and §8.8 (component maps, Km/substrate ratios).

Model summary
-------------
Eight pools per layer z = 1..20, in this order: CWD, ML (metabolic litter), CL (cellulose litter),
LL (lignin litter), DOC, MIC, ENZ, mSOC.  All densities are g C m-3 of soil layer; rates inside the model are
d-1, turnover-time parameters are yr, and 1 yr = 365 d.

* Litter is linear.  CWD decays in place, its flux goes to CL (fraction ``fcwdl2``) and LL (the rest).  ML,
  CL and LL decay and also move vertically by the month-averaged tridiagonal transport operator ``T``
  (dynamics ``-T x``), which is linear in the two diffusivities: ``T = bio T_b + cryo T_c``.
* The four soil pools do not move.  Per layer, with the environmental scalar xi and litter outfluxes u:

  ``U = Va xi MIC DOC / (Ka xi + DOC)`` (DOC uptake), ``D = Vd xi ENZ mSOC / (Kd xi + mSOC)``
  (depolymerisation), and

  - dDOC/dt = u_DOC + (1 - pd) kdth xi MIC + kE xi ENZ + D - U
  - dMIC/dt = u_MIC + eps U - (kdth + kenz) xi MIC
  - dENZ/dt = kenz xi MIC - kE xi ENZ
  - dmSOC/dt = u_mSOC + pd kdth xi MIC - D

  whose steady state is closed-form (``compas.md`` §5.2, :func:`soil_closed_form`).

Environmental scalar (``compas.md`` §4.3): xi_z = mean_m(q10^((T-298.15)/10)) * mean_m(min(1, w W)) *
mean_m(O) * exp(-zsoi_z / 0.5 m); the N scalar mean_m(FPI) additionally multiplies ML, CL and LL.  A month
whose forcing value is NaN is left out of that layer's monthly mean (``Forcing`` contract; MATLAB's plain
``mean`` would make the whole layer NaN).

Quirks reproduced by the ``paper`` preset (``compas.md`` §11) and the fields of :class:`COMPASOptions` that
switch them:

* Q1: the enzyme turnover time is tau_ENZ = 10^(-3 + 3 kp13), driven by the normalised value of parameter 13
  (``mm_const_assim``), and parameter 11 (``tau4s3``) is sampled but never used (``enzyme_tau_source``).
* Q6: invalid states (a negative pool, or total soil C / MIC column stock < 10) are not rejected but
  sign-flipped (``invalid``, ``validity``).
* Q7: the 10:1 rule is applied as in the DA forward function (``validity="da"``); ``fun_var_decom`` (global
  maps) has no 10:1 rule (``validity="negative"``).
* Q8: a layer that receives no litter gives 0/0 = NaN for DOC and mSOC (e.g. the deep layers of a permanently
  frozen site, where all input goes to layer 1 and nothing mixes).  The forward function returns those NaN and
  keeps every finite layer, as the authors' function does, and flags the item ``NONFINITE``
  (``nonfinite="keep"``); how much a non-finite evaluation costs is the sampler's decision (the authors' DA
  scores any NaN in the 20 layers as a failure).  ``nonfinite="nan"`` blanks the whole column instead.
* Q9: negative litter from round-off is set to 0 before the soil step (``negative_pools="clip"``).
* Q12: the transport operator leaks at the bedrock interface (``bedrock``).
* MATLAB's near-singular warning of the dense litter solve (reciprocal 1-norm condition number below machine
  epsilon) counts as a failure (``singular="rcond"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .base import (
    BAD_FORCING,
    INVALID_ANALYTIC,
    INVALID_RATIO,
    NEGATIVE,
    NONFINITE,
    OK,
    SINGULAR,
    SoilModel,
    SteadyState,
)
from .forcing import Forcing
from .layers import DZ_M, N_LAYERS, ZISOI_M, ZSOI_M, overlap_weights
from .options import SoilOptions, choice
from .params import Param, ParamTable
from .solvers import TridiagonalLU
from .transport import (
    input_profile,
    thawed_all_year,
    transport_basis,
    transport_diagonals,
    transport_matrix_reference,
)

__all__ = [
    "COMPAS_PARAMS",
    "COMPAS_COMMENT_VALUES",
    "COMPASModel",
    "COMPASOptions",
    "COMPASPrepared",
    "POOL_NAMES",
    "comment_theta",
    "customary_values",
    "enzyme_turnover_time",
    "soil_closed_form",
]

DAYS_PER_YEAR: float = 365.0
"""Days per year used by every rate conversion (no leap years)."""
EFOLDING_M: float = 0.5
"""Fixed e-folding depth (m) of the depth scalar xi_D = exp(-zsoi / 0.5)."""
T_REF_K: float = 298.15
"""Reference temperature of the Q10 function (K)."""
T_FREEZE_K: float = 273.15
"""Freezing point (K); the code's frozen branch is algebraically identical to the unfrozen one."""

POOL_NAMES: tuple[str, ...] = ("CWD", "ML", "CL", "LL", "DOC", "MIC", "ENZ", "mSOC")
"""Pool order of the last axis of ``SteadyState.pools``."""

_DZ = DZ_M[:N_LAYERS]
_ZSOI = ZSOI_M[:N_LAYERS]
_XI_D = np.exp(-_ZSOI / EFOLDING_M)
_INV_DZ_DAYS = 1.0 / (DAYS_PER_YEAR * _DZ)  # m-1 yr d-1
_DZ_DAYS = DAYS_PER_YEAR * _DZ  # m d yr-1
_DIAG_KEYS = ("input", "litter_respiration", "soil_respiration", "soil_input", "bottom_leak")

# ----------------------------------------------------------------------------------------------------------
# parameter table
# ----------------------------------------------------------------------------------------------------------
COMPAS_PARAMS = ParamTable(
    model="compas",
    params=(
        Param("bio", "bioturbation diffusivity of litter (active layer > 2 m)", "m2 yr-1", 3e-5, 5e-4),
        Param("cryo", "cryoturbation diffusivity of litter (0 < active layer <= 2 m)", "m2 yr-1", 3e-5, 1.6e-3),
        Param("q10", "temperature sensitivity Q10 (reference 25 C)", "1", 1.2, 3.0),
        Param("w_scaling", "multiplier on the CLM5 water scalar W_SCALAR", "1", 0.0, 5.0),
        Param("tau4cwd", "CWD turnover time", "yr", 1.0, 6.0),
        Param("tau4l1", "metabolic-litter (ML) turnover time", "yr", 0.0, 0.1),
        Param("tau4l2", "cellulose-litter (CL) turnover time, shared by lignin litter (LL)", "yr", 0.1, 0.3),
        Param("tau4s1", "1/Vmax,assim: time for 1 g MIC to take up 1 g DOC", "yr", 0.001, 0.03),
        Param("tau4s2_death", "microbial death turnover time", "yr", 0.0, 2.0),
        Param("tau4s2_enz", "microbial turnover through enzyme production (1/k_enz)", "yr", 15.0, 30.0),
        Param("tau4s3", "enzyme turnover time: sampled but NOT used as coded (Q1); linear stand-in map "
              "kp*0.15 of the older code, see enzyme_tau_source", "yr", 0.0, 0.15),
        Param("tau4s4", "1/Vmax,decom: time for 1 g ENZ to depolymerise 1 g mSOC", "yr", 0.0, 3e-4),
        Param("mm_const_assim", "Km,assim: DOC half-saturation (multiplied by xi in the kinetics); its "
              "normalised value also sets tau_ENZ as coded (Q1)", "g C m-3", 300.0, 3000.0),
        Param("mm_const_decom", "Km,decom: mSOC half-saturation (multiplied by xi in the kinetics)",
              "g C m-3", 1e5, 1e6),
        Param("fcwdl2", "fraction of CWD decay going to CL (rest to LL)", "1", 0.5, 1.0),
        Param("pl1s1", "non-microbial fraction ML -> DOC", "1", 0.0, 0.1),
        Param("pl2s1", "non-microbial fraction CL -> DOC", "1", 0.05, 0.3),
        Param("pl3s4", "non-microbial fraction LL -> mSOC", "1", 0.6, 0.95),
        Param("l1_cue", "microbial CUE on metabolic litter", "1", 0.4, 0.9),
        Param("l2l3_cue", "microbial CUE on cellulose and lignin litter", "1", 0.0, 0.4),
        Param("mic_cue", "microbial CUE on DOC uptake", "1", 0.01, 0.7),
        Param("pdeath2soc", "fraction of the microbial death flux going to mSOC (rest to DOC)", "1", 0.0, 1.0),
        Param("beta", "Jackson (1996) beta of the vertical input profile (depth in cm)", "1", 0.5, 0.9999),
    ),
)
"""The 23 optimised COMPAS parameters in PRODA order (``compas.md`` §2).

Customary values are NaN a priori: the paper's are means of the site-level DA posteriors, which must be
recomputed from prodampi's own DA output.  See :data:`COMPAS_COMMENT_VALUES` for the numbers written next to
the parameter lines of the authors' code (orientation only).

Parameter 11 (``tau4s3``) is dead as coded (Q1).  Its physical bounds here, [0, 0.15] yr, are the older linear
map quoted in the code comment; they only matter for ``enzyme_tau_source="kp11_linear"``.
"""

COMPAS_COMMENT_VALUES: dict[str, float | tuple[float, float] | None] = {
    "bio": 1e-4, "cryo": 5e-4, "q10": 1.5, "w_scaling": 1.0, "tau4cwd": 3.3333, "tau4l1": 0.0541,
    "tau4l2": 0.2041, "tau4s1": 0.011, "tau4s2_death": 0.57, "tau4s2_enz": 22.0, "tau4s3": 0.11,
    "tau4s4": (4.6e-5, 1.1e-4), "mm_const_assim": 400.0, "mm_const_decom": (5e4, 6e5), "fcwdl2": 0.75,
    "pl1s1": None, "pl2s1": None, "pl3s4": None, "l1_cue": 0.45, "l2l3_cue": None, "mic_cue": None,
    "pdeath2soc": 0.5, "beta": 0.95,
}
"""'Comment values' of ``compas.md`` §2 (physical units): a number, a (low, high) range, or None when the code
gives none.  They are **not** the paper's customary values; use :func:`comment_theta` for a full vector."""


def comment_theta() -> np.ndarray:
    """A full physical parameter vector (23,) built from :data:`COMPAS_COMMENT_VALUES`.

    Ranges become their geometric mean, missing values the prior midpoint; everything is then clipped into the
    open prior box (1e-4 of the width away from each bound).  For orientation and tests only.

    Returns
    -------
    numpy.ndarray
        (23,) physical values in the units of :data:`COMPAS_PARAMS`.
    """
    lo, hi = COMPAS_PARAMS.lo, COMPAS_PARAMS.hi
    out = np.empty(len(COMPAS_PARAMS))
    for i, name in enumerate(COMPAS_PARAMS.names):
        v = COMPAS_COMMENT_VALUES[name]
        if v is None:
            out[i] = 0.5 * (lo[i] + hi[i])
        elif isinstance(v, tuple):
            out[i] = float(np.sqrt(v[0] * v[1]))
        else:
            out[i] = float(v)
    pad = 1e-4 * (hi - lo)
    return np.clip(out, lo + pad, hi - pad)


def customary_values(para_mean: np.ndarray, valid: np.ndarray | None = None, *,
                     customary_set: str = "all_rows", average_space: str = "normalised") -> np.ndarray:
    """Customary ("global mean") parameter vector from site-level DA posterior means (``compas.md`` §2).

    Parameters
    ----------
    para_mean : numpy.ndarray
        (N, 23) **normalised** posterior means of the DA'd profiles (NaN rows for failed profiles).
    valid : numpy.ndarray or None
        (N,) bool, profiles passing the figure filters (mean G-R < 1.05, max-chain R2 > 0, eligible);
        required for ``customary_set="valid_sites"``.
    customary_set : {"all_rows", "valid_sites"}
        "all_rows" (default, the SOC script): every DA'd row; "valid_sites" (the Fig. S6 script).
    average_space : {"normalised", "physical"}
        "normalised" (default, as coded): NaN-ignoring mean of kp, then mapped to physical values (so
        tau_ENZ = 10^(-3 + 3 mean kp13)); "physical": mean of the physical values.

    Returns
    -------
    numpy.ndarray
        (23,) physical values in the units of :data:`COMPAS_PARAMS`.
    """
    kp = np.asarray(para_mean, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] != len(COMPAS_PARAMS):
        raise ValueError(f"para_mean must have shape (N, {len(COMPAS_PARAMS)}), got {kp.shape}")
    if customary_set == "valid_sites":
        if valid is None:
            raise ValueError("customary_set='valid_sites' needs the valid mask")
        kp = kp[np.asarray(valid, dtype=bool)]
    elif customary_set != "all_rows":
        raise ValueError(f"customary_set must be 'all_rows' or 'valid_sites', got {customary_set!r}")
    if average_space == "normalised":
        return COMPAS_PARAMS.to_physical(np.nanmean(kp, axis=0))
    if average_space == "physical":
        return np.nanmean(COMPAS_PARAMS.to_physical(kp), axis=0)
    raise ValueError(f"average_space must be 'normalised' or 'physical', got {average_space!r}")


_IDX = {name: i for i, name in enumerate(COMPAS_PARAMS.names)}

ENZYME_TAU_SOURCES = ("kp13_log", "kp11_log", "kp11_linear")
VALIDITY_RULES = ("da", "negative", "none")
INVALID_CHOICES = ("flip", "nan")
DEFAULT_CTE_DONORS: tuple[str, ...] = ("ML", "CL", "LL", "DOC", "MIC", "ENZ", "mSOC")


@dataclass(frozen=True)
class COMPASOptions(SoilOptions):
    """Options of :class:`COMPASModel` (shared vocabulary: :mod:`prodampi.soil.options`).

    Attributes
    ----------
    enzyme_tau_source : {"kp13_log", "kp11_log", "kp11_linear"}, default "kp13_log"
        Which parameter sets the enzyme turnover time (Q1).  As coded it is 10^(-3 + 3 kp13), i.e. the
        normalised ``mm_const_assim``, and ``tau4s3`` (#11) has no effect.  ``"kp11_log"`` is the inferred
        intended map on #11; ``"kp11_linear"`` uses ``tau4s3`` (yr) directly.  See
        :func:`enzyme_turnover_time`.
    bedrock : {"compat", "conservative"}, default "compat"
        Transport at the bedrock interface (Q12): "compat" reproduces the non-conservative one-sided exchange
        of layer nbedrock + 1 with the layer below (reported as ``bottom_leak``); "conservative" closes it.
    negative_pools : {"clip", "fail"}, default "clip"
        Negative entries of the litter solve (round-off): set to 0 before the soil step (Q9, "clip"), or the
        item gets status ``NEGATIVE`` ("fail").  Negative *soil* pools of the closed form are an invalid
        state (``validity``).
    singular : {"rcond", "pivot"}, default "rcond"
        "rcond" flags an item ``SINGULAR`` where MATLAB's dense litter solve would warn: exact 1-norm
        reciprocal condition number of the 80x80 litter matrix below ``rcond_min`` (computed cheaply from
        one extra transposed solve with the same tridiagonal factors: the matrix is an M-matrix, so its
        inverse is nonnegative and ||N^-1||_1 = max(N^-T 1)).  MATLAB's LAPACK estimate is a lower bound of
        the same norm, so borderline items (rcond within a few per cent of 2.2e-16) may differ.
        "pivot" flags only zero/non-finite rates or pivots; the structured solve is accurate regardless of
        conditioning.
    rcond_min : float, default :data:`~prodampi.soil.options.RCOND_MIN` (2.22e-16)
        Threshold of the rcond rule.
    nonfinite : {"keep", "nan"}, default "keep"
        Items with any non-finite pool (a layer with no litter gives 0/0) get status ``NONFINITE``.
        "keep" (paper) returns what the authors' function returns: finite layers kept, NaN only where
        undefined (and the sign flip applied as MATLAB does, ignoring NaN).  "nan" blanks all their pools
        (Q8 fix, treat any non-finite node as failure).
    validity : {"da", "negative", "none"}, default "da"
        Which states are invalid (``compas.md`` §5.5): "da" = any negative pool **or** column total soil C /
        MIC stock below ``min_ratio`` (``matrix_fun.m``, used by the DA and recovery); "negative" = any
        negative pool only (``fun_var_decom.m``, global maps); "none" = never (diagnostic use).
    invalid : {"flip", "nan"}, default "flip"
        What an invalid item returns (Q6).  "flip" (PRODA-compatible) negates every positive pool and SOC
        value so the DA can still score the flipped profile; "nan" (textbook) returns NaN.  The status code is
        ``INVALID_ANALYTIC`` (negative pool: the closed form has no positive solution) or ``INVALID_RATIO``
        (10:1 rule) either way.
    min_ratio : float, default 10.0
        Threshold of the total-soil-C / MIC column-stock rule.
    components_variant : {"gcb", "legacy"}, default "gcb"
        Definitions used by :meth:`COMPASModel.components` for the main keys (paper Eqs 10-14 vs the
        Nature-2023 ``fun_bulk_process.m``); both are always returned with suffixes ``_gcb`` and ``_legacy``.
    v_weight : {"litter", "soc"}, default "litter"
        Stock weighting of V_system (``compas.md`` §8.2.4; litter = legacy, soc = paper Eq 12).
    cte_donors : tuple of str, default ("ML", "CL", "LL", "DOC", "MIC", "ENZ", "mSOC")
        Donor pools of the GCB CTE_system (CWD excluded as in the CLM5 port).
    k_pools : tuple of str or None, default None
        Pools of the GCB K_system; None = same as ``cte_donors``.
    chunk_size : int, default 512
        Items processed together by the fast path (performance only; results do not depend on it).

    Presets: ``paper`` = the defaults above (the authors' ``matrix_fun.m``); ``textbook`` = tau_ENZ from #11
    (log map), conservative bedrock, invalid states and non-finite items returned as NaN, no
    condition-number failures.
    """

    nonfinite: str = choice("keep", ("keep", "nan"))
    chunk_size: int = 512
    enzyme_tau_source: str = choice("kp13_log", ENZYME_TAU_SOURCES)
    validity: str = choice("da", VALIDITY_RULES)
    invalid: str = choice("flip", INVALID_CHOICES)
    min_ratio: float = 10.0
    components_variant: str = choice("gcb", ("gcb", "legacy"))
    v_weight: str = choice("litter", ("litter", "soc"))
    cte_donors: tuple[str, ...] = DEFAULT_CTE_DONORS
    k_pools: tuple[str, ...] | None = None

    model: ClassVar[str] = "compas"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "textbook": {"enzyme_tau_source": "kp11_log", "bedrock": "conservative", "invalid": "nan",
                     "singular": "pivot", "nonfinite": "nan"},
    }
    renamed: ClassVar[dict[str, str]] = {"singular_check": "singular ('rcond' | 'pivot')"}

    def _validate(self) -> None:
        self._set("min_ratio", self._number("min_ratio", lo=0.0))
        for name in ("cte_donors", "k_pools"):
            pools = getattr(self, name)
            if pools is None and name == "k_pools":
                continue
            if isinstance(pools, str) or not all(isinstance(p, str) for p in (pools or ())):
                raise ValueError(f"compas option {name}={pools!r} is not allowed; allowed values: a tuple of "
                                 f"pool names from {', '.join(POOL_NAMES)}")
            bad = [p for p in pools if p not in POOL_NAMES]
            if bad or not pools:
                raise ValueError(f"compas option {name}={pools!r} is not allowed; unknown or no pool(s) "
                                 f"{bad}; allowed pools: {', '.join(POOL_NAMES)}")
            self._set(name, tuple(pools))


def enzyme_turnover_time(theta: np.ndarray, source: str = "kp13_log") -> np.ndarray:
    """Enzyme turnover time tau_ENZ (yr) for physical parameters ``theta`` (..., 23).

    Parameters
    ----------
    theta : numpy.ndarray
        Physical parameters, last axis in :data:`COMPAS_PARAMS` order.
    source : {"kp13_log", "kp11_log", "kp11_linear"}
        ``"kp13_log"`` (as coded, Q1): 10^(-3 + 3 kp13) with kp13 the normalised ``mm_const_assim``, so
        tau_ENZ in [0.001, 1] yr.  ``"kp11_log"`` (intended, inferred): the same log map of the normalised
        ``tau4s3``.  ``"kp11_linear"``: ``tau4s3`` itself (the older linear map, [0, 0.15] yr).

    Returns
    -------
    numpy.ndarray
        tau_ENZ (yr), shape ``theta.shape[:-1]``.
    """
    theta = np.asarray(theta, dtype=np.float64)
    lo, hi = COMPAS_PARAMS.lo, COMPAS_PARAMS.hi
    if source == "kp13_log":
        i = _IDX["mm_const_assim"]
        return 10.0 ** (3.0 * (theta[..., i] - lo[i]) / (hi[i] - lo[i]) - 3.0)
    if source == "kp11_log":
        i = _IDX["tau4s3"]
        return 10.0 ** (3.0 * (theta[..., i] - lo[i]) / (hi[i] - lo[i]) - 3.0)
    if source == "kp11_linear":
        return theta[..., _IDX["tau4s3"]].copy()
    raise ValueError(f"enzyme_tau_source must be one of {ENZYME_TAU_SOURCES}, got {source!r}")


# ----------------------------------------------------------------------------------------------------------
# pure kernels
# ----------------------------------------------------------------------------------------------------------
def soil_closed_form(
    u_doc: np.ndarray,
    u_mic: np.ndarray,
    u_msoc: np.ndarray,
    xi: np.ndarray,
    *,
    mic_cue: np.ndarray,
    k_death: np.ndarray,
    k_enz: np.ndarray,
    k_enzyme_decay: np.ndarray,
    v_assim: np.ndarray,
    v_decom: np.ndarray,
    km_assim: np.ndarray,
    km_decom: np.ndarray,
    pdeath2soc: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steady state of the four soil pools of one layer, elementwise (``compas.md`` §5.2).

    All arguments broadcast against each other.  Uses M* = xi MIC so that xi is divided only once.

    Parameters
    ----------
    u_doc, u_mic, u_msoc : numpy.ndarray
        Litter outfluxes into DOC, MIC and mSOC (g C m-3 d-1).
    xi : numpy.ndarray
        Environmental scalar of the layer (1).
    mic_cue : numpy.ndarray
        CUE on DOC uptake, eps (1).
    k_death, k_enz, k_enzyme_decay : numpy.ndarray
        Microbial death rate, enzyme production rate per g MIC and enzyme decay rate (d-1, before xi).
    v_assim, v_decom : numpy.ndarray
        Maximum DOC uptake per g MIC and maximum mSOC depolymerisation per g ENZ (d-1, before xi).
    km_assim, km_decom : numpy.ndarray
        Half-saturation constants (g C m-3, before xi).
    pdeath2soc : numpy.ndarray
        Fraction of the death flux going to mSOC (1).

    Returns
    -------
    doc, mic, enz, msoc : numpy.ndarray
        Steady-state densities (g C m-3).  Negative values mean the closed form has no positive solution
        (capacity below demand); 0/0 gives NaN where the layer receives no litter flux.
    """
    k_mic = k_death + k_enz
    u_tot_eps = u_mic + mic_cue * (u_doc + u_msoc)
    m_star = u_tot_eps / ((1.0 - mic_cue) * k_mic)  # xi * MIC (g C m-3 d-1 per d-1)
    mic = m_star / xi
    enz_ratio = k_enz / k_enzyme_decay
    enz = enz_ratio * mic
    q = u_msoc + pdeath2soc * k_death * m_star  # flux into mSOC
    msoc = q * km_decom * xi / (v_decom * enz_ratio * m_star - q)
    r = k_mic * m_star - u_mic  # required uptake times eps
    doc = r * km_assim * xi / (mic_cue * v_assim * m_star - r)
    return doc, mic, enz, msoc


@dataclass(frozen=True)
class _Rates:
    """Parameter-derived constants, each (B, 1) so that they broadcast against (B, 20)."""

    bio: np.ndarray  # m2 yr-1 (B,)
    cryo: np.ndarray  # m2 yr-1 (B,)
    ln_q10: np.ndarray  # (B,)
    w: np.ndarray  # (B,)
    beta: np.ndarray  # (B,)
    k_cwd: np.ndarray  # d-1
    k_ml: np.ndarray  # d-1
    k_cl: np.ndarray  # d-1 (= LL)
    v_assim: np.ndarray  # d-1
    k_death: np.ndarray  # d-1
    k_enz: np.ndarray  # d-1
    k_e: np.ndarray  # d-1
    v_decom: np.ndarray  # d-1
    km_assim: np.ndarray  # g C m-3
    km_decom: np.ndarray  # g C m-3
    f_cwd: np.ndarray
    p1: np.ndarray
    p2: np.ndarray
    p3: np.ndarray
    c1: np.ndarray
    c2: np.ndarray
    eps: np.ndarray
    pd: np.ndarray
    tau_enzyme: np.ndarray  # yr
    mic_ml: np.ndarray  # fraction of ML decay to MIC, (1 - p1) c1
    mic_cl: np.ndarray  # (1 - p2) c2
    mic_ll: np.ndarray  # (1 - p3) c2
    resp_ml: np.ndarray  # respired fraction of ML decay, (1 - p1)(1 - c1)
    resp_cl: np.ndarray
    resp_ll: np.ndarray


def _rates(theta: np.ndarray, enzyme_tau_source: str) -> _Rates:
    t = theta

    def col(name: str) -> np.ndarray:
        return t[:, _IDX[name]][:, None]

    d = DAYS_PER_YEAR
    tau_e = enzyme_turnover_time(t, enzyme_tau_source)[:, None]
    p1, p2, p3, c1, c2 = col("pl1s1"), col("pl2s1"), col("pl3s4"), col("l1_cue"), col("l2l3_cue")
    with np.errstate(divide="ignore", invalid="ignore"):  # zero turnover times: infinite rates, SINGULAR
        return _Rates(
            bio=t[:, _IDX["bio"]], cryo=t[:, _IDX["cryo"]], ln_q10=np.log(t[:, _IDX["q10"]]),
            w=t[:, _IDX["w_scaling"]], beta=t[:, _IDX["beta"]],
            k_cwd=1.0 / (d * col("tau4cwd")), k_ml=1.0 / (d * col("tau4l1")), k_cl=1.0 / (d * col("tau4l2")),
            v_assim=1.0 / (d * col("tau4s1")), k_death=1.0 / (d * col("tau4s2_death")),
            k_enz=1.0 / (d * col("tau4s2_enz")), k_e=1.0 / (d * tau_e), v_decom=1.0 / (d * col("tau4s4")),
            km_assim=col("mm_const_assim"), km_decom=col("mm_const_decom"), f_cwd=col("fcwdl2"),
            p1=p1, p2=p2, p3=p3, c1=c1, c2=c2, eps=col("mic_cue"), pd=col("pdeath2soc"), tau_enzyme=tau_e,
            mic_ml=(1.0 - p1) * c1, mic_cl=(1.0 - p2) * c2, mic_ll=(1.0 - p3) * c2,
            resp_ml=(1.0 - p1) * (1.0 - c1), resp_cl=(1.0 - p2) * (1.0 - c2), resp_ll=(1.0 - p3) * (1.0 - c2),
        )


# ----------------------------------------------------------------------------------------------------------
# per-site preparation
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class COMPASPrepared:
    """Parameter-independent per-site constants of COMPAS (built by :meth:`COMPASModel.prepare`).

    Attributes
    ----------
    n_sites : int
        Number of prepared sites ``S``.
    dtemp10 : numpy.ndarray
        (S, 12, 20) (T - 298.15 K)/10, month-major; NaN months are -inf so that q10**x = 0 drops them.
    w_scalar : numpy.ndarray
        (S, 12, 20) W_SCALAR, month-major; NaN months are 0.
    inv_n_t, inv_n_w : numpy.ndarray
        (S, 20) 1 / (number of finite months) of TSOI and W_SCALAR per layer.
    t_mean : numpy.ndarray
        (S, 20) month mean mu of (T - 298.15 K)/10 over finite months.
    t_coef : numpy.ndarray
        (S, K+1, 20) power-series coefficients of the monthly mean Q10 factor (see :func:`_q10_series`):
        mean_m q10**dT_m = q10**mu * sum_k c_k h**k with h = ln(q10) - ln(sqrt(1.2 * 3)), exact to ~1e-16
        relative for q10 in the prior range [1.2, 3].
    xi_o, xi_n : numpy.ndarray
        (S, 20) month means of O_SCALAR and FPI (1).
    xi_od : numpy.ndarray
        (S, 20) xi_o * exp(-zsoi/0.5).
    litter_input : numpy.ndarray
        (S, 4) annual column inputs CWD, ML, CL, LL (g C m-2 yr-1).
    thawed : numpy.ndarray
        (S,) bool, ALTMAX_LASTYEAR > 0 in all 12 months (beta input profile used; else all input in layer 1).
    basis : Any
        :class:`prodampi.soil.transport.TransportBasis` of the site (unit-diffusivity diagonals, d-1).
    forcing_ok : numpy.ndarray
        (S,) bool result of :meth:`Forcing.check`.
    forcing_reasons : tuple of str
        Reason per site ('' where ok).
    bedrock : str
        Bedrock treatment the basis was built with.
    """

    n_sites: int
    dtemp10: np.ndarray
    w_scalar: np.ndarray
    inv_n_t: np.ndarray
    inv_n_w: np.ndarray
    t_mean: np.ndarray
    t_coef: np.ndarray
    xi_o: np.ndarray
    xi_n: np.ndarray
    xi_od: np.ndarray
    litter_input: np.ndarray
    thawed: np.ndarray
    basis: Any
    forcing_ok: np.ndarray
    forcing_reasons: tuple[str, ...]
    bedrock: str


def _month_mean(a: np.ndarray) -> np.ndarray:
    """Mean over the last (month) axis ignoring NaN months; NaN where all months are NaN."""
    fin = np.isfinite(a)
    n = fin.sum(axis=-1)
    s = np.where(fin, a, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


_Q10_A0 = 0.5 * (np.log(1.2) + np.log(3.0))  # centre of ln q10 over the prior range
_Q10_HW = 0.5 * (np.log(3.0) - np.log(1.2))  # half-width of that range


def _q10_series(dt: np.ndarray, tol: float = 1e-17, max_terms: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Per-site power series of the month-mean Q10 factor (exact replacement of 240 exp per item).

    With a = ln q10, mu_z the mean of dt over finite months and delta = dt - mu,
    mean_m exp(a dt_m) = exp(a mu) sum_k c_k h^k, h = a - a0, c_k = mean_m exp(a0 delta_m) delta_m^k / k!.
    The number of terms is chosen so that the truncation error is below ``tol`` relative for |h| <= the
    half-width of ln [1.2, 3] at every site and layer.

    Parameters
    ----------
    dt : numpy.ndarray
        (S, 12, 20) (T - 298.15 K)/10, NaN for missing months.

    Returns
    -------
    mu : numpy.ndarray
        (S, 20) month means (0 where all months are missing).
    coef : numpy.ndarray
        (S, K+1, 20) coefficients c_k (NaN where all months are missing).
    """
    fin = np.isfinite(dt)
    n = fin.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(n > 0, np.where(fin, dt, 0.0).sum(axis=1) / np.maximum(n, 1), 0.0)
        delta = np.where(fin, dt - mu[:, None, :], 0.0)
    rho = float(np.max(np.abs(delta), initial=0.0)) * _Q10_HW
    k = 0
    term = np.exp(rho) * rho
    while term > tol and k < max_terms:  # term = e^rho rho^(k+1) / (k+1)!
        k += 1
        term *= rho / (k + 1)
    weight = np.where(fin, np.exp(_Q10_A0 * delta), 0.0)
    coef = np.empty((dt.shape[0], k + 1, dt.shape[2]))
    power = weight.copy()
    inv_n = np.where(n > 0, 1.0 / np.maximum(n, 1), np.nan)
    fact = 1.0
    for j in range(k + 1):
        if j > 0:
            power *= delta
            fact *= j
        coef[:, j, :] = power.sum(axis=1) * inv_n / fact
    return mu, coef


# ----------------------------------------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------------------------------------
class COMPASModel(SoilModel):
    """COMPAS soil model with batched analytic steady state (``compas.md``).

    Parameters
    ----------
    options : COMPASOptions or None
        The options record; None builds it from ``preset``.
    preset : {"paper", "textbook"} or None
        Named preset (default "paper": the authors' DA forward function ``matrix_fun.m``); see
        :class:`COMPASOptions`.
    **overrides
        Fields of :class:`COMPASOptions` replacing the preset's (e.g. ``validity="negative"``).

    Notes
    -----
    Status codes per item (``prodampi.soil.base``), in order of precedence: ``BAD_FORCING`` (site failed
    :meth:`Forcing.check`), ``SINGULAR``, ``NONFINITE``, ``NEGATIVE`` (litter, ``negative_pools="fail"``),
    ``INVALID_ANALYTIC``, ``INVALID_RATIO``.  ``BAD_FORCING``, ``SINGULAR`` and ``NEGATIVE`` items have NaN
    pools; ``NONFINITE`` items hold the raw pools (NaN only where undefined) unless ``nonfinite="nan"``.  The
    batch never raises for bad items.

    The validity rule is evaluated as MATLAB does, ignoring NaN: a NaN pool is not negative and a NaN column
    stock does not fail the 10:1 rule.  So a ``NONFINITE`` item with ``nonfinite="keep"`` is sign-flipped
    (``invalid="flip"``) or blanked (``invalid="nan"``) exactly when one of its finite pools is negative.

    Diagnostics (g C m-2 yr-1 unless stated), computed from the unflipped pools:
    ``input`` (sum of the four litter inputs), ``respiration`` (litter + soil CO2), ``bottom_leak`` (net
    litter lost by the transport operator, sum_z dz_z (T x)_z; nonzero only for ``bedrock="compat"`` with
    nbedrock < 20, where layer nbedrock+1 exchanges one-sidedly with the layer below: a sink, or a spurious
    source where the deeper layer holds more litter), ``litter_respiration``, ``soil_respiration``,
    ``soil_input`` (litter -> soil flux),
    ``soc_stock`` (column total soil C, flipped like the pools), ``stocks`` (B, 8) column stock per pool,
    ``mic_ratio`` (total soil C / MIC column stock, 1), ``fails_ratio_rule`` (bool, mic_ratio < min_ratio,
    set whatever ``validity`` is, Q7) and ``rcond`` (1; NaN on the fast path with ``singular="pivot"``).
    At steady state ``respiration + bottom_leak = input``.
    """

    name = "compas"
    params = COMPAS_PARAMS
    pool_names = POOL_NAMES
    soc_pools = (4, 5, 6, 7)
    options_class = COMPASOptions
    prepared_class = COMPASPrepared

    def __init__(self, options: COMPASOptions | None = None, *, preset: str | None = None,
                 **overrides: Any) -> None:
        super().__init__(options, preset=preset, **overrides)
        o = self.options
        self._k_pools = o.k_pools if o.k_pools is not None else o.cte_donors

    # ------------------------------------------------------------------------------------------ prepare
    def prepare(self, forcing: Forcing) -> COMPASPrepared:
        """Per-site, parameter-independent constants (computed once per site).

        Parameters
        ----------
        forcing : Forcing
            Forcing of ``S`` sites.

        Returns
        -------
        COMPASPrepared
            Month-major temperature offsets and water scalars, month means of the O and N scalars, the
            annual inputs, the all-year-thawed flag, the transport basis and the forcing check.
        """
        ok, reasons = forcing.check()
        t = np.transpose(forcing.tsoi_k, (0, 2, 1))
        w = np.transpose(forcing.w_scalar, (0, 2, 1))
        fin_t, fin_w = np.isfinite(t), np.isfinite(w)
        with np.errstate(divide="ignore"):
            inv_n_t = 1.0 / fin_t.sum(axis=1)
            inv_n_w = 1.0 / fin_w.sum(axis=1)
        dtemp10 = np.where(fin_t, (t - T_REF_K) / 10.0, -np.inf)
        t_mean, t_coef = _q10_series(np.where(fin_t, (t - T_REF_K) / 10.0, np.nan))
        w_sc = np.where(fin_w, w, 0.0)
        xi_o = _month_mean(forcing.o_scalar)
        xi_n = _month_mean(forcing.fpi)
        return COMPASPrepared(
            n_sites=forcing.n_sites,
            dtemp10=np.ascontiguousarray(dtemp10),
            w_scalar=np.ascontiguousarray(w_sc),
            inv_n_t=inv_n_t,
            inv_n_w=inv_n_w,
            t_mean=t_mean,
            t_coef=t_coef,
            xi_o=xi_o,
            xi_n=xi_n,
            xi_od=xi_o * _XI_D,
            litter_input=np.asarray(forcing.litter_input, dtype=np.float64).copy(),
            thawed=np.asarray(thawed_all_year(forcing), dtype=bool),
            basis=transport_basis(forcing, bedrock=self.options.bedrock),
            forcing_ok=np.asarray(ok, dtype=bool),
            forcing_reasons=tuple(reasons),
            bedrock=self.options.bedrock,
        )

    # ------------------------------------------------------------------------------------------ helpers
    def _environment(self, r: _Rates, prep: COMPASPrepared, sidx: np.ndarray | None) -> dict[str, np.ndarray]:
        """xi (model), xi_twd (T*W*depth, for components), xi_n, the input profile and transport diagonals."""
        def g(a: np.ndarray) -> np.ndarray:
            return a if sidx is None else a[sidx]

        # mean_m q10**dT_m from the per-site power series in h = ln q10 - a0 (exact to ~1e-16)
        h = r.ln_q10 - _Q10_A0
        ncoef = prep.t_coef.shape[1]
        hp = np.empty((h.shape[0], ncoef))
        hp[:, 0] = 1.0
        if ncoef > 1:
            hp[:, 1:] = h[:, None]
            np.cumprod(hp[:, 1:], axis=1, out=hp[:, 1:])
        xi_t = np.matmul(hp[:, None, :], g(prep.t_coef))[:, 0, :]
        xi_t *= np.exp(r.ln_q10[:, None] * g(prep.t_mean))
        outside = ~(np.abs(h) <= _Q10_HW * (1.0 + 1e-9))
        if outside.any():  # q10 outside [1.2, 3]: direct monthly powers for those items
            rows = np.flatnonzero(outside)
            dt = g(prep.dtemp10)[rows]
            xi_t[rows] = np.exp(r.ln_q10[rows, None, None] * dt).sum(axis=1) * g(prep.inv_n_t)[rows]
        # capped water scalar, reduced over months
        wv = g(prep.w_scalar) * r.w[:, None, None]
        np.minimum(wv, 1.0, out=wv)
        xi_w = wv.sum(axis=1)
        xi_w *= g(prep.inv_n_w)
        xi_tw = xi_t * xi_w
        xi = xi_tw * g(prep.xi_od)
        return dict(
            xi=xi,
            xi_twd=xi_tw * _XI_D,
            xi_n=g(prep.xi_n),
            profile=input_profile(r.beta, g(prep.thawed)),
            diag=transport_diagonals(r.bio, r.cryo, prep.basis, sidx),
            inputs=g(prep.litter_input),
            forcing_ok=g(prep.forcing_ok),
        )

    # ------------------------------------------------------------------------------------------ fast path
    def steady_state(self, theta: np.ndarray, prepared: COMPASPrepared,
                     site_index: np.ndarray | None = None) -> SteadyState:
        """Batched analytic steady state (fast path).

        Parameters
        ----------
        theta : numpy.ndarray
            (B, 23) physical parameters (units of :data:`COMPAS_PARAMS`); (23,) is treated as B = 1.
        prepared : COMPASPrepared
            Output of :meth:`prepare`.
        site_index : numpy.ndarray or None
            (B,) index of each item's prepared site; None means B == S and item i uses site i.

        Returns
        -------
        SteadyState
            ``pools`` (B, 20, 8) g C m-3 in :data:`POOL_NAMES` order (a transposed view of a (B, 8, 20)
            C-contiguous buffer); ``soc`` (B, 20) g C m-3 (DOC + MIC + ENZ + mSOC); ``status`` (B,) int8;
            diagnostics as in the class notes.

        Notes
        -----
        Litter: CWD by division, ML/CL/LL by batched tridiagonal solves in depth (``compas.md`` §5.1).  Soil:
        :func:`soil_closed_form` elementwise over (B, 20).  The batch is processed in chunks of
        ``chunk_size`` items so that temporaries stay in cache; there is no Python loop over items.
        """
        self._check_prepared(prepared)
        theta, sidx = self._check_batch(theta, prepared.n_sites, site_index)
        b = theta.shape[0]
        buf = np.empty((b, 8, N_LAYERS))
        singular = np.zeros(b, dtype=bool)
        negative_litter = np.zeros(b, dtype=bool)
        forcing_ok = np.ones(b, dtype=bool)
        diagn = {k: np.empty(b) for k in _DIAG_KEYS + ("rcond",)}
        step = self.options.chunk_size
        for lo in range(0, b, step):
            hi = min(b, lo + step)
            sub_idx = slice(lo, hi) if sidx is None else sidx[lo:hi]
            self._fast_chunk(theta[lo:hi], prepared, sub_idx, buf[lo:hi], singular[lo:hi],
                             negative_litter[lo:hi], forcing_ok[lo:hi], {k: v[lo:hi] for k, v in diagn.items()})
        diagn["respiration"] = diagn["litter_respiration"] + diagn["soil_respiration"]
        return self._finish(buf, singular, negative_litter, forcing_ok, diagn)

    def _fast_chunk(self, theta: np.ndarray, prep: COMPASPrepared, sidx: np.ndarray | slice,
                    out: np.ndarray, singular: np.ndarray, negative_litter: np.ndarray, forcing_ok: np.ndarray,
                    diagn: dict[str, np.ndarray]) -> None:
        """Fast path for one chunk; writes pools (b, 8, 20) and flags/diagnostics into the given views."""
        b = theta.shape[0]
        r = _rates(theta, self.options.enzyme_tau_source)
        with np.errstate(all="ignore"):
            env = self._environment(r, prep, sidx)
            xi, xin, diag = env["xi"], env["xi_n"], env["diag"]
            forcing_ok[:] = env["forcing_ok"]
            k_cwd = r.k_cwd * xi
            xixn = xi * xin
            k_ml = r.k_ml * xixn
            k_cl = r.k_cl * xixn
            per_m3_day = env["profile"] * _INV_DZ_DAYS  # (b, 20) per unit column input (g C m-3 d-1 per g C m-2 yr-1)
            inputs = env["inputs"]
            in_cwd = inputs[:, 0:1] * per_m3_day

            sub, main, sup = diag[:, 0, :], diag[:, 1, :], diag[:, 2, :]
            rates_ok = (np.isfinite(k_cwd) & (k_cwd > 0) & np.isfinite(k_ml) & (k_ml > 0)
                        & np.isfinite(k_cl) & (k_cl > 0)).all(axis=1) & np.isfinite(diag).all(axis=(1, 2))
            np.divide(in_cwd, k_cwd, out=out[:, 0])
            # ML uses diag(k_ml) + T, CL and LL share diag(k_cl) + T: one factorisation of 2b systems,
            # built directly with the layer axis first
            a_lf = np.empty((N_LAYERS, 2 * b))
            a_lf[:, :b] = sub.T
            a_lf[:, b:] = sub.T
            c_lf = np.empty((N_LAYERS, 2 * b))
            c_lf[:, :b] = sup.T
            c_lf[:, b:] = sup.T
            m_lf = np.empty((N_LAYERS, 2 * b))
            np.add(main.T, k_ml.T, out=m_lf[:, :b])
            np.add(main.T, k_cl.T, out=m_lf[:, b:])
            lu = TridiagonalLU.factor_layer_first(a_lf, m_lf, c_lf)
            rhs = np.empty((N_LAYERS, 2 * b, 2))
            pt = per_m3_day.T
            in_cwd_t = in_cwd.T
            rhs[:, :b, 0] = inputs[:, 1] * pt
            rhs[:, :b, 1] = 0.0
            rhs[:, b:, 0] = inputs[:, 2] * pt + r.f_cwd[:, 0] * in_cwd_t
            rhs[:, b:, 1] = inputs[:, 3] * pt + (1.0 - r.f_cwd[:, 0]) * in_cwd_t
            x = lu.solve_layer_first(rhs)
            out[:, 1] = x[:, :b, 0].T
            out[:, 2] = x[:, b:, 0].T
            out[:, 3] = x[:, b:, 1].T
            singular[:] = ~(rates_ok & lu.ok[:b] & lu.ok[b:])
            if self.options.singular == "rcond":
                # the litter matrix is an M-matrix, so ||N^-1||_1 = max(N^-T 1) exactly: one transposed solve
                y = lu.solve_transposed_layer_first(np.ones((N_LAYERS, 2 * b)))
                y_ml, y_cl = y[:, :b], y[:, b:]
                inv_norm = np.maximum(np.max(1.0 / k_cwd + y_cl.T, axis=1),
                                      np.maximum(y_ml.max(axis=0), y_cl.max(axis=0)))
                colsum = np.abs(main)  # column abs sums of T (the decay rate adds on the diagonal)
                colsum[:, :-1] += np.abs(sub[:, 1:])
                colsum[:, 1:] += np.abs(sup[:, :-1])
                norm = np.maximum(np.max(2.0 * k_cwd, axis=1),
                                  np.maximum(np.max(colsum + k_ml, axis=1), np.max(colsum + k_cl, axis=1)))
                rcond = 1.0 / (norm * inv_norm)
                diagn["rcond"][:] = rcond
                singular |= ~(rcond >= self.options.rcond_min)
            else:
                diagn["rcond"][:] = np.nan

            # Q9: negative litter (round-off) -> 0 before the soil step
            lit4 = out[:, 0:4]
            negative_litter[:] = (lit4 < 0.0).any(axis=(1, 2))
            np.maximum(lit4, 0.0, out=lit4)
            ml, cl, ll = out[:, 1], out[:, 2], out[:, 3]
            f_ml = k_ml * ml
            f_cl = k_cl * cl
            f_ll = k_cl * ll
            u_doc = r.p1 * f_ml + r.p2 * f_cl
            u_mic = r.mic_ml * f_ml + r.mic_cl * f_cl + r.mic_ll * f_ll
            u_msoc = r.p3 * f_ll
            doc, mic, enz, msoc = soil_closed_form(
                u_doc, u_mic, u_msoc, xi, mic_cue=r.eps, k_death=r.k_death, k_enz=r.k_enz,
                k_enzyme_decay=r.k_e, v_assim=r.v_assim, v_decom=r.v_decom, km_assim=r.km_assim,
                km_decom=r.km_decom, pdeath2soc=r.pd)
            out[:, 4] = doc
            out[:, 5] = mic
            out[:, 6] = enz
            out[:, 7] = msoc

            # diagnostics (g C m-2 yr-1) from the raw pools
            litter_resp = r.resp_ml * f_ml + r.resp_cl * f_cl + r.resp_ll * f_ll
            uptake = (r.v_assim * (1.0 - r.eps)) * xi * mic * doc / (r.km_assim * xi + doc)
            lit = ml + cl + ll
            t_lit = main * lit
            t_lit[:, 1:] += sub[:, 1:] * lit[:, :-1]
            t_lit[:, :-1] += sup[:, :-1] * lit[:, 1:]
            diagn["input"][:] = inputs.sum(axis=1)
            diagn["litter_respiration"][:] = litter_resp @ _DZ_DAYS
            diagn["soil_respiration"][:] = uptake @ _DZ_DAYS
            diagn["soil_input"][:] = (u_doc + u_mic + u_msoc) @ _DZ_DAYS
            diagn["bottom_leak"][:] = t_lit @ _DZ_DAYS

    # ------------------------------------------------------------------------------------------ shared tail
    def _finish(self, buf: np.ndarray, singular: np.ndarray, negative_litter: np.ndarray, forcing_ok: np.ndarray,
                diagn: dict[str, np.ndarray]) -> SteadyState:
        """Validity rules, status codes, sign flip / NaN, SOC and stock diagnostics (both paths).

        ``buf`` is the (B, 8, 20) pool buffer (g C m-3); it is modified in place and returned transposed.
        ``negative_litter`` (B,) flags items whose litter solve had negative entries (already clipped).
        The validity rule ignores NaN, as MATLAB's comparisons do (a NaN pool is not negative, a NaN stock
        ratio is not below ``min_ratio``).
        """
        o = self.options
        b = buf.shape[0]
        with np.errstate(all="ignore"):
            stocks = buf @ _DZ  # (B, 8) g C m-2
            soc = buf[:, 4:8].sum(axis=1)  # (B, 20)
            soc_stock = stocks[:, 4:8].sum(axis=1)
            ratio = soc_stock / stocks[:, 5]
            finite = np.isfinite(buf).all(axis=(1, 2))
            negative = (buf < 0).any(axis=(1, 2))
            low_ratio = ratio < o.min_ratio
        triggered = np.zeros(b, dtype=bool)  # the validity rule fires (matrix_fun.m's sign-flip condition)
        if o.validity == "da":
            triggered |= low_ratio
        if o.validity in ("da", "negative"):
            triggered |= negative
        status = np.full(b, OK, dtype=np.int8)
        status[triggered] = INVALID_RATIO
        status[triggered & negative] = INVALID_ANALYTIC
        if o.negative_pools == "fail":
            status[negative_litter] = NEGATIVE
        status[~finite] = NONFINITE
        status[singular] = SINGULAR
        status[~forcing_ok] = BAD_FORCING

        failed = np.isin(status, (BAD_FORCING, SINGULAR, NEGATIVE))
        if o.nonfinite == "nan":
            failed |= status == NONFINITE
        triggered &= ~failed
        out_stock = soc_stock.copy()
        if o.invalid == "flip":
            rows = np.flatnonzero(triggered)
            if rows.size:
                buf[rows] = -np.abs(buf[rows])
                soc[rows] = -np.abs(soc[rows])
                out_stock[rows] = -np.abs(out_stock[rows])
        else:
            failed |= triggered
        rows = np.flatnonzero(failed)
        if rows.size:
            buf[rows] = np.nan
            soc[rows] = np.nan
            out_stock[rows] = np.nan
            for key in _DIAG_KEYS[1:] + ("respiration",):
                if key in diagn:
                    diagn[key][rows] = np.nan
        diagn["soc_stock"] = out_stock
        diagn["stocks"] = stocks
        diagn["mic_ratio"] = ratio
        diagn["fails_ratio_rule"] = low_ratio  # Q7: flag items the DA would penalise even when validity allows
        return SteadyState(pools=buf.transpose(0, 2, 1), soc=soc, status=status, diagnostics=diagn)

    # ------------------------------------------------------------------------------------------ reference
    def steady_state_reference(self, theta: np.ndarray, forcing: Forcing,
                               site_index: np.ndarray | None = None) -> SteadyState:
        """The authors' procedure, one item at a time (tests and benchmarks only; slow).

        Per item: monthly Q10 powers with the code's frozen branch, month means of the scalars, the dense
        80x80 litter system ``(A K - T) x = -I`` with ``T`` the mean of the 12 monthly as-coded transport
        matrices (:func:`prodampi.soil.transport.transport_matrix_reference`), one LAPACK LU solve with the
        1-norm condition estimate (MATLAB backslash semantics), negative litter set to 0, and the soil closed
        form in the algebraic arrangement of ``matrix_fun.m``.

        Parameters
        ----------
        theta : numpy.ndarray
            (B, 23) physical parameters.
        forcing : Forcing
            Forcing of ``S`` sites.
        site_index : numpy.ndarray or None
            (B,) site of each item; None means B == S.

        Returns
        -------
        SteadyState
            Same layout, status rules and diagnostics as :meth:`steady_state`.
        """
        from scipy.linalg import lapack

        o = self.options
        theta, sidx = self._check_batch(theta, forcing.n_sites, site_index)
        b = theta.shape[0]
        sites = np.arange(b) if sidx is None else sidx
        ok_forcing, _ = forcing.check()
        n = N_LAYERS
        d = DAYS_PER_YEAR
        pools = np.full((b, n, 8), np.nan)
        singular = np.zeros(b, dtype=bool)
        negative_litter = np.zeros(b, dtype=bool)
        keys = ("input", "litter_respiration", "soil_respiration", "soil_input", "bottom_leak", "rcond")
        diagn = {k: np.full(b, np.nan) for k in keys}
        zisoi = np.concatenate([[0.0], ZISOI_M[:n]])
        for i in range(b):
            s = int(sites[i])
            kp = theta[i]
            bio, cryo, q10, w = (kp[_IDX[k]] for k in ("bio", "cryo", "q10", "w_scaling"))
            tau_cwd, tau_l1, tau_l2 = kp[_IDX["tau4cwd"]], kp[_IDX["tau4l1"]], kp[_IDX["tau4l2"]]
            tau_s1, tau_death, tau_enz = kp[_IDX["tau4s1"]], kp[_IDX["tau4s2_death"]], kp[_IDX["tau4s2_enz"]]
            tau_s4 = kp[_IDX["tau4s4"]]
            tau_s3 = float(enzyme_turnover_time(kp, o.enzyme_tau_source))
            ka, kd = kp[_IDX["mm_const_assim"]], kp[_IDX["mm_const_decom"]]
            fcwd = kp[_IDX["fcwdl2"]]
            fl1s1, fl2s1, fl3s4 = kp[_IDX["pl1s1"]], kp[_IDX["pl2s1"]], kp[_IDX["pl3s4"]]
            fl1s2 = (1 - fl1s1) * kp[_IDX["l1_cue"]]
            fl2s2 = (1 - fl2s1) * kp[_IDX["l2l3_cue"]]
            fl3s2 = (1 - fl3s4) * kp[_IDX["l2l3_cue"]]
            fs1s2, pdeath = kp[_IDX["mic_cue"]], kp[_IDX["pdeath2soc"]]
            beta = kp[_IDX["beta"]]
            with np.errstate(all="ignore"):
                temp = forcing.tsoi_k[s]
                xit = np.where(temp >= T_FREEZE_K, q10 ** ((temp - T_REF_K) / 10.0),
                               q10 ** ((T_FREEZE_K - T_REF_K) / 10.0) * q10 ** ((temp - T_FREEZE_K) / 10.0))
                xit = np.where(np.isfinite(temp), xit, np.nan)
                xiw = np.minimum(forcing.w_scalar[s] * w, 1.0)
                xiw = np.where(np.isfinite(forcing.w_scalar[s]), xiw, np.nan)
                xi = (_month_mean(xit) * _month_mean(xiw) * _month_mean(forcing.o_scalar[s]) * _XI_D)
                xin = _month_mean(forcing.fpi[s])
                kk = np.concatenate([xi / (d * tau_cwd), xi * xin / (d * tau_l1),
                                     xi * xin / (d * tau_l2), xi * xin / (d * tau_l2)])
                a_ma = -np.eye(4 * n)
                a_ma[2 * n:3 * n, 0:n] = fcwd * np.eye(n)
                a_ma[3 * n:4 * n, 0:n] = (1 - fcwd) * np.eye(n)
                tri = transport_matrix_reference(bio, cryo, forcing.altmax_m[s], forcing.altmax_lastyear_m[s],
                                                 int(forcing.nbedrock[s]), bedrock=o.bedrock)
                tri_ma = np.zeros((4 * n, 4 * n))
                for blk in (1, 2, 3):
                    tri_ma[blk * n:(blk + 1) * n, blk * n:(blk + 1) * n] = tri
                # vertical input profile as coded (divide by dz, normalise with dz)
                if np.all(forcing.altmax_lastyear_m[s] > 0):
                    prof = (beta ** (zisoi[:-1] * 100.0) - beta ** (zisoi[1:] * 100.0)) / _DZ
                else:
                    prof = np.zeros(n)
                    prof[0] = 1.0 / _DZ[0]
                vertical_input = _DZ * prof / np.sum(prof * _DZ)
                tot = forcing.litter_input[s]
                matrix_in = np.concatenate([tot[p] * vertical_input / (_DZ * d) for p in range(4)])
                mat = a_ma * kk[None, :] - tri_ma
                lu, piv, info = lapack.dgetrf(mat)
                if info > 0 or not np.all(np.isfinite(mat)):
                    singular[i] = True
                    x = np.full(4 * n, np.nan)
                    rcond = 0.0
                else:
                    anorm = np.abs(mat).sum(axis=0).max()
                    rcond, _ = lapack.dgecon(lu, anorm, norm="1")
                    x, _ = lapack.dgetrs(lu, piv, -matrix_in)
                    if o.singular == "rcond" and not rcond >= o.rcond_min:
                        singular[i] = True
                diagn["rcond"][i] = rcond
                kdiag = kk.reshape(4, n)
                negative_litter[i] = bool(np.any(x < 0))
                x = np.where(x < 0, 0.0, x)
                lit = x.reshape(4, n)
                # soil pools, arrangement of matrix_fun.m
                k_dth, k_en = 1 / (tau_death * d), 1 / (tau_enz * d)
                input_soc = kdiag[3] * lit[3] * fl3s4
                input_doc = kdiag[1] * lit[1] * fl1s1 + kdiag[2] * lit[2] * fl2s1
                input_mic = kdiag[1] * lit[1] * fl1s2 + kdiag[2] * lit[2] * fl2s2 + kdiag[3] * lit[3] * fl3s2
                mic = (input_mic + fs1s2 * (input_soc + input_doc)) / ((1 - fs1s2) * (k_dth + k_en) * xi)
                enz = k_en / (1 / (tau_s3 * d)) * mic
                soc = ((input_soc + pdeath * k_dth * xi * mic) * kd * xi
                       / (1 / (tau_s4 * d) * xi * enz - pdeath * k_dth * xi * mic - input_soc))
                doc = (((k_dth + k_en) * xi * mic * ka * xi - input_mic * ka * xi)
                       / ((fs1s2 / (tau_s1 * d) * xi - (k_dth + k_en) * xi) * mic + input_mic))
                pools[i] = np.column_stack([lit[0], lit[1], lit[2], lit[3], doc, mic, enz, soc])
                # diagnostics
                to_col = d * _DZ
                flux = kdiag * lit
                lresp = (flux[1] * (1 - fl1s1 - fl1s2) + flux[2] * (1 - fl2s1 - fl2s2)
                         + flux[3] * (1 - fl3s4 - fl3s2))
                uptake = xi / (tau_s1 * d) * mic * doc / (ka * xi + doc)
                diagn["input"][i] = tot.sum()
                diagn["litter_respiration"][i] = np.sum(lresp * to_col)
                diagn["soil_respiration"][i] = np.sum((1 - fs1s2) * uptake * to_col)
                diagn["soil_input"][i] = np.sum((input_soc + input_doc + input_mic) * to_col)
                diagn["bottom_leak"][i] = np.sum((tri @ (lit[1] + lit[2] + lit[3])) * to_col)
        diagn["respiration"] = diagn["litter_respiration"] + diagn["soil_respiration"]
        fok = ok_forcing[sites]
        return self._finish(np.ascontiguousarray(pools.transpose(0, 2, 1)), singular, negative_litter, fok, diagn)

    # ------------------------------------------------------------------------------------------ components
    def components(self, theta: np.ndarray, prepared: COMPASPrepared, site_index: np.ndarray | None = None,
                   state: SteadyState | None = None, *, variant: str | None = None) -> dict[str, np.ndarray]:
        """Bulk-process components per item (``compas.md`` §8, ``proda_nn_maps.md`` §8.6 and §8.8).

        Parameters
        ----------
        theta : numpy.ndarray
            (B, 23) physical parameters.
        prepared : COMPASPrepared
            Output of :meth:`prepare`.
        site_index : numpy.ndarray or None
            (B,) site of each item; None means B == S.
        state : SteadyState or None
            Steady state of the same items from :meth:`steady_state` (recomputed when None).  Pools of items
            flipped by the 10:1 rule are un-flipped (``fun_bulk_process.m`` has no 10:1 rule).
        variant : {"gcb", "legacy"} or None
            Definitions of the main keys; None uses the instance's ``components_variant``.

        Returns
        -------
        dict of numpy.ndarray
            (B,) unless noted; NaN for items that failed or have a negative pool (as ``fun_bulk_process.m``).

            * ``cte`` (1): carbon transfer efficiency.  GCB (Eq 10): sum_j e_j F_j / sum_j F_j with donor flux
              F_j = sum_z x_jz k_j xi^TWD_z dz_z over ``cte_donors``, e_j the non-respired fraction of donor j
              and k_j the baseline rates (Michaelis-Menten baselines at steady state for DOC and mSOC).  Legacy
              = ``bulk_A`` (microbial-CUE-only transfers, with the (1-p_j) double count).
            * ``k_system`` (yr-1): GCB (Eq 11) stock-weighted baseline rate over ``k_pools``; legacy = ``bulk_K``.
            * ``xi_system`` (1): xi^TWD = mean(xi_T) mean(xi_W) xi_D (no O, no N) weighted by total soil C.
            * ``v_system`` (yr-1): 365 x diagonal of the month-averaged transport operator, weighted by litter
              (ML+CL+LL) or total soil C stock (``v_weight``).
            * ``b_system`` (1): b^5 (GCB, fraction of input below 5 cm) or b (legacy), with ``b`` the mean of
              exp(ln(1 - Y_z)/(100 zsoi_z)) over layers with cumulative input fraction Y_z < 1; ``b`` and
              ``b5`` are also returned.
            * ``input`` (g C m-2 yr-1): total plant input.
            * ``e_system`` (1): legacy ``bulk_E`` (non-microbial transfer).
            * ``litter_fraction`` (1): litter -> mineral soil flux / litter decomposition flux.
            * ``cue_system`` (1): microbial system CUE (inflow to MIC / outflow of the donors feeding MIC);
              ``mic_cue`` (1): the site parameter eta_DOC.
            * Km / substrate ratios (1): ``km_assim_ratio`` = Km,assim / (DOC 0-30 cm stock / 0.3 m) and
              ``km_decom_ratio`` = Km,decom / (total soil C 0-30 cm / 0.3 m) as plotted in Fig 5 (compat);
              ``km_assim_ratio_fullprofile_kg`` (the v7 convention: full-profile DOC stock in kg C m-2);
              ``km_decom_ratio_msoc`` (mSOC as substrate); stock-weighted effective ratios with xi
              ``km_assim_eff_0_30cm``, ``km_assim_eff_0_100cm``, ``km_decom_eff_0_30cm``,
              ``km_decom_eff_0_100cm`` (substrates DOC and mSOC); layer-wise (B, 20) ``km_assim_layer``,
              ``km_assim_eff_layer``, ``km_decom_layer``, ``km_decom_eff_layer``.
            * ``status`` (B,) int8: the steady-state status of each item.
            * Every one of cte, k_system, v_system, b_system also as ``<key>_gcb`` and ``<key>_legacy``.
        """
        self._check_prepared(prepared)
        variant = variant or self.options.components_variant
        if variant not in ("gcb", "legacy"):
            raise ValueError(f"variant must be 'gcb' or 'legacy', got {variant!r}")
        theta, sidx = self._check_batch(theta, prepared.n_sites, site_index)
        if state is None:
            state = self.steady_state(theta, prepared, site_index)
        status = np.asarray(state.status)
        raw = np.array(state.pools, dtype=np.float64, copy=True)
        ratio_only = status == INVALID_RATIO
        raw[ratio_only] = np.abs(raw[ratio_only])
        bad = ~((status == OK) | ratio_only) | np.any(raw < 0, axis=(1, 2))
        r = _rates(theta, self.options.enzyme_tau_source)
        yr = DAYS_PER_YEAR
        with np.errstate(all="ignore"):
            env = self._environment(r, prepared, sidx)
            xi, xi_twd, xin, prof = env["xi"], env["xi_twd"], env["xi_n"], env["profile"]
            cwd, ml, cl, ll, doc, mic, enz, msoc = (raw[..., p] for p in range(8))
            dz = _DZ
            stock = raw * dz[None, :, None]  # g C m-2 per layer
            soil_stock = stock[..., 4:8].sum(axis=-1)  # (B, 20)

            # baseline rates (yr-1): theta-derived per-day rates times 365
            k_base = {
                "CWD": r.k_cwd * yr + 0 * xi, "ML": r.k_ml * yr + 0 * xi, "CL": r.k_cl * yr + 0 * xi,
                "LL": r.k_cl * yr + 0 * xi,
                "DOC": r.v_assim * yr * mic / (r.km_assim * xi + doc),
                "MIC": (r.k_death + r.k_enz) * yr + 0 * xi,
                "ENZ": r.k_e * yr + 0 * xi,
                "mSOC": r.v_decom * yr * enz / (r.km_decom * xi + msoc),
            }
            one = np.ones(len(theta))
            eff = {"CWD": one, "ML": (r.p1 + (1 - r.p1) * r.c1)[:, 0], "CL": (r.p2 + (1 - r.p2) * r.c2)[:, 0],
                   "LL": (r.p3 + (1 - r.p3) * r.c2)[:, 0], "DOC": r.eps[:, 0], "MIC": one, "ENZ": one,
                   "mSOC": one}
            pidx = {name: i for i, name in enumerate(POOL_NAMES)}

            # --- GCB CTE (Eq 10)
            num = np.zeros(len(theta))
            den = np.zeros(len(theta))
            for name in self.options.cte_donors:
                flux = np.sum(stock[..., pidx[name]] * k_base[name] * xi_twd, axis=1)
                num += eff[name] * flux
                den += flux
            cte_gcb = num / den
            # --- GCB K (Eq 11)
            knum = np.zeros(len(theta))
            kden = np.zeros(len(theta))
            for name in self._k_pools:
                knum += np.sum(k_base[name] * stock[..., pidx[name]], axis=1)
                kden += np.sum(stock[..., pidx[name]], axis=1)
            k_gcb = knum / kden
            # --- xi (Eq 13)
            xi_sys = np.sum(xi_twd * soil_stock, axis=1) / np.sum(soil_stock, axis=1)
            # --- V (Eq 12): diagonal of the month-averaged operator, d-1 -> yr-1
            vdiag = env["diag"][:, 1, :] * yr
            lit_w = (ml + cl + ll) * dz
            v_lit = np.sum(vdiag * lit_w, axis=1) / np.sum(lit_w, axis=1)
            v_soc = np.sum(vdiag * soil_stock, axis=1) / np.sum(soil_stock, axis=1)
            v_sys = v_lit if self.options.v_weight == "litter" else v_soc
            # --- B (Eq 14)
            cum = np.cumsum(prof, axis=1)
            term = np.exp(np.log(1.0 - cum) / (_ZSOI * 100.0))
            keep = cum < 1.0
            cnt = keep.sum(axis=1)
            b_val = np.where(cnt > 0, np.where(keep, term, 0.0).sum(axis=1) / np.maximum(cnt, 1), np.nan)
            b5 = b_val ** 5
            total_input = env["inputs"].sum(axis=1)

            # --- legacy (fun_bulk_process.m)
            tau_l1 = theta[:, _IDX["tau4l1"]][:, None]
            tau_l2 = theta[:, _IDX["tau4l2"]][:, None]
            app_ml, app_cl = xi / tau_l1, xi / tau_l2  # yr-1, no xi_N
            app_doc = (xi / theta[:, _IDX["tau4s1"]][:, None]) * mic / (r.km_assim * xi + doc)
            app_mic = (r.k_death + r.k_enz) * yr * xi
            fl = [np.sum(ml * app_ml * (1 - r.p1) * dz, axis=1), np.sum(cl * app_cl * (1 - r.p2) * dz, axis=1),
                  np.sum(ll * app_cl * (1 - r.p3) * dz, axis=1), np.sum(doc * app_doc * dz, axis=1)]
            eta = [((1 - r.p1) * r.c1)[:, 0], ((1 - r.p2) * r.c2)[:, 0], ((1 - r.p3) * r.c2)[:, 0], r.eps[:, 0]]
            cte_legacy = sum(e * f for e, f in zip(eta, fl)) / sum(fl)
            kappa = (2.0 * yr * r.v_decom * enz * r.km_decom * xi * msoc / (r.km_decom * xi + msoc) ** 3)
            kl_rates = [r.k_cwd * yr, r.p1 * r.k_ml * yr, r.p2 * r.k_cl * yr, r.p3 * r.k_cl * yr,
                        (r.k_death + r.k_enz) * yr, r.k_e * yr]
            kl_pools = [cwd, ml, cl, ll, mic, enz]
            tot_leg = sum(np.nansum(p * dz, axis=1) for p in kl_pools) + np.nansum(msoc * dz, axis=1)
            k_legacy = (sum(np.nansum(k * p * dz, axis=1) for k, p in zip(kl_rates, kl_pools))
                        + np.nansum(kappa * msoc * dz, axis=1)) / tot_leg
            fe = [np.sum(ml * app_ml * dz, axis=1), np.sum(cl * app_cl * dz, axis=1),
                  np.sum(ll * app_cl * dz, axis=1), np.sum(mic * app_mic * dz, axis=1)]
            e_frac = [r.p1[:, 0], r.p2[:, 0], r.p3[:, 0], r.pd[:, 0]]
            e_sys = sum(e * f for e, f in zip(e_frac, fe)) / sum(fe)

            # --- fluxes of the model (d-1) for litter fraction and system CUE
            k_ml = r.k_ml * xi * xin
            k_cl = r.k_cl * xi * xin
            f_ml, f_cl, f_ll = k_ml * ml, k_cl * cl, k_cl * ll
            u_doc = r.p1 * f_ml + r.p2 * f_cl
            u_mic = (1 - r.p1) * r.c1 * f_ml + (1 - r.p2) * r.c2 * f_cl + (1 - r.p3) * r.c2 * f_ll
            u_msoc = r.p3 * f_ll
            uptake = r.v_assim * xi * mic * doc / (r.km_assim * xi + doc)
            litter_fraction = (np.sum((u_doc + u_mic + u_msoc) * dz, axis=1)
                               / np.sum((f_ml + f_cl + f_ll) * dz, axis=1))
            cue_sys = (np.sum((u_mic + r.eps * uptake) * dz, axis=1)
                       / np.sum(((1 - r.p1) * f_ml + (1 - r.p2) * f_cl + (1 - r.p3) * f_ll + uptake) * dz, axis=1))

            # --- Km / substrate ratios (Fig 5, compas.md §10)
            w30 = overlap_weights(0.0, 0.3) * dz
            w100 = overlap_weights(0.0, 1.0) * dz
            doc30 = np.sum(doc * w30, axis=1)
            soc30 = np.sum((doc + mic + enz + msoc) * w30, axis=1)
            msoc30 = np.sum(msoc * w30, axis=1)
            ka, kd = r.km_assim[:, 0], r.km_decom[:, 0]
            out = {
                "cte_gcb": cte_gcb, "cte_legacy": cte_legacy,
                "k_system_gcb": k_gcb, "k_system_legacy": k_legacy,
                "v_system_gcb": v_sys, "v_system_legacy": v_lit,
                "b_system_gcb": b5, "b_system_legacy": b_val,
                "xi_system": xi_sys, "b": b_val, "b5": b5, "input": total_input,
                "e_system": e_sys, "litter_fraction": litter_fraction, "cue_system": cue_sys,
                "mic_cue": r.eps[:, 0].copy(),
                "km_assim_ratio": ka / (doc30 / 0.3),
                "km_decom_ratio": kd / (soc30 / 0.3),
                "km_assim_ratio_fullprofile_kg": ka / (np.sum(doc * dz, axis=1) / 1000.0 / 0.3),
                "km_decom_ratio_msoc": kd / (msoc30 / 0.3),
                "km_assim_eff_0_30cm": np.sum(r.km_assim * xi * w30, axis=1) / doc30,
                "km_assim_eff_0_100cm": np.sum(r.km_assim * xi * w100, axis=1) / np.sum(doc * w100, axis=1),
                "km_decom_eff_0_30cm": np.sum(r.km_decom * xi * w30, axis=1) / msoc30,
                "km_decom_eff_0_100cm": np.sum(r.km_decom * xi * w100, axis=1) / np.sum(msoc * w100, axis=1),
                "km_assim_layer": r.km_assim / doc, "km_assim_eff_layer": r.km_assim * xi / doc,
                "km_decom_layer": r.km_decom / msoc, "km_decom_eff_layer": r.km_decom * xi / msoc,
            }
        for key in ("cte", "k_system", "v_system", "b_system"):
            out[key] = out[f"{key}_{variant}"]
        for key, val in out.items():
            if key not in ("input", "mic_cue"):
                val = np.asarray(val, dtype=np.float64)
                val[bad] = np.nan
                out[key] = val
        out["status"] = status.astype(np.int8)
        return out
