"""Grids, spherical cell areas, the GLOBE land mask and latitude-band decomposition (prodampi.data.grid)."""

from __future__ import annotations

import numpy as np
import pytest

from prodampi.data import grid as g

R = g.EARTH_RADIUS_M
SPHERE = 4.0 * np.pi * R**2


# ------------------------------------------------------------------------------------------------ grids
def test_half_degree_grid_matches_proda_layout():
    grid = g.regular_grid(0.5)
    assert grid.shape == (360, 720)
    assert grid.lon[0] == pytest.approx(-179.75) and grid.lon[-1] == pytest.approx(179.75)
    assert grid.lat[0] == pytest.approx(89.75) and grid.lat[-1] == pytest.approx(-89.75)
    np.testing.assert_allclose(np.diff(grid.lon), 0.5)
    np.testing.assert_allclose(np.diff(grid.lat), -0.5)
    assert grid.lat_bounds[0].tolist() == [90.0, 89.5]
    assert grid.lon_bounds[0].tolist() == [-180.0, -179.5]


def test_resolution_must_divide_180():
    with pytest.raises(ValueError):
        g.regular_grid(0.7)


def test_f05_grid_centres():
    f = g.f05_grid()
    assert f.shape == (384, 576)
    assert f.lat[0] == pytest.approx(90 - 0.234375) and f.lat[1] - f.lat[0] == pytest.approx(-0.46875)
    assert f.lon[0] == pytest.approx(-180 + 0.3125) and f.lon[1] - f.lon[0] == pytest.approx(0.625)


@pytest.mark.parametrize("res", [0.5, 1.0, 2.0, 4.0, 10.0])
def test_exact_areas_sum_to_the_sphere(res):
    grid = g.regular_grid(res)
    assert grid.area_m2().sum() == pytest.approx(SPHERE, rel=1e-12)


def test_f05_areas_sum_to_the_sphere():
    assert g.f05_grid().area_m2().sum() == pytest.approx(SPHERE, rel=1e-12)


def test_exact_area_formula_and_trapezoid():
    # a 1 x 1 degree cell at the equator: R^2 * dlon * (sin 0.5 - sin -0.5)
    a = g.cell_area_m2(np.array([0.0]), 1.0, 1.0)[0]
    assert a == pytest.approx(R**2 * np.radians(1.0) * 2 * np.sin(np.radians(0.5)), rel=1e-14)
    # PRODA's trapezoid differs from the exact area by ~1e-5 relative and gives 5.1006e14 m2 in total
    grid = g.regular_grid(0.5)
    trap = grid.area_m2("trapezoid")
    np.testing.assert_allclose(trap, grid.area_m2(), rtol=2e-5)
    assert trap.sum() == pytest.approx(5.1006e14, rel=1e-4)
    with pytest.raises(ValueError):
        g.cell_area_m2(np.zeros(1), 1.0, 1.0, method="bogus")


def test_nearest_index_ties_go_to_the_first_index():
    grid = g.regular_grid(0.5)
    # 89.5 N is equidistant from rows 0 (89.75) and 1 (89.25): row 0; -179.5 E between columns 0 and 1: column 0
    assert g.nearest_index(np.array([89.5]), grid.lat)[0] == 0
    assert g.nearest_index(np.array([-179.5]), grid.lon)[0] == 0
    assert g.nearest_index(np.array([-179.4]), grid.lon)[0] == 1
    # beyond the ends
    assert g.nearest_index(np.array([95.0, -95.0]), grid.lat).tolist() == [0, 359]
    # locate wraps longitudes
    assert grid.locate(np.array([0.1]), np.array([360.1]))[0] == grid.locate(np.array([0.1]), np.array([0.1]))[0]
    r, c = grid.rowcol(grid.locate(np.array([-33.3]), np.array([151.2])))
    assert abs(grid.lat[r[0]] + 33.3) <= 0.25 and abs(grid.lon[c[0]] - 151.2) <= 0.25


def test_points_in_polygon():
    square = np.array([(0, 0), (10, 0), (10, 10), (0, 10)], dtype=float)
    inside = g.points_in_polygon(np.array([5.0, 15.0, -1.0, 9.9]), np.array([5.0, 5.0, 5.0, 0.1]), square)
    assert inside.tolist() == [True, False, False, True]


# ------------------------------------------------------------------------------------------------ land mask
@pytest.fixture(scope="module")
def half_degree_land():
    pytest.importorskip("global_land_mask")
    grid = g.regular_grid(0.5)
    return grid, g.land_fraction(grid)


def test_land_fraction_counts_match_the_published_mask(half_degree_land):
    grid, lf = half_degree_land
    assert lf.min() >= 0.0 and lf.max() <= 1.0
    # world.md §2: 85,912 cells with >= 50 % land (1.472e14 m2); without Antarctica 61,790 cells
    assert abs(int((lf >= 0.5).sum()) - 85_912) <= 0.001 * 85_912
    la = np.repeat(grid.lat[:, None], grid.shape[1], axis=1)
    no_ant = (lf >= 0.5) & (la >= -60)
    assert abs(int(no_ant.sum()) - 61_790) <= 0.001 * 61_790
    assert grid.area_m2()[no_ant].sum() == pytest.approx(1.349e14, rel=2e-3)


def test_domain_mask_excludes_antarctica_and_greenland_only(half_degree_land):
    grid, lf = half_degree_land
    dom = g.domain_mask(grid, lf)
    # world.md §2: without Antarctica and Greenland 58,959 cells, 1.325e14 m2 (our polygon differs slightly)
    assert abs(int(dom.sum()) - 58_959) <= 0.005 * 58_959
    assert grid.area_m2()[dom].sum() == pytest.approx(1.325e14, rel=5e-3)

    def at(lat: float, lon: float) -> bool:
        r, c = grid.rowcol(grid.locate(np.array([lat]), np.array([lon])))
        return bool(dom[r[0], c[0]])

    assert not at(72.0, -40.0)  # Greenland ice sheet
    assert not at(-75.0, 0.0)  # Antarctica
    assert at(64.8, -18.5)  # Iceland
    assert at(70.0, -72.0)  # Baffin Island
    assert at(80.0, -80.0)  # Ellesmere Island
    assert at(23.0, 10.0) and at(-3.0, -60.0)  # Sahara, Amazon
    assert not at(0.0, -140.0)  # Pacific


def test_subsampled_land_fraction_agrees_with_the_block_mean():
    pytest.importorskip("global_land_mask")
    grid = g.regular_grid(4.0)
    block = g.land_fraction(grid)
    sub = g.land_fraction(grid, n_sub=24)
    assert np.abs(block - sub).mean() < 0.01
    assert np.abs(block - sub).max() < 0.15


# ------------------------------------------------------------------------------------------------ bands
def _check_bands(rows: np.ndarray, n_ranks: int) -> g.LatitudeBands:
    b = g.latitude_bands(rows, n_ranks)
    assert b.n_ranks == n_ranks and b.counts.sum() == rows.size
    assert b.rank_of_cell.shape == rows.shape
    for k in range(n_ranks):
        mine = rows[b.rank_of_cell == k]
        assert mine.size == b.counts[k]
        if mine.size:
            assert b.row_start[k] <= mine.min() and mine.max() < b.row_stop[k]
        else:
            assert b.row_start[k] == b.row_stop[k]
    # contiguous and ordered north -> south, no overlap
    assert np.all(b.row_start <= b.row_stop)
    assert np.all(b.row_stop[:-1] <= b.row_start[1:])
    return b


def test_latitude_bands_balance_land_cells_not_degrees():
    rng = np.random.default_rng(0)
    rows = rng.integers(20, 160, size=20_000)  # uneven: more cells in some rows
    rows = np.concatenate([rows, np.full(5_000, 40)])
    for n in (1, 2, 3, 7, 16):
        b = _check_bands(rows, n)
        per_row_max = np.bincount(rows).max()
        assert b.counts.max() - b.counts.min() <= 2 * per_row_max
        assert abs(b.counts.max() - rows.size / n) <= per_row_max


def test_latitude_bands_more_ranks_than_rows_gives_empty_bands():
    rows = np.array([3, 3, 3, 5, 7, 7])
    b = _check_bands(rows, 10)
    assert (b.counts == 0).sum() >= 7
    assert b.counts.sum() == 6
    assert set(np.unique(b.rank_of_cell)).issubset(set(np.flatnonzero(b.counts)))


def test_latitude_bands_edge_cases():
    b = g.latitude_bands(np.zeros(0, dtype=int), 4)
    assert b.counts.tolist() == [0, 0, 0, 0] and b.rank_of_cell.size == 0
    b = _check_bands(np.array([9, 9, 9]), 3)  # one row cannot be split
    assert sorted(b.counts.tolist()) == [0, 0, 3]
    with pytest.raises(ValueError):
        g.latitude_bands(np.array([1]), 0)
    assert _check_bands(np.array([2, 0, 1, 0]), 1).counts.tolist() == [4]


def test_latitude_bands_on_the_half_degree_land(half_degree_land):
    grid, lf = half_degree_land
    rows, _ = grid.rowcol(np.flatnonzero(g.domain_mask(grid, lf).ravel()))
    b = _check_bands(rows, 64)
    per_row_max = np.bincount(rows).max()  # whole rows only: a band is off by at most one row's cells
    assert np.abs(b.counts - rows.size / 64).max() <= per_row_max
    assert b.row_start[0] < b.row_start[-1]  # rank 0 is the northern-most band
