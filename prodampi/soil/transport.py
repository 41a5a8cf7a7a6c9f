"""Vertical transport (bio-/cryoturbation) and litter-input allocation shared by CLM5 and COMPAS.

Implements ``clm5.md`` §4.5-4.6 and the as-coded step list of ``compas.md`` §4.6 (PRODA ``tri_matrix.m``,
itself CLM5's ``SoilBiogeochemLittVertTranspMod`` Patankar discretisation).

Conventions
-----------
* Layers 1..20 are 0-based rows 0..19.  Diffusivities ``D_j`` are defined for j = 1..21 (index 0..20).
* The transport operator ``T`` (d-1) acts as ``dx/dt = ... - T x`` on concentrations ``x`` (g C m-3).
  It is tridiagonal; its three diagonals are stored as an array ``(..., 3, 20)``:
  index 0 = sub-diagonal ``a_j`` (coefficient of ``x_{j-1}`` in row j; ``a_0`` unused and 0),
  index 1 = main diagonal ``b_j``, index 2 = super-diagonal ``c_j`` (coefficient of ``x_{j+1}``;
  ``c_19`` = 0).
* Diffusivity parameters ``bio`` and ``cryo`` are in m2 yr-1 (converted to m2 d-1 inside, ÷ 365).
* Twelve monthly operators are averaged with equal weights (``T`` is never NaN: a NaN active-layer depth
  selects the "no mixing" branch, as MATLAB's comparisons do).

Parameter linearity (``clm5.md`` §4.5 item 5)
---------------------------------------------
In every month each interface conductance is either proportional to ``bio`` or ``cryo`` (both neighbouring
diffusivities unfloored) or built from the 1e-30 floor (at least one neighbour floored), which does not depend
on the parameters to double precision (harmonic mean of ``P`` and 1e-30 is 1e-30/w to relative 1e-22).  Hence

    T(bio, cryo) = bio * basis.bio + cryo * basis.cryo + basis.floor

exactly to rounding, where ``basis.floor`` (the 1e-30-level terms: floor conductances and the 1e-30
"advective" flux of the code) is parameter-free.  It matters only where decay rates are themselves below
~1e-25 d-1 (deep layers with a tiny e-folding depth), but keeping it lets the fast path reproduce the
as-coded dense build to rounding everywhere.  One approximation: an interface is treated as floored only when
its unit diffusivity is exactly 0; a cryoturbation taper value in (0, ~1e-23) that the code would floor for
a given ``cryo`` is kept as linear (a change at the 1e-30 level).

Bedrock switch (``bedrock=``)
-----------------------------
``"compat"`` (default, PRODA/CLM5 as coded): for layers j >= nbedrock+1 the code copies the upper conductance
to the lower interface ("no gradient") and drops the advective flux there.  Row nbedrock+1 (when it is not
layer 20) therefore exchanges with layer nbedrock+2 at the bio-/cryoturbation rate ``d`` while row nbedrock+2
only sees the 1e-30 floor: layer nbedrock+1 loses ``d x_{nb+1}`` that nobody receives and gains ``d x_{nb+2}``
that nobody loses.  The net column loss ``d (x_{nb+1} - x_{nb+2})`` is PRODA's bedrock sink (``clm5.md``
§4.5.4, reported by the models as ``bottom_leak``; it is a source when the layer below holds more carbon).

``"conservative"``: the no-gradient copy is not applied; every row uses the interior Patankar formula, so the
interface below layer nbedrock+1 carries only the 1e-30 floor conductance (zero flux to ~1e-30 relative) and
the operator conserves mass (up to the 1e-30 advective term).  Everything above the bedrock is identical to
"compat".
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .forcing import Forcing
from .layers import DZ_M, DZ_NODE_M, N_LAYERS, ZISOI_M, ZSOI_M

DAYS_PER_YEAR = 365.0
EPSILON = 1.0e-30
"""Floor (m2 d-1 and m d-1) applied by the code to diffusivities and advective fluxes."""
MAX_ALT_CRYO_M = 2.0
"""Active-layer thickness (m) at or below which cryoturbation replaces bioturbation."""
MAX_DEPTH_CRYO_M = 3.0
"""Depth (m) where the cryoturbation taper reaches zero (or the bedrock interface if shallower)."""
BEDROCK_MODES = ("compat", "conservative")

_N_IF = N_LAYERS + 1  # diffusivities D_1..D_21


def _check_bedrock(bedrock: str) -> None:
    if bedrock not in BEDROCK_MODES:
        raise ValueError(f"bedrock must be one of {BEDROCK_MODES}, got {bedrock!r}")


# --------------------------------------------------------------------------------------- input profile
def input_profile(beta: np.ndarray, all_thawed: np.ndarray) -> np.ndarray:
    """Fraction of the column litter input allocated to each of the 20 layers (``clm5.md`` §4.6).

    Jackson et al. (1996) profile with depth in cm, renormalised to the 20 layers:
    ``v_z = (beta**(100 ztop_z) - beta**(100 zbot_z)) / (1 - beta**(100 * 8.6))``.  Where ``all_thawed`` is
    False (not all 12 ALTMAX_LASTYEAR > 0) the whole input goes to layer 1.

    Parameters
    ----------
    beta : (B,) array
        Jackson beta (1), in (0, 1]; beta = 1 gives the uniform-per-metre limit ``dz_z / 8.6 m``.
    all_thawed : (B,) bool array
        True where all 12 monthly ALTMAX_LASTYEAR > 0 (see :func:`thawed_all_year`).

    Returns
    -------
    (B, 20) array
        Dimensionless fractions summing to 1 over the layers.  The input density of pool p in layer z is
        ``I_p v_z / dz_z`` (g C m-3 yr-1 for ``I_p`` in g C m-2 yr-1).
    """
    beta = np.asarray(beta, dtype=np.float64)
    all_thawed = np.asarray(all_thawed, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        lnb = np.log(beta)[..., None]
        e = np.exp(lnb * (100.0 * ZISOI_M[:N_LAYERS]))  # beta^(bottom depth in cm)
        v = np.empty(e.shape)
        v[..., 0] = 1.0 - e[..., 0]
        v[..., 1:] = e[..., :-1] - e[..., 1:]
        v /= 1.0 - e[..., -1:]
    v = np.where(lnb == 0.0, DZ_M[:N_LAYERS] / ZISOI_M[N_LAYERS - 1], v)
    surface = np.zeros(N_LAYERS)
    surface[0] = 1.0
    return np.where(all_thawed[..., None], v, surface)


def thawed_all_year(forcing: Forcing) -> np.ndarray:
    """Input-profile switch: True where all 12 ALTMAX_LASTYEAR (m) are > 0 (NaN counts as not thawed).

    Parameters
    ----------
    forcing : Forcing
        Batch of ``S`` sites.

    Returns
    -------
    (S,) bool array
    """
    with np.errstate(invalid="ignore"):
        return np.all(forcing.altmax_lastyear_m > 0.0, axis=1)


# ------------------------------------------------------------------------------------- transport basis
@dataclass(frozen=True)
class TransportBasis:
    """Per-site diagonals (d-1) of the month-averaged transport operator, split by parameter.

    ``T(bio, cryo) = bio * bio_ + cryo * cryo_ + floor`` with bio, cryo in m2 yr-1.

    Attributes
    ----------
    bio : (S, 3, 20) array
        Diagonals (sub, main, super) of T per unit bioturbation diffusivity (1 m2 yr-1), d-1 per (m2 yr-1).
    cryo : (S, 3, 20) array
        Same per unit cryoturbation diffusivity.
    floor : (S, 3, 20) array
        Parameter-free 1e-30-level part (d-1); all zeros only if no interface is ever floored.
    nbedrock : (S,) int array
        Bedrock layer index 1..20 used for the build.
    bedrock : str
        ``"compat"`` or ``"conservative"`` (module docstring).
    """

    bio: np.ndarray
    cryo: np.ndarray
    floor: np.ndarray
    nbedrock: np.ndarray
    bedrock: str = "compat"

    @property
    def n_sites(self) -> int:
        """Number of sites ``S``."""
        return int(self.bio.shape[0])

    def take(self, index: np.ndarray | slice) -> TransportBasis:
        """Sub-batch along the site axis."""
        return TransportBasis(self.bio[index], self.cryo[index], self.floor[index], self.nbedrock[index],
                              self.bedrock)


def _aaa(pe: np.ndarray) -> np.ndarray:
    """Patankar power-law factor max(0, (1 - 0.1 |Pe|)**5) (dimensionless)."""
    return np.maximum(0.0, (1.0 - 0.1 * np.abs(pe)) ** 5)


def _unit_diffusivities(altmax: np.ndarray, altmax_ly: np.ndarray, nb: np.ndarray):
    """Unit diffusivity shape u_j (1) at j = 1..21 per month and the regime of each month.

    Returns ``u`` (S, 12, 21) in [0, 1] (multiply by bio or cryo, m2 yr-1), ``is_bio`` and ``is_cryo``
    (S, 12) bool.  ``u == 0`` marks a floored diffusivity.
    """
    with np.errstate(invalid="ignore"):
        alt = np.fmax(altmax, altmax_ly)  # NaN-ignoring max, as MATLAB's max
        is_cryo = (alt <= MAX_ALT_CRYO_M) & (alt > 0.0)
        is_bio = alt > MAX_ALT_CRYO_M
    j = np.arange(1, _N_IF + 1)
    active = j[None, None, :] <= (nb[:, None, None] + 1)  # (S,1,21)
    zb = ZISOI_M[nb]  # zisoi(nb+1), 1-based
    denom = np.minimum(MAX_DEPTH_CRYO_M, zb)[:, None] - alt  # (S,12)
    with np.errstate(invalid="ignore", divide="ignore"):
        taper = 1.0 - (ZISOI_M[None, None, :] - alt[..., None]) / denom[..., None]
        tc = np.where(ZISOI_M[None, None, :] < alt[..., None], 1.0, np.fmax(taper, 0.0))
    u = np.where(active & is_cryo[..., None], tc, 0.0)
    u = np.where(active & is_bio[..., None], 1.0, u)
    return u, is_bio, is_cryo


def _harmonic_parts(u_self: np.ndarray, u_nb: np.ndarray, w: np.ndarray):
    """Split the code's weighted harmonic mean 1/((1-w)/D_self + w/D_nb) (m2 d-1) into parameter parts.

    Returns (lin, const): ``lin`` per unit parameter (m2 d-1 per m2 yr-1) where both neighbours are unfloored,
    else 0; ``const`` (m2 d-1) where at least one is floored (evaluated with the parameter set to 1, exact
    to double precision), else 0.
    """
    both = (u_self > 0.0) & (u_nb > 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lin = 1.0 / ((1.0 - w) / u_self + w / u_nb) / DAYS_PER_YEAR
        ds = np.where(u_self > 0.0, u_self / DAYS_PER_YEAR, EPSILON)
        dn = np.where(u_nb > 0.0, u_nb / DAYS_PER_YEAR, EPSILON)
        const = 1.0 / ((1.0 - w) / ds + w / dn)
    return np.where(both, lin, 0.0), np.where(both, 0.0, const)


def _monthly_parts(u: np.ndarray, nb: np.ndarray, bedrock: str):
    """Monthly diagonals (…, 3, 20), split into a linear part (per unit parameter) and a floor part (d-1)."""
    r = np.arange(N_LAYERS)
    # d-: rows 1..19 use (D[r-1], D[r]) with weight (zisoi_{r-1} - zsoi_{r-1}) / dz_node_r on D[r-1]
    w_m = (ZISOI_M[:N_LAYERS - 1] - ZSOI_M[:N_LAYERS - 1]) / DZ_NODE_M[1:N_LAYERS]
    # d+: rows 0..19 use (D[r], D[r+1]) with weight (zsoi_{r+1} - zisoi_r) / dz_node_{r+1} on D[r+1]
    w_p = (ZSOI_M[1:_N_IF] - ZISOI_M[:N_LAYERS]) / DZ_NODE_M[1:_N_IF]
    shp = u.shape[:-1] + (N_LAYERS,)
    dm_l = np.zeros(shp)
    dm_c = np.zeros(shp)
    hl, hc = _harmonic_parts(u[..., 1:N_LAYERS], u[..., :N_LAYERS - 1], w_m)
    dm_l[..., 1:] = hl / DZ_NODE_M[1:N_LAYERS]
    dm_c[..., 1:] = hc / DZ_NODE_M[1:N_LAYERS]
    hl, hc = _harmonic_parts(u[..., :N_LAYERS], u[..., 1:_N_IF], w_p)
    dp_l = hl / DZ_NODE_M[1:_N_IF]
    dp_c = hc / DZ_NODE_M[1:_N_IF]

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        aaa_m = np.where(dm_c > 0.0, _aaa(EPSILON / dm_c), 1.0)
        aaa_p = np.where(dp_c > 0.0, _aaa(EPSILON / dp_c), 1.0)
    a_l = -dm_l
    a_c = -(dm_c * aaa_m + EPSILON)  # + max(f_m1, 0) with f_m1 = 1e-30; row 0 has d- = 0
    c_l = -dp_l
    c_c = -(dp_c * aaa_p)  # max(-f_p1, 0) = 0
    if bedrock == "compat":
        # rows j >= nb+1 (1-based), j >= 2: d+ := d-, f_p1 = 0 (Pe = 0, power-law factor 1)
        below = (r[None, :] >= nb[:, None]) & (r[None, :] >= 1)  # (S,20)
        below = below.reshape(below.shape[:1] + (1,) * (u.ndim - 2) + below.shape[1:])
        c_l = np.where(below, -dm_l, c_l)
        c_c = np.where(below, -dm_c, c_c)
    b_l = -a_l - c_l
    b_c = -a_c - c_c
    # boundary overrides: zero flux at the surface and at the bottom of layer 20
    b_l[..., 0] = -c_l[..., 0]
    b_c[..., 0] = -c_c[..., 0]
    b_l[..., -1] = -a_l[..., -1]
    b_c[..., -1] = -a_c[..., -1]
    a_l[..., 0] = 0.0
    a_c[..., 0] = 0.0
    c_l[..., -1] = 0.0
    c_c[..., -1] = 0.0
    dz = DZ_M[:N_LAYERS]
    lin = np.stack([a_l, b_l, c_l], axis=-2) / dz
    flo = np.stack([a_c, b_c, c_c], axis=-2) / dz
    return lin, flo


def transport_basis(forcing: Forcing, bedrock: str = "compat") -> TransportBasis:
    """Per-site month-averaged transport diagonals split by parameter (``clm5.md`` §4.5 item 5).

    Parameters
    ----------
    forcing : Forcing
        Uses ``altmax_m``, ``altmax_lastyear_m`` (m, (S, 12)) and ``nbedrock`` ((S,), 1..20).
    bedrock : {"compat", "conservative"}
        Bedrock treatment (module docstring).  "compat" reproduces PRODA's leaky bottom at layer nb+1.

    Returns
    -------
    TransportBasis
        Diagonals in d-1 per (m2 yr-1) for ``bio``/``cryo`` and in d-1 for ``floor``.
    """
    _check_bedrock(bedrock)
    nb = np.clip(np.asarray(forcing.nbedrock, dtype=np.int64), 1, N_LAYERS)
    u, is_bio, is_cryo = _unit_diffusivities(forcing.altmax_m, forcing.altmax_lastyear_m, nb)
    lin, flo = _monthly_parts(u, nb, bedrock)  # (S,12,3,20)
    n_m = u.shape[1]
    bio = np.einsum("sm,smkz->skz", is_bio.astype(np.float64), lin) / n_m
    cryo = np.einsum("sm,smkz->skz", is_cryo.astype(np.float64), lin) / n_m
    floor = flo.mean(axis=1)
    return TransportBasis(bio=bio, cryo=cryo, floor=floor, nbedrock=nb, bedrock=bedrock)


def transport_diagonals(bio: np.ndarray, cryo: np.ndarray, basis: TransportBasis,
                        site_index: np.ndarray | None = None) -> np.ndarray:
    """Diagonals (B, 3, 20) of the month-averaged transport operator T (d-1) for a batch.

    Parameters
    ----------
    bio, cryo : (B,) arrays
        Bioturbation and cryoturbation diffusivities (m2 yr-1).
    basis : TransportBasis
        From :func:`transport_basis` (S sites).
    site_index : (B,) int array or None
        Site of each item; None means item i uses site i (B == S).

    Returns
    -------
    (B, 3, 20) array
        Sub, main and super diagonals (d-1), convention of the module docstring.
    """
    bio = np.asarray(bio, dtype=np.float64)
    cryo = np.asarray(cryo, dtype=np.float64)
    if site_index is None:
        tb, tc, tf = basis.bio, basis.cryo, basis.floor
    else:
        tb, tc, tf = basis.bio[site_index], basis.cryo[site_index], basis.floor[site_index]
    return bio[:, None, None] * tb + cryo[:, None, None] * tc + tf


def diagonals_to_dense(diags: np.ndarray) -> np.ndarray:
    """Dense (…, 20, 20) matrix from tridiagonal diagonals (…, 3, 20) (same units)."""
    diags = np.asarray(diags)
    n = diags.shape[-1]
    out = np.zeros(diags.shape[:-2] + (n, n))
    i = np.arange(n)
    out[..., i, i] = diags[..., 1, :]
    out[..., i[1:], i[:-1]] = diags[..., 0, 1:]
    out[..., i[:-1], i[1:]] = diags[..., 2, :-1]
    return out


# ---------------------------------------------------------------------------------- as-coded reference
def _month_matrix_reference(bio_d: float, cryo_d: float, altmax: float, altmax_ly: float, nb: int,
                            bedrock: str) -> np.ndarray:
    """One month's 20x20 T (d-1) by the literal step list of ``compas.md`` §4.6 (scalar loops)."""
    zisoi, zsoi, dz_node, dz = ZISOI_M, ZSOI_M, DZ_NODE_M, DZ_M
    alt = float(np.fmax(altmax, altmax_ly))
    coef = np.zeros(_N_IF)
    if alt <= MAX_ALT_CRYO_M and alt > 0.0:
        for j in range(1, _N_IF + 1):
            if j <= nb + 1:
                if zisoi[j - 1] < alt:
                    coef[j - 1] = cryo_d
                else:
                    with np.errstate(invalid="ignore", divide="ignore"):
                        val = cryo_d * (1.0 - (zisoi[j - 1] - alt) / (min(MAX_DEPTH_CRYO_M, zisoi[nb]) - alt))
                    coef[j - 1] = np.fmax(val, 0.0)
    elif alt > 0.0:
        for j in range(1, _N_IF + 1):
            if j <= nb + 1:
                coef[j - 1] = bio_d
    diffus = np.where(np.abs(coef) < EPSILON, EPSILON, coef)
    adv = np.full(_N_IF, EPSILON)  # advection 0 everywhere -> floored to 1e-30

    d_m = np.zeros(N_LAYERS)
    d_p = np.zeros(N_LAYERS)
    f_m = np.zeros(N_LAYERS)
    f_p = np.zeros(N_LAYERS)
    pe_m = np.zeros(N_LAYERS)
    pe_p = np.zeros(N_LAYERS)
    for j in range(1, N_LAYERS + 1):
        i = j - 1
        if j == 1:
            w_p1 = (zsoi[j] - zisoi[j - 1]) / dz_node[j]
            dp1 = 1.0 / ((1.0 - w_p1) / diffus[i] + w_p1 / diffus[i + 1])
            d_p[i] = dp1 / dz_node[j]
            f_m[i] = adv[i]
            f_p[i] = adv[i + 1]
            pe_m[i] = 0.0
            pe_p[i] = f_p[i] / d_p[i]
        elif j >= nb + 1 and bedrock == "compat":
            w_m1 = (zisoi[j - 2] - zsoi[j - 2]) / dz_node[j - 1]
            dm1 = 1.0 / ((1.0 - w_m1) / diffus[i] + w_m1 / diffus[i - 1])
            d_m[i] = dm1 / dz_node[j - 1]
            d_p[i] = d_m[i]
            f_m[i] = adv[i]
            f_p[i] = 0.0
            pe_m[i] = f_m[i] / d_m[i]
            pe_p[i] = f_p[i] / d_p[i]
        else:
            w_m1 = (zisoi[j - 2] - zsoi[j - 2]) / dz_node[j - 1]
            dm1 = 1.0 / ((1.0 - w_m1) / diffus[i] + w_m1 / diffus[i - 1])
            w_p1 = (zsoi[j] - zisoi[j - 1]) / dz_node[j]
            dp1 = 1.0 / ((1.0 - w_p1) / diffus[i] + w_p1 / diffus[i + 1])
            d_m[i] = dm1 / dz_node[j - 1]
            d_p[i] = dp1 / dz_node[j]
            f_m[i] = adv[i]
            f_p[i] = adv[i + 1]
            pe_m[i] = f_m[i] / d_m[i]
            pe_p[i] = f_p[i] / d_p[i]
    a = -(d_m * _aaa(pe_m) + np.maximum(f_m, 0.0))
    c = -(d_p * _aaa(pe_p) + np.maximum(-f_p, 0.0))
    b = -a - c
    t = np.zeros((N_LAYERS, N_LAYERS))
    for j in range(N_LAYERS):
        t[j, j] = b[j] / dz[j]
        if j == 0:
            t[0, 0] = -c[0] / dz[0]
        if j == N_LAYERS - 1:
            t[j, j] = -a[j] / dz[j]
        if j < N_LAYERS - 1:
            t[j, j + 1] = c[j] / dz[j]
        if j > 0:
            t[j, j - 1] = a[j] / dz[j]
    return t


def transport_matrix_reference(bio: float, cryo: float, altmax_m: np.ndarray, altmax_lastyear_m: np.ndarray,
                               nbedrock: int, bedrock: str = "compat") -> np.ndarray:
    """Dense month-averaged transport operator T (20, 20) (d-1), built literally as coded (reference path).

    Twelve monthly matrices from the step list of ``compas.md`` §4.6 (1e-30 floors, Patankar power law,
    NaN-ignoring max), averaged with NaN ignored.  Used by the dense reference solves and to test
    :func:`transport_basis`.

    Parameters
    ----------
    bio, cryo : float
        Bioturbation / cryoturbation diffusivity (m2 yr-1).
    altmax_m, altmax_lastyear_m : (12,) arrays
        ALTMAX and ALTMAX_LASTYEAR (m).
    nbedrock : int
        Bedrock layer index 1..20.
    bedrock : {"compat", "conservative"}
        Bedrock treatment (module docstring).

    Returns
    -------
    (20, 20) array
        ``T`` in d-1; the dynamics are ``-T x``.
    """
    _check_bedrock(bedrock)
    nb = int(nbedrock)
    if not 1 <= nb <= N_LAYERS:
        raise ValueError(f"nbedrock must be 1..{N_LAYERS}, got {nbedrock}")
    altmax_m = np.asarray(altmax_m, dtype=np.float64)
    altmax_lastyear_m = np.asarray(altmax_lastyear_m, dtype=np.float64)
    mats = np.stack([
        _month_matrix_reference(bio / DAYS_PER_YEAR, cryo / DAYS_PER_YEAR, altmax_m[m], altmax_lastyear_m[m],
                                nb, bedrock)
        for m in range(altmax_m.shape[0])
    ])
    with warnings.catch_warnings():  # NaN diffusivities (a NaN parameter) give NaN entries, as in MATLAB
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(mats, axis=0)
