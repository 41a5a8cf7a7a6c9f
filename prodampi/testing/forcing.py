"""Synthetic forcing shared by the test suite and the benchmarks (``prodampi bench models``).

One generator for every synthetic input of the soil models, so that tests and benchmarks exercise the same
regimes:

* :func:`random_forcing`: random sites covering the code paths of ``clm5.md`` §4-5 / ``compas.md`` §4-5:
  bioturbation (ALT > 2 m), cryoturbation / permafrost (0 < ALT <= 2 m, frozen months with ALT = 0, ALT on a
  layer interface), shallow bedrock (nbedrock < 20), the input-to-layer-1 switch (a zero ALTMAX_LASTYEAR
  month), zero litter input, and optionally isolated NaN months;
* :func:`uniform_forcing`: the same forcing in every layer and month (the worked check of ``clm5.md`` §10);
* :func:`frozen_column_forcing`: a permanently frozen column (ALT = 0 all year: all input to layer 1, no
  mixing), where COMPAS divides 0 by 0 in the deep layers that receive no litter;
* :func:`random_theta`: parameters uniform in normalised space.

Everything is deterministic given the ``numpy.random.Generator`` passed in (no global random state).
Units as :class:`prodampi.soil.forcing.Forcing`: K, 1, 1, 1, m, m, layer index, g C m-2 yr-1.
"""

from __future__ import annotations

import numpy as np

from ..soil.forcing import Forcing
from ..soil.layers import N_LAYERS, ZISOI_M, ZSOI_M

__all__ = ["N_MONTHS", "frozen_column_forcing", "random_forcing", "random_theta", "uniform_forcing"]

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
    """Random physical parameters (n, P), uniform in normalized space [lo, hi] of ``table``.

    Parameters
    ----------
    rng : numpy Generator
    table : ParamTable
        The model's parameter table (``model.params``).
    n : int
        Number of parameter vectors.
    lo, hi : float
        Bounds in normalized space.

    Returns
    -------
    (n, P) array
        Physical values in the units of ``table``.
    """
    return table.to_physical(rng.uniform(lo, hi, (n, len(table))))


def uniform_forcing(n: int, tsoi: float = 288.15, w: float = 0.3, fpi: float = 0.8, o: float = 1.0,
                    alt: float | np.ndarray = 10.0, nb: int | np.ndarray = 20,
                    inputs: tuple[float, float, float, float] = (100.0, 200.0, 150.0, 50.0)) -> Forcing:
    """Forcing identical in every layer and month (defaults: the synthetic profile of ``clm5.md`` §10).

    Parameters
    ----------
    n : int
        Number of sites.
    tsoi : float
        Soil temperature (K).
    w, fpi, o : float
        W_SCALAR, FPI_vr and O_SCALAR (1).
    alt : float or (n,) array
        ALTMAX = ALTMAX_LASTYEAR (m), per site; > 2 m bioturbation, (0, 2] cryoturbation, 0 frozen.
    nb : int or (n,) array
        nbedrock (layer index 1..20).
    inputs : 4 floats
        Annual column inputs CWD, L1, L2, L3 (g C m-2 yr-1).

    Returns
    -------
    Forcing
    """
    one = np.ones((n, N_LAYERS, N_MONTHS))
    a = np.broadcast_to(np.asarray(alt, float).reshape(-1, 1), (n, N_MONTHS)).copy()
    return Forcing(tsoi_k=one * tsoi, w_scalar=one * w, o_scalar=one * o, fpi=one * fpi, altmax_m=a,
                   altmax_lastyear_m=a, nbedrock=np.broadcast_to(nb, (n,)).copy(),
                   litter_input=np.tile(np.asarray(inputs, float), (n, 1)))


def frozen_column_forcing(n: int = 1, t_top: float = 262.0, gradient: float = 0.2, w: float = 0.4,
                          fpi: float = 0.7, nbedrock: int = 10,
                          inputs: tuple[float, float, float, float] = (30.0, 60.0, 80.0, 30.0)) -> Forcing:
    """A permanently frozen column (``authors_reference_subset`` README §5.1, site 11 "always_frozen_column").

    ALTMAX = ALTMAX_LASTYEAR = 0 in every month, so all litter input goes to layer 1 and nothing mixes
    (diffusivities floored at 1e-30): litter decays geometrically with depth and underflows to exactly 0 a
    dozen layers down, where COMPAS's closed form gives DOC = mSOC = 0/0.

    Parameters
    ----------
    n : int
        Number of (identical) sites.
    t_top : float
        Layer-1 temperature (K), constant over the year (below freezing by default).
    gradient : float
        Temperature increase per layer (K).
    w, fpi : float
        W_SCALAR and FPI_vr (1); O_SCALAR = 1.
    nbedrock : int
        Bedrock layer index.
    inputs : 4 floats
        Annual column inputs CWD, L1, L2, L3 (g C m-2 yr-1).

    Returns
    -------
    Forcing
    """
    one = np.ones((n, N_LAYERS, N_MONTHS))
    tz = t_top + gradient * np.arange(N_LAYERS)[None, :, None]
    zero = np.zeros((n, N_MONTHS))
    return Forcing(tsoi_k=one * tz, w_scalar=one * w, o_scalar=one, fpi=one * fpi, altmax_m=zero,
                   altmax_lastyear_m=zero.copy(), nbedrock=np.full(n, nbedrock),
                   litter_input=np.tile(np.asarray(inputs, float), (n, 1)))
