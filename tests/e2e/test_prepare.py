"""Stage prepare end to end: real tables (ISIS, AfSP) and the embedded synthetic world, alone and under mpiexec."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from prodampi.io.inputs import read_inputs, undeclared_datasets
from prodampi.testing.mpi import MpiJobRunner

REPO = Path(__file__).resolve().parents[2]
RUNNER = MpiJobRunner(cwd=REPO, default_timeout=600.0)


def prodampi(args: list[str], n: int = 1, **env: str) -> subprocess.CompletedProcess:
    return RUNNER.prodampi(args, n=n, **env)


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "prepare.json").read_text())["summary"]


def test_isis_counts_and_ledger(tmp_path, shared_data):
    d = tmp_path / "isis"
    r = prodampi(["prepare", "input_decks/isis_global.yaml", "--run-dir", str(d)])
    assert r.returncode == 0, r.stderr
    s = summary(d)
    assert (s["profiles_kept"], s["layers_kept"]) == (646, 3804)
    assert s["profiles_read"] == 785 and s["ledger_accounts_for_all"]
    inp = read_inputs(d / "inputs.h5")
    led = inp["ledger"]
    ids = [x.decode() for x in led["profile_id"]]
    assert len(ids) == len(set(ids)) == 785
    assert int(led["kept"].sum()) == 646
    assert all(led["reasons"][~led["kept"].astype(bool)])  # every rejection has a reason
    assert inp["profiles"].n_profiles == 646 and inp["site_forcing"].n_sites == 646
    assert set(x.decode() for x in inp["sites"]["forcing_source"]) == {"derived:synthetic-climate"}
    ok, _ = inp["site_forcing"].check()
    assert ok.all()
    assert undeclared_datasets(d / "inputs.h5") == []  # the contract's layout lists every dataset


def test_afsp_counts(tmp_path, shared_data):
    d = tmp_path / "afsp"
    r = prodampi(["prepare", "input_decks/afsp_africa.yaml", "--run-dir", str(d)])
    assert r.returncode == 0, r.stderr
    assert undeclared_datasets(d / "inputs.h5") == []
    s = summary(d)
    assert s["profiles_kept"] == 8830 and s["profiles_read"] == 26270 and s["ledger_accounts_for_all"]
    assert s["forcing_source"] == {"derived:covariates": 8830}
    assert s["grid_cells"] == 45997


def _synthetic_deck(tmp_path: Path) -> Path:
    deck = tmp_path / "syn.yaml"
    deck.write_text("run_dir: out\nseed: 7\nprepare:\n  world:\n    resolution_deg: 5.0\n    n_profiles: 80\n")
    return deck


@pytest.mark.skipif(RUNNER.mpiexec is None, reason="no mpiexec")
def test_synthetic_alone_and_under_mpiexec_identical_and_reused(tmp_path):
    deck = _synthetic_deck(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    r1 = prodampi(["prepare", str(deck), "--run-dir", str(a)])
    r2 = prodampi(["prepare", str(deck), "--run-dir", str(b)], n=2)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    ia, ib = read_inputs(a / "inputs.h5"), read_inputs(b / "inputs.h5")
    assert undeclared_datasets(a / "inputs.h5") == []
    pa, pb = ia["profiles"].to_arrays(), ib["profiles"].to_arrays()
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
    np.testing.assert_array_equal(ia["site_forcing"].tsoi_k, ib["site_forcing"].tsoi_k)
    s = summary(a)
    assert s["profiles_read"] == 80 and s["profiles_kept"] + s["profiles_rejected"] == 80
    # the same deck again reuses the file (not rewritten)
    mtime = (a / "inputs.h5").stat().st_mtime_ns
    r3 = prodampi(["prepare", str(deck), "--run-dir", str(a)])
    assert r3.returncode == 0 and summary(a).get("reused") is True
    assert (a / "inputs.h5").stat().st_mtime_ns == mtime
    # a changed deck rebuilds it
    deck.write_text(deck.read_text().replace("n_profiles: 80", "n_profiles: 90"))
    r4 = prodampi(["prepare", str(deck), "--run-dir", str(a)])
    assert r4.returncode == 0 and summary(a)["profiles_read"] == 90 and not summary(a).get("reused")


def test_synthetic_density_matches_world_and_truth_stored(tmp_path):
    """The screening's SOC density (content x BD x (1 - coarse)) reproduces the world's own observed density,
    and the noise-free truth stored per kept layer is finite and positive."""
    from prodampi.data.profiles import screen_profiles
    from prodampi.data.synthetic_profiles import synthetic_profile_table
    from prodampi.data.world import make_world

    w = make_world(5.0, seed=3, n_profiles=60, models=("clm5", "compas"))
    p = w.to_arrays()["profiles"]
    table = synthetic_profile_table(p)
    res = screen_profiles(table, min_layers_exclusive=2, min_max_depth_cm=50.0)  # the deck's defaults
    prof = res.profiles
    n = p["n_layers"]
    for j, pid in enumerate(prof.profile_id):
        r = list(table.profile_id).index(pid)
        a, b = prof.offsets[j], prof.offsets[j + 1]
        world_dens = {(t, bt): v for t, bt, v in zip(p["top_cm"][r, : n[r]], p["bottom_cm"][r, : n[r]],
                                                     p["soc_density_g_m3"][r, : n[r]])}
        for k in range(a, b):
            ref = world_dens[(prof.top_cm[k], prof.bottom_cm[k])]
            assert np.isclose(prof.soc_density_g_m3[k], ref, rtol=1e-9), (pid, k)
    assert len(res.ledger) == 60


def test_bad_deck_file_missing_names_field(tmp_path):
    deck = tmp_path / "d.yaml"
    deck.write_text("run_dir: out\nprepare:\n  source: table\n  profiles:\n    sites: missing.csv\n"
                    "    horizons: missing2.csv\n")
    r = prodampi(["prepare", str(deck)])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "prepare.profiles.sites = 'missing.csv': file not found" in r.stderr


def test_inputs_file_written_atomically(tmp_path):
    """No temporary files are left behind and the file carries provenance and a completion flag."""
    deck = _synthetic_deck(tmp_path)
    d = tmp_path / "c"
    assert prodampi(["prepare", str(deck), "--run-dir", str(d)]).returncode == 0
    own = (".prodampi.lock", ".prodampi-run")  # the run-directory lock and marker stay by design
    assert [p.name for p in d.iterdir() if p.name.startswith(".") and p.name not in own] == []
    with h5py.File(d / "inputs.h5", "r") as f:
        assert f.attrs["complete"] == 1
        prov = json.loads(f.attrs["provenance"])
        assert prov["seed"] == 7 and prov["n_ranks"] == 1 and "deck_hash" in prov
    st = prodampi(["status", str(deck), "--run-dir", str(d), "--json"])
    assert st.returncode == 0, st.stderr
    stages = json.loads(st.stdout)["stages"]
    assert stages["prepare"]["status"] == "done" and stages["prepare"]["summary"]["profiles_read"] == 80
    assert stages["assimilate"]["status"] in ("not run", "not available")
    assert stages["prepare"]["files"] == {str(d / "inputs.h5"): "ok"}  # status reads the stage registry
    from prodampi.stages.registry import available_stages

    if "assimilate" not in available_stages():
        # the next stage finds its prerequisite, then says it is not available in this version (exit 3, one line)
        r = prodampi(["assimilate", str(deck), "--run-dir", str(d)])
        assert r.returncode == 3 and "Traceback" not in r.stderr, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "stage 'assimilate' is not available" in lines[0], r.stderr
    assert (d / "logs" / "prepare_p0.log").is_file()


def test_table_with_cesm2_history_and_ncscd(tmp_path, shared_data):
    """ISIS profiles + NCSCD pedons with site forcing read from a CESM2-style history file (nearest cell)."""
    from prodampi.io import readers as R
    from prodampi.soil.layers import DZ_M

    rng = np.random.default_rng(5)
    lat = np.linspace(-88.0, 88.0, 23)
    lon = np.arange(0.0, 360.0, 8.0)
    shape = (12, 20, lat.size, lon.size)
    f = {name: rng.uniform(0.1, 1.0, shape) for name, (kind, _, _) in R.CESM2_VARIABLES.items() if kind == "level"}
    f["TSOI"] = 260.0 + 30.0 * f["TSOI"]
    for name, (kind, _, _) in R.CESM2_VARIABLES.items():
        if kind == "surface":
            f[name] = rng.uniform(0.5, 4.0, (12, lat.size, lon.size))
        elif kind not in ("level",):
            f[name] = rng.integers(1, 21, (lat.size, lon.size)).astype(float)
    hist = R.write_cesm2_history(tmp_path / "clm5.h0.nc", lat, lon, f)
    isis = shared_data / "gsif_isis_global_profiles"
    ncscd = next((shared_data / "ncscd_pedons_hugelius2013").glob("Hugelius*.txt"))
    deck = tmp_path / "d.yaml"
    deck.write_text(
        f"run_dir: out\nprepare:\n  source: table\n  profiles:\n    format: isis\n"
        f"    sites: {isis / 'isis_sites.csv'}\n    horizons: {isis / 'isis_horizons.csv'}\n"
        f"    ncscd: {ncscd}\n  forcing:\n    cesm2_history: {hist}\n")
    d = tmp_path / "run"
    r = prodampi(["prepare", str(deck), "--run-dir", str(d)])
    assert r.returncode == 0, r.stderr
    s = summary(d)
    assert s["profiles_kept"] == 646 + 519 and s["profiles_read"] == 785 + 524
    assert s["forcing_source"] == {"cesm2": 646 + 519}
    inp = read_inputs(d / "inputs.h5")
    prof, forcing = inp["profiles"], inp["site_forcing"]
    # independent nearest-cell lookup (lat and lon separately, lon on the circle) for a few sites
    for i in (0, 100, 645, 700, prof.n_profiles - 1):
        la = int(np.argmin(np.abs(lat - prof.lat[i])))
        dl = np.abs((lon - prof.lon[i] + 180.0) % 360.0 - 180.0)
        lo = int(np.argmin(dl))
        np.testing.assert_allclose(forcing.tsoi_k[i], f["TSOI"][:, :, la, lo].T)
        np.testing.assert_allclose(forcing.altmax_m[i], f["ALTMAX"][:, la, lo])
        col = (f["LITR1_INPUT_ACC_VECTOR"][:, :, la, lo] * DZ_M[:20][None, :]).sum()
        np.testing.assert_allclose(forcing.litter_input[i, 1], col)
