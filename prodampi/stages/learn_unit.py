"""One work unit of stage **learn**: a stack of ensemble members trained to the end, with checkpoints.

Files (``<run_dir>/learn.parts/``; written to a temporary name and renamed, so a kill leaves the previous
version or none)::

    learn.parts/key.json                     the learn key the parts belong to (another key: start over)
    learn.parts/<model>/unit_<u>.ckpt.pt     the in-flight training state of unit u (torch.save of
                                             StackState.to_dict + the key), every checkpoint_every_s /
                                             checkpoint_every_epochs and on SIGTERM / SIGUSR1
    learn.parts/<model>/unit_<u>.npz         the finished unit: per member its history, best epoch and
                                             predictions at every site and cell (its existence = done)
    ensemble.weights/<model>/<member>.pt     each finished member's weights (torch.nn.Sequential
                                             state_dict), kept beside ensemble.h5

Within a DDP group every replica holds the same state; the group's first rank writes the files.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.ensemble import WEIGHTS_DIR, weights_digest
from ..io.safefile import atomic_output
from ..io.staging import read_part, write_part
from ..learn.network import to_sequential
from ..learn.train import MemberPlan, StackState, TrainConfig, best_network, init_stack, predict, train_epoch
from ..parallel import signals
from ..parallel.faults import fault_point

log = logging.getLogger(__name__)

LEARN_PARTS = "learn.parts"


def unit_path(parts: Path, model: str, unit: int) -> Path:
    return Path(parts) / model / f"unit_{unit:05d}.npz"


def ckpt_path(parts: Path, model: str, unit: int) -> Path:
    return Path(parts) / model / f"unit_{unit:05d}.ckpt.pt"


@dataclass
class UnitInput:
    """What a unit trains on.

    Attributes
    ----------
    model, unit : names the unit
    members : (M,) member names
    plans : (M,) :class:`MemberPlan`
    x_train, y_train : (N, K) / (N, P) float32 tensors of the training sites
    x_site : (S, K) float32 tensor, every site of the ensemble (predictions)
    x_cell : (C, K) float32 tensor, every valid cell (predictions)
    """

    model: str
    unit: int
    members: list[str]
    plans: list[MemberPlan]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_site: torch.Tensor
    x_cell: torch.Tensor


@dataclass
class UnitOutcome:
    stopped: bool
    epochs: int = 0
    busy_s: float = 0.0


def _save_ckpt(path: Path, state: StackState, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        torch.save({"key": key, "state": state.to_dict()}, tmp)


def _load_ckpt(path: Path, state: StackState, key: str) -> bool:
    if not path.exists():
        return False
    try:
        d = torch.load(path, weights_only=False, map_location=state.best[0].device)
        if d.get("key") != key:
            return False
        state.load_dict(d["state"])
        return True
    except Exception as e:  # noqa: BLE001 - an unreadable checkpoint is redone, never fatal
        log.warning("learn: checkpoint %s unreadable (%s); starting that unit over", path, e)
        return False


def write_weights(run_dir: Path, model: str, names: list[str], net: Any) -> list[str]:
    """Each member's best weights as ``ensemble.weights/<model>/<member>.pt``; returns the blake2b digests."""
    out = []
    d = Path(run_dir) / WEIGHTS_DIR / model
    d.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        p = d / f"{name}.pt"
        with atomic_output(p) as tmp:
            torch.save({k: v.detach().cpu() for k, v in to_sequential(net, i).state_dict().items()}, tmp)
        out.append(weights_digest(p))
    return out


def run_unit(inp: UnitInput, cfg: TrainConfig, run_dir: Path, parts: Path, key: str, rank: int,
             writer: bool, every_s: float, every_epochs: int | None, progress_s: float,
             group: Any = None, ddp_module_factory: Any = None, stop_vote: Any = None,
             report: Any = None) -> UnitOutcome:
    """Train unit ``inp`` to the end (resuming from its checkpoint) and write its result file.

    ``stop_vote(flag) -> bool``: in a DDP group, whether any replica saw a stop signal (all replicas stop at the
    same epoch); None: this rank alone.  ``report(payload)``: called with this unit's progress (unit, epoch,
    running members, members) at every progress line.  Returns ``stopped=True`` when a stop signal interrupted
    the unit (its state is checkpointed)."""
    t0 = time.monotonic()
    k_dim, p_dim = inp.x_train.shape[1], inp.y_train.shape[1]
    state = init_stack(inp.plans, cfg, k_dim, p_dim, device=inp.x_train.device)
    cp = ckpt_path(parts, inp.model, inp.unit)
    if _load_ckpt(cp, state, key):
        log.info("learn: %s unit %d (%s) resumed at epoch %d", inp.model, inp.unit, ",".join(inp.members),
                 state.epoch)
    ddp = ddp_module_factory(state.net) if ddp_module_factory is not None else None
    last_ck = last_log = time.monotonic()
    epochs_run = 0
    while not state.finished:
        train_epoch(state, inp.plans, inp.x_train, inp.y_train, cfg, group=group, ddp_module=ddp)
        epochs_run += 1
        fault_point("learn_epoch", rank)
        now = time.monotonic()
        want_stop = signals.stop_signal() is not None
        if stop_vote is not None:
            want_stop = stop_vote(want_stop)
        due = (every_epochs is not None and state.epoch % every_epochs == 0) or \
              (every_s > 0 and now - last_ck >= every_s) or signals.checkpoint_requested(clear=False)
        if (due or want_stop) and not state.finished:
            if writer:
                _save_ckpt(cp, state, key)
            signals.checkpoint_requested(clear=True)
            last_ck = now
            fault_point("learn_after_checkpoint", rank)
        if now - last_log >= progress_s:
            last_log = now
            if report is not None:
                report({"unit": inp.unit, "epoch": state.epoch, "running": int(state.running.sum()),
                        "members": len(inp.members)})
            log.info("learn: %s unit %d epoch %d | running %d/%d | best val %s", inp.model, inp.unit, state.epoch,
                     int(state.running.sum()), len(inp.members),
                     " ".join(f"{v:.4g}" for v in state.best_val))
        if want_stop and not state.finished:
            return UnitOutcome(stopped=True, epochs=epochs_run, busy_s=time.monotonic() - t0)
    best = best_network(state)
    if writer:
        digests = write_weights(run_dir, inp.model, inp.members, best)
        arrays = {
            "members": np.array(inp.members), "weights_blake2b": np.array(digests),
            "epochs_run": np.array([int(np.isfinite(state.train_loss[i]).sum()) for i in range(len(inp.members))]),
            "best_epoch": state.best_epoch, "best_val": state.best_val,
            "stopped_early": state.stopped_early.astype(np.uint8),
            "train_loss": state.train_loss, "val_loss": state.val_loss,
            "pred_site": predict(best, inp.x_site), "pred_cell": predict(best, inp.x_cell),
        }
        write_part(unit_path(parts, inp.model, inp.unit), arrays, {"key": key, "model": inp.model,
                                                                    "unit": inp.unit, "kind": "learn_unit"})
        fault_point("learn_unit_written", rank)
        cp.unlink(missing_ok=True)
    log.info("learn: %s unit %d (%s) done after %d epochs (best epochs %s)", inp.model, inp.unit,
             ",".join(inp.members), state.epoch, ",".join(str(int(b)) for b in state.best_epoch))
    return UnitOutcome(stopped=False, epochs=epochs_run, busy_s=time.monotonic() - t0)


def unit_done(parts: Path, model: str, unit: int, key: str, members: list[str]) -> bool:
    got = read_part(unit_path(parts, model, unit), key, names=("members",))
    ok = got is not None and [str(x) for x in got[0].get("members", [])] == list(members)
    if not ok and unit_path(parts, model, unit).exists():
        log.warning("learn: %s is unreadable or stale; redoing that unit", unit_path(parts, model, unit))
        os.unlink(unit_path(parts, model, unit))
    return ok
