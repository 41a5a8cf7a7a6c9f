"""What the networks learn from: covariate scaling, member seeds, training / validation / bootstrap splits.

Pure numpy, no files: the stage :mod:`prodampi.stages.learn` reads ``inputs.h5`` and ``posterior.h5`` and
calls these.

* **Scaling** (spec ``proda_nn_maps.md`` §4.2): per covariate column the min and max over the valid grid
  cells, ``x' = clip((x - min) / (max - min), 0, 1)``; a column constant on the grid scales to 0.  Categorical
  covariates enter as their integer codes, scaled the same way (the authors' ordinal coding).
* **Seeds**: every random draw of a member -- its initial weights, dropout masks, epoch shuffles, its split --
  comes from :func:`member_seed` (seed, model, member name, purpose), never from the rank, the group, the
  stack it trains in or a restart.
* **Splits** (§5.5-5.6, §6.1, §12):

  - best guess: all sites; validation a random ``val_fraction`` of them (``val_split: random``, default) or the
    last 10 % of rows as Keras' ``validation_split`` takes them (``keras_tail``);
  - bootstrap ``proda`` (default): N draws with replacement; validation = a random ``val_fraction`` of the
    *unique* sites drawn, with all their copies (no leakage); out-of-bag = never drawn;
    ``clm5_legacy``: the N draws sorted, then the Keras tail (the authors' CLM5 script);
    ``compas_legacy``: round(0.9 N) unsorted draws, then the Keras tail (the authors' COMPAS script);
  - ``holdout_fraction``: sites held out of every member (evaluation only).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BOOTSTRAP_MODES", "MinMaxScaler", "Split", "VAL_SPLITS", "best_guess_split", "bootstrap_split",
           "epoch_permutation", "holdout_mask", "member_names", "member_seed"]

#: validation-split modes (deck ``learn.val_split``)
VAL_SPLITS = {"random": "a seeded random val_fraction of the sites (default)",
              "keras_tail": "the last val_fraction of the rows, as Keras' validation_split (the authors' code)"}

#: bootstrap resampling modes (deck ``learn.bootstrap_resample``)
BOOTSTRAP_MODES = {
    "proda": "N draws with replacement; validation = random val_fraction of the unique sites drawn, all copies",
    "clm5_legacy": "N draws with replacement, sorted; validation = Keras tail (the authors' CLM5 script)",
    "compas_legacy": "round(0.9 N) draws with replacement; validation = Keras tail (the authors' COMPAS script)",
}


def _h32(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=4).digest(), "little")


def member_seed(seed: int, model: str, member: str, purpose: str) -> int:
    """A 63-bit seed for one random purpose of one member.

    Parameters
    ----------
    seed : the deck seed
    model : model name
    member : member name (``bg_01``, ``bs_001``)
    purpose : ``"init"``, ``"dropout"``, ``"shuffle"``, ``"split"``, ...

    Returns
    -------
    int in [0, 2**63)
    """
    ss = np.random.SeedSequence(int(seed), spawn_key=(_h32(model), _h32(member), _h32(purpose)))
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def _rng(seed: int, *extra: int) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(np.random.SeedSequence(int(seed), spawn_key=tuple(extra))))


def member_names(n_best_guess: int, n_bootstrap: int) -> list[tuple[str, str]]:
    """``[(name, kind)]``: ``bg_01..`` (``best_guess``) then ``bs_001..`` (``bootstrap``)."""
    w_bg = max(2, len(str(n_best_guess)))
    w_bs = max(3, len(str(n_bootstrap)))
    return ([(f"bg_{i + 1:0{w_bg}d}", "best_guess") for i in range(n_best_guess)]
            + [(f"bs_{i + 1:0{w_bs}d}", "bootstrap") for i in range(n_bootstrap)])


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of a member's ``n`` training rows in ``epoch`` (Keras reshuffles every epoch), keyed by the
    member's shuffle seed and the epoch only, so a resumed member sees the same batches.  (n,) int64."""
    return _rng(seed, int(epoch)).permutation(n).astype(np.int64)


# ------------------------------------------------------------------------------------------------ scaling
@dataclass
class MinMaxScaler:
    """Min-max covariate scaling fitted on the valid grid cells (spec §4.2), stored with the ensemble.

    Attributes
    ----------
    lo, hi : (K,) float64, covariate units
    names : (K,) covariate names
    categorical : (K,) bool
    """

    lo: np.ndarray
    hi: np.ndarray
    names: np.ndarray
    categorical: np.ndarray

    @classmethod
    def fit(cls, grid_values: np.ndarray, names: Sequence[str], categorical: Sequence[bool] | None = None
            ) -> MinMaxScaler:
        """Fit on the grid: (C, K) float covariates; rows with any NaN are not cells (ignored)."""
        x = np.asarray(grid_values, dtype=np.float64)
        ok = np.isfinite(x).all(axis=1)
        if not ok.any():
            raise ValueError("no grid cell has every covariate finite; cannot fit the covariate scaling")
        x = x[ok]
        cat = np.zeros(x.shape[1], bool) if categorical is None else np.asarray(categorical, bool)
        return cls(x.min(axis=0), x.max(axis=0), np.asarray([str(n) for n in names], dtype=object), cat)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(N, K) covariates -> (N, K) float32 in [0, 1] (clipped; a constant column gives 0; NaN stays NaN)."""
        x = np.asarray(x, dtype=np.float64)
        span = self.hi - self.lo
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(span > 0, (x - self.lo) / np.where(span > 0, span, 1.0), 0.0)
        z = np.where(np.isnan(x), np.nan, np.clip(z, 0.0, 1.0))
        return z.astype(np.float32)


# ------------------------------------------------------------------------------------------------ splits
@dataclass
class Split:
    """One member's rows (indices into the training-site arrays).

    Attributes
    ----------
    train : (n_train,) int64, may repeat (bootstrap)
    val : (n_val,) int64, may repeat (bootstrap copies)
    oob : (N,) bool, sites never drawn (bootstrap; all False for the best guess)
    """

    train: np.ndarray
    val: np.ndarray
    oob: np.ndarray

    def counts(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(train copies per site (N,) int64, in validation (N,) bool)."""
        tc = np.bincount(self.train, minlength=n).astype(np.int64)
        v = np.zeros(n, bool)
        v[self.val] = True
        return tc, v


def _n_val(n: int, val_fraction: float) -> int:
    if n < 2 or val_fraction <= 0:
        return 0
    return int(min(n - 1, max(1, round(val_fraction * n))))


def best_guess_split(n: int, val_fraction: float, mode: str, seed: int) -> Split:
    """All ``n`` sites, a validation share (``mode`` from :data:`VAL_SPLITS`), seeded by the member's split seed."""
    if mode not in VAL_SPLITS:
        raise ValueError(f"val_split {mode!r}: one of {', '.join(VAL_SPLITS)}")
    nv = _n_val(n, val_fraction)
    if mode == "keras_tail":
        at = n - (int(np.floor(val_fraction * n)) if val_fraction > 0 and n >= 2 else 0)
        rows = np.arange(n, dtype=np.int64)
        return Split(rows[:at], rows[at:], np.zeros(n, bool))
    perm = _rng(seed, 0).permutation(n).astype(np.int64)
    return Split(np.sort(perm[nv:]), np.sort(perm[:nv]), np.zeros(n, bool))


def bootstrap_split(n: int, val_fraction: float, mode: str, seed: int) -> Split:
    """One bootstrap member's resample of ``n`` sites (``mode`` from :data:`BOOTSTRAP_MODES`)."""
    if mode not in BOOTSTRAP_MODES:
        raise ValueError(f"bootstrap_resample {mode!r}: one of {', '.join(BOOTSTRAP_MODES)}")
    g = _rng(seed, 1)
    if mode == "proda":
        draws = g.integers(0, n, size=n).astype(np.int64)
        uniq = np.unique(draws)
        nv = _n_val(uniq.size, val_fraction)
        vsites = np.zeros(n, bool)
        vsites[g.choice(uniq, size=nv, replace=False)] = True
        train, val = np.sort(draws[~vsites[draws]]), np.sort(draws[vsites[draws]])
    else:
        k = n if mode == "clm5_legacy" else int(round(0.9 * n))
        draws = g.integers(0, n, size=k).astype(np.int64)
        if mode == "clm5_legacy":
            draws = np.sort(draws)
        at = k - (int(np.floor(val_fraction * k)) if val_fraction > 0 and k >= 2 else 0)
        train, val = draws[:at], draws[at:]
    oob = np.ones(n, bool)
    oob[draws] = False
    return Split(train, val, oob)


def holdout_mask(n: int, fraction: float, seed: int) -> np.ndarray:
    """(n,) bool: a seeded random ``fraction`` of the sites held out of every member (evaluation only)."""
    m = np.zeros(n, bool)
    k = int(round(fraction * n))
    if k > 0:
        m[_rng(seed, 2).choice(n, size=min(k, n - 1), replace=False)] = True
    return m
