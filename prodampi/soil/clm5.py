"""CLM5 vertically resolved CENTURY-type soil carbon model as PRODA used it ("cen_vr_v2", ``clm5.md``).

State: 7 pools (CWD, L1 metabolic, L2 cellulose, L3 lignin litter, S1 fast, S2 slow, S3 passive SOM) in 20
layers, concentrations in g C m-3.  The steady state of the month-averaged linear system

    (A K - V) x = -B I          (rates in d-1, inputs g C m-3 d-1)

is computed by a structured solver (``clm5.md`` §5.2):

* CWD decouples: ``CWD_z = I_cwd,z / k_cwd,z``; its decay feeds L2/L3 in the same layer;
* L1, L2, L3: independent 20-layer tridiagonal systems ``(T + diag k_L) L = input`` (Thomas);
* S1, S2, S3: one block-tridiagonal system with 3 x 3 blocks (block Thomas), the off-diagonal blocks being
  the transport coefficients times the identity;

so no 140 x 140 matrix is formed on the hot path.  :meth:`CLM5Model.steady_state_reference` builds the 12
monthly matrices as coded and solves the 140 x 140 system densely (tests, benchmarks).

Units: parameters as in :data:`CLM5_PARAMS` (turnover times in yr, diffusivities in m2 yr-1); rates inside in
d-1 (k = 1 / (365 tau)); litter inputs in g C m-2 yr-1 (column totals).
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .base import BAD_FORCING, NEGATIVE, NONFINITE, OK, SINGULAR, SoilModel, SteadyState
from .forcing import Forcing
from .layers import DZ_M, N_LAYERS, ZISOI_M, ZSOI_M
from .options import RCOND_MIN, SoilOptions
from .params import Param, ParamTable
from .solvers import BlockTridiagonalLU, TridiagonalLU
from .transport import (
    DAYS_PER_YEAR,
    TransportBasis,
    input_profile,
    thawed_all_year,
    transport_basis,
    transport_diagonals,
    transport_matrix_reference,
)

__all__ = ["CLM5_PARAMS", "CLM5_RELEASE_VALUES", "CLM5Model", "CLM5Options", "CLM5Prepared", "RCOND_MIN",
           "fs1s2_clm5_default"]

# ------------------------------------------------------------------------------------------ parameters
SECONDS_PER_YEAR = 365.0 * 86400.0
"""CLM5's no-leap year (s), used to convert the release file's m2 s-1 diffusivities to m2 yr-1."""

#: Values of the CLM5.0 release parameter file ``clm5_params.c171117.nc`` (CESM2; see
#: ``../shared/data/clm5_params/LICENSE_ATTRIBUTION.md``) that the customary values below are derived from.
#: Units as in the file: tau_* in yr (tau_cwd is labelled "1/year" in the file but CLM5 and PRODA use it as a
#: turnover time in yr), rf_* and cwd_* dimensionless, diffusivities in m2 s-1, efolding in m.
CLM5_RELEASE_VALUES: dict[str, float] = {
    "som_diffus": 3.1709791983764588e-12,
    "cryoturb_diffusion_k": 1.5854895991882293e-11,
    "q10_hr": 1.5,
    "decomp_depth_efolding": 10.0,
    "tau_cwd": 3.3333332538604736,
    "tau_l1": 0.054054055362939835,
    "tau_l2_l3": 0.20408162474632263,
    "tau_s1": 0.13698630034923553,
    "tau_s2": 5.0,
    "tau_s3": 222.22222900390625,
    "rf_l1s1_bgc": 0.55,
    "rf_l2s1_bgc": 0.5,
    "rf_l3s2_bgc": 0.5,
    "rf_s2s1_bgc": 0.55,
    "rf_s2s3_bgc": 0.55,
    "rf_s3s1_bgc": 0.55,
    "cwd_flig": 0.24,
}
_R = CLM5_RELEASE_VALUES


def fs1s2_clm5_default(sand_pct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CLM5 default-branch S1 -> S2 and S1 -> S3 fractions from sand content (``clm5.md`` §4.1).

    ``t = 0.85 - 0.0068 (100 - sand)`` with sand clipped to [0, 100] %; ``fs1s2 = (1 - t) - 0.004``,
    ``fs1s3 = 0.004``.

    Parameters
    ----------
    sand_pct : array
        Sand content (%), any shape.

    Returns
    -------
    (fs1s2, fs1s3) : arrays (dimensionless)
    """
    sand = np.clip(np.asarray(sand_pct, dtype=np.float64), 0.0, 100.0)
    t = 0.85 - 0.0068 * (100.0 - sand)
    return (1.0 - t) - 0.004, np.full_like(t, 0.004)


#: The 21 CLM5 parameters (``clm5.md`` §2): order = MCMC vector = NN targets.
#:
#: Customary values are CLM5's defaults from the release parameter file ``clm5_params.c171117.nc``
#: (:data:`CLM5_RELEASE_VALUES`), mapped as PRODA's default branch does (``clm5.md`` §4.1, §9): diffusivities
#: m2 s-1 x 365 x 86400; transfer fractions = 1 - respiration fraction (fs2s1, fs2s3 with CLM5's 0.42/0.45 and
#: 0.03/0.45 path splits); fcwdl2 = 1 - cwd_flig.  Values from elsewhere:
#:
#: * ``efolding`` = 10 m (file) lies **outside** the DA prior [0, 1] m (normalized value 10);
#: * ``fs1s2`` is sand dependent in CLM5 (:func:`fs1s2_clm5_default`) and has no single value: NaN;
#: * ``fs1s3`` = 0.004 is CLM5's constant (hard-coded in CTSM, not in the file);
#: * ``w-scaling`` = 1 (CLM5 uses W_SCALAR unscaled); ``beta`` = 0.95 (PRODA code comment; CLM5's root
#:   profile betas are per PFT).
CLM5_PARAMS = ParamTable("clm5", (
    Param("diffus", "bioturbation diffusivity (non-permafrost regime)", "m2 yr-1", 3e-5, 5e-4,
          _R["som_diffus"] * SECONDS_PER_YEAR),
    Param("cryo", "cryoturbation diffusivity (0 < ALT <= 2 m)", "m2 yr-1", 3e-5, 1.6e-3,
          _R["cryoturb_diffusion_k"] * SECONDS_PER_YEAR),
    Param("q10", "temperature sensitivity Q10 (also the frozen Q10)", "1", 1.2, 3.0, _R["q10_hr"]),
    Param("efolding", "e-folding depth of the decomposition depth scalar", "m", 0.0, 1.0,
          _R["decomp_depth_efolding"]),
    Param("taucwd", "CWD turnover time", "yr", 1.0, 6.0, _R["tau_cwd"]),
    Param("taul1", "metabolic litter (L1) turnover time", "yr", 0.0, 0.11, _R["tau_l1"]),
    Param("taul2", "cellulose and lignin litter (L2, L3) turnover time", "yr", 0.1, 0.3, _R["tau_l2_l3"]),
    Param("tau4s1", "fast SOM (S1) turnover time", "yr", 0.0, 1.0, _R["tau_s1"]),
    Param("tau4s2", "slow SOM (S2) turnover time", "yr", 1.0, 50.0, _R["tau_s2"]),
    Param("tau4s3", "passive SOM (S3) turnover time", "yr", 200.0, 1000.0, _R["tau_s3"]),
    Param("fl1s1", "transfer fraction L1 -> S1", "1", 0.1, 0.8, 1.0 - _R["rf_l1s1_bgc"]),
    Param("fl2s1", "transfer fraction L2 -> S1", "1", 0.2, 0.8, 1.0 - _R["rf_l2s1_bgc"]),
    Param("fl3s2", "transfer fraction L3 -> S2", "1", 0.2, 0.8, 1.0 - _R["rf_l3s2_bgc"]),
    Param("fs1s2", "transfer fraction S1 -> S2 (sand dependent in CLM5)", "1", 0.0, 0.4, float("nan")),
    Param("fs1s3", "transfer fraction S1 -> S3", "1", 0.0, 0.05, 0.004),
    Param("fs2s1", "transfer fraction S2 -> S1", "1", 0.1, 0.74, (0.42 / 0.45) * (1.0 - _R["rf_s2s1_bgc"])),
    Param("fs2s3", "transfer fraction S2 -> S3", "1", 0.0, 0.1, (0.03 / 0.45) * (1.0 - _R["rf_s2s3_bgc"])),
    Param("fs3s1", "transfer fraction S3 -> S1", "1", 0.0, 0.9, 1.0 - _R["rf_s3s1_bgc"]),
    Param("fcwdl2", "fraction of CWD decay to L2 (rest to L3, none respired)", "1", 0.5, 1.0,
          1.0 - _R["cwd_flig"]),
    Param("w-scaling", "multiplier on W_SCALAR before capping at 1", "1", 0.0, 5.0, 1.0),
    Param("beta", "Jackson (1996) beta of the litter-input depth profile", "1", 0.5, 0.9999, 0.95),
))

# pool order and indices
POOLS = ("cwd", "l1", "l2", "l3", "s1", "s2", "s3")
_I = {n: i for i, n in enumerate(CLM5_PARAMS.names)}
_DZ = DZ_M[:N_LAYERS]
_ZSOI = ZSOI_M[:N_LAYERS]


# ------------------------------------------------------------------------------------------ options
@dataclass(frozen=True)
class CLM5Options(SoilOptions):
    """Options of :class:`CLM5Model` (the shared vocabulary of :mod:`prodampi.soil.options`).

    Attributes
    ----------
    bedrock : {"compat", "conservative"}, default "compat"
        Transport at the bedrock (:mod:`prodampi.soil.transport`).  "compat" reproduces PRODA's leaky
        bottom at layer nbedrock+1 (``clm5.md`` §4.5.4; carbon is lost there, reported as ``bottom_leak``);
        "conservative" closes it (zero flux to 1e-30).
    negative_pools : {"clip", "fail"}, default "clip"
        PRODA sets negative pools of the 140 x 140 solve to 0 and reports success ("clip").  "fail": items
        with any negative pool get status NEGATIVE.
    singular : {"rcond", "pivot"}, default "rcond"
        "rcond": PRODA's DA rejects solves for which MATLAB warns "nearly singular", i.e. the 1-norm
        reciprocal condition number of the 140 x 140 matrix is below ``rcond_min`` (``clm5.md`` §5.3); such
        items get status SINGULAR.  The fast path computes this rcond exactly from one transposed solve
        (the matrix is an M-matrix, so its inverse is nonnegative and ``||M^-1||_1 = max(M^-T 1)``; LAPACK's
        ``gecon`` estimator is exact for such matrices) and returns it as diagnostic ``rcond``.  "pivot":
        only zero pivots fail (the structured solve is accurate regardless of conditioning; diagnostic
        ``rcond`` is NaN on the fast path).
    rcond_min : float, default :data:`~prodampi.soil.options.RCOND_MIN` (2.22e-16)
        Threshold of the rcond rule (machine epsilon, MATLAB's).
    nonfinite : {"nan", "keep"}, default "nan"
        Items with a NaN/Inf pool get status NONFINITE; "nan" blanks all their pools, "keep" returns them.
        CLM5's default blanks them: the structured solve's non-finite entries need not match the dense
        solve's entry by entry (CLM5 has no 0/0 in its closed form; a non-finite solve means NaN forcing or
        parameters).
    chunk_size : int, default 4096
        Items solved per vectorised pass (large batches are processed in chunks to keep the temporaries in
        cache; results do not depend on it).

    Presets: ``paper`` = the defaults above; ``textbook`` (``clm5.md`` §11 "clean" mode) = conservative
    bedrock, no rcond penalty (``singular="pivot"``), negative pools flagged (``negative_pools="fail"``).
    """

    model: ClassVar[str] = "clm5"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "textbook": {"bedrock": "conservative", "singular": "pivot", "negative_pools": "fail"},
    }
    renamed: ClassVar[dict[str, str]] = {
        "rcond_check": "singular ('rcond' = rcond_check True, 'pivot' = False)",
        "clip_negative": "negative_pools ('clip' = clip_negative True, 'fail' = False)",
    }


# ------------------------------------------------------------------------------------------ prepared
@dataclass
class CLM5Prepared:
    """Parameter-independent per-site constants (from :meth:`CLM5Model.prepare`).

    Attributes
    ----------
    forcing : Forcing
        The forcing (kept for the reference path and the components).
    u10 : (S, 20, 12) array
        ``(TSOI - 298.15 K) / 10`` (so ``xi_T = q10 ** u10``); 0 where a month is invalid.
    w : (S, 20, 12) array
        W_SCALAR (1), 0 where invalid.
    o_som : (S, 20, 12) array
        Month weights for the CWD/SOM rates: ``O_SCALAR / n_valid`` over months where TSOI, W and O are finite
        (NaN in all months when none is), so ``mean_m(xi_T xi_W xi_O) = sum_m xi_T xi_W o_som``.
    o_lit : (S, 20, 12) array
        Same for litter, ``O_SCALAR * FPI / n_valid`` over months where FPI is finite too.
    basis : TransportBasis
        Transport diagonals per unit bio/cryo (d-1 per m2 yr-1) and the floor part.
    thawed : (S,) bool array
        All 12 ALTMAX_LASTYEAR > 0 (beta input profile; else all input to layer 1).
    inputs : (S, 4) array
        Annual column inputs CWD, L1, L2, L3 (g C m-2 yr-1).
    forcing_ok : (S,) bool array
        :meth:`Forcing.check` result; bad sites get status BAD_FORCING.
    forcing_reasons : list of str
        Reason per site ('' where ok).
    bedrock : str
        Bedrock option the transport basis was built with.
    """

    forcing: Forcing
    u10: np.ndarray
    w: np.ndarray
    o_som: np.ndarray
    o_lit: np.ndarray
    basis: TransportBasis
    thawed: np.ndarray
    inputs: np.ndarray
    forcing_ok: np.ndarray
    forcing_reasons: list
    bedrock: str = "compat"

    @property
    def n_sites(self) -> int:
        """Number of prepared sites ``S``."""
        return int(self.inputs.shape[0])


@dataclass
class _Rates:
    """Per-item parameter-derived quantities (B,) (rates in d-1)."""

    bio: np.ndarray
    cryo: np.ndarray
    q10: np.ndarray
    efolding: np.ndarray
    k0: np.ndarray  # (B, 7) baseline rates d-1, pool order (L3 = L2)
    f: dict
    w_scaling: np.ndarray
    beta: np.ndarray


def _rates(theta: np.ndarray) -> _Rates:
    t = theta
    with np.errstate(divide="ignore"):
        tau = np.stack([t[:, _I["taucwd"]], t[:, _I["taul1"]], t[:, _I["taul2"]], t[:, _I["taul2"]],
                        t[:, _I["tau4s1"]], t[:, _I["tau4s2"]], t[:, _I["tau4s3"]]], axis=1)
        k0 = 1.0 / (DAYS_PER_YEAR * tau)
    f = {n: t[:, _I[n]] for n in ("fl1s1", "fl2s1", "fl3s2", "fs1s2", "fs1s3", "fs2s1", "fs2s3", "fs3s1",
                                  "fcwdl2")}
    return _Rates(bio=t[:, _I["diffus"]], cryo=t[:, _I["cryo"]], q10=t[:, _I["q10"]],
                  efolding=t[:, _I["efolding"]], k0=k0, f=f, w_scaling=t[:, _I["w-scaling"]],
                  beta=t[:, _I["beta"]])


def _respired_fractions(f: dict) -> np.ndarray:
    """(7, B) respired fraction of each pool's decay (1 - sum of its transfer fractions)."""
    one = np.ones_like(f["fl1s1"])
    return np.stack([
        one - f["fcwdl2"] - (1.0 - f["fcwdl2"]),
        one - f["fl1s1"], one - f["fl2s1"], one - f["fl3s2"],
        one - f["fs1s2"] - f["fs1s3"], one - f["fs2s1"] - f["fs2s3"], one - f["fs3s1"],
    ])


# ------------------------------------------------------------------------------------------ model
class CLM5Model(SoilModel):
    """CLM5 (PRODA ``cen_vr_v2``) soil carbon model with a fast structured steady-state solver.

    Parameters
    ----------
    options : CLM5Options or None
        The options record; None builds it from ``preset``.
    preset : {"paper", "textbook"} or None
        Named preset (default "paper", the authors' code); see :class:`CLM5Options`.
    **overrides
        Fields of :class:`CLM5Options` replacing the preset's (e.g. ``bedrock="conservative"``).

    Notes
    -----
    Quirks kept on purpose (``clm5.md`` §4, §11): K and V are averaged over the 12 months before the solve
    (product of the scalars month by month, NaN months ignored); xi_N applies to litter only; the same beta
    input profile is used for CWD and the three litter pools, and all input goes to layer 1 unless all 12
    ALTMAX_LASTYEAR > 0; the same transport operator acts on L1-L3 and S1-S3 (CWD does not move).
    Status codes (:mod:`prodampi.soil.base`): BAD_FORCING (site failed :meth:`Forcing.check`), SINGULAR
    (zero pivot, or rcond below ``rcond_min`` when ``singular="rcond"``), NONFINITE, NEGATIVE (only when
    ``negative_pools="fail"``).  Failed items have NaN pools and diagnostics except ``input``/``rcond``
    (NONFINITE items keep their pools when ``nonfinite="keep"``).
    """

    name = "clm5"
    params = CLM5_PARAMS
    pool_names = POOLS
    soc_pools = (4, 5, 6)
    options_class = CLM5Options
    prepared_class = CLM5Prepared

    def __init__(self, options: CLM5Options | None = None, *, preset: str | None = None,
                 **overrides: Any) -> None:
        super().__init__(options, preset=preset, **overrides)
        self._tls = threading.local()  # scratch buffers, one set per thread

    # -------------------------------------------------------------------------------------- prepare
    def prepare(self, forcing: Forcing) -> CLM5Prepared:
        """Per-site constants computed once (see :class:`CLM5Prepared`).

        Parameters
        ----------
        forcing : Forcing
            ``S`` sites.

        Returns
        -------
        CLM5Prepared
        """
        t, w, o, n = forcing.tsoi_k, forcing.w_scalar, forcing.o_scalar, forcing.fpi
        valid_s = np.isfinite(t) & np.isfinite(w) & np.isfinite(o)
        valid_l = valid_s & np.isfinite(n)
        cnt_s = valid_s.sum(axis=2, keepdims=True)
        cnt_l = valid_l.sum(axis=2, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            o_som = np.where(valid_s, o, 0.0) / cnt_s
            o_lit = np.where(valid_l, o * n, 0.0) / cnt_l
        o_som = np.where(cnt_s == 0, np.nan, o_som)
        o_lit = np.where(cnt_l == 0, np.nan, o_lit)
        ok, reasons = forcing.check()
        return CLM5Prepared(
            forcing=forcing,
            u10=np.ascontiguousarray(np.where(valid_s, (t - 298.15) / 10.0, 0.0)),
            w=np.ascontiguousarray(np.where(valid_s, w, 0.0)),
            o_som=np.ascontiguousarray(o_som),
            o_lit=np.ascontiguousarray(o_lit),
            basis=transport_basis(forcing, bedrock=self.options.bedrock),
            thawed=thawed_all_year(forcing),
            inputs=np.asarray(forcing.litter_input, dtype=np.float64),
            forcing_ok=ok,
            forcing_reasons=reasons,
            bedrock=self.options.bedrock,
        )

    # -------------------------------------------------------------------------------------- helpers
    def _scratch(self, key: str, shape: tuple, n: int) -> np.ndarray:
        """Reusable per-thread scratch array (n, *shape) for the largest temporaries (avoids re-faulting
        fresh memory pages on every call; grows to the largest chunk seen, at most ``chunk_size`` rows)."""
        store = self._tls.__dict__
        a = store.get(key)
        if a is None or a.shape[0] < n or a.shape[1:] != tuple(shape):
            a = np.empty((n,) + tuple(shape))
            store[key] = a
        return a[:n]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_tls", None)  # scratch buffers are not part of the model
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._tls = threading.local()

    @staticmethod
    def _take(a: np.ndarray, sidx: np.ndarray | slice | None) -> np.ndarray:
        if sidx is None:
            return a
        if isinstance(sidx, slice):
            return a[sidx]
        return np.take(a, sidx, axis=0)

    def _environment(self, r: _Rates, prep: CLM5Prepared, sidx: np.ndarray | None):
        """Month-averaged scalars (B, 20): CWD/SOM ``g_s`` and litter ``g_l`` (xi_T xi_W xi_O [xi_N] xi_D).

        ``g = xi_D * mean_m(xi_T xi_W xi_O [xi_N])`` with ``xi_T = q10 ** u10`` and ``xi_W = min(1, w W)``:
        240 exponentials per item, the dominant cost of an evaluation.
        """
        e = self._scratch("env_e", prep.u10.shape[1:], r.q10.shape[0])
        xw = self._scratch("env_w", prep.u10.shape[1:], r.q10.shape[0])
        np.multiply(self._take(prep.u10, sidx), np.log(r.q10)[:, None, None], out=e)
        np.exp(e, out=e)
        np.multiply(self._take(prep.w, sidx), r.w_scaling[:, None, None], out=xw)
        np.minimum(xw, 1.0, out=xw)
        np.multiply(e, xw, out=e)
        g_s = np.einsum("bzm,bzm->bz", e, self._take(prep.o_som, sidx))
        g_l = np.einsum("bzm,bzm->bz", e, self._take(prep.o_lit, sidx))
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            xi_d = np.exp(-_ZSOI[None, :] / r.efolding[:, None])
        return g_s * xi_d, g_l * xi_d

    # -------------------------------------------------------------------------------------- fast path
    def steady_state(self, theta: np.ndarray, prepared: CLM5Prepared,
                     site_index: np.ndarray | None = None) -> SteadyState:
        """Fast batched steady state (structured solve, no dense 140 x 140).

        Parameters
        ----------
        theta : (B, 21) array
            Physical parameters (order and units of :data:`CLM5_PARAMS`).
        prepared : CLM5Prepared
            From :meth:`prepare`.
        site_index : (B,) int array or None
            Prepared site of each item; None means B == S, item i at site i.

        Returns
        -------
        SteadyState
            ``pools`` (B, 20, 7) g C m-3, ``soc`` (B, 20) g C m-3 (S1+S2+S3), ``status`` (B,), diagnostics
            ``input``, ``respiration``, ``bottom_leak`` (g C m-2 yr-1; at steady state
            input = respiration + bottom_leak) and ``rcond`` (1-norm reciprocal condition number of the
            140 x 140 matrix, 0 where it could not be formed).

        Notes
        -----
        All work is vectorised over the batch; the only Python loops run over the 20 layers inside the
        solvers.  Arrays are kept layer-first, ``(20, ..., B)``, so each layer step touches contiguous
        vectors.  Large batches are processed in chunks of ``chunk_size`` items.
        """
        self._check_prepared(prepared)
        theta, sidx = self._check_batch(theta, prepared.n_sites, site_index)
        nbat = theta.shape[0]
        step = self.options.chunk_size
        if nbat <= step:
            return self._solve(theta, prepared, slice(0, nbat) if sidx is None else sidx)
        parts = [self._solve(theta[i:i + step], prepared,
                             slice(i, i + step) if sidx is None else sidx[i:i + step])
                 for i in range(0, nbat, step)]
        pl = np.empty((N_LAYERS, 7, nbat))
        i = 0
        for p in parts:
            n = p.status.shape[0]
            pl[:, :, i:i + n] = p.pools.transpose(1, 2, 0)
            i += n
        diag = {k: np.concatenate([p.diagnostics[k] for p in parts]) for k in parts[0].diagnostics}
        pools = pl.transpose(2, 0, 1)
        soc = pools[:, :, 4] + pools[:, :, 5] + pools[:, :, 6]
        return SteadyState(pools=pools, soc=soc, status=np.concatenate([p.status for p in parts]),
                           diagnostics=diag)

    def _solve(self, theta: np.ndarray, prepared: CLM5Prepared, sidx: np.ndarray | slice) -> SteadyState:
        """Steady state of one chunk; ``sidx`` selects the prepared sites (index array or slice)."""
        nbat = theta.shape[0]
        r = _rates(theta)
        f = r.f
        with np.errstate(all="ignore"):
            g_s, g_l = self._environment(r, prepared, sidx)  # (B,20)
            gs = np.ascontiguousarray(g_s.T)  # (20,B)
            gl = np.ascontiguousarray(g_l.T)
            k0 = np.ascontiguousarray(r.k0.T)  # (7,B) d-1
            if isinstance(sidx, slice):
                d = transport_diagonals(r.bio, r.cryo, prepared.basis.take(sidx))  # (B,3,20) d-1
            else:
                d = transport_diagonals(r.bio, r.cryo, prepared.basis, sidx)
            sub, main, sup = (np.ascontiguousarray(d[:, i].T) for i in range(3))  # (20,B)
            prof = input_profile(r.beta, self._take(prepared.thawed, sidx))  # (B,20)
            inputs = self._take(prepared.inputs, sidx)  # (B,4) g C m-2 yr-1
            dens = prof.T / (DAYS_PER_YEAR * _DZ[:, None])  # (20,B) m-1 d-1 yr per unit column input
            in_p = inputs.T[:, None, :] * dens[None]  # (4,20,B) g C m-3 d-1

            # ---- CWD and litter: k (20,3,B) for L1, L2, L3 (tau_L3 = tau_L2)
            k_cwd = k0[0] * gs
            kl = gl[:, None, :] * k0[None, 1:4, :]
            lit = TridiagonalLU.factor_layer_first(
                np.broadcast_to(sub[:, None, :], kl.shape), main[:, None, :] + kl,
                np.broadcast_to(sup[:, None, :], kl.shape))
            fc = f["fcwdl2"]
            rhs_l = np.empty((N_LAYERS, 3, nbat))
            rhs_l[:, 0] = in_p[1]
            rhs_l[:, 1] = in_p[2] + fc * in_p[0]
            rhs_l[:, 2] = in_p[3] + (1.0 - fc) * in_p[0]
            xl = lit.solve_layer_first(rhs_l, out=rhs_l)  # (20,3,B), in place
            dec_l = kl * xl  # litter decay fluxes (g C m-3 d-1)

            # ---- SOM: blocks D_z = b_z I + g_z R, off-diagonal blocks a_z I and c_z I
            ks = k0[4:7]  # (3,B)
            rmat = np.zeros((3, 3, nbat))
            rmat[0, 0] = ks[0]
            rmat[0, 1] = -f["fs2s1"] * ks[1]
            rmat[0, 2] = -f["fs3s1"] * ks[2]
            rmat[1, 0] = -f["fs1s2"] * ks[0]
            rmat[1, 1] = ks[1]
            rmat[2, 0] = -f["fs1s3"] * ks[0]
            rmat[2, 1] = -f["fs2s3"] * ks[1]
            rmat[2, 2] = ks[2]
            som = BlockTridiagonalLU.factor_shifted_layer_first(sub, main, sup, gs, rmat)
            rhs_s = np.zeros((N_LAYERS, 3, nbat))
            rhs_s[:, 0] = f["fl1s1"] * dec_l[:, 0] + f["fl2s1"] * dec_l[:, 1]
            rhs_s[:, 1] = f["fl3s2"] * dec_l[:, 2]
            xs = som.solve_layer_first(rhs_s, out=rhs_s)  # (20,3,B), in place

            pl = np.empty((N_LAYERS, 7, nbat))
            pl[:, 0] = in_p[0] / k_cwd
            pl[:, 1:4] = xl
            pl[:, 4:7] = xs

            # ---- exact 1-norm rcond of the 140 x 140 matrix M = T_full + (I - A) K (an M-matrix);
            # the right-hand-side buffers are free now and are reused as workspace
            rcond = self._rcond(lit, som, kl, k_cwd, gs, ks, sub, main, sup, f, rhs_l, rhs_s) \
                if self.options.singular == "rcond" else np.full(nbat, np.nan)

            # pivots: CWD rates (its diagonal), then the litter and SOM eliminations
            pivots_ok = np.all(np.isfinite(k_cwd) & (k_cwd != 0.0), axis=0) & lit.ok.all(axis=0) & som.ok
            status = self._status(pl, pivots_ok, rcond, prepared.forcing_ok, sidx)
            if self.options.negative_pools == "clip":
                np.maximum(pl, 0.0, out=pl, where=np.isfinite(pl))

            # ---- diagnostics (g C m-2 yr-1), from the (clipped) pools
            dec_s = (gs[:, None, :] * ks[None]) * pl[:, 4:7]
            rf = _respired_fractions(f)  # (7,B)
            resp_z = (rf[0] * in_p[0] + np.einsum("zpb,pb->zb", dec_l, rf[1:4])
                      + np.einsum("zpb,pb->zb", dec_s, rf[4:7]))
            resp = DAYS_PER_YEAR * (_DZ @ resp_z)
            mob = pl[:, 1:].sum(axis=1)  # (20,B)
            tx = main * mob
            tx[1:] += sub[1:] * mob[:-1]
            tx[:-1] += sup[:-1] * mob[1:]
            leak = DAYS_PER_YEAR * (_DZ @ tx)
        pools = pl.transpose(2, 0, 1)  # (B,20,7) view of the layer-first array
        return self._finish(pools, status, {"respiration": resp, "bottom_leak": leak}, inputs, rcond)

    @staticmethod
    def _rcond(lit: TridiagonalLU, som: BlockTridiagonalLU, kl: np.ndarray, k_cwd: np.ndarray, gs: np.ndarray,
               ks: np.ndarray, sub: np.ndarray, main: np.ndarray, sup: np.ndarray, f: dict,
               work_l: np.ndarray, work_s: np.ndarray) -> np.ndarray:
        """1 / (||M||_1 ||M^-1||_1) for the 140 x 140 matrix from layer-first inputs; (B,).

        M is a nonsingular M-matrix when all rates are positive, so ``M^-1 >= 0`` and ``||M^-1||_1`` is the
        largest entry of ``M^-T 1``: one transposed solve (SOM block first, then litter, then CWD) reusing the
        factorisations.  LAPACK's ``gecon`` estimate is exact for such matrices.  ``work_l``, ``work_s``
        (20, 3, B) are overwritten.
        """
        colt = np.zeros_like(main)  # |off-diagonal| column sums of T
        colt[1:] += np.abs(sup[:-1])
        colt[:-1] += np.abs(sub[1:])
        anorm = (1.0 + np.abs(f["fcwdl2"]) + np.abs(1.0 - f["fcwdl2"])) * np.abs(k_cwd).max(axis=0)
        outs = ((kl[:, 0], f["fl1s1"]), (kl[:, 1], f["fl2s1"]), (kl[:, 2], f["fl3s2"]),
                (gs * ks[0], np.abs(f["fs1s2"]) + np.abs(f["fs1s3"])),
                (gs * ks[1], np.abs(f["fs2s1"]) + np.abs(f["fs2s3"])), (gs * ks[2], np.abs(f["fs3s1"])))
        for k, fo in outs:
            col = np.abs(main + k) + colt + np.abs(fo) * np.abs(k)  # diagonal, transport, transfers out
            np.maximum(anorm, col.max(axis=0), out=anorm)
        work_s[...] = 1.0
        ys = som.solve_transposed_layer_first(work_s, out=work_s)
        work_l[:, 0] = 1.0 + f["fl1s1"] * kl[:, 0] * ys[:, 0]
        work_l[:, 1] = 1.0 + f["fl2s1"] * kl[:, 1] * ys[:, 0]
        work_l[:, 2] = 1.0 + f["fl3s2"] * kl[:, 2] * ys[:, 1]
        yl = lit.solve_transposed_layer_first(work_l, out=work_l)
        fc = f["fcwdl2"]
        yc = 1.0 / k_cwd + fc * yl[:, 1] + (1.0 - fc) * yl[:, 2]
        ainv = np.maximum(np.maximum(np.abs(ys).max(axis=(0, 1)), np.abs(yl).max(axis=(0, 1))),
                          np.abs(yc).max(axis=0))
        rcond = 1.0 / (anorm * ainv)
        return np.where(np.isfinite(rcond), rcond, 0.0)

    def _status(self, pl: np.ndarray, pivots_ok: np.ndarray, rcond: np.ndarray, forcing_ok: np.ndarray,
                sidx: np.ndarray | None) -> np.ndarray:
        """Per-item status from layer-first pools (20, 7, B) (precedence: forcing, pivots, non-finite, rcond,
        negative)."""
        status = np.full(pl.shape[-1], OK, dtype=np.int8)
        if self.options.negative_pools == "fail":
            status[np.any(pl < 0.0, axis=(0, 1))] = NEGATIVE
        if self.options.singular == "rcond":
            status[~(rcond >= self.options.rcond_min)] = SINGULAR
        status[~np.all(np.isfinite(pl), axis=(0, 1))] = NONFINITE
        status[~pivots_ok] = SINGULAR
        status[~self._take(forcing_ok, sidx)] = BAD_FORCING
        return status

    def _finish(self, pools: np.ndarray, status: np.ndarray, diag: dict, inputs: np.ndarray,
                rcond: np.ndarray) -> SteadyState:
        bad = status != OK
        if self.options.nonfinite == "keep":
            bad &= status != NONFINITE
        if bad.any():
            pools[bad] = np.nan
            for v in diag.values():
                v[bad] = np.nan
        diag["input"] = inputs.sum(axis=1)
        diag["rcond"] = rcond
        soc = pools[:, :, 4] + pools[:, :, 5] + pools[:, :, 6]
        return SteadyState(pools=pools, soc=soc, status=status, diagnostics=diag)

    # -------------------------------------------------------------------------------------- reference
    def steady_state_reference(self, theta: np.ndarray, forcing: Forcing,
                               site_index: np.ndarray | None = None) -> SteadyState:
        """Reference path: per item, the 12 monthly K and T matrices as coded, averaged, one dense solve.

        For each item the 140 x 140 matrix ``A Kbar - Vbar`` is assembled (pool-major order, ``clm5.md`` §0)
        from the 12 monthly decay-rate diagonals (``xi_T`` with the code's frozen branch, ``xi_W`` capped at
        1,
        NaN months ignored) and :func:`~prodampi.soil.transport.transport_matrix_reference`; it is LU-factored
        by LAPACK ``dgetrf``, its 1-norm rcond estimated with ``dgecon`` and solved with ``dgetrs``.

        Parameters
        ----------
        theta : (B, 21) array
            Physical parameters.
        forcing : Forcing
            ``S`` sites.
        site_index : (B,) int array or None

        Returns
        -------
        SteadyState
            As :meth:`steady_state` (diagnostics ``input``, ``respiration``, ``bottom_leak``, ``rcond``).
        """
        from scipy.linalg import lapack

        theta, sidx = self._check_batch(theta, forcing.n_sites, site_index)
        nbatch = theta.shape[0]
        ok_f, _ = forcing.check()
        pools = np.full((nbatch, N_LAYERS, 7), np.nan)
        status = np.full(nbatch, OK, dtype=np.int8)
        resp = np.full(nbatch, np.nan)
        leak = np.full(nbatch, np.nan)
        rconds = np.zeros(nbatch)
        inputs_all = np.zeros(nbatch)
        for b in range(nbatch):
            s = b if sidx is None else int(sidx[b])
            mat, rhs, amat, kbar, vmat, total_in = self.dense_system(theta[b], forcing, s)
            inputs_all[b] = total_in
            if not ok_f[s]:
                status[b] = BAD_FORCING
                continue
            with np.errstate(all="ignore"):
                lu, piv, info = lapack.dgetrf(mat)
                anorm = np.abs(mat).sum(axis=0).max()
                if info != 0 or not np.isfinite(anorm):
                    rcond = 0.0
                else:
                    rcond, _ = lapack.dgecon(lu, anorm, norm="1")
                x, _ = lapack.dgetrs(lu, piv, rhs)
            rconds[b] = rcond
            if info != 0:
                status[b] = SINGULAR
                continue
            if not np.all(np.isfinite(x)):
                status[b] = NONFINITE
                if self.options.nonfinite == "keep":
                    if self.options.negative_pools == "clip":
                        x = np.where(x < 0.0, 0.0, x)
                    pools[b] = x.reshape(7, N_LAYERS).T
                continue
            if self.options.singular == "rcond" and not rcond >= self.options.rcond_min:
                status[b] = SINGULAR
                continue
            if self.options.negative_pools == "clip":
                x = np.where(x < 0.0, 0.0, x)
            elif np.any(x < 0.0):
                status[b] = NEGATIVE
                continue
            dz140 = np.tile(_DZ, 7)
            respired = 1.0 - (amat.sum(axis=0) - np.diag(amat))  # 1 - transfers out of each donor
            resp[b] = DAYS_PER_YEAR * np.sum(respired * kbar * x * dz140)
            leak[b] = DAYS_PER_YEAR * np.sum((vmat @ x) * dz140)
            pools[b] = x.reshape(7, N_LAYERS).T
        soc = pools[:, :, 4] + pools[:, :, 5] + pools[:, :, 6]
        diag = {"respiration": resp, "bottom_leak": leak, "input": inputs_all, "rcond": rconds}
        return SteadyState(pools=pools, soc=soc, status=status, diagnostics=diag)

    def dense_system(self, th: np.ndarray, forcing: Forcing, s: int):
        """The as-coded 140 x 140 system of one item (reference path, tests, ODE checks).

        Pool-major state order (index ``20 p + z``, pools as :attr:`pool_names`).  The steady state solves
        ``mat x = rhs``; the dynamics of the month-averaged model are ``dx/dt = mat x - rhs`` (d-1).

        Parameters
        ----------
        th : (21,) array
            Physical parameters.
        forcing : Forcing
            Forcing of ``S`` sites.
        s : int
            Site index.

        Returns
        -------
        mat : (140, 140) array
            ``A Kbar - Vbar`` (d-1).
        rhs : (140,) array
            ``-B I`` (g C m-3 d-1).
        amat : (140, 140) array
            Transfer matrix A (1).
        kbar : (140,) array
            Diagonal of the month-averaged K (d-1).
        vmat : (140, 140) array
            Transport ``blockdiag(0, T, ..., T)`` (d-1).
        total_input : float
            Sum of the four column inputs (g C m-2 yr-1).
        """
        p = {name: th[i] for i, name in enumerate(CLM5_PARAMS.names)}
        with np.errstate(all="ignore"):
            tau = [p["taucwd"], p["taul1"], p["taul2"], p["taul2"], p["tau4s1"], p["tau4s2"], p["tau4s3"]]
            k0 = [1.0 / (DAYS_PER_YEAR * t) for t in tau]
            q10 = p["q10"]
            tsoi = forcing.tsoi_k[s]
            # temperature scalar with the code's frozen branch (fq10 = q10), NaN -> NaN
            xit = np.where(tsoi >= 273.15, q10 ** ((tsoi - 298.15) / 10.0),
                           q10 ** ((273.15 - 298.15) / 10.0) * q10 ** ((tsoi - 273.15) / 10.0))
            xit = np.where(np.isnan(tsoi), np.nan, xit)
            xiw = forcing.w_scalar[s] * p["w-scaling"]
            xiw = np.where(xiw > 1.0, 1.0, xiw)
            xio = forcing.o_scalar[s]
            xin = forcing.fpi[s]
            xid = np.exp(-_ZSOI / p["efolding"])
            n_m = tsoi.shape[1]
            kk = np.zeros((n_m, 7 * N_LAYERS))
            for m in range(n_m):
                base = xit[:, m] * xiw[:, m] * xio[:, m] * xid
                for ip in range(7):
                    scal = base * xin[:, m] if ip in (1, 2, 3) else base
                    kk[m, ip * N_LAYERS:(ip + 1) * N_LAYERS] = k0[ip] * scal
            with warnings.catch_warnings():  # all-NaN layers give NaN rates (and a NaN solve), as in MATLAB
                warnings.simplefilter("ignore", RuntimeWarning)
                kbar = np.nanmean(kk, axis=0)  # diagonal of the month-averaged K (d-1)
        # transfer matrix A (row = receiver, column = donor), identical in every layer
        amat = -np.eye(7 * N_LAYERS)
        trans = [(2, 0, p["fcwdl2"]), (3, 0, 1.0 - p["fcwdl2"]), (4, 1, p["fl1s1"]), (4, 2, p["fl2s1"]),
                 (5, 3, p["fl3s2"]), (5, 4, p["fs1s2"]), (6, 4, p["fs1s3"]), (4, 5, p["fs2s1"]),
                 (6, 5, p["fs2s3"]), (4, 6, p["fs3s1"])]
        z = np.arange(N_LAYERS)
        for rcv, don, val in trans:
            amat[rcv * N_LAYERS + z, don * N_LAYERS + z] = val
        tri = transport_matrix_reference(p["diffus"], p["cryo"], forcing.altmax_m[s],
                                         forcing.altmax_lastyear_m[s], int(forcing.nbedrock[s]),
                                         bedrock=self.options.bedrock)
        vmat = np.zeros((7 * N_LAYERS, 7 * N_LAYERS))
        for ip in range(1, 7):
            vmat[ip * N_LAYERS:(ip + 1) * N_LAYERS, ip * N_LAYERS:(ip + 1) * N_LAYERS] = tri
        # input profile as coded: (beta^ztop - beta^zbot)/dz, renormalised with dz
        beta = p["beta"]
        with np.errstate(invalid="ignore"):
            thawed = bool(np.all(forcing.altmax_lastyear_m[s] > 0))
        ztop = np.concatenate([[0.0], ZISOI_M[:N_LAYERS - 1]])
        if thawed:
            vprof = (beta ** (ztop * 100.0) - beta ** (ZISOI_M[:N_LAYERS] * 100.0)) / _DZ
        else:
            vprof = np.zeros(N_LAYERS)
            vprof[0] = 1.0 / _DZ[0]
        vin = _DZ * vprof / np.sum(vprof * _DZ)
        inp = forcing.litter_input[s]
        rhs = np.zeros(7 * N_LAYERS)
        for ip in range(4):
            rhs[ip * N_LAYERS:(ip + 1) * N_LAYERS] = inp[ip] * vin / (_DZ * DAYS_PER_YEAR)
        mat = amat * kbar[None, :] - vmat  # A Kbar - Vbar (Kbar diagonal)
        return mat, -rhs, amat, kbar, vmat, float(np.sum(inp))

    # -------------------------------------------------------------------------------------- components
    def components(self, theta: np.ndarray, prepared: CLM5Prepared, site_index: np.ndarray | None = None,
                   state: SteadyState | None = None) -> dict[str, np.ndarray]:
        """The paper's component metrics per item (``proda_nn_maps.md`` §8.6, ``clm5.md`` §8).

        With ``xi_z = mean_m xi_T * mean_m xi_W * xi_D`` (12-month means, NaN months ignored; no O, no N),
        ``omega_z = S_z dz_z / sum(S dz)`` the SOC stock weights (S = S1+S2+S3) and base rates ``1/tau``
        (yr-1):

        * ``cte`` (1): sum of transfer-fraction-weighted donor fluxes / sum of donor fluxes, donors L1, L2,
          L3, S1, S2, S3 counted once, ``F_j = sum_z x_jz xi_z dz_z / tau_j`` (CWD excluded).
        * ``k_system`` (yr-1): ``sum_j X_j/tau_j / sum_j X_j`` over S1-S3, ``X_j = sum_z x_jz dz_z`` (no xi).
        * ``xi_system`` (1): ``sum_z xi_z omega_z``.
        * ``v_system`` (yr-1): ``365 sum_z omega_z Tbar_zz`` (month-averaged transport diagonal).
        * ``b`` (1): ``mean_z exp(ln(1 - Y_z) / (100 zsoi_z))``, ``Y_z`` the input fraction above the bottom
          of layer z; ``1 - Y_z`` is evaluated exactly as the tail of the beta profile (not by a rounded
          cumulative sum) and layers with ``1 - Y_z <= 0`` are dropped (so layer 20, and every layer when all
          input goes to layer 1, giving NaN).  ``b_system`` = ``b ** 5`` (published B_system).
        * ``input`` (g C m-2 yr-1): total plant litter input.
        * ``litter_fraction`` (1): 1 - litter respiration / litter decomposition (model rates, L1-L3).

        Parameters
        ----------
        theta : (B, 21) array
        prepared : CLM5Prepared
        site_index : (B,) int array or None
        state : SteadyState or None
            Steady state for these items (computed when None).

        Returns
        -------
        dict of (B,) arrays
        """
        self._check_prepared(prepared)
        theta, sidx = self._check_batch(theta, prepared.n_sites, site_index)
        if state is None:
            state = self.steady_state(theta, prepared, sidx)
        r = _rates(theta)
        fo = prepared.forcing
        x = state.pools
        with np.errstate(all="ignore"):
            tsoi = self._take(fo.tsoi_k, sidx)
            wsc = self._take(fo.w_scalar, sidx)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                xit = np.nanmean(r.q10[:, None, None] ** ((tsoi - 298.15) / 10.0), axis=2)
                xiw = np.minimum(wsc * r.w_scaling[:, None, None], 1.0)
                xiw = np.nanmean(np.where(np.isnan(wsc), np.nan, xiw), axis=2)
            xid = np.exp(-_ZSOI[None, :] / r.efolding[:, None])
            xi = xit * xiw * xid  # (B,20)
            soc = x[:, :, 4:7].sum(axis=2)
            stock = soc * _DZ
            omega = stock / stock.sum(axis=1, keepdims=True)
            k_yr = r.k0 * DAYS_PER_YEAR  # 1/tau, (B,7)
            flux = np.einsum("bzp,bz,z->bp", x, xi, _DZ) * k_yr  # (B,7)
            f = r.f
            num = (f["fl1s1"] * flux[:, 1] + f["fl2s1"] * flux[:, 2] + f["fl3s2"] * flux[:, 3]
                   + (f["fs1s2"] + f["fs1s3"]) * flux[:, 4] + (f["fs2s1"] + f["fs2s3"]) * flux[:, 5]
                   + f["fs3s1"] * flux[:, 6])
            cte = num / flux[:, 1:].sum(axis=1)
            xs = np.einsum("bzp,z->bp", x[:, :, 4:7], _DZ)
            k_system = (xs * k_yr[:, 4:7]).sum(axis=1) / xs.sum(axis=1)
            xi_system = (xi * omega).sum(axis=1)
            diags = transport_diagonals(r.bio, r.cryo, prepared.basis, sidx)
            v_system = DAYS_PER_YEAR * (omega * diags[:, 1]).sum(axis=1)
            # input tail below the bottom of each layer, exact: (beta^zbot - beta^8.6m) / (1 - beta^8.6m)
            thawed = self._take(prepared.thawed, sidx)
            lnb = np.log(r.beta)[:, None]
            tail = (np.exp(lnb * 100.0 * ZISOI_M[:N_LAYERS]) - np.exp(lnb * 100.0 * ZISOI_M[N_LAYERS - 1])) \
                / -np.expm1(lnb * 100.0 * ZISOI_M[N_LAYERS - 1])
            tail = np.where(thawed[:, None], tail, 0.0)
            bz = np.where(tail > 0.0, np.exp(np.log(tail) / (100.0 * _ZSOI)), np.nan)
            with warnings.catch_warnings():  # no usable layer (all input in layer 1) -> NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                b = np.nanmean(bz, axis=1)
            g_s, g_l = self._environment(r, prepared, sidx)
            klit = r.k0[:, None, 1:4] * g_l[:, :, None] * x[:, :, 1:4]  # (B,20,3)
            dec = np.einsum("bzp,z->bp", klit, _DZ)
            rf_l = np.stack([1.0 - f["fl1s1"], 1.0 - f["fl2s1"], 1.0 - f["fl3s2"]], axis=1)
            litter_fraction = 1.0 - (dec * rf_l).sum(axis=1) / dec.sum(axis=1)
        return {
            "cte": cte, "k_system": k_system, "xi_system": xi_system, "v_system": v_system,
            "b_system": b ** 5, "b": b, "input": self._take(prepared.inputs, sidx).sum(axis=1),
            "litter_fraction": litter_fraction,
        }
