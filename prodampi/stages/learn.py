"""Stage 3, **learn**: ``inputs.h5`` + ``posterior.h5`` -> ``<run_dir>/ensemble.h5`` (+ ``ensemble.weights/``).

Per model (spec ``proda_nn_maps.md`` §3-6):

1. **Sites**: the profiles that passed the assimilation filters (status ``converged``: G-R and NSE) with every
   covariate finite and a finite target -- the posterior mean (``learn.target``).  A ``holdout_fraction`` of
   them is kept out of every member (to score the ensemble; on the synthetic world against the truth).
2. **Scaling**: min-max of every covariate over the valid grid cells, applied to sites (clipped) and cells.
3. **Members**: ``best_guess_members`` networks on all training sites (a seeded 10 % validation split each)
   and ``bootstrap_members`` resampled members; every random draw of a member is keyed by (seed, model,
   member).  Consecutive members are grouped into stacks of ``stack_members`` (the work units, fixed by the
   deck, so the bits do not depend on the ranks).
4. **Training**: units go out from a dynamic work queue to ranks (``ddp_group_size: 1``) or, statically, to
   DistributedDataParallel groups of ``ddp_group_size`` ranks (gloo on CPU, NCCL on GPUs): within a group every
   global mini-batch is split over the replicas and DDP averages the gradients.  Each unit checkpoints
   (:mod:`prodampi.stages.learn_unit`); SIGTERM / SIGUSR1 checkpoint and exit 75; a re-run finishes only
   what is missing.
5. **Output**: rank 0 assembles ``ensemble.h5`` (:mod:`prodampi.io.ensemble`): per member the split, OOB sites,
   loss history, predictions at every site and valid cell, plus the best-guess median; ``learn.json`` gets the
   funnel, the epochs and, on the synthetic world, the skill against the true parameters.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StageError
from ..inference.summary import STATUS
from ..io.inputs import FILE_NAME as INPUTS_NAME
from ..io.inputs import read_inputs
from ..io.posterior import FILE_NAME as POSTERIOR_NAME
from ..io.posterior import read_summary
from ..io.staging import prepare_parts, read_part
from ..parallel import signals
from ..parallel.schedule import WorkQueue
from ..provenance import provenance
from ..soil import get_model
from .common import StageContext

log = logging.getLogger(__name__)

__all__ = ["check_ensemble_file", "ensemble_key", "learn_key", "run"]


# ------------------------------------------------------------------------------------------------ keys
def learn_key(deck: dict, posterior_key: str) -> str:
    """Hash of what determines ``ensemble.h5``: the learn section (less the settings that only change speed),
    seed, models and the posterior's own key."""
    speed_only = {"ddp_group_size", "threads_per_rank", "device", "checkpoint_every_s", "checkpoint_every_epochs"}
    d = {"learn": {k: v for k, v in deck["learn"].items() if k not in speed_only}, "seed": deck["seed"],
         "models": deck["models"], "posterior": posterior_key, "version": 1}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def ensemble_key(deck: dict) -> str:
    """The key ``ensemble.h5`` must carry for ``deck`` (root attribute ``learn_key``)."""
    from .registry import RUN_FILES

    return learn_key(deck, RUN_FILES["posterior"].expected_key(deck) or "")


def check_ensemble_file(path: str | Path, key: str | None = None) -> str | None:
    """Why ``ensemble.h5`` at ``path`` cannot be used (the contract's check, the deck key), or None."""
    from ..io.ensemble import check_ensemble

    return check_ensemble(path, key=key)


def train_config(deck: dict, model: str) -> Any:
    from ..learn.losses import resolve_loss
    from ..learn.train import TrainConfig

    c = deck["learn"]
    return TrainConfig(epochs=c["epochs"], patience=c["patience"], batch_size=c["batch_size"],
                       lr=c["learning_rate"], rho=c["rho"], eps=c["adadelta_eps"], hidden=tuple(c["hidden"]),
                       dropout=c["dropout"], output=c["output"], loss=resolve_loss(c["loss"], model),
                       ratio_eps=c["ratio_eps"])


# ------------------------------------------------------------------------------------------------ data
def _grid_cells(inp: dict, names: list[str]) -> dict[str, np.ndarray]:
    """The valid grid cells' covariates (C, K), index (row among the valid cells), lat, lon and categorical
    flags; None fields when inputs.h5 has no grid."""
    grid = inp.get("grid") or {}
    if "covariates" in grid and "forcing" in grid:  # synthetic world
        vi = np.asarray(grid["forcing"]["valid_index"])
        vals = np.asarray(grid["covariates"]["values"], dtype=np.float64)[vi]
        gnames = [x.decode() if isinstance(x, bytes) else str(x) for x in grid["covariates"]["names"]]
        cat = np.asarray(grid["covariates"]["categorical"]).astype(bool)
        lat = np.asarray(grid["land"]["lat"])[vi]
        lon = np.asarray(grid["land"]["lon"])[vi]
    elif "cells" in grid:  # a covariate table
        c = grid["cells"]
        vals = np.asarray(c["covariates"], dtype=np.float64)
        gnames = [x.decode() if isinstance(x, bytes) else str(x) for x in c["covariate_names"]]
        cat = np.zeros(len(gnames), bool)
        lat, lon = np.asarray(c["lat"]), np.asarray(c["lon"])
    else:
        return {}
    if gnames != names:
        raise StageError(f"inputs.h5: the grid's covariates ({len(gnames)}: {', '.join(gnames[:4])}, ...) are not "
                         f"the sites' ({len(names)}: {', '.join(names[:4])}, ...); make inputs.h5 again")
    return {"values": vals, "index": np.arange(vals.shape[0], dtype=np.int64), "lat": lat, "lon": lon,
            "categorical": cat}


def _model_sites(inp: dict, post_path: Path, model: str, deck: dict) -> tuple[dict, dict]:
    """The ensemble's sites for ``model`` and the funnel of how they were chosen."""
    summ = read_summary(post_path, model)
    target_name = deck["learn"]["target"]
    target = np.asarray(summ[target_name], dtype=np.float64)
    n = target.shape[0]
    status = np.asarray(summ["status"])
    cov = np.asarray(inp["sites"]["covariates"], dtype=np.float64)[:n]
    conv = _passes_filters(summ, status, deck)
    cov_ok = np.isfinite(cov).all(axis=1)
    tgt_ok = np.isfinite(target).all(axis=1)
    keep = conv & cov_ok & tgt_ok
    funnel = {"posterior_sites": int(n), "rejected_filters": int((~conv).sum()),
              "nan_covariates": int((conv & ~cov_ok).sum()), "nan_target": int((conv & cov_ok & ~tgt_ok).sum()),
              "sites": int(keep.sum())}
    rows = np.flatnonzero(keep).astype(np.int64)
    prof = inp["profiles"]
    out = {"rows": rows, "profile_id": np.asarray(prof.profile_id)[rows].astype(str),
           "lat": np.asarray(prof.lat)[rows], "lon": np.asarray(prof.lon)[rows],
           "target": target[rows], "covariates": cov[rows], "param_names": list(summ["param_name"])}
    if "cell" in inp["sites"]:
        out["cell"] = np.asarray(inp["sites"]["cell"])[rows]
    return out, funnel


def _passes_filters(summ: dict, status: np.ndarray, deck: dict) -> np.ndarray:
    """(S,) bool: the sites that train.  By default the assimilation's verdict (status ``converged``); with
    ``learn.gelman_rubin_max`` / ``learn.nse_min`` set, every site the sampler finished on good data is
    re-judged on that threshold (the G-R and NSE the assimilation used: the authors' mean G-R and legacy NSE
    for the paper kernel, max rank-normalised R-hat and Eq. 1 NSE for textbook, unless the deck chose)."""
    c, a = deck["learn"], deck["assimilate"]
    if c["gelman_rubin_max"] is None and c["nse_min"] is None:
        return status == STATUS["converged"]
    import warnings

    sampled = np.isin(status, [STATUS["converged"], STATUS["rejected_gr"], STATUS["rejected_nse"]])
    paper = a["mode"] == "paper"
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        gr = np.nanmean(summ["gr_paper"], axis=1) if paper else np.nanmax(summ["rhat"], axis=1)
    definition = a["nse_definition"] or ("legacy" if paper else "paper")
    nse = np.asarray(summ["nse_legacy"] if definition == "legacy" else summ["nse"], dtype=np.float64)
    gr_ok = (status != STATUS["rejected_gr"]) if c["gelman_rubin_max"] is None else \
        (np.isfinite(gr) & (gr <= c["gelman_rubin_max"]))
    nse_ok = (status != STATUS["rejected_nse"]) if c["nse_min"] is None else (np.isfinite(nse) & (nse > c["nse_min"]))
    return sampled & gr_ok & nse_ok


def _plans(deck: dict, model: str, n_train: int) -> tuple[list[tuple[str, str]], list[Any], list[Any]]:
    """Members, their :class:`MemberPlan` (rows into the training sites) and splits."""
    from ..learn.data import best_guess_split, bootstrap_split, member_names, member_seed
    from ..learn.train import MemberPlan

    c = deck["learn"]
    seed = int(deck["seed"])
    members = member_names(c["best_guess_members"], c["bootstrap_members"])
    plans, splits = [], []
    for name, kind in members:
        s = member_seed(seed, model, name, "split")
        sp = (best_guess_split(n_train, c["val_fraction"], c["val_split"], s) if kind == "best_guess"
              else bootstrap_split(n_train, c["val_fraction"], c["bootstrap_resample"], s))
        splits.append(sp)
        plans.append(MemberPlan(name=name, init_seed=member_seed(seed, model, name, "init"),
                                dropout_seed=member_seed(seed, model, name, "dropout"),
                                shuffle_seed=member_seed(seed, model, name, "shuffle"), train=sp.train, val=sp.val))
    return members, plans, splits


# ------------------------------------------------------------------------------------------------ DDP
def _ddp_groups(world: Any, g: int, device: str) -> tuple[Any, int, int, Any]:
    """Initialise torch.distributed over the MPI world (TCP rendezvous at rank 0) and make the DDP groups of
    ``g`` consecutive ranks.  Returns (this rank's process group, group id, number of groups, MPI sub-comm)."""
    import torch.distributed as dist

    if world.size % g:
        raise StageError(f"learn.ddp_group_size = {g} does not divide the {world.size} ranks of this job; "
                         f"run on a multiple of {g} ranks or change the deck")
    addr = None
    if world.is_root:
        import os

        host = os.environ.get("MASTER_ADDR") or socket.gethostbyname(socket.gethostname())
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        addr = f"tcp://{host}:{port}"
    addr = world.bcast(addr)
    backend = "nccl" if str(device).startswith("cuda") else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, init_method=addr, world_size=world.size, rank=world.rank)
    n_groups = world.size // g
    mine = None
    for k in range(n_groups):
        pg = dist.new_group(list(range(k * g, (k + 1) * g)))
        if world.rank // g == k:
            mine = pg
    gid = world.rank // g
    sub = world.comm.Split(gid, world.rank)
    return mine, gid, n_groups, sub


# ------------------------------------------------------------------------------------------------ stage
def run(ctx: StageContext) -> dict[str, Any]:
    """Train every member of every model (resuming), then write ``ensemble.h5``."""
    import torch  # imported here, not at module level: the registry and `prodampi status` import this module

    from ..learn.data import MinMaxScaler, holdout_mask, member_seed
    from .learn_unit import LEARN_PARTS, UnitInput, run_unit, unit_done

    world, deck, run_dir = ctx.world, ctx.deck, ctx.run_dir
    c = deck["learn"]
    torch.set_num_threads(int(c["threads_per_rank"]))
    device = c["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise StageError("learn.device = 'cuda' but torch sees no GPU on this node; use 'cpu' or 'auto'")
        gpu = world.rank % torch.cuda.device_count()  # ranks of a node share its GPUs round-robin
        torch.cuda.set_device(gpu)
        device = f"cuda:{gpu}"
    out_path = run_dir / "ensemble.h5"
    from .registry import RUN_FILES

    post_path = run_dir / POSTERIOR_NAME
    pkey = RUN_FILES["posterior"].expected_key(deck)
    if pkey is None:
        import h5py

        with h5py.File(post_path, "r") as f:
            pkey = str(f.attrs.get("assimilate_key", ""))
    key = learn_key(deck, pkey)
    if world.bcast(check_ensemble_file(out_path, key) is None if world.is_root else None):
        log.info("learn: %s is complete for this deck; reusing it", out_path)
        import h5py

        with h5py.File(out_path, "r") as f:
            return {**json.loads(f.attrs["summary"]), "reused": True}
    with ctx.timer("read"):
        inp = read_inputs(run_dir / INPUTS_NAME, deck.get("_deck_path", "DECK"))
    names = [x.decode() if isinstance(x, bytes) else str(x) for x in inp["sites"]["covariate_names"]]
    cells = _grid_cells(inp, names)
    models: dict[str, dict] = {}
    funnel: dict[str, dict] = {}
    for m in deck["models"]:
        sites, fun = _model_sites(inp, post_path, m, deck)
        if sites["rows"].size < 2:
            raise StageError(f"learn: model {m} has {sites['rows'].size} site(s) that passed the assimilation "
                             f"filters with finite covariates ({json.dumps(fun)}); need at least 2")
        if cells:
            scaler = MinMaxScaler.fit(cells["values"], names, cells["categorical"])
        else:
            log.warning("learn: inputs.h5 has no grid; the covariate scaling is fitted on the sites")
            scaler = MinMaxScaler.fit(sites["covariates"], names)
        hold = holdout_mask(sites["rows"].size, c["holdout_fraction"], member_seed(deck["seed"], m, "holdout", "split"))
        fun["holdout"] = int(hold.sum())
        fun["training"] = int((~hold).sum())
        xs = scaler.transform(sites["covariates"])
        if cells:
            xc_all = scaler.transform(cells["values"])
            cell_ok = np.isfinite(xc_all).all(axis=1)
            fun["cells"] = int(cell_ok.sum())
            fun["cells_nan_covariates"] = int((~cell_ok).sum())
        else:
            xc_all, cell_ok = np.zeros((0, len(names)), np.float32), np.zeros(0, bool)
        train_sites = np.flatnonzero(~hold)
        members, plans, splits = _plans(deck, m, train_sites.size)
        models[m] = {"sites": sites, "scaler": scaler, "hold": hold, "xs": xs, "xc": xc_all[cell_ok],
                     "cell_ok": cell_ok, "train_sites": train_sites, "members": members, "plans": plans,
                     "splits": splits}
        funnel[m] = fun
        log.info("learn: %s: %s", m, ", ".join(f"{k} {v}" for k, v in fun.items()))
    # work units: stacks of consecutive members of one model
    stack = int(c["stack_members"])
    units: list[tuple[str, list[int]]] = []
    for m in deck["models"]:
        n_mem = len(models[m]["members"])
        units += [(m, list(range(a, min(a + stack, n_mem)))) for a in range(0, n_mem, stack)]
    parts = run_dir / LEARN_PARTS
    if world.is_root:
        prepare_parts(parts, key)
    world.barrier()
    done = world.bcast({i for i, (m, idx) in enumerate(units)
                        if unit_done(parts, m, i, key, [models[m]["members"][j][0] for j in idx])}
                       if world.is_root else None)
    todo = [i for i in range(len(units)) if i not in done]
    cfgs = {m: train_config(deck, m) for m in deck["models"]}
    log.info("learn: %d member(s) in %d unit(s) of up to %d (%d done, %d to do); %d epochs max, patience %d, "
             "batch %d, loss %s; ranks %d, DDP group size %d, device %s",
             sum(len(models[m]["members"]) for m in models), len(units), stack, len(done), len(todo),
             c["epochs"], c["patience"], c["batch_size"], ",".join(cfgs[m].loss for m in cfgs), world.size,
             c["ddp_group_size"], device)
    t_train = time.monotonic()
    stopped = False
    epochs = 0
    with signals.deferred(), ctx.timer("train"):
        g = int(c["ddp_group_size"])
        tensors: dict[str, dict] = {}

        def unit_input(u: int) -> Any:
            m, idx = units[u]
            mm = models[m]
            if m not in tensors:
                ts = mm["train_sites"]
                tensors[m] = {"xt": torch.from_numpy(mm["xs"][ts]).to(device),
                              "yt": torch.from_numpy(mm["sites"]["target"][ts].astype(np.float32)).to(device),
                              "xs": torch.from_numpy(mm["xs"]).to(device), "xc": torch.from_numpy(mm["xc"]).to(device)}
            t = tensors[m]
            return UnitInput(model=m, unit=u, members=[mm["members"][j][0] for j in idx],
                             plans=[mm["plans"][j] for j in idx], x_train=t["xt"], y_train=t["yt"],
                             x_site=t["xs"], x_cell=t["xc"])

        done_here = mep_here = 0
        every_s = float(c["checkpoint_every_s"])
        every_ep = c["checkpoint_every_epochs"]
        prog = float(deck["logging"].get("progress_every_s", 30.0))
        if g == 1:
            beat = _Heartbeat(len(todo), prog) if world.is_root else None
            queue = WorkQueue(world, todo, on_progress=beat)
            while True:
                if signals.stop_signal() is not None:
                    stopped = True
                    queue.request_stop()
                    break
                u = queue.next()
                if u is None:
                    break
                res = run_unit(unit_input(u), cfgs[units[u][0]], run_dir, parts, key, world.rank, True, every_s,
                               every_ep, prog,
                               report=lambda p, d=done_here, e=mep_here: queue.report({**p, "done": d,
                                                                                       "member_epochs": e}))
                epochs += res.epochs
                done_here += 0 if res.stopped else 1
                mep_here += res.epochs * len(units[u][1])
                queue.report({"done": done_here, "member_epochs": mep_here, "unit": None})
                if res.stopped:
                    stopped = True
                    queue.request_stop()
                    break
            queue.close()
        else:
            from torch.nn.parallel import DistributedDataParallel

            from ..learn.ddp import replica

            pg, gid, n_groups, sub = _ddp_groups(world, g, device)
            rep = replica(pg)

            def vote(flag: bool) -> bool:
                return bool(sub.allreduce(int(flag)))

            def factory(net: Any) -> Any:
                return DistributedDataParallel(net, process_group=pg, broadcast_buffers=False)

            for u in todo[gid::n_groups]:
                res = run_unit(unit_input(u), cfgs[units[u][0]], run_dir, parts, key, world.rank,
                               sub.Get_rank() == 0, every_s, every_ep, prog, group=rep,
                               ddp_module_factory=factory, stop_vote=vote)
                epochs += res.epochs
                if res.stopped:
                    stopped = True
                    break
            sub.Free()
    if world.allreduce_sum(int(stopped)):
        err = signals.Requeue(int(world.bcast(signals.stop_signal() or 15)))
        err.collective = True
        raise err
    train_s = time.monotonic() - t_train
    total_epochs = world.allreduce_sum(epochs)
    summary = None
    if world.is_root:
        with ctx.timer("write"):
            summary = _write_ensemble(ctx, models, units, parts, key, funnel, inp)
        summary["throughput"] = {"train_wall_s": round(train_s, 3), "ranks": world.size,
                                 "member_epochs": int(total_epochs),
                                 "member_epochs_per_s": round(total_epochs / max(train_s, 1e-9), 3)}
        shutil.rmtree(parts, ignore_errors=True)
    world.barrier()
    return world.bcast(summary)


class _Heartbeat:
    """Rank 0 (queue server thread): one line per ``every_s`` for the whole job: units done, units in flight
    with their epoch and running members, member-epochs per second."""

    def __init__(self, total_units: int, every_s: float) -> None:
        self.total, self.every_s = total_units, every_s
        self.t0 = self.last = time.monotonic()

    def __call__(self, reports: dict) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s:
            return
        self.last = now
        done = sum(r.get("done", 0) for r in reports.values())
        flying = [r for r in reports.values() if r.get("unit") is not None]
        mep = sum(r.get("member_epochs", 0) for r in reports.values())
        mep += sum(r["epoch"] * r["members"] for r in flying)
        inflight = ", ".join(f"unit {r['unit']} epoch {r['epoch']} ({r['running']}/{r['members']} running)"
                             for r in flying) or "none"
        log.info("learn: %d/%d units done | in flight: %s | %.3g member-epochs/s", done, self.total, inflight,
                 mep / max(now - self.t0, 1e-9))


def _write_ensemble(ctx: StageContext, models: dict, units: list, parts: Path, key: str, funnel: dict,
                    inp: dict) -> dict:
    """Rank 0: assemble every unit's results into ``ensemble.h5``; the skill tables; the summary."""
    from ..io.ensemble import WEIGHTS_DIR, ModelEnsemble, write_ensemble
    from .learn_report import skill_tables
    from .learn_unit import unit_path

    deck = ctx.deck
    out: dict[str, Any] = {}
    skill: dict[str, Any] = {}
    for m, mm in models.items():
        got: dict[str, dict] = {}
        for u, (mu, _idx) in enumerate(units):
            if mu != m:
                continue
            r = read_part(unit_path(parts, m, u), key)
            if r is None:
                raise StageError(f"{unit_path(parts, m, u)}: a finished unit vanished; re-run learn")
            arr = r[0]
            for i, name in enumerate(arr["members"]):
                got[str(name)] = {k: v[i] for k, v in arr.items() if k != "members"}
        names = [n for n, _k in mm["members"]]
        kinds = [k for _n, k in mm["members"]]
        s_dim = mm["sites"]["rows"].size
        ts = mm["train_sites"]
        e_max = max(int(got[n]["epochs_run"]) for n in names)
        tc = np.zeros((len(names), s_dim), np.int64)
        val = np.zeros((len(names), s_dim), np.uint8)
        oob = np.zeros((len(names), s_dim), np.uint8)
        for i, sp in enumerate(mm["splits"]):
            tcount, vmask = sp.counts(ts.size)
            tc[i, ts] = tcount
            val[i, ts] = vmask
            oob[i, ts] = sp.oob
        sites = mm["sites"]
        cell_idx = np.flatnonzero(mm["cell_ok"]).astype(np.int64)
        grid_cells = _grid_cells(inp, list(mm["scaler"].names))
        ens = ModelEnsemble(
            param_name=np.array(sites["param_names"], dtype=object),
            member_name=np.array(names, dtype=object), member_kind=np.array(kinds, dtype=object),
            member_seed=np.array([p.init_seed for p in mm["plans"]], dtype=np.int64),
            member_epochs_run=np.array([int(got[n]["epochs_run"]) for n in names], dtype=np.int64),
            member_best_epoch=np.array([int(got[n]["best_epoch"]) for n in names], dtype=np.int64),
            member_best_val_loss=np.array([float(got[n]["best_val"]) for n in names]),
            member_stopped_early=np.array([int(got[n]["stopped_early"]) for n in names], dtype=np.uint8),
            member_weights_file=np.array([f"{WEIGHTS_DIR}/{m}/{n}.pt" for n in names], dtype=object),
            member_weights_blake2b=np.array([str(got[n]["weights_blake2b"]) for n in names], dtype=object),
            train_loss=np.stack([got[n]["train_loss"][:e_max] for n in names]),
            val_loss=np.stack([got[n]["val_loss"][:e_max] for n in names]),
            train_count=tc, val=val, oob=oob, holdout=mm["hold"].astype(np.uint8),
            profile_id=np.array(sites["profile_id"], dtype=object), site_row=sites["rows"],
            site_target=sites["target"], site_lat=np.asarray(sites["lat"], np.float64),
            site_lon=np.asarray(sites["lon"], np.float64),
            cell_index=cell_idx,
            cell_lat=np.asarray(grid_cells["lat"], np.float64)[cell_idx] if grid_cells else np.zeros(0),
            cell_lon=np.asarray(grid_cells["lon"], np.float64)[cell_idx] if grid_cells else np.zeros(0),
            pred_site=np.stack([got[n]["pred_site"] for n in names]).astype(np.float32),
            pred_cell=np.stack([got[n]["pred_cell"] for n in names]).astype(np.float32),
            scaling_min=mm["scaler"].lo, scaling_max=mm["scaler"].hi,
            scaling_names=np.array(list(mm["scaler"].names), dtype=object),
            scaling_categorical=mm["scaler"].categorical.astype(np.uint8),
        )
        out[m] = ens
        skill[m] = skill_tables(ctx.run_dir, m, ens, inp, get_model(m).params.names)
    summary = {"funnel": funnel, "members": {m: len(models[m]["members"]) for m in models},
               "epochs_run": {m: {"min": int(out[m].member_epochs_run.min()),
                                  "median": float(np.median(out[m].member_epochs_run)),
                                  "max": int(out[m].member_epochs_run.max())} for m in out},
               "skill": skill, "config": {k: v for k, v in deck["learn"].items()}}
    attrs = {"learn_key": key, "models": json.dumps(list(models)), "summary": json.dumps(summary, default=float),
             "provenance": json.dumps(provenance(deck, ctx.world.size), default=str),
             "config": json.dumps(deck["learn"], default=str)}
    write_ensemble(ctx.run_dir / "ensemble.h5", out, attrs)
    return summary
