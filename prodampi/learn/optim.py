"""Adadelta for stacked parameters with a per-member ``active`` mask (spec §5.3).

:class:`StackedAdadelta` performs, for every parameter tensor whose leading axis is the member axis (M), the
update of ``torch.optim.Adadelta`` (Zeiler 2012; same operation order, weight decay 0, no maximise)::

    square_avg = rho * square_avg + (1 - rho) * g^2
    delta      = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g
    acc_delta  = rho * acc_delta + (1 - rho) * delta^2
    param      = param - lr * delta

Defaults are the tf.keras >= 2 ones (lr = 1e-3, rho = 0.95, eps = 1e-7); the Keras and torch algorithms are
the same. Members whose ``active`` entry is False get no update at all: neither parameters, state nor their
step count move, so a member trained in a stack follows the trajectory it follows alone.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["StackedAdadelta"]


class StackedAdadelta:
    """Adadelta over parameters of shape (M, ...), with members switched on and off per step.

    Parameters
    ----------
    params : iterable of Tensor (Parameters)
        Parameters sharing the leading member axis M.
    lr : float
        Learning rate (Keras default 1e-3).
    rho : float
        Decay of the running averages (0.95).
    eps : float
        Added inside both square roots (1e-7).
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, rho: float = 0.95, eps: float = 1e-7) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("no parameters")
        self.n_members = int(self.params[0].shape[0])
        for p in self.params:
            if p.dim() < 1 or p.shape[0] != self.n_members:
                raise ValueError(f"every parameter needs leading axis M={self.n_members}, got {tuple(p.shape)}")
        if not (lr >= 0.0 and 0.0 <= rho <= 1.0 and eps >= 0.0):
            raise ValueError(f"invalid lr={lr}, rho={rho}, eps={eps}")
        self.lr = float(lr)
        self.rho = float(rho)
        self.eps = float(eps)
        self.square_avg = [torch.zeros_like(p, memory_format=torch.preserve_format).detach() for p in self.params]
        self.acc_delta = [torch.zeros_like(p, memory_format=torch.preserve_format).detach() for p in self.params]
        self.steps = torch.zeros(self.n_members, dtype=torch.int64)
        # work buffers, reused every step: large temporaries cost a fresh mmap and its page faults each time
        self._std = [torch.empty_like(p).detach() for p in self.params]
        self._delta = [torch.empty_like(p).detach() for p in self.params]

    def zero_grad(self) -> None:
        """Zero every gradient in place (no reallocation per step; the next backward pass adds into the zeros,
        which gives the same values as a fresh gradient)."""
        for p in self.params:
            if p.grad is not None:
                p.grad.detach_()
                p.grad.zero_()

    @torch.no_grad()
    def step(self, active: Tensor | None = None) -> None:
        """One Adadelta update of the active members.

        Parameters
        ----------
        active : Tensor, shape (M,), bool, or None
            Members to update; None updates all. Inactive members are left bit-unchanged (parameters and
            state). Parameters whose ``grad`` is None are skipped, as torch does.
        """
        if active is None:
            act = None
        else:
            act = torch.as_tensor(active, dtype=torch.bool).reshape(-1)
            if act.numel() != self.n_members:
                raise ValueError(f"active must have {self.n_members} entries, got {act.numel()}")
            if bool(act.all()):
                act = None
            elif not bool(act.any()):
                return
        rho, eps, lr = self.rho, self.eps, self.lr
        idle = None if act is None else torch.nonzero(~act).reshape(-1)
        for p, sq, acc, std, delta in zip(self.params, self.square_avg, self.acc_delta, self._std, self._delta):
            g = p.grad
            if g is None:
                continue
            keep = None if idle is None else (p[idle].clone(), sq[idle].clone(), acc[idle].clone())
            # same operation sequence as torch.optim.adadelta._single_tensor_adadelta, in place
            sq.mul_(rho).addcmul_(g, g, value=1 - rho)
            torch.add(sq, eps, out=std).sqrt_()
            torch.add(acc, eps, out=delta).sqrt_()
            delta.div_(std).mul_(g)
            acc.mul_(rho).addcmul_(delta, delta, value=1 - rho)
            p.add_(delta, alpha=-lr)
            if keep is not None:  # inactive members: put back exactly what they had
                p[idle], sq[idle], acc[idle] = keep
        if act is None:
            self.steps += 1
        else:
            self.steps += act.to(torch.int64)

    def state_dict(self) -> dict[str, object]:
        """Copy of the optimiser state.

        Returns
        -------
        dict
            ``lr``, ``rho``, ``eps`` (float), ``steps`` (M,) int64 updates per member, ``square_avg`` and
            ``acc_delta`` (lists of tensors shaped like the parameters). Loading it gives bit-identical
            continued updates.
        """
        return {"lr": self.lr, "rho": self.rho, "eps": self.eps, "steps": self.steps.clone(),
                "square_avg": [t.clone() for t in self.square_avg],
                "acc_delta": [t.clone() for t in self.acc_delta]}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore a :meth:`state_dict` (shapes must match the parameters)."""
        sq, acc = state["square_avg"], state["acc_delta"]
        if len(sq) != len(self.params) or len(acc) != len(self.params):  # type: ignore[arg-type]
            raise ValueError("state has a different number of parameters")
        for dst, src in [*zip(self.square_avg, sq), *zip(self.acc_delta, acc)]:  # type: ignore[arg-type]
            if tuple(src.shape) != tuple(dst.shape):
                raise ValueError(f"state shape {tuple(src.shape)} != parameter shape {tuple(dst.shape)}")
            dst.copy_(src)
        self.lr = float(state["lr"])  # type: ignore[arg-type]
        self.rho = float(state["rho"])  # type: ignore[arg-type]
        self.eps = float(state["eps"])  # type: ignore[arg-type]
        self.steps.copy_(torch.as_tensor(state["steps"], dtype=torch.int64))

    def member_state(self, m: int) -> dict[str, object]:
        """State of member m alone: ``steps`` (int), ``square_avg`` and ``acc_delta`` (lists of ``t[m]`` copies)."""
        return {"steps": int(self.steps[m]), "square_avg": [t[m].clone() for t in self.square_avg],
                "acc_delta": [t[m].clone() for t in self.acc_delta]}

    def set_member_state(self, m: int, state: dict[str, object]) -> None:
        """Set member m's state from :meth:`member_state` (e.g. taken from another stack)."""
        for dst, src in [*zip(self.square_avg, state["square_avg"]),  # type: ignore[arg-type]
                         *zip(self.acc_delta, state["acc_delta"])]:  # type: ignore[arg-type]
            dst[m].copy_(src)
        self.steps[m] = int(state["steps"])  # type: ignore[arg-type]
