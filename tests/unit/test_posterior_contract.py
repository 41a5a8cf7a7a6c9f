"""The ``posterior.h5`` contract (prodampi.io.posterior): layout, ArviZ/xarray/netCDF4 readability, checks."""

from __future__ import annotations

import importlib.util

import h5py
import numpy as np
import pytest
from scipy import stats

from prodampi.errors import InputDataError
from prodampi.io import posterior as po

S, C, D, L = 5, 3, 20, 4
PARAMS = {"clm5": ["tau4s1", "q10", "diffus", "beta"], "compas": ["k_ra", "cue"]}
IDS = ["wosis-1", "wosis-22", "profilé-ü", "x", "a-much-longer-profile-id-0001"]
LONG_REASON = "rejected_gr: " + "é" * 200  # 413 bytes: cut at a character boundary
REASONS = ["", "rejected_nse: legacy NSE 0.1 <= 0.5", LONG_REASON, "bad_data: one layer", "solver_failure: x"]
ENGINES = [e for e in ("netcdf4", "h5netcdf") if importlib.util.find_spec({"netcdf4": "netCDF4"}.get(e, e))]


def spec(model: str) -> po.PosteriorSpec:
    p = len(PARAMS[model])
    return po.PosteriorSpec(site_ids=IDS, param_names=PARAMS[model], lo=np.arange(p) * 0.5,
                            hi=np.arange(p) * 0.5 + 2.0 + np.arange(p), n_chains=C, n_draws=D, n_obs=L,
                            attrs={"kernel": "paper", "thin": 10, "n_iter": [200, 500]})


def make_fields(model: str, seed: int) -> dict[str, np.ndarray]:
    """Every FIELDS entry for all S sites, with values that distinguish sites, chains and draws."""
    r = np.random.default_rng(seed)
    p = len(PARAMS[model])
    offs = r.normal(scale=0.3, size=(S, C, 1, p))
    draws = 1.0 / (1.0 + np.exp(-(r.normal(size=(S, C, D, p)) + offs)))
    pw = r.normal(size=(S, C, D, L))
    pw[0, :, :, 2:] = np.nan  # site 0 has two observed layers
    soc = r.uniform(1e3, 3e4, size=(S, L))
    soc[0, 2:] = np.nan
    f = {
        "draws": draws, "lp": r.normal(size=(S, C, D)), "cost": r.uniform(size=(S, C, D)),
        "accepted": r.uniform(size=(S, C, D)) < 0.3, "pointwise": pw, "obs_soc": soc,
        "obs_depth": np.where(np.isnan(soc), np.nan, np.array([0.05, 0.2, 0.5, 1.0])),
        "n_layers_raw": np.array([2, 4, 4, 4, 4]),
        "mean": draws.mean(axis=(1, 2)), "sd": draws.std(axis=(1, 2)), "mode": r.uniform(size=(S, p)),
        "chain_mean": r.uniform(size=(S, C, p)), "chain_ss": r.uniform(size=(S, C, p)),
        "chain_n": r.integers(1, 99, size=(S, C)), "acceptance": r.uniform(size=(S, C)),
        "n_accepted": r.integers(0, 99, size=(S, C)), "chain_r2_legacy": r.uniform(size=(S, C)),
        "chain_rmse": r.uniform(size=(S, C)), "n_last": r.integers(0, 99, size=S),
        "soc_mod": soc * 1.1, "soc_sd": soc * 0.1, "best_chain": r.integers(0, C, size=S),
        "restarts": r.integers(0, 5, size=(S, 3)), "n_failed_evals": r.integers(0, 9, size=S),
        "ok": np.array([True, True, True, False, True]), "reason": np.array(REASONS, dtype=object),
        "status": np.array([0, 2, 1, 4, 3], dtype=np.int8),
        **{k: r.uniform(size=(S, p)) for k in ("gr_paper", "gr_classic", "rhat", "ess_bulk", "ess_tail")},
        "nse": r.uniform(size=S), "nse_legacy": r.uniform(size=S),
    }
    assert set(f) == set(po.FIELDS)
    return f


def write_file(path, complete: bool = True, rows_parts=((3, 0), (4, 1, 2))):
    with h5py.File(path, "w") as f:
        po.create_posterior(f, {m: spec(m) for m in PARAMS}, {"provenance": {"seed": 7}},
                            created_at="2026-01-01T00:00:00+00:00")
        for i, m in enumerate(PARAMS):
            fields = make_fields(m, i)
            for rows in rows_parts:  # two non-contiguous, unsorted calls
                rows = np.array(rows)
                po.write_sites(f, m, rows, {k: v[rows] for k, v in fields.items()})
        if complete:
            po.mark_complete(f)
    return path


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    return write_file(tmp_path_factory.mktemp("post") / "posterior.h5")


def test_every_field_round_trips_through_h5py(done):
    with h5py.File(done, "r") as f:
        for i, m in enumerate(PARAMS):
            fields, g, sp = make_fields(m, i), f[m], spec(m)
            for j, p in enumerate(PARAMS[m]):
                assert np.array_equal(g[f"posterior/{p}"][()], fields["draws"][..., j])
            assert g["posterior/tau4s1" if m == "clm5" else "posterior/k_ra"].dtype == np.float64
            assert np.array_equal(g["sample_stats/accepted"][()], fields["accepted"].astype(np.int8))
            ll = g["log_likelihood/soc"][()]
            assert ll.dtype == np.float32
            assert np.array_equal(ll, fields["pointwise"].astype(np.float32), equal_nan=True)
            assert np.isnan(ll[0, :, :, 2:]).all()
            for k in ("lp", "cost"):
                assert np.array_equal(g[f"sample_stats/{k}"][()], fields[k])
            assert np.array_equal(g["observed_data/soc"][()], fields["obs_soc"], equal_nan=True)
            assert np.array_equal(g["constant_data/depth"][()], fields["obs_depth"], equal_nan=True)
            for k in ("chain_mean", "rhat", "ess_tail", "nse", "soc_sd", "n_accepted", "restarts", "best_chain"):
                assert np.array_equal(g[f"summary/{k}"][()], fields[k], equal_nan=True), k
            span = sp.hi - sp.lo
            assert np.allclose(g["summary/mean_physical"][()], sp.lo + fields["mean"] * span, rtol=0, atol=1e-14)
            assert np.allclose(g["summary/sd_physical"][()], fields["sd"] * span, rtol=0, atol=1e-14)
            assert np.allclose(g["summary/mode_physical"][()], sp.lo + fields["mode"] * span, rtol=0, atol=1e-14)
            assert g["summary/status"].dtype == np.int8
            for name, ds in g["posterior"].items():  # contiguous, uncompressed (parallel rules C.3)
                assert ds.chunks is None and ds.compression is None, name


@pytest.mark.parametrize("engine", ENGINES)
def test_every_group_opens_in_xarray_without_custom_code(done, engine):
    xr = pytest.importorskip("xarray")
    for i, m in enumerate(PARAMS):
        fields = make_fields(m, i)
        for g in po.GROUPS:
            ds = xr.open_dataset(done, group=f"{m}/{g}", engine=engine)
            assert list(ds["profile_id"].values) == IDS, (m, g)  # strings, unicode included
            assert ds["site"].values.tolist() == list(range(S))
            assert ds.attrs["inference_library"] == "prodampi"
            assert ds.attrs["created_at"] == "2026-01-01T00:00:00+00:00"
            assert ds.attrs["kernel"] == "paper" and ds.attrs["thin"] == 10
            ds.close()
        post = xr.open_dataset(done, group=f"{m}/posterior", engine=engine)
        assert sorted(post.data_vars) == sorted(PARAMS[m])
        assert post[PARAMS[m][0]].dims == ("site", "chain", "draw")
        assert post.sizes == {"site": S, "chain": C, "draw": D}
        assert np.array_equal(post[PARAMS[m][-1]].values, fields["draws"][..., -1])
        ss = xr.open_dataset(done, group=f"{m}/sample_stats", engine=engine)
        assert ss["accepted"].dtype == bool and np.array_equal(ss["accepted"].values, fields["accepted"])
        assert set(ss.data_vars) == {"lp", "cost", "accepted"}
        ll = xr.open_dataset(done, group=f"{m}/log_likelihood", engine=engine)
        assert ll["soc"].dims == ("site", "chain", "draw", "obs")
        sm = xr.open_dataset(done, group=f"{m}/summary", engine=engine)
        assert sm["mean"].dims == ("site", "param")
        assert list(sm["param_name"].values) == PARAMS[m]
        assert sm["status"].dtype == np.int8 and sm["status"].values.tolist() == [0, 2, 1, 4, 3]
        assert sm["n_accepted"].dtype == np.int64
        reasons = list(sm["reason"].values)
        assert reasons[:2] == REASONS[:2] and reasons[3:] == REASONS[3:]
        assert LONG_REASON.startswith(reasons[2]) and len(reasons[2].encode()) in (po.REASON_LEN - 1, po.REASON_LEN)
        assert sm["restarts"].dims == ("site", "restart_kind")
        assert list(sm["restart_kind_name"].values) == list(po.RESTART_KINDS)
        assert sm["sampler_ok"].dtype == bool
        for d in (post, ss, ll, sm):
            d.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_datatree_of_a_model(done, engine):
    xr = pytest.importorskip("xarray")
    if not hasattr(xr, "open_datatree"):
        pytest.skip("xarray without DataTree")
    dt = xr.open_datatree(done, group="compas", engine=engine)
    assert set(dt.children) == set(po.GROUPS)
    assert dt["posterior"].dataset.sizes["draw"] == D


def test_netcdf4_dataset_sees_netcdf_dimensions(done):
    netCDF4 = pytest.importorskip("netCDF4")
    with netCDF4.Dataset(done) as nc:
        assert set(nc.groups) == set(PARAMS)
        g = nc["clm5/log_likelihood"]
        assert {k: len(v) for k, v in g.dimensions.items()} == {"site": S, "id_len": 29, "chain": C, "draw": D,
                                                                "obs": L}
        assert g["soc"].dimensions == ("site", "chain", "draw", "obs")
        assert list(g["profile_id"][:]) == IDS
        sm = nc["clm5/summary"]
        assert sm["restarts"].dimensions == ("site", "restart_kind")
        assert list(sm["param_name"][:]) == PARAMS["clm5"]


def _rhat_rank_reference(x: np.ndarray) -> float:
    """Rank-normalised split R-hat of one (C, N) array, written out from Vehtari et al. (2021)."""
    def rhat(a):
        n = a.shape[1]
        b = n * np.var(a.mean(axis=1), ddof=1)
        w = np.mean(np.var(a, axis=1, ddof=1))
        return np.sqrt(((n - 1) / n * w + b / n) / w)

    def split(a):
        h = a.shape[1] // 2
        return np.vstack([a[:, :h], a[:, -h:]])

    def z(a):
        r = stats.rankdata(a, method="average").reshape(a.shape)
        return stats.norm.ppf((r - 3 / 8) / (a.size + 1 / 4))

    return max(rhat(z(split(x))), rhat(z(split(np.abs(x - np.median(x))))))


def test_arviz_rhat_is_per_site_and_right(done):
    xr = pytest.importorskip("xarray")
    az = pytest.importorskip("arviz")
    for i, m in enumerate(PARAMS):
        draws = make_fields(m, i)["draws"]
        post = xr.open_dataset(done, group=f"{m}/posterior")
        rh = az.rhat(post)
        for j, p in enumerate(PARAMS[m]):
            assert rh[p].dims == ("site",)
            want = [_rhat_rank_reference(draws[s, :, :, j]) for s in range(S)]
            assert np.allclose(rh[p].values, want, rtol=1e-12, atol=0), p
            if importlib.util.find_spec("prodampi.inference.diagnostics"):
                from prodampi.inference.diagnostics import rhat_rank

                assert np.allclose(rhat_rank(draws[..., j]), want, rtol=1e-12, atol=0)
        assert np.ptp(rh[PARAMS[m][0]].values) > 0  # sites differ: not one pooled value
        post.close()


def test_check_posterior_lifecycle(tmp_path):
    p = tmp_path / "posterior.h5"
    assert po.check_posterior(p) == "missing"
    write_file(p, complete=False)
    assert po.check_posterior(p).startswith("incomplete")
    with pytest.raises(InputDataError, match="incomplete"):
        po.read_summary(p, "clm5")
    with h5py.File(p, "r+") as f:
        po.mark_complete(f)
    assert po.check_posterior(p) is None
    assert "no checksum" in po.check_posterior(p, verify=True)
    po.add_checksums(p)
    assert po.check_posterior(p, verify=True) is None
    with h5py.File(p, "r+") as f:
        f["compas/summary/nse"][0] += 1.0
    assert po.check_posterior(p, verify=True) == "dataset /compas/summary/nse fails its checksum"
    with h5py.File(p, "r+") as f:
        del f["compas/sample_stats/lp"]
    assert po.check_posterior(p) == "dataset /compas/sample_stats/lp is missing"
    with h5py.File(p, "r+") as f:
        f.attrs["format_version"] = po.FORMAT_VERSION + 1
    assert "format version" in po.check_posterior(p)


def test_read_summary(done):
    s = po.read_summary(done, "clm5")
    fields = make_fields("clm5", 0)
    assert list(s["profile_id"]) == IDS and list(s["param_name"]) == PARAMS["clm5"]
    assert s["reason"][1] == REASONS[1]
    assert list(s["status_name"]) == ["converged", "rejected_nse", "rejected_gr", "bad_data", "solver_failure"]
    assert s["sampler_ok"].dtype == bool and list(s["sampler_ok"]) == list(fields["ok"])
    assert np.array_equal(s["gr_paper"], fields["gr_paper"])
    with pytest.raises(InputDataError, match="no model group"):
        po.read_summary(done, "nope")


def test_unwritten_rows_keep_fill_values(tmp_path):
    p = write_file(tmp_path / "part.h5", rows_parts=((1, 3),))
    xr = pytest.importorskip("xarray")
    for engine in ENGINES:
        sm = xr.open_dataset(p, group="clm5/summary", engine=engine)
        assert sm["status"].values.tolist() == [po.STATUS["not_run"], 2, po.STATUS["not_run"], 4,
                                                po.STATUS["not_run"]]
        assert sm["status"].dtype == np.int8  # no _FillValue masking
        assert sm["best_chain"].values[0] == -1 and np.isnan(sm["mean"].values[0]).all()
        assert sm["reason"].values[0] == ""
        sm.close()


def test_write_sites_rejects_bad_input(tmp_path):
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        po.create_posterior(f, {"clm5": spec("clm5")})
        good = make_fields("clm5", 0)
        with pytest.raises(ValueError, match="unknown posterior fields"):
            po.write_sites(f, "clm5", [0], {"drawz": good["draws"][:1]})
        with pytest.raises(ValueError, match="summary/soc_mod"):
            po.write_sites(f, "clm5", [0], {"soc_mod": np.zeros((1, L + 1))})
        with pytest.raises(ValueError, match="repeated"):
            po.write_sites(f, "clm5", [1, 1], {"nse": np.zeros(2)})
        with pytest.raises(ValueError, match="outside"):
            po.write_sites(f, "clm5", [S], {"nse": np.zeros(1)})
        with pytest.raises(ValueError, match="draws"):
            po.write_sites(f, "clm5", [0], {"draws": good["draws"][:1, ..., :2]})
        po.write_sites(f, "clm5", [2], {"status": np.array(["rejected_gr"])})
        assert f["clm5/summary/status"][2] == po.STATUS["rejected_gr"]
    bad = po.PosteriorSpec(["a", "a"], ["x"], [0.0], [1.0], 3, 4, 2)
    with h5py.File(tmp_path / "bad2.h5", "w") as f, pytest.raises(ValueError, match="duplicate site ids"):
        po.create_posterior(f, {"m": bad})


def test_status_vocabulary_matches_the_summary_kernel():
    assert set(po.STATUS) >= {"converged", "rejected_gr", "rejected_nse", "solver_failure", "bad_data",
                              "sampler_failure"}
    if importlib.util.find_spec("prodampi.inference.summary"):
        from prodampi.inference.summary import STATUS

        assert po.STATUS == STATUS


def test_layout_is_documented():
    assert "log_likelihood/soc" in po.__doc__ and "summary/reason" in po.__doc__
    paths = {d.path for d in po.model_layout(["a", "b"])}
    assert {f"summary/{k}" for k in ("mean_physical", "sd_physical", "mode_physical")} <= paths
    for path, _ in po.FIELDS.values():
        assert path == "posterior" or path in paths
    from prodampi.inference.sampler.base import RESULT_FIELDS

    assert set(RESULT_FIELDS) <= set(po.FIELDS)  # the stage can hand the kernel's results over as they are
