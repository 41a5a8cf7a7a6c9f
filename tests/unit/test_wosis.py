"""Tests of prodampi.io.wosis: the WoSIS 2019-09 and 2023-12 snapshot readers (``wosis.md``), screened as
prepare screens them.  The fixtures (tests/data/wosis2019, wosis2023; made-up values) are described, profile
by profile, in their README.md."""

from __future__ import annotations

import gzip
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from prodampi.data import profiles as P
from prodampi.deck import validate_deck
from prodampi.io import readers as R
from prodampi.io import wosis as W

DATA = Path(__file__).resolve().parents[1] / "data"
FIX19 = DATA / "wosis2019"
FIX23 = DATA / "wosis2023"
CHEM = "wosis_201909_layers_chemical.tsv"
PHYS = "wosis_201909_layers_physical.tsv"
PROF = "wosis_201909_profiles.tsv"


def screen_as_prepare(table: R.ProfileTable) -> P.ScreeningResult:
    """``screen_profiles`` with the deck's defaults, exactly as ``stages/prepare.py::_screen`` calls it."""
    deck = validate_deck({"run_dir": "unused"})
    s, p = deck["prepare"]["screening"], deck["prepare"]["ptf"]
    return P.screen_profiles(table, min_layers_exclusive=s["min_layers"] - 1, min_max_depth_cm=s["min_bottom_cm"],
                             ptf=(p["a"], p["b"], p["c"]))


def layers_of(res: P.ScreeningResult, pid: str) -> dict[str, np.ndarray]:
    pr = res.profiles
    s = pr.layer_slice(pr.index_of(pid))
    return {c: getattr(pr, c)[s] for c in ("top_cm", "bottom_cm", "soc_g_per_kg", "bd_g_cm3", "coarse_pct",
                                           "soc_density_g_m3", "bd_from_ptf", "coarse_missing", "bd_source")}


def rejections(table: R.ProfileTable, file: str, row: int) -> list[R.Rejection]:
    return [r for r in table.rejections if Path(r.file).name == file and r.row == row]


def ptf(soc: float) -> float:  # proda_nn_maps.md §2.3, written out independently
    return 0.32 + 1.30 * math.exp(-0.0089 * 1.724 * soc)


@pytest.fixture(scope="module")
def t19() -> W.WosisProfileTable:
    return W.read_wosis2019(FIX19)


@pytest.fixture(scope="module")
def r19(t19: W.WosisProfileTable) -> P.ScreeningResult:
    return screen_as_prepare(t19)


# ====================================================================================== 2019: what is read
def test_2019_profiles_and_layers_read(t19: W.WosisProfileTable) -> None:
    assert t19.source == "wosis2019"
    assert [Path(f).name for f in t19.files] == [PROF, CHEM, PHYS]
    assert t19.profile_id.tolist() == ["100001", "100002", "100003", "100004", "100005", "100008"]
    i = t19.profile_id.tolist().index("100001")
    assert (t19.lat[i], t19.lon[i]) == (-1.2345, 36.789)  # latitude = column 6, longitude = column 7
    assert t19.profile_extra["country_id"][i] == "KE" and t19.profile_extra["dsds_cm"][i] == 150.0
    assert t19.input_profile_ids == ["100001", "100002", "100003", "100004", "100005", "100006", "100008",
                                     "100007"]
    # layers loaded per profile: 100001 4, 100002 3, 100003 3, 100004 3 (one only in the physical file), 100005 3
    counts = dict(zip(t19.profile_id.tolist(), np.diff(t19.offsets).tolist()))
    assert counts == {"100001": 4, "100002": 3, "100003": 3, "100004": 3, "100005": 3, "100008": 0}
    phys_only = (t19.layer_labels["layer_id"] == "500034")
    assert phys_only.sum() == 1 and np.isnan(t19.layers["soc_g_per_kg"][phys_only][0])
    assert t19.layers["bd_g_cm3"][phys_only][0] == 1.6
    # optional properties go to their canonical columns
    j = np.flatnonzero(t19.layer_labels["layer_id"] == "500002")[0]
    assert t19.layers["ph_h2o"][j] == 6.1 and t19.layers["clay_pct"][j] == 35.0
    assert t19.layer_labels["layer_name"][j] == "Ap"


def test_2019_ledger_by_reason(r19: P.ScreeningResult) -> None:
    led = r19.ledger
    assert led.unaccounted(["100001", "100002", "100003", "100004", "100005", "100006", "100007", "100008"]) == []
    assert led.ids("kept") == ["100001", "100002", "100005"]
    assert led.entry("100003").reason_codes == ("too_shallow",)
    assert led.entry("100004").reason_codes == ("too_few_layers",)
    assert led.entry("100006").reason_codes == ("site_rejected",)
    assert "latitude" in led.entry("100006").reasons[0] and "abc" in led.entry("100006").reasons[0]
    assert led.entry("100007").reason_codes == ("no_site",)
    assert led.entry("100008").reasons[0].startswith("too_few_layers: 0 layer(s)")
    assert led.reason_counts() == {"no_site": 1, "site_rejected": 1, "too_few_layers": 2, "too_shallow": 2}
    assert [led.entry(p).n_layers_kept for p in ("100001", "100002", "100005")] == [4, 3, 3]
    assert r19.profiles.source.tolist() == ["wosis2019"] * 3


# ====================================================================================== 2019: layer rules
def test_litter_layer_dropped(t19: W.WosisProfileTable, r19: P.ScreeningResult) -> None:
    for file in (CHEM, PHYS):
        (rj,) = rejections(t19, file, 2)
        assert rj.column == "litter" and rj.value == "t" and rj.scope == "row" and rj.profile_id == "100001"
        assert rj.reason.startswith("litter layer")
    assert not np.any(layers_of(r19, "100001")["top_cm"] < 0)
    assert "reader dropped 2 row(s): litter layer" in r19.ledger.entry("100001").notes


def test_negative_depth_dropped(t19: W.WosisProfileTable, r19: P.ScreeningResult) -> None:
    for file in (CHEM, PHYS):  # -8 to 0 cm, not flagged as litter: lower <= 0
        (rj,) = rejections(t19, file, 7)
        assert rj.column == "lower_depth" and rj.reason.startswith("negative depth") and rj.profile_id == "100002"
    assert layers_of(r19, "100002")["top_cm"].tolist() == [0.0, 30.0, 50.0]
    assert "negative depth" in r19.ledger.entry("100002").notes[0]


def test_inverted_depth_dropped(t19: W.WosisProfileTable, r19: P.ScreeningResult) -> None:
    (rj,) = rejections(t19, CHEM, 10)  # 60 to 50 cm
    assert rj.column == "lower_depth" and rj.reason.startswith("inverted depths") and rj.value == "50"
    assert "inverted depths" in r19.ledger.entry("100002").notes[0]
    assert "reader dropped 3 row(s)" in r19.ledger.entry("100002").notes[0]


def test_repeated_values(r19: P.ScreeningResult) -> None:
    lay = layers_of(r19, "100001")
    # {1:12.1,2:13.1} with orgc_value_avg 12.6: value_avg used
    assert lay["soc_g_per_kg"][0] == 12.6
    # {1:8.0;2:9.0} with orgc_value_avg empty: the mean of the repeats (';' separator)
    assert lay["soc_g_per_kg"][1] == 8.5
    notes = r19.ledger.entry("100001").notes
    assert "orgc: orgc_value_avg empty, mean of the orgc_value repeats used (1 layer(s))" in notes
    assert "orgc: repeated values, their mean (orgc_value_avg) used (1 layer(s))" in notes


def test_parse_repeats() -> None:
    assert W.parse_repeats("{1:5.4,2:8.2}") == [5.4, 8.2]
    assert W.parse_repeats("{1:22.70}") == [22.7]
    assert W.parse_repeats("{35.2;36.0}") == [35.2, 36.0]
    assert W.parse_repeats("") == [] and W.parse_repeats("{}") == []
    with pytest.raises(ValueError):
        W.parse_repeats("{1:n.d.}")


def test_bd_preference_order(t19: W.WosisProfileTable, r19: P.ScreeningResult) -> None:
    a, b = layers_of(r19, "100001"), layers_of(r19, "100002")
    assert a["bd_source"].tolist() == ["bdfiod", "bdfi33", "bdfifm", "ptf"]
    assert a["bd_g_cm3"][:3].tolist() == [1.31, 1.45, 1.52]
    assert b["bd_source"].tolist() == ["bdfiad", "bdws33+cfgr", "ptf"]
    assert b["bd_g_cm3"][0] == 1.2
    # BDFIOD 0 is invalid: dropped (value scope, naming file, row and column) and the next preference used
    (rj,) = rejections(t19, PHYS, 5)
    assert (rj.column, rj.value, rj.scope) == ("bdfiod_value_avg", "0", "value")
    # the whole table records every loaded layer's source ('' = none usable -> PTF in the screening)
    lab = dict(zip(t19.layer_labels["layer_id"].tolist(), t19.layer_labels["bd_source"].tolist()))
    assert lab["500005"] == "" and lab["500015"] == "" and lab["500013"] == "bdws33+cfgr"
    assert "bd_source: bdfi33 1, bdfifm 1, bdfiod 1, ptf 1" in r19.ledger.entry("100001").notes
    assert "bd_source: bdfiad 1, bdws33+cfgr 1, ptf 1" in r19.ledger.entry("100002").notes


def test_select_bulk_density() -> None:
    nan = math.nan
    full = {"bdfiod": 1.1, "bdfi33": 1.2, "bdfifm": 1.3, "bdfiad": 1.4, "bdwsod": 1.5, "cfgr": 10.0}
    assert W.select_bulk_density(full) == (1.1, "bdfiod")
    assert W.select_bulk_density({**full, "bdfiod": nan}) == (1.2, "bdfi33")
    assert W.select_bulk_density({**full, "bdfiod": nan, "bdfi33": nan}) == (1.3, "bdfifm")
    assert W.select_bulk_density({"bdfiad": 1.4, "bdwsod": 1.5, "cfgr": 10.0}) == (1.4, "bdfiad")
    bd, src = W.select_bulk_density({"bdwsod": 1.5, "bdws33": 1.7, "cfgr": 10.0, "cfvo": 25.0})
    assert src == "bdwsod+cfgr" and bd == pytest.approx(1.5 * 0.9 / 0.75)
    assert W.select_bulk_density({"bdwsod": 1.5})[1] == ""  # whole-soil BD needs CFGR
    assert math.isnan(W.select_bulk_density({})[0])


def test_missing_bd_from_ptf(r19: P.ScreeningResult) -> None:
    a, b = layers_of(r19, "100001"), layers_of(r19, "100002")
    assert a["bd_from_ptf"].tolist() == [False, False, False, True]
    assert a["bd_g_cm3"][3] == pytest.approx(ptf(2.0), rel=1e-12)
    assert b["bd_from_ptf"].tolist() == [False, False, True]  # BDWSOD 1.5 without CFGR is not used
    assert b["bd_g_cm3"][2] == pytest.approx(ptf(3.0), rel=1e-12)
    assert a["soc_density_g_m3"][3] == pytest.approx(2.0 * ptf(2.0) * 1000.0 * (1 - 0 / 100), rel=1e-12)


def test_missing_coarse_fragments_flagged(r19: P.ScreeningResult) -> None:
    a = layers_of(r19, "100001")
    assert a["coarse_missing"].tolist() == [False, True, False, False]
    assert a["coarse_pct"].tolist() == [5.0, 0.0, 10.0, 0.0]
    assert "coarse_missing: 1 layer(s) without coarse fragments, taken as 0" in r19.ledger.entry("100001").notes
    assert not any(n.startswith("coarse_missing") for n in r19.ledger.entry("100002").notes)


def test_soc_density_by_hand(r19: P.ScreeningResult) -> None:
    a, b = layers_of(r19, "100001"), layers_of(r19, "100002")
    # wosis.md §5: SOCd [g C m-3] = ORGC [g/kg] x BD [kg/dm3] x 1000 x (1 - CFVO/100); 100001, 0-20 cm
    assert a["soc_density_g_m3"][0] == pytest.approx(15680.7, rel=1e-12)  # 12.6 * 1.31 * 1000 * 0.95
    assert a["soc_density_g_m3"][1] == pytest.approx(12325.0, rel=1e-12)  # 8.5 * 1.45 * 1000 * 1
    assert a["soc_density_g_m3"][2] == pytest.approx(5472.0, rel=1e-12)   # 4 * 1.52 * 1000 * 0.90
    assert b["soc_density_g_m3"][0] == pytest.approx(23520.0, rel=1e-12)  # 20 * 1.2 * 1000 * 0.98
    # whole-soil BD: ORGC x BDWS x 1000 x (1 - CFGR/100) = 6 * 1.6 * 1000 * 0.8, whatever CFVO (10 here)
    assert b["soc_density_g_m3"][1] == pytest.approx(7680.0, rel=1e-12)
    assert b["coarse_pct"][1] == 10.0 and b["bd_g_cm3"][1] == pytest.approx(1.6 * 0.8 / 0.9, rel=1e-12)


def test_field_count_reparsed_or_rejected_alone(t19: W.WosisProfileTable, r19: P.ScreeningResult) -> None:
    # chem line 20: an unbalanced opening quote; quoted parsing swallows the rest of the line, re-parsed
    assert rejections(t19, CHEM, 20) == []
    c = layers_of(r19, "100005")
    assert c["top_cm"].tolist() == [0.0, 10.0, 40.0] and c["soc_g_per_kg"].tolist() == [25.0, 14.0, 10.0]
    # chem line 21: one field missing even without quoting: that row alone is rejected, line 22 is read
    (rj,) = rejections(t19, CHEM, 21)
    assert rj.column is None and rj.profile_id == "100005" and rj.reason.startswith("wrong field count")
    assert "19 fields" in rj.reason and "header has 20" in rj.reason
    assert "reader dropped 1 row(s): wrong field count: row has 19 fields" in r19.ledger.entry("100005").notes


def test_site_rejected_no_site_and_other_files(t19: W.WosisProfileTable) -> None:
    assert [r.reason for r in rejections(t19, CHEM, 23)] == [f"site row rejected ({PROF}, row 7)"]
    assert [r.reason for r in rejections(t19, CHEM, 25)] == [f"profile id has no row in {PROF}"]
    (dup,) = rejections(t19, PROF, 9)
    assert dup.reason == "duplicate profile id (first at row 4)"
    assert t19.lat[t19.profile_id.tolist().index("100003")] == 40.5  # the first row stays
    # a bad ORGC drops the row, and the same layer's row in the physical file
    (bad,) = rejections(t19, CHEM, 15)
    assert (bad.column, bad.value, bad.scope) == ("orgc_value_avg", "n.d.", "row")
    (other,) = rejections(t19, PHYS, 14)
    assert other.reason == f"layer dropped in the other file ({CHEM}, row 15)"
    # depths that differ between the two files drop the layer in both
    for file, row in ((CHEM, 18), (PHYS, 17)):
        (d,) = rejections(t19, file, row)
        assert d.reason.startswith("depths differ between the layer files")


# ====================================================================================== 2019: files, columns
def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_header(path: Path, old: str, new: str) -> None:
    lines = path.read_text(encoding="utf-8").split("\n")
    cols = lines[0].split("\t")
    cols[cols.index(old)] = new
    lines[0] = "\t".join(cols)
    path.write_text("\n".join(lines), encoding="utf-8")


def test_missing_orgc_value_avg_fails_naming_file_and_column(tmp_path: Path) -> None:
    d = _copy(FIX19, tmp_path / "snap")
    _edit_header(d / CHEM, "orgc_value_avg", "orgc_value_mean")
    with pytest.raises(R.ReaderError) as e:
        W.read_wosis2019(d)
    assert CHEM in str(e.value) and "'orgc_value_avg'" in str(e.value)


@pytest.mark.parametrize(("file", "column"), [(PHYS, "bdfi33_value_avg"), (PHYS, "litter"), (PROF, "latitude")])
def test_missing_required_column(tmp_path: Path, file: str, column: str) -> None:
    d = _copy(FIX19, tmp_path / "snap")
    _edit_header(d / file, column, "something_else")
    with pytest.raises(R.ReaderError, match=rf"{file}: required column '{column}'"):
        W.read_wosis2019(d)


def test_missing_file_fails(tmp_path: Path) -> None:
    d = _copy(FIX19, tmp_path / "snap")
    (d / PHYS).unlink()
    with pytest.raises(R.ReaderError, match=r"wosis_201909_layers_physical\.tsv: file not found"):
        W.read_wosis2019(d)
    with pytest.raises(R.ReaderError, match="snapshot folder not found"):
        W.read_wosis2019(tmp_path / "nowhere")


def test_gzipped_files_read_the_same(tmp_path: Path, t19: W.WosisProfileTable) -> None:
    d = tmp_path / "gz"
    d.mkdir()
    for f in FIX19.glob("*.tsv"):
        with gzip.open(d / (f.name + ".gz"), "wb") as out:
            out.write(f.read_bytes())
    t = W.read_wosis2019(d)
    assert t.profile_id.tolist() == t19.profile_id.tolist()
    for c in t19.layers:
        np.testing.assert_array_equal(t.layers[c], t19.layers[c])
    assert [(Path(r.file).name, r.row, r.reason) for r in t.rejections] == \
        [(Path(r.file).name + ".gz", r.row, r.reason.replace(".tsv", ".tsv.gz")) for r in t19.rejections]


def test_units_from_attribute_catalogue(tmp_path: Path) -> None:
    d = _copy(FIX19, tmp_path / "snap")
    att = d / "wosis_201909_attributes.tsv"
    text = att.read_text(encoding="utf-8")
    att.write_text(text.replace("Organic carbon\tg/kg", "Organic carbon\t%"), encoding="utf-8")
    t = W.read_wosis2019(d)  # ORGC in % -> x 10 to g/kg
    j = np.flatnonzero(t.layer_labels["layer_id"] == "500002")[0]
    assert t.layers["soc_g_per_kg"][j] == pytest.approx(126.0)
    att.write_text(text.replace("Organic carbon\tg/kg", "Organic carbon\tmol/m2"), encoding="utf-8")
    with pytest.raises(R.ReaderError, match=r"attributes\.tsv, row \d+, column 'unit': unit 'mol/m2' of 'orgc'"):
        W.read_wosis2019(d)


# ====================================================================================== deck, registry
def test_deck_entry_points_and_registry() -> None:
    from prodampi.io.formats import get_format

    t = get_format("wosis2019").load()({"format": "wosis2019", "snapshot_dir": str(FIX19)})
    assert isinstance(t, R.ProfileTable) and t.n_layers == 16
    t = get_format("wosis2023").load()({"format": "wosis2023", "snapshot_dir": str(FIX23)})
    assert t.source == "wosis2023"
    with pytest.raises(R.ReaderError, match="snapshot_dir"):
        W.read_wosis2019_deck({"snapshot_dir": None})


def test_wosis2019_deck_points_at_the_fixture(repo_root: Path) -> None:
    deck_path = repo_root / "input_decks" / "wosis2019.yaml"
    raw = yaml.safe_load(deck_path.read_text())
    pr = raw["prepare"]["profiles"]
    assert raw["prepare"]["source"] == "table" and pr["format"] == "wosis2019"
    assert (deck_path.parent / pr["snapshot_dir"]).resolve() == FIX19.resolve()
    text = deck_path.read_text()
    assert "WoSIS_2019_September.zip" in text and "10.17027/isric-wdcsoils.20190901" in text
    from prodampi.deck import load_deck
    from prodampi.errors import DeckError

    try:
        deck = load_deck(deck_path)
    except DeckError as e:  # until the deck schema knows prepare.profiles.snapshot_dir
        if "snapshot_dir" in str(e):
            pytest.skip(f"deck schema lacks prepare.profiles.snapshot_dir: {e}")
        raise
    assert Path(deck["prepare"]["profiles"]["snapshot_dir"]).resolve() == FIX19.resolve()


# ====================================================================================== Profiles.bd_source
def test_bd_source_round_trip_and_default(r19: P.ScreeningResult) -> None:
    pr = r19.profiles
    arr = pr.to_arrays()
    assert arr["bd_source"].dtype.kind == "S"
    back = P.Profiles.from_arrays(arr)
    assert back.bd_source.tolist() == pr.bd_source.tolist()
    old = {k: v for k, v in arr.items() if k != "bd_source"}  # a file written before bd_source existed
    derived = P.Profiles.from_arrays(old).bd_source
    assert derived.tolist() == np.where(pr.bd_from_ptf, "ptf", "measured").tolist()
    assert pr.take([1]).bd_source.tolist() == ["bdfiad", "bdws33+cfgr", "ptf"]
    assert P.Profiles.concatenate([pr, pr]).bd_source.tolist() == pr.bd_source.tolist() * 2


def test_tables_without_labels_keep_their_ledger() -> None:
    """A plain ProfileTable (ISIS-like) gets bd_source 'measured'/'ptf' and no extra ledger notes."""
    n = 3
    t = R.ProfileTable(
        source="x", files=("a", "b"), profile_id=np.array(["p"]), lat=np.array([1.0]), lon=np.array([2.0]),
        layer_profile=np.zeros(n, dtype=np.int64),
        layers={"top_cm": np.array([0.0, 20.0, 50.0]), "bottom_cm": np.array([20.0, 50.0, 100.0]),
                "soc_g_per_kg": np.array([10.0, 5.0, 2.0]), "bd_g_cm3": np.array([1.3, np.nan, 1.5]),
                "coarse_pct": np.array([np.nan, 0.0, 0.0])},
        layer_row=np.arange(n), rejections=[], input_profile_ids=["p"])
    res = P.screen_profiles(t)
    assert res.profiles.bd_source.tolist() == ["measured", "ptf", "measured"]
    assert res.ledger.entry("p").notes == ()


# ====================================================================================== 2023
@pytest.fixture(scope="module")
def t23() -> W.WosisProfileTable:
    return W.read_wosis2023(FIX23)


def test_2023_read_and_screened(t23: W.WosisProfileTable) -> None:
    assert t23.profile_id.tolist() == ["200001", "200002", "200003"]
    assert (t23.lat[0], t23.lon[0]) == (61.5, 10.25)
    res = screen_as_prepare(t23)
    assert res.ledger.ids("kept") == ["200001", "200003"]
    assert res.ledger.entry("200002").reason_codes == ("too_few_layers",)
    a, c = layers_of(res, "200001"), layers_of(res, "200003")
    assert a["top_cm"].tolist() == [0.0, 15.0, 40.0]  # the organic-surface layer is dropped
    (rj,) = [r for r in t23.rejections if r.row == 2]
    assert rj.column == "organic_surface" and rj.reason.startswith("organic-surface layer")
    assert a["bd_source"].tolist() == ["bdfiod", "bdfi33", "bdwsod+cfgr"]
    assert a["soc_density_g_m3"][0] == pytest.approx(35.6 * 1.10 * 1000 * 0.95, rel=1e-12)
    assert a["soc_density_g_m3"][2] == pytest.approx(5.0 * 1.6 * 1000 * 0.90, rel=1e-12)
    assert a["coarse_missing"].tolist() == [False, False, True]
    assert c["soc_g_per_kg"].tolist() == [9.0, 6.5, 3.0]  # value_avg empty: mean of {6.0;7.0}
    assert c["bd_source"].tolist() == ["bdfiod", "bdfiad", "ptf"]
    (rc,) = [r for r in t23.rejections if r.row == 11]
    assert rc.reason == "coordinates differ from those of the same profile at row 8"


def test_2023_missing_column_fails_clearly(tmp_path: Path) -> None:
    d = _copy(FIX23, tmp_path / "snap")
    _edit_header(d / "wosis_202312_bdfiod.tsv", "value_avg", "avg")
    with pytest.raises(R.ReaderError, match=r"wosis_202312_bdfiod\.tsv: required column 'value_avg'"):
        W.read_wosis2023(d)
    d2 = _copy(FIX23, tmp_path / "snap2")
    _edit_header(d2 / "wosis_202312_orgc.tsv", "organic_surface", "litter")
    with pytest.raises(R.ReaderError, match=r"wosis_202312_orgc\.tsv: required column 'organic_surface'"):
        W.read_wosis2023(d2)
    (d2 / "wosis_202312_cfvo.tsv").unlink()
    with pytest.raises(R.ReaderError, match=r"wosis_202312_cfvo\.tsv: file not found"):
        W.read_wosis2023(d2)


def test_empty_and_repeated_layer_ids_drop_the_row(tmp_path: Path) -> None:
    """A layer row without a layer id, or repeating a (profile, layer) id, is rejected alone, naming the row."""
    d = _copy(FIX19, tmp_path / "w")
    chem = d / "wosis_201909_layers_chemical.tsv"
    lines = chem.read_text(encoding="utf-8").rstrip("\n").split("\n")
    n = len(lines)
    empty = lines[2].split("\t")
    empty[1] = ""
    lines += [lines[2], "\t".join(empty)]  # line n+1 repeats line 3; line n+2 has no layer id
    chem.write_text("\n".join(lines) + "\n", encoding="utf-8")
    t = W.read_wosis2019(d)
    mine = {r.row: r.reason for r in t.rejections if r.file.endswith(chem.name) and r.row > n}
    assert mine[n + 1] == "duplicate layer id (first at row 3)"
    assert mine[n + 2] == "missing value in required column"
    base = W.read_wosis2019(FIX19)
    assert t.n_layers == base.n_layers
