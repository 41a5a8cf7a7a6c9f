"""Model options: one frozen, validated record per model, one vocabulary across models, named presets.

Every soil model takes its switches as one record, a frozen dataclass derived from :class:`SoilOptions`
(``CLM5Options``, ``COMPASOptions``).  The same idea has the same field name and the same values in every
model:

================  ========================  ==============================================================
field             values                    meaning
================  ========================  ==============================================================
bedrock           "compat", "conservative"  transport at the bedrock interface: the authors' leaky bottom
                                            at layer nbedrock+1 (``clm5.md`` §4.5.4), or closed
negative_pools    "clip", "fail"            negative entries of the linear (matrix) steady-state solve:
                                            set to 0 and reported OK (the authors' code), or the item is
                                            flagged ``NEGATIVE`` (NaN pools)
singular          "rcond", "pivot"          which solves count as singular: "rcond" also rejects
                                            ill-conditioned ones, 1-norm reciprocal condition number below
                                            ``rcond_min`` (MATLAB's "nearly singular" warning, which the
                                            authors' DA treats as a failed evaluation); "pivot" only zero or
                                            non-finite pivots/rates
rcond_min         float, default RCOND_MIN  threshold of the "rcond" rule (pinned: machine epsilon)
nonfinite         "keep", "nan"             an item whose pools hold NaN/Inf is flagged ``NONFINITE``;
                                            "keep" returns what the solve gives (finite layers kept, NaN only
                                            where undefined, as the authors' function), "nan" blanks it
chunk_size        int >= 1                  items per vectorised pass (performance only)
================  ========================  ==============================================================

Model-specific fields (COMPAS: ``validity`` and ``invalid`` for its validity rules, ``enzyme_tau_source``,
...) are documented by each record.  Unknown fields and values outside the allowed set raise
:class:`ValueError` naming the field and the allowed values.  Records are frozen; derive a variant with
:meth:`SoilOptions.replace`.  ``dataclasses.asdict(record)`` is plain JSON (provenance).

Presets (:data:`PRESETS`): ``"paper"`` reproduces the authors' forward function (the default everywhere);
``"textbook"`` is the corrected variant of each model.  ``Record.preset(name, **overrides)`` builds one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "BEDROCK_CHOICES",
    "DEFAULT_PRESET",
    "NEGATIVE_POOLS_CHOICES",
    "NONFINITE_CHOICES",
    "PRESETS",
    "RCOND_MIN",
    "SINGULAR_CHOICES",
    "SoilOptions",
    "choice",
]

PRESETS: tuple[str, ...] = ("paper", "textbook")
"""Named presets every model provides: ``paper`` (the authors' code; the default) and ``textbook``."""
DEFAULT_PRESET: str = "paper"

RCOND_MIN: float = 2.220446049250313e-16
"""Shared rejection threshold of ill-conditioned solves (1-norm reciprocal condition number, 1).

Machine epsilon of float64, the value below which MATLAB warns "nearly singular" (``clm5.md`` §5.3); PRODA's
DA scores such an evaluation as a failure.  Pinned by ``tests/unit/test_model_contract.py``."""

BEDROCK_CHOICES: tuple[str, ...] = ("compat", "conservative")
NEGATIVE_POOLS_CHOICES: tuple[str, ...] = ("clip", "fail")
SINGULAR_CHOICES: tuple[str, ...] = ("rcond", "pivot")
NONFINITE_CHOICES: tuple[str, ...] = ("keep", "nan")


def choice(default: str, allowed: tuple[str, ...]) -> Any:
    """A dataclass field holding one of ``allowed`` strings (checked by :class:`SoilOptions`)."""
    if default not in allowed:
        raise ValueError(f"default {default!r} not in {allowed}")
    return field(default=default, metadata={"choices": tuple(allowed)})


@dataclass(frozen=True)
class SoilOptions:
    """Options shared by every soil model (see the module docstring for the vocabulary).

    Attributes
    ----------
    bedrock : {"compat", "conservative"}
        Transport at the bedrock interface.
    negative_pools : {"clip", "fail"}
        Negative entries of the linear steady-state solve.
    singular : {"rcond", "pivot"}
        Which solves count as singular (status ``SINGULAR``).
    rcond_min : float
        Threshold (1) of the ``"rcond"`` rule, default :data:`RCOND_MIN`.
    nonfinite : {"keep", "nan"}
        What an item flagged ``NONFINITE`` returns.
    chunk_size : int
        Items per vectorised pass (results do not depend on it).
    """

    bedrock: str = choice("compat", BEDROCK_CHOICES)
    negative_pools: str = choice("clip", NEGATIVE_POOLS_CHOICES)
    singular: str = choice("rcond", SINGULAR_CHOICES)
    rcond_min: float = RCOND_MIN
    nonfinite: str = choice("nan", NONFINITE_CHOICES)
    chunk_size: int = 4096

    #: model name used in messages
    model: ClassVar[str] = "soil model"
    #: preset name -> field values that differ from the field defaults (the defaults are "paper")
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "textbook": {}}
    #: old keyword -> its replacement, for the error message when an old name is used
    renamed: ClassVar[dict[str, str]] = {}

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        for f in fields(self):
            allowed = f.metadata.get("choices")
            if allowed is not None:
                value = getattr(self, f.name)
                if not isinstance(value, str) or value not in allowed:
                    raise ValueError(f"{self.model} option {f.name}={value!r} is not allowed; allowed values: "
                                     f"{', '.join(repr(a) for a in allowed)}")
        self._set("rcond_min", self._number("rcond_min", lo=0.0, hi=1.0, open_lo=True))
        chunk = self.chunk_size
        if isinstance(chunk, bool) or not isinstance(chunk, int | np.integer) or int(chunk) < 1:
            raise ValueError(f"{self.model} option chunk_size={chunk!r} is not allowed; allowed values: an "
                             "integer >= 1")
        self._set("chunk_size", int(chunk))
        self._validate()

    def _validate(self) -> None:
        """Model-specific checks (override)."""

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _number(self, name: str, lo: float = -math.inf, hi: float = math.inf, open_lo: bool = False) -> float:
        """Field ``name`` as a finite float in [lo, hi] ((lo, hi] when ``open_lo``), else ValueError."""
        value = getattr(self, name)
        ok = not isinstance(value, bool | str)
        try:
            x = float(value)
        except (TypeError, ValueError):
            ok = False
        ok = ok and math.isfinite(x) and (x > lo if open_lo else x >= lo) and x <= hi
        if not ok:
            rng = f"{'(' if open_lo else '['}{lo:g}, {hi:g}]"
            raise ValueError(f"{self.model} option {name}={value!r} is not allowed; allowed values: a finite "
                             f"number in {rng}")
        return x

    # ------------------------------------------------------------------ construction
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of the option fields, in order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def _check_keys(cls, keys: Any) -> None:
        allowed = cls.field_names()
        for key in keys:
            if key not in allowed:
                if key in cls.renamed:
                    raise ValueError(f"{cls.model} option {key!r} was replaced by {cls.renamed[key]}")
                raise ValueError(f"unknown {cls.model} option {key!r}; allowed: {', '.join(allowed)}")

    @classmethod
    def preset(cls, name: str = DEFAULT_PRESET, **overrides: Any) -> SoilOptions:
        """The record of preset ``name`` (one of :data:`PRESETS`) with ``overrides`` applied.

        Raises
        ------
        ValueError
            Unknown preset, unknown field or a value outside the allowed set.
        """
        if name not in cls.presets:
            raise ValueError(f"unknown {cls.model} preset {name!r}; allowed: {', '.join(cls.presets)}")
        cls._check_keys(overrides)
        return cls(**{**cls.presets[name], **overrides})

    def replace(self, **changes: Any) -> SoilOptions:
        """A copy with ``changes`` applied (validated like the constructor)."""
        self._check_keys(changes)
        return replace(self, **changes)

    # ------------------------------------------------------------------ provenance
    def as_dict(self) -> dict[str, Any]:
        """Field name -> value (JSON-ready: tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def matching_preset(self) -> str | None:
        """Name of the preset this record equals, or None (a custom combination)."""
        for name in self.presets:
            if self == type(self).preset(name):
                return name
        return None

    def differences(self, preset: str = DEFAULT_PRESET) -> dict[str, Any]:
        """Fields whose value differs from preset ``preset`` (field -> this record's value)."""
        ref = type(self).preset(preset)
        return {k: v for k, v in self.as_dict().items() if v != ref.as_dict()[k]}

