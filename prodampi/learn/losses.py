"""Loss variants of the PRODA network (spec §5.2), computed from per-member batch sums.

Every loss is a function of five per-member sums over the masked entries of a mini-batch
(:func:`batch_sums`). Sums add over any split of the rows, so a data-parallel group can all-reduce the sums
(a differentiable all-reduce) and obtain exactly the global-batch loss with :func:`loss_from_sums`.

Notation: e = y - y_hat (target minus prediction), entries run over the masked rows times the P outputs,
N = number of masked entries (rows x P).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["LOSSES", "SUM_COLUMNS", "batch_sums", "loss_from_sums", "resolve_loss"]

SUM_COLUMNS: tuple[str, ...] = ("sse", "sae", "sre", "sy", "n")
"""Columns of :func:`batch_sums`: sum e^2, sum |e|, sum |e|/y, sum y, number of entries."""

LOSSES: dict[str, str] = {
    "paper": "RL x MSE with RL = sum|e| / sum y and MSE = sum e^2 / N (paper §2.6, ratio of sums)",
    "clm5_code": "12,500 * MSE * MARE with MARE = sum(|e|/y) / N (PUB CLM5 ensemble_neural_networking script)",
    "compas_code": "500 * MSE (MIC COMPAS ensemble_neural_networking script; ratio factor commented out)",
    "mse": "plain MSE = sum e^2 / N",
}

_AUTHORS = {"clm5": "clm5_code", "compas": "compas_code"}


def batch_sums(pred: Tensor, target: Tensor, row_mask: Tensor, ratio_eps: float = 0.0) -> Tensor:
    """Per-member sums of one mini-batch, differentiable w.r.t. ``pred``.

    Parameters
    ----------
    pred, target : Tensor, shape (M, B, P)
        Predictions and targets (normalised parameters, dimensionless).
    row_mask : Tensor, shape (M, B)
        Row weights, 0/1 (padding rows and inactive members 0). Entries of rows with weight 0 contribute
        nothing, whatever their values (NaN or 0 targets included); a weight w > 0 counts the row w times.
    ratio_eps : float
        Floor of the denominator of the element-wise ratio: ``|e| / max(y, ratio_eps)``. 0 (default) divides by
        y as the authors' code does (no epsilon).

    Returns
    -------
    Tensor, shape (M, 5), dtype of ``pred``
        Columns :data:`SUM_COLUMNS`: [sum e^2, sum |e|, sum |e|/max(y, eps), sum y, N = sum(mask) * P].
    """
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(f"pred and target must both be (M, B, P), got {tuple(pred.shape)}, {tuple(target.shape)}")
    if row_mask.shape != pred.shape[:2]:
        raise ValueError(f"row_mask must be (M, B) = {tuple(pred.shape[:2])}, got {tuple(row_mask.shape)}")
    w = row_mask.to(pred.dtype)
    keep = (w > 0).unsqueeze(-1).expand_as(pred)
    target = target.to(pred.dtype)
    zero = torch.zeros((), dtype=pred.dtype)
    one = torch.ones((), dtype=pred.dtype)
    # where() first, so that masked-out entries are exactly 0 and carry no NaN into values or gradients
    e = torch.where(keep, target - pred, zero)
    y = torch.where(keep, target, zero)
    denom = torch.where(keep, y.clamp_min(ratio_eps) if ratio_eps > 0 else y, one)
    ae = e.abs()
    w3 = w.unsqueeze(-1)
    n_out = pred.shape[2]
    return torch.stack([
        (w3 * e * e).sum(dim=(1, 2)),
        (w3 * ae).sum(dim=(1, 2)),
        (w3 * (ae / denom)).sum(dim=(1, 2)),
        (w3 * y).sum(dim=(1, 2)),
        w.sum(dim=1) * n_out,
    ], dim=1)


def loss_from_sums(name: str, sums: Tensor) -> Tensor:
    """Per-member loss from (possibly all-reduced) batch sums.

    Parameters
    ----------
    name : str
        A key of :data:`LOSSES`.
    sums : Tensor, shape (M, 5)
        From :func:`batch_sums` (summed over shards if the batch is split).

    Returns
    -------
    Tensor, shape (M,)
        Loss per member (dimensionless). A member with N = 0 gets exactly 0 and zero gradient.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose from {sorted(LOSSES)}")
    if sums.dim() != 2 or sums.shape[1] != len(SUM_COLUMNS):
        raise ValueError(f"sums must be (M, {len(SUM_COLUMNS)}), got {tuple(sums.shape)}")
    sse, sae, sre, sy, n = sums.unbind(dim=1)
    ok = n > 0
    one = torch.ones((), dtype=sums.dtype)
    n_safe = torch.where(ok, n, one)
    mse = sse / n_safe
    if name == "paper":
        value = (sae / torch.where(ok, sy, one)) * mse
    elif name == "clm5_code":
        value = 12_500.0 * mse * (sre / n_safe)
    elif name == "compas_code":
        value = 500.0 * mse
    else:
        value = mse
    return torch.where(ok, value, torch.zeros((), dtype=sums.dtype))


def resolve_loss(choice: str, model: str) -> str:
    """Map a deck loss choice to a :data:`LOSSES` name.

    Parameters
    ----------
    choice : str
        "paper", "authors", "mse" or any :data:`LOSSES` name.
    model : str
        Model name ("clm5", "compas", ...); used by "authors" only.

    Returns
    -------
    str
        "authors" gives "clm5_code" for clm5, "compas_code" for compas and "paper" for other models; any
        other valid choice is returned unchanged.
    """
    if choice == "authors":
        return _AUTHORS.get(str(model).lower(), "paper")
    if choice in LOSSES:
        return choice
    raise ValueError(f"unknown loss choice {choice!r}; choose 'authors' or one of {sorted(LOSSES)}")
