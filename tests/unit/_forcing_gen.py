"""Random synthetic forcing for soil-model tests (shared by the CLM5 and COMPAS tests).

The generator covers the regimes that exercise the code paths of ``clm5.md`` §4-5 / ``compas.md`` §4-5:
bioturbation (ALT > 2 m), cryoturbation / permafrost (0 < ALT <= 2 m, frozen months with ALT = 0, ALT on a
layer interface), shallow bedrock (nbedrock < 20), the input-to-layer-1 switch (a zero ALTMAX_LASTYEAR month),
zero litter input, and optionally isolated NaN months.
"""

from __future__ import annotations

import numpy as np

from prodampi.soil.forcing import Forcing
from prodampi.soil.layers import N_LAYERS, ZISOI_M, ZSOI_M

N_MONTHS = 12


def random_forcing(rng: np.random.Generator, S: int, permafrost_frac: float = 0.3,
                   shallow_bedrock_frac: float = 0.3, zero_input_frac: float = 0.05,
                   nan_month_frac: float = 0.0) -> Forcing:
    """Random forcing for ``S`` sites.

    Parameters
    ----------
    rng : numpy Generator
        Source of randomness (no global state is used).
    S : int
        Number of sites.
    permafrost_frac : float
        Fraction of sites with active-layer thickness <= 2 m (cryoturbation); among them some months are
        completely frozen (ALT = 0) and about half have a zero ALTMAX_LASTYEAR month (all input to layer 1).
        A few ALT values sit exactly on a layer interface or at 2 m.
    shallow_bedrock_frac : float
        Fraction of sites with ``nbedrock`` drawn from 1..19 (else 20).
    zero_input_frac : float
        Fraction of sites with zero total litter input (each pool 0); another equal fraction has one or more
        zero pools.
    nan_month_frac : float
        Fraction of (site, layer, month) entries of TSOI/W_SCALAR/O_SCALAR/FPI set to NaN (never the first
        month, so no layer is NaN in all 12 months and sites stay valid).

    Returns
    -------
    Forcing
        Units: K, 1, 1, 1, m, m, layer index, g C m-2 yr-1.
    """
    months = np.arange(N_MONTHS)
    z = ZSOI_M[:N_LAYERS]
    perm = rng.random(S) < permafrost_frac
    t_mean = np.where(perm, rng.uniform(255.0, 275.0, S), rng.uniform(270.0, 302.0, S))
    amp = rng.uniform(0.0, 15.0, S)
    phase = rng.uniform(0, 2 * np.pi, S)
    season = np.sin(2 * np.pi * months[None, :] / N_MONTHS + phase[:, None])  # (S,12)
    damp = np.exp(-z[None, :] / rng.uniform(0.5, 3.0, S)[:, None])  # (S,20)
    tsoi = (t_mean[:, None, None] + amp[:, None, None] * damp[:, :, None] * season[:, None, :]
            + rng.normal(0.0, 0.3, (S, N_LAYERS, N_MONTHS)))
    w = np.clip(rng.uniform(0.05, 1.0, (S, 1, 1)) * rng.uniform(0.6, 1.2, (S, N_LAYERS, N_MONTHS)), 0.0, 1.0)
    o = np.where(rng.random((S, 1, 1)) < 0.8, 1.0, rng.uniform(0.5, 1.0, (S, N_LAYERS, N_MONTHS)))
    o = np.broadcast_to(o, (S, N_LAYERS, N_MONTHS)).copy()
    fpi = np.clip(rng.uniform(0.2, 1.0, (S, 1, 1)) * rng.uniform(0.8, 1.1, (S, N_LAYERS, N_MONTHS)), 0.0, 1.0)

    # active layer
    alt = rng.uniform(2.5, 12.0, (S, N_MONTHS))
    alt_ly = rng.uniform(2.5, 12.0, (S, N_MONTHS))
    p_alt = rng.uniform(0.1, 2.0, S)
    seas = np.clip(np.sin(2 * np.pi * months[None, :] / N_MONTHS + phase[:, None]) + 0.3, 0.0, None)
    alt_p = p_alt[:, None] * seas / max(seas.max(), 1e-12)
    alt_ly_p = np.where(rng.random((S, 1)) < 0.5, alt_p, np.maximum(alt_p, p_alt[:, None] * 0.5))
    # a few exact edge values: ALT on a layer interface or exactly 2 m
    edge = rng.random((S, N_MONTHS)) < 0.1
    edge_val = rng.choice(np.concatenate([ZISOI_M[:12], [2.0]]), size=(S, N_MONTHS))
    alt_p = np.where(edge & (alt_p > 0), edge_val, alt_p)
    alt = np.where(perm[:, None], alt_p, alt)
    alt_ly = np.where(perm[:, None], alt_ly_p, alt_ly)
    # a few non-permafrost sites with a single shallow month (mixed regimes over the year)
    mixed = (~perm) & (rng.random(S) < 0.1)
    alt[mixed, 0] = rng.uniform(0.0, 2.0, int(mixed.sum()))

    nb = np.where(rng.random(S) < shallow_bedrock_frac, rng.integers(1, N_LAYERS, S), N_LAYERS)

    total = np.exp(rng.uniform(np.log(20.0), np.log(1500.0), S))
    split = rng.dirichlet([1.0, 2.0, 2.0, 1.0], S)
    inputs = total[:, None] * split
    zero_all = rng.random(S) < zero_input_frac
    some_zero = (~zero_all) & (rng.random(S) < zero_input_frac)
    inputs[zero_all] = 0.0
    kill = rng.random((S, 4)) < 0.5
    inputs[some_zero] = np.where(kill[some_zero], 0.0, inputs[some_zero])

    if nan_month_frac > 0:
        for arr in (tsoi, w, o, fpi):
            mask = rng.random(arr.shape) < nan_month_frac
            mask[:, :, 0] = False  # keep at least one valid month per layer
            arr[mask] = np.nan
    return Forcing(tsoi_k=tsoi, w_scalar=w, o_scalar=o, fpi=fpi, altmax_m=alt, altmax_lastyear_m=alt_ly,
                   nbedrock=nb, litter_input=inputs)


def random_theta(rng: np.random.Generator, table, n: int, lo: float = 0.02, hi: float = 0.98) -> np.ndarray:
    """Random physical parameters (n, P) uniform in normalized space [lo, hi] of a ParamTable."""
    return table.to_physical(rng.uniform(lo, hi, (n, len(table))))
