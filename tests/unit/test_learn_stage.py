"""Stage learn's site selection: the assimilation's verdict by default, re-judged on the deck's thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from prodampi.deck import validate_deck
from prodampi.errors import StageError
from prodampi.inference.summary import STATUS
from prodampi.stages.learn import _grid_cells, _passes_filters


def _deck(mode: str = "paper", **learn):
    return validate_deck({"run_dir": "r", "assimilate": {"mode": mode}, "learn": learn})


def _summary():
    st = np.array([STATUS[k] for k in ("converged", "rejected_gr", "rejected_nse", "bad_data", "solver_failure",
                                       "rejected_gr")], dtype=np.int8)
    gr = np.array([[1.01, 1.03], [1.2, 1.4], [1.0, 1.02], [np.nan, np.nan], [np.nan, np.nan], [2.0, 40.0]])
    rhat = np.array([[1.0, 1.1], [1.01, 1.02], [1.0, 1.0], [np.nan, np.nan], [np.nan, np.nan], [1.5, 1.5]])
    return st, {"gr_paper": gr, "rhat": rhat, "nse_legacy": np.array([0.5, 0.4, -0.2, np.nan, np.nan, 0.3]),
                "nse": np.array([0.6, -0.1, 0.1, np.nan, np.nan, 0.2])}


def test_default_is_the_assimilation_status():
    st, s = _summary()
    assert _passes_filters(s, st, _deck()).tolist() == [True, False, False, False, False, False]


def test_gelman_rubin_threshold_rejudges_sampled_sites_only():
    st, s = _summary()
    got = _passes_filters(s, st, _deck(gelman_rubin_max=1.5))  # mean G-R: 1.02, 1.3, 1.01, -, -, 21
    assert got.tolist() == [True, True, False, False, False, False]  # NSE verdict kept; failures never train
    got = _passes_filters(s, st, _deck(gelman_rubin_max=100.0, nse_min=-1.0))
    assert got.tolist() == [True, True, True, False, False, True]


def test_textbook_uses_max_rank_rhat_and_eq1_nse():
    st, s = _summary()
    got = _passes_filters(s, st, _deck("textbook", gelman_rubin_max=1.05, nse_min=0.0))
    assert got.tolist() == [False, False, True, False, False, False]  # site 0: max R-hat 1.1; site 1: NSE < 0


def test_grid_and_site_covariates_must_match():
    inp = {"grid": {"cells": {"covariates": np.zeros((2, 2)), "covariate_names": [b"a", b"b"],
                              "lat": np.zeros(2), "lon": np.zeros(2)}}}
    assert _grid_cells(inp, ["a", "b"])["values"].shape == (2, 2)
    with pytest.raises(StageError, match="not the sites'"):
        _grid_cells(inp, ["a", "c"])
    assert _grid_cells({"grid": None}, ["a"]) == {}
