"""Vertical transport and input allocation (prodampi.soil.transport) against the as-coded step list."""

from __future__ import annotations

import numpy as np
import pytest

from prodampi.soil.forcing import Forcing
from prodampi.soil.layers import DZ_M, DZ_NODE_M, N_LAYERS, ZISOI_M
from prodampi.soil.transport import (
    diagonals_to_dense,
    input_profile,
    thawed_all_year,
    transport_basis,
    transport_diagonals,
    transport_matrix_reference,
)
from prodampi.testing.forcing import random_forcing

DZ = DZ_M[:N_LAYERS]


def _forcing_from_alt(alt: np.ndarray, alt_ly: np.ndarray, nb: np.ndarray) -> Forcing:
    s = alt.shape[0]
    one = np.ones((s, N_LAYERS, 12))
    return Forcing(tsoi_k=one * 280.0, w_scalar=one * 0.5, o_scalar=one, fpi=one, altmax_m=alt,
                   altmax_lastyear_m=alt_ly, nbedrock=nb, litter_input=np.ones((s, 4)))


@pytest.mark.parametrize("bedrock", ["compat", "conservative"])
def test_basis_equals_as_coded_reference(bedrock):
    rng = np.random.default_rng(11)
    s = 160
    forc = random_forcing(rng, s, permafrost_frac=0.5, shallow_bedrock_frac=0.5)
    # extra edge cases: NaN ALT months, ALT exactly 2 m, ALT on the bedrock interface, frozen all year
    alt = forc.altmax_m.copy()
    alt_ly = forc.altmax_lastyear_m.copy()
    nb = forc.nbedrock.copy()
    alt[0, :3] = np.nan
    alt_ly[0, :2] = np.nan
    alt[1] = 2.0
    alt_ly[1] = 0.0
    nb[2] = 5
    alt[2] = ZISOI_M[5]  # ALT = zisoi(nb+1): the taper is 0/0 there
    alt_ly[2] = 0.1
    alt[3] = 0.0
    alt_ly[3] = 0.0
    forc = _forcing_from_alt(alt, alt_ly, nb)
    basis = transport_basis(forc, bedrock=bedrock)
    bio = rng.uniform(3e-5, 5e-4, s)
    cryo = rng.uniform(3e-5, 1.6e-3, s)
    dense = diagonals_to_dense(transport_diagonals(bio, cryo, basis))
    for i in range(s):
        ref = transport_matrix_reference(bio[i], cryo[i], alt[i], alt_ly[i], int(nb[i]), bedrock=bedrock)
        assert np.array_equal(ref != 0.0, dense[i] != 0.0)
        nz = ref != 0.0
        rel = np.abs(dense[i][nz] - ref[nz]) / np.abs(ref[nz])
        assert rel.max() <= 1e-12, (i, rel.max())
    # site_index gathers the same rows
    idx = np.array([5, 5, 0, 159])
    d2 = transport_diagonals(bio[idx], cryo[idx], basis, idx)
    np.testing.assert_array_equal(d2, transport_diagonals(bio, cryo, basis)[idx])


def test_hand_computed_entries_and_linearity():
    # one cryoturbation year, ALT = 1 m, no shallow bedrock: layers 1..8 fully mixed at cryo
    alt = np.full((1, 12), 1.0)
    forc = _forcing_from_alt(alt, alt, np.array([20]))
    basis = transport_basis(forc)
    t = diagonals_to_dense(transport_diagonals(np.array([0.0]), np.array([1.0]), basis))[0]
    d = 1.0 / 365.0  # m2 d-1 for cryo = 1 m2 yr-1
    assert t[1, 0] == pytest.approx(-d / DZ_NODE_M[1] / DZ[1], rel=1e-14)
    assert t[1, 2] == pytest.approx(-d / DZ_NODE_M[2] / DZ[1], rel=1e-14)
    assert t[0, 0] == pytest.approx(d / DZ_NODE_M[1] / DZ[0], rel=1e-14)
    assert t[1, 1] == pytest.approx(d / DZ[1] * (1 / DZ_NODE_M[1] + 1 / DZ_NODE_M[2]), rel=1e-14)
    # bioturbation has no effect in a cryoturbation year (up to the parameter-free floor)
    t2 = diagonals_to_dense(transport_diagonals(np.array([5e-4]), np.array([1.0]), basis))[0]
    np.testing.assert_allclose(t2, t, rtol=0, atol=1e-25)
    # T(bio, cryo) is linear in (bio, cryo) apart from the floor
    assert np.abs(basis.floor).max() < 1e-25
    assert np.abs(basis.bio).max() == 0.0


def test_frozen_year_has_only_floor_terms():
    forc = _forcing_from_alt(np.zeros((1, 12)), np.zeros((1, 12)), np.array([20]))
    basis = transport_basis(forc)
    assert np.abs(basis.bio).max() == 0.0 and np.abs(basis.cryo).max() == 0.0
    assert 0.0 < np.abs(basis.floor).max() < 1e-25


def test_bedrock_leak_compat_vs_conservative():
    """Column (dz-weighted) sums of T: zero flux out of the column except PRODA's bedrock sink in compat."""
    rng = np.random.default_rng(3)
    s = 40
    alt = np.full((s, 12), 8.0)  # bioturbation all year
    nb = rng.integers(1, 19, s)  # nb+1 < 20, so layer nb+1 leaks in compat
    forc = _forcing_from_alt(alt, alt, nb)
    bio = np.full(s, 2e-4)
    for mode in ("compat", "conservative"):
        t = diagonals_to_dense(transport_diagonals(bio, np.zeros(s), transport_basis(forc, bedrock=mode)))
        colsum = np.einsum("i,sij->sj", DZ, t)  # mass lost per unit concentration in layer j (m d-1)
        scale = np.abs(t).max(axis=(1, 2)) * DZ.max()
        for i in range(s):
            # layer nb+1 (0-based nb) couples to layer nb+2 through the copied conductance in its row only:
            # a sink for x_{nb+1} and a source from x_{nb+2} (layer nb+2 sees only the 1e-30 floor)
            sink, source = nb[i], nb[i] + 1
            others = np.delete(colsum[i], [sink, source])
            assert np.abs(others).max() <= 1e-12 * scale[i]
            if mode == "compat":
                assert colsum[i, sink] > 1e-6 * scale[i]
                assert colsum[i, source] < -1e-6 * scale[i]
                assert colsum[i, sink] == pytest.approx(-colsum[i, source], rel=1e-12)
            else:
                assert np.abs(colsum[i, [sink, source]]).max() <= 1e-12 * scale[i]


def test_bad_bedrock_mode():
    forc = _forcing_from_alt(np.ones((1, 12)), np.ones((1, 12)), np.array([20]))
    with pytest.raises(ValueError):
        transport_basis(forc, bedrock="leaky")
    with pytest.raises(ValueError):
        transport_matrix_reference(1e-4, 1e-4, np.ones(12), np.ones(12), 20, bedrock="x")


def test_input_profile():
    beta = np.array([0.74995, 0.5, 0.95, 0.9999, 1.0, 0.95])
    thawed = np.array([True, True, True, True, True, False])
    v = input_profile(beta, thawed)
    np.testing.assert_allclose(v.sum(axis=1), 1.0, rtol=1e-14)
    # spec's quoted fractions for beta = 0.74995 (clm5.md §10)
    np.testing.assert_allclose(v[0, :5], [0.437575, 0.384518, 0.146256, 0.028484, 0.003067], atol=6e-7)
    # literal formula (depths in cm), renormalised
    top = np.concatenate([[0.0], ZISOI_M[:N_LAYERS - 1]]) * 100
    for i in range(4):
        raw = beta[i] ** top - beta[i] ** (ZISOI_M[:N_LAYERS] * 100)
        np.testing.assert_allclose(v[i], raw / raw.sum(), rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(v[4], DZ / ZISOI_M[N_LAYERS - 1], rtol=1e-14)  # beta = 1 limit
    np.testing.assert_array_equal(v[5], np.eye(N_LAYERS)[0])


def test_thawed_all_year():
    ly = np.full((4, 12), 3.0)
    ly[1, 4] = 0.0
    ly[2, 7] = np.nan
    forc = _forcing_from_alt(np.full((4, 12), 3.0), ly, np.full(4, 20))
    np.testing.assert_array_equal(thawed_all_year(forc), [True, False, False, True])
