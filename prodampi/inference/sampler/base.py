"""The contract between sampler kernels, targets and the assimilate stage.

Pure kernels: arrays in, arrays out; no MPI, no files, no clocks, no global random state.

Shapes and names
----------------
* ``S`` sites in a batch, ``C`` chains per site, ``P`` parameters, ``L`` observed layers (padded with NaN),
  ``D`` stored draws per chain.
* Parameters are **normalised**, ``kp`` in the open box (0, 1)^P (``ParamTable.to_physical`` maps them).
* A *target* evaluates a batch of ``B`` parameter vectors, each for one site (``site_index`` (B,) into the
  target's ``S`` sites), and returns an :class:`Evaluation`.
* A *kernel* (``paper``, ``textbook``) is an object with ``init(config, target, keys) -> state`` and
  ``step(state, target) -> (state, info)``; the state is a :class:`SamplerState` (a dict of arrays plus the
  row streams), which is exactly what a checkpoint stores.  ``finalize(state, target) -> results`` gives the
  per-site results (:data:`RESULT_FIELDS`).

A failed forward solve (``Evaluation.failed``) is the kernel's decision, never an exception: the ``paper``
kernel adds the authors' penalty, the ``textbook`` kernel rejects the proposal.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import numpy as np

from ..rng import BlockStreams

__all__ = ["Evaluation", "RESULT_FIELDS", "SamplerConfig", "SamplerState", "Target", "Kernel"]


@dataclass
class Evaluation:
    """A target evaluated at ``B`` parameter vectors.

    Attributes
    ----------
    cost : (B,) float64
        The authors' cost ``J`` (CLM5: rank-weighted relative-error misfit; COMPAS: ``5 (1 - NSE)``);
        NaN where ``failed``.  Lower is better; the ``paper`` kernel uses it.
    loglik : (B,) float64
        Log-likelihood of the observations (nats) under the target's observation model (``textbook``:
        Gaussian in log SOC); -inf where ``failed``.  The ``textbook`` kernel uses it.
    pointwise : (B, L) float64
        Per-layer log-likelihood terms (``textbook`` observation model), NaN at padded layers; for the
        ``paper`` cost the per-layer terms of ``-J`` (a pseudo-likelihood).  Stored in ``log_likelihood``.
    soc : (B, L) float64
        Modelled SOC at the observed layers (g C m-3), NaN at padded layers.
    failed : (B,) bool
        The forward solve failed (solver status not OK, or a non-finite value at an observed layer / node).
    status : (B,) int8
        The model's status code (``prodampi.soil.base``), for failure statistics.
    """

    cost: np.ndarray
    loglik: np.ndarray
    pointwise: np.ndarray
    soc: np.ndarray
    failed: np.ndarray
    status: np.ndarray

    def take(self, idx: np.ndarray) -> Evaluation:
        """Rows ``idx`` of every field."""
        return Evaluation(*(getattr(self, f.name)[idx] for f in fields(self)))


class Target(Protocol):
    """What a kernel evaluates.  Implementations: :class:`prodampi.inference.targets.ProfileTarget` (a soil
    model against observed profiles) and the analytic test targets of the test suite."""

    #: number of parameters P
    n_params: int
    #: number of sites S
    n_sites: int
    #: padded number of observed layers L (0 for analytic targets)
    n_obs: int

    def evaluate(self, kp: np.ndarray, site_index: np.ndarray) -> Evaluation:
        """Evaluate (B, P) normalised parameters, row i for site ``site_index[i]``."""
        ...


@dataclass(frozen=True)
class SamplerConfig:
    """Every setting of a kernel (from the deck's ``assimilate`` section; defaults = the paper's).

    Attributes
    ----------
    chains : chains per site (the paper: 3)
    test_iterations : ``paper``: the test-run length n1 (20,000); ``textbook``: warm-up iterations before the
        stored chain (adaptation runs through them)
    iterations : stored-chain length per chain (``paper``: formal run n2 = 50,000)
    adapt_start : iteration of the stored chain after which the proposal covariance is re-estimated every
        iteration (``paper``: 4,000; ``textbook``: counted from the start of warm-up)
    draws : states stored per chain (thinning = iterations // draws, recorded); repeats included
    init : starting point in normalised space (``paper``: 0.5 for every parameter)
    # ``paper`` kernel
    test_width : a, uniform test-run proposals ``(U - 0.5) / a`` (5 -> +-0.1)
    test_min_accept : test-run restart when fewer acceptances after n1 - 1 iterations (50)
    test_width_growth : a <- a * growth on a test-run restart (1.1)
    test_max_restarts : test-run restarts before the "second time" fresh chain (3)
    sigma0 : initial scale numerator, s = sigma / P (2.4)
    accept_low, accept_high : formal-run acceptance-rate control band (0.1, 0.5)
    sigma_down, sigma_up : sigma factors when below / above the band (0.7, 2.0)
    formal_max_restarts : formal-run restarts before the site fails (5)
    max_attempts : cap on uncounted chain restarts (non-PSD covariance, redraw guard) before the site fails
    failure_penalty : added to J_old for a failed forward solve (100)
    failure_dj : ``"penalty"`` (default: a failure's dJ is the penalty) or ``"stale"`` (the authors' CLM5
        formal-run bug: a failure reuses the previous iteration's dJ)
    redraw_limit : bound-redraw attempts in one iteration before the chain is restarted (replaces the
        authors' 60-s wall-clock guard, which is not reproducible)
    accepted_capacity : accepted formal states kept per chain for the paper estimators; beyond it the stored
        accepted states are thinned by 2 (recorded), so the estimators are exact up to this many acceptances
    # ``textbook`` kernel
    am_scale : Haario scale numerator, s = am_scale / P (2.4**2)
    am_epsilon : regularisation added to the proposal covariance diagonal (normalised units**2)
    am_initial_sd : SD of the initial diagonal Gaussian proposal (normalised units)
    obs_sigma_log : SD of the Gaussian observation error of log SOC (the ``textbook`` likelihood)
    """

    chains: int = 3
    test_iterations: int = 20_000
    iterations: int = 50_000
    adapt_start: int = 4_000
    draws: int = 500
    init: float = 0.5
    test_width: float = 5.0
    test_min_accept: int = 50
    test_width_growth: float = 1.1
    test_max_restarts: int = 3
    sigma0: float = 2.4
    accept_low: float = 0.1
    accept_high: float = 0.5
    sigma_down: float = 0.7
    sigma_up: float = 2.0
    formal_max_restarts: int = 5
    max_attempts: int = 10
    failure_penalty: float = 100.0
    failure_dj: str = "penalty"
    redraw_limit: int = 1000
    accepted_capacity: int = 2048
    am_scale: float = 2.4 ** 2
    am_epsilon: float = 1e-8
    am_initial_sd: float = 0.05
    obs_sigma_log: float = 0.5

    @property
    def thin(self) -> int:
        """Stored-chain thinning factor: iterations // draws (>= 1)."""
        return max(1, self.iterations // max(1, self.draws))

    @property
    def n_draws(self) -> int:
        """Stored draws per chain: iterations // thin."""
        return self.iterations // self.thin


@dataclass
class SamplerState:
    """A kernel's whole state: named arrays plus the row streams (the checkpoint).

    ``arrays`` holds only numpy arrays (any shapes the kernel chooses, documented by the kernel);
    ``streams`` the keyed RNG rows.  :meth:`to_arrays` / :meth:`from_arrays` round-trip it exactly.
    """

    kernel: str
    arrays: dict[str, np.ndarray]
    streams: BlockStreams
    meta: dict[str, Any] = field(default_factory=dict)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat dict of arrays (``a/<name>`` and ``rng/keys``, ``rng/block``, ``rng/pos``) for a checkpoint."""
        out = {f"a/{k}": np.asarray(v) for k, v in self.arrays.items()}
        blk, pos = self.streams.position
        out["rng/keys"] = self.streams.keys.copy()
        out["rng/block"] = blk
        out["rng/pos"] = pos
        out["rng/block_len"] = np.array(self.streams.block)
        return out

    @classmethod
    def from_arrays(cls, kernel: str, data: dict[str, np.ndarray], meta: dict | None = None) -> SamplerState:
        arrays = {k[2:]: np.array(v) for k, v in data.items() if k.startswith("a/")}
        streams = BlockStreams(data["rng/keys"], int(data["rng/block_len"]),
                               position=(data["rng/block"], data["rng/pos"]))
        return cls(kernel, arrays, streams, dict(meta or {}))


#: what ``finalize`` returns per batch (S sites): name -> (shape, meaning); kernels fill every field
#: (NaN / 0 where a field does not apply), so the stage writes one layout for both kernels.
RESULT_FIELDS: dict[str, tuple[str, str]] = {
    "draws": ("(S, C, D, P) float64", "stored chain states (normalised), repeats included, thinned"),
    "cost": ("(S, C, D) float64", "cost J of the stored states (paper) / -loglik (textbook)"),
    "lp": ("(S, C, D) float64", "log density of the stored states (textbook: log-likelihood; paper: "
                                "the pseudo log density -J)"),
    "accepted": ("(S, C, D) bool", "the stored state was reached by an accepted move at that iteration"),
    "pointwise": ("(S, C, D, L) float64", "per-layer log-likelihood (pseudo for paper) of the stored states"),
    "n_accepted": ("(S, C) int64", "accepted moves in the stored chain"),
    "acceptance": ("(S, C) float64", "acceptance rate of the stored chain"),
    "mean": ("(S, P) float64", "posterior mean, normalised (paper: best chain, second half of the accepted "
                               "states; textbook: all stored draws)"),
    "sd": ("(S, P) float64", "posterior SD, normalised (same sample as mean)"),
    "mode": ("(S, P) float64", "paper: GEV mode per parameter of the best chain's sample; textbook: NaN"),
    "chain_mean": ("(S, C, P) float64", "per-chain mean of the estimator sample"),
    "chain_ss": ("(S, C, P) float64", "per-chain sum of squared deviations of the estimator sample"),
    "chain_n": ("(S, C) int64", "per-chain size of the estimator sample (before any storage thinning)"),
    "n_last": ("(S,) int64", "paper G-R n: total accepted count of the last chain"),
    "soc_mod": ("(S, L) float64", "modelled SOC at the observed layers (g C m-3): best chain's mean profile "
                                  "(paper) / posterior-mean profile (textbook)"),
    "soc_sd": ("(S, L) float64", "SD of the modelled SOC over the same sample (g C m-3)"),
    "chain_r2_legacy": ("(S, C) float64", "the authors' per-chain 'R2' (SS_tot around the modelled mean)"),
    "chain_rmse": ("(S, C) float64", "the authors' per-chain RMSE (g C m-3)"),
    "best_chain": ("(S,) int64", "index of the best chain (paper: minimum RMSE, ties to the lowest index)"),
    "restarts": ("(S, 3) int64", "restarts: test-run (counted), formal-run (counted), uncounted attempts"),
    "n_failed_evals": ("(S,) int64", "failed forward solves met during sampling"),
    "ok": ("(S,) bool", "the sampler finished every chain (False: sampler failure, see reason)"),
    "reason": ("(S,) str", "'' or why the sampler failed (e.g. 'formal-run restarts > 5')"),
}


class Kernel(Protocol):
    """A sampler kernel (``paper`` or ``textbook``)."""

    name: str

    def init(self, config: SamplerConfig, target: Target, keys: np.ndarray) -> SamplerState:
        """Start state for every site of ``target``; ``keys`` (S, C, 2) uint64 chain keys of attempt 0
        (:func:`prodampi.inference.rng.stream_keys`); a kernel derives later attempts' keys with
        :func:`~prodampi.inference.rng.attempt_keys`."""
        ...

    def step(self, state: SamplerState, target: Target) -> tuple[SamplerState, dict[str, Any]]:
        """Advance every unfinished row by one iteration (one batched ``target.evaluate``).

        ``info``: ``{"n_evals": int, "n_accepted": int, "n_failed": int, "failed_status": (n_codes,) int64,
        "done": (S,) bool}``."""
        ...

    def done(self, state: SamplerState) -> np.ndarray:
        """(S,) bool: sites whose every chain has finished (or failed)."""
        ...

    def progress(self, state: SamplerState) -> np.ndarray:
        """(S,) float in [0, 1]: share of each site's planned iterations done (progress lines, ETA)."""
        ...

    def finalize(self, state: SamplerState, target: Target) -> dict[str, np.ndarray]:
        """Per-site results, :data:`RESULT_FIELDS` (only valid when ``done(state).all()``)."""
        ...
