"""The one interface every soil model implements (CLM5, COMPAS, and later ones).

Nothing downstream (sampler, NN, maps, report) branches on a model's name: it asks the model for its
parameter table, prepares per-site constants once, and evaluates steady states for batches of
(site, parameter set) pairs.

Conventions
-----------
* batch: ``B`` (site, parameter-set) pairs; ``site_index`` (B,) maps each pair to a prepared site
  (``S`` sites); ``None`` means ``B == S`` and pair i uses site i.
* parameters: **physical** values, (B, P), units of the model's :class:`~prodampi.soil.params.ParamTable`.
* pools: (B, 20, n_pools) g C m-3 of soil layer, pool order ``pool_names``.
* SOC: (B, 20) g C m-3 = sum of the model's ``soc_pools`` (litter/CWD excluded as in PRODA).
* failures are per item: ``status`` (B,) int8 with the codes below; failed items have NaN pools.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .forcing import Forcing
from .params import ParamTable

# ---------------------------------------------------------------- per-item status codes
OK = 0
SINGULAR = 1  # system (nearly) singular: rcond below machine epsilon in compat mode, or a zero pivot
NONFINITE = 2  # NaN/Inf in the solution
NEGATIVE = 3  # negative pools (CLM5 compat zeroes them and reports OK; strict mode flags them)
INVALID_ANALYTIC = 4  # COMPAS closed form undefined (e.g. uptake capacity below demand)
INVALID_RATIO = 5  # COMPAS 10:1 soil C / MIC rule violated
BAD_FORCING = 6  # the site's forcing failed Forcing.check()

STATUS_NAMES = {OK: "ok", SINGULAR: "singular", NONFINITE: "nonfinite", NEGATIVE: "negative",
                INVALID_ANALYTIC: "invalid_analytic", INVALID_RATIO: "invalid_ratio",
                BAD_FORCING: "bad_forcing"}


@dataclass
class SteadyState:
    """Result of a batched steady-state solve.

    Attributes
    ----------
    pools : (B, 20, n_pools) g C m-3
    soc : (B, 20) g C m-3, SOC at the 20 layers (nodes)
    status : (B,) int8, see the module's status codes
    diagnostics : dict of (B, ...) arrays, e.g. ``respiration`` and ``input`` and ``bottom_leak``
        (g C m-2 yr-1) for mass-balance checks
    """

    pools: np.ndarray
    soc: np.ndarray
    status: np.ndarray
    diagnostics: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def ok(self) -> np.ndarray:
        """(B,) bool, items that solved."""
        return self.status == OK


class SoilModel(ABC):
    """Abstract soil model.  Implementations are pure: arrays in, arrays out."""

    #: short name used in decks and file names ("clm5", "compas")
    name: str
    #: parameter table (order = MCMC vector = NN targets)
    params: ParamTable
    #: pool names in the order of the last axis of ``pools``
    pool_names: tuple[str, ...]
    #: indices of the pools that make up SOC
    soc_pools: tuple[int, ...]

    @abstractmethod
    def prepare(self, forcing: Forcing) -> Any:
        """Parameter-independent per-site constants (computed once per site, reused every evaluation)."""

    @abstractmethod
    def steady_state(self, theta: np.ndarray, prepared: Any, site_index: np.ndarray | None = None) -> SteadyState:
        """Fast batched steady state for (B, P) physical parameters."""

    @abstractmethod
    def steady_state_reference(self, theta: np.ndarray, forcing: Forcing,
                               site_index: np.ndarray | None = None) -> SteadyState:
        """Reference path: per item, monthly matrices as in the spec and one dense LAPACK solve (tests/bench)."""

    @abstractmethod
    def components(self, theta: np.ndarray, prepared: Any, site_index: np.ndarray | None = None,
                   state: SteadyState | None = None) -> dict[str, np.ndarray]:
        """The paper's components per item: ``cte`` (1), ``k_system`` (yr-1), ``xi_system`` (1),
        ``v_system`` (yr-1), ``b_system`` (1), ``input`` (g C m-2 yr-1), each (B,)."""

    def observe(self, soc: np.ndarray, depths_m: np.ndarray) -> np.ndarray:
        """Modelled SOC (g C m-3) at observed node depths (m) by PCHIP on the 20 nodes, with extrapolation.

        ``soc`` (B, 20); ``depths_m`` (B, L) with NaN for padding.  Returns (B, L), NaN where depth is NaN.
        """
        from .observe import pchip_at

        return pchip_at(soc, depths_m)
