"""Tests of prodampi.data.profiles: SOC density, pedo-transfer function, screening, ledger, container."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prodampi.data import profiles as P
from prodampi.io import readers as R


# ====================================================================================== SOC density, PTF
def test_soc_density_units() -> None:
    # 10 g C/kg x 1.3 g/cm3 (= 1300 kg/m3) = 13,000 g C/m3; 20 % stones leave 80 % of that
    assert P.soc_density_g_m3(10.0, 1.3) == pytest.approx(13000.0)
    assert P.soc_density_g_m3(10.0, 1.3, 20.0) == pytest.approx(10400.0)
    out = P.soc_density_g_m3(np.array([1.0, np.nan]), np.array([1.0, 1.0]), np.array([0.0, 0.0]))
    assert out[0] == pytest.approx(1000.0) and np.isnan(out[1])


def test_ptf_values() -> None:
    assert P.ptf_bulk_density(0.0) == pytest.approx(0.32 + 1.30)
    # pure peat (~500 g C/kg) gets ~0.32 g/cm3 with SOC in g/kg (proda_nn_maps.md §2.3)
    assert P.ptf_bulk_density(500.0) == pytest.approx(0.32 + 1.30 * np.exp(-0.0089 * 1.724 * 500.0))
    assert 0.32 < P.ptf_bulk_density(500.0) < 0.35
    assert P.ptf_bulk_density(10.0, a=1.0, b=0.0) == pytest.approx(1.0)


def test_fit_ptf_recovers_known_coefficients() -> None:
    rng = np.random.default_rng(3)
    soc = rng.uniform(0.0, 300.0, 2000)
    bd = P.ptf_bulk_density(soc, 0.5, 1.0, 0.012) + rng.normal(0.0, 0.01, soc.size)
    fit = P.fit_ptf(soc, bd)
    assert fit.a == pytest.approx(0.5, abs=0.02) and fit.b == pytest.approx(1.0, abs=0.02)
    assert fit.c == pytest.approx(0.012, rel=0.05) and fit.r2 > 0.95 and fit.n == 2000
    # non-finite or non-physical pairs are ignored
    fit2 = P.fit_ptf(np.append(soc, [np.nan, -1.0, 5.0]), np.append(bd, [1.0, 1.0, np.nan]))
    assert fit2.n == 2000
    with pytest.raises(ValueError):
        P.fit_ptf([1.0, 2.0], [1.0, 1.0])


def test_r_squared() -> None:
    y = np.array([1.0, 2.0, 3.0])
    assert P.r_squared(y, y) == 1.0
    assert P.r_squared(y, np.full(3, 2.0)) == 0.0
    assert P.r_squared(y, np.array([3.0, 2.0, 1.0])) < 0


@pytest.fixture(scope="module")
def bd_oc(shared_data: Path) -> R.BdOcLayers:
    return R.read_bd_oc_layers(shared_data / "wosis_bd_oc_layers")


def test_ptf_on_wosis_layers(bd_oc: R.BdOcLayers) -> None:
    soc, bd = bd_oc.soc_g_per_kg, bd_oc.bd_g_cm3
    r2_paper = P.ptf_r2(soc, bd)  # SOC in g/kg
    r2_pct = P.ptf_r2(soc, bd, soc_unit="percent")
    assert 0.2 <= r2_paper <= 0.32
    assert r2_paper == pytest.approx(0.26, abs=0.01)
    assert r2_pct < 0
    fit = P.fit_ptf(soc, bd)
    assert fit.r2 >= r2_paper
    # the free fit documented with the data: a = 0.835, b = 0.803, c = 0.0141, R2 = 0.31
    assert fit.a == pytest.approx(0.835, abs=0.005) and fit.b == pytest.approx(0.803, abs=0.005)
    assert fit.c == pytest.approx(0.0141, abs=0.0002) and fit.r2 == pytest.approx(0.31, abs=0.01)
    assert P.ptf_r2(soc, bd, fit.coefficients) == pytest.approx(fit.r2)
    with pytest.raises(ValueError):
        P.ptf_r2(soc, bd, soc_unit="mg/g")


# ====================================================================================== DA cleaning
@pytest.mark.parametrize(
    ("obs", "depth", "mask", "skip"),
    [
        ([0.0, 0.0, 0.0], [0.1, 0.2, 0.3], [0, 0, 0], "all observations are 0"),
        ([5.0, 0.0, 3.0], [0.1, 0.2, 0.3], [1, 0, 1], ""),
        ([5.0, np.nan, 3.0], [0.1, 0.2, 0.3], [1, 0, 1], ""),
        ([5.0, 4.0, 3.0], [0.1, np.nan, 0.3], [1, 0, 1], ""),
        ([5.0, 0.0, np.nan], [0.1, 0.2, 0.3], [0, 0, 0], "1 usable"),
        ([0.0, np.nan, 2.0], [0.1, 0.2, 0.3], [0, 0, 0], "1 usable"),
    ],
)
def test_clean_observations(obs: list, depth: list, mask: list, skip: str) -> None:
    m, why = P.clean_observations(np.array(depth), np.array(obs))
    assert list(m.astype(int)) == mask
    assert (why == "") if not skip else why.startswith(skip)


# ====================================================================================== screening
def _write_tables(d: Path, sites: list[str], hors: list[str]) -> None:
    (d / "isis_sites.csv").write_text("SOURCEID,LONWGS84,LATWGS84\n" + "\n".join(sites) + "\n")
    (d / "isis_horizons.csv").write_text(
        "SOURCEID,UHDICM,LHDICM,CRFVOL,PHIHOX,PHIKCL,ORCDRC,SNDPPT,SLTPPT,CLYPPT,CEC,BLD\n"
        + "\n".join(hors) + "\n")


def test_screening_rules_and_ledger(tmp_path: Path) -> None:
    sites = ["K1,10,50", "SH,10,50", "FEW,10,50", "BADLAT,10,95", "ZERO,1,1", "NOSOC,1,1", "EDGE,2,2"]
    hors = [
        # K1: kept; layers out of order in the file, BD measured on one, stones on one, one layer w/o OC
        "K1,30,60,,,,5,,,,,", "K1,0,10,10,,,20,,,,,1.1", "K1,10,30,,,,10,,,,,", "K1,60,90,,,,,,,,,",
        "SH,0,10,,,,20,,,,,", "SH,10,30,,,,10,,,,,", "SH,30,50,,,,5,,,,,",  # deepest bottom = 50: too shallow
        "FEW,0,30,,,,20,,,,,", "FEW,30,80,,,,10,,,,,",  # 2 layers
        "BADLAT,0,10,,,,20,,,,,",
        "ZERO,0,20,,,,0,,,,,", "ZERO,20,40,,,,0,,,,,", "ZERO,40,60,,,,0,,,,,",  # all observations 0
        "NOSOC,0,20,,,,,,,,,", "NOSOC,20,40,,,,,,,,,", "NOSOC,40,60,,,,,,,,,", "NOSOC,60,80,,,,,,,,,",
        "EDGE,0,10,,,,4,,,,,", "EDGE,10,30,,,,0,,,,,", "EDGE,30,50.5,,,,2,,,,,",
        "ORPHAN,0,10,,,,3,,,,,",
    ]
    _write_tables(tmp_path, sites, hors)
    t = R.read_isis(tmp_path)
    res = P.screen_profiles(t)
    led, pr = res.ledger, res.profiles
    assert set(led.ids()) == set(t.input_profile_ids) == {*(s.split(",")[0] for s in sites), "ORPHAN"}
    assert led.unaccounted(t.input_profile_ids) == []
    assert led.ids("kept") == ["K1", "ZERO", "EDGE"] and list(pr.profile_id) == ["K1", "ZERO", "EDGE"]
    assert led.entry("SH").reason_codes == ("too_shallow",)
    assert led.entry("FEW").reason_codes == ("too_few_layers",)
    assert set(led.entry("NOSOC").reason_codes) == {"too_few_layers", "too_shallow"}
    bad = led.entry("BADLAT")
    assert bad.reason_codes == ("site_rejected",) and "row 5, column 'LATWGS84'" in bad.reasons[0]
    assert led.entry("ORPHAN").reason_codes == ("no_site",)
    assert led.reason_counts() == {"no_site": 1, "site_rejected": 1, "too_few_layers": 2, "too_shallow": 2}
    # K1: sorted by depth, layer without OC left out, BD measured vs PTF, stones
    s = pr.layer_slice(0)
    assert list(pr.top_cm[s]) == [0, 10, 30] and list(pr.bottom_cm[s]) == [10, 30, 60]
    assert np.allclose(pr.node_depth_m[s], [0.05, 0.2, 0.45])
    assert list(pr.bd_from_ptf[s]) == [False, True, True]
    assert pr.bd_g_cm3[s][0] == pytest.approx(1.1)
    assert pr.bd_g_cm3[s][1] == pytest.approx(P.ptf_bulk_density(10.0))
    assert list(pr.coarse_missing[s]) == [False, True, True] and list(pr.coarse_pct[s]) == [10, 0, 0]
    assert pr.soc_density_g_m3[s][0] == pytest.approx(20.0 * 1.1 * 1000.0 * 0.9)
    assert pr.soc_density_g_m3[s][2] == pytest.approx(5.0 * P.ptf_bulk_density(5.0) * 1000.0)
    assert led.entry("K1").n_layers_kept == 3 and led.entry("K1").n_layers_read == 4
    # DA cleaning recorded, not applied by default
    assert any(n.startswith("da_cleaning: all observations are 0") for n in led.entry("ZERO").notes)
    assert list(pr.da_usable) == [True, False, True]
    z, y = pr.observations(2)
    assert list(y > 0) == [True, True] and z.size == 2  # EDGE: the zero layer is dropped
    # ... and applied on request
    res2 = P.screen_profiles(t, da_cleaning=True)
    assert res2.ledger.ids("kept") == ["K1", "EDGE"]
    assert res2.ledger.entry("ZERO").reason_codes == ("da_skip",)
    assert res2.profiles.n_layers == 6


def test_screening_custom_thresholds(tmp_path: Path) -> None:
    _write_tables(tmp_path, ["A,0,0"], ["A,0,10,,,,5,,,,,", "A,10,40,,,,4,,,,,"])
    t = R.read_isis(tmp_path)
    assert P.screen_profiles(t).ledger.n_kept == 0
    res = P.screen_profiles(t, min_layers_exclusive=1, min_max_depth_cm=30.0)
    assert res.ledger.n_kept == 1 and res.profiles.n_layers == 2


@pytest.fixture(scope="module")
def isis_screened(shared_data: Path) -> tuple[R.ProfileTable, P.ScreeningResult]:
    t = R.read_isis(shared_data / "gsif_isis_global_profiles")
    return t, P.screen_profiles(t)


def test_isis_screening_counts(isis_screened: tuple) -> None:
    t, res = isis_screened
    pr, led = res.profiles, res.ledger
    assert pr.n_profiles == 646 and pr.n_layers == 3804
    assert led.n_kept == 646 and len(led) == 785
    assert led.unaccounted(t.input_profile_ids) == [] and set(led.ids()) == set(t.input_profile_ids)
    assert led.ids("kept") == list(pr.profile_id)
    assert sum(e.n_layers_kept for e in led.entries) == 3804
    assert led.reason_counts() == {"too_few_layers": 130, "too_shallow": 134}
    # documented with the data: median 6 layers, median max depth 141.5 cm; OC and BD hardly co-occur
    assert np.median(pr.layers_per_profile) == 6
    assert np.median(np.maximum.reduceat(pr.bottom_cm, pr.offsets[:-1])) == 141.5
    assert pr.bd_from_ptf.mean() > 0.99
    assert pr.da_usable.all()
    assert np.all(np.diff(pr.offsets) > 2)
    for i in range(pr.n_profiles):  # the vectorised DA cleaning equals the per-profile reference
        s = pr.layer_slice(i)
        mask, _ = P.clean_observations(pr.node_depth_m[s], pr.soc_density_g_m3[s])
        assert np.array_equal(mask, pr.obs_usable[s])
    assert int(pr.obs_usable.sum()) == 3804 - 14  # 14 layers with OC = 0 are dropped by the DA cleaning
    # AU1 has a single horizon row without depths: the reader dropped it, and the ledger says so
    au1 = led.entry("AU1")
    assert au1.outcome == "rejected" and any("reader dropped 1 row" in n for n in au1.notes)


def test_afsp_screening_counts(shared_data: Path) -> None:
    t = R.read_afsp(shared_data / "gsif_afsp_africa_profiles")
    res = P.screen_profiles(t)
    pr, led = res.profiles, res.ledger
    assert pr.n_profiles == 8830 and led.n_kept == 8830
    assert pr.n_layers == 37358  # LICENSE_ATTRIBUTION.md: 8,830 profiles / 37,358 layers
    assert len(led) == 26270 and led.unaccounted(t.input_profile_ids) == []
    assert led.reason_counts() == {"too_few_layers": 16774, "too_shallow": 16252}
    assert np.median(pr.layers_per_profile) == 4
    assert np.median(np.maximum.reduceat(pr.bottom_cm, pr.offsets[:-1])) == 120
    assert pr.bd_from_ptf.mean() == pytest.approx(0.83, abs=0.01)  # 83 % of layers lack BD
    # the DA cleaning would skip 4 of them (2 with only zero observations)
    assert int((~pr.da_usable).sum()) == 4
    for i in np.flatnonzero(~pr.da_usable):
        s = pr.layer_slice(int(i))
        assert P.clean_observations(pr.node_depth_m[s], pr.soc_density_g_m3[s])[1] != ""
    assert P.screen_profiles(t, da_cleaning=True).ledger.n_kept == 8826


def test_ncscd_screening(shared_data: Path) -> None:
    t = R.read_ncscd_pedons(shared_data / "ncscd_pedons_hugelius2013")
    res = P.screen_profiles(t)
    assert len(res.ledger) == 524 and res.ledger.n_kept == 519
    assert res.ledger.reason_counts() == {"too_few_layers": 5}
    pr = res.profiles
    assert not pr.bd_from_ptf.any() and np.isnan(pr.bd_g_cm3).all()
    assert not pr.coarse_missing.any()
    assert np.array_equal(pr.soc_density_g_m3[pr.layer_slice(0)],
                          t.layers["soc_density_g_m3"][t.offsets[0]:t.offsets[1]])


# ====================================================================================== container
def test_profiles_arrays_round_trip(isis_screened: tuple) -> None:
    pr = isis_screened[1].profiles
    arr = pr.to_arrays()
    for k, a in arr.items():
        assert isinstance(a, np.ndarray) and a.dtype.kind in "fiuS", k
    assert arr["offsets"].shape == (647,) and arr["top_cm"].shape == (3804,)
    assert np.allclose(arr["node_depth_m"], (arr["top_cm"] + arr["bottom_cm"]) / 200.0)
    back = P.Profiles.from_arrays(arr)
    for k in ("profile_id", "source", "lat", "lon", "offsets", "top_cm", "bottom_cm", "soc_g_per_kg",
              "bd_g_cm3", "coarse_pct", "soc_density_g_m3", "bd_from_ptf", "coarse_missing", "obs_usable"):
        a, b = getattr(back, k), getattr(pr, k)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), k
    assert back.profile_id.dtype.kind == "U" and back.bd_from_ptf.dtype == bool


def test_profiles_take_concatenate_and_validation(isis_screened: tuple) -> None:
    pr = isis_screened[1].profiles
    sub = pr.take([5, 2])
    assert list(sub.profile_id) == [pr.profile_id[5], pr.profile_id[2]]
    assert np.array_equal(sub.soc_density_g_m3[sub.layer_slice(0)], pr.soc_density_g_m3[pr.layer_slice(5)])
    both = P.Profiles.concatenate([sub, pr])
    assert both.n_profiles == 648 and both.n_layers == sub.n_layers + 3804
    assert pr.index_of(str(pr.profile_id[7])) == 7
    arr = pr.to_arrays()
    arr["offsets"] = arr["offsets"][:-1]
    with pytest.raises(ValueError, match="offsets"):
        P.Profiles.from_arrays(arr)
    empty = pr.take([])
    assert empty.n_profiles == 0 and empty.n_layers == 0
    assert P.Profiles.from_arrays(empty.to_arrays()).n_profiles == 0


def test_ledger_arrays(isis_screened: tuple) -> None:
    led = isis_screened[1].ledger
    arr = led.to_arrays()
    assert arr["profile_id"].shape == (785,) and int(arr["kept"].sum()) == 646
    assert all(a.dtype.kind in "iuS" for a in arr.values())
    assert "646 kept" in led.summary()
