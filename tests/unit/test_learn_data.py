"""Covariate scaling, member seeds and the training / validation / bootstrap splits of stage learn."""

from __future__ import annotations

import numpy as np
import pytest

from prodampi.learn.data import (
    MinMaxScaler,
    best_guess_split,
    bootstrap_split,
    epoch_permutation,
    holdout_mask,
    member_names,
    member_seed,
)


def test_scaler_fits_on_grid_and_clips_sites():
    g = np.array([[0.0, 5.0, 1.0], [10.0, 5.0, 3.0], [np.nan, 1.0, 2.0], [5.0, 5.0, 2.0]])
    s = MinMaxScaler.fit(g, ["a", "b", "c"])
    assert np.array_equal(s.lo, [0.0, 5.0, 1.0]) and np.array_equal(s.hi, [10.0, 5.0, 3.0])  # NaN row ignored
    z = s.transform(np.array([[5.0, 7.0, 4.0], [-1.0, 5.0, np.nan]]))
    assert z.dtype == np.float32
    assert np.allclose(z[0], [0.5, 0.0, 1.0])  # constant column -> 0; above the grid max -> clipped to 1
    assert z[1, 0] == 0.0 and np.isnan(z[1, 2])
    with pytest.raises(ValueError, match="no grid cell"):
        MinMaxScaler.fit(np.full((2, 2), np.nan), ["a", "b"])


def test_member_seeds_are_keyed_by_model_member_purpose_only():
    a = member_seed(1, "clm5", "bg_01", "init")
    assert a == member_seed(1, "clm5", "bg_01", "init") and 0 <= a < 2**63
    others = {member_seed(2, "clm5", "bg_01", "init"), member_seed(1, "compas", "bg_01", "init"),
              member_seed(1, "clm5", "bg_02", "init"), member_seed(1, "clm5", "bg_01", "dropout")}
    assert a not in others and len(others) == 4
    assert member_names(2, 3) == [("bg_01", "best_guess"), ("bg_02", "best_guess"), ("bs_001", "bootstrap"),
                                  ("bs_002", "bootstrap"), ("bs_003", "bootstrap")]


def test_epoch_permutation_depends_on_seed_and_epoch():
    p = epoch_permutation(7, 3, 50)
    assert sorted(p) == list(range(50))
    assert np.array_equal(p, epoch_permutation(7, 3, 50))
    assert not np.array_equal(p, epoch_permutation(7, 4, 50))
    assert not np.array_equal(p, epoch_permutation(8, 3, 50))


def test_best_guess_split_random_and_keras_tail():
    sp = best_guess_split(100, 0.1, "random", 5)
    assert sp.val.size == 10 and sp.train.size == 90
    assert sorted(np.concatenate([sp.train, sp.val])) == list(range(100))
    assert not np.array_equal(sp.val, np.arange(90, 100))  # random, not the tail
    assert not np.array_equal(sp.val, best_guess_split(100, 0.1, "random", 6).val)
    tail = best_guess_split(100, 0.1, "keras_tail", 5)
    assert np.array_equal(tail.val, np.arange(90, 100)) and np.array_equal(tail.train, np.arange(90))
    assert not sp.oob.any()


def test_bootstrap_proda_no_leakage_and_out_of_bag():
    n = 2000
    sp = bootstrap_split(n, 0.1, "proda", 11)
    assert sp.train.size + sp.val.size == n  # N draws
    assert not set(sp.train) & set(sp.val)  # a validation site's copies are all in validation
    drawn = np.zeros(n, bool)
    drawn[sp.train] = True
    drawn[sp.val] = True
    assert np.array_equal(sp.oob, ~drawn)
    assert abs(sp.oob.mean() - np.exp(-1)) < 0.03  # ~ e^-1 of the sites are never drawn in N draws
    uniq = np.unique(np.concatenate([sp.train, sp.val]))
    assert abs(np.unique(sp.val).size - 0.1 * uniq.size) <= 1
    tc, v = sp.counts(n)
    assert tc.sum() == sp.train.size and v.sum() == np.unique(sp.val).size


def test_bootstrap_legacy_variants():
    n = 1000
    c = bootstrap_split(n, 0.1, "clm5_legacy", 3)
    drawn = np.concatenate([c.train, c.val])
    assert drawn.size == n and np.all(np.diff(drawn) >= 0)  # sorted resample, Keras tail
    assert c.val.size == 100 and c.val.min() >= c.train.max()
    m = bootstrap_split(n, 0.1, "compas_legacy", 3)
    assert m.train.size + m.val.size == 900
    with pytest.raises(ValueError):
        bootstrap_split(n, 0.1, "nope", 3)


def test_holdout_mask():
    h = holdout_mask(50, 0.2, 9)
    assert h.sum() == 10 and np.array_equal(h, holdout_mask(50, 0.2, 9))
    assert not holdout_mask(50, 0.0, 9).any()
