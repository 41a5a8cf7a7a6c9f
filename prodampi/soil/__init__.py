"""Soil-carbon process models (pure batched numpy kernels) behind one interface, :class:`SoilModel`.

>>> from prodampi.soil import get_model
>>> model = get_model("clm5")                   # the authors' forward function ("paper" preset)
>>> model = get_model("compas", "textbook")     # the corrected variant
>>> model = get_model("compas", validity="negative")   # a preset plus option overrides

The registry owns the names: :data:`MODELS` (model name -> ``"module:Class"``) and :data:`PRESETS` (preset
names every model provides).  Each model's options are one frozen record (:mod:`prodampi.soil.options`).
"""

from __future__ import annotations

from importlib import import_module

from .base import SoilModel, SteadyState  # noqa: F401
from .options import PRESETS

__all__ = ["MODELS", "PRESETS", "SoilModel", "SteadyState", "get_model"]

MODELS: dict[str, str] = {
    "clm5": "prodampi.soil.clm5:CLM5Model",
    "compas": "prodampi.soil.compas:COMPASModel",
}


def get_model(name: str, preset: str = "paper", **overrides) -> SoilModel:
    """Instantiate model ``name`` (one of :data:`MODELS`) from ``preset`` (one of :data:`PRESETS`).

    Parameters
    ----------
    name : str
        Registered model name.
    preset : str
        ``"paper"`` (the authors' code; default) or ``"textbook"``.
    **overrides
        Fields of the model's options record (e.g. ``bedrock="conservative"``).

    Raises
    ------
    ValueError
        Unknown model, preset or option, or an option value outside its allowed set; the message names the
        allowed values.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} for model {name!r}; allowed: {', '.join(PRESETS)}")
    mod, cls = MODELS[name].split(":")
    return getattr(import_module(mod), cls)(preset=preset, **overrides)
