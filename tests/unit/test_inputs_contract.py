"""The ``inputs.h5`` contract: layout check on write, checking reader, atomic writer."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from prodampi.errors import InputDataError
from prodampi.io import h5file
from prodampi.io.inputs import (
    FORMAT_VERSION,
    LAYOUT,
    check_inputs,
    conditions,
    read_inputs,
    undeclared_datasets,
    write_inputs,
)


def _groups(n_prof: int = 2, n_input: int = 3) -> dict:
    """A minimal table-source ``inputs.h5`` tree (no grid): P profiles of 1..P layers, N ledger rows, K = 2."""
    offsets = np.concatenate([[0], np.cumsum(np.arange(1, n_prof + 1))]).astype(np.int64)
    n_lay = int(offsets[-1])
    top = np.concatenate([np.arange(k) * 10.0 for k in range(1, n_prof + 1)])
    layer = {"top_cm": top, "bottom_cm": top + 10.0, "node_depth_m": (top + 5.0) / 100.0,
             "soc_g_per_kg": np.full(n_lay, 12.0), "bd_g_cm3": np.full(n_lay, 1.3), "coarse_pct": np.zeros(n_lay),
             "soc_density_g_m3": np.full(n_lay, 12.0 * 1.3 * 1000.0), "bd_from_ptf": np.zeros(n_lay, np.uint8),
             "coarse_missing": np.ones(n_lay, np.uint8), "obs_usable": np.ones(n_lay, np.uint8),
             "bd_source": np.array([b"measured"] * n_lay)}
    ids = np.array([f"p{i}".encode() for i in range(n_prof)])
    forcing = {"tsoi_k": np.full((n_prof, 20, 12), 280.0), "w_scalar": np.full((n_prof, 20, 12), 0.5),
               "o_scalar": np.ones((n_prof, 20, 12)), "fpi": np.ones((n_prof, 20, 12)),
               "altmax_m": np.full((n_prof, 12), 8.6), "altmax_lastyear_m": np.full((n_prof, 12), 8.6),
               "nbedrock": np.full(n_prof, 20, dtype=np.int64), "litter_input": np.full((n_prof, 4), 100.0)}
    return {
        "profiles": {"profile_id": ids, "source": np.array([b"isis"] * n_prof), "lat": np.linspace(-10, 10, n_prof),
                     "lon": np.linspace(0, 20, n_prof), "offsets": offsets, **layer},
        "ledger": {"profile_id": np.array([f"p{i}".encode() for i in range(n_input)]),
                   "source": np.array([b"isis"] * n_input), "kept": (np.arange(n_input) < n_prof).astype(np.uint8),
                   "reasons": np.array([b""] * n_prof + [b"too_few_layers: 1"] * (n_input - n_prof)),
                   "notes": np.array([b""] * n_input), "n_layers_read": np.ones(n_input, np.int64),
                   "n_layers_kept": np.ones(n_input, np.int64)},
        "sites": {"forcing": forcing, "covariates": np.zeros((n_prof, 2)), "covariate_names": np.array([b"a", b"b"]),
                  "forcing_ok": np.ones(n_prof, np.uint8), "forcing_reason": np.array([b""] * n_prof),
                  "forcing_source": np.array([b"cesm2"] * n_prof)},
    }


ATTRS = {"source": "table", "prepare_key": "k", "summary": '{"profiles_kept": 2}', "provenance": "{}",
         "models": '["clm5"]'}


@pytest.fixture
def written(tmp_path):
    path = tmp_path / "inputs.h5"
    write_inputs(path, _groups(), ATTRS)
    return path


def test_round_trip(written):
    assert check_inputs(written) is None
    inp = read_inputs(written)
    assert inp["profiles"].n_profiles == 2 and inp["profiles"].n_layers == 3
    assert inp["site_forcing"].n_sites == 2
    assert inp["summary"] == {"profiles_kept": 2}
    assert int(inp["attrs"]["format_version"]) == FORMAT_VERSION and inp["attrs"]["complete"] == 1
    assert undeclared_datasets(written) == []
    assert [p.name for p in written.parent.iterdir()] == ["inputs.h5"]  # no temporary file left


def test_version_mismatch_named(written):
    with h5py.File(written, "r+") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 7
    with pytest.raises(InputDataError) as ei:
        read_inputs(written, deck_hint="deck.yaml")
    msg = ei.value.problems[0]
    assert str(written) in msg and f"version {FORMAT_VERSION + 7}" in msg and f"reads version {FORMAT_VERSION}" in msg
    assert msg.endswith("prodampi prepare deck.yaml")
    assert "format version" in check_inputs(written)


@pytest.mark.parametrize("dataset", ["sites/forcing/tsoi_k", "profiles/offsets", "ledger/kept"])
def test_missing_dataset_named(written, dataset):
    with h5py.File(written, "r+") as f:
        del f[dataset]
    with pytest.raises(InputDataError) as ei:
        read_inputs(written)
    assert ei.value.problems == [f"{written}: dataset /{dataset} is missing; make it again with: prodampi prepare "
                                 "DECK"]


def test_incomplete_and_missing_file(tmp_path, written):
    with h5py.File(written, "r+") as f:
        f.attrs["complete"] = 0
    with pytest.raises(InputDataError, match="inputs file is incomplete"):
        read_inputs(written)
    with pytest.raises(InputDataError, match="inputs file is missing"):
        read_inputs(tmp_path / "nope.h5")


def test_shape_disagreement_named(written):
    with h5py.File(written, "r+") as f:
        del f["profiles/lat"]
        f["profiles/lat"] = np.zeros(5)  # P = 2 elsewhere
    with pytest.raises(InputDataError) as ei:
        read_inputs(written)
    assert "/profiles/lat has shape (5,)" in ei.value.problems[0]


def test_writer_refuses_data_off_the_layout(tmp_path):
    g = _groups()
    del g["sites"]["forcing_source"]
    with pytest.raises(ValueError, match="/sites/forcing_source is missing"):
        write_inputs(tmp_path / "inputs.h5", g, ATTRS)
    g = _groups()
    g["profiles"]["offsets"] = g["profiles"]["offsets"][:-1]  # (P,) instead of (P+1,)
    with pytest.raises(ValueError, match="profiles/offsets"):
        write_inputs(tmp_path / "inputs.h5", g, ATTRS)
    assert list(tmp_path.iterdir()) == []


def test_synthetic_needs_its_truth_and_grid():
    held = conditions({"source": "synthetic", "models": '["compas"]'}, set())
    assert {"synthetic", "synthetic:compas", "grid"} <= held and "synthetic:clm5" not in held
    problems = h5file.check_layout(h5file.tree_index(_groups()), LAYOUT, held)
    assert "dataset /profiles_truth/truth_g_m3 is missing" in problems
    assert "dataset /grid/truth/theta_compas is missing" in problems
    assert not any("theta_clm5" in p for p in problems)


def test_atomic_write_keeps_previous_file_on_failure(written):
    before = written.read_bytes()

    def boom() -> None:
        raise RuntimeError("killed before the rename")

    with pytest.raises(RuntimeError):
        h5file.write_h5_atomic(written, {"x": np.zeros(3)}, {}, before_replace=boom)
    assert written.read_bytes() == before
    assert [p.name for p in written.parent.iterdir()] == ["inputs.h5"]


def test_layout_documented_in_module_docstring():
    import prodampi.io.inputs as mod

    for d in LAYOUT:
        assert d.path in mod.__doc__ and d.unit is not None
