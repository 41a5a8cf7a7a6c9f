"""Parameter tables of the soil models: names, meaning, units, prior bounds, customary values.

Each model owns one :class:`ParamTable`.  The sampler and the neural network work in **normalized** space
``kp`` in [0, 1]; the models take **physical** values.  All maps are linear, ``phys = lo + kp (hi - lo)``
(``clm5.md`` §2, ``compas.md`` §2), and are vectorised over any leading batch shape ``(..., P)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Param:
    """One optimised parameter.

    Attributes
    ----------
    name : str      code name (PRODA ``para_name``), e.g. ``"tau4s2"``
    meaning : str   short description
    units : str     physical units ("yr", "m2 yr-1", "g C m-3", "1")
    lo, hi : float  prior bounds (physical units)
    customary : float  customary ("default") value in physical units, NaN when it must come from a DA run
    """

    name: str
    meaning: str
    units: str
    lo: float
    hi: float
    customary: float = float("nan")


@dataclass(frozen=True)
class ParamTable:
    """Ordered table of a model's parameters (order = MCMC vector = NN targets)."""

    model: str
    params: tuple[Param, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {p.name: i for i, p in enumerate(self.params)})
        if len(self._index) != len(self.params):
            raise ValueError(f"duplicate parameter names in the {self.model} table")

    def __len__(self) -> int:
        return len(self.params)

    @property
    def names(self) -> list[str]:
        """Parameter names in order."""
        return [p.name for p in self.params]

    @property
    def lo(self) -> np.ndarray:
        """Lower prior bounds (P,), physical units."""
        return np.array([p.lo for p in self.params])

    @property
    def hi(self) -> np.ndarray:
        """Upper prior bounds (P,), physical units."""
        return np.array([p.hi for p in self.params])

    @property
    def customary(self) -> np.ndarray:
        """Customary values (P,), physical units (NaN where not defined a priori)."""
        return np.array([p.customary for p in self.params])

    def index(self, name: str) -> int:
        """Position of parameter ``name``."""
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"{self.model} has no parameter {name!r}; it has {', '.join(self.names)}") from None

    def to_physical(self, kp: np.ndarray) -> np.ndarray:
        """Normalized ``kp`` (..., P) in [0, 1] -> physical values (..., P)."""
        kp = np.asarray(kp, dtype=np.float64)
        return self.lo + kp * (self.hi - self.lo)

    def to_normalized(self, theta: np.ndarray) -> np.ndarray:
        """Physical values (..., P) -> normalized (..., P)."""
        theta = np.asarray(theta, dtype=np.float64)
        return (theta - self.lo) / (self.hi - self.lo)

    def describe(self) -> list[dict]:
        """Table rows as dictionaries (for JSON/README output)."""
        return [dict(name=p.name, meaning=p.meaning, units=p.units, lo=p.lo, hi=p.hi, customary=p.customary)
                for p in self.params]
