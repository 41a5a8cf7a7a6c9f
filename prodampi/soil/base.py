"""The one interface every soil model implements (CLM5, COMPAS, and later ones).

Nothing downstream (sampler, NN, maps, report) branches on a model's name: it asks the model for its
parameter table, prepares per-site constants once, and evaluates steady states for batches of
(site, parameter set) pairs.

Conventions
-----------
* batch: ``B`` (site, parameter-set) pairs; ``site_index`` (B,) integer array maps each pair to a prepared
  site (``S`` sites); ``None`` means ``B == S`` and pair i uses site i.
* parameters: **physical** values, a 2-D array (B, P), units of the model's
  :class:`~prodampi.soil.params.ParamTable`.  A 1-D ``theta`` is rejected (pass ``theta[None, :]`` for one
  item): the output is always batched, and a silent promotion would hide a caller passing the wrong axis.
  Checked once, here (:meth:`SoilModel._check_batch`), for every model.
* pools: (B, 20, n_pools) g C m-3 of soil layer, pool order ``pool_names``.
* SOC: (B, 20) g C m-3 = sum of the model's ``soc_pools`` (litter/CWD excluded as in PRODA).
* failures are per item, never raised: ``status`` (B,) int8 with the codes below.  Items with
  ``BAD_FORCING``, ``SINGULAR`` or ``NEGATIVE`` have NaN pools.  ``NONFINITE`` items hold what the solve
  returned (finite layers kept, NaN only where undefined) when the options say ``nonfinite="keep"``, NaN
  otherwise.  Model-specific validity codes (COMPAS ``INVALID_*``) are documented by the model.  What a
  failed or non-finite evaluation costs is the sampler's decision, not the model's.
* options: one frozen record per model (:mod:`prodampi.soil.options`), built from a named preset
  (``"paper"``, the authors' code, is the default; ``"textbook"``) plus overrides.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .forcing import Forcing
from .options import DEFAULT_PRESET, PRESETS, RCOND_MIN, SoilOptions
from .params import ParamTable

__all__ = [
    "BAD_FORCING", "COMPONENT_KEYS", "INVALID_ANALYTIC", "INVALID_RATIO", "NEGATIVE", "NONFINITE", "OK",
    "PRESETS", "RCOND_MIN", "SINGULAR", "STATUS_NAMES", "SoilModel", "SoilOptions", "SteadyState",
]

# ---------------------------------------------------------------- per-item status codes
OK = 0
SINGULAR = 1  # system singular: a zero pivot, or (singular="rcond") rcond below the options' rcond_min
NONFINITE = 2  # NaN/Inf in the pools (kept or blanked, options.nonfinite)
NEGATIVE = 3  # negative entries of the linear solve with negative_pools="fail" ("clip" zeroes them, OK)
INVALID_ANALYTIC = 4  # COMPAS closed form undefined (e.g. uptake capacity below demand)
INVALID_RATIO = 5  # COMPAS 10:1 soil C / MIC rule violated
BAD_FORCING = 6  # the site's forcing failed Forcing.check()

#: keys every model's :meth:`SoilModel.components` returns, each (B,)
COMPONENT_KEYS: tuple[str, ...] = ("cte", "k_system", "xi_system", "v_system", "b_system", "input")

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
    """Abstract soil model.  Implementations are pure: arrays in, arrays out.

    Parameters
    ----------
    options : SoilOptions or None
        The model's options record (an instance of :attr:`options_class`).  None: built from ``preset``.
    preset : str or None
        Named preset (one of :data:`~prodampi.soil.options.PRESETS`), default ``"paper"``; only when
        ``options`` is None.
    **overrides
        Option fields replacing those of ``options`` / the preset (validated: an unknown field or a value
        outside the allowed set raises ValueError naming the field and the allowed values).

    Attributes
    ----------
    options : SoilOptions
        The frozen options record in use (``dataclasses.asdict`` gives its provenance record).
    preset : str or None
        The preset the options started from (None for a record that matches no preset).
    """

    #: short name used in decks and file names ("clm5", "compas")
    name: str
    #: parameter table (order = MCMC vector = NN targets)
    params: ParamTable
    #: pool names in the order of the last axis of ``pools``
    pool_names: tuple[str, ...]
    #: indices of the pools that make up SOC
    soc_pools: tuple[int, ...]
    #: the model's options record type
    options_class: ClassVar[type[SoilOptions]] = SoilOptions
    #: the type :meth:`prepare` returns (checked by :meth:`_check_prepared`)
    prepared_class: ClassVar[type | None] = None

    def __init__(self, options: SoilOptions | None = None, *, preset: str | None = None,
                 **overrides: Any) -> None:
        cls = self.options_class
        if options is None:
            start = DEFAULT_PRESET if preset is None else preset
            opts = cls.preset(start, **overrides)
        else:
            if preset is not None:
                raise ValueError(f"{self.name}: give either options or preset, not both")
            if not isinstance(options, cls):
                raise TypeError(f"{self.name}: options must be a {cls.__name__}, got {type(options).__name__}")
            opts = options.replace(**overrides) if overrides else options
            start = options.matching_preset()
        self.options = opts
        self.preset = start

    @classmethod
    def from_preset(cls, preset: str = DEFAULT_PRESET, **overrides: Any) -> SoilModel:
        """The model configured by preset ``preset`` (``"paper"`` or ``"textbook"``) plus ``overrides``."""
        return cls(preset=preset, **overrides)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options!r})"

    def provenance(self) -> dict[str, Any]:
        """Provenance record: model name, preset, every option, and the options that differ from the preset.

        Returns
        -------
        dict
            ``{"model": str, "preset": str | None, "options": {field: value}, "overrides": {field: value}}``
            (JSON-ready).
        """
        overrides = self.options.differences(self.preset) if self.preset is not None else self.options.as_dict()
        return {"model": self.name, "preset": self.preset, "options": self.options.as_dict(),
                "overrides": overrides}

    # ------------------------------------------------------------------ shared argument checks
    def _check_batch(self, theta: np.ndarray, n_sites: int, site_index: np.ndarray | None
                     ) -> tuple[np.ndarray, np.ndarray | None]:
        """Validate a batch; the one rule for every model.

        Parameters
        ----------
        theta : array
            Physical parameters, must be 2-D (B, P) with P = ``len(self.params)``; 1-D is rejected.
        n_sites : int
            Number of prepared sites ``S``.
        site_index : array or None
            (B,) integer site of each item, each in 0..S-1; None requires B == S.

        Returns
        -------
        theta : (B, P) float64 array
        site_index : (B,) intp array or None

        Raises
        ------
        ValueError
            Wrong dimensionality or shape, non-integer or out-of-range site indices.
        """
        theta = np.asarray(theta, dtype=np.float64)
        n_par = len(self.params)
        if theta.ndim != 2 or theta.shape[1] != n_par:
            hint = "; for a single item pass theta[None, :]" if theta.ndim == 1 else ""
            raise ValueError(f"{self.name}: theta must be a 2-D array (B, {n_par}) of physical parameters, "
                             f"got shape {theta.shape}{hint}")
        nbat = theta.shape[0]
        if site_index is None:
            if nbat != n_sites:
                raise ValueError(f"{self.name}: site_index is None, so B must equal the number of prepared "
                                 f"sites; got B={nbat}, S={n_sites}")
            return theta, None
        idx = np.asarray(site_index)
        if idx.shape != (nbat,):
            raise ValueError(f"{self.name}: site_index must have shape ({nbat},), got {idx.shape}")
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"{self.name}: site_index must hold integers, got dtype {idx.dtype}")
        idx = idx.astype(np.intp, copy=False)
        if idx.size and (idx.min() < 0 or idx.max() >= n_sites):
            raise ValueError(f"{self.name}: site_index out of range 0..{n_sites - 1}")
        return theta, idx

    def _check_prepared(self, prepared: Any) -> None:
        """``prepared`` must come from this model type's :meth:`prepare` with the same bedrock option."""
        if self.prepared_class is not None and not isinstance(prepared, self.prepared_class):
            raise TypeError(f"{self.name}: prepared must come from {type(self).__name__}.prepare, got "
                            f"{type(prepared).__name__}")
        bedrock = getattr(prepared, "bedrock", None)
        if bedrock is not None and bedrock != self.options.bedrock:
            raise ValueError(f"{self.name}: prepared with bedrock={bedrock!r} but this model uses "
                             f"{self.options.bedrock!r}")

    # ------------------------------------------------------------------ the interface
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

        ``soc`` (B, 20); ``depths_m`` (B, L) with NaN for padding.  Returns (B, L), NaN where depth is NaN
        (and next to a NaN node: a NaN layer only spoils the intervals that touch it).
        """
        from .observe import pchip_at

        return pchip_at(soc, depths_m)
