"""Tests of prodampi.io.readers on the real public data in ../shared/data and on files written here."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from prodampi.io import readers as R
from prodampi.io.tables import _iter_csv
from prodampi.soil.forcing import Forcing
from prodampi.soil.layers import DZ_M

ISIS = "gsif_isis_global_profiles"
AFSP = "gsif_afsp_africa_profiles"
NCSCD = "ncscd_pedons_hugelius2013"


def _lines(path: Path) -> list[str]:
    op = gzip.open if path.name.endswith(".gz") else open
    with op(path, "rt", encoding="latin-1", newline="") as fh:
        return fh.read().splitlines()


@pytest.fixture(scope="module")
def isis(shared_data: Path) -> R.ProfileTable:
    return R.read_isis(shared_data / ISIS)


@pytest.fixture(scope="module")
def afsp(shared_data: Path) -> R.ProfileTable:
    return R.read_afsp(shared_data / AFSP)


@pytest.fixture(scope="module")
def ncscd(shared_data: Path) -> R.ProfileTable:
    return R.read_ncscd_pedons(shared_data / NCSCD)


# ====================================================================================== ISIS / AfSP
def test_isis_loads_all_sites_and_reports_bad_rows(isis: R.ProfileTable, shared_data: Path) -> None:
    assert isis.n_profiles == 785
    assert len(isis.input_profile_ids) == 785
    assert isis.not_loaded == {}
    # 5,602 horizons: 65 without depths and 24 with bottom <= top are rejected, the rest load
    rows_dropped = {(r.file, r.row) for r in isis.rejections if r.scope == "row"}
    assert isis.n_layers + len(rows_dropped) == 5602
    assert isis.n_layers == 5513
    lines = _lines(shared_data / ISIS / "isis_horizons.csv")
    header = lines[0].split(",")
    for r in isis.rejections:
        assert r.file.endswith("isis_horizons.csv")
        fields = lines[r.row - 1].split(",")  # the reported row is the line holding that id and value
        assert fields[0] == r.profile_id
        assert fields[header.index(r.column)] == r.value
        assert f"row {r.row}" in r.message() and repr(r.column) in r.message()


def test_isis_specific_rejections(isis: R.ProfileTable) -> None:
    by = isis.rejections_by_profile()
    ke15 = [r for r in by["KE15"] if "inverted" in r.reason]  # 3 -> 0 cm with OC 112.7 g/kg
    assert len(ke15) == 1 and ke15[0].column == "LHDICM" and ke15[0].scope == "row"
    # negative texture codes (-5 % sand, -2 % silt) drop the value only: the layer keeps its OC
    sand = [r for r in by["ID27"] if r.column == "SNDPPT"]
    assert sand and sand[0].scope == "value" and "outside" in sand[0].reason
    i = int(np.flatnonzero(isis.profile_id == "ID27")[0])
    s = slice(isis.offsets[i], isis.offsets[i + 1])
    top = isis.layers["top_cm"][s]
    assert np.isnan(isis.layers["sand_pct"][s][top == 0]).all()
    assert isis.layers["soc_g_per_kg"][s][top == 0][0] == pytest.approx(477.0)


def test_isis_organic_layers_with_negative_depth_load(isis: R.ProfileTable) -> None:
    i = int(np.flatnonzero(isis.profile_id == "SE15")[0])
    s = slice(isis.offsets[i], isis.offsets[i + 1])
    top, bot, soc = isis.layers["top_cm"][s], isis.layers["bottom_cm"][s], isis.layers["soc_g_per_kg"][s]
    j = np.flatnonzero(top == -5)
    assert j.size == 1 and bot[j[0]] == 0 and soc[j[0]] == pytest.approx(325.0)


def test_isis_units_and_coordinates(isis: R.ProfileTable) -> None:
    assert np.all(np.abs(isis.lat) <= 90) and np.all(np.abs(isis.lon) <= 180)
    i = int(np.flatnonzero(isis.profile_id == "AU10")[0])
    assert isis.lat[i] == pytest.approx(-36.9) and isis.lon[i] == pytest.approx(140.933)
    bd = isis.layers["bd_g_cm3"]
    assert np.nanmin(bd) == pytest.approx(0.28) and np.nanmax(bd) == pytest.approx(1.86)  # g/cm3
    assert np.all(np.diff(isis.layer_profile) >= 0)
    assert np.array_equal(isis.layer_profile_id[:1], isis.profile_id[isis.layer_profile[:1]])


def test_afsp_loads(afsp: R.ProfileTable) -> None:
    assert afsp.n_profiles == 26270
    assert afsp.n_layers == 87693 - 2  # two inverted horizons
    assert len(afsp.input_profile_ids) == 26270
    assert all("inverted" in r.reason and r.scope == "row" for r in afsp.rejections)
    assert [(r.profile_id, r.row, r.column) for r in afsp.rejections] == [
        ("SO 28564_17", 73538, "LHDICM"), ("SO 28564_H29", 73730, "LHDICM")]
    bd = afsp.layers["bd_g_cm3"]
    assert 0.1 < np.nanmin(bd) and np.nanmax(bd) <= 3.0


def _same_content(a: R.ProfileTable, b: R.ProfileTable) -> None:
    """Equal profiles, layers, rows and rejections (file names aside)."""
    assert a.source == b.source
    for k in ("profile_id", "lat", "lon", "layer_profile", "layer_row", "profile_row"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    assert a.layers.keys() == b.layers.keys()
    for k in a.layers:
        assert np.array_equal(a.layers[k], b.layers[k], equal_nan=True), k
    assert a.input_profile_ids == b.input_profile_ids and a.not_loaded == b.not_loaded
    assert [(r.row, r.column, r.value, r.reason, r.profile_id, r.scope) for r in a.rejections] == [
        (r.row, r.column, r.value, r.reason, r.profile_id, r.scope) for r in b.rejections]


def test_deck_readers_read_the_named_files_with_their_own_mapping(
        tmp_path: Path, shared_data: Path, isis: R.ProfileTable, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(shared_data / ISIS / "isis_sites.csv", tmp_path / "a" / "s.csv")
    shutil.copy(shared_data / ISIS / "isis_horizons.csv", tmp_path / "b" / "h.csv")
    monkeypatch.chdir(tmp_path)  # relative deck paths resolve against the working directory
    t = R.read_isis_deck({"format": "isis", "sites": "a/s.csv", "horizons": "b/h.csv", "ncscd": None})
    assert t.files == (str((tmp_path / "a" / "s.csv").resolve()), str((tmp_path / "b" / "h.csv").resolve()))
    _same_content(t, isis)
    # AfSP picks the AfSP mapping, and reads as prepare read the deck's files before the registry
    sites, hor = shared_data / AFSP / "afsp_sites.csv.gz", shared_data / AFSP / "afsp_horizons.csv.gz"
    t = R.read_afsp_deck({"sites": str(sites), "horizons": str(hor)})
    mapping = json.loads(json.dumps(R.AFSP_MAPPING))
    mapping["sites"]["file"] = str(sites.resolve())
    mapping["horizons"]["file"] = str(hor.resolve())
    ref = R.read_profile_table(sites.resolve().parent, mapping)
    assert t.source == "afsp" and t.files == ref.files
    _same_content(t, ref)
    assert [r.file for r in t.rejections] == [r.file for r in ref.rejections]
    # the format registry dispatches to these two readers
    from prodampi.io.formats import get_format

    assert get_format("isis").load() is R.read_isis_deck and get_format("afsp").load() is R.read_afsp_deck


def test_missing_file_and_column_raise_reader_error(tmp_path: Path, shared_data: Path) -> None:
    with pytest.raises(R.ReaderError, match="isis_sites.csv"):
        R.read_isis(tmp_path)
    lines = _lines(shared_data / ISIS / "isis_sites.csv")
    hdr = lines[0].replace("LATWGS84", "LATITUDE")
    (tmp_path / "isis_sites.csv").write_text("\n".join([hdr, *lines[1:20]]) + "\n")
    hor = _lines(shared_data / ISIS / "isis_horizons.csv")[:50]
    (tmp_path / "isis_horizons.csv").write_text("\n".join(hor))
    with pytest.raises(R.ReaderError) as exc:
        R.read_isis(tmp_path)
    assert "isis_sites.csv" in str(exc.value) and "LATWGS84" in str(exc.value)
    assert isinstance(exc.value, R.InputDataError)


def test_new_source_needs_only_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text("id;y;x\nP1;10.5;20.25\nP2;-95;3\n")
    (tmp_path / "h.csv").write_text("id;a;b;oc_pct;bd_kg_m3\nP1;0;10;1.2;1300\nP1;10;30;0.8;\nP1;-3;0;2;\n"
                                    "P2;0;10;1;1000\nP3;0;5;1;1000\n")
    mapping = {
        "name": "mine", "delimiter": ";",
        "sites": {"file": "s.csv", "columns": {"profile_id": "id", "lat": "y", "lon": "x"}},
        "horizons": {"file": "h.csv", "columns": {"profile_id": "id", "top_cm": "a", "bottom_cm": "b",
                                                  "soc_g_per_kg": "oc_pct", "bd_g_cm3": "bd_kg_m3"}},
        "factors": {"soc_g_per_kg": 10.0, "bd_g_cm3": 1e-3},  # % -> g/kg, kg/m3 -> g/cm3
    }
    t = R.read_profile_table(tmp_path, mapping)
    assert t.source == "mine" and list(t.profile_id) == ["P1"]
    assert np.allclose(t.layers["soc_g_per_kg"], [12.0, 8.0])
    assert t.layers["bd_g_cm3"][0] == pytest.approx(1.3) and np.isnan(t.layers["bd_g_cm3"][1])
    msgs = [r.message() for r in t.rejections]
    # default min_depth_cm = 0: the -3 cm layer is a negative depth here
    assert any("h.csv, row 4, column 'a'" in m and "negative depth" in m for m in msgs)
    assert any("s.csv, row 3, column 'y'" in m and "outside" in m for m in msgs)
    assert t.not_loaded["P2"].startswith("site_rejected") and t.not_loaded["P3"].startswith("no_site")
    assert set(t.input_profile_ids) == {"P1", "P2", "P3"}


def test_empty_and_repeated_ids_drop_the_row(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text("id,y,x\nP1,1,2\n ,3,4\nP1,5,6\nP2,7,8\n")
    (tmp_path / "h.csv").write_text("id,a,b,oc\nP1,0,10,5\n,0,10,5\nP2,0,10,5\n")
    mapping = {"name": "ids", "sites": {"file": "s.csv", "columns": {"profile_id": "id", "lat": "y", "lon": "x"}},
               "horizons": {"file": "h.csv", "columns": {"profile_id": "id", "top_cm": "a", "bottom_cm": "b",
                                                         "soc_g_per_kg": "oc"}}}
    t = R.read_profile_table(tmp_path, mapping)
    got = [(Path(r.file).name, r.row, r.column, r.value, r.reason, r.profile_id, r.scope) for r in t.rejections]
    assert got == [("s.csv", 3, "id", " ", "missing value in required column", None, "row"),
                   ("s.csv", 4, "id", "P1", "duplicate profile id (first at row 2)", "P1", "row"),
                   ("h.csv", 3, "id", "", "missing value in required column", None, "row")]
    assert list(t.profile_id) == ["P1", "P2"] and t.lat.tolist() == [1.0, 7.0] and t.n_layers == 2
    assert t.input_profile_ids == ["P1", "P2"]
    (tmp_path / "bd.csv").write_text("SOURCEID,BLD,ORCDRC\nA,1300,10\n,1200,20\nB,1100,30\n")
    bd = R.read_bd_oc_layers(tmp_path / "bd.csv", {**R.WOSIS_BD_OC_MAPPING,
                                                   "columns": {"profile_id": "SOURCEID", "bd_g_cm3": "BLD",
                                                               "soc_g_per_kg": "ORCDRC"}})
    assert list(bd.profile_id) == ["A", "B"]
    assert [(r.row, r.column, r.reason) for r in bd.rejections] == [
        (3, "SOURCEID", "missing value in required column")]


# ====================================================================================== NCSCD
def test_ncscd_intervals_and_densities(ncscd: R.ProfileTable) -> None:
    assert ncscd.n_profiles == 524 and ncscd.rejections == []
    n_layers = np.diff(ncscd.offsets)
    assert int(np.sum(n_layers == 4)) == 355  # pedons with all four intervals (LICENSE_ATTRIBUTION.md)
    i = int(np.flatnonzero(ncscd.profile_id == "1")[0])  # Fen_Palsa_5: 10.6, 55.8, 20.2, 10.5 kg C m-2
    s = slice(ncscd.offsets[i], ncscd.offsets[i + 1])
    assert ncscd.profile_extra["name"][i] == "Fen_Palsa_5"
    assert np.array_equal(ncscd.layers["top_cm"][s], [0, 30, 100, 200])
    assert np.array_equal(ncscd.layers["bottom_cm"][s], [30, 100, 200, 300])
    assert np.array_equal(ncscd.node_depth_cm[s], [15, 65, 150, 250])
    expect = np.array([10.6 / 0.3, (55.8 - 10.6) / 0.7, 20.2 / 1.0, 10.5 / 1.0]) * 1000.0  # g C m-3
    assert np.allclose(ncscd.layers["soc_density_g_m3"][s], expect)
    assert np.isnan(ncscd.layers["soc_g_per_kg"][s]).all()
    assert not ncscd.layer_flags["below_basal_depth"][s].any()  # basal depth 220 cm
    # a pedon sampled to 105 cm: its 200-300 cm interval is an extrapolation
    j = int(np.flatnonzero(ncscd.profile_id == "2")[0])
    sj = slice(ncscd.offsets[j], ncscd.offsets[j + 1])
    assert ncscd.profile_extra["basal_depth_cm"][j] == 105
    assert list(ncscd.layer_flags["below_basal_depth"][sj]) == [False, False, False, True]
    # median densities as documented in world.md §8 (kg C m-3): 0-30 46, 30-100 42, 100-200 23
    d = ncscd.layers["soc_density_g_m3"] / 1000.0
    for (t, b), med in {(0, 30): 46, (30, 100): 42, (100, 200): 23}.items():
        m = (ncscd.layers["top_cm"] == t) & (ncscd.layers["bottom_cm"] == b)
        assert np.median(d[m]) == pytest.approx(med, rel=0.03)


def test_ncscd_bad_values(tmp_path: Path, shared_data: Path) -> None:
    lines = _lines(shared_data / NCSCD / R.NCSCD_MAPPING["file"])
    rows = [ln.split("\t") for ln in lines[:6]]
    rows[1][12], rows[1][13] = "30.0", "20.0"  # 0-100 smaller than 0-30
    rows[2][14] = "-4"  # negative stock
    rows[3][8] = "north"  # text latitude
    rows[4][0] = rows[5][0]  # duplicate Pedon_Id_nr
    p = tmp_path / "pedons.txt"
    p.write_text("\r\n".join("\t".join(r) for r in rows) + "\r\n", encoding="latin-1")
    t = R.read_ncscd_pedons(p)
    msgs = {(r.row, r.column, r.scope): r.reason for r in t.rejections}
    assert "smaller than" in msgs[(2, "SOCC 0-100 cm (kg C m-2)", "value")]
    assert "negative" in msgs[(3, "SOCC 100-200 cm (kg C m-2)", "value")]
    assert "text" in msgs[(4, "Lat", "row")]
    assert "duplicate" in msgs[(6, "Pedon_Id_nr", "row")]
    assert list(t.profile_id) == ["1", "2", "5"]
    s = slice(t.offsets[0], t.offsets[1])
    assert list(t.layers["top_cm"][s]) == [0, 100, 200]  # only the 0-30 cm stock kept on top


# ====================================================================================== BD/OC, covariates
def test_bd_oc_layers_units(shared_data: Path) -> None:
    t = R.read_bd_oc_layers(shared_data / "wosis_bd_oc_layers")
    assert t.n_layers == 85427 and t.rejections == []
    assert t.bd_g_cm3.min() == pytest.approx(0.1) and t.bd_g_cm3.max() == pytest.approx(2.5)  # from kg/m3
    assert t.bd_g_cm3[0] == pytest.approx(1.4) and t.soc_g_per_kg[0] == pytest.approx(31.0)
    assert t.depth_cm[0] == pytest.approx(4.5) and t.profile_id[0] == "AO_W3_0024"


@pytest.fixture(scope="module")
def grid(shared_data: Path) -> R.CovariateGrid:
    return R.read_covariate_grid(shared_data / "afgrid20_africa_covariates")


def test_covariate_grid(grid: R.CovariateGrid) -> None:
    assert grid.n_cells == 45997 and grid.values.shape == (45997, 38) and len(grid.names) == 38
    assert "lat" not in grid.names and "x_laea" not in grid.names
    k = grid.names.index("DEMSRE0a")
    assert grid.units[k] == "m" and grid.values[0, k] == 49
    assert grid.units[grid.names.index("PREGSM0a")] == "mm yr-1"
    assert grid.x_laea_m[0] == -968000 and grid.lat[0] == pytest.approx(37.2536)
    c = grid.names.index("SGEUSG0x")
    assert grid.categories["SGEUSG0x"][int(grid.values[0, c])] == "T"
    assert np.isnan(grid.values[:, grid.names.index("PREGSM0a")]).sum() == 6
    assert np.isnan(grid.values[:, grid.names.index("L3POBI0a")]).sum() == 227


def test_covariate_nearest_cell(grid: R.CovariateGrid, afsp: R.ProfileTable) -> None:
    sel = np.array([0, 123, 45000])
    idx, dist = grid.nearest(grid.lat[sel], grid.lon[sel])
    assert np.array_equal(idx, sel) and np.allclose(dist, 0, atol=1e-6)
    # a point 5 km north of a cell centre maps to that cell; Paris is far from every African cell
    idx, dist = grid.nearest([grid.lat[123] + 5 / 111.2, 48.85], [grid.lon[123], 2.35], max_distance_km=20)
    assert idx[0] == 123 and dist[0] == pytest.approx(5.0, abs=0.1) and idx[1] == -1
    # the African profiles sit on the grid: > 95 % lie within half a cell diagonal (14.1 km, + LAEA
    # distortion) of their nearest cell centre; the rest are coastal sites beyond the land cells
    _, d = grid.nearest(afsp.lat, afsp.lon)
    assert np.median(d) < 10.0 and np.mean(d <= 15.0) > 0.95
    vals = grid.at_sites(afsp.lat[:5], afsp.lon[:5])
    assert vals.shape == (5, 38)


# ====================================================================================== CESM2 history
def _fields(rng: np.random.Generator, nlat: int, nlon: int, nlev: int = 20) -> dict[str, np.ndarray]:
    f: dict[str, np.ndarray] = {}
    for name, (kind, _kw, _u) in R.CESM2_VARIABLES.items():
        if kind == "level":
            f[name] = rng.uniform(0.05, 1.0, (12, nlev, nlat, nlon))
        elif kind == "surface":
            f[name] = rng.uniform(0.0, 4.0, (12, nlat, nlon))
        else:
            f[name] = rng.integers(1, 21, (nlat, nlon)).astype(float)
    f["TSOI"] = 250.0 + 40.0 * f["TSOI"]
    f["CWD_INPUT_ACC_VECTOR"] *= 10.0
    return f


@pytest.fixture()
def history(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    pytest.importorskip("netCDF4")
    rng = np.random.default_rng(42)
    lat = np.linspace(-87.5, 87.5, 8)  # 25 deg spacing
    lon = np.arange(0.0, 360.0, 40.0)  # 0..320 deg E, CESM convention
    f = _fields(rng, lat.size, lon.size, nlev=25)
    f["TSOI"][:, :, 3, 4] = np.nan  # an ocean-like cell with fill values
    p = R.write_cesm2_history(tmp_path / "clm5.h0.nc", lat, lon, f)
    return p, lat, lon, f


def test_cesm2_round_trip(history: tuple) -> None:
    path, lat, lon, f = history
    slat = np.array([10.0, -50.0, 87.0, -87.5])
    slon = np.array([-175.0, 41.0, 359.0, 160.0])
    ilat, ilon = R.nearest_cell_indices(lat, lon, slat, slon)
    assert list(ilat) == [4, 1, 7, 0]
    assert list(ilon) == [5, 1, 0, 4]  # -175 == 185 E -> 200 E (index 5); 359 E wraps to 0 E
    fields = R.read_cesm2_fields(path, slat, slon)
    for name, (kind, kw, _u) in R.CESM2_VARIABLES.items():
        got = fields[kw]
        for s in range(slat.size):
            want = f[name][..., ilat[s], ilon[s]]
            if kind == "level":
                want = want[:, :20].T  # first 20 of 25 levels, (layer, month)
            assert np.array_equal(got[s], want), (name, s)
    forcing = R.read_cesm2_forcing(path, slat, slon)
    assert isinstance(forcing, Forcing) and forcing.n_sites == 4
    for p, name in enumerate(["CWD", "LITR1", "LITR2", "LITR3"]):
        acc = f[f"{name}_INPUT_ACC_VECTOR"]
        for s in range(4):
            col = sum(acc[m, z, ilat[s], ilon[s]] * DZ_M[z] for m in range(12) for z in range(20))
            assert forcing.litter_input[s, p] == pytest.approx(col, rel=1e-12)
    assert np.array_equal(forcing.nbedrock, f["nbedrock"][ilat, ilon].astype(int))
    assert np.array_equal(forcing.altmax_m[1], f["ALTMAX"][:, ilat[1], ilon[1]])


def test_cesm2_nearest_cell_ties_take_lowest_index() -> None:
    glat = np.array([0.0, 1.0, 2.0])
    glon = np.array([10.0, 20.0, 350.0])
    ilat, ilon = R.nearest_cell_indices(glat, glon, [0.5, 1.5], [15.0, 0.0])
    assert list(ilat) == [0, 1]  # exactly between two centres
    assert list(ilon) == [0, 0]  # 0 E is 10 deg from both 10 E and 350 E
    ilat, ilon = R.nearest_cell_indices(glat[::-1], glon, [0.5], [np.nan])
    assert ilat[0] == -1 and ilon[0] == -1


def test_cesm2_fill_values_become_nan(history: tuple) -> None:
    path, lat, lon, _f = history
    fo = R.read_cesm2_forcing(path, [lat[3]], [lon[4]])
    assert np.isnan(fo.tsoi_k).all()
    ok, reasons = fo.check()
    assert not ok[0] and "tsoi_k" in reasons[0]


def test_cesm2_missing_variable_or_dimension(tmp_path: Path) -> None:
    netCDF4 = pytest.importorskip("netCDF4")
    rng = np.random.default_rng(1)
    lat, lon = np.array([0.0, 10.0]), np.array([0.0, 10.0, 20.0])
    f = _fields(rng, 2, 3)
    g = dict(f)
    del g["FPI_vr"]
    p = R.write_cesm2_history(tmp_path / "nofpi.nc", lat, lon, g)
    with pytest.raises(R.ReaderError) as exc:
        R.read_cesm2_forcing(p, [5.0], [5.0])
    assert "FPI_vr" in str(exc.value) and "nofpi.nc" in str(exc.value)
    # the same variable supplied by a second file is found there
    q = R.write_cesm2_history(tmp_path / "fpi.nc", lat, lon, {"FPI_vr": f["FPI_vr"]})
    fo = R.read_cesm2_forcing([p, q], [5.0], [5.0])
    assert np.array_equal(fo.fpi[0], f["FPI_vr"][:, :, 0, 0].T)
    # TSOI without a level dimension
    g = dict(f)
    del g["TSOI"]
    p2 = R.write_cesm2_history(tmp_path / "flat_tsoi.nc", lat, lon, g)
    with netCDF4.Dataset(p2, "a") as ds:
        v = ds.createVariable("TSOI", "f8", ("time", "lat", "lon"))
        v.units = "K"
        v[:] = 280.0
    with pytest.raises(R.ReaderError, match=r"flat_tsoi\.nc.*TSOI.*level"):
        R.read_cesm2_forcing(p2, [5.0], [5.0])


def test_cesm2_units_and_level_checks(tmp_path: Path) -> None:
    pytest.importorskip("netCDF4")
    rng = np.random.default_rng(2)
    lat, lon = np.array([0.0, 10.0]), np.array([0.0, 10.0])
    f = _fields(rng, 2, 2)
    tc = f["TSOI"] - 273.15
    p = R.write_cesm2_history(tmp_path / "degc.nc", lat, lon, {**f, "TSOI": tc}, units={"TSOI": "degC"})
    fo = R.read_cesm2_forcing(p, [0.0], [0.0])
    assert np.allclose(fo.tsoi_k[0], f["TSOI"][:, :, 0, 0].T)
    p = R.write_cesm2_history(tmp_path / "wm2.nc", lat, lon, f, units={"TSOI": "W/m^2"})
    with pytest.raises(R.ReaderError, match=r"wm2\.nc.*TSOI.*units"):
        R.read_cesm2_forcing(p, [0.0], [0.0])
    short = {k: (v[:, :15] if v.ndim == 4 else v) for k, v in f.items()}
    p = R.write_cesm2_history(tmp_path / "short.nc", lat, lon, short)
    with pytest.raises(R.ReaderError, match="at least 20"):
        R.read_cesm2_forcing(p, [0.0], [0.0])
    with pytest.raises(R.ReaderError, match="not found"):
        R.read_cesm2_forcing(tmp_path / "absent.nc", [0.0], [0.0])


def test_reader_error_names_file_for_empty_csv(tmp_path: Path) -> None:
    (tmp_path / "isis_sites.csv").write_text("")
    (tmp_path / "isis_horizons.csv").write_text("SOURCEID,UHDICM\n")
    with pytest.raises(R.ReaderError, match="isis_sites.csv.*empty"):
        R.read_isis(tmp_path)


def test_rejection_message_format() -> None:
    r = R.Rejection("f.csv", 7, "BLD", "x", "text in numeric column", "P1", "value")
    assert str(r) == "f.csv, row 7, column 'BLD': text in numeric column (value 'x'; value dropped)"


def test_write_then_read_csv_helpers_roundtrip(tmp_path: Path) -> None:
    """A gzip copy of a table reads the same as the plain one (rows numbered identically)."""
    src = tmp_path / "plain"
    gz = tmp_path / "gz"
    src.mkdir()
    gz.mkdir()
    rows = [["SOURCEID", "LONWGS84", "LATWGS84"], ["A", "1", "2"], ["B", "3", "x"]]
    hrows = [["SOURCEID", "UHDICM", "LHDICM"], ["A", "0", "10"], ["A", "10", "5"]]
    for d, op in ((src, open), (gz, gzip.open)):
        for name, rr in (("s.csv", rows), ("h.csv", hrows)):
            fn = d / (name + (".gz" if d is gz else ""))
            with op(fn, "wt", newline="") as fh:
                csv.writer(fh).writerows(rr)
    scols = {"profile_id": "SOURCEID", "lon": "LONWGS84", "lat": "LATWGS84"}
    m = {"sites": {"file": "s.csv", "columns": scols},
         "horizons": {"file": "h.csv", "columns": {"profile_id": "SOURCEID", "top_cm": "UHDICM",
                                                   "bottom_cm": "LHDICM"}}}
    a = R.read_profile_table(src, m)
    mg = {"sites": {**m["sites"], "file": "s.csv.gz"}, "horizons": {**m["horizons"], "file": "h.csv.gz"}}
    b = R.read_profile_table(gz, mg)
    key = [(r.row, r.column, r.reason) for r in a.rejections]
    assert key == [(r.row, r.column, r.reason) for r in b.rejections]
    assert [(r.row, r.column) for r in a.rejections] == [(3, "LATWGS84"), (3, "LHDICM")]


def test_stray_quote_rejects_its_row_alone(tmp_path: Path, shared_data: Path, isis: R.ProfileTable) -> None:
    """Issue 9: one stray ``"`` in a horizon row used to swallow ~3,900 following rows into one rejected
    record.  Now that line alone is rejected (with its line number) and every other row reads as before."""
    src = shared_data / ISIS
    d = tmp_path / "isis"
    shutil.copytree(src, d)
    lines = _lines(src / "isis_horizons.csv")
    k = 100  # 1-based line number of the damaged row
    bad = lines[k - 1].split(",")
    bad[3] = '"' + bad[3]  # an opening quote that is never closed
    lines[k - 1] = ",".join(bad)
    (d / "isis_horizons.csv").write_text("\n".join(lines) + "\n", encoding="latin-1")
    t = R.read_isis(d)
    new = [r for r in t.rejections if (r.file.endswith("isis_horizons.csv"), r.row) not in
           {(o.file.endswith("isis_horizons.csv"), o.row) for o in isis.rejections}]
    assert [(r.row, "unbalanced quote" in r.reason) for r in new] == [(k, True)]
    assert t.n_layers == isis.n_layers - 1
    assert t.n_profiles == isis.n_profiles


def test_quoted_newline_is_one_record(tmp_path: Path) -> None:
    """A quoted field that holds a newline is one record spanning two lines, reported at its first line."""
    p = tmp_path / "t.csv"
    p.write_text('id,name,value\n1,"two\nlines",3.5\n2,plain,4\n3,"bad,5\n4,ok,6\n', encoding="utf-8")
    rej: list[R.Rejection] = []
    rows = list(_iter_csv(p, {"profile_id": "id", "name": "name", "v": "value"}, rejections=rej))
    assert [(line, raw["profile_id"], raw["v"]) for line, raw in rows] == [(2, "1", "3.5"), (4, "2", "4"),
                                                                           (6, "4", "6")]
    assert rows[0][1]["name"] == "two\nlines"
    assert [(r.row, "unbalanced quote" in r.reason) for r in rej] == [(5, True)]


def test_implausible_depths_reject_the_profile_with_depth_units(tmp_path: Path, shared_data: Path) -> None:
    """A profile with a layer ending below 1,500 cm (depths in mm) is rejected alone with ``depth_units``; a
    table whose profiles mostly look like mm fails naming the depth column."""
    from prodampi.data.profiles import screen_profiles
    from prodampi.errors import InputDataError

    src = shared_data / ISIS
    d = tmp_path / "isis"
    shutil.copytree(src, d)
    lines = _lines(src / "isis_horizons.csv")
    header = lines[0].split(",")
    ib = header.index("LHDICM")
    base = screen_profiles(R.read_isis(src))
    pid = str(base.profiles.profile_id[0])  # a profile the screening keeps
    out = [lines[0]]
    for ln in lines[1:]:
        f = ln.split(",")
        if f[0] == pid and f[ib]:
            f[ib] = str(float(f[ib]) * 10.0 + 2000.0)  # this one profile in mm (and deep)
        out.append(",".join(f))
    (d / "isis_horizons.csv").write_text("\n".join(out) + "\n", encoding="latin-1")
    res = screen_profiles(R.read_isis(d))
    by_id = {e.profile_id: e for e in res.ledger.entries}
    assert "depth_units" in by_id[pid].reason_codes
    assert by_id[pid].reason_codes == ("depth_units",)
    assert res.profiles.n_profiles == base.profiles.n_profiles - 1
    mm = [lines[0]]
    for ln in lines[1:]:
        f = ln.split(",")
        for j in (header.index("UHDICM"), ib):
            f[j] = str(float(f[j]) * 10.0) if f[j] else f[j]
        mm.append(",".join(f))
    (d / "isis_horizons.csv").write_text("\n".join(mm) + "\n", encoding="latin-1")
    with pytest.raises(InputDataError, match="bottom_cm.*look like mm"):
        screen_profiles(R.read_isis(d))
