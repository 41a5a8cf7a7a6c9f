"""DDP glue (not a kernel): the :class:`~prodampi.learn.train.Replica` of this process in a torch.distributed
process group.  The process groups themselves are made by the stage (:func:`prodampi.stages.learn._ddp_groups`,
a TCP rendezvous announced over MPI)."""

from __future__ import annotations

from typing import Any

import torch

from .train import Replica

__all__ = ["replica"]


def replica(group: Any) -> Replica:
    """This process's :class:`Replica` in the torch.distributed process ``group``: its rank and size there and a
    differentiable all-reduce (sum) over it (``torch.distributed.nn.functional.all_reduce``: the backward pass
    sums the gradients over the replicas too)."""
    import torch.distributed as dist
    from torch.distributed.nn.functional import all_reduce

    def _sum(t: torch.Tensor) -> torch.Tensor:
        return all_reduce(t, group=group)

    return Replica(index=dist.get_rank(group), count=dist.get_world_size(group), allreduce=_sum)
