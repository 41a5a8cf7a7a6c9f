"""Stage 2, **assimilate**: ``inputs.h5`` -> ``<run_dir>/posterior.h5`` (per-profile MCMC, both models).

Flow (every rank):

1. Read ``inputs.h5``; the kept profiles of each model are cut into fixed batches of ``batch_profiles``
   (the work units).  Units whose result file exists in ``assimilate.parts/`` (:mod:`prodampi.io.staging`)
   are done; the rest go into a dynamic :class:`~prodampi.parallel.schedule.WorkQueue`, so fast ranks take
   more.
2. Each rank samples the batches it gets (:mod:`prodampi.stages.assimilate_batch`), in lock-step over
   profiles x chains, checkpointing the in-flight state every ``checkpoint_every_s``.
3. SIGTERM, SIGINT or SIGUSR1 (Slurm's ``--signal``): every rank finishes its step, checkpoints, takes no more
   work, and the job exits with status **75** ("requeue me", :data:`prodampi.parallel.signals.EXIT_REQUEUE`).
   The same command resumes where it stopped, to the same bits.
4. When every unit is done: ``posterior.h5`` (the contract :mod:`prodampi.io.posterior`) is created
   collectively for all profiles and models, each rank writes the rows of its share of the batches
   independently (MPI-IO), the file is closed, checksummed and renamed into place; the parts folder is
   removed.  ``assimilate.json`` records the filtering funnel per model, timings and throughput.

Progress: rank 0 logs one line every ``logging.progress_every_s`` with profiles done / total (summed over
ranks), rate, ETA, acceptance and failed solves by reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StageError
from ..inference.summary import STATUS
from ..inference.targets import SiteObservations
from ..io.inputs import FILE_NAME as INPUTS_NAME
from ..io.inputs import read_inputs
from ..io.posterior import (
    FIELDS,
    FILE_NAME,
    PosteriorSpec,
    add_checksums,
    check_posterior,
    create_posterior,
    mark_complete,
    write_sites,
)
from ..io.safefile import atomic_output
from ..io.staging import PARTS_DIR, batch_path, prepare_parts, read_part
from ..parallel import signals
from ..parallel.faults import fault_point
from ..parallel.h5store import _h5open
from ..parallel.schedule import WorkQueue
from ..provenance import provenance
from ..soil import get_model
from .assimilate_batch import BatchInput, Counters, run_batch, sampler_config
from .common import StageContext

log = logging.getLogger(__name__)

__all__ = ["FILE_NAME", "assimilate_key", "check_posterior_file", "posterior_key", "run"]

#: funnel order (assimilate.json): profiles in -> ... -> kept
FUNNEL = ("bad_data", "solver_failure", "sampler_failure", "rejected_gr", "rejected_nse", "converged")


def assimilate_key(deck: dict, inputs_key: str) -> str:
    """Hash of everything that determines ``posterior.h5``: the assimilate section, seed, models, their
    options and the inputs file's own key (its ``prepare_key``)."""
    d = {"assimilate": deck["assimilate"], "seed": deck["seed"], "models": deck["models"],
         "model_options": deck.get("model_options", {}), "inputs": inputs_key, "version": 1}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def posterior_key(deck: dict) -> str:
    """The key ``posterior.h5`` must carry for ``deck`` (root attribute ``assimilate_key``)."""
    from .registry import RUN_FILES

    return assimilate_key(deck, RUN_FILES["inputs"].expected_key(deck) or "")


def check_posterior_file(path: str | Path, key: str | None = None) -> str | None:
    """Why ``posterior.h5`` at ``path`` cannot be used (contract check, then the deck key), or None."""
    why = check_posterior(path, verify=True)
    if why is not None or key is None:
        return why
    import h5py

    try:
        with h5py.File(path, "r") as f:
            have = f.attrs.get("assimilate_key", "")
    except OSError as e:
        return f"not a readable HDF5 file ({e})"
    have = have.decode() if isinstance(have, bytes) else str(have)
    return None if have == key else "made by another deck (its assimilate_key differs)"


# ------------------------------------------------------------------------------------------------ plan
def _plan(deck: dict, n_profiles: int) -> list[tuple[str, int, np.ndarray]]:
    """Work units: (model, batch index, profile rows), in model then batch order."""
    a = deck["assimilate"]
    n = n_profiles if a["max_profiles"] is None else min(n_profiles, a["max_profiles"])
    bsz = a["batch_profiles"]
    units = []
    for m in deck["models"]:
        for b, start in enumerate(range(0, n, bsz)):
            units.append((m, b, np.arange(start, min(start + bsz, n), dtype=np.int64)))
    return units


def _observations(inp: dict, model: str, deck: dict) -> SiteObservations:
    """The observations ``model`` is fitted to: the profiles' SOC records, or (``observations: own_truth``,
    synthetic world) the model's own noise-free true SOC at the same layers."""
    prof = inp["profiles"]
    soc = np.asarray(prof.soc_density_g_m3, dtype=np.float64)
    usable = np.asarray(prof.obs_usable).astype(bool)
    if deck["assimilate"]["observations"] == "own_truth":
        truth = inp.get("profiles_truth") or {}
        k = f"truth_{model}_g_m3"
        if k not in truth:
            raise StageError(f"assimilate.observations = 'own_truth' needs the synthetic world's true SOC "
                             f"(inputs.h5 profiles_truth/{k}); this inputs.h5 has none (prepare.source: synthetic)")
        soc = np.asarray(truth[k], dtype=np.float64)
        usable = usable & np.isfinite(soc)
    off = np.asarray(prof.offsets)
    n_max = max(1, int(np.diff(off).max())) if off.size > 1 else 1  # one padded width for every model
    return SiteObservations.from_profiles(off, np.asarray(prof.node_depth_m), soc, usable, n_max=n_max)


def _batch_input(model: str, batch: int, rows: np.ndarray, inp: dict) -> BatchInput:
    prof = inp["profiles"]
    sites = inp["sites"]
    obs_all = inp["_obs"][model]
    return BatchInput(model=model, batch=batch, rows=rows,
                      profile_ids=np.asarray(prof.profile_id)[rows].astype(str),
                      forcing=inp["site_forcing"].take(rows),
                      forcing_ok=np.asarray(sites["forcing_ok"]).astype(bool)[rows],
                      obs=obs_all.take(rows))


# ------------------------------------------------------------------------------------------------ progress
class _Heartbeat:
    """Rank 0 (queue server thread): one line per ``every_s`` for the whole job."""

    def __init__(self, total_sites: int, every_s: float) -> None:
        self.total, self.every_s = total_sites, every_s
        self.t0 = self.last = time.monotonic()

    def __call__(self, reports: dict, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        done = sum(r["sites_done"] for r in reports.values())
        flying = sum(r["batch_sites"] * r["batch_frac"] for r in reports.values())
        evals = sum(r["evals"] for r in reports.values())
        acc = sum(r["accepted"] for r in reports.values())
        failed: dict[str, int] = {}
        for r in reports.values():
            for k, v in r["failed"].items():
                failed[k] = failed.get(k, 0) + v
        el = now - self.t0
        prog = done + flying
        rate = prog / el if el > 0 else 0.0
        eta = (self.total - prog) / rate if rate > 0 else float("nan")
        fails = ", ".join(f"{k} {v}" for k, v in sorted(failed.items())) or "none"
        log.info("assimilate: %d/%d profiles done (+%.1f in flight, %.1f%%) | %.3g profiles/s | ETA %s | "
                 "acceptance %.3f | failed solves: %s", done, self.total, flying, 100 * prog / max(self.total, 1),
                 rate, _hms(eta), acc / max(evals, 1), fails)


def _hms(s: float) -> str:
    if not np.isfinite(s):
        return "?"
    s = int(round(s))
    return f"{s // 3600}h{(s % 3600) // 60:02d}m{s % 60:02d}s"


# ------------------------------------------------------------------------------------------------ stage
def run(ctx: StageContext) -> dict[str, Any]:
    """Sample every profile of every model (resuming from checkpoints); write ``posterior.h5``."""
    world, deck, run_dir = ctx.world, ctx.deck, ctx.run_dir
    post = run_dir / FILE_NAME
    with ctx.timer("read"):
        inp = read_inputs(run_dir / INPUTS_NAME, deck.get("_deck_path", "DECK"))
    ikey = inp["attrs"].get("prepare_key", "")
    ikey = ikey.decode() if isinstance(ikey, bytes) else str(ikey)
    key = assimilate_key(deck, ikey)
    reuse = world.bcast(_reusable(post, key) if world.is_root else None)
    if reuse is not None:
        log.info("assimilate: %s is complete for this deck; reusing it", post)
        return {**reuse, "reused": True}
    prof = inp["profiles"]
    inp["_obs"] = {m: _observations(inp, m, deck) for m in deck["models"]}
    units = _plan(deck, len(prof.profile_id))
    parts = run_dir / PARTS_DIR
    if world.is_root:
        prepare_parts(parts, key)
    world.barrier()
    done = world.bcast(_done_units(parts, units, key) if world.is_root else None)
    todo = [i for i in range(len(units)) if i not in done]
    total_sites = sum(u[2].size for u in units)
    log.info("assimilate: %d profiles x %d model(s), %d batches (%d done, %d to do), mode %s, %d chains x "
             "(%d + %d) iterations", total_sites // max(len(deck["models"]), 1), len(deck["models"]), len(units),
             len(done), len(todo), deck["assimilate"]["mode"], deck["assimilate"]["chains"],
             deck["assimilate"]["test_iterations"], deck["assimilate"]["iterations"])
    beat = _Heartbeat(total_sites - sum(units[i][2].size for i in done),
                      float(deck["logging"].get("progress_every_s", 30.0)))
    counters = Counters()
    stopped = False
    t_sample = time.monotonic()
    with signals.deferred(), ctx.timer("sample"):
        queue = WorkQueue(world, todo, on_progress=beat if world.is_root else None)
        while True:
            if signals.stop_signal() is not None:
                stopped = True
                queue.request_stop()
                break
            u = queue.next()
            if u is None:
                break
            m, b, rows = units[u]
            out = run_batch(_batch_input(m, b, rows, inp), deck, parts, key, counters, world.rank, queue.report)
            if out.stopped:
                stopped = True
                queue.request_stop()
                break
        queue.report(counters.payload())
        queue.close()
    any_stop = world.allreduce_sum(int(stopped))
    sig = world.bcast(signals.stop_signal() or 15)
    if any_stop:
        err = signals.Requeue(int(sig))
        err.collective = True
        raise err
    sample_s = time.monotonic() - t_sample
    busy = world.gather(counters.busy_s)
    with ctx.timer("write"):
        summary = _write_posterior(ctx, inp, units, parts, key, post)
    evals = world.allreduce_sum(counters.evals)
    if world.is_root:
        summary["throughput"] = {
            "sample_wall_s": round(sample_s, 3), "ranks": world.size, "evaluations": int(evals),
            "evaluations_per_s_per_rank": round(evals / max(sample_s, 1e-9) / world.size, 1),
            "profiles_per_core_hour": round(sum(u[2].size for i, u in enumerate(units) if i in set(todo))
                                            / max(sample_s * world.size, 1e-9) * 3600, 1),
            "rank_busy_s": [round(float(x), 3) for x in (busy or [])],
        }
        summary["recovery"] = _recovery(ctx, inp, units, parts, key)
        shutil.rmtree(parts, ignore_errors=True)
    summary = world.bcast(summary if world.is_root else None)
    return summary


def _recovery(ctx: StageContext, inp: dict, units: list, parts: Path, key: str) -> dict:
    """Rank 0, synthetic world: posterior means vs the true parameters for each model fitted to its own
    truth -> ``recovery_<model>.csv`` / ``.png`` and a summary (paper §2.6, Fig. S3)."""
    deck = ctx.deck
    a = deck["assimilate"]
    grid = inp.get("grid") or {}
    truth_grid = grid.get("truth") or {}
    world_truth = inp["summary"].get("truth")
    out: dict = {}
    if not a["recovery"] or "cell" not in inp["sites"]:
        return out
    from ..inference.recovery import score_recovery, verdict
    from .assimilate_report import write_recovery

    for m in deck["models"]:
        if not (a["observations"] == "own_truth" or world_truth == m) or f"u_{m}" not in truth_grid:
            continue
        got = [read_part(batch_path(parts, mm, b), key, names=("rows", "mean", "sd", "q05", "q95", "status"))[0]
               for mm, b, _r in units if mm == m]
        rows = np.concatenate([g["rows"] for g in got])
        mean = np.concatenate([g["mean"] for g in got])
        sd = np.concatenate([g["sd"] for g in got])
        q05 = np.concatenate([g["q05"] for g in got])
        q95 = np.concatenate([g["q95"] for g in got])
        status = np.concatenate([g["status"] for g in got])
        cell = np.asarray(inp["sites"]["cell"])[rows]
        truth = np.asarray(truth_grid[f"u_{m}"])[cell]
        names = get_model(m).params.names
        ok = np.isfinite(mean).all(axis=1)
        table = score_recovery(truth, mean, q05, q95, sd, names, mask=ok)
        paths = write_recovery(ctx.run_dir, m, a["mode"], table, truth[ok], mean[ok], q05[ok], q95[ok], names)
        out[m] = {"sites": int(ok.sum()), "converged": int(np.sum(status[ok] == STATUS["converged"])),
                  "table": table, "verdict": verdict(table, m), "files": [p.name for p in paths]}
        log.info("assimilate: recovery of %s on %d sites written to %s", m, int(ok.sum()),
                 ", ".join(p.name for p in paths))
    return out


def _reusable(post: Path, key: str) -> dict | None:
    why = check_posterior_file(post, key)
    if why is not None:
        if why != "missing":
            log.info("assimilate: %s is %s; rebuilding", post, why)
        return None
    import h5py

    try:
        with h5py.File(post, "r") as f:
            return json.loads(f.attrs["summary"])
    except (OSError, KeyError, ValueError):
        return None


def _done_units(parts: Path, units: list, key: str) -> set[int]:
    done = set()
    for i, (m, b, rows) in enumerate(units):
        p = batch_path(parts, m, b)
        if p.exists():
            got = read_part(p, key, names=("rows",))
            if got is not None and np.array_equal(got[0].get("rows"), rows):
                done.add(i)
            else:
                log.warning("assimilate: %s is unreadable or stale; redoing that batch", p)
                p.unlink(missing_ok=True)
    return done


def _write_posterior(ctx: StageContext, inp: dict, units: list, parts: Path, key: str, post: Path) -> dict:
    """Collective: create the file for all sites and models, write each rank's share, close, rename."""
    world, deck = ctx.world, ctx.deck
    a = deck["assimilate"]
    cfg = sampler_config(a)
    prof = inp["profiles"]
    n_total = max((u[2][-1] + 1 for u in units if u[2].size), default=0)
    ids = np.asarray(prof.profile_id)[:n_total].astype(str)
    n_obs = max(o.obs.shape[1] for o in inp["_obs"].values())
    specs = {}
    for m in deck["models"]:
        table = get_model(m).params
        specs[m] = PosteriorSpec(site_ids=ids, param_names=table.names, lo=table.lo, hi=table.hi,
                                 n_chains=cfg.chains, n_draws=cfg.n_draws, n_obs=n_obs,
                                 attrs={"kernel": a["mode"], "thin": cfg.thin, "test_iterations": cfg.test_iterations,
                                        "iterations": cfg.iterations, "chains": cfg.chains})
    # funnel from the parts (rank 0)
    funnel = None
    if world.is_root:
        funnel = {}
        for m in deck["models"]:
            st = []
            for mm, b, _rows in units:
                if mm == m:
                    got = read_part(batch_path(parts, m, b), key, names=("status",))
                    if got is None:
                        raise StageError(f"{batch_path(parts, m, b)}: a finished batch vanished; re-run")
                    st.append(got[0]["status"])
            st = np.concatenate(st) if st else np.zeros(0, dtype=np.int8)
            f = {"profiles_in": int(st.size)}
            left = int(st.size)
            for name in FUNNEL:
                n = int(np.sum(st == STATUS[name]))
                if name != "converged":
                    left -= n
                    f[name] = n
                    f[f"after_{name}"] = left
            f["kept"] = int(np.sum(st == STATUS["converged"]))
            funnel[m] = f
    funnel = world.bcast(funnel)
    summary = {"funnel": funnel, "mode": a["mode"], "chains": cfg.chains, "test_iterations": cfg.test_iterations,
               "iterations": cfg.iterations, "draws": cfg.n_draws, "thin": cfg.thin}
    attrs = {"assimilate_key": key, "summary": json.dumps(summary),
             "provenance": json.dumps(provenance(deck, world.size), default=str)}
    tmp_dir = None
    if world.is_root:
        import tempfile

        tmp_dir = tempfile.mkdtemp(prefix=f".prodampi-tmp-{__import__('os').getpid()}-", suffix="-posterior",
                                   dir=post.parent)
    tmp_dir = world.bcast(tmp_dir)
    tmp = Path(tmp_dir) / FILE_NAME
    try:
        f = _h5open(tmp, "w", world)
        create_posterior(f, specs, attrs)
        for i, (m, b, _rows) in enumerate(units):
            if i % world.size != world.rank:
                continue
            got = read_part(batch_path(parts, m, b), key)
            if got is None:
                raise StageError(f"{batch_path(parts, m, b)}: unreadable finished batch; delete it and re-run")
            arrays = got[0]
            write_sites(f, m, arrays["rows"], {k: v for k, v in arrays.items() if k in FIELDS})
        fault_point("assimilate_before_close", world.rank)
        mark_complete(f)  # collective
        f.close()
        world.barrier()
        if world.is_root:
            add_checksums(tmp)  # serial pass: every dataset's content hash, as inputs.h5
            with atomic_output(post) as final:
                Path(tmp).replace(final)
        world.barrier()
    finally:
        if world.is_root:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return summary
