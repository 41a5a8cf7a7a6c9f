"""One work unit of stage **assimilate**: a batch of profiles of one model, sampled to the end or to a stop.

The batch is a fixed slice of the kept profiles (``batch_profiles`` of them), so its content -- and with the
site-keyed random streams, its result -- does not depend on the rank that runs it or on restarts.  The
in-flight sampler state is checkpointed to ``assimilate.parts/<model>/batch_<b>.state.npz`` every
``checkpoint_every_s`` wall seconds and when a stop signal arrives; a re-run resumes from it to the same
bits as an uninterrupted run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..inference.rng import stream_keys
from ..inference.sampler import SamplerConfig, SamplerState, get_kernel
from ..inference.summary import summarize
from ..inference.targets import ProfileTarget, SiteObservations, site_prechecks
from ..io.staging import batch_path, read_part, state_path, write_part
from ..parallel.faults import fault_point
from ..parallel.signals import stop_signal
from ..soil import get_model
from ..soil.base import STATUS_NAMES

log = logging.getLogger(__name__)

__all__ = ["BatchOutcome", "Counters", "run_batch", "sampler_config"]


def sampler_config(a: dict) -> SamplerConfig:
    """The kernel settings of the deck's ``assimilate`` section."""
    return SamplerConfig(chains=a["chains"], test_iterations=a["test_iterations"], iterations=a["iterations"],
                         adapt_start=a["adapt_start"], draws=a["draws"], init=a["init"],
                         failure_dj=a["failure_dj"], accepted_capacity=a["accepted_capacity"],
                         obs_sigma_log=a["obs_sigma_log"])


@dataclass
class Counters:
    """What a rank has done so far (sent to rank 0 for the progress line)."""

    sites_done: int = 0
    batch_sites: int = 0
    batch_frac: float = 0.0
    evals: int = 0
    accepted: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    busy_s: float = 0.0

    def payload(self) -> dict[str, Any]:
        return {"sites_done": self.sites_done, "batch_sites": self.batch_sites, "batch_frac": self.batch_frac,
                "evals": self.evals, "accepted": self.accepted, "failed": dict(self.failed),
                "busy_s": self.busy_s}


@dataclass
class BatchOutcome:
    """``stopped``: a signal arrived and the state was checkpointed; else the result file is written."""

    stopped: bool
    n_sites: int
    evals: int
    wall_s: float


@dataclass
class BatchInput:
    """What a batch needs from ``inputs.h5`` (every rank holds the whole site table)."""

    model: str
    batch: int
    rows: np.ndarray  # (S,) profile rows in inputs.h5
    profile_ids: np.ndarray  # (S,) str
    forcing: Any  # Forcing of the S sites
    forcing_ok: np.ndarray  # (S,) bool
    obs: SiteObservations


def _progress_fraction(kernel: Any, state: SamplerState) -> float:
    """Fraction of the batch's planned iterations done (for the progress line and the ETA only)."""
    return float(np.mean(kernel.progress(state))) if state.streams.n_rows else 0.0


def run_batch(bi: BatchInput, deck: dict, parts: Path, key: str, counters: Counters, rank: int,
              report: Any) -> BatchOutcome:
    """Sample one batch to its end (result file written) or to a stop signal (state checkpointed).

    Parameters
    ----------
    bi : the batch's sites
    deck : resolved deck
    parts : the ``assimilate.parts`` folder
    key : the assimilate key (results of another deck are ignored)
    counters : this rank's counters (updated)
    rank : for fault points
    report : callable(payload) sending progress to rank 0
    """
    a = deck["assimilate"]
    mode = a["mode"]
    cfg = sampler_config(a)
    opts = dict(deck.get("model_options", {}).get(bi.model, {}) or {})
    preset = opts.pop("preset", "paper")
    model = get_model(bi.model, preset, **opts)
    t0 = time.monotonic()
    s_n = bi.rows.size
    prepared = model.prepare(bi.forcing)
    pre = np.asarray(site_prechecks(model, prepared, bi.obs, bi.forcing_ok), dtype=object)
    run_idx = np.flatnonzero(pre == "")
    kernel = get_kernel(mode)
    # the sampled sites only (the others keep their reason); prepared again for exactly those sites
    target = ProfileTarget(model, model.prepare(bi.forcing.take(run_idx)), bi.obs.take(run_idx),
                           obs_sigma_log=cfg.obs_sigma_log)
    meta = {"key": key, "model": bi.model, "batch": bi.batch, "kind": "state", "mode": mode,
            "rows": [int(bi.rows[0]), int(bi.rows[-1])], "n_run": int(run_idx.size)}
    spath = state_path(parts, bi.model, bi.batch)
    state = None
    got = read_part(spath, key) if spath.exists() else None
    if got is not None and got[1].get("rows") == meta["rows"] and got[1].get("n_run") == meta["n_run"]:
        state = SamplerState.from_arrays(mode, got[0], got[1])
        log.info("%s batch %d: resuming from its checkpoint (%s)", bi.model, bi.batch, spath.name)
    if state is None:
        chains = np.tile(np.arange(cfg.chains), run_idx.size)
        sites = np.repeat(bi.profile_ids[run_idx], cfg.chains)
        keys = stream_keys(deck["seed"], bi.model, list(sites), chains).reshape(run_idx.size, cfg.chains, 2)
        state = kernel.init(cfg, target, keys)
    counters.batch_sites = s_n
    every = float(a["checkpoint_every_s"])
    every_steps = a.get("checkpoint_every_steps") or 0
    prog_every = float(deck["logging"].get("progress_every_s", 30.0))
    last_ck = last_rep = time.monotonic()
    n_evals = 0
    n_steps = 0
    while run_idx.size and not kernel.done(state).all():
        state, info = kernel.step(state, target)
        n_steps += 1
        n_evals += int(info.get("n_evals", 0))
        counters.evals += int(info.get("n_evals", 0))
        counters.accepted += int(info.get("n_accepted", 0))
        fs = info.get("failed_status")
        if fs is not None and int(info.get("n_failed", 0)):
            for code in np.flatnonzero(np.asarray(fs)):
                name = STATUS_NAMES.get(int(code), str(code))
                counters.failed[name] = counters.failed.get(name, 0) + int(fs[code])
        fault_point("assimilate_step", rank)
        now = time.monotonic()
        sig = stop_signal()
        if sig is not None or now - last_ck >= every or (every_steps and n_steps % every_steps == 0):
            write_part(spath, state.to_arrays(), meta)
            last_ck = now
            fault_point("assimilate_after_checkpoint", rank)
            if sig is not None:
                counters.busy_s += now - t0
                log.info("%s batch %d: checkpointed after a signal at step %d", bi.model, bi.batch, n_steps)
                return BatchOutcome(True, s_n, n_evals, now - t0)
        if now - last_rep >= prog_every:
            counters.batch_frac = _progress_fraction(kernel, state)
            report(counters.payload())
            last_rep = now
    results = kernel.finalize(state, target) if run_idx.size else None
    out = assemble_batch(results, bi, pre, run_idx, model, cfg, a)
    write_part(batch_path(parts, bi.model, bi.batch), out,
               {"key": key, "model": bi.model, "batch": bi.batch, "kind": "result", "mode": mode})
    fault_point("assimilate_batch_written", rank)
    spath.unlink(missing_ok=True)
    wall = time.monotonic() - t0
    counters.sites_done += s_n
    counters.batch_frac = 0.0
    counters.busy_s += wall
    log.info("%s batch %d: %d profiles (%d sampled) in %.1f s, %d evaluations", bi.model, bi.batch, s_n,
             run_idx.size, wall, n_evals)
    return BatchOutcome(False, s_n, n_evals, wall)


def assemble_batch(results: dict | None, bi: BatchInput, pre: np.ndarray, run_idx: np.ndarray, model: Any,
                   cfg: SamplerConfig, a: dict) -> dict[str, np.ndarray]:
    """The batch's result arrays for all S sites (sites not sampled: NaN / zeros, with their reason)."""
    s_n, p_n, c_n, d_n, l_n = bi.rows.size, len(model.params), cfg.chains, cfg.n_draws, bi.obs.obs.shape[1]
    from ..inference.sampler import RESULT_FIELDS

    full: dict[str, np.ndarray] = {}
    shapes = {"S": s_n, "C": c_n, "D": d_n, "P": p_n, "L": l_n}
    for name, (shape, _doc) in RESULT_FIELDS.items():
        dims = [d for d in shape.split(")")[0].strip("(").replace(" ", "").split(",") if d]
        dtype = shape.split(")")[1].strip()
        shp = tuple(shapes[d] if d in shapes else int(d) for d in dims)
        if dtype == "str":
            arr = np.array([""] * s_n, dtype=object)
        elif dtype == "bool":
            arr = np.zeros(shp, dtype=bool)
        elif dtype == "int64":
            arr = np.zeros(shp, dtype=np.int64)
        else:
            arr = np.full(shp, np.nan)
        if results is not None:
            src = np.asarray(results[name])
            arr[run_idx] = src.astype(arr.dtype) if arr.dtype != object else src
        full[name] = arr
    full["ok"][np.setdiff1d(np.arange(s_n), run_idx)] = False
    summ = summarize(full, bi.obs.obs, pre, a["mode"], a["gelman_rubin_max"], a["nse_min"], a["nse_definition"])
    full.update(summ)
    lo, hi = model.params.lo, model.params.hi
    full["mean_phys"] = lo + full["mean"] * (hi - lo)
    full["sd_phys"] = full["sd"] * (hi - lo)
    full["mode_phys"] = lo + full["mode"] * (hi - lo)
    import warnings

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows of sites that were not sampled
        flat = full["draws"].reshape(s_n, -1, p_n)
        q = np.nanquantile(flat, [0.05, 0.95], axis=1) if flat.shape[1] else np.full((2, s_n, p_n), np.nan)
    full["q05"], full["q95"] = q[0], q[1]
    full["rows"] = bi.rows.astype(np.int64)
    full["obs_soc"] = bi.obs.obs
    full["obs_depth"] = bi.obs.depth_m
    full["n_layers_raw"] = bi.obs.n_layers_raw
    return full
