"""The ``ensemble.h5`` contract (prodampi.io.ensemble): round trip, medians, checks, atomicity, validation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from prodampi.errors import InputDataError
from prodampi.io import ensemble as en
from prodampi.io.h5file import HASH_ATTR, check_layout, content_hash, file_index, verify_file

KEY = "deck-hash-0123"
#: per model: (best-guess members, bootstrap members, sites, cells, params, epochs, covariates)
SIZES = {"clm5": (4, 3, 9, 13, 5, 6, 4), "compas": (3, 5, 7, 11, 3, 4, 2)}


def blake(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def make(run_dir: Path, model: str, seed: int) -> en.ModelEnsemble:
    """A random, consistent ensemble of one model; writes its weights files (random bytes)."""
    r = np.random.default_rng(seed)
    nb, ns, S, C, P, E, K = SIZES[model]
    M = nb + ns
    names = [f"bg_{i + 1:02d}" for i in range(nb)] + [f"bs_{i + 1:03d}" for i in range(ns)]
    files, digests = [], []
    for n in names:
        rel = f"{en.WEIGHTS_DIR}/{model}/{n}.pt"
        data = r.bytes(int(r.integers(10, 300)))
        (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / rel).write_bytes(data)
        files.append(rel)
        digests.append(blake(data))
    holdout = np.zeros(S, bool)
    holdout[-1] = True
    count = np.zeros((M, S), np.int64)
    val = np.zeros((M, S), bool)
    for m in range(M):
        usable = np.flatnonzero(~holdout)
        if m < nb:
            count[m, usable] = 1
        else:
            np.add.at(count[m], r.choice(usable, size=usable.size, replace=True), 1)
        drawn = np.flatnonzero(count[m] > 0)
        v = r.choice(drawn, size=max(1, drawn.size // 5), replace=False)
        val[m, v], count[m, v] = True, 0
    oob = (count == 0) & ~val & ~holdout[None, :]
    run = r.integers(1, E + 1, size=M)
    tl, vl = r.uniform(0.1, 1, size=(M, E)), r.uniform(0.1, 1, size=(M, E))
    for m in range(M):
        tl[m, run[m]:] = vl[m, run[m]:] = np.nan
    return en.ModelEnsemble(
        param_name=[f"{model}_p{i}" for i in range(P)], member_name=names,
        member_kind=["best_guess"] * nb + ["bootstrap"] * ns, member_seed=r.integers(0, 2**62, size=M),
        member_epochs_run=run, member_best_epoch=r.integers(0, run + 1), member_best_val_loss=r.uniform(size=M),
        member_stopped_early=r.uniform(size=M) < 0.5, member_weights_file=files, member_weights_blake2b=digests,
        train_loss=tl, val_loss=vl, train_count=count, val=val, oob=oob, holdout=holdout,
        profile_id=[f"wosis-{i}é" for i in range(S)], site_row=r.permutation(3 * S)[:S],
        site_target=r.uniform(size=(S, P)),
        site_lat=r.uniform(-60, 80, S), site_lon=r.uniform(-180, 180, S), cell_index=np.arange(C) * 2,
        cell_lat=r.uniform(-60, 80, C), cell_lon=r.uniform(-180, 180, C),
        pred_site=r.normal(0.5, 0.4, size=(M, S, P)).astype(np.float32),
        pred_cell=r.normal(0.5, 0.4, size=(M, C, P)),  # float64: the writer converts member by member
        scaling_min=r.uniform(-1, 0, K), scaling_max=r.uniform(1, 2, K),
        scaling_names=[f"cov{i}" for i in range(K)], scaling_categorical=np.arange(K) % 2)


@pytest.fixture
def written(tmp_path):
    models = {"clm5": make(tmp_path, "clm5", 1), "compas": make(tmp_path, "compas", 2)}
    path = tmp_path / en.FILE_NAME
    attrs = {"learn_key": KEY, "summary": {"n": 2}, "provenance": {"git": "x"}, "config": {"epochs": 6}}
    en.write_ensemble(path, models, attrs)
    return path, models


# ------------------------------------------------------------------------------------------------ round trip
def test_round_trip_every_field(written):
    path, models = written
    assert en.check_ensemble(path, key=KEY) is None
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["models"]) == ["clm5", "compas"]
        assert int(f.attrs["format_version"]) == en.FORMAT_VERSION and int(f.attrs["complete"]) == 1
        assert f.attrs["learn_key"] == KEY and json.loads(f.attrs["config"]) == {"epochs": 6}
        # every dataset is declared, none undeclared, per model with its own sizes
        index = file_index(f)
        assert {p.split("/")[0] for p in index} == set(models)
        for m in models:
            mine = {p: v for p, v in index.items() if p.startswith(m + "/")}
            assert check_layout(mine, en.layout(m), set(), strict=True) == []
        assert f["clm5/pred/cell"].shape == (7, 13, 5) and f["compas/pred/cell"].shape == (8, 11, 3)
        assert f["clm5/pred/cell"].dtype == np.float32
    for m, ens in models.items():
        got = en.read_ensemble(path, m)
        assert set(got) == {d.path for d in en.LAYOUT}
        for field, p, _dims, dtype, *_ in en._ROWS:
            if field is None:
                continue
            want = np.asarray(getattr(ens, field))
            if dtype == "S":
                assert got[p].dtype.kind == "U"
                assert got[p].tolist() == [str(x) for x in want]
            elif dtype == "f4":
                np.testing.assert_array_equal(got[p], want.astype(np.float32))
            else:
                np.testing.assert_array_equal(got[p], want, err_msg=p)
        assert np.isnan(got["history/train_loss"]).any()  # NaN padding survives


def test_streamed_checksums_equal_whole_array_hash(written):
    path, _ = written
    assert verify_file(path) == []
    with h5py.File(path, "r") as f:
        for m in ("clm5", "compas"):
            for p in ("pred/site", "pred/cell"):
                ds = f[f"{m}/{p}"]
                assert ds.attrs[HASH_ATTR] == content_hash(ds[()])


def test_medians_are_numpys_median_over_best_guess_members(written):
    path, models = written
    for m, ens in models.items():
        got = en.read_ensemble(path, m, ("best_guess/site_median", "best_guess/cell_median", "pred/cell"))
        assert set(got) == {"best_guess/site_median", "best_guess/cell_median", "pred/cell"}
        bg = np.array(ens.member_kind) == "best_guess"
        assert 0 < bg.sum() < bg.size
        want_site = np.median(np.asarray(ens.pred_site, np.float32)[bg], axis=0)
        want_cell = np.median(np.asarray(ens.pred_cell).astype(np.float32)[bg], axis=0)
        np.testing.assert_array_equal(got["best_guess/site_median"], want_site)
        np.testing.assert_array_equal(got["best_guess/cell_median"], want_cell)
        # the bootstrap members change the all-member median: the writer really selected the best guesses
        assert not np.allclose(got["best_guess/cell_median"], np.median(got["pred/cell"], axis=0))


# ------------------------------------------------------------------------------------------------ check
def test_missing_dataset_is_named(written):
    path, _ = written
    with h5py.File(path, "r+") as f:
        del f["clm5/split/oob"]
    why = en.check_ensemble(path, verify=False)
    assert why is not None and "/clm5/split/oob" in why and "missing" in why
    with pytest.raises(InputDataError, match="/clm5/split/oob"):
        en.read_ensemble(path, "compas")


def test_wrong_shape_is_named(written):
    path, _ = written
    with h5py.File(path, "r+") as f:
        del f["compas/cell/lat"]
        ds = f.create_dataset("compas/cell/lat", data=np.zeros(12))
        ds.attrs[HASH_ATTR] = content_hash(ds[()])
    why = en.check_ensemble(path)
    assert why is not None and "/compas/cell/lat" in why and "shape" in why


def test_float64_prediction_is_a_wrong_dtype(written):
    path, _ = written
    with h5py.File(path, "r+") as f:
        a = f["clm5/pred/site"][()].astype(np.float64)
        del f["clm5/pred/site"]
        f.create_dataset("clm5/pred/site", data=a).attrs[HASH_ATTR] = content_hash(a)
    why = en.check_ensemble(path)
    assert why is not None and "/clm5/pred/site" in why and "f4" in why


def test_flipped_byte_fails_the_checksum(written):
    path, _ = written
    with h5py.File(path, "r") as f:
        off = f["clm5/pred/cell"].id.get_offset()
    raw = bytearray(path.read_bytes())
    raw[off + 17] ^= 0x40
    path.write_bytes(bytes(raw))
    why = en.check_ensemble(path)
    assert why is not None and "/clm5/pred/cell" in why and "checksum" in why
    assert en.check_ensemble(path, verify=False) is None  # metadata only
    with pytest.raises(InputDataError, match="/clm5/pred/cell fails its checksum"):
        en.read_ensemble(path, "clm5", ("cell/index", "pred/cell"))
    assert set(en.read_ensemble(path, "clm5", ("cell/index",))) == {"cell/index"}  # the rest is still readable


def test_modified_or_missing_weights_file(written):
    path, models = written
    rel = models["compas"].member_weights_file[2]
    w = path.parent / rel
    data = bytearray(w.read_bytes())
    data[0] ^= 1
    w.write_bytes(bytes(data))
    why = en.check_ensemble(path)
    assert why is not None and rel in why and "/compas/member/weights_blake2b" in why
    assert models["compas"].member_name[2] in why
    w.unlink()
    why = en.check_ensemble(path, verify=False)
    assert why is not None and rel in why and "missing" in why and "/compas/member/weights_file" in why


def test_key_incomplete_version_missing(written, tmp_path):
    path, _ = written
    assert en.check_ensemble(path, key=KEY) is None
    assert en.check_ensemble(path, key="another") == "made by another deck (its learn_key differs)"
    with pytest.raises(InputDataError, match="learn_key differs"):
        en.read_ensemble(path, "clm5", ("cell/index",), key="another")
    with pytest.raises(InputDataError, match="no model 'nope'"):
        en.read_ensemble(path, "nope")
    with pytest.raises(ValueError, match="pred/nope"):
        en.read_ensemble(path, "clm5", ("pred/nope",))
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = en.FORMAT_VERSION + 1
    assert "format version" in en.check_ensemble(path)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = en.FORMAT_VERSION
        f.attrs["complete"] = 0
    assert en.check_ensemble(path).startswith("incomplete")
    assert en.check_ensemble(tmp_path / "none.h5") == "missing"


# ------------------------------------------------------------------------------------------------ atomic
def test_killed_before_rename_leaves_no_file_and_keeps_the_old_one(tmp_path):
    models = {"clm5": make(tmp_path, "clm5", 3)}
    path = tmp_path / en.FILE_NAME

    def boom() -> None:
        raise RuntimeError("killed")

    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(RuntimeError, match="killed"):
        en.write_ensemble(path, models, {"learn_key": KEY}, before_replace=boom)
    assert not path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temporary left behind
    en.write_ensemble(path, models, {"learn_key": KEY})
    old = path.read_bytes()
    with pytest.raises(RuntimeError, match="killed"):
        en.write_ensemble(path, {"clm5": make(tmp_path, "clm5", 4)}, {"learn_key": "new"}, before_replace=boom)
    assert path.read_bytes() == old


# ------------------------------------------------------------------------------------------------ validate
@pytest.mark.parametrize("field", ["pred_cell", "pred_site", "site_target"])
def test_nan_where_not_allowed_names_the_field(tmp_path, field):
    ens = make(tmp_path, "clm5", 5)
    a = np.array(getattr(ens, field), dtype=float)
    a.flat[3] = np.nan
    setattr(ens, field, a)
    with pytest.raises(ValueError, match=field):
        ens.validate()
    with pytest.raises(ValueError, match=f"clm5: ModelEnsemble.{field}"):
        en.write_ensemble(tmp_path / en.FILE_NAME, {"clm5": ens}, {"learn_key": KEY})
    assert not (tmp_path / en.FILE_NAME).exists()


def test_inconsistent_shapes_and_contents(tmp_path):
    def bad(field, value, match):
        ens = make(tmp_path, "compas", 6)
        setattr(ens, field, value)
        with pytest.raises(ValueError, match=match):
            ens.validate()

    ens = make(tmp_path, "compas", 6)
    ens.validate()  # the fixture itself is consistent; NaN in the histories is allowed
    bad("cell_lat", np.zeros(12), "cell_lat")
    bad("pred_cell", np.zeros((8, 11, 4)), "pred_cell")
    bad("val_loss", np.zeros((8, 5)), "val_loss")
    bad("member_kind", ["bootstrap"] * 8, "no best_guess")
    bad("member_kind", ["best_guess"] * 7 + ["jackknife"], "jackknife")
    bad("member_name", ["bg_01"] * 8, "member_name")
    bad("oob", np.ones((8, 7), np.uint8), "oob")
    bad("holdout", np.ones(7, bool), "holdout")
    bad("val", np.full((8, 7), 2), "val")
    bad("member_weights_file", ["../x.pt"] * 8, "member_weights_file")
    bad("member_weights_blake2b", ["xyz"] * 8, "member_weights_blake2b")
    bad("member_epochs_run", np.full(8, 99), "member_epochs_run")


def test_read_hash_equals_content_hash():
    r = np.random.default_rng(7)
    for a in (r.normal(size=(3, 4, 5)).astype(np.float32), np.arange(6).reshape(2, 3),
              np.array([b"a", "béé".encode(), b""]), np.zeros((0, 3), np.float32), np.array([1, 0], np.uint8),
              r.normal(size=(4, 6)).T):  # not C-contiguous
        assert en._hash(a) == content_hash(a)
