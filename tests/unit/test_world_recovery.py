"""The synthetic world's parameter-recovery variant (prepare.world.layers = "nodes", noise = false)."""

from __future__ import annotations

import numpy as np
import pytest

from prodampi.data.synthetic_profiles import synthetic_profile_table
from prodampi.data.world import make_world
from prodampi.deck import DeckError, validate_deck
from prodampi.inference.targets import ProfileTarget, SiteObservations
from prodampi.soil import get_model
from prodampi.soil.layers import ZISOI_M, nodes_m


@pytest.fixture(scope="module")
def world():
    return make_world(4.0, seed=5, n_profiles=40, truth="clm5", models=("clm5",), layers="nodes", noise=False)


def test_nodes_noise_free_profiles_equal_the_true_soc(world):
    p = world.profiles
    n = p["n_layers"].size
    nl = p["n_layers"]
    assert n > 0 and ((nl >= 3) & (nl <= 20)).all() and (nl == 20).any() and (nl < 20).any()
    inside = np.arange(20)[None, :] < nl[:, None]  # the layers above each site's bedrock
    np.testing.assert_array_equal(np.where(inside, p["bottom_cm"], -1.0),
                                  np.where(inside, np.tile(np.round(ZISOI_M[:20] * 100, 6), (n, 1)), -1.0))
    np.testing.assert_allclose(np.where(inside, p["node_m"], 0.0), np.where(inside, np.tile(nodes_m(), (n, 1)), 0.0),
                               rtol=1e-14, atol=1e-15)
    assert np.isnan(p["soc_density_g_m3"][~inside]).all()
    true_nodes = world.truth["soc_clm5_g_m3"][p["valid_cell"]]  # (n, 20) CLM5 at the true parameters
    ok = np.isfinite(true_nodes).all(axis=1)
    assert ok.sum() >= 0.9 * n
    okl = ok[:, None] & inside
    np.testing.assert_array_equal(p["truth_clm5_g_m3"][okl], true_nodes[okl])  # identity operator
    np.testing.assert_allclose(p["soc_density_g_m3"][okl], true_nodes[okl], rtol=1e-10)
    assert (p["layer_flag"][inside] == 0).all()
    np.testing.assert_allclose(p["log_noise"][okl], 0.0, atol=1e-10)
    assert world.attrs["profile_layers"] == "nodes" and world.attrs["profile_noise"] is False
    # the profile table the prepare stage screens recomputes the same densities from content, BD and coarse
    t = synthetic_profile_table(world.to_arrays()["profiles"])
    assert t.profile_id.size == n and np.isfinite(t.layers["soc_g_per_kg"]).all()


def test_target_at_the_true_parameters_has_zero_cost(world):
    p = world.profiles
    true_nodes = world.truth["soc_clm5_g_m3"][p["valid_cell"]]
    rows = np.flatnonzero(np.isfinite(true_nodes).all(axis=1) & (true_nodes > 0).all(axis=1))[:12]
    model = get_model("clm5")
    prep = model.prepare(world.forcing.take(p["valid_cell"][rows]))
    obs = SiteObservations.from_padded(p["node_m"][rows], p["soc_density_g_m3"][rows], p["n_layers"][rows])
    assert (obs.reason == "").all() and obs.n_obs == p["n_layers"][rows].max()
    target = ProfileTarget(model, prep, obs)
    u = world.truth["u_clm5"][p["valid_cell"][rows]]
    sidx = np.arange(rows.size)
    e = target.evaluate(u, sidx)
    assert not e.failed.any()
    np.testing.assert_allclose(e.cost, 0.0, atol=1e-16)
    e_nse = ProfileTarget(model, prep, obs, cost="compas_nse").evaluate(u, sidx)
    np.testing.assert_allclose(1.0 - e_nse.cost / 5.0, 1.0, atol=1e-12)
    # and a clearly wrong parameter vector does not
    e_off = target.evaluate(np.clip(u + 0.1, 0.01, 0.99), sidx)
    assert (~e_off.failed).any() and (e_off.cost[~e_off.failed] > 1e-3).all()


def test_deck_keys():
    d = validate_deck({"run_dir": "/tmp/x"})
    w = d["prepare"]["world"]
    assert w["layers"] == "realistic" and w["noise"] is True
    d = validate_deck({"run_dir": "/tmp/x", "prepare": {"world": {"layers": "nodes", "noise": False,
                                                                           "truth": "compas"}}})
    assert d["prepare"]["world"]["layers"] == "nodes" and d["prepare"]["world"]["noise"] is False
    with pytest.raises(DeckError, match="layers"):
        validate_deck({"run_dir": "/tmp/x", "prepare": {"world": {"layers": "deep"}}})
    with pytest.raises(ValueError, match="layers"):
        make_world(4.0, seed=5, n_profiles=5, models=(), layers="deep")


def test_cells_sites_are_distinct_grid_cells():
    """``sites: cells``: one site per distinct valid cell (the authors draw grid cells), at the cell centre."""
    w = make_world(4.0, seed=5, n_profiles=60, truth="clm5", models=("clm5",), layers="nodes", noise=False,
                   sites="cells")
    p = w.profiles
    assert p["valid_cell"].size == 60 and np.unique(p["valid_cell"]).size == 60
    assert w.attrs["profile_sites"] == "cells"
    clustered = make_world(4.0, seed=5, n_profiles=60, truth="clm5", models=("clm5",), layers="nodes",
                           noise=False)
    assert np.unique(clustered.profiles["valid_cell"]).size < 60  # the WoSIS-like default clusters
    with pytest.raises(ValueError):
        make_world(4.0, seed=5, n_profiles=10, sites="grid")
