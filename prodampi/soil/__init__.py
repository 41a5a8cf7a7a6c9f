"""Soil-carbon process models (pure batched numpy kernels) behind one interface, :class:`SoilModel`.

>>> from prodampi.soil import get_model
>>> model = get_model("clm5")       # or "compas"
"""

from __future__ import annotations

from importlib import import_module

from .base import SoilModel, SteadyState  # noqa: F401

MODELS: dict[str, str] = {
    "clm5": "prodampi.soil.clm5:CLM5Model",
    "compas": "prodampi.soil.compas:COMPASModel",
}


def get_model(name: str, **options) -> SoilModel:
    """Instantiate the model called ``name`` (one of :data:`MODELS`) with its documented ``options``."""
    try:
        mod, cls = MODELS[name].split(":")
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(MODELS)}") from None
    return getattr(import_module(mod), cls)(**options)
