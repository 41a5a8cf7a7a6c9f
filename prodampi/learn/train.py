"""Training a stack of ensemble members: Adadelta, mini-batches, early stopping, lowest-validation-loss weights.

The loop of the authors' Keras scripts (spec ``proda_nn_maps.md`` §5.3), for M members at once
(:class:`~prodampi.learn.network.StackedMLP`; M = 1 is "one member at a time"):

* every epoch each member reshuffles its training rows (:func:`~prodampi.learn.data.epoch_permutation`, keyed by
  the member's seed and the epoch) and takes mini-batches of ``batch_size`` rows; the last batch is short.  A
  stack steps as many times as its longest member; a member whose rows are used up is *inactive* for the rest
  of the epoch: its rows are masked and :class:`~prodampi.learn.optim.StackedAdadelta` leaves it untouched, so
  it follows exactly the trajectory it would follow alone;
* the loss is built from per-member batch sums (:mod:`prodampi.learn.losses`).  In a data-parallel group
  (``group``) each replica takes a contiguous share of every global batch's rows and the sums are all-reduced
  (differentiably) before the loss, so the gradient DDP averages is the gradient of the *global*-batch loss,
  whatever the split -- equal to a single-process run on the same batches to float round-off;
* after every epoch: the training loss (size-weighted mean of the batch losses, as Keras reports it) and the
  validation loss (batchwise over validation mini-batches of ``batch_size``, size-weighted, as Keras'
  ``val_loss``); early stopping on ``val_loss`` with ``patience`` epochs and no ``min_delta``; the weights of
  the lowest validation loss are kept (Keras' ``ModelCheckpoint(save_best_only)`` reloaded after ``fit``).

:class:`StackState` is the whole training state of a stack -- the checkpoint: with it, and the epoch-keyed
random streams, a resumed stack continues to the same bits as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .data import epoch_permutation
from .losses import batch_sums, loss_from_sums
from .network import DropoutStreams, StackedMLP
from .optim import StackedAdadelta

__all__ = ["MemberPlan", "Replica", "StackState", "TrainConfig", "init_stack", "predict", "train_epoch"]


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (deck section ``learn``).

    Attributes
    ----------
    epochs : most epochs per member (paper 6,000)
    patience : early-stopping patience in epochs (paper 1,200); 0 = no early stopping
    batch_size : rows per mini-batch (paper 32)
    lr, rho, eps : Adadelta (Keras 2 defaults 1e-3, 0.95, 1e-7)
    hidden : hidden-layer widths
    dropout : dropout after every hidden layer (paper 0.2; the authors' CLM5 code 0.0)
    output : ``"linear"`` (authors) or ``"sigmoid"``
    loss : resolved loss name (:data:`prodampi.learn.losses.LOSSES`)
    ratio_eps : floor of y in the ratio terms of the loss (0: none, as the authors' code)
    """

    epochs: int = 6000
    patience: int = 1200
    batch_size: int = 32
    lr: float = 1e-3
    rho: float = 0.95
    eps: float = 1e-7
    hidden: tuple[int, ...] = (256, 512, 512, 256)
    dropout: float = 0.2
    output: str = "linear"
    loss: str = "paper"
    ratio_eps: float = 0.0


@dataclass
class MemberPlan:
    """One member of a stack.

    Attributes
    ----------
    name : member name (``bg_01``)
    init_seed, dropout_seed, shuffle_seed : the member's random streams
    train : (n_train,) int64 rows of the training arrays (repeats allowed)
    val : (n_val,) int64 rows (repeats allowed; may be empty)
    """

    name: str
    init_seed: int
    dropout_seed: int
    shuffle_seed: int
    train: np.ndarray
    val: np.ndarray


@dataclass
class StackState:
    """The training state of a stack of M members (the checkpoint).

    Attributes
    ----------
    net : the stacked network (current weights)
    opt : its optimiser
    best : per parameter the weights at each member's lowest validation loss, (M, ...) like the parameter
    epoch : epochs completed (int; all members of a stack advance together)
    best_epoch : (M,) int64, epoch (1-based) of the lowest validation loss (0: none yet)
    best_val : (M,) float64
    wait : (M,) int64 epochs since the best
    running : (M,) bool, not stopped early and below ``epochs``
    stopped_early : (M,) bool
    train_loss, val_loss : (M, epochs) float64, NaN where not run
    """

    net: StackedMLP
    opt: StackedAdadelta
    best: list[torch.Tensor]
    epoch: int
    best_epoch: np.ndarray
    best_val: np.ndarray
    wait: np.ndarray
    running: np.ndarray
    stopped_early: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return not bool(self.running.any())

    def to_dict(self) -> dict[str, Any]:
        """Everything to restore the state exactly (tensors and numpy arrays; for ``torch.save``)."""
        return {"net": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
                "opt": self.opt.state_dict(), "best": [b.clone() for b in self.best], "epoch": self.epoch,
                "best_epoch": self.best_epoch.copy(), "best_val": self.best_val.copy(), "wait": self.wait.copy(),
                "running": self.running.copy(), "stopped_early": self.stopped_early.copy(),
                "train_loss": self.train_loss.copy(), "val_loss": self.val_loss.copy()}

    def load_dict(self, d: dict[str, Any]) -> None:
        """Restore :meth:`to_dict`'s output into this (freshly initialised, same-shaped) state."""
        self.net.load_state_dict(d["net"])
        self.opt.load_state_dict(d["opt"])
        with torch.no_grad():
            for b, s in zip(self.best, d["best"]):
                b.copy_(s)
        self.epoch = int(d["epoch"])
        for k in ("best_epoch", "best_val", "wait", "running", "stopped_early", "train_loss", "val_loss"):
            setattr(self, k, np.array(d[k]))


def init_stack(plans: Sequence[MemberPlan], cfg: TrainConfig, in_dim: int, out_dim: int,
               device: str | torch.device = "cpu") -> StackState:
    """A fresh stack: Glorot-uniform weights from each member's init seed (Keras defaults), drawn on the CPU
    (the same on every device), then moved to ``device``."""
    m = len(plans)
    net = StackedMLP(m, in_dim, out_dim, hidden=tuple(cfg.hidden), dropout=cfg.dropout, output=cfg.output)
    net.init_members([p.init_seed for p in plans])
    net = net.to(device)
    opt = StackedAdadelta(list(net.parameters()), lr=cfg.lr, rho=cfg.rho, eps=cfg.eps)
    best = [p.detach().clone() for p in net.parameters()]
    e = cfg.epochs
    return StackState(net=net, opt=opt, best=best, epoch=0, best_epoch=np.zeros(m, np.int64),
                      best_val=np.full(m, np.inf), wait=np.zeros(m, np.int64), running=np.ones(m, bool),
                      stopped_early=np.zeros(m, bool), train_loss=np.full((m, e), np.nan),
                      val_loss=np.full((m, e), np.nan))


@dataclass(frozen=True)
class Replica:
    """This process's place in a data-parallel group (built by :func:`prodampi.learn.ddp.replica`).

    Attributes
    ----------
    index, count : this replica's index and the group size
    allreduce : differentiable sum of a tensor over the group's replicas
    """

    index: int
    count: int
    allreduce: Callable[[torch.Tensor], torch.Tensor]

    def shard(self, rows: int) -> slice:
        """This replica's contiguous share of the ``rows`` slots of a global batch."""
        bounds = np.linspace(0, rows, self.count + 1).round().astype(int)
        return slice(int(bounds[self.index]), int(bounds[self.index + 1]))


def _batch_losses(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, cfg: TrainConfig, n_chunks: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Batchwise losses over ``n_chunks`` consecutive chunks of ``batch_size`` rows: (M, n_chunks) losses and
    (M, n_chunks) row counts."""
    m, rows, p = pred.shape
    b = cfg.batch_size
    pad = n_chunks * b - rows
    if pad:
        z = pred.new_zeros((m, pad, p))
        pred, y = torch.cat([pred, z], 1), torch.cat([y, z], 1)
        mask = torch.cat([mask, mask.new_zeros((m, pad))], 1)
    pred = pred.reshape(m * n_chunks, b, p)
    y = y.reshape(m * n_chunks, b, p)
    mask = mask.reshape(m * n_chunks, b)
    s = batch_sums(pred, y, mask, cfg.ratio_eps)
    return loss_from_sums(cfg.loss, s).reshape(m, n_chunks), mask.sum(1).reshape(m, n_chunks)


def _gather(rows: list[np.ndarray], width: int, x: torch.Tensor, y: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack per-member row lists into (M, width, ·) tensors padded with row 0 and a 0/1 mask."""
    m = len(rows)
    idx = np.zeros((m, width), np.int64)
    mask = np.zeros((m, width), np.float32)
    for i, r in enumerate(rows):
        idx[i, :r.size] = r
        mask[i, :r.size] = 1.0
    it = torch.from_numpy(idx).to(x.device)
    return x[it], y[it], torch.from_numpy(mask).to(x.device)


def validation_loss(state: StackState, plans: Sequence[MemberPlan], x: torch.Tensor, y: torch.Tensor,
                    cfg: TrainConfig) -> np.ndarray:
    """(M,) validation loss of the current weights: batchwise over mini-batches of ``batch_size`` rows in
    order, size-weighted (Keras' ``val_loss``); NaN for a member without validation rows or not running."""
    run = np.flatnonzero(state.running)
    nv = max((plans[i].val.size for i in run), default=0)
    out = np.full(len(plans), np.nan)
    if nv == 0:
        return out
    xb, yb, mb = _gather([plans[i].val for i in run], nv, x, y)
    sub = None if run.size == len(plans) else torch.from_numpy(run).to(x.device)
    with torch.no_grad():
        pred = state.net(xb, None, sub)
        n_chunks = -(-nv // cfg.batch_size)
        loss, cnt = _batch_losses(pred, yb, mb, cfg, n_chunks)
        tot = cnt.sum(1)
        v = (loss * cnt).sum(1) / torch.clamp(tot, min=1)
    for j, i in enumerate(run):
        if plans[i].val.size:
            out[i] = float(v[j])
    return out


def train_epoch(state: StackState, plans: Sequence[MemberPlan], x: torch.Tensor, y: torch.Tensor,
                cfg: TrainConfig, group: Replica | None = None, ddp_module: Any = None, on_step: Any = None
                ) -> None:
    """Advance every running member of the stack by one epoch (in place), then early stopping.

    Parameters
    ----------
    state : the stack
    plans : (M,) the members
    x : (N, K) float32 scaled covariates of the training sites
    y : (N, P) float32 targets (normalised parameters)
    cfg : settings
    group : this process's :class:`Replica` in a data-parallel group (None: single process)
    ddp_module : the :class:`torch.nn.parallel.DistributedDataParallel` wrapper of ``state.net`` over the same
        group (it averages the gradients)
    on_step : called after every optimiser step (tests: replica comparison)
    """
    e = state.epoch  # 0-based index of the epoch to run
    m = len(plans)
    running = state.running.copy()
    b = cfg.batch_size
    perms = [plans[i].train[epoch_permutation(plans[i].shuffle_seed, e + 1, plans[i].train.size)]
             if running[i] else np.zeros(0, np.int64) for i in range(m)]
    steps = max((-(-p.size // b) for p in perms), default=0)
    drop = DropoutStreams([p.dropout_seed for p in plans], list(cfg.hidden), cfg.dropout)
    drop.start_epoch(e + 1)
    net = ddp_module if ddp_module is not None else state.net
    state.net.train()
    acc_loss = np.zeros(m)
    acc_n = np.zeros(m)
    for k in range(steps):
        rows = [p[k * b:(k + 1) * b] for p in perms]
        active = np.array([r.size > 0 for r in rows])
        act_idx = np.flatnonzero(active)
        masks = drop.draw(b, active.tolist())
        sl = slice(0, b) if group is None else group.shard(b)
        xb, yb, mb = _gather([rows[i] for i in act_idx], b, x, y)
        xb, yb, mb = xb[:, sl], yb[:, sl], mb[:, sl]
        sub = None if act_idx.size == m else torch.from_numpy(act_idx).to(x.device)
        if masks is not None:
            masks = [(mk if sub is None else mk[act_idx])[:, sl].to(x.device) for mk in masks]
        pred = net(xb, masks, sub)  # only the members with rows in this step are computed
        sums = batch_sums(pred, yb, mb, cfg.ratio_eps)
        if group is not None:
            sums = group.allreduce(sums)
        loss = loss_from_sums(cfg.loss, sums)
        state.opt.zero_grad()
        loss.sum().backward()
        state.opt.step(torch.from_numpy(active).to(x.device))
        lv = loss.detach().cpu().numpy().astype(np.float64)
        n = np.array([rows[i].size for i in act_idx], dtype=np.float64)
        acc_loss[act_idx] += lv * n
        acc_n[act_idx] += n
        if on_step is not None:
            on_step(k)
    state.net.eval()
    vl = validation_loss(state, plans, x, y, cfg)
    state.epoch = e + 1
    with torch.no_grad():
        for i in np.flatnonzero(running):
            state.train_loss[i, e] = acc_loss[i] / max(acc_n[i], 1)
            state.val_loss[i, e] = vl[i]
            monitor = vl[i] if np.isfinite(vl[i]) else state.train_loss[i, e]
            if monitor < state.best_val[i]:
                state.best_val[i] = monitor
                state.best_epoch[i] = e + 1
                state.wait[i] = 0
                for bt, pt in zip(state.best, state.net.parameters()):
                    bt[i].copy_(pt[i])
            else:
                state.wait[i] += 1
                if cfg.patience and state.wait[i] >= cfg.patience:
                    state.running[i] = False
                    state.stopped_early[i] = True
            if state.epoch >= cfg.epochs:
                state.running[i] = False


def best_network(state: StackState) -> StackedMLP:
    """A copy of the stack holding each member's lowest-validation-loss weights (eval mode)."""
    import copy

    net = copy.deepcopy(state.net)
    with torch.no_grad():
        for pt, bt in zip(net.parameters(), state.best):
            pt.copy_(bt)
    return net.eval()


def predict(net: StackedMLP, x: torch.Tensor, chunk: int = 8192) -> np.ndarray:
    """(M, N, P) float32 predictions of every member at the (N, K) scaled covariates (no dropout), in fixed
    chunks of rows (results do not depend on who calls)."""
    out = []
    with torch.no_grad():
        for a in range(0, x.shape[0], chunk):
            xb = x[a:a + chunk].unsqueeze(0).expand(net.n_members, -1, -1).contiguous()
            out.append(net(xb, None).cpu().numpy())
    if not out:
        return np.zeros((net.n_members, 0, net.out_dim), np.float32)
    return np.concatenate(out, axis=1)
