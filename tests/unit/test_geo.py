"""Nearest-cell lookups of prodampi.data.geo against an independent brute-force haversine search."""

from __future__ import annotations

import numpy as np
import pytest

from prodampi.data import geo
from prodampi.data.grid import EARTH_RADIUS_M
from prodampi.io import readers as R

R_M = 6_371_008.8  # written out: the one Earth radius (m), independent of the code under test


def haversine_m(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Great-circle distance (m) by the haversine formula, broadcasting."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2.0 * R_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def brute_nearest(cell_lat, cell_lon, lat, lon):
    d = haversine_m(np.asarray(lat)[:, None], np.asarray(lon)[:, None], np.asarray(cell_lat)[None, :],
                    np.asarray(cell_lon)[None, :])
    order = np.argsort(d, axis=1)
    rows = np.arange(d.shape[0])
    return order[:, 0], d[rows, order[:, 0]], d[rows, order[:, 1]]


def random_sphere(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Points uniform on the sphere (degrees), lon in -180..180."""
    return np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180.0, 180.0, n)


def test_radius_is_the_one_earth_radius() -> None:
    assert EARTH_RADIUS_M == R_M


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_points_match_brute_force_haversine(seed: int) -> None:
    rng = np.random.default_rng(seed)
    clat, clon = random_sphere(rng, 800)
    # cells crowding the antimeridian and both poles, some with longitudes given as 0..360
    clat = np.concatenate([clat, rng.uniform(-60, 60, 60), rng.uniform(85, 90, 30), rng.uniform(-90, -85, 30)])
    clon = np.concatenate([clon, rng.choice([-1, 1], 60) * rng.uniform(178, 180, 60),
                           rng.uniform(0, 360, 30), rng.uniform(-180, 180, 30)])
    slat, slon = random_sphere(rng, 1500)
    slat = np.concatenate([slat, [90.0, -90.0, 90.0, -90.0, 0.0, 0.0, 45.0, -45.0, 89.99, -89.99],
                           rng.uniform(-70, 70, 200), rng.uniform(88, 90, 100), rng.uniform(-90, -88, 100)])
    slon = np.concatenate([slon, [0.0, 0.0, 123.0, -77.0, 180.0, -180.0, 359.9, 180.0, 0.0, 270.0],
                           rng.choice([-1, 1], 200) * rng.uniform(179, 180, 200), rng.uniform(0, 360, 100),
                           rng.uniform(-180, 180, 100)])
    idx, dist = geo.nearest_cell(clat, clon, slat, slon)
    want_idx, want_d, second = brute_nearest(clat, clon, slat, slon)
    assert idx.dtype == np.int64 and idx.shape == slat.shape and (idx >= 0).all()
    np.testing.assert_allclose(dist, want_d, rtol=1e-9, atol=1e-3)
    # the distance reported is the haversine distance to the cell returned
    np.testing.assert_allclose(dist, haversine_m(slat, slon, clat[idx], clon[idx]), rtol=1e-9, atol=1e-3)
    clear = second - want_d > 1.0  # where the runner-up is more than a metre farther, the cell is unique
    assert clear.mean() > 0.99
    assert np.array_equal(idx[clear], want_idx[clear])


def test_antimeridian() -> None:
    clat, clon = np.array([0.0, 0.0, 10.0]), np.array([-179.99, 179.0, 180.0])
    idx, dist = geo.nearest_cell(clat, clon, [0.0, 0.0, 10.0], [179.95, -179.5, -179.9])
    assert idx.tolist() == [0, 0, 2]
    np.testing.assert_allclose(dist[:2], R_M * np.radians([0.06, 0.49]), rtol=1e-9)
    np.testing.assert_allclose(dist[2], haversine_m(10.0, -179.9, 10.0, 180.0), rtol=1e-9)


def test_poles() -> None:
    # across the pole the cell on the far meridian is nearer than the one on the same meridian
    clat, clon = np.array([89.9, 88.0, -89.5]), np.array([180.0, 0.0, 33.0])
    idx, dist = geo.nearest_cell(clat, clon, [89.9, 90.0, 90.0, -90.0], [0.0, 0.0, -123.0, 77.0])
    assert idx.tolist() == [0, 0, 0, 2]
    np.testing.assert_allclose(dist, R_M * np.radians([0.2, 0.1, 0.1, 0.5]), rtol=1e-9)


def test_distances_in_metres_on_the_one_radius() -> None:
    idx, dist = geo.nearest_cell([90.0], [0.0], [0.0, 0.0, -90.0], [0.0, 77.0, 0.0])
    assert idx.tolist() == [0, 0, 0]
    np.testing.assert_allclose(dist, [np.pi / 2 * R_M, np.pi / 2 * R_M, np.pi * R_M], rtol=1e-12)
    _, d = geo.nearest_cell([0.0], [0.0], [0.0], [1.0])
    assert d[0] == pytest.approx(111_195.080234, rel=1e-10)  # one degree of the equator, R = 6,371,008.8 m


def test_max_distance_missing_coordinates_and_no_cells() -> None:
    index = geo.SphereIndex([0.0, 0.0], [0.0, 10.0])
    idx, dist = index.query([0.0, 0.0, np.nan, 0.0], [0.5, 5.0, 0.0, np.inf], max_distance_m=100_000.0)
    assert idx.tolist() == [0, -1, -1, -1]
    assert dist[1] == pytest.approx(R_M * np.radians(5.0), rel=1e-9)  # beyond the limit: distance still given
    assert np.isnan(dist[2:]).all()
    idx, dist = geo.SphereIndex([], []).query([1.0, 2.0], [3.0, 4.0])
    assert idx.tolist() == [-1, -1] and np.isnan(dist).all()


def test_reader_wrappers_use_the_one_lookup() -> None:
    rng = np.random.default_rng(7)
    clat, clon = random_sphere(rng, 300)
    slat, slon = random_sphere(rng, 200)
    idx, dist_m = geo.nearest_cell(clat, clon, slat, slon)
    i2, d_km = R.nearest_on_sphere(R.sphere_tree(clat, clon), slat, slon)
    assert np.array_equal(i2, idx) and np.array_equal(d_km, dist_m / 1000.0)
    grid = R.CovariateGrid(clat, clon, clat * np.nan, clat * np.nan, rng.normal(size=(300, 2)), ("a", "b"),
                           ("1", "1"), {}, [])
    i3, d3 = grid.nearest(slat, slon, max_distance_km=500.0)
    assert np.array_equal(d3, dist_m / 1000.0)
    assert np.array_equal(i3, np.where(dist_m <= 500_000.0, idx, -1))
    vals = grid.at_sites(slat, slon, max_distance_km=500.0)
    good = i3 >= 0
    assert np.array_equal(vals[good], grid.values[idx[good]]) and np.isnan(vals[~good]).all()


# -------------------------------------------------------------------------------- PRODA's per-axis grid rule
def test_per_axis_rule_matches_independent_argmin() -> None:
    rng = np.random.default_rng(3)
    dlat, dlon = 180.0 / 384, 360.0 / 576
    glat = 90.0 - dlat / 2 - dlat * np.arange(384)  # f05 grid, north to south
    glon = -180.0 + dlon / 2 + dlon * np.arange(576)
    slat, slon = rng.uniform(-90, 90, 3000), rng.uniform(-180, 360, 3000)
    ilat, ilon = geo.nearest_cell_indices(glat, glon, slat, slon)
    for s in range(0, 3000, 7):
        assert ilat[s] == int(np.argmin(np.abs(glat - slat[s])))
        assert ilon[s] == int(np.argmin([min(abs(slon[s] - g) % 360.0, 360.0 - abs(slon[s] - g) % 360.0)
                                         for g in glon]))


def test_per_axis_rule_is_not_the_great_circle_rule_near_a_pole() -> None:
    # on a coarse grid near the pole the cell with the nearest latitude is not the nearest on the sphere
    glat, glon = np.array([80.0, 85.0]), np.array([0.0, 60.0])
    ilat, ilon = geo.nearest_cell_indices(glat, glon, [82.4], [29.0])
    assert (ilat[0], ilon[0]) == (0, 0)  # latitude 80 (2.4 deg away) and longitude 0 searched separately
    clat, clon = np.repeat(glat, 2), np.tile(glon, 2)
    idx, _ = geo.nearest_cell(clat, clon, [82.4], [29.0])
    want, _, _ = brute_nearest(clat, clon, [82.4], [29.0])
    assert idx[0] == want[0] and (clat[idx[0]], clon[idx[0]]) == (85.0, 0.0)
