"""Sampler kernels by name: ``paper`` (the authors' procedure) and ``textbook`` (Haario adaptive Metropolis).

>>> from prodampi.inference.sampler import get_kernel
>>> kernel = get_kernel("paper")
>>> state = kernel.init(config, target, keys)
>>> while not kernel.done(state).all():
...     state, info = kernel.step(state, target)
>>> results = kernel.finalize(state, target)

The contract (shapes, the state record, the result fields) is :mod:`prodampi.inference.sampler.base`.
"""

from __future__ import annotations

from importlib import import_module

from .base import RESULT_FIELDS, Evaluation, Kernel, SamplerConfig, SamplerState, Target

__all__ = ["KERNELS", "RESULT_FIELDS", "Evaluation", "Kernel", "SamplerConfig", "SamplerState", "Target",
           "get_kernel"]

#: kernel name -> "module:Class" (the names are those of prodampi.inference.SAMPLER_MODES)
KERNELS: dict[str, str] = {
    "paper": "prodampi.inference.sampler.paper:PaperKernel",
    "textbook": "prodampi.inference.sampler.textbook:TextbookKernel",
}


def get_kernel(name: str) -> Kernel:
    """The kernel registered as ``name``."""
    if name not in KERNELS:
        raise ValueError(f"unknown sampler kernel {name!r}; allowed: {', '.join(KERNELS)}")
    mod, cls = KERNELS[name].split(":")
    return getattr(import_module(mod), cls)()
