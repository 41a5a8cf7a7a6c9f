"""Fuzzing the readers with corrupted copies of the real tables (``conventions.md`` F.5).

Bad values (NaN where required, negative or inverted depths, text or non-finite numbers in numeric columns,
duplicate ids, out-of-range coordinates, ragged rows, garbage bytes) are injected into copies of real
tables written to a temporary folder.  The readers must never crash, must reject each bad row (or value)
with a reason naming file, row and column, and must load everything else exactly as before.
"""

from __future__ import annotations

import csv
import gzip
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prodampi.data.profiles import screen_profiles
from prodampi.io import readers as R

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# kind -> (column to corrupt (None: whole row), new text (None: special), scope, reason fragment)
HORIZON_CORRUPTIONS: dict[str, tuple[str | None, str | None, str, str]] = {
    "nan_top": ("UHDICM", "", "row", "missing value"),
    "nan_bottom": ("LHDICM", "NaN", "row", "missing value"),
    "neg_top": ("UHDICM", "-75", "row", "negative depth"),
    "neg_bottom": ("LHDICM", "-120.5", "row", "negative depth"),
    "inverted": ("LHDICM", None, "row", "inverted depths"),
    "text_depth": ("UHDICM", "ten", "row", "text in numeric column"),
    "text_soc": ("ORCDRC", "n.d.", "row", "text in numeric column"),
    "inf_soc": ("ORCDRC", "inf", "row", "non-finite"),
    "neg_soc": ("ORCDRC", "-4", "row", "outside"),
    "text_bd": ("BLD", "1,3", "value", "text in numeric column"),
    "huge_bd": ("BLD", "1300", "value", "outside"),
    "ragged": (None, None, "row", "fields"),
}
SITE_CORRUPTIONS: dict[str, tuple[str, str | None, str]] = {
    "lat_out": ("LATWGS84", "91.5", "outside"),
    "lon_out": ("LONWGS84", "-200", "outside"),
    "lon_text": ("LONWGS84", "E12", "text in numeric column"),
    "lat_nan": ("LATWGS84", "", "missing value"),
    "dup": ("SOURCEID", None, "duplicate profile id"),
}


@dataclass(repr=False)
class Source:
    """A small real extract: header + rows of the sites and horizons tables, and its clean reading."""

    mapping: dict
    site_header: list[str]
    sites: list[list[str]]
    hor_header: list[str]
    hors: list[list[str]]
    base_loaded: set[int]  # horizon rows (line numbers) loaded from the clean extract
    base_ids: set[str]
    base_input_ids: set[str]
    base_rejections: set[tuple[str, int, str | None]]

    def __repr__(self) -> str:
        return f"Source({self.mapping['name']}: {len(self.sites)} sites, {len(self.hors)} horizons)"


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    op = gzip.open if path.name.endswith(".gz") else open
    with op(path, "rt", newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    op = gzip.open if path.name.endswith(".gz") else open
    with op(path, "wt", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def _extract(folder: str, mapping: dict, n_sites: int, tmp: Path) -> Source:
    src = SHARED / folder
    sh, srows = _read_rows(src / mapping["sites"]["file"])
    hh, hrows = _read_rows(src / mapping["horizons"]["file"])
    srows = srows[:n_sites]
    ids = {r[0] for r in srows}
    hrows = [r for r in hrows if r[0] in ids]
    _write(tmp / mapping["sites"]["file"], sh, srows)
    _write(tmp / mapping["horizons"]["file"], hh, hrows)
    t = R.read_profile_table(tmp, mapping)
    return Source(mapping, sh, srows, hh, hrows, set(t.layer_row.tolist()), set(t.profile_id.tolist()),
                  set(t.input_profile_ids), {(Path(r.file).name, r.row, r.column) for r in t.rejections})


@pytest.fixture(scope="module")
def isis_src(shared_data: Path) -> Source:
    with tempfile.TemporaryDirectory() as d:
        return _extract("gsif_isis_global_profiles", R.ISIS_MAPPING, 90, Path(d))


@pytest.fixture(scope="module")
def afsp_src(shared_data: Path) -> Source:
    with tempfile.TemporaryDirectory() as d:
        return _extract("gsif_afsp_africa_profiles", R.AFSP_MAPPING, 400, Path(d))


def _corrupt_and_check(src: Source, hor_bad: dict[int, str], site_bad: dict[int, str], tmp: Path) -> None:
    """Apply corruptions (data-row index -> kind), read, and check every expectation."""
    hh, sh = src.hor_header, src.site_header
    hors = [list(r) for r in src.hors]
    sites = [list(r) for r in src.sites]
    expect: list[tuple[str, int, str | None, str, str]] = []  # (file, line, column, scope, reason)
    for i, kind in hor_bad.items():
        col, text, scope, why = HORIZON_CORRUPTIONS[kind]
        if kind == "ragged":
            hors[i] = hors[i][:-1]
        elif kind == "inverted":
            a, b = hh.index("UHDICM"), hh.index("LHDICM")
            hors[i][a], hors[i][b] = hors[i][b], hors[i][a]
        else:
            hors[i][hh.index(col)] = text
        expect.append((src.mapping["horizons"]["file"], i + 2, col, scope, why))
    bad_sites: set[str] = set()
    dup_lat: dict[str, str] = {}
    for i, kind in site_bad.items():
        col, text, why = SITE_CORRUPTIONS[kind]
        if kind == "dup":
            copy = list(sites[i])
            dup_lat[copy[0]] = copy[sh.index("LATWGS84")]
            copy[sh.index("LATWGS84")] = "0.123"
            sites.append(copy)
            expect.append((src.mapping["sites"]["file"], len(sites) + 1, col, "row", why))
        else:
            sites[i][sh.index(col)] = text
            bad_sites.add(sites[i][0])
            expect.append((src.mapping["sites"]["file"], i + 2, col, "row", why))
    _write(tmp / src.mapping["sites"]["file"], sh, sites)
    _write(tmp / src.mapping["horizons"]["file"], hh, hors)

    table = R.read_profile_table(tmp, src.mapping)  # must not raise

    got = {(Path(r.file).name, r.row, r.column): r for r in table.rejections}
    for fname, line, col, scope, why in expect:
        r = got.get((fname, line, col))
        assert r is not None, f"no rejection for {fname} row {line} column {col}: {table.rejections}"
        assert r.scope == scope and why in r.reason, r
        msg = r.message()
        assert fname in msg and f"row {line}" in msg and (col is None or repr(col) in msg)
    row_dropped = {line for f, line, _c, scope, _w in expect
                   if scope == "row" and f == src.mapping["horizons"]["file"]}
    site_lines = {i + 2 for i, r in enumerate(src.hors) if r[0] in bad_sites}
    assert set(table.layer_row.tolist()) == src.base_loaded - row_dropped - site_lines
    for _f, line, _c, scope, _w in expect:
        if scope == "value" and line not in site_lines:
            j = int(np.flatnonzero(table.layer_row == line)[0])
            assert np.isnan(table.layers["bd_g_cm3"][j])
    assert set(table.profile_id.tolist()) == src.base_ids - bad_sites
    for pid, lat in dup_lat.items():
        if pid not in bad_sites:
            assert table.lat[int(np.flatnonzero(table.profile_id == pid)[0])] == pytest.approx(float(lat))
    # nothing else was rejected, apart from the horizons of the rejected sites
    expected_keys = {(f, line, c) for f, line, c, _s, _w in expect}
    for key, r in got.items():
        if key in src.base_rejections or key in expected_keys:
            continue
        assert r.profile_id in bad_sites and "site row rejected" in r.reason, r
    # the ledger still accounts for every input profile
    led = screen_profiles(table).ledger
    assert set(led.ids()) == src.base_input_ids == set(table.input_profile_ids)
    for pid in bad_sites:
        assert led.entry(pid).reason_codes == ("site_rejected",)


def _valid_rows(src: Source) -> list[int]:
    return sorted(line - 2 for line in src.base_loaded)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_isis_hypothesis(isis_src: Source, data: st.DataObject) -> None:
    rows = _valid_rows(isis_src)
    hor_bad = data.draw(st.dictionaries(st.sampled_from(rows), st.sampled_from(sorted(HORIZON_CORRUPTIONS)),
                                        max_size=8), label="horizon corruptions")
    site_bad = data.draw(st.dictionaries(st.integers(0, len(isis_src.sites) - 1),
                                         st.sampled_from(sorted(SITE_CORRUPTIONS)), max_size=3),
                         label="site corruptions")
    with tempfile.TemporaryDirectory() as d:
        _corrupt_and_check(isis_src, hor_bad, site_bad, Path(d))


@pytest.mark.parametrize("seed", range(6))
def test_fuzz_afsp_seeded(afsp_src: Source, seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    rows = _valid_rows(afsp_src)
    hor_bad = {i: rng.choice(sorted(HORIZON_CORRUPTIONS)) for i in rng.sample(rows, 12)}
    site_bad = {i: rng.choice(sorted(SITE_CORRUPTIONS)) for i in rng.sample(range(len(afsp_src.sites)), 4)}
    _corrupt_and_check(afsp_src, hor_bad, site_bad, tmp_path)  # .csv.gz copies


@pytest.mark.parametrize(("seed", "alphabet"), [(0, b"\x00\xff\xfe,;\t abc-9.e\x80"),
                                              (1, b"\x00\xff\xfe,;\t abc-9.e\x80"),
                                              (2, b'\x00\xff",;\t\r abc-9.e\x80'),
                                              (3, b'\x00\xff",;\t\r abc-9.e\x80')])
def test_fuzz_garbage_bytes_never_crash(isis_src: Source, seed: int, alphabet: bytes, tmp_path: Path) -> None:
    """Random bytes (NUL, invalid UTF-8, separators; also quotes and CR in seeds 2-3) in data lines."""
    rng = random.Random(100 + seed)
    names = (isis_src.mapping["sites"]["file"], isis_src.mapping["horizons"]["file"])
    for name, header, rows in ((names[0], isis_src.site_header, isis_src.sites),
                               (names[1], isis_src.hor_header, isis_src.hors)):
        lines = [",".join(header).encode()] + [",".join(r).encode() for r in rows]
        for _ in range(15):
            k = rng.randrange(1, len(lines))
            pos = rng.randrange(len(lines[k]) + 1)
            junk = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
            lines[k] = lines[k][:pos] + junk + lines[k][pos:]
        (tmp_path / name).write_bytes(b"\n".join(lines) + b"\n")
    table = R.read_profile_table(tmp_path, isis_src.mapping)  # must not raise
    for r in table.rejections:
        assert r.file.endswith(names) and r.row >= 2 and f"row {r.row}" in r.message()
    led = screen_profiles(table).ledger
    assert led.unaccounted(table.input_profile_ids) == []
    assert np.all(np.abs(table.lat) <= 90) and np.all(np.abs(table.lon) <= 180)
    if b'"' not in alphabet and b"\r" not in alphabet:
        # one line = one record: every site line either loaded or was rejected at that very row
        site_rej = {r.row for r in table.rejections if r.file.endswith(names[0])}
        loaded = set(table.profile_row.tolist())
        assert loaded.isdisjoint(site_rej)
        assert loaded | site_rej == set(range(2, len(isis_src.sites) + 2))


def test_fuzz_truncated_gzip_is_a_reader_error(afsp_src: Source, tmp_path: Path) -> None:
    _write(tmp_path / "afsp_sites.csv.gz", afsp_src.site_header, afsp_src.sites)
    _write(tmp_path / "afsp_horizons.csv.gz", afsp_src.hor_header, afsp_src.hors)
    data = (tmp_path / "afsp_horizons.csv.gz").read_bytes()
    (tmp_path / "afsp_horizons.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(R.ReaderError, match="afsp_horizons.csv.gz"):
        R.read_afsp(tmp_path)


@pytest.mark.parametrize("seed", range(3))
def test_fuzz_ncscd(shared_data: Path, seed: int, tmp_path: Path) -> None:
    src = shared_data / "ncscd_pedons_hugelius2013" / R.NCSCD_MAPPING["file"]
    with open(src, encoding="latin-1", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if any(x.strip() for x in r)]
    rng = random.Random(seed)
    kinds = {"Lat": ("95", "row"), "Long": ("east", "row"),
             "SOCC 100-200 cm (kg C m-2)": ("-3", "value"), "SOCC 0-30 cm (kg C m-2)": ("x", "value"),
             "Pedon_Id_nr": (None, "row")}
    bad: dict[int, str] = {}
    for i in rng.sample(range(0, len(body) - 1, 2), 10):  # even rows; a duplicate copies the next (odd) id
        col = rng.choice(sorted(kinds))
        text = kinds[col][0]
        body[i][header.index(col)] = body[(i + 1) % len(body)][0] if text is None else text
        bad[i] = col
    p = tmp_path / "pedons.txt"
    with open(p, "w", encoding="latin-1", newline="") as fh:
        csv.writer(fh, delimiter="\t", lineterminator="\r\n").writerows([rows[0], *body])
    t = R.read_ncscd_pedons(p)
    got = {(r.row, r.column): r for r in t.rejections}
    for i, col in bad.items():
        r = got.get((i + 2, col))  # column names are reported stripped ("Long " in the header)
        if col == "Pedon_Id_nr" and r is None:  # a duplicate is reported on the later of the two rows
            partner = [j for j, x in enumerate(body) if x[0] == body[i][0] and j != i]
            r = next(got[(j + 2, col)] for j in partner if (j + 2, col) in got)
        assert r is not None and r.scope == kinds[col][1], (i, col, t.rejections)
        assert "pedons.txt" in r.message() and "row" in r.message()
    assert t.n_profiles == len(body) - len({(r.row) for r in t.rejections if r.scope == "row"})
    led = screen_profiles(t).ledger
    assert led.unaccounted(t.input_profile_ids) == []


def test_fuzz_bd_oc_and_covariates(shared_data: Path, tmp_path: Path) -> None:
    # BD/OC table: every mapped numeric value is checked; BD and OC are required
    h, rows = _read_rows(shared_data / "wosis_bd_oc_layers" / R.WOSIS_BD_OC_MAPPING["file"])
    rows = rows[:300]
    rows[5][h.index("BLD")] = "heavy"
    rows[6][h.index("ORCDRC")] = ""
    rows[7][h.index("BLD")] = "-1400"
    rows[8][h.index("CLYPPT")] = "lots"
    rows[9] = rows[9][:3]
    p = tmp_path / "bdoc.csv.gz"
    _write(p, h, rows)
    t = R.read_bd_oc_layers(p)
    got = {(r.row, r.column): r for r in t.rejections}
    assert got[(7, "BLD")].scope == "row" and "text" in got[(7, "BLD")].reason
    assert got[(8, "ORCDRC")].scope == "row" and "missing" in got[(8, "ORCDRC")].reason
    assert got[(9, "BLD")].scope == "row" and "outside" in got[(9, "BLD")].reason
    assert got[(10, "CLYPPT")].scope == "value"
    assert got[(11, None)].scope == "row" and "fields" in got[(11, None)].reason
    assert t.n_layers == 300 - 4
    # covariate grid: bad coordinates drop the cell, a bad covariate only its value
    h, rows = _read_rows(shared_data / "afgrid20_africa_covariates" / R.AFGRID20_MAPPING["file"])
    rows = rows[:200]
    rows[3][h.index("lat")] = "-91"
    rows[4][h.index("DEMSRE0a")] = "high"
    rows[5][h.index("PREGSM0a")] = "inf"
    rows.append(list(rows[10]))  # duplicate cell centre
    p = tmp_path / "grid.csv"
    _write(p, h, rows)
    g = R.read_covariate_grid(p)
    got = {(r.row, r.column): r for r in g.rejections}
    assert got[(5, "lat")].scope == "row"
    assert got[(6, "DEMSRE0a")].scope == "value" and np.isnan(g.values[3, g.names.index("DEMSRE0a")])
    assert got[(7, "PREGSM0a")].scope == "value"
    assert "duplicate" in got[(202, "lat")].reason
    assert g.n_cells == 200 - 1
