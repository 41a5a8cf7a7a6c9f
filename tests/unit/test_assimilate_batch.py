"""Nothing lost (issue 10, acceptance 4): bad sites in a batch are recorded with their reasons and the other
sites' results are bit-identical to a batch without them; a batch resumed from its checkpoint ends with the
same bits."""

from __future__ import annotations

import numpy as np
import pytest

from prodampi.inference.targets import SiteObservations
from prodampi.io.staging import batch_path, read_part, state_path
from prodampi.soil.forcing import Forcing
from prodampi.stages.assimilate_batch import BatchInput, Counters, run_batch
from prodampi.testing.forcing import frozen_column_forcing, random_forcing

DEPTHS = np.array([0.05, 0.15, 0.3, 0.5, 0.8])


def _deck(mode: str) -> dict:
    return {"seed": 3, "model_options": {}, "logging": {"progress_every_s": 1e9},
            "assimilate": {"mode": mode, "chains": 3, "test_iterations": 150, "iterations": 200, "adapt_start": 80,
                           "draws": 10, "init": 0.5, "failure_dj": "penalty", "accepted_capacity": 64,
                           "obs_sigma_log": 0.5, "checkpoint_every_s": 1e9, "checkpoint_every_steps": None,
                           "gelman_rubin_max": 1.05, "nse_min": 0.0, "nse_definition": None}}


def _good_sites(model_name: str, n: int):
    rng = np.random.default_rng(12)
    forc = random_forcing(rng, n, zero_input_frac=0.0, permafrost_frac=0.0)
    soc = 20_000.0 * np.exp(-DEPTHS / 0.4)[None, :] * np.exp(rng.normal(0, 0.1, (n, DEPTHS.size)))  # g C m-3
    return forc, soc


def _batch(model_name: str, forc: Forcing, depth: np.ndarray, soc: np.ndarray, ids: list[str]) -> BatchInput:
    ok, _ = forc.check()
    return BatchInput(model=model_name, batch=0, rows=np.arange(len(ids)), profile_ids=np.array(ids),
                      forcing=forc, forcing_ok=np.asarray(ok, dtype=bool),
                      obs=SiteObservations.from_padded(depth, soc, n_max=DEPTHS.size))


def _run(tmp, bi: BatchInput, mode: str, **kw) -> dict:
    out = run_batch(bi, _deck(mode), tmp, "k", Counters(), 0, lambda p: None)
    assert not out.stopped
    got = read_part(batch_path(tmp, bi.model, 0), "k")
    assert got is not None
    return got[0]


@pytest.mark.parametrize("mode", ["paper", "textbook"])
def test_bad_sites_are_recorded_and_do_not_change_the_others(tmp_path, mode):
    m = "compas"  # its frozen column fails everywhere (0/0 in the deep layers)
    forc, soc = _good_sites(m, 3)
    depth = np.tile(DEPTHS, (3, 1))
    ref = _run(tmp_path / "ref", _batch(m, forc, depth, soc, ["a", "b", "c"]), mode)

    # bad sites: all layers equal, one layer, NaN values only, NaN forcing, a frozen column
    eq = np.full(DEPTHS.size, 2000.0)
    one = np.array([3000.0, np.nan, np.nan, np.nan, np.nan])
    nan = np.full(DEPTHS.size, np.nan)
    nan_forc = forc.take(np.array([0]))
    bad_f = Forcing(**{k: (v.astype(float).copy() if k != "nbedrock" else v.copy())
                       for k, v in nan_forc.as_dict().items()})
    bad_f.litter_input[...] = np.nan
    frozen = frozen_column_forcing(1)
    forcs = Forcing.concatenate([forc.take(np.array([0])), forc.take(np.array([1])), forc.take(np.array([1])),
                                 forc.take(np.array([1])), bad_f, frozen, forc.take(np.array([1])),
                                 forc.take(np.array([2]))])
    obs = np.stack([soc[0], eq, one, nan, soc[1], soc[1], soc[1], soc[2]])
    ids = ["a", "equal", "one", "nan", "nanforcing", "frozen", "b", "c"]
    got = _run(tmp_path / "mix", _batch(m, forcs, np.tile(DEPTHS, (8, 1)), obs, ids), mode)

    reason = dict(zip(ids, got["reason"]))
    assert reason["equal"].startswith("bad_data") and "equal" in reason["equal"], reason
    assert reason["one"].startswith("bad_data") and reason["nan"].startswith("bad_data"), reason
    assert reason["nanforcing"].startswith("bad_data: forcing"), reason
    assert reason["frozen"].split(":")[0] in ("solver_failure", "sampler_failure"), reason["frozen"]
    for i in (1, 2, 3, 4, 5):
        assert got["status"][i] in (3, 4, 5)  # solver_failure, bad_data, sampler_failure
        if got["status"][i] == 4 or reason[ids[i]].endswith("at kp0"):  # not sampled at all
            assert np.isnan(got["draws"][i]).all() and not got["ok"][i]
    for name in ("draws", "cost", "lp", "accepted", "pointwise", "mean", "sd", "soc_mod", "n_accepted",
                 "gr_paper", "rhat", "ess_bulk", "status"):
        for j_ref, j_got in ((0, 0), (1, 6), (2, 7)):
            a, b = np.asarray(ref[name][j_ref]), np.asarray(got[name][j_got])
            assert a.tobytes() == b.tobytes(), (name, ids[j_got])


@pytest.mark.parametrize("stop_at", [120, 700, 1400])
def test_resume_from_a_checkpoint_gives_the_same_bits(tmp_path, monkeypatch, stop_at):
    """Stopped in the test run, the first formal run, and a later chain."""
    m = "compas"
    forc, soc = _good_sites(m, 3)
    bi = _batch(m, forc, np.tile(DEPTHS, (3, 1)), soc, ["a", "b", "c"])
    ref = _run(tmp_path / "ref", bi, "paper")
    # stop after ``stop_at`` steps (a recorded signal), then resume from the state file
    import prodampi.stages.assimilate_batch as ab

    calls = {"n": 0}

    def fake_signal():
        calls["n"] += 1
        return 15 if calls["n"] == stop_at else None

    monkeypatch.setattr(ab, "stop_signal", fake_signal)
    out = run_batch(bi, _deck("paper"), tmp_path / "cut", "k", Counters(), 0, lambda p: None)
    assert out.stopped and state_path(tmp_path / "cut", m, 0).exists()
    monkeypatch.setattr(ab, "stop_signal", lambda: None)
    got = _run(tmp_path / "cut", bi, "paper")
    assert not state_path(tmp_path / "cut", m, 0).exists()
    for k in ref:
        assert np.asarray(ref[k]).tobytes() == np.asarray(got[k]).tobytes(), k
